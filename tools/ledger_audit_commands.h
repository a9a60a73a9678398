// ledger-audit's commands (docs/audit.md), one function each, called by main()
// once the command line is checked. Each prints its answer on stdout and returns
// the exit status: 0 ok, 1 a negative answer or a problem found (including
// unreadable records, reported on stderr with their position). Each throws
// UsageError (exit 2) for input it cannot use or a log it cannot open,
// Interrupted on Ctrl-C (exit 130) and std::runtime_error when the log fails.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "events/times.h"
#include "tools/ledger_audit.h"

namespace tokenledger::audit {

// ledger_audit_history.cpp: every token of `user` (or only `key`'s lineage) with its
// events and rotations; format text, json or csv.
int cmdHistory(const Options& o, const std::string& user, const std::string& key,
               const std::string& format);
// ledger_audit_history.cpp: whether `key` (or each token of `user`) was valid at
// `time`, and the event that decided it; exit 1 if not (none) valid.
int cmdAt(const Options& o, const std::string& user, const std::string& key, Timestamp time,
          const std::string& format);

// ledger_audit_policy.cpp: tokens active longer than `maxAgeDays` at `now` without
// rotation, per user; exit 1 if any.
int cmdPolicy(const Options& o, std::chrono::days maxAge, Timestamp now, const std::string& format);
// ledger_audit_policy.cpp: active tokens whose last use (to the minute; never used:
// their creation) is `days` or more before `now`, per user; exit 1 if any. Uses come
// from DIR/usage (read-only) or, on Kafka, the usage topic (empty: TOPIC.usage).
int cmdUnused(const Options& o, std::chrono::days days, Timestamp now, const std::string& format,
              const std::string& usageTopic);

// ledger_audit_projection.cpp: a read model built from the log in `out`, which must
// not hold one (UsageError); `out` is removed again when interrupted and it was new.
int cmdRebuild(const Options& o, const std::string& out);
// ledger_audit_projection.cpp: every difference between the read model in `dir` (a
// UsageError when there is none) and a replay up to its applied positions.
int cmdVerifyProjection(const Options& o, const std::string& dir);

// ledger_audit_verify_log.cpp: signatures, and whether each is by a writer trusted
// where it lies (trustPolicyOf), each writer's order and completeness, and the
// checkpoint in `checkpointPath` (UsageError when it is not one), which is
// rewritten when all is well.
int cmdVerifyLog(const Options& o, const std::string& checkpointPath);

// ledger_audit_keys.cpp: a new root key in `out` (0600) and `out`.pub; UsageError
// when either exists.
int cmdKeysNewRoot(const std::string& out);
// ledger_audit_keys.cpp: the certificate of `writerKeyLine` ("KEY_ID BASE64") by the
// root key in `rootFile`, written to `out`; UsageError for unusable input.
int cmdKeysCertify(const std::string& rootFile, const std::string& writerKeyLine,
                   const std::string& out);

}  // namespace tokenledger::audit
