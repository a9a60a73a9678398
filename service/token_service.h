// Command handling: validates a command against the read model, appends its
// events to the log and returns once the read model shows them (read-your-writes).
//
// Across replicas: every event a command appends records the token's version it
// was decided on (Event::basedOnVersion), and applies only if that still holds when
// the log reaches it (projections/token.h, conflictOf). Having waited for its
// events, a command sees whether they won; if another command changed the token
// first, it decides again on the new state (up to kMaxAttempts times): a lost
// rotation answers already_rotated, a deactivation of a token that is off by then
// answers "no change". Decisions to append nothing (not found, no change) are made
// once more after catching up with the log's end, since this replica may lag.
//
// One TokenService per thread (it owns a read-model reader). Threads share a
// KeyLocks: a command holds its token's lock from validation until its events are
// visible, so commands of one replica on one token do not race each other, while
// commands on different tokens (every create) run concurrently.
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
  // The request's Idempotency-Key (checked with checkIdempotencyKey), or empty.
  std::string idempotencyKey = {};
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
//     them within the visibility timeout; it will), or conflict (other commands
//     changed the token every time this one was decided; nothing of it applied).
// With an idempotency key: idempotency_key_reused (the key came with another
// request within kIdempotencyWindow).
using CommandError = Error;

struct TokenResult {
  Token token;
  std::string secret;                // only for create and rotate (the new token)
  std::optional<Position> position;  // of the last event appended; none if nothing changed
  std::optional<Token> previous;     // rotate: the old token after the rotation
  // The answer to an earlier request with the same idempotency key: the token it
  // created or changed, as it is now (without a secret: it is shown only once).
  bool replayed = false;
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

// Deactivates every active token of a user, or of one kind (POST
// /v1/users/{user}/tokens/deactivate).
struct DeactivateAllCommand {
  std::string user;
  Reason reason = Reason::bulk;          // bulk or compromised
  std::optional<TokenKind> kind;         // none: every kind
  std::optional<Timestamp> effectiveAt;  // default: now
  bool dryRun = false;                   // count, change nothing
};

struct DeactivateAllResult {
  // Tokens that had to be deactivated when the call started (what a dry run counts):
  // active now and not already deactivating by effectiveAt.
  size_t matching = 0;
  // Deactivated by this call (those another command turned off first are not).
  size_t deactivated = 0;
  std::optional<Position> position;  // of the last event appended; none if nothing changed
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

// The digest of a request, for idempotency keys (the same key with another
// request is refused).
std::string requestDigest(const CreateCommand& c);
std::string requestDigest(std::string_view command, std::string_view user, std::string_view key);
std::string requestDigest(const DeactivateCommand& c);
std::string requestDigest(const RotateCommand& c);

class TokenService {
 public:
  // How often a command decides again after losing a race before it gives up.
  static constexpr int kMaxAttempts = 3;

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

  // Fails as prepareCreate does. With an idempotency key, a repeat answers with the
  // token the first request created (replayed, no secret).
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

  // How many deactivations one append carries, and how often the user's tokens are
  // walked (later walks deactivate those created meanwhile or lost to a race).
  static constexpr size_t kDeactivateAllBatch = 500;
  static constexpr int kDeactivateAllWalks = 4;

  // Deactivates the tokens in batches of kDeactivateAllBatch, each appended and
  // applied before the next, and walks the user's tokens again until a walk finds
  // none left: it returns once every one of them fails verification (or will at
  // effectiveAt). Not atomic: a call interrupted by a crash leaves some tokens
  // active, and the same call again finishes the work. Fails as an append may; with
  // conflict when tokens still needed a deactivation after kDeactivateAllWalks walks.
  std::variant<DeactivateAllResult, CommandError> deactivateAll(const DeactivateAllCommand& cmd,
                                                                const CommandContext& ctx);

  // This thread's read-model reader.
  ReadModelReader& reader() { return *reader_; }

 private:
  // What a command decided on the token's state: the events to append (based on the
  // token's version), or its answer without appending anything.
  using Decision = std::variant<std::vector<Event>, CommandResult>;
  // Decides, appends and learns the verdict, deciding again after a lost race;
  // `answer` builds the result once the events applied (see the class comment).
  CommandResult command(
      const std::string& user, const std::string& key, const CommandContext& ctx,
      const std::string& digest, const std::function<Decision(const Token&)>& decide,
      const std::function<CommandResult(const std::vector<Event>&, Position)>& answer);
  // Whether `e` (appended and covered by the read model) changed its token.
  bool appliedHere(const Event& e);
  // Waits until this replica has applied everything the log holds now.
  std::optional<CommandError> catchUp();
  // The answer to a repeat of the request that claimed `user`'s idempotency `key`,
  // idempotency_key_reused for another request, or nullopt when no claim holds.
  std::optional<CommandResult> replay(const std::string& user, const std::string& key,
                                      const std::string& digest);
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
