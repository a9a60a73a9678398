#include "events/writer_state.h"

#include <algorithm>
#include <sstream>

#include "events/secrets.h"
#include "events/signing.h"

namespace tokenledger {

std::string formatWriterState(const std::string& keyId, const WriterState& state) {
  return keyId + " " + std::to_string(state.lastSeq) + " " +
         (state.lastDigest.empty() ? std::string("-") : toHex(state.lastDigest)) + " " +
         (state.scanFrom.next.empty() ? std::string("-") : state.scanFrom.toString()) + "\n";
}

std::optional<WriterState> parseWriterState(std::string_view text, const std::string& keyId) {
  std::istringstream in{std::string(text)};
  std::string id, seq, digest, offsets;
  if (!(in >> id >> seq >> digest >> offsets) || id != keyId) return std::nullopt;
  WriterState st;
  if (seq.empty() || seq.size() > 19 || seq.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  st.lastSeq = std::stoull(seq);
  if (digest != "-") {
    auto d = fromHex(digest);
    if (!d || d->size() != 32) return std::nullopt;
    st.lastDigest = *d;
  }
  if (offsets != "-") {
    auto o = Offsets::parse(offsets);
    if (!o) return std::nullopt;
    st.scanFrom = *o;
  }
  return st;
}

WriterState recoverWriterState(EventLog& log, const std::string& keyId, WriterState state) {
  Offsets from = state.scanFrom;
  from.next.resize(static_cast<size_t>(log.partitionCount()));
  auto reader = log.openReader(from);
  Offsets end = reader->endOffsets();
  Offsets seen = from;
  auto reached = [&] { return seen.covers(end); };
  KeyRing none;
  while (!reached()) {
    for (const auto& r : reader->poll(4096, std::chrono::milliseconds(500))) {
      seen.advancePast(r.position.partition, r.position.offset);
      auto check = checkSignature(r.value, none);
      if (check.status == SignatureStatus::malformed || check.keyId != keyId) continue;
      if (check.writerSeq > state.lastSeq) {
        state.lastSeq = check.writerSeq;
        state.lastDigest.assign(reinterpret_cast<const char*>(check.digest.data()),
                                check.digest.size());
      }
    }
  }
  state.scanFrom = end;
  return state;
}

}  // namespace tokenledger
