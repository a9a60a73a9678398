/* libtokenledger_verify: "is key:token valid now?" answered from the read model of
 * a tokenledgerd replica on the same host, without an HTTP round trip.
 *
 * The library opens DATA_DIR/projection (the replica's LMDB read model) read-only
 * and answers exactly what POST /v1/verify answers, reasons included. A change the
 * daemon committed (a deactivation whose HTTP call returned) is seen by the next
 * call. Every function is safe to call from any number of threads at once, except
 * tokenledger_verify_close, which must be the last call on its handle. No function
 * throws or longjmps; none logs; no message ever contains a secret.
 *
 * Guide for gateway authors: docs/verify-library.md. ABI version 1 (SONAME
 * libtokenledger_verify.so.1); every symbol starts with tokenledger_verify. */
#ifndef TOKENLEDGER_VERIFY_H
#define TOKENLEDGER_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TOKENLEDGER_VERIFY_BUILDING)
#define TOKENLEDGER_VERIFY_API __attribute__((visibility("default")))
#else
#define TOKENLEDGER_VERIFY_API
#endif

/* What a function returns. Anything but OK means "no answer": the result says
 * nothing, and tokenledger_verify_last_error() tells why and what to do. */
typedef enum tokenledger_verify_status {
  TOKENLEDGER_VERIFY_OK = 0,                 /* answered: see result.valid / reason */
  TOKENLEDGER_VERIFY_E_INVALID_ARGUMENT = 1, /* a NULL pointer where one is needed */
  TOKENLEDGER_VERIFY_E_NO_READ_MODEL = 2,    /* DATA_DIR/projection is not there (yet):
                                                tokenledgerd never ran on DATA_DIR, or is
                                                rebuilding it, or the path is wrong */
  TOKENLEDGER_VERIFY_E_LAYOUT = 3,           /* the read model has another layout version
                                                than this library reads: use the library
                                                of the same build as tokenledgerd */
  TOKENLEDGER_VERIFY_E_PERMISSION = 4,       /* this process may not read it (see the
                                                guide: tokenledgerd --reader-group) */
  TOKENLEDGER_VERIFY_E_LMDB = 5,             /* LMDB refused (e.g. no reader slot left) */
  TOKENLEDGER_VERIFY_E_INTERNAL = 6          /* out of memory, or a bug */
} tokenledger_verify_status;

/* Why a credential is (in)valid: the "reason" of /v1/verify. */
typedef enum tokenledger_verify_reason {
  TOKENLEDGER_VERIFY_REASON_OK = 0,
  TOKENLEDGER_VERIFY_REASON_MALFORMED = 1, /* not "tlk_…:tls_…" with a valid checksum */
  TOKENLEDGER_VERIFY_REASON_UNKNOWN = 2,   /* no such token key */
  TOKENLEDGER_VERIFY_REASON_INACTIVE = 3,  /* deactivated (or its rotation grace ended) */
  TOKENLEDGER_VERIFY_REASON_EXPIRED = 4,   /* past its expires_at */
  TOKENLEDGER_VERIFY_REASON_BAD_SECRET = 5 /* the key exists, the token is not its own */
} tokenledger_verify_reason;

typedef enum tokenledger_verify_kind {
  TOKENLEDGER_VERIFY_KIND_USER = 0,
  TOKENLEDGER_VERIFY_KIND_DESTINATION = 1
} tokenledger_verify_kind;

/* One answer. Everything but valid, reason and reason_text is set only when valid
 * (as /v1/verify shows owner, kind and destination_id only then); strings are
 * NUL-terminated; *_text point to static strings. */
typedef struct tokenledger_verify_result {
  int valid;                /* 1 when reason is OK, else 0 */
  int reason;               /* tokenledger_verify_reason */
  const char* reason_text;  /* "ok", "malformed", "unknown", "inactive", "expired",
                               "bad_secret": the JSON "reason" of /v1/verify */
  int kind;                 /* tokenledger_verify_kind */
  const char* kind_text;    /* "user" or "destination" ("" when not valid) */
  char key[32];             /* the token key (tlk_…) */
  char owner[256];          /* the user id that owns the token (at most 255 bytes) */
  char destination_id[256]; /* destination tokens only, else "" */
  int64_t expires_at_us;    /* microseconds since the Unix epoch; 0: never expires */
  int64_t deactivate_at_us; /* a rotation's grace end; 0: none scheduled */
} tokenledger_verify_result;

typedef struct tokenledger_verifier tokenledger_verifier;

/* Opens the read model of the tokenledgerd whose --data-dir is `data_dir`
 * (DATA_DIR/projection). On success *out is the handle; otherwise *out is NULL and
 * the status says why (NO_READ_MODEL, LAYOUT, PERMISSION, …). Open it in the process
 * that uses it (after fork(), never before: LMDB handles do not survive fork). Opens
 * one watcher thread (inotify) that notices the read model being replaced. */
TOKENLEDGER_VERIFY_API int tokenledger_verify_open(const char* data_dir,
                                                   tokenledger_verifier** out);

/* Closes the handle (NULL is fine). No call on it may run or follow. */
TOKENLEDGER_VERIFY_API void tokenledger_verify_close(tokenledger_verifier* verifier);

/* Verifies a token key and its token (secret), each with its length (no NUL
 * needed). Returns OK with the answer in *result, or an error status. */
TOKENLEDGER_VERIFY_API int tokenledger_verify(tokenledger_verifier* verifier, const char* key,
                                              size_t key_len, const char* secret, size_t secret_len,
                                              tokenledger_verify_result* result);

/* The same with "key:token", the text of HTTP Basic credentials. */
TOKENLEDGER_VERIFY_API int tokenledger_verify_credentials(tokenledger_verifier* verifier,
                                                          const char* credentials, size_t len,
                                                          tokenledger_verify_result* result);

/* The same with an Authorization header's value ("Basic base64(key:token)"), read
 * exactly as /v1/verify reads it (anything else: reason malformed). */
TOKENLEDGER_VERIFY_API int tokenledger_verify_authorization(tokenledger_verifier* verifier,
                                                            const char* header, size_t len,
                                                            tokenledger_verify_result* result);

/* Why the calling thread's last failing call failed, and what to do ("" if none
 * failed yet; successful calls leave it as it was, like errno). Valid until this
 * thread's next failing call. */
TOKENLEDGER_VERIFY_API const char* tokenledger_verify_last_error(void);

/* "ok", "invalid_argument", "no_read_model", "layout", "permission", "lmdb",
 * "internal" (static strings; "unknown" for other values). */
TOKENLEDGER_VERIFY_API const char* tokenledger_verify_status_name(int status);

/* What the handle is doing, for monitoring and tests. */
typedef struct tokenledger_verify_stats {
  uint64_t reopens;  /* times the read model was (re)opened: 1 after open, +1 per
                        replacement (rebuild) or map growth beyond the reservation */
  int watching;      /* 1: inotify tells of replacements; 0: each call stat()s */
  int open;          /* 1: a read model is open now */
  uint64_t data_dev; /* device and inode of the open data.mdb (0 when none) */
  uint64_t data_ino;
} tokenledger_verify_stats;
TOKENLEDGER_VERIFY_API int tokenledger_verify_get_stats(tokenledger_verifier* verifier,
                                                        tokenledger_verify_stats* out);

#ifdef __cplusplus
}
#endif

#endif /* TOKENLEDGER_VERIFY_H */
