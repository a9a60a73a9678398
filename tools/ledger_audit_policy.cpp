// ledger-audit policy: tokens active longer than the allowed age without rotation,
// or unused for a number of days, from the projection's state of every token (not
// kept per event, so it scales to long logs) and, for use, the usage store of a data
// directory or the usage topic.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "events/times.h"
#include "events/usage_store.h"
#include "events/usage_topic.h"
#include "projections/event_judge.h"
#include "projections/token.h"
#include "tools/ledger_audit_commands.h"
#include "tools/ledger_audit_replay.h"
#include "tools/ledger_audit_text.h"

namespace tokenledger::audit {

using nlohmann::json;

namespace {

// Replays the log into the projection's state of every token and hands it to `f`;
// false when malformed events were met.
template <typename F>
bool withTokens(const Options& o, F f) {
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
  f(judge.tokens());
  return decoder.clean();
}

// Active and not rotated (one in its grace period goes soon anyway).
bool activeUnrotated(const Token& t, Timestamp now) {
  return statusAt(t, now) == Status::active && t.replacedBy.empty();
}

}  // namespace

int cmdPolicy(const Options& o, std::chrono::days maxAge, Timestamp now,
              const std::string& format) {
  std::map<std::string, std::vector<Token>> byUser;
  bool clean = withTokens(o, [&](const auto& tokens) {
    for (const auto& [key, t] : tokens)
      if (activeUnrotated(t, now) && now - t.createdAt > maxAge) byUser[t.owner].push_back(t);
  });
  size_t count = 0;
  for (auto& [user, list] : byUser) {
    std::sort(list.begin(), list.end(),
              [](const Token& a, const Token& b) { return a.createdAt < b.createdAt; });
    if (format != "json") std::cout << "user " << printable(user) << ":\n";
    for (const Token& token : list) {
      const Token* t = &token;
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
  return count == 0 && clean ? 0 : 1;
}

std::map<std::string, LastUse, std::less<>> usageOf(const Options& o,
                                                    const std::string& usageTopic) {
  if (o.log == "kafka")
    return readUsageTopic(o.kafka.brokers,
                          usageTopic.empty() ? o.kafka.topic + ".usage" : usageTopic,
                          o.kafka.timeoutMs);
  std::string dir = o.dataDir + "/usage";
  if (!std::filesystem::exists(dir + "/data.mdb")) {
    std::cerr << "ledger-audit: no usage store in " << dir
              << " (tokenledgerd with --last-used on makes it): no token counts as used\n";
    return {};
  }
  return UsageStore(dir, true).all();
}

int cmdUnused(const Options& o, std::chrono::days days, Timestamp now, const std::string& format,
              const std::string& usageTopic) {
  auto uses = usageOf(o, usageTopic);
  struct Unused {
    Token token;
    std::optional<LastUse> use;
    Timestamp since;  // the last use's minute, or the creation when never used
  };
  std::map<std::string, std::vector<Unused>> byUser;
  bool clean = withTokens(o, [&](const auto& tokens) {
    for (const auto& [key, t] : tokens) {
      if (!activeUnrotated(t, now)) continue;
      auto it = uses.find(key);
      std::optional<LastUse> use;
      if (it != uses.end()) use = it->second;
      // Never used: unused since its creation, so a token younger than `days` is not
      // listed yet.
      Timestamp since = use ? startOfMinute(use->minute) : t.createdAt;
      if (now - since >= days) byUser[t.owner].push_back({t, use, since});
    }
  });
  size_t count = 0;
  for (auto& [user, list] : byUser) {
    std::sort(list.begin(), list.end(),
              [](const Unused& a, const Unused& b) { return a.since < b.since; });
    if (format != "json") std::cout << "user " << printable(user) << ":\n";
    for (const Unused& u : list) {
      ++count;
      const Token& t = u.token;
      int64_t idle = (now - u.since) / std::chrono::days{1};
      if (format == "json") {
        json j{{"owner", user},
               {"key", t.key},
               {"kind", std::string(toString(t.kind))},
               {"description", t.description},
               {"created_at", formatTime(t.createdAt)},
               {"unused_days", idle}};
        if (u.use) {
          j["last_used_at"] = formatTime(startOfMinute(u.use->minute));
          j["last_used_count"] = u.use->count;
        }
        std::cout << dumpJson(j) << "\n";
      } else {
        std::cout << "  " << t.key << "  " << toString(t.kind) << "  "
                  << (u.use ? "last used " + formatTime(u.since)
                            : "never used, created " + formatTime(t.createdAt))
                  << "  " << idle << " days unused  \"" << printable(t.description) << "\"\n";
      }
    }
  }
  if (format != "json") {
    if (count == 0)
      std::cout << "every active token was used within the last " << days.count() << " days\n";
    else
      std::cout << count << " active tokens of " << byUser.size() << " users are unused for "
                << days.count() << " days or more: deactivate those nobody needs\n";
  }
  return count == 0 && clean ? 0 : 1;
}

}  // namespace tokenledger::audit
