// The embedded event log: one LMDB environment in DATA_DIR/log, in the format
// events/log_format.h defines.
#include <sys/statvfs.h>

#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "events/event_log.h"
#include "events/lmdb.h"
#include "events/log_format.h"

namespace tokenledger {
namespace {

class EmbeddedLog;

class EmbeddedReader final : public LogReader {
 public:
  EmbeddedReader(EmbeddedLog& log, NextOffset next) : log_(log), next_(next) {}
  std::vector<LogRecord> poll(size_t max, std::chrono::milliseconds wait) override;
  Offsets endOffsets() override;

 private:
  EmbeddedLog& log_;
  NextOffset next_;
};

class EmbeddedLog final : public EventLog {
 public:
  EmbeddedLog(const std::string& dir, const EmbeddedLogOptions& options)
      : dir_(dir), env_(dir, lmdb::EnvOptions{options.mapSizeBytes, 4, 1024}) {
    auto txn = lmdb::Txn::write(env_);
    events_ = txn.openDb(logformat::kEventsDb, 0, true);
    {
      lmdb::Cursor c(txn, events_);
      if (c.last()) end_ = after(logformat::offsetOf(c.key()).value_or(Offset{-1}));
    }
    txn.commit();
  }

  // One transaction (one fsync) per call. The daemon's only appender is the
  // signer's appending thread (events/signing.h), which already groups everything
  // queued meanwhile into one call, so appends need no grouping of their own here.
  std::vector<Position> append(std::string_view key,
                               const std::vector<std::string>& values) override {
    Request mine{key, &values, {}, {}};
    writeBatch({&mine});
    // A failed LMDB transaction leaves nothing behind.
    if (!mine.error.empty())
      throw LogUnavailable(mine.error, LogUnavailable::Outcome::nothingRecorded);
    return mine.positions;
  }

  // Many keys in one transaction (one fsync), in order.
  std::vector<Position> appendBatch(
      const std::vector<std::pair<std::string, std::string>>& records) override {
    std::vector<std::vector<std::string>> runs;
    std::vector<Request> requests;
    std::vector<Request*> queued;
    for (size_t i = 0; i < records.size(); ++i) {
      if (i == 0 || records[i].first != records[i - 1].first) runs.emplace_back();
      runs.back().push_back(records[i].second);
    }
    size_t at = 0;
    for (auto& run : runs) {
      requests.push_back(Request{records[at].first, &run, {}, {}});
      at += run.size();
    }
    for (auto& r : requests) queued.push_back(&r);
    writeBatch(queued);
    std::vector<Position> out;
    for (auto& r : requests) {
      if (!r.error.empty()) throw LogUnavailable(r.error, LogUnavailable::Outcome::nothingRecorded);
      out.insert(out.end(), r.positions.begin(), r.positions.end());
    }
    return out;
  }

  int32_t partitionCount() const override { return 1; }

  std::unique_ptr<LogReader> openReader(const Offsets& from) override {
    NextOffset next = from.of(Partition{0});
    return std::make_unique<EmbeddedReader>(*this, next);
  }

  std::string describe() const override { return "embedded log in " + dir_; }

  Offsets endOffsets() override { return Offsets{{end()}}; }

  std::optional<std::string> refusing() const override {
    std::lock_guard lock(mutex_);
    if (lastError_.empty()) return std::nullopt;
    return lastError_;
  }

  NextOffset end() {
    std::lock_guard lock(mutex_);
    return end_;
  }

  // Waits until the log extends past `next` or `wait` passes.
  void waitBeyond(NextOffset next, std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, wait, [&] { return end_ > next; });
  }

  std::vector<LogRecord> readFrom(NextOffset next, size_t max) {
    std::vector<LogRecord> out;
    auto txn = lmdb::Txn::read(env_);
    lmdb::Cursor c(txn, events_);
    for (bool ok = c.seek(logformat::recordKey(next.first())); ok && out.size() < max;
         ok = c.next()) {
      auto offset = logformat::offsetOf(c.key());
      auto record = offset ? logformat::unpackRecord(*offset, c.value()) : std::nullopt;
      if (!record)
        throw std::runtime_error("corrupt record in the " + describe() + " at offset " +
                                 std::to_string(offset.value_or(Offset{-1}).value) +
                                 "; restore the log from a copy");
      out.push_back(std::move(*record));
    }
    return out;
  }

 private:
  struct Request {
    std::string_view key;
    const std::vector<std::string>* values;
    std::vector<Position> positions;
    std::string error;
  };

  // One writer at a time (writeMutex_): LMDB has one write transaction anyway, and
  // end_ must advance in the order records land.
  void writeBatch(const std::vector<Request*>& batch) {
    std::lock_guard writing(writeMutex_);
    std::string error;
    NextOffset next = end();
    std::vector<std::vector<Position>> positions(batch.size());
    try {
      auto txn = lmdb::Txn::write(env_);
      for (size_t i = 0; i < batch.size(); ++i) {
        for (const auto& v : *batch[i]->values) {
          Offset at = next.first();
          txn.put(events_, logformat::recordKey(at), logformat::packRecord(batch[i]->key, v),
                  MDB_APPEND);
          positions[i].push_back(Position{Partition{0}, at});
          next = after(at);
        }
      }
      txn.commit();  // durable: the environment syncs on commit
      std::lock_guard lock(mutex_);
      end_ = next;
      lastError_.clear();
    } catch (const lmdb::LmdbError& e) {
      error = "cannot append to the " + describe() + ": " + e.what() + diskFullHint();
      std::lock_guard lock(mutex_);
      lastError_ = error;
    }
    changed_.notify_all();
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i]->positions = std::move(positions[i]);
      batch[i]->error = error;
    }
  }

  // LMDB reports a write that ran out of disk as EIO (a short write): say what it
  // most likely was when the disk has next to nothing left.
  std::string diskFullHint() const {
    struct statvfs st {};
    if (::statvfs(dir_.c_str(), &st) != 0) return "";
    uint64_t free = uint64_t{st.f_bavail} * st.f_frsize;
    if (free >= (1u << 20)) return "";
    return " (the disk holding " + dir_ + " is full: " + std::to_string(free >> 10) +
           " KB free; free disk space)";
  }

  std::string dir_;
  lmdb::Env env_;
  MDB_dbi events_ = 0;
  std::mutex writeMutex_;
  mutable std::mutex mutex_;  // guards end_ and lastError_
  std::string lastError_;     // of the last append, when it failed
  std::condition_variable changed_;
  NextOffset end_;
};

std::vector<LogRecord> EmbeddedReader::poll(size_t max, std::chrono::milliseconds wait) {
  if (log_.end() <= next_) log_.waitBeyond(next_, wait);
  if (log_.end() <= next_) return {};
  auto records = log_.readFrom(next_, max);
  if (!records.empty()) next_ = after(records.back().position.offset);
  return records;
}

Offsets EmbeddedReader::endOffsets() {
  return Offsets{{log_.end()}};
}

}  // namespace

std::unique_ptr<EventLog> openEmbeddedLog(const std::string& dir,
                                          const EmbeddedLogOptions& options) {
  return std::make_unique<EmbeddedLog>(dir, options);
}

std::string toString(const Position& p) {
  std::string out;
  return toString(p, out);
}

const std::string& toString(const Position& p, std::string& out) {
  char buf[48];
  char* end = std::to_chars(buf, buf + 20, p.partition.value).ptr;
  *end++ = ':';
  end = std::to_chars(end, buf + sizeof buf, p.offset.value).ptr;
  out.assign(buf, end);
  return out;
}

namespace {

// "p:n": a partition and a number, the text of both a position (n: the record's
// offset) and an entry of Offsets (n: the next offset).
std::optional<std::pair<Partition, int64_t>> parsePair(std::string_view s) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) return std::nullopt;
  int64_t part = 0;
  for (char c : s.substr(0, colon)) {
    if (c < '0' || c > '9' || part > 100000) return std::nullopt;
    part = part * 10 + (c - '0');
  }
  int64_t n = 0;
  for (char c : s.substr(colon + 1)) {
    if (c < '0' || c > '9' || n > (INT64_MAX - 9) / 10) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return std::make_pair(Partition{static_cast<int32_t>(part)}, n);
}

}  // namespace

std::optional<Position> parsePosition(std::string_view s) {
  auto pair = parsePair(s);
  if (!pair) return std::nullopt;
  return Position{pair->first, Offset{pair->second}};
}

std::string Offsets::toString() const {
  std::string out;
  for (size_t i = 0; i < next.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(i) + ":" + std::to_string(next[i].value);
  }
  return out;
}

std::optional<Offsets> Offsets::parse(std::string_view s) {
  Offsets out;
  while (!s.empty()) {
    auto comma = s.find(',');
    auto pair = parsePair(s.substr(0, comma));
    if (!pair || pair->first.index() != out.next.size()) return std::nullopt;
    out.next.push_back(NextOffset{pair->second});
    if (comma == std::string_view::npos) break;
    s = s.substr(comma + 1);
    if (s.empty()) return std::nullopt;
  }
  if (out.next.empty()) return std::nullopt;
  return out;
}

}  // namespace tokenledger
