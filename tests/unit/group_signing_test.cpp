// Group signatures (events/signing.h): one Ed25519 signature per signing pass over
// the Merkle root of its events' digests, each event with its path so that it
// verifies on its own; SignatureVerifier's cache of verified roots; the
// SignedAppender's passes as groups; fixed vectors of the format.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "events/merkle.h"
#include "events/signed_appender.h"
#include "schemas/tokenledger.capnp.h"
#include "tests/unit/future_event.h"
#include "tests/unit/gated_log.h"
#include "tests/unit/signing_vectors.h"
#include "tests/unit/test_util.h"

namespace tokenledger {
namespace {

using test::hexOf;
using test::ringOf;

std::string bytesOf(const Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

Event someEvent(size_t i) {
  std::string owner = "user" + std::to_string(i % 3);
  if (i % 3 == 2)
    return test::makeEvent(generateTokenKey(), owner, test::timeUs(1'700'000'000'000'000 + i),
                           Deactivated{Reason::compromised, std::nullopt});
  return test::makeEvent(generateTokenKey(), owner, test::timeUs(1'700'000'000'000'000 + i),
                         test::makeCreated(generateSecret()));
}

// Chains `events` on (seq, prev) and signs them as one group, as a SignedAppender
// pass does. Returns their digests.
std::vector<Digest> signAsGroup(std::vector<Event>& events, const SigningKey& key, uint64_t seq = 0,
                                std::string prev = "") {
  std::vector<Event*> group;
  std::vector<Digest> digests;
  for (auto& e : events) {
    e.signingKeyId = key.keyId();
    e.writerSeq = ++seq;
    e.prevDigest = prev;
    digests.push_back(eventDigest(e));
    prev = bytesOf(digests.back());
    group.push_back(&e);
  }
  signGroup(group, digests, key);
  return digests;
}

std::vector<Event> groupOf(size_t n, const SigningKey& key, uint64_t seq = 0,
                           std::string prev = "") {
  std::vector<Event> events;
  for (size_t i = 0; i < n; ++i) events.push_back(someEvent(i));
  signAsGroup(events, key, seq, std::move(prev));
  return events;
}

// The status of `event` (encoded) by a fresh verifier and by `warm`.
SignatureStatus statusOf(const Event& event, const KeyRing& ring, SignatureVerifier& warm) {
  std::string bytes = encodeEvent(event);
  auto fresh = checkSignature(bytes, ring).status;
  auto cached = warm.check(bytes, ring).status;
  CHECK(fresh == cached);
  return cached;
}

TEST_CASE("groups of 1, 2, 3, 5 and 64 events: every event verifies on its own") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  for (size_t n : {1u, 2u, 3u, 5u, 64u}) {
    CAPTURE(n);
    std::vector<Event> events;
    for (size_t i = 0; i < n; ++i) events.push_back(someEvent(i));
    auto digests = signAsGroup(events, key, 10, std::string(32, 'p'));
    const Digest root = merkle::root(digests);
    SignatureVerifier verifier;
    std::string prev(32, 'p');
    for (size_t i = 0; i < n; ++i) {
      CAPTURE(i);
      const Event& e = events[i];
      CHECK(e.signature.empty());
      CHECK(e.groupSignature.size() == kSignatureBytes);
      CHECK(e.groupSignature == events[0].groupSignature);
      CHECK(e.groupLeaf == i);
      CHECK(e.groupSize == n);
      if (n == 1) CHECK(e.groupProof.empty());
      CHECK(signatureValid(key.publicKey(), groupSignedBytes(static_cast<uint32_t>(n), root),
                           e.groupSignature));
      std::string bytes = encodeEvent(e);
      // Alone (a verifier used once), and in order with one verifier.
      auto alone = checkSignature(bytes, ring);
      CHECK(alone.status == SignatureStatus::valid);
      auto c = verifier.check(bytes, ring);
      CHECK(c.status == SignatureStatus::valid);
      CHECK(c.keyId == key.keyId());
      CHECK(c.writerSeq == 11 + i);
      CHECK(c.prevDigest == prev);
      CHECK(c.digest == digests[i]);
      CHECK(c.digest == eventDigest(e));
      CHECK(c.digest == digestOf(*signedBytes(bytes)));
      prev = bytesOf(c.digest);
      // Decoded and encoded again: byte-identical, so it still verifies.
      auto decoded = decodeEvent(bytes);
      REQUIRE(std::holds_alternative<Event>(decoded));
      CHECK(std::get<Event>(decoded).groupProof == e.groupProof);
      CHECK(encodeEvent(std::get<Event>(decoded)) == bytes);
    }
    // And in reverse order, each with a fresh verifier.
    for (size_t i = n; i-- > 0;)
      CHECK(SignatureVerifier().check(encodeEvent(events[i]), ring).status ==
            SignatureStatus::valid);
  }
}

TEST_CASE("a group-signed event: every kind of tampering is invalid, cached root or not") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  auto events = groupOf(5, key);
  for (size_t leaf : {0u, 3u, 4u}) {
    CAPTURE(leaf);
    const Event& e = events[leaf];
    // `warm` has verified the whole group: its root is remembered.
    SignatureVerifier warm;
    for (const auto& g : events)
      REQUIRE(warm.check(encodeEvent(g), ring).status == SignatureStatus::valid);
    auto invalid = [&](const Event& t) {
      CHECK(statusOf(t, ring, warm) == SignatureStatus::invalid);
    };

    SUBCASE("the body") {
      Event t = e;
      if (auto* c = std::get_if<Created>(&t.body)) {
        c->description += "!";
        invalid(t);
        t = e;
        std::get<Created>(t.body).secretHash[0] ^= 1;
      } else {
        std::get<Deactivated>(t.body).reason = Reason::manual;
      }
      invalid(t);
      const std::vector<std::function<void(Event&)>> changes{
          [](Event& u) { u.eventId[0] ^= 1; },
          [](Event& u) { u.tokenKey = generateTokenKey(); },
          [](Event& u) { u.owner += "x"; },
          [](Event& u) { u.actor = "mallory"; },
          [](Event& u) { u.requestId += "x"; },
          [](Event& u) { u.occurredAt += std::chrono::microseconds(1); },
          [](Event& u) { u.schemaVersion = 2; },
          [](Event& u) { u.writerSeq += 1; },
          [](Event& u) { u.prevDigest = std::string(32, 'x'); },
          [](Event& u) { u.body = Activated{}; },
      };
      for (size_t i = 0; i < changes.size(); ++i) {
        CAPTURE(i);
        Event u = e;
        changes[i](u);
        invalid(u);
      }
    }
    SUBCASE("a flipped byte of the stored token key, actor or description") {
      for (std::string_view what : {std::string_view(e.tokenKey), std::string_view("operator"),
                                    std::string_view("Receive leads")}) {
        CAPTURE(what);
        std::string bytes = encodeEvent(e);
        auto at = bytes.find(what);
        if (at == std::string::npos) continue;  // a deactivation has no description
        bytes[at + 5] ^= 1;
        CHECK(checkSignature(bytes, ring).status == SignatureStatus::invalid);
        CHECK(warm.check(bytes, ring).status == SignatureStatus::invalid);
      }
    }
    SUBCASE("the proof") {
      if (!e.groupProof.empty()) {
        for (size_t i = 0; i < e.groupProof.size(); ++i) {
          Event t = e;
          t.groupProof[i][7] ^= 0x20;
          invalid(t);
        }
        Event cut = e;
        cut.groupProof.pop_back();
        invalid(cut);
        Event shortEntry = e;
        shortEntry.groupProof[0].pop_back();
        invalid(shortEntry);
        Event swapped = e;
        if (swapped.groupProof.size() > 1) {
          std::swap(swapped.groupProof[0], swapped.groupProof[1]);
          invalid(swapped);
        }
      }
      Event longer = e;
      longer.groupProof.push_back(std::string(32, '\0'));
      invalid(longer);
    }
    SUBCASE("the leaf index") {
      for (uint32_t other : {0u, 1u, 2u, 3u, 4u, 5u, 1000u}) {
        if (other == e.groupLeaf) continue;
        Event t = e;
        t.groupLeaf = other;
        invalid(t);
      }
    }
    SUBCASE("the group size") {
      for (uint32_t other : {0u, 1u, 4u, 6u, 7u, 8u, 1u << 31}) {
        Event t = e;
        t.groupSize = other;
        invalid(t);
      }
    }
    SUBCASE("the group signature") {
      for (size_t i : {0u, 31u, 32u, 63u}) {
        Event t = e;
        t.groupSignature[i] ^= 1;
        invalid(t);
      }
      Event cut = e;
      cut.groupSignature.pop_back();
      invalid(cut);
      Event other = e;
      other.groupSignature = key.sign(groupSignedBytes(5, Digest{}));
      invalid(other);
    }
    SUBCASE("both kinds of signature, or group fields beside a v1 signature") {
      Event both = e;
      both.signature = std::string(64, 's');
      invalid(both);
      Event v1 = e;
      Digest d = signEvent(v1, key);  // clears the group fields
      CHECK(d == eventDigest(e));     // the same digest: group fields do not count
      CHECK(statusOf(v1, ring, warm) == SignatureStatus::valid);
      Event withLeaf = v1;
      withLeaf.groupLeaf = 1;
      invalid(withLeaf);
      Event withSize = v1;
      withSize.groupSize = 1;
      invalid(withSize);
      Event withProof = v1;
      withProof.groupProof =
          e.groupProof.empty() ? std::vector<std::string>{std::string(32, 'x')} : e.groupProof;
      invalid(withProof);
    }
    SUBCASE("signed by another key, or claiming another key") {
      SigningKey other = SigningKey::generate();
      Event t = e;
      t.signingKeyId = other.keyId();
      CHECK(statusOf(t, ring, warm) == SignatureStatus::unknownKey);
      KeyRing both = ringOf(key);
      both.add(other.publicKey());
      CHECK(checkSignature(encodeEvent(t), both).status == SignatureStatus::invalid);
      CHECK(warm.check(encodeEvent(t), both).status == SignatureStatus::invalid);
    }
    SUBCASE("unsigned: no signature of either kind") {
      Event t = e;
      t.groupSignature.clear();
      CHECK(statusOf(t, ring, warm) == SignatureStatus::unsignedEvent);
      Event bare = e;
      bare.groupSignature.clear();
      bare.groupProof.clear();
      bare.groupLeaf = 0;
      bare.groupSize = 0;
      auto c = checkSignature(encodeEvent(bare), ring);
      CHECK(c.status == SignatureStatus::unsignedEvent);
      CHECK(c.digest == eventDigest(e));
    }
  }
}

TEST_CASE("an event of one group with another group's signature is invalid") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  auto a = groupOf(5, key);
  auto b = groupOf(5, key, 5, bytesOf(eventDigest(a.back())));
  SignatureVerifier warm;
  for (const auto* g : {&a, &b})
    for (const auto& e : *g)
      REQUIRE(warm.check(encodeEvent(e), ring).status == SignatureStatus::valid);
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    Event t = a[i];
    t.groupSignature = b[i].groupSignature;
    CHECK(statusOf(t, ring, warm) == SignatureStatus::invalid);
    // With b's whole group part: its path leads elsewhere.
    t.groupProof = b[i].groupProof;
    t.groupLeaf = b[i].groupLeaf;
    t.groupSize = b[i].groupSize;
    CHECK(statusOf(t, ring, warm) == SignatureStatus::invalid);
    // a's event with a's path and signature, but claiming b's event's place.
    Event u = a[i];
    u.groupLeaf = (u.groupLeaf + 1) % 5;
    CHECK(statusOf(u, ring, warm) == SignatureStatus::invalid);
  }
  // A group of 5 and a group of 4 made of its first events: different roots.
  std::vector<Event> four(a.begin(), a.begin() + 4);
  std::vector<Digest> digests;
  std::vector<Event*> ptrs;
  for (auto& e : four) {
    digests.push_back(eventDigest(e));
    ptrs.push_back(&e);
  }
  signGroup(ptrs, digests, key);
  for (auto& e : four) {
    CHECK(statusOf(e, ring, warm) == SignatureStatus::valid);
    Event t = e;
    t.groupSignature = a[0].groupSignature;
    CHECK(statusOf(t, ring, warm) == SignatureStatus::invalid);
  }
}

TEST_CASE("the verifier's cache: a forged event cannot ride on a root verified before") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  SigningKey other = SigningKey::generate();
  KeyRing ring = ringOf(key);
  ring.add(other.publicKey());
  auto group = groupOf(3, key);
  SignatureVerifier verifier;
  REQUIRE(verifier.check(encodeEvent(group[1]), ring).status == SignatureStatus::valid);

  // The same signature, size, leaf and path, another event: its own bytes lead to
  // another root, which nobody signed.
  Event forged = someEvent(7);
  forged.signingKeyId = key.keyId();
  forged.writerSeq = group[1].writerSeq;
  forged.prevDigest = group[1].prevDigest;
  forged.groupSignature = group[1].groupSignature;
  forged.groupProof = group[1].groupProof;
  forged.groupLeaf = group[1].groupLeaf;
  forged.groupSize = group[1].groupSize;
  CHECK(verifier.check(encodeEvent(forged), ring).status == SignatureStatus::invalid);
  // The genuine event, only its description changed.
  Event altered = group[1];
  std::get<Created>(altered.body).description = "forged after the root was verified";
  CHECK(verifier.check(encodeEvent(altered), ring).status == SignatureStatus::invalid);
  // The genuine event claiming the other trusted key: the cached root was the first key's.
  Event rekeyed = group[1];
  rekeyed.signingKeyId = other.keyId();
  CHECK(verifier.check(encodeEvent(rekeyed), ring).status == SignatureStatus::invalid);
  // The genuine event with a garbage signature: its root is remembered, but not with
  // these signature bytes.
  Event garbage = group[1];
  garbage.groupSignature = std::string(64, '\x01');
  CHECK(verifier.check(encodeEvent(garbage), ring).status == SignatureStatus::invalid);
  // The group's size is part of what is remembered: the root of a group of 3 does
  // not pass for one of 4.
  Event resized = group[2];
  resized.groupSize = 4;
  CHECK(verifier.check(encodeEvent(resized), ring).status == SignatureStatus::invalid);
  // And the genuine ones still pass.
  for (const auto& e : group)
    CHECK(verifier.check(encodeEvent(e), ring).status == SignatureStatus::valid);

  // The cache is bounded: many groups later, an early one verifies again.
  std::vector<std::vector<Event>> groups;
  for (int i = 0; i < 40; ++i) groups.push_back(groupOf(2, key));
  for (const auto& g : groups)
    for (const auto& e : g)
      CHECK(verifier.check(encodeEvent(e), ring).status == SignatureStatus::valid);
  CHECK(verifier.check(encodeEvent(groups[0][1]), ring).status == SignatureStatus::valid);
  CHECK(verifier.check(encodeEvent(forged), ring).status == SignatureStatus::invalid);
}

// A Kafka rebuild reads each partition's run of records in turn: a group's events
// come back once per partition, thousands of records apart. Each group's root is
// still verified once (with 16 remembered roots, as before, 6 times per group here).
TEST_CASE("the verifier remembers a group's root across thousands of other records") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  constexpr size_t kGroups = 300, kSize = 6;
  std::vector<std::vector<Event>> groups;
  for (size_t g = 0; g < kGroups; ++g) groups.push_back(groupOf(kSize, key, g * kSize));
  SignatureVerifier verifier;
  // "Partition" p holds event p of every group: read one partition after another.
  for (size_t p = 0; p < kSize; ++p)
    for (const auto& g : groups)
      REQUIRE(verifier.check(encodeEvent(g[p]), ring).status == SignatureStatus::valid);
  CHECK(verifier.signaturesVerified() == kGroups);
}

TEST_CASE("an old build reads a group-signed event as unsigned; this one reads both forms") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  auto group = groupOf(2, key);
  // What an old build sees: no `signature` (it never reads the group fields).
  auto decoded = decodeEvent(encodeEvent(group[0]));
  REQUIRE(std::holds_alternative<Event>(decoded));
  CHECK(std::get<Event>(decoded).signature.empty());
  // A v1 event chained on a group, and a group on a v1 event, with one verifier.
  Event v1 = someEvent(9);
  v1.writerSeq = 3;
  v1.prevDigest = bytesOf(eventDigest(group[1]));
  Digest d = signEvent(v1, key);
  auto next = groupOf(3, key, 3, bytesOf(d));
  SignatureVerifier verifier;
  std::string prev;
  uint64_t seq = 0;
  for (const Event* e : {&group[0], &group[1], &v1, &next[0], &next[1], &next[2]}) {
    auto c = verifier.check(encodeEvent(*e), ring);
    CHECK(c.status == SignatureStatus::valid);
    CHECK(c.writerSeq == ++seq);
    CHECK(c.prevDigest == prev);
    prev = bytesOf(c.digest);
  }
  CHECK(verifier.check("garbage!", ring).status == SignatureStatus::malformed);
  CHECK(verifier.check(std::string(16, '\xff'), ring).status == SignatureStatus::malformed);
}

TEST_CASE("signGroup refuses what is not a group") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  Event e = someEvent(0);
  std::vector<Event*> one{&e};
  CHECK_THROWS_AS(signGroup({}, {}, key), std::invalid_argument);
  CHECK_THROWS_AS(signGroup(one, {}, key), std::invalid_argument);
}

std::vector<LogRecord> readAll(EventLog& log) {
  auto reader = log.openReader(Offsets::atStart(log.partitionCount()));
  int64_t end = reader->endOffsets().next[0].value;
  std::vector<LogRecord> out;
  while (static_cast<int64_t>(out.size()) < end)
    for (auto& r : reader->poll(1000, std::chrono::milliseconds(100))) out.push_back(std::move(r));
  return out;
}

TEST_CASE("signed appender: each signing pass is one group; a rewound pass is signed anew") {
  test::ensureCrypto();
  test::TempDir dir;
  auto log = openEmbeddedLog(dir.sub("log"), EmbeddedLogOptions{64ull << 20});
  test::GatedLog gated(*log);
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  SignedAppender appender(gated, std::move(key), WriterState{}, nullptr, nullptr);
  auto some = [](size_t n) {
    std::vector<Event> events;
    for (size_t i = 0; i < n; ++i) events.push_back(someEvent(i));
    return events;
  };
  // One call, one pass: a group of 5.
  auto five = some(5);
  appender.append("alice", five);
  for (uint32_t i = 0; i < 5; ++i) {
    CHECK(five[i].groupSize == 5);
    CHECK(five[i].groupLeaf == i);
    CHECK(five[i].groupSignature == five[0].groupSignature);
    CHECK(five[i].signature.empty());
  }
  // A pass of one event is a group of one.
  auto one = some(1);
  appender.append("bob", one);
  CHECK(one[0].groupSize == 1);
  CHECK(one[0].groupProof.empty());
  // While the first pass waits at the gate, the next calls queue and are signed
  // together: passes of several requests, some of several owners.
  gated.gated = true;
  std::atomic<int> done{0};
  auto count = [&](SignedAppender::Appended& a) {
    CHECK_FALSE(a.error);
    done++;
  };
  appender.appendAsync("carol", some(2), count);
  while (gated.waiting == 0) std::this_thread::yield();
  for (int i = 0; i < 10; ++i) appender.appendAsync("user" + std::to_string(i % 3), some(3), count);
  gated.gated = false;
  while (done < 11) std::this_thread::yield();
  // An append that recorded nothing: its pass is signed again, as a new group.
  gated.down = true;
  auto lost = some(4);
  CHECK_THROWS_AS(appender.append("dave", lost), LogUnavailable);
  CHECK(lost[0].groupSize == 4);
  gated.down = false;
  auto again = lost;
  appender.append("dave", again);
  CHECK(again[0].writerSeq == lost[0].writerSeq);  // the numbers were given back
  auto records = readAll(*log);
  REQUIRE(records.size() == 5 + 1 + 2 + 30 + 4);
  // One chain without gaps, in groups: each pass's events next to each other in the
  // log, leaves 0..size-1 under one signature.
  SignatureVerifier verifier;
  std::string prev;
  uint64_t seq = 0;
  std::vector<uint32_t> sizes;
  Event first;
  for (const auto& r : records) {
    auto c = verifier.check(r.value, ring);
    REQUIRE(c.status == SignatureStatus::valid);
    CHECK(c.writerSeq == ++seq);
    CHECK(c.prevDigest == prev);
    prev = bytesOf(c.digest);
    auto e = std::get<Event>(decodeEvent(r.value));
    if (e.groupLeaf == 0) {
      if (!sizes.empty()) CHECK(first.groupLeaf + sizes.back() == seq - first.writerSeq);
      first = e;
      sizes.push_back(e.groupSize);
    }
    CHECK(e.groupLeaf == seq - first.writerSeq);
    CHECK(e.groupSize == first.groupSize);
    CHECK(e.groupSignature == first.groupSignature);
  }
  CHECK(first.groupSize == 4);
  REQUIRE(sizes.size() >= 5);
  CHECK(sizes[0] == 5);
  CHECK(sizes[1] == 1);
  CHECK(sizes[2] == 2);
  CHECK(sizes.back() == 4);
}

// Fixed vectors, literal bytes, like signing_test.cpp's: every group-signed event in
// every log was made like these. A change that makes one of these fail (context
// strings, canonical encoding, digest, Merkle tree, what the group signature
// covers) means old logs no longer verify: do not update the literals, keep the
// format. Computed once with the code that wrote the logs; the digests, root and
// signature cross-checked with Python's hashlib and cryptography.
namespace vectors {
using namespace test::vectors;
using test::bytesFrom;
using test::unhex;

// signing_test.cpp's fixed event as written before group signatures (v1): it still
// verifies, with the same digest.
constexpr std::string_view kV1Envelope =
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
constexpr std::string_view kV1Digest =
    "7d859db9b753d0d62c0032f7b3041e8f4fd29bdef1ce97d708d95d4ce4538e77";

// fixedGroup() signed as one group by the key above: the three digests, the root,
// the group signature, and the envelope of the middle event (leaf 1 of 3).
constexpr std::string_view kGroupDigests[3] = {
    "7d859db9b753d0d62c0032f7b3041e8f4fd29bdef1ce97d708d95d4ce4538e77",
    "acff71d8c315516a2825a3f16b896ee471b8fa3b7fa50c2e25871078f1089e7b",
    "415198e473de9e54e58dd01d8c95bc3ed6cdd3080e9cfa221e2eaaa6733e0f09",
};
constexpr std::string_view kGroupRoot =
    "040e872ba716e748c825bdbe3c2fa53aceb148898bf3d461118bb40626f808a1";
constexpr std::string_view kGroupSignature =
    "d3f0ca83fb45c2a2ff9d1e8c0d29cd0417daa4e0dc87ab53514296f5bc0ab148ed8f997883acb551"
    "f5486f5241e6dc7d6a48a94eb663771dcb559b1d2a779d0c";
constexpr std::string_view kGroupEnvelope =
    "00000000360000000000000004000d0040822f464847060001000100000000002b00000000000000"
    "0100000003000000310000008200000035000000ea0000004100000032000000410000004a000000"
    "450000004a0000000000000000000000450000008a000000fcffffff000000004900000002010000"
    "000000000000000000000000000000004d0000000202000069000000160000001011121314151617"
    "18191a1b1c1d1e1f746c6b5f303132333435363738394142434445464748494a4b4c4d4e00000000"
    "616c6963650000006f70657261746f7200000000000000007265712d303030320000000000000000"
    "3738343961633330343936383062653100000000000000007d859db9b753d0d62c0032f7b3041e8f"
    "4fd29bdef1ce97d708d95d4ce4538e77d3f0ca83fb45c2a2ff9d1e8c0d29cd0417daa4e0dc87ab53"
    "514296f5bc0ab148ed8f997883acb551f5486f5241e6dc7d6a48a94eb663771dcb559b1d2a779d0c"
    "05000000020100001100000002010000b00fd68f9d1da96144d13cd62cb219c49992543e236f28f7"
    "881415b7fefe9f839f2115d2eb33ac450a5123aec20b267224b1cb45c09c341ac01ee8e874cdf88f";

// Three events, every field set, none random: a creation (signing_test.cpp's fixed
// event), its activation and its deactivation, writer seq 42, 43 and 44.
std::vector<Event> fixedGroup() {
  Event e = fixedEvent();  // its writer seq and previous digest: the group's to set
  Event activated = e;
  activated.eventId = bytesFrom(0x10, 16);
  activated.requestId = "req-0002";
  activated.occurredAt += std::chrono::seconds(1);
  activated.body = Activated{};
  Event deactivated = e;
  deactivated.eventId = bytesFrom(0x20, 16);
  deactivated.requestId = "req-0003";
  deactivated.occurredAt += std::chrono::seconds(2);
  deactivated.body = Deactivated{Reason::compromised, e.occurredAt};
  return {e, activated, deactivated};
}

}  // namespace vectors

TEST_CASE("fixed vectors: a group of three events, its digests, root and signature") {
  test::ensureCrypto();
  SigningKey key = vectors::fixedKey();
  auto group = vectors::fixedGroup();
  auto digests = signAsGroup(group, key, 41, vectors::bytesFrom(0x20, 32));
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(hexOf(digests[i]) == vectors::kGroupDigests[i]);
  }
  CHECK(hexOf(merkle::root(digests)) == vectors::kGroupRoot);
  CHECK(toHex(group[1].groupSignature) == vectors::kGroupSignature);
  CHECK(toHex(encodeEvent(group[1])) == vectors::kGroupEnvelope);
  // The first event is signing_test.cpp's fixed event: the same digest as when it was
  // signed alone (v1).
  CHECK(hexOf(digests[0]) == vectors::kV1Digest);
}

TEST_CASE("fixed vectors: the group-signed envelope decodes and verifies alone") {
  test::ensureCrypto();
  std::string raw = vectors::unhex(vectors::kGroupEnvelope);
  auto decoded = decodeEvent(raw);
  REQUIRE(std::holds_alternative<Event>(decoded));
  const Event& d = std::get<Event>(decoded);
  CHECK(std::holds_alternative<Activated>(d.body));
  CHECK(d.writerSeq == 43);
  CHECK(d.signature.empty());
  CHECK(d.groupLeaf == 1);
  CHECK(d.groupSize == 3);
  REQUIRE(d.groupProof.size() == 2);
  // By hand, as docs/audit.md describes: digest, path, root, signature.
  Digest leaf = digestOf(*signedBytes(raw));
  CHECK(hexOf(leaf) == vectors::kGroupDigests[1]);
  std::vector<Digest> path(2);
  for (size_t i = 0; i < 2; ++i) memcpy(path[i].data(), d.groupProof[i].data(), 32);
  auto root = merkle::rootFrom(leaf, 1, 3, path);
  REQUIRE(root.has_value());
  CHECK(hexOf(*root) == vectors::kGroupRoot);
  KeyRing ring;
  REQUIRE_FALSE(ring.addLines(vectors::kPublicKeyLine, "vector").has_value());
  CHECK(signatureValid(ring.keys()[0].key, groupSignedBytes(3, *root), d.groupSignature));
  // And with the verifier.
  SignatureVerifier verifier;
  auto check = verifier.check(raw, ring);
  CHECK(check.status == SignatureStatus::valid);
  CHECK(check.keyId == "7849ac3049680be1");
  CHECK(check.writerSeq == 43);
  CHECK(hexOf(check.digest) == vectors::kGroupDigests[1]);
  CHECK(toHex(check.prevDigest) == vectors::kGroupDigests[0]);
  // The literal is no rubber stamp: one changed byte of the request id fails.
  auto at = raw.find("req-0002");
  REQUIRE(at != std::string::npos);
  raw[at + 7] = '9';
  CHECK(verifier.check(raw, ring).status == SignatureStatus::invalid);
}

TEST_CASE("fixed vectors: an event signed alone before group signatures still verifies") {
  test::ensureCrypto();
  std::string raw = vectors::unhex(vectors::kV1Envelope);
  KeyRing ring;
  REQUIRE_FALSE(ring.addLines(vectors::kPublicKeyLine, "vector").has_value());
  SignatureVerifier verifier;
  // Also after the verifier remembered a group's root.
  REQUIRE(verifier.check(vectors::unhex(vectors::kGroupEnvelope), ring).status ==
          SignatureStatus::valid);
  auto check = verifier.check(raw, ring);
  CHECK(check.status == SignatureStatus::valid);
  CHECK(check.writerSeq == 42);
  CHECK(hexOf(check.digest) == vectors::kV1Digest);
  CHECK(checkSignature(raw, ring).status == SignatureStatus::valid);
  auto at = raw.find("RD Station");
  REQUIRE(at != std::string::npos);
  raw[at] = 'r';
  CHECK(verifier.check(raw, ring).status == SignatureStatus::invalid);
}

// The digest's input as defined (docs/audit.md), computed the plain way: copy the
// whole envelope, clear the signature and the group fields, canonicalise.
std::string referenceSignedBytes(std::string_view envelope) {
  auto words = kj::heapArray<capnp::word>(envelope.size() / 8);
  memcpy(words.begin(), envelope.data(), envelope.size());
  capnp::FlatArrayMessageReader reader(words);
  capnp::MallocMessageBuilder copy;
  copy.setRoot(reader.getRoot<schema::Envelope>());
  auto root = copy.getRoot<schema::Envelope>();
  if (root.hasSignature()) root.disownSignature();
  if (root.hasGroupSignature()) root.disownGroupSignature();
  if (root.hasGroupProof()) root.disownGroupProof();
  root.setGroupLeaf(0);
  root.setGroupSize(0);
  kj::Array<capnp::word> canonical = capnp::canonicalize(root.asReader());
  auto bytes = canonical.asBytes();
  return std::string(kSigningContext) +
         std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

TEST_CASE("the digest's bytes are the canonical envelope without signature and group fields") {
  test::ensureCrypto();
  SigningKey key = SigningKey::generate();
  KeyRing ring = ringOf(key);
  std::vector<std::string> envelopes;
  for (const auto& e : groupOf(5, key)) envelopes.push_back(encodeEvent(e));
  Event v1 = someEvent(0);
  signEvent(v1, key);
  envelopes.push_back(encodeEvent(v1));
  Event both = groupOf(3, key)[2];  // both kinds of signature: invalid, same digest
  both.signature = std::string(64, 's');
  envelopes.push_back(encodeEvent(both));
  Event bare = someEvent(1);
  envelopes.push_back(encodeEvent(bare));
  // The layout before issue 14's fields, and the fixed group vector.
  envelopes.push_back(vectors::unhex(vectors::kV1Envelope));
  envelopes.push_back(vectors::unhex(vectors::kGroupEnvelope));
  // Written by a newer schema: an unknown union member, unknown fields.
  envelopes.push_back(
      test::encodeRevoked(randomBytes(16), generateTokenKey(), "alice", test::timeUs(5)));
  envelopes.push_back(test::encodeFutureCreated(randomBytes(16), generateTokenKey(), "alice",
                                                test::timeUs(5), hashSecret(generateSecret())));
  // A message of several segments, as another producer may write.
  {
    capnp::MallocMessageBuilder message(4, capnp::AllocationStrategy::FIXED_SIZE);
    message.setRoot(capnp::FlatArrayMessageReader(
                        kj::arrayPtr(reinterpret_cast<const capnp::word*>(envelopes[1].data()),
                                     envelopes[1].size() / 8))
                        .getRoot<schema::Envelope>());
    REQUIRE(message.getSegmentsForOutput().size() > 1);
    envelopes.push_back(test::detail::flatten(message));
    CHECK(checkSignature(envelopes.back(), ring).status == SignatureStatus::valid);
  }
  for (size_t i = 0; i < envelopes.size(); ++i) {
    CAPTURE(i);
    auto bytes = signedBytes(envelopes[i]);
    REQUIRE(bytes.has_value());
    CHECK(toHex(*bytes) == toHex(referenceSignedBytes(envelopes[i])));
    CHECK(checkSignature(envelopes[i], ring).digest == digestOf(*bytes));
  }
}

}  // namespace
}  // namespace tokenledger
