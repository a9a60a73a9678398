#include "tools/checkpoint.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "events/secrets.h"
#include "events/times.h"

namespace tokenledger::audit {
namespace {

using nlohmann::json;

bool isLowerHex(std::string_view s, size_t length) {
  if (s.size() != length) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// A name from the file, quoted and escaped (it may hold anything) and cut short.
std::string quotedName(std::string_view name) {
  constexpr size_t kMax = 40;
  std::string cut(name.substr(0, kMax));
  std::string out = json(cut).dump(-1, ' ', false, json::error_handler_t::replace);
  return name.size() > kMax ? out + "…" : out;
}

}  // namespace

std::variant<Checkpoint, std::string> parseCheckpoint(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::string("not valid JSON");
  if (!j.is_object()) return std::string("not a JSON object");
  if (auto v = j.find("version");
      v != j.end() && !(v->is_number_unsigned() && v->get<uint64_t>() == 1))
    return std::string("\"version\" is not 1 (written by a newer ledger-audit?)");

  Checkpoint c;
  auto end = j.find("end");
  if (end == j.end()) return std::string("no \"end\" (the log's end offsets)");
  std::optional<Offsets> offsets;
  if (end->is_string()) offsets = Offsets::parse(end->get_ref<const std::string&>());
  if (!offsets) return std::string("\"end\" must be a string of offsets \"0:N[,1:N…]\"");
  c.end = std::move(*offsets);

  auto writers = j.find("writers");
  if (writers == j.end() || !writers->is_object())
    return std::string("no \"writers\" object (key id → seq and digest)");
  for (const auto& [id, w] : writers->items()) {
    std::string where = "writer " + quotedName(id);
    if (!isLowerHex(id, 16)) return where + ": a key id is 16 lower-case hex characters";
    if (!w.is_object()) return where + ": not an object with \"seq\" and \"digest\"";
    auto seq = w.find("seq");
    // seq 0 does not exist (a writer's first event is seq 1), and the comparison
    // with the log would index seq - 1.
    if (seq == w.end() || !seq->is_number_unsigned() || seq->get<uint64_t>() == 0)
      return where + ": \"seq\" must be a whole number from 1";
    auto digest = w.find("digest");
    if (digest == w.end() || !digest->is_string() ||
        !isLowerHex(digest->get_ref<const std::string&>(), 64))
      return where + ": \"digest\" must be 64 lower-case hex characters";
    c.writers[id] = {seq->get<uint64_t>(), digest->get<std::string>()};
  }
  return c;
}

std::string formatCheckpoint(const Checkpoint& checkpoint, const std::string& log,
                             Timestamp writtenAt,
                             const std::map<std::string, Position>& positions) {
  json w = json::object();
  for (const auto& [id, last] : checkpoint.writers)
    w[id] = json{
        {"seq", last.first}, {"digest", last.second}, {"position", toString(positions.at(id))}};
  json j{{"version", 1},
         {"log", log},
         {"end", checkpoint.end.toString()},
         {"written_at", formatTime(writtenAt)},
         {"writers", w}};
  return j.dump(2) + "\n";
}

std::string digestHex(const Digest& digest) {
  return toHex(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

}  // namespace tokenledger::audit
