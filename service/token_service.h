// Command handling: validates a command against the read model, appends its
// events to the log and returns once the read model shows them (read-your-writes).
//
// One TokenService per thread (it owns a read-model reader). Threads share a
// KeyLocks: a command holds its token's lock from validation until its events are
// visible, so "validate, then append" is race-free per token while commands on
// different tokens (every create) run concurrently.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "events/clock.h"
#include "events/event_log.h"
#include "events/rules.h"
#include "events/signed_appender.h"
#include "projections/projector.h"
#include "projections/read_model.h"
#include "projections/token.h"
#include "service/error.h"

namespace tokenledger {

struct CommandContext {
  std::string actor = "operator";
  std::string requestId;
};

// A command's refusal: a stable machine code and a message that says what to do
// (service/error.h; the API gives it its HTTP status). Every command may also fail
// the way an append does:
//   before anything is recorded: read_model_full, disk_full, busy or
//     projection_failing (the read model has no room for the events, or cannot apply
//     them: Projector::admit), or log_unavailable (the log refused the append and
//     recorded nothing);
//   with the outcome unknown: log_unavailable (the log cannot tell whether it
//     recorded the events), or, from startCreate, unavailable (the append failed
//     some other way; TokenService's commands let that exception through);
//   after the events were recorded: projection_lagging (the read model did not show
//     them within the visibility timeout; it will).
using CommandError = Error;

struct TokenResult {
  Token token;
  std::string secret;                // only for create and rotate (the new token)
  std::optional<Position> position;  // of the last event appended; none if nothing changed
  std::optional<Token> previous;     // rotate: the old token after the rotation
};

using CommandResult = std::variant<TokenResult, CommandError>;

struct CreateCommand {
  std::string user;
  std::string description;  // validated and trimmed here
  TokenKind kind = TokenKind::user;
  std::string destinationId;
  std::optional<Timestamp> expiresAt;  // none = never
};

struct DeactivateCommand {
  std::string user;
  std::string key;
  Reason reason = Reason::manual;
  std::optional<Timestamp> effectiveAt;  // default: now
};

struct RotateCommand {
  std::string user;
  std::string key;
  std::chrono::seconds grace{0};
  std::optional<Timestamp> expiresAt;  // the successor's; default: the old token's
};

// Striped locks by token key.
class KeyLocks {
 public:
  std::mutex& of(std::string_view key) {
    return stripes_[std::hash<std::string_view>{}(key) % stripes_.size()];
  }

 private:
  std::array<std::mutex, 512> stripes_;
};

// A create, validated: the event to append and the secret to show once.
struct PreparedCreate {
  Event event;
  std::string secret;
};

// Validates a create and builds its event, appending nothing. Fails with
// invalid_user, invalid_description, invalid_destination_id (missing for kind
// destination, or given for kind user) or invalid_expires_at (not in the future).
// Keys, secrets and event ids come from `entropy`.
std::variant<PreparedCreate, CommandError> prepareCreate(const CreateCommand& cmd,
                                                         const CommandContext& ctx,
                                                         const Clock& clock,
                                                         Entropy& entropy = systemEntropy());

// Where an asynchronous create ended: the new token's key, its secret and its
// event's position, once the read model shows it.
struct CreateOutcome {
  std::string key;
  std::string secret;
  Position position;
};
using CreateDone = std::function<void(std::variant<CreateOutcome, CommandError>)>;

// A create without a thread of its own (the HTTP loops' path): appends `prepared`
// through `signer` (on its thread) and calls `done` once the read model shows the
// token (on the projector's thread), or with the error: any of an append's (see
// CommandError). Returns at once.
void startCreate(SignedAppender& signer, Projector& projector,
                 std::chrono::milliseconds visibilityTimeout, PreparedCreate prepared,
                 CreateDone done);

class TokenService {
 public:
  // `locks` is shared by every TokenService of one daemon; null: a private one.
  // `signer` (shared by every TokenService of one daemon) signs and sequences every
  // event before it is appended; null: events are appended unsigned (unit tests).
  // Keys, secrets and event ids come from `entropy`, which must outlive the service.
  TokenService(EventLog& log, ReadModel& model, Projector& projector, const Clock& clock,
               std::chrono::milliseconds visibilityTimeout = std::chrono::seconds(10),
               std::shared_ptr<KeyLocks> locks = nullptr,
               std::shared_ptr<SignedAppender> signer = nullptr,
               Entropy& entropy = systemEntropy());

  // Each returns once the read model shows its events, or fails as an append may
  // (see CommandError) and as it says. A token of another user is not_found, like a
  // missing one.

  // Fails as prepareCreate does.
  CommandResult create(const CreateCommand& cmd, const CommandContext& ctx);
  // Idempotent (an active token without a scheduled deactivation appends nothing).
  // Fails with not_found, or expired (an expired token cannot be activated).
  CommandResult activate(const std::string& user, const std::string& key,
                         const CommandContext& ctx);
  // Idempotent (a deactivated token appends nothing). Fails with not_found.
  CommandResult deactivate(const DeactivateCommand& cmd, const CommandContext& ctx);
  // Fails with not_found, invalid_grace_seconds (outside 0..kMaxGrace),
  // already_rotated (rotate its successor instead), expired, or invalid_expires_at
  // (not in the future).
  CommandResult rotate(const RotateCommand& cmd, const CommandContext& ctx);

  // This thread's read-model reader.
  ReadModelReader& reader() { return *reader_; }

 private:
  std::variant<Token, CommandError> owned(const std::string& user, const std::string& key);
  std::variant<std::vector<Position>, CommandError> appendAndWait(const std::string& owner,
                                                                  std::vector<Event> events);

  EventLog& log_;
  Projector& projector_;
  const Clock& clock_;
  Entropy& entropy_;
  std::chrono::milliseconds visibilityTimeout_;
  std::unique_ptr<ReadModelReader> reader_;
  std::shared_ptr<KeyLocks> locks_;
  std::shared_ptr<SignedAppender> signer_;
};

}  // namespace tokenledger
