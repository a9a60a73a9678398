#include "events/signed_appender.h"

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
      digest_(state_.lastDigest) {
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
    signedReady_.notify_one();
  }
  signerDone_ = true;
  signedReady_.notify_one();
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

void SignedAppender::appendLoop() {
  std::deque<Signed> ready;
  std::unique_lock lock(mutex_);
  while (true) {
    signedReady_.wait(lock, [&] { return signerDone_ || !signed_.empty(); });
    if (signed_.empty()) return;  // the signer ended, and everything it signed is written
    ready.swap(signed_);
    lock.unlock();
    write(ready);
    for (auto& s : ready)
      for (auto& r : s.requests) r.done(r.appended);
    ready.clear();
    lock.lock();
  }
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

// On the appender thread: state_ is ours. Must not throw. Everything signed since
// the last append goes in one append, in signing order.
void SignedAppender::write(std::deque<Signed>& ready) {
  std::vector<std::pair<std::string, std::string>> records;
  const Signed* last = nullptr;  // the last pass that is appended now
  for (auto& s : ready) {
    if (s.error) continue;
    for (auto& r : s.records) records.push_back(std::move(r));
    last = &s;
  }
  bool oneOwner = true;
  for (const auto& r : records) oneOwner = oneOwner && r.first == records.front().first;
  std::vector<Position> positions;
  std::exception_ptr error;
  try {
    if (records.empty()) {
      // Only dropped passes.
    } else if (oneOwner) {
      std::vector<std::string> values;
      for (auto& rec : records) values.push_back(std::move(rec.second));
      positions = log_.append(records.front().first, values);
    } else {
      positions = log_.appendBatch(records);
    }
  } catch (...) {
    error = std::current_exception();
  }
  const Signed* first = nullptr;
  for (const auto& s : ready)
    if (!s.error && !first) first = &s;
  std::deque<Signed> dropped;
  if (last && error && recordedNothing(error)) {
    // The log took none of it: give the numbers back. What the signer signed since
    // chained on these events, so it fails with them (none of it was appended).
    {
      std::lock_guard lock(mutex_);
      rewind_ = std::make_pair(first->firstSeq - 1, first->startDigest);
      epoch_++;
      rewoundBy_ = error;
      dropped.swap(signed_);
    }
    if (warn_)
      warn_("signing key " + key_.keyId() + ": append of writer sequence " +
            std::to_string(first->firstSeq) + "-" + std::to_string(last->lastSeq) +
            " recorded nothing; the sequence continues at " + std::to_string(first->firstSeq));
  } else if (last) {
    // Sequence numbers are never reused: after a failed append whose outcome is
    // unknown they are spent, and verify-log reports them missing if they never landed.
    state_.lastSeq = last->lastSeq;
    state_.lastDigest = last->lastDigest;
    if (error && warn_)
      warn_("signing key " + key_.keyId() + ": append of writer sequence " +
            std::to_string(first->firstSeq) + "-" + std::to_string(last->lastSeq) +
            " failed with an unknown outcome; events that did not reach the log will show as "
            "missing in ledger-audit verify-log");
    if (!error) {
      for (const auto& p : positions) state_.scanFrom.advancePast(p.partition, p.offset);
    }
    unpersisted_ = true;
    if (error || clock_.now() - persistedAt_ >= kPersistEvery) persist();
  }
  size_t i = 0;
  for (auto& s : ready) {
    for (auto& r : s.requests) {
      if (s.error || error) {
        r.appended.error = s.error ? s.error : error;
      } else {
        for (size_t k = 0; k < r.appended.events.size(); ++k)
          r.appended.positions.push_back(positions[i++]);
      }
    }
  }
  for (auto& s : dropped) {
    for (auto& r : s.requests) r.appended.error = s.error ? s.error : error;
    ready.push_back(std::move(s));  // the caller runs their callbacks after these
  }
}

}  // namespace tokenledger
