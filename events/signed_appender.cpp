#include "events/signed_appender.h"

#include <algorithm>
#include <future>
#include <tuple>

namespace tokenledger {

SignedAppender::SignedAppender(EventLog& log, SigningKey key, WriterState state, Persist persist,
                               Warn warn, const MonotonicClock& clock,
                               std::shared_ptr<OwnEvents> own)
    : log_(log),
      clock_(clock),
      key_(std::move(key)),
      own_(std::move(own)),
      persist_(std::move(persist)),
      warn_(std::move(warn)),
      state_(std::move(state)),
      seq_(state_.lastSeq),
      digest_(state_.lastDigest),
      maxInFlight_(std::max<size_t>(1, log_.appendsInFlight())) {
  state_.scanFrom.next.resize(static_cast<size_t>(log_.partitionCount()));
  signer_ = std::thread([this] { signLoop(); });
  appender_ = std::thread([this] { appendLoop(); });
}

SignedAppender::~SignedAppender() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  queued_.notify_one();
  signer_.join();
  appender_.join();
  if (unpersisted_) persist();
}

void SignedAppender::persist() {
  unpersisted_ = false;
  persistedAt_ = clock_.now();
  if (!persist_) return;
  try {
    persist_(state_);
  } catch (const std::exception& e) {
    if (warn_) warn_(std::string("cannot persist the signing state: ") + e.what());
  }
}

std::vector<Position> SignedAppender::append(const std::string& owner, std::vector<Event>& events) {
  std::promise<void> written;
  Appended result;
  appendAsync(owner, std::move(events), [&](Appended& a) {
    result = std::move(a);
    written.set_value();
  });
  written.get_future().wait();
  events = std::move(result.events);
  if (result.error) std::rethrow_exception(result.error);
  return std::move(result.positions);
}

void SignedAppender::appendAsync(std::string owner, std::vector<Event> events, Done done) {
  if (auto why = log_.refusesAppends()) {
    Appended refused{std::move(events), {}, nullptr};
    refused.error = std::make_exception_ptr(
        LogUnavailable(*why + " on " + log_.describe(), LogUnavailable::Outcome::nothingRecorded));
    done(refused);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(
        Request{std::move(owner), Appended{std::move(events), {}, nullptr}, std::move(done)});
  }
  // A busy signer is not waiting: this wakes it only when it idles.
  queued_.notify_one();
}

void SignedAppender::signLoop() {
  std::vector<Request> batch;
  std::unique_lock lock(mutex_);
  while (true) {
    queued_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping, and everything queued is signed
    if (rewind_) {
      std::tie(seq_, digest_) = *rewind_;
      rewind_.reset();
    }
    batch.swap(queue_);
    const uint64_t epoch = epoch_;
    lock.unlock();
    Signed s = sign(std::move(batch));
    batch.clear();
    lock.lock();
    if (epoch != epoch_ && !s.error) {
      // Chained on an append that recorded nothing: drop it (the next pass starts
      // from the rewound chain).
      s.error = rewoundBy_;
      s.records.clear();
    }
    signed_.push_back(std::move(s));
    appenderWake_.notify_one();
  }
  signerDone_ = true;
  appenderWake_.notify_one();
}

SignedAppender::Signed SignedAppender::sign(std::vector<Request> batch) {
  Signed s;
  s.requests = std::move(batch);
  s.firstSeq = seq_ + 1;
  s.startDigest = digest_;
  try {
    // The pass is one group: each event chained on the one before, then one
    // signature over the Merkle root of their digests.
    std::vector<Event*> group;
    std::vector<Digest> digests;
    for (auto& r : s.requests) {
      for (auto& e : r.appended.events) {
        e.signingKeyId = key_.keyId();
        e.writerSeq = ++seq_;
        e.prevDigest = digest_;
        digests.push_back(eventDigest(e));
        digest_.assign(reinterpret_cast<const char*>(digests.back().data()), digests.back().size());
        group.push_back(&e);
      }
    }
    if (!group.empty()) signGroup(group, digests, key_);
    for (auto& r : s.requests)
      for (auto& e : r.appended.events) {
        s.records.emplace_back(r.owner, encodeEvent(e));
        if (own_) own_->add(s.records.back().second);
      }
  } catch (...) {
    // Nothing of the pass is appended, so its numbers are not spent.
    s.error = std::current_exception();
    s.records.clear();
    seq_ = s.firstSeq - 1;
    digest_ = s.startDigest;
  }
  s.lastSeq = seq_;
  s.lastDigest = digest_;
  return s;
}

namespace {

bool recordedNothing(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const LogUnavailable& e) {
    return e.nothingRecorded();
  } catch (...) {
    return false;
  }
}

}  // namespace

bool SignedAppender::Batch::recordedNothing() const {
  return !appended || (error && tokenledger::recordedNothing(error));
}

// A new append may start: something is signed, there is room, and no append under
// way is known to have recorded nothing (what is signed now chains on it, and may
// be dropped when its numbers are given back).
bool SignedAppender::canStart() const {
  if (signed_.empty() || inFlight_.size() >= maxInFlight_) return false;
  for (const auto& b : inFlight_)
    if (b->done && b->appended && b->recordedNothing()) return false;
  return true;
}

// The oldest append's outcome can be taken: it is in, and when it recorded nothing,
// so are the outcomes of every append started after it (which chained on it).
bool SignedAppender::canFinish() const {
  if (inFlight_.empty() || !inFlight_.front()->done) return false;
  const Batch& first = *inFlight_.front();
  if (!first.appended || !first.recordedNothing()) return true;
  return std::all_of(inFlight_.begin(), inFlight_.end(), [](const auto& b) { return b->done; });
}

void SignedAppender::appendLoop() {
  std::unique_lock lock(mutex_);
  while (true) {
    appenderWake_.wait(lock, [&] {
      return canFinish() || canStart() || (signerDone_ && signed_.empty() && inFlight_.empty());
    });
    if (canFinish()) {
      std::shared_ptr<Batch> b = std::move(inFlight_.front());
      inFlight_.pop_front();
      // Give the numbers back only if nothing chained on them was recorded either.
      uint64_t givenBackThrough = 0;  // 0: nothing given back
      std::deque<std::shared_ptr<Batch>> droppedBatches;
      std::deque<Signed> droppedPasses;
      if (b->appended && b->recordedNothing() &&
          std::all_of(inFlight_.begin(), inFlight_.end(),
                      [](const auto& later) { return later->recordedNothing(); })) {
        const Signed& first = *std::find_if(b->passes.begin(), b->passes.end(),
                                            [](const Signed& s) { return !s.error; });
        rewind_ = std::make_pair(first.firstSeq - 1, first.startDigest);
        epoch_++;
        rewoundBy_ = b->error;
        // b's numbers and those of the appends under way after it.
        for (const auto& x : inFlight_)
          for (const auto& s : x->passes)
            if (!s.error) givenBackThrough = s.lastSeq;
        if (!givenBackThrough)
          for (const auto& s : b->passes)
            if (!s.error) givenBackThrough = s.lastSeq;
        droppedBatches.swap(inFlight_);
        droppedPasses.swap(signed_);
      }
      lock.unlock();
      finish(*b, givenBackThrough);
      // Chained on the numbers given back: failed with them (none of it recorded);
      // in signing order, the appends under way before the passes not yet started.
      for (auto it = droppedBatches.rbegin(); it != droppedBatches.rend(); ++it)
        for (auto s = (*it)->passes.rbegin(); s != (*it)->passes.rend(); ++s)
          droppedPasses.push_front(std::move(*s));
      for (auto& s : droppedPasses)
        for (auto& r : s.requests) r.appended.error = s.error ? s.error : b->error;
      for (auto& s : b->passes)
        for (auto& r : s.requests) r.done(r.appended);
      for (auto& s : droppedPasses)
        for (auto& r : s.requests) r.done(r.appended);
      lock.lock();
      continue;
    }
    if (canStart()) {
      auto b = std::make_shared<Batch>();
      b->passes.swap(signed_);
      inFlight_.push_back(b);
      lock.unlock();
      start(b);
      lock.lock();
      continue;
    }
    return;  // the signer ended, and everything it signed is appended and settled
  }
}

// On the appender thread, without the lock: everything signed since the last start
// goes in one append, in signing order.
void SignedAppender::start(const std::shared_ptr<Batch>& b) {
  std::vector<std::pair<std::string, std::string>> records;
  for (auto& s : b->passes) {
    if (s.error) continue;
    for (auto& r : s.records) records.push_back(std::move(r));
  }
  b->appended = !records.empty();
  if (!b->appended) {
    // Only failed passes: nothing to append.
    std::lock_guard lock(mutex_);
    b->done = true;
    return;
  }
  // The outcome may come at once (on this thread) or on the log's thread.
  log_.appendAsync(std::move(records),
                   [this, b](std::vector<Position> positions, std::exception_ptr error) {
                     {
                       std::lock_guard lock(mutex_);
                       b->positions = std::move(positions);
                       b->error = error;
                       b->done = true;
                     }
                     appenderWake_.notify_one();
                   });
}

// On the appender thread, without the lock: state_ is ours. Must not throw. Takes
// the outcome of `b`, the oldest append; `givenBackThrough` (0: none): its numbers
// were given back, with those of the appends after it up to this one.
void SignedAppender::finish(Batch& b, uint64_t givenBackThrough) {
  const Signed* first = nullptr;
  const Signed* last = nullptr;
  for (const auto& s : b.passes) {
    if (s.error) continue;
    if (!first) first = &s;
    last = &s;
  }
  const std::exception_ptr& error = b.error;
  if (givenBackThrough) {
    if (warn_)
      warn_("signing key " + key_.keyId() + ": append of writer sequence " +
            std::to_string(first->firstSeq) + "-" + std::to_string(givenBackThrough) +
            " recorded nothing; the sequence continues at " + std::to_string(first->firstSeq));
  } else if (last) {
    // Sequence numbers are never reused: after a failed append whose outcome is
    // unknown they are spent, and verify-log reports them missing if they never
    // landed; so are those of an append that recorded nothing but that later
    // appends, already under way, chained on.
    state_.lastSeq = last->lastSeq;
    state_.lastDigest = last->lastDigest;
    if (error && warn_) {
      if (recordedNothing(error))
        warn_("signing key " + key_.keyId() + ": append of writer sequence " +
              std::to_string(first->firstSeq) + "-" + std::to_string(last->lastSeq) +
              " recorded nothing, but appends chained on it were already under way; its "
              "numbers are spent and ledger-audit verify-log will report them missing");
      else
        warn_("signing key " + key_.keyId() + ": append of writer sequence " +
              std::to_string(first->firstSeq) + "-" + std::to_string(last->lastSeq) +
              " failed with an unknown outcome; events that did not reach the log will show "
              "as missing in ledger-audit verify-log");
    }
    if (!error) {
      for (const auto& p : b.positions) state_.scanFrom.advancePast(p.partition, p.offset);
    }
    unpersisted_ = true;
    if (error || clock_.now() - persistedAt_ >= kPersistEvery) persist();
  }
  size_t i = 0;
  for (auto& s : b.passes) {
    for (auto& r : s.requests) {
      if (s.error || error) {
        r.appended.error = s.error ? s.error : error;
      } else {
        for (size_t k = 0; k < r.appended.events.size(); ++k)
          r.appended.positions.push_back(b.positions[i++]);
      }
    }
  }
}

}  // namespace tokenledger
