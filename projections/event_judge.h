// The projection's verdict on each event, in memory and in log order: for tools that
// replay the log without a read model (ledger-audit's history, at and policy). The
// rules and their order are batch_apply's: untrusted (events/trust.h), a duplicate
// event id, a broken contract (checkEvent), a repeated request (idempotency.h), a
// lost race (conflictOf), an event that does not apply (applyEvent). A test feeds
// the same log to both and compares (tests/unit/event_judge_test.cpp).
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "events/event.h"
#include "events/event_log.h"
#include "events/trust.h"
#include "projections/idempotency.h"
#include "projections/token.h"

namespace tokenledger {

class EventJudge {
 public:
  // Without a policy every well-formed event is trusted (as a read model without
  // ReadModelOptions::trust).
  explicit EventJudge(std::optional<TrustPolicy> trust);

  struct Verdict {
    bool applied = false;
    bool certificate = false;  // a writer certificate (never a token's event)
    std::string why;           // when not applied: why, for the audit's notes
  };
  // Judges `e`, decoded from `r`, and applies it when it applies. `check` is the
  // record's signature check when the caller made it already (checks are the
  // expensive part; see checkAll), else the judge makes it.
  Verdict judge(const LogRecord& r, const Event& e, const SignatureCheck* check = nullptr);

  // The keys a signature may be checked against now (for checks made in advance).
  const KeyRing& knownKeys() const;
  // Every token's state so far, with replacedBy as the read model has it.
  const std::unordered_map<std::string, Token>& tokens() const { return tokens_; }

 private:
  std::optional<WriterTrust> trust_;
  SignatureVerifier verifier_;
  KeyRing none_;
  std::unordered_map<std::string, Token> tokens_;
  std::unordered_set<std::string> seenIds_;
  std::unordered_map<std::string, IdempotencyRecord> claims_;  // owner \0 key
};

}  // namespace tokenledger
