// ledger-audit verify-log: tamper evidence from the log itself. Every signature is
// checked against the trusted keys (on every core); what concerns the log as a
// whole (deleted records, unreadable envelopes) is checked here, each writer's
// chain by WriterChainChecker (writer_chain.h), and a checkpoint of the last clean
// run is compared and, when all is well, rewritten.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "events/event.h"
#include "events/signing.h"
#include "tools/checkpoint.h"
#include "tools/ledger_audit_commands.h"
#include "tools/ledger_audit_replay.h"
#include "tools/ledger_audit_text.h"
#include "tools/writer_chain.h"

namespace tokenledger::audit {
namespace {

namespace fs = std::filesystem;

// The checkpoint in `path`; nullopt when there is no file yet (the first run).
// Throws UsageError when the file is not a checkpoint.
std::optional<Checkpoint> readCheckpoint(const std::string& path) {
  if (!fs::exists(path)) return std::nullopt;
  auto text = std::optional<std::string>(readTextFile(path, "checkpoint"));
  auto parsed = parseCheckpoint(*text);
  if (auto* err = std::get_if<std::string>(&parsed))
    throw UsageError("checkpoint " + path + " is not a ledger-audit checkpoint: " + *err +
                     "; restore it from your copy, or pass a new --checkpoint FILE to start over");
  return std::get<Checkpoint>(std::move(parsed));
}

// Replaces `path` (through a temporary file and a rename, so a crash leaves the old
// one) with what this run saw. Throws std::runtime_error when it cannot write.
void writeCheckpoint(const std::string& path, const std::string& log, const Offsets& end,
                     const std::map<std::string, WriterChainChecker::Writer>& writers) {
  Checkpoint checkpoint{end, {}};
  std::map<std::string, Position> positions;
  for (const auto& [id, w] : writers) {
    if (w.lastSeq == 0) continue;
    checkpoint.writers[id] = {w.lastSeq, digestHex(w.lastDigest)};
    positions[id] = w.lastPosition;
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << formatCheckpoint(checkpoint, log, now(), positions);
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, path);
}

// The checks of the log as a whole, record by record in log order per partition:
// records deleted from a partition, and envelopes that are not validly signed
// events.
class LogChecker {
 public:
  explicit LogChecker(const LogSource& source)
      : dense_(source.denseOffsets()), expected_(source.start()) {
    for (size_t p = 0; p < expected_.next.size(); ++p) {
      if (expected_.next[p].value > 0) {
        findings_.push_back({Position{Partition{static_cast<int32_t>(p)}, Offset{0}}, true,
                             "missing",
                             "partition " + std::to_string(p) + " starts at offset " +
                                 std::to_string(expected_.next[p].value) +
                                 ": the records before it were deleted (retention or tampering)"});
      }
    }
  }

  // True when the record is validly signed by a writer trusted where it lies, for
  // the writer checks. `trust` learns the certificates in log order.
  bool add(const LogRecord& r, SignatureCheck& c, WriterTrust& trust) {
    const Position& pos = r.position;
    // The record every reader expects here is the one at the next offset.
    Offset expected = expected_.of(pos.partition).first();
    if (dense_ && pos.offset != expected)
      findings_.push_back({pos, true, "missing",
                           "records at offsets " + std::to_string(expected.value) + ".." +
                               std::to_string(pos.offset.value - 1) + " of partition " +
                               std::to_string(pos.partition.value) + " are gone from the log"});
    expected_.advancePast(pos.partition, pos.offset);
    // A writer certificate: the root's signature is its authority (events/trust.h).
    if (c.status == SignatureStatus::unsignedEvent) {
      auto decoded = decodeEvent(r.value);
      if (const Event* e = std::get_if<Event>(&decoded);
          e && std::holds_alternative<WriterCertificate>(e->body)) {
        // Without --root nothing can be certified: the keys given are trusted
        // everywhere, and certificates are only counted.
        if (trust.policy().roots.keys().empty()) {
          uncheckedCertificates_++;
          return false;
        }
        auto admitted = trust.admitCertificate(pos.partition, *e);
        if (auto* why = std::get_if<std::string>(&admitted))
          findings_.push_back({pos, true, "untrusted", *why});
        return false;
      }
    }
    // Signed by a key certified in this chunk: checked now that it is known.
    if (c.status == SignatureStatus::unknownKey && trust.knownKeys().find(c.keyId))
      c = checkSignature(r.value, trust.knownKeys());
    switch (c.status) {
      case SignatureStatus::malformed:
        findings_.push_back({pos, true, "malformed", "not a readable event envelope"});
        return false;
      case SignatureStatus::unsignedEvent:
        findings_.push_back({pos, true, "unsigned", "the event carries no signature"});
        return false;
      case SignatureStatus::unknownKey:
        findings_.push_back({pos, true, "forged",
                             "signed by key \"" + printable(c.keyId) +
                                 "\", which is not among the trusted keys (another producer?)"});
        return false;
      case SignatureStatus::invalid:
        findings_.push_back({pos, true, "altered",
                             "the signature by key " + c.keyId + " (writer seq " +
                                 std::to_string(c.writerSeq) +
                                 ") does not match the event's content"});
        return false;
      case SignatureStatus::valid:
        break;
    }
    if (auto why = trust.refusal(pos.partition, c)) {
      findings_.push_back({pos, true, "forged", *why});
      return false;
    }
    auto decoded = decodeEventView(r.value);  // refuses what decodeEvent refuses, no copies
    if (auto* err = std::get_if<DecodeError>(&decoded);
        err && err->kind == DecodeError::Kind::malformed) {
      findings_.push_back(
          {pos, true, "malformed", "signed, but not a valid event: " + printable(err->message)});
    }
    return true;
  }

  // A partition that ends before the checkpoint's end lost its newest records.
  void compareEnd(const Checkpoint& checkpoint, const Offsets& end) {
    for (size_t p = 0; p < checkpoint.end.next.size(); ++p) {
      Partition part{static_cast<int32_t>(p)};
      NextOffset now = end.of(part);
      if (now < checkpoint.end.next[p])
        findings_.push_back({Position{part, now.first()}, true, "missing",
                             "partition " + std::to_string(p) + " ended at offset " +
                                 std::to_string(checkpoint.end.next[p].value) +
                                 " at the checkpoint and ends at " + std::to_string(now.value) +
                                 " now: its newest records were deleted"});
    }
  }

  const std::vector<Finding>& findings() const { return findings_; }
  size_t uncheckedCertificates() const { return uncheckedCertificates_; }

 private:
  bool dense_;
  Offsets expected_;  // per partition: the offset of the record that comes next
  std::vector<Finding> findings_;
  size_t uncheckedCertificates_ = 0;
};

}  // namespace

int cmdVerifyLog(const Options& o, const std::string& checkpointPath) {
  // The replicas' policy; for an embedded log without one, its signing keys: every
  // event must be signed by one of them.
  auto policy = trustPolicyOf(o);
  WriterTrust trust(policy ? std::move(*policy) : signingKeysOf(o));
  std::optional<Checkpoint> checkpoint;
  if (!checkpointPath.empty()) checkpoint = readCheckpoint(checkpointPath);

  auto source = openSource(o);
  WriterChainChecker writers;
  LogChecker log(*source);
  // Signatures are checked on every core; the order checks run in log order.
  SignatureChecker signatures;
  std::vector<LogRecord> chunk;
  auto drain = [&] {
    auto checks = signatures.check(chunk, trust.knownKeys());
    for (size_t i = 0; i < chunk.size(); ++i)
      if (log.add(chunk[i], checks[i], trust)) writers.add(chunk[i].position, checks[i]);
    chunk.clear();
  };
  uint64_t records = replay(*source, o.quiet, [&](const LogRecord& r) {
    chunk.push_back(r);
    if (chunk.size() >= 4096) drain();
  });
  drain();
  Offsets end = source->end();
  writers.finish(checkpoint);
  if (checkpoint) log.compareEnd(*checkpoint, end);

  // At one position the log's findings come first: they were found first.
  std::vector<Finding> findings = log.findings();
  findings.insert(findings.end(), writers.findings().begin(), writers.findings().end());
  sortFindings(findings);
  std::cout << "read " << records << " records from the " << source->describe() << "\n";
  for (const auto& [id, w] : writers.writers())
    std::cout << "writer " << id << ": " << w.events << " events, seq 1.." << w.lastSeq << "\n";
  if (log.uncheckedCertificates())
    std::cout << log.uncheckedCertificates()
              << " writer certificates not checked (no --root: only the --keys are trusted)\n";
  if (findings.empty()) {
    std::cout << "OK: every event is signed by a trusted key, and each writer's events are "
                 "complete and in order (up to its newest event)\n";
    if (!checkpointPath.empty()) {
      writeCheckpoint(checkpointPath, source->describe(), end, writers.writers());
      std::cout << "checkpoint written to " << checkpointPath << "\n";
    }
    return 0;
  }
  const auto& first = findings.front();
  std::cout << "FAILED: " << findings.size() << " problems; first bad event: "
            << (first.hasPosition ? toString(first.position) : std::string("(end of log)")) << " ("
            << first.kind << ")\n";
  for (const auto& f : findings)
    std::cout << (f.hasPosition ? toString(f.position) : std::string("-")) << "  " << f.kind << ": "
              << f.message << "\n";
  if (!checkpointPath.empty()) std::cout << "checkpoint not updated\n";
  return 1;
}

}  // namespace tokenledger::audit
