// Event signing (events/signing.h): keys and their files, what a signature covers,
// canonical bytes, and the signed appender's sequence and chain.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>

#include "events/signing.h"
#include "tests/unit/future_event.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

Event signedCreated(const SigningKey& key, uint64_t seq = 1, std::string prev = "") {
  Event e = test::makeEvent(generateTokenKey(), "alice", 1'700'000'000'000'000,
                            test::makeCreated(generateSecret()));
  e.writerSeq = seq;
  e.prevDigest = std::move(prev);
  signEvent(e, key);
  return e;
}

KeyRing ringOf(const SigningKey& key) {
  KeyRing ring;
  ring.add(key.publicKey());
  return ring;
}

std::vector<LogRecord> readAll(EventLog& log) {
  auto reader = log.openReader(Offsets{std::vector<int64_t>(log.partitionCount(), 0)});
  int64_t end = reader->endOffsets().next[0];
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
  std::string raw = test::encodeRevoked(randomBytes(16), generateTokenKey(), "alice", 5);
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

TEST_CASE("writer state: text round trip") {
  WriterState st{42, std::string(32, '\x07'), Offsets{{3, 0, 9}}};
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
          std::vector<Event> events{
              test::makeEvent(generateTokenKey(), owner, i, test::makeCreated(generateSecret()))};
          if (i % 5 == 0)
            events.push_back(test::makeEvent(events[0].tokenKey, owner, i, Activated{}));
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
  CHECK(persisted.scanFrom == Offsets{{static_cast<int64_t>(records.size())}});

  // A restart that lost its state file recovers it from the log.
  auto recovered = recoverWriterState(*log, keyId, WriterState{});
  CHECK(recovered.lastSeq == records.size());
  CHECK(recovered.lastDigest == prev);
  // And continues the sequence.
  SignedAppender again(*log, std::move(*parseSigningKeyFile(keyText)), recovered, nullptr, nullptr);
  std::vector<Event> one{test::makeEvent(generateTokenKey(), "zed", 1, test::makeCreated("x"))};
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
      appender.appendAsync(owner,
                           {test::makeEvent(generateTokenKey(), owner, i, test::makeCreated("s"))},
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
    CHECK(done[i].positions[0].offset == static_cast<int64_t>(i));
    CHECK(threads[i] != std::this_thread::get_id());
  }
  auto records = readAll(*log);
  REQUIRE(records.size() == 50);
  for (const auto& r : records)
    CHECK(checkSignature(r.value, ring).status == SignatureStatus::valid);
}

TEST_CASE("a failed append spends its sequence numbers; the next one chains on") {
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
        test::makeEvent(generateTokenKey(), "alice", 1, test::makeCreated("s"))};
  };
  auto first = one();
  appender.append("alice", first);
  flaky.down = true;
  auto lost = one();
  CHECK_THROWS_AS(appender.append("alice", lost), LogUnavailable);
  CHECK(lost[0].writerSeq == 2);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("writer sequence 2-2 failed") != std::string::npos);
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

TEST_CASE("embedded appendBatch: many owners, one commit, in order") {
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  log->append("x", {"0"});
  std::vector<std::pair<std::string, std::string>> batch{
      {"a", "1"}, {"a", "2"}, {"b", "3"}, {"a", "4"}, {"c", "5"}};
  auto pos = log->appendBatch(batch);
  REQUIRE(pos.size() == 5);
  for (size_t i = 0; i < pos.size(); ++i) CHECK(pos[i].offset == static_cast<int64_t>(i + 1));
  auto all = readAll(*log);
  REQUIRE(all.size() == 6);
  CHECK(all[3].key == "b");
  CHECK(all[4].value == "4");
  CHECK(log->appendBatch({}).empty());
}

}  // namespace
}  // namespace tokenledger
