#include "service/token_service.h"

#include "events/secrets.h"

namespace tokenledger {
namespace {

// An append that failed: the log said why (LogUnavailable), or something else went
// wrong before the log was reached.
CommandError appendFailed(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const LogUnavailable& e) {
    if (e.nothingRecorded())
      return CommandError{"log_unavailable",
                          std::string(e.what()) + "; nothing was recorded, retry later"};
    return CommandError{"log_unavailable",
                        std::string(e.what()) +
                            "; the command may or may not have been recorded: check the "
                            "token's state before retrying"};
  } catch (const std::exception& e) {
    return CommandError{"unavailable", std::string("the command could not complete (") + e.what() +
                                           "); check the token's state before retrying"};
  } catch (...) {
    return CommandError{"unavailable",
                        "the command could not complete; check the token's state before "
                        "retrying"};
  }
}

CommandError notYetApplied(const Position& at) {
  return CommandError{"projection_lagging",
                      "the event was recorded at " + toString(at) +
                          " but the read model has not applied it yet; it will, retry the read "
                          "later"};
}

// Refused before anything was recorded: the read model has no room, or cannot apply
// (read_model_full, disk_full, busy, projection_failing).
CommandError refused(const Refusal& r) {
  return CommandError{r.code, r.message};
}

CommandError notFound(const std::string& key) {
  return CommandError{"not_found", "no token " + key + " for this user"};
}

}  // namespace

TokenService::TokenService(EventLog& log, ReadModel& model, Projector& projector,
                           const Clock& clock, std::chrono::milliseconds visibilityTimeout,
                           std::shared_ptr<KeyLocks> locks, std::shared_ptr<SignedAppender> signer,
                           Entropy& entropy)
    : log_(log),
      projector_(projector),
      clock_(clock),
      entropy_(entropy),
      visibilityTimeout_(visibilityTimeout),
      reader_(model.reader()),
      locks_(locks ? std::move(locks) : std::make_shared<KeyLocks>()),
      signer_(std::move(signer)) {}

static Event newEvent(const std::string& key, const std::string& owner, const CommandContext& ctx,
                      const Clock& clock, Entropy& entropy) {
  Event e;
  e.eventId = randomBytes(16, entropy);
  e.tokenKey = key;
  e.owner = owner;
  e.actor = ctx.actor;
  e.requestId = ctx.requestId;
  e.occurredAt = clock.now();
  return e;
}

std::variant<Token, CommandError> TokenService::owned(const std::string& user,
                                                      const std::string& key) {
  if (!isWellFormedKey(key)) return notFound(key);
  auto token = reader_->token(key);
  // Another user's token is indistinguishable from a missing one.
  if (!token || token->owner != user) return notFound(key);
  return *token;
}

std::variant<std::vector<Position>, CommandError> TokenService::appendAndWait(
    const std::string& owner, std::vector<Event> events) {
  // Room for the events in the read model is claimed before anything is recorded,
  // and held until they are applied.
  auto admitted = projector_.admit(events.size());
  if (auto* r = std::get_if<Refusal>(&admitted)) return refused(*r);
  // No snapshot pinned while waiting: the read model may need to remap to grow.
  reader_->release();
  std::vector<Position> positions;
  try {
    if (signer_) {
      // Sequenced, signed and appended in one group commit with concurrent commands.
      positions = signer_->append(owner, events);
    } else {
      std::vector<std::string> values;
      for (const auto& e : events) values.push_back(encodeEvent(e));
      positions = log_.append(owner, values);
    }
  } catch (const LogUnavailable&) {
    return appendFailed(std::current_exception());
  }
  if (!projector_.waitFor(positions.back(), visibilityTimeout_))
    return notYetApplied(positions.back());
  return positions;
}

std::variant<PreparedCreate, CommandError> prepareCreate(const CreateCommand& cmd,
                                                         const CommandContext& ctx,
                                                         const Clock& clock, Entropy& entropy) {
  if (auto err = checkUserId(cmd.user)) return CommandError{"invalid_user", *err};
  std::string description;
  if (auto err = checkDescription(cmd.description, description))
    return CommandError{"invalid_description", *err};
  if (cmd.kind == TokenKind::destination) {
    if (auto err = checkDestinationId(cmd.destinationId))
      return CommandError{"invalid_destination_id", *err + " (required for kind \"destination\")"};
  } else if (!cmd.destinationId.empty()) {
    return CommandError{"invalid_destination_id",
                        "destination_id is only allowed with kind \"destination\""};
  }
  if (cmd.expiresAt && *cmd.expiresAt <= clock.now())
    return CommandError{"invalid_expires_at", "expires_at must lie in the future"};

  PreparedCreate p{newEvent(generateTokenKey(entropy), cmd.user, ctx, clock, entropy),
                   generateSecret(entropy)};
  Created c;
  c.kind = cmd.kind;
  c.destinationId = cmd.destinationId;
  c.description = description;
  c.secretHash = hashSecret(p.secret);
  c.expiresAt = cmd.expiresAt;
  p.event.body = c;
  return p;
}

void startCreate(SignedAppender& signer, Projector& projector,
                 std::chrono::milliseconds visibilityTimeout, PreparedCreate prepared,
                 CreateDone done) {
  auto admitted = projector.admit(1);
  if (auto* r = std::get_if<Refusal>(&admitted)) {
    done(refused(*r));
    return;
  }
  // Held until the token is applied or the append failed (callbacks are copyable).
  auto claim = std::make_shared<Admission>(std::move(std::get<Admission>(admitted)));
  std::string owner = prepared.event.owner;
  std::string key = prepared.event.tokenKey;
  std::vector<Event> events{std::move(prepared.event)};
  signer.appendAsync(std::move(owner), std::move(events),
                     [&projector, visibilityTimeout, claim, key = std::move(key),
                      secret = std::move(prepared.secret),
                      done = std::move(done)](SignedAppender::Appended& a) mutable {
                       if (a.error) {
                         done(appendFailed(a.error));
                         return;
                       }
                       Position at = a.positions.back();
                       projector.whenApplied(
                           at, visibilityTimeout,
                           [at, claim, key = std::move(key), secret = std::move(secret),
                            done = std::move(done)](bool applied) mutable {
                             if (applied)
                               done(CreateOutcome{std::move(key), std::move(secret), at});
                             else
                               done(notYetApplied(at));
                           });
                     });
}

CommandResult TokenService::create(const CreateCommand& cmd, const CommandContext& ctx) {
  auto prepared = prepareCreate(cmd, ctx, clock_, entropy_);
  if (auto* err = std::get_if<CommandError>(&prepared)) return *err;
  auto& [e, secret] = std::get<PreparedCreate>(prepared);
  auto appended = appendAndWait(cmd.user, {e});
  if (auto* err = std::get_if<CommandError>(&appended)) return *err;
  auto token = reader_->token(e.tokenKey);
  if (!token) return CommandError{"projection_lagging", "the token is not visible yet"};
  return TokenResult{*token, std::move(secret), std::get<0>(appended).back(), std::nullopt};
}

CommandResult TokenService::activate(const std::string& user, const std::string& key,
                                     const CommandContext& ctx) {
  std::lock_guard keyLock(locks_->of(key));
  auto found = owned(user, key);
  if (auto* err = std::get_if<CommandError>(&found)) return *err;
  const Token& t = std::get<Token>(found);
  Timestamp now = clock_.now();
  if (statusAt(t, now) == Status::expired)
    return CommandError{"expired",
                        "token " + key + " expired and cannot be activated; create a new one"};
  // Idempotent: an active token without a scheduled deactivation changes nothing.
  if (t.active && !t.deactivateAt) return TokenResult{t, "", std::nullopt, std::nullopt};
  Event e = newEvent(key, user, ctx, clock_, entropy_);
  e.body = Activated{};
  auto appended = appendAndWait(user, {e});
  if (auto* err = std::get_if<CommandError>(&appended)) return *err;
  return TokenResult{*reader_->token(key), "", std::get<0>(appended).back(), std::nullopt};
}

CommandResult TokenService::deactivate(const DeactivateCommand& cmd, const CommandContext& ctx) {
  std::lock_guard keyLock(locks_->of(cmd.key));
  auto found = owned(cmd.user, cmd.key);
  if (auto* err = std::get_if<CommandError>(&found)) return *err;
  const Token& t = std::get<Token>(found);
  Timestamp now = clock_.now();
  Timestamp effective = cmd.effectiveAt.value_or(now);
  // Idempotent: deactivating a deactivated token changes nothing. An expired token
  // that was never deactivated still takes the event (e.g. a late "compromised").
  bool alreadyOff = !t.active || (t.deactivateAt && now >= *t.deactivateAt);
  if (alreadyOff) return TokenResult{t, "", std::nullopt, std::nullopt};
  Event e = newEvent(cmd.key, cmd.user, ctx, clock_, entropy_);
  e.body = Deactivated{cmd.reason, effective};
  auto appended = appendAndWait(cmd.user, {e});
  if (auto* err = std::get_if<CommandError>(&appended)) return *err;
  return TokenResult{*reader_->token(cmd.key), "", std::get<0>(appended).back(), std::nullopt};
}

CommandResult TokenService::rotate(const RotateCommand& cmd, const CommandContext& ctx) {
  std::lock_guard keyLock(locks_->of(cmd.key));
  auto found = owned(cmd.user, cmd.key);
  if (auto* err = std::get_if<CommandError>(&found)) return *err;
  const Token& old = std::get<Token>(found);
  if (cmd.grace < std::chrono::seconds{0} || cmd.grace > kMaxGrace)
    return CommandError{"invalid_grace_seconds",
                        "grace_seconds must be between 0 and " + std::to_string(kMaxGrace.count())};
  if (!old.replacedBy.empty())
    return CommandError{"already_rotated", "token " + cmd.key + " was already rotated to " +
                                               old.replacedBy + "; rotate that one instead"};
  Timestamp now = clock_.now();
  // A rotation renews the secret, not the policy: an expired token stays expired.
  if (statusAt(old, now) == Status::expired)
    return CommandError{"expired",
                        "token " + cmd.key + " expired and cannot be rotated; create a new one"};
  if (cmd.expiresAt && *cmd.expiresAt <= now)
    return CommandError{"invalid_expires_at", "expires_at must lie in the future"};
  std::string secret = generateSecret(entropy_);
  Event created = newEvent(generateTokenKey(entropy_), cmd.user, ctx, clock_, entropy_);
  Created c;
  c.kind = old.kind;
  c.destinationId = old.destinationId;
  c.description = old.description;
  c.secretHash = hashSecret(secret);
  c.expiresAt = cmd.expiresAt ? cmd.expiresAt : old.expiresAt;  // the old expiry, unless renewed
  c.replaces = old.key;
  created.body = c;
  std::vector<Event> events{created};
  if (statusAt(old, now) == Status::active) {
    Event d = newEvent(old.key, cmd.user, ctx, clock_, entropy_);
    d.occurredAt = created.occurredAt;
    d.body = Deactivated{Reason::rotation, now + cmd.grace};
    events.push_back(d);
  }
  auto appended = appendAndWait(cmd.user, events);
  if (auto* err = std::get_if<CommandError>(&appended)) return *err;
  auto successor = reader_->token(created.tokenKey);
  if (!successor) return CommandError{"projection_lagging", "the token is not visible yet"};
  return TokenResult{*successor, std::move(secret), std::get<0>(appended).back(),
                     reader_->token(old.key)};
}

}  // namespace tokenledger
