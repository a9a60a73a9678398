// Log signing: every event carries an Ed25519 signature by the service that wrote
// it, the writer's key id, a per-writer sequence number and the digest of that
// writer's previous event. Together they make the log tamper-evident: see
// docs/audit.md for exactly what a verifier can and cannot detect.
//
// What is signed: the Cap'n Proto canonical encoding (capnp::canonicalize) of the
// envelope with its `signature` field cleared, prefixed by the context string
// "tokenledger-event-v1\n". Canonicalisation works on the wire layout, so fields a
// newer schema added are covered and verified by older readers too. The digest of
// an event is BLAKE2b-256 over the same bytes (prefix included).
//
// Key id: the first 8 bytes of BLAKE2b-256(public key), lower-case hex.
// Files: DATA_DIR/signing-key holds the private seed (mode 0600, format
// "tokenledger-ed25519-seed <base64 of 32 bytes>"); DATA_DIR/signing-keys.pub and
// `ledger-audit --keys` hold "key_id base64(public key)" lines.
//
// Thread safety: SigningKey and KeyRing are immutable after construction and safe
// to share; SignedAppender is thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "events/event.h"
#include "events/event_log.h"

namespace tokenledger {

constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;
constexpr size_t kSeedBytes = 32;
constexpr size_t kKeyIdChars = 16;
constexpr std::string_view kSigningContext = "tokenledger-event-v1\n";

using Digest = std::array<uint8_t, 32>;

std::string base64Encode(std::string_view bytes);
// Standard alphabet with padding; nullopt on anything else.
std::optional<std::string> base64Decode(std::string_view text);

std::string signingKeyIdOf(std::string_view publicKey);

// An Ed25519 key pair. The secret part is wiped on destruction and never printed.
class SigningKey {
 public:
  static SigningKey generate();
  // nullopt unless `seed` is 32 bytes.
  static std::optional<SigningKey> fromSeed(std::string_view seed);
  ~SigningKey();
  SigningKey(SigningKey&& other) noexcept;
  SigningKey& operator=(SigningKey&& other) noexcept;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;

  const std::string& keyId() const { return keyId_; }
  const std::string& publicKey() const { return publicKey_; }  // 32 raw bytes
  std::string sign(std::string_view message) const;            // 64 bytes, detached
  // The contents of DATA_DIR/signing-key (holds the secret seed).
  std::string toFileText() const;
  // "key_id base64(public key)", the line for signing-keys.pub.
  std::string publicKeyLine() const;

 private:
  SigningKey() = default;
  void derive();
  std::array<unsigned char, 64> secret_{};
  std::string publicKey_;
  std::string keyId_;
};

// Parses the contents of a signing-key file; nullopt when it is not one.
std::optional<SigningKey> parseSigningKeyFile(std::string_view text);

struct PublicKey {
  std::string keyId;
  std::string key;  // 32 raw bytes
};

// The public keys a verifier trusts.
class KeyRing {
 public:
  // Adds "key_id base64" lines (blank lines and '#' comments ignored). Returns an
  // error naming `source` and the line when one is malformed or its key id does not
  // match its key; nothing is added then.
  std::optional<std::string> addLines(std::string_view text, std::string_view source);
  void add(const std::string& publicKey);
  const PublicKey* find(std::string_view keyId) const;
  const std::vector<PublicKey>& keys() const { return keys_; }

 private:
  std::vector<PublicKey> keys_;
};

// The bytes a signature covers (context prefix + canonical envelope without its
// signature). nullopt when `envelope` is not a readable Cap'n Proto message.
std::optional<std::string> signedBytes(std::string_view envelope);
Digest digestOf(std::string_view signedBytes);

// Sets event.signingKeyId and event.signature (writerSeq and prevDigest must be set
// already: they are signed). Returns the event's digest.
Digest signEvent(Event& event, const SigningKey& key);

enum class SignatureStatus { valid, unsignedEvent, unknownKey, invalid, malformed };
std::string_view toString(SignatureStatus status);

struct SignatureCheck {
  SignatureStatus status = SignatureStatus::malformed;
  std::string keyId;
  uint64_t writerSeq = 0;
  std::string prevDigest;
  Digest digest{};  // of the signed bytes; set unless malformed
};

// Checks one raw envelope against `keys`. Never throws.
SignatureCheck checkSignature(std::string_view envelope, const KeyRing& keys);

// Where a writer's sequence stands, persisted in DATA_DIR/signing-state so a
// restart continues it.
struct WriterState {
  uint64_t lastSeq = 0;
  std::string lastDigest;  // 32 bytes, empty before the first event
  // Per partition: no event of this writer newer than lastSeq lies before these
  // offsets (so a restart scans only from here).
  Offsets scanFrom;
};

// "key_id seq digest_hex offsets"
std::string formatWriterState(const std::string& keyId, const WriterState& state);
// nullopt unless the text is a state line for `keyId`.
std::optional<WriterState> parseWriterState(std::string_view text, const std::string& keyId);

// Reads `log` from state.scanFrom to its current end and returns the state with the
// highest sequence number of `keyId` found there (and scanFrom at the end).
WriterState recoverWriterState(EventLog& log, const std::string& keyId, WriterState state);

// Signs and appends events as one writer: assigns writerSeq 1, 2, 3, … and chains
// prevDigest, in exactly the order the events land in each partition. An append
// that recorded nothing (LogUnavailable::nothingRecorded) gives its numbers back,
// so the chain has no gap for it; it fails the passes signed after it too, since
// they chained on it. Only an append of unknown outcome leaves its numbers spent. Two threads
// of its own: one signs whatever callers queued meanwhile, the other appends
// everything signed as one log append (group commit), so sequencing costs no extra
// round trip, signing overlaps the previous append's round trip, and callers that
// cannot block (the HTTP loops) queue and go on.
class SignedAppender {
 public:
  using Persist = std::function<void(const WriterState&)>;
  using Warn = std::function<void(const std::string&)>;
  // What became of one append: the events with their signing fields filled in,
  // and their positions, or the LogUnavailable (or other error) that failed them.
  struct Appended {
    std::vector<Event> events;
    std::vector<Position> positions;
    std::exception_ptr error;
  };
  using Done = std::function<void(Appended&)>;

  SignedAppender(EventLog& log, SigningKey key, WriterState state, Persist persist, Warn warn);
  // Writes what is queued, then persists the last state (appends persist it at
  // most every kPersistEvery).
  ~SignedAppender();
  SignedAppender(const SignedAppender&) = delete;
  SignedAppender& operator=(const SignedAppender&) = delete;

  // Appends `events` (all of `owner`) in order and waits; fills in their signing
  // fields. Throws LogUnavailable like EventLog::append. Thread-safe.
  std::vector<Position> append(const std::string& owner, std::vector<Event>& events);
  // Queues `events` (all of `owner`) and returns at once; `done` runs on the
  // appender's thread once they are appended or failed. It must not throw or block
  // for long: the next batch waits for it. Thread-safe.
  void appendAsync(std::string owner, std::vector<Event> events, Done done);

  const SigningKey& key() const { return key_; }

 private:
  struct Request {
    std::string owner;
    Appended appended;
    Done done;
  };
  // One signing pass: the requests it took, their records in order, and where the
  // writer's sequence stood after it.
  struct Signed {
    std::vector<Request> requests;
    std::vector<std::pair<std::string, std::string>> records;  // (owner, envelope)
    uint64_t firstSeq = 0;
    std::string startDigest;  // the chain's digest before this pass
    uint64_t lastSeq = 0;
    std::string lastDigest;
    // None of it is appended: signing failed (and spent no number), or an earlier
    // append that recorded nothing rewound the chain this pass was signed on.
    std::exception_ptr error;
  };
  void signLoop();
  Signed sign(std::vector<Request> batch);
  void appendLoop();
  void write(std::deque<Signed>& ready);

  EventLog& log_;
  SigningKey key_;
  Persist persist_;
  Warn warn_;
  // A stale state file costs a restart a longer scan, never a wrong sequence
  // (recoverWriterState reads on from scanFrom), so a busy writer does not pay a
  // file write per batch.
  static constexpr std::chrono::milliseconds kPersistEvery{200};
  void persist();
  WriterState state_;  // these three: the appender thread's (state_ as appended)
  std::chrono::steady_clock::time_point persistedAt_{};
  bool unpersisted_ = false;
  uint64_t seq_;        // the signer thread's: the last sequence number handed out
  std::string digest_;  // and its digest

  std::mutex mutex_;
  std::condition_variable queued_;       // the signer waits for requests
  std::condition_variable signedReady_;  // the appender waits for signed passes
  std::vector<Request> queue_;
  std::deque<Signed> signed_;
  // An append that recorded nothing gives its sequence numbers back: the appender
  // sets where the chain continues, and bumps the epoch so that a pass signed
  // meanwhile on the old chain is dropped (with the append's error).
  std::optional<std::pair<uint64_t, std::string>> rewind_;
  uint64_t epoch_ = 0;
  std::exception_ptr rewoundBy_;
  bool stopping_ = false;
  bool signerDone_ = false;
  std::thread signer_;  // last two: start once everything above is set up
  std::thread appender_;
};

}  // namespace tokenledger
