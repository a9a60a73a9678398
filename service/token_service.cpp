#include "service/token_service.h"

#include "events/secrets.h"

namespace tokenledger {
namespace {

bool isIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '@' || c == '+' || c == ':';
}

// An append that failed: the log said why (LogUnavailable), or something else went
// wrong before the log was reached.
CommandError appendFailed(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const LogUnavailable& e) {
    return CommandError{503, "log_unavailable",
                        std::string(e.what()) + "; nothing was recorded, retry later"};
  } catch (const std::exception& e) {
    return CommandError{503, "unavailable",
                        std::string("the command could not complete (") + e.what() +
                            "); check the token's state before retrying"};
  } catch (...) {
    return CommandError{503, "unavailable",
                        "the command could not complete; check the token's state before "
                        "retrying"};
  }
}

CommandError notYetApplied(const Position& at) {
  return CommandError{503, "projection_lagging",
                      "the event was recorded at " + toString(at) +
                          " but the read model has not applied it yet; it will, retry the read "
                          "later"};
}

CommandError notFound(const std::string& key) {
  return CommandError{404, "not_found", "no token " + key + " for this user"};
}

// Decodes one UTF-8 sequence at s[i] into `cp`; returns its length or 0 when invalid.
size_t utf8Decode(std::string_view s, size_t i, uint32_t& cp) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  cp = c;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Reject overlong forms, surrogates and values beyond Unicode.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return n;
}

// Unicode White_Space (ASCII included).
bool isUnicodeSpace(uint32_t cp) {
  return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

}  // namespace

std::optional<std::string> checkUserId(std::string_view user) {
  if (user.empty() || user.size() > 128)
    return "user id must be 1-128 characters of A-Z a-z 0-9 - _ . @ + :";
  for (char c : user)
    if (!isIdChar(c)) return "user id must be 1-128 characters of A-Z a-z 0-9 - _ . @ + :";
  return std::nullopt;
}

std::optional<std::string> checkDestinationId(std::string_view id) {
  if (id.empty() || id.size() > 128)
    return "destination_id must be 1-128 characters of A-Z a-z 0-9 - _ . @ + :";
  for (char c : id)
    if (!isIdChar(c)) return "destination_id must be 1-128 characters of A-Z a-z 0-9 - _ . @ + :";
  return std::nullopt;
}

std::optional<std::string> checkDescription(std::string_view raw, std::string& out) {
  uint32_t cp = 0;
  size_t b = 0, e = raw.size();
  for (size_t n; b < e && (n = utf8Decode(raw, b, cp)) != 0 && isUnicodeSpace(cp);) b += n;
  while (e > b) {
    size_t k = e - 1;  // start of the last code point
    while (k > b && e - k < 4 && (static_cast<unsigned char>(raw[k]) & 0xC0) == 0x80) --k;
    if (utf8Decode(raw, k, cp) != e - k || !isUnicodeSpace(cp)) break;
    e = k;
  }
  std::string_view s = raw.substr(b, e - b);
  size_t chars = 0;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8Decode(s, i, cp);
    if (n == 0) return "description must be valid UTF-8";
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))  // C0, DEL and C1 controls
      return "description must not contain control characters such as line breaks";
    i += n;
    ++chars;
  }
  if (chars == 0) return "description must not be empty";
  if (chars > 200)
    return "description must be at most 200 characters (it has " + std::to_string(chars) + ")";
  out = std::string(s);
  return std::nullopt;
}

TokenService::TokenService(EventLog& log, ReadModel& model, Projector& projector,
                           const Clock& clock, std::chrono::milliseconds visibilityTimeout,
                           std::shared_ptr<KeyLocks> locks, std::shared_ptr<SignedAppender> signer)
    : log_(log),
      projector_(projector),
      clock_(clock),
      visibilityTimeout_(visibilityTimeout),
      reader_(model.reader()),
      locks_(locks ? std::move(locks) : std::make_shared<KeyLocks>()),
      signer_(std::move(signer)) {}

static Event newEvent(const std::string& key, const std::string& owner, const CommandContext& ctx,
                      const Clock& clock) {
  Event e;
  e.eventId = randomBytes(16);
  e.tokenKey = key;
  e.owner = owner;
  e.actor = ctx.actor;
  e.requestId = ctx.requestId;
  e.occurredAtUs = clock.nowUs();
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
                                                         const Clock& clock) {
  if (auto err = checkUserId(cmd.user)) return CommandError{400, "invalid_user", *err};
  std::string description;
  if (auto err = checkDescription(cmd.description, description))
    return CommandError{400, "invalid_description", *err};
  if (cmd.kind == TokenKind::destination) {
    if (auto err = checkDestinationId(cmd.destinationId))
      return CommandError{400, "invalid_destination_id",
                          *err + " (required for kind \"destination\")"};
  } else if (!cmd.destinationId.empty()) {
    return CommandError{400, "invalid_destination_id",
                        "destination_id is only allowed with kind \"destination\""};
  }
  if (cmd.expiresAtUs != 0 && cmd.expiresAtUs <= clock.nowUs())
    return CommandError{400, "invalid_expires_at", "expires_at must lie in the future"};

  PreparedCreate p{newEvent(generateTokenKey(), cmd.user, ctx, clock), generateSecret()};
  Created c;
  c.kind = cmd.kind;
  c.destinationId = cmd.destinationId;
  c.description = description;
  c.secretHash = hashSecret(p.secret);
  c.expiresAtUs = cmd.expiresAtUs;
  p.event.body = c;
  return p;
}

void startCreate(SignedAppender& signer, Projector& projector,
                 std::chrono::milliseconds visibilityTimeout, PreparedCreate prepared,
                 CreateDone done) {
  std::string owner = prepared.event.owner;
  std::string key = prepared.event.tokenKey;
  std::vector<Event> events{std::move(prepared.event)};
  signer.appendAsync(
      std::move(owner), std::move(events),
      [&projector, visibilityTimeout, key = std::move(key), secret = std::move(prepared.secret),
       done = std::move(done)](SignedAppender::Appended& a) mutable {
        if (a.error) {
          done(appendFailed(a.error));
          return;
        }
        Position at = a.positions.back();
        projector.whenApplied(at, visibilityTimeout,
                              [at, key = std::move(key), secret = std::move(secret),
                               done = std::move(done)](bool applied) mutable {
                                if (applied)
                                  done(CreateOutcome{std::move(key), std::move(secret), at});
                                else
                                  done(notYetApplied(at));
                              });
      });
}

CommandResult TokenService::create(const CreateCommand& cmd, const CommandContext& ctx) {
  auto prepared = prepareCreate(cmd, ctx, clock_);
  if (auto* err = std::get_if<CommandError>(&prepared)) return *err;
  auto& [e, secret] = std::get<PreparedCreate>(prepared);
  auto appended = appendAndWait(cmd.user, {e});
  if (auto* err = std::get_if<CommandError>(&appended)) return *err;
  auto token = reader_->token(e.tokenKey);
  if (!token) return CommandError{503, "projection_lagging", "the token is not visible yet"};
  return TokenResult{*token, std::move(secret), std::get<0>(appended).back(), std::nullopt};
}

CommandResult TokenService::activate(const std::string& user, const std::string& key,
                                     const CommandContext& ctx) {
  std::lock_guard keyLock(locks_->of(key));
  auto found = owned(user, key);
  if (auto* err = std::get_if<CommandError>(&found)) return *err;
  const Token& t = std::get<Token>(found);
  int64_t now = clock_.nowUs();
  if (statusAt(t, now) == Status::expired)
    return CommandError{409, "expired",
                        "token " + key + " expired and cannot be activated; create a new one"};
  // Idempotent: an active token without a scheduled deactivation changes nothing.
  if (t.active && t.deactivateAtUs == 0) return TokenResult{t, "", std::nullopt, std::nullopt};
  Event e = newEvent(key, user, ctx, clock_);
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
  int64_t now = clock_.nowUs();
  int64_t effective = cmd.effectiveAtUs.value_or(now);
  // Idempotent: deactivating a deactivated token changes nothing. An expired token
  // that was never deactivated still takes the event (e.g. a late "compromised").
  bool alreadyOff = !t.active || (t.deactivateAtUs != 0 && now >= t.deactivateAtUs);
  if (alreadyOff) return TokenResult{t, "", std::nullopt, std::nullopt};
  Event e = newEvent(cmd.key, cmd.user, ctx, clock_);
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
  if (cmd.graceSeconds < 0 || cmd.graceSeconds > kMaxGraceSeconds)
    return CommandError{400, "invalid_grace_seconds",
                        "grace_seconds must be between 0 and " + std::to_string(kMaxGraceSeconds)};
  if (!old.replacedBy.empty())
    return CommandError{409, "already_rotated",
                        "token " + cmd.key + " was already rotated to " + old.replacedBy +
                            "; rotate that one instead"};
  int64_t now = clock_.nowUs();
  std::string secret = generateSecret();
  Event created = newEvent(generateTokenKey(), cmd.user, ctx, clock_);
  Created c;
  c.kind = old.kind;
  c.destinationId = old.destinationId;
  c.description = old.description;
  c.secretHash = hashSecret(secret);
  c.expiresAtUs = 0;
  c.replaces = old.key;
  created.body = c;
  std::vector<Event> events{created};
  if (statusAt(old, now) == Status::active) {
    Event d = newEvent(old.key, cmd.user, ctx, clock_);
    d.occurredAtUs = created.occurredAtUs;
    d.body = Deactivated{Reason::rotation, now + cmd.graceSeconds * 1'000'000};
    events.push_back(d);
  }
  auto appended = appendAndWait(cmd.user, events);
  if (auto* err = std::get_if<CommandError>(&appended)) return *err;
  auto successor = reader_->token(created.tokenKey);
  if (!successor) return CommandError{503, "projection_lagging", "the token is not visible yet"};
  return TokenResult{*successor, std::move(secret), std::get<0>(appended).back(),
                     reader_->token(old.key)};
}

}  // namespace tokenledger
