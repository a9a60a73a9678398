// Event signing (events/signing.h): keys and their files, what a signature covers,
// canonical bytes, and the signed appender's sequence and chain.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>

#include "events/certificate.h"
#include "events/merkle.h"
#include "events/signed_appender.h"
#include "tests/unit/future_event.h"
#include "tests/unit/gated_log.h"
#include "tests/unit/signing_vectors.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

using test::ringOf;

Event signedCreated(const SigningKey& key, uint64_t seq = 1, std::string prev = "") {
  Event e = test::makeEvent(generateTokenKey(), "alice", test::timeUs(1'700'000'000'000'000),
                            test::makeCreated(generateSecret()));
  e.writerSeq = seq;
  e.prevDigest = std::move(prev);
  signEvent(e, key);
  return e;
}

std::vector<LogRecord> readAll(EventLog& log) {
  auto reader = log.openReader(Offsets::atStart(log.partitionCount()));
  int64_t end = reader->endOffsets().next[0].value;
  std::vector<LogRecord> out;
  while (static_cast<int64_t>(out.size()) < end)
    for (auto& r : reader->poll(1000, std::chrono::milliseconds(100))) out.push_back(std::move(r));
  return out;
}

TEST_CASE("key id, key file and public key line") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  CHECK(key.publicKey().size() == kPublicKeyBytes);
  CHECK(key.keyId().size() == kKeyIdChars);
  CHECK(key.keyId() == signingKeyIdOf(key.publicKey()));
  auto again = parseSigningKeyFile(key.toFileText());
  REQUIRE(again.has_value());
  CHECK(again->keyId() == key.keyId());
  CHECK(again->sign("m") == key.sign("m"));  // Ed25519 is deterministic
  CHECK_FALSE(parseSigningKeyFile("garbage"));
  CHECK_FALSE(parseSigningKeyFile("tokenledger-ed25519-seed AAAA"));

  KeyRing ring;
  CHECK_FALSE(ring.addLines("# comment\n\n" + key.publicKeyLine() + "\n", "f"));
  REQUIRE(ring.find(key.keyId()) != nullptr);
  CHECK(ring.find(key.keyId())->key == key.publicKey());
  // A key id that does not belong to its key is refused with the line named.
  SigningKey other = SigningKey::generate();
  std::string wrong = key.keyId() + " " + base64Encode(other.publicKey());
  auto err = KeyRing().addLines("\n" + wrong, "keys.pub");
  REQUIRE(err.has_value());
  CHECK(err->find("keys.pub:2") != std::string::npos);
  CHECK(KeyRing().addLines("zz nothex", "k").has_value());
}

TEST_CASE("base64 round trip and refusal") {
  for (std::string s : {std::string(), std::string("a"), std::string("ab"), std::string("abc"),
                        std::string("abcd"), std::string("\0\xff\x10", 3)})
    CHECK(base64Decode(base64Encode(s)) == s);
  CHECK_FALSE(base64Decode("not base64!"));
  // Found by tests/fuzz (http_input): libsodium 1.0.18 took any byte from 0x80 up
  // for '/', so "QUJ\xc1" decoded as if it were "QUJ/".
  CHECK(base64Decode("QUJ/") == std::string("AB\x7f", 3));
  for (int c = 0x80; c <= 0xff; ++c) {
    std::string text = "QUJ/";
    text[3] = static_cast<char>(c);
    CAPTURE(c);
    CHECK_FALSE(base64Decode(text));
  }
}

TEST_CASE("a signed event verifies; every kind of tampering does not") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  Event e = signedCreated(key);
  std::string bytes = encodeEvent(e);
  auto ok = checkSignature(bytes, ring);
  CHECK(ok.status == SignatureStatus::valid);
  CHECK(ok.keyId == key.keyId());
  CHECK(ok.writerSeq == 1);

  SUBCASE("a changed field") {
    Event t = e;
    std::get<Created>(t.body).description = "Receive leads from RD Statiom";
    CHECK(checkSignature(encodeEvent(t), ring).status == SignatureStatus::invalid);
    Event u = e;
    u.writerSeq = 2;
    CHECK(checkSignature(encodeEvent(u), ring).status == SignatureStatus::invalid);
  }
  SUBCASE("a flipped byte in the stored bytes") {
    std::string t = bytes;
    auto at = t.find("RD Station");
    REQUIRE(at != std::string::npos);
    t[at] ^= 1;
    CHECK(checkSignature(t, ring).status == SignatureStatus::invalid);
  }
  SUBCASE("signed by a key the verifier does not know") {
    SigningKey mallory = SigningKey::generate();
    Event f = signedCreated(mallory);
    CHECK(checkSignature(encodeEvent(f), ring).status == SignatureStatus::unknownKey);
    // Claiming the right key id with another key's signature is simply invalid.
    f.signingKeyId = key.keyId();
    CHECK(checkSignature(encodeEvent(f), ring).status == SignatureStatus::invalid);
  }
  SUBCASE("unsigned and garbage") {
    Event u = e;
    u.signature.clear();
    CHECK(checkSignature(encodeEvent(u), ring).status == SignatureStatus::unsignedEvent);
    CHECK(checkSignature("not an event", ring).status == SignatureStatus::malformed);
    CHECK(checkSignature(std::string(16, '\xff'), ring).status == SignatureStatus::malformed);
  }
}

TEST_CASE("canonical bytes: decode and re-encode changes nothing a signature covers") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  Event e = signedCreated(key, 7, std::string(32, 'd'));
  std::string bytes = encodeEvent(e);
  auto decoded = decodeEvent(bytes);
  REQUIRE(std::holds_alternative<Event>(decoded));
  const Event& d = std::get<Event>(decoded);
  CHECK(d.writerSeq == 7);
  CHECK(d.prevDigest == std::string(32, 'd'));
  CHECK(d.signature == e.signature);
  CHECK(d.signingKeyId == key.keyId());
  CHECK(encodeEvent(d) == bytes);  // byte-identical
  // The signed bytes do not depend on the signature, only on the rest.
  Event unsignedCopy = d;
  unsignedCopy.signature.clear();
  CHECK(signedBytes(encodeEvent(unsignedCopy)) == signedBytes(bytes));
  CHECK(digestOf(*signedBytes(bytes)) == checkSignature(bytes, ringOf(key)).digest);
}

TEST_CASE("fields a newer schema adds are covered by the signature and verify here") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  std::string raw =
      test::encodeRevoked(randomBytes(16), generateTokenKey(), "alice", test::timeUs(5));
  REQUIRE(signedBytes(raw).has_value());
  // Sign what this build would sign, then store the signature with the future schema.
  auto words = kj::heapArray<capnp::word>(raw.size() / 8);
  memcpy(words.begin(), raw.data(), raw.size());
  capnp::FlatArrayMessageReader reader(words);
  capnp::MallocMessageBuilder message;
  message.setRoot(reader.getRoot<future::Envelope>());
  auto env = message.getRoot<future::Envelope>();
  env.setSigningKeyId(key.keyId());
  auto withKeyId = test::detail::flatten(message);
  std::string sig = key.sign(*signedBytes(withKeyId));
  env.setSignature(kj::arrayPtr(reinterpret_cast<const capnp::byte*>(sig.data()), sig.size()));
  std::string signedRaw = test::detail::flatten(message);
  CHECK(checkSignature(signedRaw, ring).status == SignatureStatus::valid);
  // The unknown member's content is signed: changing it breaks the signature.
  env.getEvent().getRevoked().setNote("revoked by a newer producer!");
  CHECK(checkSignature(test::detail::flatten(message), ring).status == SignatureStatus::invalid);
}

// Fixed vectors, literal bytes: every event in every log was signed over bytes made
// like these, and chains on their digests. A change that makes one of these fail
// (context string, canonical encoding, field numbers, digest, key id, signature
// scheme) means old logs no longer verify: do not update the literals, keep the
// format. Computed once with the code that wrote the logs; the key and signature
// cross-checked with RFC 8032 and Python's cryptography and hashlib.
namespace vectors {
using namespace test::vectors;
using test::bytesFrom;
using test::hexOf;
using test::unhex;

// The public key of kSeed (RFC 8032, section 7.1, TEST 1).
constexpr std::string_view kPublicKey =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr std::string_view kEmptyMessageSignature =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6bd25bf5f0595bbe24655141438e7a100b";
// fixedEvent() signed by the key above: "tokenledger-event-v1\n" + canonical envelope
// without the signature, its BLAKE2b-256, the Ed25519 signature, and encodeEvent().
constexpr std::string_view kSignedBytes =
    "746f6b656e6c65646765722d6576656e742d76310a00000000030009000040204648470600010000"
    "00000000002a00000000000000210000008200000025000000ea0000003100000032000000310000"
    "004a000000350000004a0000000000000000000000350000008a0000003c00000002000400850000"
    "0002010000000102030405060708090a0b0c0d0e0f746c6b5f303132333435363738394142434445"
    "464748494a4b4c4d4e00000000616c6963650000006f70657261746f720000000000000000726571"
    "2d303030310000000000000000373834396163333034393638306265310000000000000000010000"
    "0000000000002034d2f66306000d000000320000000d000000f20000001900000002010000250000"
    "00ea00000063726d2d3100000052656365697665206c656164732066726f6d205244205374617469"
    "6f6e000000a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf746c6b"
    "5f5a595857565554535251504f4e4d4c4b4a4948474645444300000000202122232425262728292a"
    "2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
constexpr std::string_view kDigest =
    "7d859db9b753d0d62c0032f7b3041e8f4fd29bdef1ce97d708d95d4ce4538e77";
constexpr std::string_view kSignature =
    "0c18eb17d7201afd39e2524cfb73c312a0269bfbcace347998e10d8e253e2e194452282bec07819a"
    "40bb8c80085035258a6c2a2d210e05c5247b73682594f40a";
constexpr std::string_view kEnvelope =
    "000000003a0000000000000003000900004020464847060001000000000000002a00000000000000"
    "210000008200000025000000ea0000003100000032000000310000004a000000350000004a000000"
    "3900000002020000550000008a0000006c0000000200040059000000020100000001020304050607"
    "08090a0b0c0d0e0f746c6b5f303132333435363738394142434445464748494a4b4c4d4e00000000"
    "616c6963650000006f70657261746f7200000000000000007265712d303030310000000000000000"
    "0c18eb17d7201afd39e2524cfb73c312a0269bfbcace347998e10d8e253e2e194452282bec07819a"
    "40bb8c80085035258a6c2a2d210e05c5247b73682594f40a37383439616333303439363830626531"
    "0000000000000000202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "0100000000000000002034d2f66306000d000000320000000d000000f20000001900000002010000"
    "25000000ea00000063726d2d3100000052656365697665206c656164732066726f6d205244205374"
    "6174696f6e000000a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "746c6b5f5a595857565554535251504f4e4d4c4b4a4948474645444300000000";

// The same event as written since the schema gained the conditional-event,
// idempotency and group-signature fields (issue 14): only the layout grew.
constexpr std::string_view kEnvelopeWithGroupFields =
    "000000003f0000000000000004000d00004020464847060001000000000000002a00000000000000"
    "0000000000000000310000008200000035000000ea0000004100000032000000410000004a000000"
    "450000004a0000004900000002020000650000008a0000007c000000020004006900000002010000"
    "00000000000000000000000000000000000000000000000000000000000000000001020304050607"
    "08090a0b0c0d0e0f746c6b5f303132333435363738394142434445464748494a4b4c4d4e00000000"
    "616c6963650000006f70657261746f7200000000000000007265712d303030310000000000000000"
    "0c18eb17d7201afd39e2524cfb73c312a0269bfbcace347998e10d8e253e2e194452282bec07819a"
    "40bb8c80085035258a6c2a2d210e05c5247b73682594f40a37383439616333303439363830626531"
    "0000000000000000202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "0100000000000000002034d2f66306000d000000320000000d000000f20000001900000002010000"
    "25000000ea00000063726d2d3100000052656365697665206c656164732066726f6d205244205374"
    "6174696f6e000000a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "746c6b5f5a595857565554535251504f4e4d4c4b4a4948474645444300000000";

}  // namespace vectors

TEST_CASE("fixed vectors: the signing key (RFC 8032) and its id") {
  test::ensureCrypto();
  SigningKey key = vectors::fixedKey();
  CHECK(toHex(key.publicKey()) == vectors::kPublicKey);
  CHECK(toHex(key.sign("")) == vectors::kEmptyMessageSignature);
  CHECK(key.keyId() == vectors::kKeyId);
  CHECK(key.publicKeyLine() == vectors::kPublicKeyLine);
}

TEST_CASE("fixed vectors: signed bytes, digest, signature and envelope of a fixed event") {
  test::ensureCrypto();
  SigningKey key = vectors::fixedKey();
  Event e = vectors::fixedEvent();
  Digest digest = signEvent(e, key);
  CHECK(e.signingKeyId == vectors::kKeyId);
  CHECK(vectors::hexOf(digest) == vectors::kDigest);
  CHECK(toHex(e.signature) == vectors::kSignature);
  std::string envelope = encodeEvent(e);
  auto bytes = signedBytes(envelope);
  REQUIRE(bytes.has_value());
  CHECK(toHex(*bytes) == vectors::kSignedBytes);
  CHECK(vectors::hexOf(digestOf(vectors::unhex(vectors::kSignedBytes))) == vectors::kDigest);
  // encodeEvent's layout is not what is signed (the canonical form is): if only
  // this check fails, the layout changed but old envelopes may still verify (the
  // next test says); add the new bytes as a vector of their own, keep the old one.
  CHECK(toHex(envelope) == vectors::kEnvelopeWithGroupFields);
}

TEST_CASE("fixed vectors: an envelope written by an earlier build decodes and verifies") {
  test::ensureCrypto();
  std::string_view hex = vectors::kEnvelope;
  SUBCASE("before issue 14's fields") {
    hex = vectors::kEnvelope;
  }
  SUBCASE("with issue 14's fields") {
    hex = vectors::kEnvelopeWithGroupFields;
  }
  std::string raw = vectors::unhex(hex);
  auto decoded = decodeEvent(raw);
  REQUIRE(std::holds_alternative<Event>(decoded));
  const Event& d = std::get<Event>(decoded);
  Event want = vectors::fixedEvent();
  CHECK(d.eventId == want.eventId);
  CHECK(d.tokenKey == want.tokenKey);
  CHECK(d.owner == want.owner);
  CHECK(d.actor == want.actor);
  CHECK(d.requestId == want.requestId);
  CHECK(d.occurredAt == want.occurredAt);
  CHECK(d.schemaVersion == 1);
  CHECK(d.writerSeq == 42);
  CHECK(d.prevDigest == want.prevDigest);
  CHECK(d.signingKeyId == vectors::kKeyId);
  CHECK(toHex(d.signature) == vectors::kSignature);
  REQUIRE(std::holds_alternative<Created>(d.body));
  const Created& c = std::get<Created>(d.body);
  const Created& wc = std::get<Created>(want.body);
  CHECK(c.kind == TokenKind::destination);
  CHECK(c.destinationId == wc.destinationId);
  CHECK(c.description == wc.description);
  CHECK(c.secretHash == wc.secretHash);
  CHECK(c.expiresAt == wc.expiresAt);
  CHECK(c.replaces == wc.replaces);

  // Verified with the published key line alone, as ledger-audit --keys does.
  KeyRing ring;
  REQUIRE_FALSE(ring.addLines(vectors::kPublicKeyLine, "vector").has_value());
  auto check = checkSignature(raw, ring);
  CHECK(check.status == SignatureStatus::valid);
  CHECK(check.keyId == vectors::kKeyId);
  CHECK(check.writerSeq == 42);
  CHECK(check.prevDigest == want.prevDigest);
  CHECK(vectors::hexOf(check.digest) == vectors::kDigest);
  // And the literal is no rubber stamp: one changed byte of the description fails.
  auto at = raw.find("RD Station");
  REQUIRE(at != std::string::npos);
  raw[at] = 'r';
  CHECK(checkSignature(raw, ring).status == SignatureStatus::invalid);
}

TEST_CASE("writer state: text round trip") {
  WriterState st{42, std::string(32, '\x07'), Offsets::of({3, 0, 9})};
  auto text = formatWriterState("0123456789abcdef", st);
  auto back = parseWriterState(text, "0123456789abcdef");
  REQUIRE(back.has_value());
  CHECK(back->lastSeq == 42);
  CHECK(back->lastDigest == st.lastDigest);
  CHECK(back->scanFrom == st.scanFrom);
  CHECK_FALSE(parseWriterState(text, "fedcba9876543210"));
  CHECK(parseWriterState("0123456789abcdef 0 - -", "0123456789abcdef").has_value());
}

TEST_CASE(
    "signed appender: concurrent commands get 1..N in log order, chained; restart continues") {
  test::ensureCrypto();
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  SigningKey key = SigningKey::generate();
  std::string keyId = key.keyId();
  std::string keyText = key.toFileText();
  KeyRing ring = ringOf(key);
  WriterState persisted;
  std::mutex persistMutex;
  {
    SignedAppender appender(
        *log, std::move(key), WriterState{},
        [&](const WriterState& st) {
          std::lock_guard lock(persistMutex);
          persisted = st;
        },
        nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 25; ++i) {
          std::string owner = "user" + std::to_string(t);
          std::vector<Event> events{test::makeEvent(generateTokenKey(), owner, test::timeUs(i),
                                                    test::makeCreated(generateSecret()))};
          if (i % 5 == 0)
            events.push_back(
                test::makeEvent(events[0].tokenKey, owner, test::timeUs(i), Activated{}));
          auto pos = appender.append(owner, events);
          REQUIRE(pos.size() == events.size());
          if (pos.size() == 2) CHECK(pos[1].offset == pos[0].offset + 1);
          CHECK(events[0].writerSeq >= 1);
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  auto records = readAll(*log);
  REQUIRE(records.size() == 8 * 30);
  std::string prev;
  for (size_t i = 0; i < records.size(); ++i) {
    auto c = checkSignature(records[i].value, ring);
    REQUIRE(c.status == SignatureStatus::valid);
    CHECK(c.writerSeq == i + 1);
    CHECK(c.prevDigest == prev);
    prev.assign(reinterpret_cast<const char*>(c.digest.data()), c.digest.size());
  }
  CHECK(persisted.lastSeq == records.size());
  CHECK(persisted.lastDigest == prev);
  CHECK(persisted.scanFrom == Offsets::of({static_cast<int64_t>(records.size())}));

  // A restart that lost its state file recovers it from the log.
  auto recovered = recoverWriterState(*log, keyId, WriterState{});
  CHECK(recovered.lastSeq == records.size());
  CHECK(recovered.lastDigest == prev);
  // And continues the sequence.
  SignedAppender again(*log, std::move(*parseSigningKeyFile(keyText)), recovered, nullptr, nullptr);
  std::vector<Event> one{
      test::makeEvent(generateTokenKey(), "zed", test::timeUs(1), test::makeCreated("x"))};
  again.append("zed", one);
  CHECK(one[0].writerSeq == records.size() + 1);
  CHECK(one[0].prevDigest == prev);
}

TEST_CASE("appendAsync: queued appends are signed in order, and destruction writes them all") {
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  std::mutex mutex;
  std::vector<SignedAppender::Appended> done;
  std::vector<std::thread::id> threads;
  {
    SignedAppender appender(*log, std::move(key), WriterState{}, nullptr, nullptr);
    for (int i = 0; i < 50; ++i) {
      std::string owner = "user" + std::to_string(i % 3);
      appender.appendAsync(
          owner,
          {test::makeEvent(generateTokenKey(), owner, test::timeUs(i), test::makeCreated("s"))},
          [&](SignedAppender::Appended& a) {
            std::lock_guard lock(mutex);
            done.push_back(std::move(a));
            threads.push_back(std::this_thread::get_id());
          });
    }
  }  // the destructor returns only once every queued append is written
  REQUIRE(done.size() == 50);
  for (size_t i = 0; i < done.size(); ++i) {
    CHECK_FALSE(done[i].error);
    REQUIRE(done[i].positions.size() == 1);
    // In the order queued: sequence and log offset alike.
    CHECK(done[i].events[0].writerSeq == i + 1);
    CHECK(done[i].positions[0].offset.value == static_cast<int64_t>(i));
    CHECK(threads[i] != std::this_thread::get_id());
  }
  auto records = readAll(*log);
  REQUIRE(records.size() == 50);
  for (const auto& r : records)
    CHECK(checkSignature(r.value, ring).status == SignatureStatus::valid);
}

TEST_CASE("an append of unknown outcome spends its sequence numbers; the next one chains on") {
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  // Refuses appends while `down`, as a stopped broker does.
  struct Flaky final : EventLog {
    EventLog& inner;
    std::atomic<bool> down{false};
    explicit Flaky(EventLog& l) : inner(l) {}
    std::vector<Position> append(std::string_view key,
                                 const std::vector<std::string>& values) override {
      if (down) throw LogUnavailable("down");
      return inner.append(key, values);
    }
    int32_t partitionCount() const override { return inner.partitionCount(); }
    std::unique_ptr<LogReader> openReader(const Offsets& from) override {
      return inner.openReader(from);
    }
    std::string describe() const override { return "flaky log"; }
  } flaky(*log);
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  WriterState persisted;
  std::vector<std::string> warnings;
  SignedAppender appender(
      flaky, std::move(key), WriterState{}, [&](const WriterState& st) { persisted = st; },
      [&](const std::string& w) { warnings.push_back(w); });
  auto one = [&] {
    return std::vector<Event>{
        test::makeEvent(generateTokenKey(), "alice", test::timeUs(1), test::makeCreated("s"))};
  };
  auto first = one();
  appender.append("alice", first);
  flaky.down = true;
  auto lost = one();
  CHECK_THROWS_AS(appender.append("alice", lost), LogUnavailable);
  CHECK(lost[0].writerSeq == 2);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("writer sequence 2-2 failed with an unknown outcome") !=
        std::string::npos);
  CHECK(persisted.lastSeq == 2);  // persisted at once: a restart does not reuse 2
  flaky.down = false;
  auto next = one();
  appender.append("alice", next);
  CHECK(next[0].writerSeq == 3);
  // Chained on the spent event, which verify-log then reports missing.
  auto records = readAll(*log);
  REQUIRE(records.size() == 2);
  auto c = checkSignature(records[1].value, ring);
  CHECK(c.status == SignatureStatus::valid);
  CHECK(c.writerSeq == 3);
  auto spent = checkSignature(encodeEvent(lost[0]), ring);
  REQUIRE(spent.status == SignatureStatus::valid);
  CHECK(c.prevDigest ==
        std::string(reinterpret_cast<const char*>(spent.digest.data()), spent.digest.size()));
}

// Every record of `records` signed by `ring`'s one key: writerSeq 1, 2, 3, … with
// each prevDigest the digest of the one before.
void checkGaplessChain(const std::vector<LogRecord>& records, const KeyRing& ring) {
  std::string prev;
  uint64_t seq = 0;
  for (const auto& r : records) {
    auto c = checkSignature(r.value, ring);
    REQUIRE(c.status == SignatureStatus::valid);
    CHECK(c.writerSeq == ++seq);
    CHECK(c.prevDigest == prev);
    prev.assign(reinterpret_cast<const char*>(c.digest.data()), c.digest.size());
  }
}

TEST_CASE("a log that refuses appends fails a command at once, behind a stuck append") {
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  test::GatedLog gated(*log);
  SignedAppender appender(
      gated, SigningKey::generate(), WriterState{}, [](const WriterState&) {},
      [](const std::string&) {});
  auto one = [] {
    return std::vector<Event>{
        test::makeEvent(generateTokenKey(), "alice", test::timeUs(1), test::makeCreated("s"))};
  };
  // An append stuck at the log (a broker that does not answer).
  gated.gated = true;
  std::atomic<bool> stuckDone{false};
  auto stuckEvents = one();
  std::thread stuck([&] {
    appender.append("alice", stuckEvents);
    stuckDone = true;
  });
  while (gated.waiting == 0) std::this_thread::yield();
  // The log now knows it cannot take appends: the next command is refused at once,
  // nothing recorded, without waiting behind the stuck one.
  gated.refusing = true;
  auto refused = one();
  try {
    appender.append("alice", refused);
    FAIL("the append was not refused");
  } catch (const LogUnavailable& e) {
    CHECK(e.nothingRecorded());
    CHECK(std::string(e.what()).find("only 1 of 3 brokers are reachable on gated log") == 0);
  }
  CHECK_FALSE(stuckDone);
  gated.refusing = false;
  gated.gated = false;
  stuck.join();
  auto next = one();
  appender.append("alice", next);
  CHECK(stuckEvents[0].writerSeq == 1);
  CHECK(next[0].writerSeq == 2);  // the refusal spent no number
}

TEST_CASE("an append that recorded nothing gives its sequence numbers back") {
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  test::GatedLog refusing(*log);
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  WriterState persisted;
  std::vector<std::string> warnings;
  std::mutex warningsMutex;
  SignedAppender appender(
      refusing, std::move(key), WriterState{}, [&](const WriterState& st) { persisted = st; },
      [&](const std::string& w) {
        std::lock_guard lock(warningsMutex);
        warnings.push_back(w);
      });
  auto one = [] {
    return std::vector<Event>{
        test::makeEvent(generateTokenKey(), "alice", test::timeUs(1), test::makeCreated("s"))};
  };
  auto first = one();
  appender.append("alice", first);
  SUBCASE("one append") {
    refusing.down = true;
    auto lost = one();
    CHECK_THROWS_AS(appender.append("alice", lost), LogUnavailable);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("writer sequence 2-2 recorded nothing") != std::string::npos);
    CHECK(persisted.lastSeq == 1);
    refusing.down = false;
    auto next = one();
    appender.append("alice", next);
    CHECK(next[0].writerSeq == 2);  // 2 again: nothing holds it
  }
  SUBCASE("passes signed meanwhile on the failed chain fail too, and are signed anew later") {
    refusing.down = true;
    refusing.gated = true;
    std::atomic<int> failed{0}, done{0};
    auto count = [&](SignedAppender::Appended& a) {
      if (a.error) failed++;
      done++;
    };
    appender.appendAsync("alice", one(), count);
    while (refusing.waiting == 0) std::this_thread::yield();  // the first pass is at the gate
    for (int i = 0; i < 20; ++i) appender.appendAsync("bob", one(), count);
    refusing.gated = false;
    while (done < 21) std::this_thread::yield();
    CHECK(failed == 21);  // the log took nothing while down
    refusing.down = false;
    for (int i = 0; i < 10; ++i) {
      auto e = one();
      appender.append("carol", e);
    }
  }
  // Either way the log holds a chain without gaps: verify-log finds nothing missing.
  checkGaplessChain(readAll(*log), ring);
}

TEST_CASE("embedded appendBatch: many owners, one commit, in order") {
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  log->append("x", {"0"});
  std::vector<std::pair<std::string, std::string>> batch{
      {"a", "1"}, {"a", "2"}, {"b", "3"}, {"a", "4"}, {"c", "5"}};
  auto pos = log->appendBatch(batch);
  REQUIRE(pos.size() == 5);
  for (size_t i = 0; i < pos.size(); ++i) CHECK(pos[i].offset.value == static_cast<int64_t>(i + 1));
  auto all = readAll(*log);
  REQUIRE(all.size() == 6);
  CHECK(all[3].key == "b");
  CHECK(all[4].value == "4");
  CHECK(log->appendBatch({}).empty());
}

TEST_CASE("writer certificates: the root certifies a writer key; nothing else passes") {
  test::ensureCrypto();
  SigningKey root = SigningKey::generate();
  SigningKey writer = SigningKey::generate();
  PublicKey rootPublic{root.keyId(), root.publicKey()};
  WriterCertificate cert = certifyWriter(root, writer.publicKey(), 1'800'000'000'000'000);
  CHECK(writerKeyIdOf(cert) == writer.keyId());
  CHECK(certificateValid(cert, rootPublic));
  // The file round trip.
  auto back = parseCertificateFile(certificateFileText(cert));
  REQUIRE(back.has_value());
  CHECK(*back == cert);
  CHECK(certificateValid(*back, rootPublic));
  // Another writer's key under the same signature, a changed time, another root.
  WriterCertificate swapped = cert;
  swapped.writerKey = SigningKey::generate().publicKey();
  CHECK_FALSE(certificateValid(swapped, rootPublic));
  WriterCertificate later = cert;
  later.issuedAtUs += 1;
  CHECK_FALSE(certificateValid(later, rootPublic));
  SigningKey other = SigningKey::generate();
  CHECK_FALSE(certificateValid(cert, PublicKey{other.keyId(), other.publicKey()}));
  CHECK_FALSE(certificateValid(certifyWriter(other, writer.publicKey(), 1), rootPublic));
  // Not a certificate file.
  CHECK_FALSE(parseCertificateFile("tokenledger-writer-certificate !!!"));
  CHECK_FALSE(parseCertificateFile(writer.publicKeyLine()));
  CHECK_FALSE(decodeCertificate(std::string(24, '\xff')));
}

TEST_CASE("a certificate's envelope decodes with the group fields the signature check reads") {
  // Found by fuzz_event_decode (seed crash-certificate-with-group-signature): the
  // decoder dropped a certificate's group fields, so the event looked unsigned
  // while its signature check judged a group signature.
  test::ensureCrypto();
  SigningKey root = SigningKey::generate();
  SigningKey writer = SigningKey::generate();
  Event e;
  e.eventId = std::string(16, 'i');
  e.occurredAt = Timestamp{std::chrono::seconds(1'800'000'000)};
  e.body = certifyWriter(root, writer.publicKey(), 1'800'000'000'000'000);
  e.signingKeyId = writer.keyId();
  e.groupSignature = std::string(64, 'g');
  e.groupSize = 2;
  e.groupLeaf = 1;
  e.groupProof = {std::string(32, 'p')};
  std::string bytes = encodeEvent(e);
  auto decoded = decodeEvent(bytes);
  REQUIRE(std::holds_alternative<Event>(decoded));
  const Event& back = std::get<Event>(decoded);
  CHECK(std::holds_alternative<WriterCertificate>(back.body));
  CHECK(back.groupSignature == e.groupSignature);
  CHECK(back.groupSize == 2);
  CHECK(back.groupLeaf == 1);
  CHECK(back.groupProof == e.groupProof);
  auto check = checkSignature(bytes, ringOf(writer));
  CHECK(check.status != SignatureStatus::unsignedEvent);
  CHECK(check.status != SignatureStatus::valid);  // a made-up group signature
}

TEST_CASE("Merkle paths lead every leaf to the root, for every group size; nothing else does") {
  test::ensureCrypto();
  for (size_t n = 1; n <= 33; ++n) {
    std::vector<Digest> leaves(n);
    for (size_t i = 0; i < n; ++i) leaves[i] = digestOf("event " + std::to_string(i));
    Digest r = merkle::root(leaves);
    for (size_t i = 0; i < n; ++i) {
      CAPTURE(n);
      CAPTURE(i);
      auto path = merkle::proof(leaves, i);
      CHECK(path.size() <= 6);  // log2(33) rounded up
      CHECK(merkle::rootFrom(leaves[i], i, n, path) == r);
      if (n > 1) {
        CHECK(merkle::rootFrom(leaves[(i + 1) % n], i, n, path) != r);  // another leaf
        CHECK(merkle::rootFrom(leaves[i], (i + 1) % n, n, path) != r);  // another place
        auto cut = path;
        cut.pop_back();
        CHECK(merkle::rootFrom(leaves[i], i, n, cut) != r);
      }
    }
  }
  // A fixed vector: the format must not change silently (old logs must verify).
  std::vector<Digest> three{digestOf("a"), digestOf("b"), digestOf("c")};
  CHECK(toHex(std::string(reinterpret_cast<const char*>(merkle::root(three).data()), 32)) ==
        "e085991d864c3bb6ef24bf41548ec6c983fe49dc248f48d5a0247d170e1209ec");
  CHECK_THROWS_AS(merkle::root({}), std::invalid_argument);
  CHECK_FALSE(merkle::rootFrom(three[0], 3, 3, {}));
}

// Found by fuzz_event_decode (tests/fuzz/corpus/event_decode/crash-empty-data-section):
// an envelope whose root struct has no data section made the digest's copy call
// memcpy from a null pointer (UBSan, in the sanitizers.unit run of this suite).
TEST_CASE("an envelope without a data section is checked without undefined behaviour") {
  test::ensureCrypto();
  auto bytes = base64Decode(
      "AAAAACsAAAAAAAAAAAAAAAAAAAAAAAAAMQAAAIIAAAA1AAAACgAAADUAAAAKAAAANQAAADoAAAA1AAAACgAA"
      "AAAAAAAAAAAAAAAAAAAAAAAsAAAAAQADAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
      "AABhYWFhYWFhYWFhYQAAAGFhAAAAAAAAAAAAAAAAAAAAAHdyaXRlcgAAAAAAAAAAAAABAAAAAAAAAAkAAHRl"
      "cgAAAAAAAAAAAAABAAAAAAAAAAkAAAACAQAAFQAAAIoAAAAdAAAAAgIAAJu8l75slJQvqPfT7dDnPfPsUeEB"
      "+0x8AlpPVTaN9jRAMzQxODhiNGVhNWRlOTU4YwAAAAAAAAAAuH7+yljuQirIXQovZ20vaqn8+w9S0Ut/Vftg"
      "K3rDGaEAvAP/l0CXFzX5emuDAoGQHf5UWYIrXZd6ZHrVNOT9Aw==");
  REQUIRE(bytes);
  KeyRing ring;
  ring.add(SigningKey::generate().publicKey());
  SignatureCheck check = checkSignature(*bytes, ring);
  CHECK(check.status != SignatureStatus::valid);
}

}  // namespace
}  // namespace tokenledger
