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
                            "; the command may or may not have been recorded: retry with the "
                            "same Idempotency-Key (it returns the recorded result, if any), or "
                            "check the token's state before retrying"};
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

// What identifies a request for Idempotency-Key: BLAKE2b-256 over its fields, each
// length-prefixed, so that no two requests share one.
std::string digestOfFields(std::initializer_list<std::string_view> fields) {
  std::string all;
  for (std::string_view f : fields) {
    all += std::to_string(f.size());
    all += ':';
    all += f;
  }
  SecretHash h = hashSecret(all);
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

std::string timeField(const std::optional<Timestamp>& t) {
  return t ? std::to_string(t->time_since_epoch().count()) : "";
}

}  // namespace

std::string requestDigest(const CreateCommand& c) {
  return digestOfFields(
      {"create", c.user, c.description, toString(c.kind), c.destinationId, timeField(c.expiresAt)});
}
std::string requestDigest(std::string_view command, std::string_view user, std::string_view key) {
  return digestOfFields({command, user, key});
}
std::string requestDigest(const DeactivateCommand& c) {
  return digestOfFields(
      {"deactivate", c.user, c.key, toString(c.reason), timeField(c.effectiveAt)});
}
std::string requestDigest(const RotateCommand& c) {
  return digestOfFields(
      {"rotate", c.user, c.key, std::to_string(c.grace.count()), timeField(c.expiresAt)});
}

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
  const std::string digest = requestDigest(cmd);
  if (!ctx.idempotencyKey.empty()) {
    if (auto r = replay(cmd.user, ctx.idempotencyKey, digest)) return *r;
    e.idempotencyKey = ctx.idempotencyKey;
    e.requestDigest = digest;
  }
  auto appended = appendAndWait(cmd.user, {e});
  if (auto* err = std::get_if<CommandError>(&appended)) return *err;
  if (auto token = reader_->token(e.tokenKey); token && token->owner == cmd.user)
    return TokenResult{*token, std::move(secret), std::get<0>(appended).back(), std::nullopt};
  // A new key cannot conflict: only a request with the same idempotency key (through
  // another replica, or a retry racing the first attempt) beat it.
  if (!ctx.idempotencyKey.empty())
    if (auto r = replay(cmd.user, ctx.idempotencyKey, digest)) return *r;
  return CommandError{"projection_lagging", "the token is not visible yet"};
}

CommandResult TokenService::activate(const std::string& user, const std::string& key,
                                     const CommandContext& ctx) {
  return command(
      user, key, ctx, requestDigest("activate", user, key),
      [&](const Token& t) -> Decision {
        if (statusAt(t, clock_.now()) == Status::expired)
          return CommandResult{CommandError{
              "expired", "token " + key + " expired and cannot be activated; create a new one"}};
        // Idempotent: an active token without a scheduled deactivation changes nothing.
        if (t.active && !t.deactivateAt)
          return CommandResult{TokenResult{t, "", std::nullopt, std::nullopt}};
        Event e = newEvent(key, user, ctx, clock_, entropy_);
        e.basedOnVersion = versionOf(t);
        e.body = Activated{};
        return std::vector<Event>{std::move(e)};
      },
      [&](const std::vector<Event>&, Position at) -> CommandResult {
        return TokenResult{*reader_->token(key), "", at, std::nullopt};
      });
}

CommandResult TokenService::deactivate(const DeactivateCommand& cmd, const CommandContext& ctx) {
  return command(
      cmd.user, cmd.key, ctx, requestDigest(cmd),
      [&](const Token& t) -> Decision {
        Timestamp now = clock_.now();
        // Idempotent: deactivating a deactivated token changes nothing. An expired
        // token that was never deactivated still takes the event (e.g. a late
        // "compromised").
        bool alreadyOff = !t.active || (t.deactivateAt && now >= *t.deactivateAt);
        if (alreadyOff) return CommandResult{TokenResult{t, "", std::nullopt, std::nullopt}};
        Event e = newEvent(cmd.key, cmd.user, ctx, clock_, entropy_);
        e.basedOnVersion = versionOf(t);
        e.body = Deactivated{cmd.reason, cmd.effectiveAt.value_or(now), ""};
        return std::vector<Event>{std::move(e)};
      },
      [&](const std::vector<Event>&, Position at) -> CommandResult {
        return TokenResult{*reader_->token(cmd.key), "", at, std::nullopt};
      });
}

std::variant<DeactivateAllResult, CommandError> TokenService::deactivateAll(
    const DeactivateAllCommand& cmd, const CommandContext& ctx) {
  const Timestamp now = clock_.now();
  const Timestamp effective = cmd.effectiveAt.value_or(now);
  // Active now and not already set to end by `effective`.
  auto matches = [&](const Token& t) {
    return (!cmd.kind || t.kind == *cmd.kind) && statusAt(t, now) == Status::active &&
           !(t.deactivateAt && *t.deactivateAt <= effective);
  };
  DeactivateAllResult result;
  for (int walk = 0; walk < kDeactivateAllWalks; ++walk) {
    bool found = false;
    PageRequest req;
    req.limit = kDeactivateAllBatch;
    req.keep = matches;
    std::string after;
    do {
      req.after = after;
      TokenPage page = reader_->tokensPage(cmd.user, req);
      after = std::move(page.next);
      if (page.tokens.empty()) continue;
      found = true;
      if (walk == 0) result.matching += page.tokens.size();
      if (cmd.dryRun) continue;
      std::vector<Event> events;
      events.reserve(page.tokens.size());
      for (const Token& t : page.tokens) {
        Event e = newEvent(t.key, cmd.user, ctx, clock_, entropy_);
        e.basedOnVersion = versionOf(t);  // loses to any command that changed it meanwhile
        e.body = Deactivated{cmd.reason, effective, ""};
        events.push_back(std::move(e));
      }
      auto appended = appendAndWait(cmd.user, events);
      if (auto* err = std::get_if<CommandError>(&appended)) return *err;
      const auto& positions = std::get<0>(appended);
      for (size_t i = 0; i < events.size(); ++i)
        if (appliedHere(events[i])) {
          ++result.deactivated;
          result.position = positions[i];
        }
    } while (!after.empty());
    if (!found || cmd.dryRun) return result;
  }
  return CommandError{"conflict", "user " + cmd.user + "'s tokens kept changing through " +
                                      std::to_string(kDeactivateAllWalks) +
                                      " walks; retry: the tokens deactivated so far stay so"};
}

CommandResult TokenService::rotate(const RotateCommand& cmd, const CommandContext& ctx) {
  if (cmd.grace < std::chrono::seconds{0} || cmd.grace > kMaxGrace)
    return CommandError{"invalid_grace_seconds",
                        "grace_seconds must be between 0 and " + std::to_string(kMaxGrace.count())};
  std::string secret;
  return command(
      cmd.user, cmd.key, ctx, requestDigest(cmd),
      [&](const Token& old) -> Decision {
        if (!old.replacedBy.empty())
          return CommandResult{
              CommandError{"already_rotated", "token " + cmd.key + " was already rotated to " +
                                                  old.replacedBy + "; rotate that one instead"}};
        Timestamp now = clock_.now();
        // A rotation renews the secret, not the policy: an expired token stays expired.
        if (statusAt(old, now) == Status::expired)
          return CommandResult{CommandError{
              "expired", "token " + cmd.key + " expired and cannot be rotated; create a new one"}};
        if (cmd.expiresAt && *cmd.expiresAt <= now)
          return CommandResult{
              CommandError{"invalid_expires_at", "expires_at must lie in the future"}};
        secret = generateSecret(entropy_);
        Event created = newEvent(generateTokenKey(entropy_), cmd.user, ctx, clock_, entropy_);
        Created c;
        c.kind = old.kind;
        c.destinationId = old.destinationId;
        c.description = old.description;
        c.secretHash = hashSecret(secret);
        c.expiresAt = cmd.expiresAt ? cmd.expiresAt : old.expiresAt;  // unless renewed
        c.replaces = old.key;
        created.body = c;
        // Applies only if the old token is still as seen here and not rotated.
        created.basedOnVersion = versionOf(old);
        std::vector<Event> events{created};
        if (statusAt(old, now) == Status::active) {
          Event d = newEvent(old.key, cmd.user, ctx, clock_, entropy_);
          d.occurredAt = created.occurredAt;
          // Applies only if the created event won: the old token then points to the
          // successor, which counts as one change (versionOf).
          d.basedOnVersion = versionOf(old) + 1;
          d.body = Deactivated{Reason::rotation, now + cmd.grace, created.tokenKey};
          events.push_back(d);
        }
        return events;
      },
      [&](const std::vector<Event>& events, Position at) -> CommandResult {
        auto successor = reader_->token(events.front().tokenKey);
        if (!successor) return CommandError{"projection_lagging", "the token is not visible yet"};
        return TokenResult{*successor, std::move(secret), at, reader_->token(cmd.key)};
      });
}

CommandResult TokenService::command(
    const std::string& user, const std::string& key, const CommandContext& ctx,
    const std::string& digest, const std::function<Decision(const Token&)>& decide,
    const std::function<CommandResult(const std::vector<Event>&, Position)>& answer) {
  std::lock_guard keyLock(locks_->of(key));
  bool caughtUp = false;
  for (int attempt = 1;; ++attempt) {
    if (!ctx.idempotencyKey.empty())
      if (auto r = replay(user, ctx.idempotencyKey, digest)) return *r;
    auto found = owned(user, key);
    Decision decision = std::holds_alternative<Token>(found)
                            ? decide(std::get<Token>(found))
                            : Decision{CommandResult{std::get<CommandError>(found)}};
    if (auto* r = std::get_if<CommandResult>(&decision)) {
      // Decided without appending. "Not found" and "nothing to change" were decided
      // on this replica's state, which may lag behind events other replicas appended:
      // decide once more on everything the log held a moment ago. (Other refusals
      // rest on what never changes back: expiry, a rotation.)
      bool mayLag =
          std::holds_alternative<CommandError>(found) || std::holds_alternative<TokenResult>(*r);
      if (caughtUp || !mayLag) return std::move(*r);
      if (auto err = catchUp()) return *err;
      caughtUp = true;
      continue;
    }
    auto& events = std::get<std::vector<Event>>(decision);
    if (!ctx.idempotencyKey.empty()) {
      events.front().idempotencyKey = ctx.idempotencyKey;
      events.front().requestDigest = digest;
    }
    auto appended = appendAndWait(user, events);
    if (auto* err = std::get_if<CommandError>(&appended)) return *err;
    if (appliedHere(events.front())) {
      // It won. Its later events are conditional too: a rotation's deactivation of
      // the old token loses to a command decided after the rotation was visible
      // (that command's state stands). Answer with the last event that applied.
      const auto& positions = std::get<0>(appended);
      size_t last = 0;
      for (size_t i = events.size(); i-- > 1;)
        if (appliedHere(events[i])) {
          last = i;
          break;
        }
      return answer(events, positions[last]);
    }
    // It lost a race (docs/kafka.md, "Conditional events"): another command changed
    // the token first, and this replica has now applied that change (it precedes
    // ours in the partition). Decide again on it.
    caughtUp = true;
    if (attempt == kMaxAttempts)
      return CommandError{"conflict", "token " + key + " changed concurrently " +
                                          std::to_string(kMaxAttempts) +
                                          " times while this command was decided; retry"};
  }
}

bool TokenService::appliedHere(const Event& e) {
  for (const auto& h : reader_->history(e.tokenKey))
    if (h.eventId == e.eventId) return true;
  return false;
}

std::optional<CommandError> TokenService::catchUp() {
  try {
    Offsets end = log_.endOffsets();
    if (!projector_.waitFor(end, visibilityTimeout_))
      return CommandError{"projection_lagging", "this replica has not applied the log up to " +
                                                    end.toString() + " yet; retry later"};
  } catch (const LogUnavailable&) {
    return appendFailed(std::current_exception());
  }
  reader_->release();  // the next read sees what was applied
  return std::nullopt;
}

std::optional<CommandResult> TokenService::replay(const std::string& user, const std::string& key,
                                                  const std::string& digest) {
  auto claim = reader_->idempotency(user, key);
  if (!claimHolds(claim, clock_.now())) return std::nullopt;
  if (claim->requestDigest != digest)
    return CommandError{"idempotency_key_reused",
                        "Idempotency-Key " + key +
                            " was used with a different request within the last " +
                            std::to_string(kIdempotencyWindow.count()) +
                            " hours; send a new key for a new request"};
  auto token = reader_->token(claim->tokenKey);
  if (!token) return std::nullopt;  // cannot be: a claim's token exists
  TokenResult r{*token, "", std::nullopt, std::nullopt, true};
  if (!token->replaces.empty()) r.previous = reader_->token(token->replaces);
  return r;
}

}  // namespace tokenledger
