// ledger-audit policy: tokens active longer than the allowed age without rotation,
// from the projection's state of every token (not kept per event, so it scales to
// long logs).
#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "events/times.h"
#include "projections/token.h"
#include "tools/ledger_audit_commands.h"
#include "tools/ledger_audit_replay.h"
#include "tools/ledger_audit_text.h"

namespace tokenledger::audit {

using nlohmann::json;

int cmdPolicy(const Options& o, std::chrono::days maxAge, Timestamp now,
              const std::string& format) {
  auto source = openSource(o);
  Decoder decoder;
  // Only what the policy needs per token: the projection's state.
  std::unordered_map<std::string, Token> tokens;
  std::unordered_set<std::string> seenIds;
  std::unordered_map<std::string, std::string> replacedBy;
  replay(*source, o.quiet, [&](const LogRecord& r) {
    const Event* e = decoder.decode(r);
    if (!e || !seenIds.insert(e->eventId).second) return;
    auto it = tokens.find(e->tokenKey);
    std::optional<Token> current;
    if (it != tokens.end()) current = std::move(it->second);  // put back below
    auto next = applyEvent(current, *e);
    if (!next) {
      if (current) it->second = std::move(*current);
      return;
    }
    if (!current && !next->replaces.empty()) replacedBy[next->replaces] = next->key;
    if (it != tokens.end())
      it->second = std::move(*next);
    else
      tokens.emplace(e->tokenKey, std::move(*next));
  });
  decoder.summary();
  std::map<std::string, std::vector<const Token*>> byUser;
  for (const auto& [key, t] : tokens) {
    if (statusAt(t, now) != Status::active) continue;
    auto succ = replacedBy.find(key);
    if (succ != replacedBy.end() && tokens.count(succ->second) &&
        tokens.at(succ->second).owner == t.owner)
      continue;  // rotated, in its grace period
    if (now - t.createdAt > maxAge) byUser[t.owner].push_back(&t);
  }
  size_t count = 0;
  for (auto& [user, list] : byUser) {
    std::sort(list.begin(), list.end(),
              [](const Token* a, const Token* b) { return a->createdAt < b->createdAt; });
    if (format != "json") std::cout << "user " << printable(user) << ":\n";
    for (const Token* t : list) {
      ++count;
      int64_t days = (now - t->createdAt) / std::chrono::days{1};
      if (format == "json") {
        std::cout << dumpJson(json{{"owner", user},
                                   {"key", t->key},
                                   {"kind", std::string(toString(t->kind))},
                                   {"description", t->description},
                                   {"created_at", formatTime(t->createdAt)},
                                   {"age_days", days}})
                  << "\n";
      } else {
        std::cout << "  " << t->key << "  " << toString(t->kind) << "  created "
                  << formatTime(t->createdAt) << "  " << days << " days without rotation  \""
                  << printable(t->description) << "\"\n";
      }
    }
  }
  if (format != "json") {
    if (count == 0)
      std::cout << "no token has been active longer than " << maxAge.count()
                << " days without rotation\n";
    else
      std::cout << count << " tokens of " << byUser.size() << " users are active longer than "
                << maxAge.count() << " days without rotation: rotate them\n";
  }
  return count == 0 && decoder.clean() ? 0 : 1;
}

}  // namespace tokenledger::audit
