#include "events/signing.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <sodium.h>

#include <cstring>
#include <deque>
#include <exception>
#include <future>
#include <sstream>
#include <tuple>

#include "events/capnp_util.h"
#include "events/secrets.h"
#include "schemas/tokenledger.capnp.h"

namespace tokenledger {
namespace {

namespace s = schema;

capnp::ReaderOptions readerOptions() {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = 1 << 20;
  o.nestingLimit = 16;
  return o;
}

// Canonical bytes of `env` with the signature cleared, with the context prefix.
std::string canonicalWithoutSignature(s::Envelope::Reader env) {
  capnp::MallocMessageBuilder copy;
  copy.setRoot(env);  // copies the wire layout, unknown (newer) fields included
  auto root = copy.getRoot<s::Envelope>();
  if (root.hasSignature()) root.disownSignature();
  kj::Array<capnp::word> canonical = capnp::canonicalize(root.asReader());
  auto bytes = canonical.asBytes();
  std::string out(kSigningContext);
  out.append(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  return out;
}

bool isHexKeyId(std::string_view s) {
  if (s.size() != kKeyIdChars) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return std::string(s);
}

std::optional<std::string> fromHex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out(hex.size() / 2, '\0');
  size_t len = 0;
  if (sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), hex.data(),
                     hex.size(), nullptr, &len, nullptr) != 0 ||
      len != out.size())
    return std::nullopt;
  return out;
}

}  // namespace

std::string base64Encode(std::string_view bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(strlen(out.c_str()));
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  // libsodium 1.0.18 (Debian 12) reads every byte from 0x80 up as '/'.
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) return std::nullopt;
  std::string out(text.size() * 3 / 4 + 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size())
    return std::nullopt;
  out.resize(len);
  return out;
}

std::string signingKeyIdOf(std::string_view publicKey) {
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(publicKey.data()),
                     publicKey.size(), nullptr, 0);
  return toHex(std::string_view(reinterpret_cast<const char*>(h), 8));
}

SigningKey SigningKey::generate() {
  initCrypto();
  SigningKey k;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_keypair(pk, k.secret_.data());
  k.derive();
  return k;
}

std::optional<SigningKey> SigningKey::fromSeed(std::string_view seed) {
  if (seed.size() != kSeedBytes) return std::nullopt;
  initCrypto();
  SigningKey k;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_seed_keypair(pk, k.secret_.data(),
                           reinterpret_cast<const unsigned char*>(seed.data()));
  k.derive();
  return k;
}

void SigningKey::derive() {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_ed25519_sk_to_pk(pk, secret_.data());
  publicKey_.assign(reinterpret_cast<const char*>(pk), sizeof pk);
  keyId_ = signingKeyIdOf(publicKey_);
}

SigningKey::~SigningKey() {
  sodium_memzero(secret_.data(), secret_.size());
}

SigningKey::SigningKey(SigningKey&& other) noexcept
    : secret_(other.secret_),
      publicKey_(std::move(other.publicKey_)),
      keyId_(std::move(other.keyId_)) {
  sodium_memzero(other.secret_.data(), other.secret_.size());
}

SigningKey& SigningKey::operator=(SigningKey&& other) noexcept {
  if (this != &other) {
    secret_ = other.secret_;
    sodium_memzero(other.secret_.data(), other.secret_.size());
    publicKey_ = std::move(other.publicKey_);
    keyId_ = std::move(other.keyId_);
  }
  return *this;
}

std::string SigningKey::sign(std::string_view message) const {
  std::string sig(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       secret_.data());
  return sig;
}

std::string SigningKey::toFileText() const {
  unsigned char seed[crypto_sign_SEEDBYTES];
  crypto_sign_ed25519_sk_to_seed(seed, secret_.data());
  std::string text =
      "tokenledger-ed25519-seed " +
      base64Encode(std::string_view(reinterpret_cast<const char*>(seed), sizeof seed)) + "\n";
  sodium_memzero(seed, sizeof seed);
  return text;
}

std::string SigningKey::publicKeyLine() const {
  return keyId_ + " " + base64Encode(publicKey_);
}

std::optional<SigningKey> parseSigningKeyFile(std::string_view text) {
  constexpr std::string_view kPrefix = "tokenledger-ed25519-seed ";
  std::string line = trim(text);
  if (!std::string_view(line).starts_with(kPrefix)) return std::nullopt;
  auto seed = base64Decode(std::string_view(line).substr(kPrefix.size()));
  if (!seed) return std::nullopt;
  auto key = SigningKey::fromSeed(*seed);
  sodium_memzero(seed->data(), seed->size());
  sodium_memzero(line.data(), line.size());
  return key;
}

std::optional<std::string> KeyRing::addLines(std::string_view text, std::string_view source) {
  std::vector<PublicKey> found;
  std::istringstream in{std::string(text)};
  std::string raw;
  int lineNo = 0;
  while (std::getline(in, raw)) {
    ++lineNo;
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#') continue;
    auto bad = [&](const std::string& why) {
      return std::string(source) + ":" + std::to_string(lineNo) + ": " + why +
             " (want \"KEY_ID BASE64_PUBLIC_KEY\")";
    };
    auto space = line.find_first_of(" \t");
    if (space == std::string::npos) return bad("no public key");
    std::string id = line.substr(0, space);
    std::string b64 = trim(line.substr(space + 1));
    auto key = base64Decode(b64);
    if (!isHexKeyId(id)) return bad("key id must be 16 lower-case hex characters");
    if (!key || key->size() != kPublicKeyBytes) return bad("public key must be 32 bytes in base64");
    if (signingKeyIdOf(*key) != id) return bad("key id " + id + " does not belong to this key");
    found.push_back(PublicKey{id, *key});
  }
  for (auto& k : found)
    if (!find(k.keyId)) keys_.push_back(std::move(k));
  return std::nullopt;
}

void KeyRing::add(const std::string& publicKey) {
  std::string id = signingKeyIdOf(publicKey);
  if (!find(id)) keys_.push_back(PublicKey{id, publicKey});
}

const PublicKey* KeyRing::find(std::string_view keyId) const {
  for (const auto& k : keys_)
    if (k.keyId == keyId) return &k;
  return nullptr;
}

std::optional<std::string> signedBytes(std::string_view envelope) {
  if (envelope.empty() || envelope.size() % 8 != 0) return std::nullopt;
  try {
    std::vector<uint64_t> copy;
    capnp::FlatArrayMessageReader reader(wordsOf(envelope, copy), readerOptions());
    return canonicalWithoutSignature(reader.getRoot<s::Envelope>());
  } catch (const kj::Exception&) {
    return std::nullopt;
  }
}

Digest digestOf(std::string_view bytes) {
  Digest d{};
  crypto_generichash(d.data(), d.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size(), nullptr, 0);
  return d;
}

Digest signEvent(Event& event, const SigningKey& key) {
  event.signingKeyId = key.keyId();
  event.signature.clear();
  auto bytes = signedBytes(encodeEvent(event));
  if (!bytes) throw std::logic_error("cannot canonicalise an event this build encoded");
  event.signature = key.sign(*bytes);
  return digestOf(*bytes);
}

std::string_view toString(SignatureStatus status) {
  switch (status) {
    case SignatureStatus::valid:
      return "valid";
    case SignatureStatus::unsignedEvent:
      return "unsigned";
    case SignatureStatus::unknownKey:
      return "unknown key";
    case SignatureStatus::invalid:
      return "invalid signature";
    case SignatureStatus::malformed:
      return "malformed";
  }
  return "malformed";
}

SignatureCheck checkSignature(std::string_view envelope, const KeyRing& keys) {
  SignatureCheck out;
  if (envelope.empty() || envelope.size() % 8 != 0) return out;
  try {
    std::vector<uint64_t> copy;
    capnp::FlatArrayMessageReader reader(wordsOf(envelope, copy), readerOptions());
    auto env = reader.getRoot<s::Envelope>();
    auto kid = env.getSigningKeyId();
    out.keyId = std::string(kid.begin(), kid.size());
    out.writerSeq = env.getWriterSeq();
    out.prevDigest = std::string(viewOf(env.getPrevDigest()));
    std::string signature(viewOf(env.getSignature()));
    std::string bytes = canonicalWithoutSignature(env);
    out.digest = digestOf(bytes);
    if (signature.empty()) {
      out.status = SignatureStatus::unsignedEvent;
      return out;
    }
    const PublicKey* key = keys.find(out.keyId);
    if (key == nullptr) {
      out.status = SignatureStatus::unknownKey;
      return out;
    }
    bool ok = signature.size() == crypto_sign_BYTES &&
              crypto_sign_verify_detached(
                  reinterpret_cast<const unsigned char*>(signature.data()),
                  reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                  reinterpret_cast<const unsigned char*>(key->key.data())) == 0;
    out.status = ok ? SignatureStatus::valid : SignatureStatus::invalid;
    return out;
  } catch (const kj::Exception&) {
    out.status = SignatureStatus::malformed;
    return out;
  }
}

std::string formatWriterState(const std::string& keyId, const WriterState& state) {
  return keyId + " " + std::to_string(state.lastSeq) + " " +
         (state.lastDigest.empty() ? std::string("-") : toHex(state.lastDigest)) + " " +
         (state.scanFrom.next.empty() ? std::string("-") : state.scanFrom.toString()) + "\n";
}

std::optional<WriterState> parseWriterState(std::string_view text, const std::string& keyId) {
  std::istringstream in{std::string(text)};
  std::string id, seq, digest, offsets;
  if (!(in >> id >> seq >> digest >> offsets) || id != keyId) return std::nullopt;
  WriterState st;
  if (seq.empty() || seq.size() > 19 || seq.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  st.lastSeq = std::stoull(seq);
  if (digest != "-") {
    auto d = fromHex(digest);
    if (!d || d->size() != 32) return std::nullopt;
    st.lastDigest = *d;
  }
  if (offsets != "-") {
    auto o = Offsets::parse(offsets);
    if (!o) return std::nullopt;
    st.scanFrom = *o;
  }
  return st;
}

WriterState recoverWriterState(EventLog& log, const std::string& keyId, WriterState state) {
  Offsets from = state.scanFrom;
  from.next.resize(static_cast<size_t>(log.partitionCount()), 0);
  auto reader = log.openReader(from);
  Offsets end = reader->endOffsets();
  std::vector<int64_t> seen = from.next;
  auto reached = [&] {
    for (size_t p = 0; p < end.next.size(); ++p)
      if (seen[p] < end.next[p]) return false;
    return true;
  };
  KeyRing none;
  while (!reached()) {
    for (const auto& r : reader->poll(4096, std::chrono::milliseconds(500))) {
      auto p = static_cast<size_t>(r.position.partition);
      if (p < seen.size()) seen[p] = std::max(seen[p], r.position.offset + 1);
      auto check = checkSignature(r.value, none);
      if (check.status == SignatureStatus::malformed || check.keyId != keyId) continue;
      if (check.writerSeq > state.lastSeq) {
        state.lastSeq = check.writerSeq;
        state.lastDigest.assign(reinterpret_cast<const char*>(check.digest.data()),
                                check.digest.size());
      }
    }
  }
  state.scanFrom = end;
  return state;
}

SignedAppender::SignedAppender(EventLog& log, SigningKey key, WriterState state, Persist persist,
                               Warn warn)
    : log_(log),
      key_(std::move(key)),
      persist_(std::move(persist)),
      warn_(std::move(warn)),
      state_(std::move(state)),
      seq_(state_.lastSeq),
      digest_(state_.lastDigest) {
  state_.scanFrom.next.resize(static_cast<size_t>(log_.partitionCount()), 0);
  signer_ = std::thread([this] { signLoop(); });
  appender_ = std::thread([this] { appendLoop(); });
}

SignedAppender::~SignedAppender() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  queued_.notify_one();
  signer_.join();
  appender_.join();
  if (unpersisted_) persist();
}

void SignedAppender::persist() {
  unpersisted_ = false;
  persistedAt_ = std::chrono::steady_clock::now();
  if (!persist_) return;
  try {
    persist_(state_);
  } catch (const std::exception& e) {
    if (warn_) warn_(std::string("cannot persist the signing state: ") + e.what());
  }
}

std::vector<Position> SignedAppender::append(const std::string& owner, std::vector<Event>& events) {
  std::promise<void> written;
  Appended result;
  appendAsync(owner, std::move(events), [&](Appended& a) {
    result = std::move(a);
    written.set_value();
  });
  written.get_future().wait();
  events = std::move(result.events);
  if (result.error) std::rethrow_exception(result.error);
  return std::move(result.positions);
}

void SignedAppender::appendAsync(std::string owner, std::vector<Event> events, Done done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(
        Request{std::move(owner), Appended{std::move(events), {}, nullptr}, std::move(done)});
  }
  // A busy signer is not waiting: this wakes it only when it idles.
  queued_.notify_one();
}

void SignedAppender::signLoop() {
  std::vector<Request> batch;
  std::unique_lock lock(mutex_);
  while (true) {
    queued_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping, and everything queued is signed
    if (rewind_) {
      std::tie(seq_, digest_) = *rewind_;
      rewind_.reset();
    }
    batch.swap(queue_);
    const uint64_t epoch = epoch_;
    lock.unlock();
    Signed s = sign(std::move(batch));
    batch.clear();
    lock.lock();
    if (epoch != epoch_ && !s.error) {
      // Chained on an append that recorded nothing: drop it (the next pass starts
      // from the rewound chain).
      s.error = rewoundBy_;
      s.records.clear();
    }
    signed_.push_back(std::move(s));
    signedReady_.notify_one();
  }
  signerDone_ = true;
  signedReady_.notify_one();
}

SignedAppender::Signed SignedAppender::sign(std::vector<Request> batch) {
  Signed s;
  s.requests = std::move(batch);
  s.firstSeq = seq_ + 1;
  s.startDigest = digest_;
  try {
    for (auto& r : s.requests) {
      for (auto& e : r.appended.events) {
        e.writerSeq = ++seq_;
        e.prevDigest = digest_;
        Digest d = signEvent(e, key_);
        digest_.assign(reinterpret_cast<const char*>(d.data()), d.size());
        s.records.emplace_back(r.owner, encodeEvent(e));
      }
    }
  } catch (...) {
    // Nothing of the pass is appended, so its numbers are not spent.
    s.error = std::current_exception();
    s.records.clear();
    seq_ = s.firstSeq - 1;
    digest_ = s.startDigest;
  }
  s.lastSeq = seq_;
  s.lastDigest = digest_;
  return s;
}

void SignedAppender::appendLoop() {
  std::deque<Signed> ready;
  std::unique_lock lock(mutex_);
  while (true) {
    signedReady_.wait(lock, [&] { return signerDone_ || !signed_.empty(); });
    if (signed_.empty()) return;  // the signer ended, and everything it signed is written
    ready.swap(signed_);
    lock.unlock();
    write(ready);
    for (auto& s : ready)
      for (auto& r : s.requests) r.done(r.appended);
    ready.clear();
    lock.lock();
  }
}

namespace {

bool recordedNothing(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const LogUnavailable& e) {
    return e.nothingRecorded();
  } catch (...) {
    return false;
  }
}

}  // namespace

// On the appender thread: state_ is ours. Must not throw. Everything signed since
// the last append goes in one append, in signing order.
void SignedAppender::write(std::deque<Signed>& ready) {
  std::vector<std::pair<std::string, std::string>> records;
  const Signed* last = nullptr;  // the last pass that is appended now
  for (auto& s : ready) {
    if (s.error) continue;
    for (auto& r : s.records) records.push_back(std::move(r));
    last = &s;
  }
  bool oneOwner = true;
  for (const auto& r : records) oneOwner = oneOwner && r.first == records.front().first;
  std::vector<Position> positions;
  std::exception_ptr error;
  try {
    if (records.empty()) {
      // Only dropped passes.
    } else if (oneOwner) {
      std::vector<std::string> values;
      for (auto& rec : records) values.push_back(std::move(rec.second));
      positions = log_.append(records.front().first, values);
    } else {
      positions = log_.appendBatch(records);
    }
  } catch (...) {
    error = std::current_exception();
  }
  const Signed* first = nullptr;
  for (const auto& s : ready)
    if (!s.error && !first) first = &s;
  std::deque<Signed> dropped;
  if (last && error && recordedNothing(error)) {
    // The log took none of it: give the numbers back. What the signer signed since
    // chained on these events, so it fails with them (none of it was appended).
    {
      std::lock_guard lock(mutex_);
      rewind_ = std::make_pair(first->firstSeq - 1, first->startDigest);
      epoch_++;
      rewoundBy_ = error;
      dropped.swap(signed_);
    }
    if (warn_)
      warn_("signing key " + key_.keyId() + ": append of writer sequence " +
            std::to_string(first->firstSeq) + "-" + std::to_string(last->lastSeq) +
            " recorded nothing; the sequence continues at " + std::to_string(first->firstSeq));
  } else if (last) {
    // Sequence numbers are never reused: after a failed append whose outcome is
    // unknown they are spent, and verify-log reports them missing if they never landed.
    state_.lastSeq = last->lastSeq;
    state_.lastDigest = last->lastDigest;
    if (error && warn_)
      warn_("signing key " + key_.keyId() + ": append of writer sequence " +
            std::to_string(first->firstSeq) + "-" + std::to_string(last->lastSeq) +
            " failed with an unknown outcome; events that did not reach the log will show as "
            "missing in ledger-audit verify-log");
    if (!error) {
      for (const auto& p : positions) {
        auto part = static_cast<size_t>(p.partition);
        if (state_.scanFrom.next.size() <= part) state_.scanFrom.next.resize(part + 1, 0);
        state_.scanFrom.next[part] = std::max(state_.scanFrom.next[part], p.offset + 1);
      }
    }
    unpersisted_ = true;
    if (error || std::chrono::steady_clock::now() - persistedAt_ >= kPersistEvery) persist();
  }
  size_t i = 0;
  for (auto& s : ready) {
    for (auto& r : s.requests) {
      if (s.error || error) {
        r.appended.error = s.error ? s.error : error;
      } else {
        for (size_t k = 0; k < r.appended.events.size(); ++k)
          r.appended.positions.push_back(positions[i++]);
      }
    }
  }
  for (auto& s : dropped) {
    for (auto& r : s.requests) r.appended.error = s.error ? s.error : error;
    ready.push_back(std::move(s));  // the caller runs their callbacks after these
  }
}

}  // namespace tokenledger
