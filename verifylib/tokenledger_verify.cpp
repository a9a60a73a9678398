// The C ABI (tokenledger_verify.h) over ReplicaVerifier: no exception crosses it.
#include "verifylib/tokenledger_verify.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>

#include "events/event.h"
#include "verifylib/replica_verifier.h"

using tokenledger::VerifyOutcome;
using tokenledger::VerifyReason;
using tokenledger::verifylib::Failure;
using tokenledger::verifylib::ReplicaVerifier;
using tokenledger::verifylib::VerifyError;

struct tokenledger_verifier {
  ReplicaVerifier impl;
  explicit tokenledger_verifier(const char* dataDir) : impl(dataDir) {}
};

namespace {

thread_local std::string lastError;

int fail(Failure f, const char* message) {
  try {
    lastError = message;
  } catch (...) {
    // keep the old text: the status still says what kind of failure it was
  }
  return static_cast<int>(f);
}

// Runs `f`, turning every exception into a status and the thread's last error.
template <class F>
int guarded(F&& f) noexcept {
  try {
    return f();
  } catch (const VerifyError& e) {
    return fail(e.failure(), e.what());
  } catch (const std::bad_alloc&) {
    return fail(Failure::internal, "out of memory");
  } catch (const std::exception& e) {
    return fail(Failure::internal, e.what());
  } catch (...) {
    return fail(Failure::internal, "unexpected internal error");
  }
}

int reasonCode(VerifyReason r) {
  switch (r) {
    case VerifyReason::ok:
      return TOKENLEDGER_VERIFY_REASON_OK;
    case VerifyReason::malformed:
      return TOKENLEDGER_VERIFY_REASON_MALFORMED;
    case VerifyReason::unknown:
      return TOKENLEDGER_VERIFY_REASON_UNKNOWN;
    case VerifyReason::inactive:
      return TOKENLEDGER_VERIFY_REASON_INACTIVE;
    case VerifyReason::expired:
      return TOKENLEDGER_VERIFY_REASON_EXPIRED;
    case VerifyReason::badSecret:
      return TOKENLEDGER_VERIFY_REASON_BAD_SECRET;
  }
  return TOKENLEDGER_VERIFY_REASON_MALFORMED;
}

template <size_t N>
void copyField(char (&to)[N], std::string_view from) {
  if (from.size() >= N)
    throw VerifyError(Failure::internal, "a stored id is longer than it may be");
  std::memcpy(to, from.data(), from.size());
  to[from.size()] = '\0';
}

int64_t micros(const std::optional<tokenledger::Timestamp>& t) {
  return t ? static_cast<int64_t>(t->time_since_epoch().count()) : 0;
}

int answer(tokenledger_verifier* v, std::string_view credentials,
           tokenledger_verify_result* result) {
  if (v == nullptr || result == nullptr) {
    return fail(Failure::invalidArgument, "the verifier and the result must not be NULL");
  }
  return guarded([&] {
    VerifyOutcome out = v->impl.verify(credentials);
    tokenledger_verify_result r{};
    r.valid = out.valid() ? 1 : 0;
    r.reason = reasonCode(out.reason);
    r.reason_text = toString(out.reason).data();  // string literals: NUL-terminated
    r.kind_text = "";
    if (out.valid()) {
      // What /v1/verify shows of a valid token, and its times.
      r.kind = out.token.kind == tokenledger::TokenKind::destination
                   ? TOKENLEDGER_VERIFY_KIND_DESTINATION
                   : TOKENLEDGER_VERIFY_KIND_USER;
      r.kind_text = toString(out.token.kind).data();
      copyField(r.key, out.key());
      copyField(r.owner, out.token.owner);
      if (out.token.kind == tokenledger::TokenKind::destination)
        copyField(r.destination_id, out.token.destinationId);
      r.expires_at_us = micros(out.token.expiresAt);
      r.deactivate_at_us = micros(out.token.deactivateAt);
    }
    *result = r;
    return 0;
  });
}

}  // namespace

extern "C" {

int tokenledger_verify_open(const char* data_dir, tokenledger_verifier** out) {
  if (out == nullptr || data_dir == nullptr)
    return fail(Failure::invalidArgument, "data_dir and out must not be NULL");
  *out = nullptr;
  return guarded([&] {
    *out = new tokenledger_verifier(data_dir);
    return 0;
  });
}

void tokenledger_verify_close(tokenledger_verifier* verifier) {
  delete verifier;
}

int tokenledger_verify(tokenledger_verifier* verifier, const char* key, size_t key_len,
                       const char* secret, size_t secret_len, tokenledger_verify_result* result) {
  if ((key == nullptr && key_len != 0) || (secret == nullptr && secret_len != 0))
    return fail(Failure::invalidArgument, "key or secret is NULL with a non-zero length");
  // "key:token" on the stack. Anything longer than this, or a key with a colon,
  // cannot be well formed: it is checked as "" (malformed), like /v1/verify does.
  char buf[256];
  std::string_view credentials;
  if (key_len + 1 + secret_len <= sizeof buf &&
      (key_len == 0 || std::memchr(key, ':', key_len) == nullptr)) {
    if (key_len) std::memcpy(buf, key, key_len);
    buf[key_len] = ':';
    if (secret_len) std::memcpy(buf + key_len + 1, secret, secret_len);
    credentials = std::string_view(buf, key_len + 1 + secret_len);
  }
  int rc = answer(verifier, credentials, result);
  // The secret's copy does not outlive the call.
  std::fill(buf, buf + sizeof buf, '\0');
  asm volatile("" : : "r"(buf) : "memory");
  return rc;
}

int tokenledger_verify_credentials(tokenledger_verifier* verifier, const char* credentials,
                                   size_t len, tokenledger_verify_result* result) {
  if (credentials == nullptr && len != 0)
    return fail(Failure::invalidArgument, "credentials is NULL with a non-zero length");
  return answer(verifier, std::string_view(credentials ? credentials : "", len), result);
}

int tokenledger_verify_authorization(tokenledger_verifier* verifier, const char* header, size_t len,
                                     tokenledger_verify_result* result) {
  if (header == nullptr && len != 0)
    return fail(Failure::invalidArgument, "header is NULL with a non-zero length");
  std::string credentials;
  // As Api::verify: a header that is not Basic credentials is "malformed".
  int rc = guarded([&] {
    tokenledger::decodeBasicAuth(std::string_view(header ? header : "", len), credentials);
    return 0;
  });
  if (rc != 0) return rc;
  rc = answer(verifier, credentials, result);
  std::fill(credentials.begin(), credentials.end(), '\0');
  return rc;
}

const char* tokenledger_verify_last_error(void) {
  return lastError.c_str();
}

const char* tokenledger_verify_status_name(int status) {
  switch (status) {
    case TOKENLEDGER_VERIFY_OK:
      return "ok";
    case TOKENLEDGER_VERIFY_E_INVALID_ARGUMENT:
      return "invalid_argument";
    case TOKENLEDGER_VERIFY_E_NO_READ_MODEL:
      return "no_read_model";
    case TOKENLEDGER_VERIFY_E_LAYOUT:
      return "layout";
    case TOKENLEDGER_VERIFY_E_PERMISSION:
      return "permission";
    case TOKENLEDGER_VERIFY_E_LMDB:
      return "lmdb";
    case TOKENLEDGER_VERIFY_E_INTERNAL:
      return "internal";
  }
  return "unknown";
}

int tokenledger_verify_get_stats(tokenledger_verifier* verifier, tokenledger_verify_stats* out) {
  if (verifier == nullptr || out == nullptr)
    return fail(Failure::invalidArgument, "the verifier and out must not be NULL");
  return guarded([&] {
    auto s = verifier->impl.stats();
    *out = tokenledger_verify_stats{s.reopens, s.watching ? 1 : 0, s.open ? 1 : 0,
                                    static_cast<uint64_t>(s.dev), static_cast<uint64_t>(s.ino)};
    return 0;
  });
}

}  // extern "C"
