// The one writer of a data directory's events: signs them (events/signing.h),
// sequences them in its chain (events/writer_state.h) and appends them to the log.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "events/clock.h"
#include "events/event.h"
#include "events/event_log.h"
#include "events/own_events.h"
#include "events/signing.h"
#include "events/writer_state.h"

namespace tokenledger {

// Signs and appends events as one writer: assigns writerSeq 1, 2, 3, … and chains
// prevDigest, in exactly the order the events land in each partition, and signs
// each signing pass (whatever callers queued meanwhile) as one group: one Ed25519
// signature over the Merkle root of the pass's digests, each event with its path
// (signGroup, events/signing.h; a pass of one event is a group of one). Two threads
// of its own: one signs whatever callers queued meanwhile, the other appends
// everything signed as one log append (group commit), so sequencing costs no extra
// round trip, signing overlaps the appends' round trips, and callers that cannot
// block (the HTTP loops) queue and go on.
//
// Up to log.appendsInFlight() appends are under way at once (Kafka: several; the
// embedded log: one), started in signing order; the log keeps that order within
// each partition, so the chain's order holds there. Their outcomes are taken in
// the same order:
// - an append of unknown outcome leaves its numbers spent (verify-log reports them
//   missing if its events never land); later appends chain on it;
// - an append that recorded nothing (LogUnavailable::nothingRecorded) gives its
//   numbers back, so the chain has no gap for it, if every append started after it
//   recorded nothing too: then those fail with it, and so do the passes signed
//   after it but not yet appended, since they chained on it. If a later append
//   chained on it did record something (or may have), its numbers stay spent;
//   its callers still learn that nothing of theirs was recorded. No new append
//   starts once one is known to have recorded nothing, until that is settled.
class SignedAppender {
 public:
  using Persist = std::function<void(const WriterState&)>;
  using Warn = std::function<void(const std::string&)>;
  // What became of one append: the events with their signing fields filled in,
  // and their positions, or the LogUnavailable (or other error) that failed them.
  struct Appended {
    std::vector<Event> events;
    std::vector<Position> positions;
    std::exception_ptr error;
  };
  using Done = std::function<void(Appended&)>;

  // `clock` (which must outlive the appender) times how often the state is persisted.
  // With `own`, every envelope it appends is remembered there (own_events.h: for a
  // projection that checks signatures; without one, nothing is spent on it).
  SignedAppender(EventLog& log, SigningKey key, WriterState state, Persist persist, Warn warn,
                 const MonotonicClock& clock = steadyClock(),
                 std::shared_ptr<OwnEvents> own = nullptr);
  // Writes what is queued, then persists the last state (appends persist it at
  // most every kPersistEvery).
  ~SignedAppender();
  SignedAppender(const SignedAppender&) = delete;
  SignedAppender& operator=(const SignedAppender&) = delete;

  // Appends `events` (all of `owner`) in order and waits; fills in their signing
  // fields. Throws LogUnavailable like EventLog::append. Thread-safe.
  std::vector<Position> append(const std::string& owner, std::vector<Event>& events);
  // Queues `events` (all of `owner`) and returns at once; `done` runs on the
  // appender's thread once they are appended or failed. It must not throw or block
  // for long: the next batch waits for it. Thread-safe.
  void appendAsync(std::string owner, std::vector<Event> events, Done done);

  const SigningKey& key() const { return key_; }

 private:
  struct Request {
    std::string owner;
    Appended appended;
    Done done;
  };
  // One signing pass: the requests it took, their records in order, and where the
  // writer's sequence stood after it.
  struct Signed {
    std::vector<Request> requests;
    std::vector<std::pair<std::string, std::string>> records;  // (owner, envelope)
    uint64_t firstSeq = 0;
    std::string startDigest;  // the chain's digest before this pass
    uint64_t lastSeq = 0;
    std::string lastDigest;
    // None of it is appended: signing failed (and spent no number), or an earlier
    // append that recorded nothing rewound the chain this pass was signed on.
    std::exception_ptr error;
  };
  void signLoop();
  Signed sign(std::vector<Request> batch);
  // One log append under way: the passes it carries, in signing order, and once
  // the log reports, its outcome.
  struct Batch {
    std::deque<Signed> passes;
    bool appended = false;  // it has records (not only failed passes)
    bool done = false;
    std::vector<Position> positions;
    std::exception_ptr error;
    // The log took none of it (or it had nothing to take).
    bool recordedNothing() const;
  };
  void appendLoop();
  bool canStart() const;   // under mutex_
  bool canFinish() const;  // under mutex_
  void start(const std::shared_ptr<Batch>& batch);
  void finish(Batch& batch, uint64_t givenBackThrough);

  EventLog& log_;
  const MonotonicClock& clock_;
  SigningKey key_;
  std::shared_ptr<OwnEvents> own_;  // null: not remembered
  Persist persist_;
  Warn warn_;
  // A stale state file costs a restart a longer scan, never a wrong sequence
  // (recoverWriterState reads on from scanFrom), so a busy writer does not pay a
  // file write per batch.
  static constexpr std::chrono::milliseconds kPersistEvery{200};
  void persist();
  WriterState state_;  // these three: the appender thread's (state_ as appended)
  MonotonicClock::time_point persistedAt_{};
  bool unpersisted_ = false;
  uint64_t seq_;        // the signer thread's: the last sequence number handed out
  std::string digest_;  // and its digest

  std::mutex mutex_;
  std::condition_variable queued_;        // the signer waits for requests
  std::condition_variable appenderWake_;  // signed passes, or an append's outcome
  std::vector<Request> queue_;
  std::deque<Signed> signed_;
  const size_t maxInFlight_;
  std::deque<std::shared_ptr<Batch>> inFlight_;  // started, in signing order
  // An append that recorded nothing gives its sequence numbers back: the appender
  // sets where the chain continues, and bumps the epoch so that a pass signed
  // meanwhile on the old chain is dropped (with the append's error).
  std::optional<std::pair<uint64_t, std::string>> rewind_;
  uint64_t epoch_ = 0;
  std::exception_ptr rewoundBy_;
  bool stopping_ = false;
  bool signerDone_ = false;
  std::thread signer_;  // last two: start once everything above is set up
  std::thread appender_;
};

}  // namespace tokenledger
