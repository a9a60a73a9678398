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
#include "projections/event_judge.h"
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
  // The projection's state of every token, by its verdicts (projections/event_judge.h).
  EventJudge judge(trustPolicyOf(o));
  SignatureChecker signatures;
  std::vector<LogRecord> chunk;
  // Signatures, the expensive part, are checked on every core a chunk at a time.
  auto drain = [&] {
    auto checks = signatures.check(chunk, judge.knownKeys());
    for (size_t i = 0; i < chunk.size(); ++i)
      if (const Event* e = decoder.decode(chunk[i])) judge.judge(chunk[i], *e, &checks[i]);
    chunk.clear();
  };
  replay(*source, o.quiet, [&](const LogRecord& r) {
    chunk.push_back(r);
    if (chunk.size() >= 4096) drain();
  });
  drain();
  decoder.summary();
  const auto& tokens = judge.tokens();
  std::map<std::string, std::vector<const Token*>> byUser;
  for (const auto& [key, t] : tokens) {
    if (statusAt(t, now) != Status::active) continue;
    if (!t.replacedBy.empty()) continue;  // rotated, in its grace period
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
