#include "events/signing.h"

#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <exception>
#include <future>
#include <sstream>
#include <tuple>

#include "events/big_endian.h"
#include "events/capnp_util.h"
#include "events/merkle.h"
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

// Where the fields an event's digest leaves out (the signature and the group
// fields) are in the envelope's wire layout, read from the schema.
struct UnsignedLayout {
  std::array<uint32_t, 3> pointers;   // signature, groupSignature, groupProof
  std::array<uint32_t, 2> dataBytes;  // groupLeaf, groupSize: 4 bytes each
};

const UnsignedLayout& unsignedLayout() {
  static const UnsignedLayout layout = [] {
    auto schema = capnp::Schema::from<s::Envelope>();
    auto offset = [&](const char* name) {
      return schema.getFieldByName(name).getProto().getSlot().getOffset();
    };
    return UnsignedLayout{{offset("signature"), offset("groupSignature"), offset("groupProof")},
                          {offset("groupLeaf") * 4, offset("groupSize") * 4}};
  }();
  return layout;
}

// The canonical encoding of `env` with the signature and the group fields cleared:
// what an event's digest covers, after the context prefix. The same bytes as
// copying the whole envelope (unknown, newer fields included), clearing those
// fields and canonicalising the copy, without copying what is cleared. `scratch`:
// zeroed words for the copy's first segment (zeroed again afterwards), or empty.
kj::Array<capnp::word> canonicalUnsigned(s::Envelope::Reader env, size_t messageWords,
                                         kj::ArrayPtr<capnp::word> scratch = nullptr) {
  const UnsignedLayout& layout = unsignedLayout();
  capnp::AnyStruct::Reader in(env);
  auto data = in.getDataSection();
  auto pointers = in.getPointerSection();
  std::optional<capnp::MallocMessageBuilder> owned;
  capnp::MallocMessageBuilder& copy =
      scratch.size() >= messageWords + 4
          ? owned.emplace(scratch)
          : owned.emplace(static_cast<unsigned>(std::min<size_t>(messageWords + 4, 1 << 20)));
  auto out = copy.getRoot<capnp::AnyPointer>().initAsAnyStruct(
      static_cast<uint16_t>((data.size() + 7) / 8), static_cast<uint16_t>(pointers.size()));
  auto outData = out.getDataSection();
  if (data.size() > 0)  // an empty data section has no address (memcpy from null is UB)
    memcpy(outData.begin(), data.begin(), data.size());
  for (uint32_t at : layout.dataBytes)
    if (at + 4 <= outData.size()) memset(outData.begin() + at, 0, 4);
  auto outPointers = out.getPointerSection();
  for (unsigned i = 0; i < pointers.size(); ++i) {
    if (std::find(layout.pointers.begin(), layout.pointers.end(), i) != layout.pointers.end())
      continue;
    outPointers[i].set(pointers[i]);
  }
  return capnp::AnyStruct::Reader(out.asReader()).canonicalize();
}

std::string withContext(const kj::Array<capnp::word>& canonical) {
  auto bytes = canonical.asBytes();
  std::string out;
  out.reserve(kSigningContext.size() + bytes.size());
  out.append(kSigningContext);
  out.append(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  return out;
}

Digest digestOfCanonical(const kj::Array<capnp::word>& canonical) {
  Digest d{};
  auto bytes = canonical.asBytes();
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, d.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(kSigningContext.data()),
                            kSigningContext.size());
  crypto_generichash_update(&st, bytes.begin(), bytes.size());
  crypto_generichash_final(&st, d.data(), d.size());
  return d;
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

bool signatureValid(std::string_view publicKey, std::string_view message,
                    std::string_view signature) {
  return publicKey.size() == crypto_sign_PUBLICKEYBYTES && signature.size() == crypto_sign_BYTES &&
         crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature.data()),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(),
                                     reinterpret_cast<const unsigned char*>(publicKey.data())) == 0;
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
    return withContext(canonicalUnsigned(reader.getRoot<s::Envelope>(), envelope.size() / 8));
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

Digest eventDigest(const Event& event) {
  auto bytes = signedBytes(encodeEvent(event));
  if (!bytes) throw std::logic_error("cannot canonicalise an event this build encoded");
  return digestOf(*bytes);
}

std::string groupSignedBytes(uint32_t groupSize, const Digest& root) {
  std::string out(kGroupSigningContext);
  appendBigEndian(out, groupSize, 4);
  out.append(reinterpret_cast<const char*>(root.data()), root.size());
  return out;
}

Digest signEvent(Event& event, const SigningKey& key) {
  event.signingKeyId = key.keyId();
  event.signature.clear();
  event.groupSignature.clear();
  event.groupProof.clear();
  event.groupLeaf = 0;
  event.groupSize = 0;
  auto bytes = signedBytes(encodeEvent(event));
  if (!bytes) throw std::logic_error("cannot canonicalise an event this build encoded");
  event.signature = key.sign(*bytes);
  return digestOf(*bytes);
}

void signGroup(std::span<Event* const> events, std::span<const Digest> digests,
               const SigningKey& key) {
  if (events.empty()) throw std::invalid_argument("a group needs at least one event");
  if (digests.size() != events.size())
    throw std::invalid_argument("a group needs one digest per event");
  if (events.size() > UINT32_MAX) throw std::invalid_argument("a group of more than 2^32-1");
  std::vector<Digest> leaves(digests.begin(), digests.end());
  const auto size = static_cast<uint32_t>(events.size());
  std::string signature = key.sign(groupSignedBytes(size, merkle::root(leaves)));
  for (uint32_t i = 0; i < size; ++i) {
    Event& e = *events[i];
    e.signature.clear();
    e.groupSignature = signature;
    e.groupProof.clear();
    for (const Digest& d : merkle::proof(leaves, i))
      e.groupProof.emplace_back(reinterpret_cast<const char*>(d.data()), d.size());
    e.groupLeaf = i;
    e.groupSize = size;
  }
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

size_t SignatureVerifier::setOf(const Digest& root) {
  uint64_t v;
  memcpy(&v, root.data(), sizeof v);
  return static_cast<size_t>(v % (kRemembered / kWays));
}

bool SignatureVerifier::remembered(const std::string& publicKey, uint32_t groupSize,
                                   const Digest& root, std::string_view signature) const {
  if (verified_.empty()) return false;
  const size_t set = setOf(root) * kWays;
  for (size_t way = 0; way < kWays; ++way) {
    const Verified& v = verified_[set + way];
    if (v.groupSize == groupSize && v.root == root && v.publicKey == publicKey &&
        v.signature == signature)
      return true;
  }
  return false;
}

void SignatureVerifier::remember(const std::string& publicKey, uint32_t groupSize,
                                 const Digest& root, std::string_view signature) {
  if (verified_.empty()) {
    verified_.resize(kRemembered);
    victim_.assign(kRemembered / kWays, 0);
  }
  const size_t set = setOf(root);
  size_t way = 0;
  while (way < kWays && verified_[set * kWays + way].groupSize != 0) ++way;
  if (way == kWays) {  // full: replace the ways in turn
    way = victim_[set];
    victim_[set] = static_cast<uint8_t>((way + 1) % kWays);
  }
  verified_[set * kWays + way] = Verified{publicKey, groupSize, root, std::string(signature)};
}

SignatureCheck SignatureVerifier::check(std::string_view envelope, const KeyRing& keys) {
  SignatureCheck out;
  if (envelope.empty() || envelope.size() % 8 != 0) return out;
  try {
    capnp::FlatArrayMessageReader reader(wordsOf(envelope, copy_), readerOptions());
    const size_t words = envelope.size() / 8;
    if (scratch_.size() < words + 4) scratch_.assign(words + 64, 0);
    auto env = reader.getRoot<s::Envelope>();
    auto kid = env.getSigningKeyId();
    out.keyId = std::string(kid.begin(), kid.size());
    out.writerSeq = env.getWriterSeq();
    out.prevDigest = std::string(viewOf(env.getPrevDigest()));
    std::string_view signature = viewOf(env.getSignature());
    std::string_view groupSignature = viewOf(env.getGroupSignature());
    const uint32_t groupSize = env.getGroupSize();
    const uint32_t groupLeaf = env.getGroupLeaf();
    auto proof = env.getGroupProof();  // bounds-checked here, for every status
    kj::Array<capnp::word> canonical = canonicalUnsigned(
        env, words, kj::arrayPtr(reinterpret_cast<capnp::word*>(scratch_.data()), scratch_.size()));
    out.digest = digestOfCanonical(canonical);
    if (signature.empty() && groupSignature.empty()) {
      out.status = SignatureStatus::unsignedEvent;
      return out;
    }
    const PublicKey* key = keys.find(out.keyId);
    if (key == nullptr) {
      out.status = SignatureStatus::unknownKey;
      return out;
    }
    out.status = SignatureStatus::invalid;
    if (!signature.empty()) {
      // v1. Group fields beside it would be covered by nothing.
      if (!groupSignature.empty() || env.hasGroupProof() || groupLeaf != 0 || groupSize != 0)
        return out;
      ++signaturesVerified_;
      if (signatureValid(key->key, withContext(canonical), signature))
        out.status = SignatureStatus::valid;
      return out;
    }
    // A group: the event's own digest, through its path, to the root the group's
    // signature covers.
    if (groupSignature.size() != kSignatureBytes || groupSize == 0 || groupLeaf >= groupSize ||
        proof.size() > 32)
      return out;
    std::vector<Digest> path(proof.size());
    for (unsigned i = 0; i < proof.size(); ++i) {
      auto p = proof[i];
      if (p.size() != path[i].size()) return out;
      memcpy(path[i].data(), p.begin(), p.size());
    }
    auto root = merkle::rootFrom(out.digest, groupLeaf, groupSize, path);
    if (!root) return out;
    if (remembered(key->key, groupSize, *root, groupSignature)) {
      out.status = SignatureStatus::valid;
    } else if (++signaturesVerified_,
               signatureValid(key->key, groupSignedBytes(groupSize, *root), groupSignature)) {
      remember(key->key, groupSize, *root, groupSignature);
      out.status = SignatureStatus::valid;
    }
    return out;
  } catch (const kj::Exception&) {
    out.status = SignatureStatus::malformed;
    return out;
  }
}

SignatureCheck checkSignature(std::string_view envelope, const KeyRing& keys) {
  return SignatureVerifier().check(envelope, keys);
}

}  // namespace tokenledger
