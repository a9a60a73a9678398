#!/usr/bin/env python3
"""A tokenledger topic consumer in Python: confluent-kafka, pycapnp, PyNaCl.

Reads every record of the topic from the beginning, decodes it with
schemas/tokenledger.capnp alone, checks its Ed25519 signature (alone or as one of a
group, with its Merkle proof) against the keys published at GET /v1/keys, and keeps
a dict of token states. See README.md.

  consumer.py --brokers 127.0.0.1:9092 --topic token-events \
              --keys-url http://127.0.0.1:8080/v1/keys [--print] [--json-out FILE]
"""
import argparse
import base64
import hashlib
import json
import os
import struct
import sys
import urllib.request

import capnp  # pycapnp
import nacl.exceptions
import nacl.signing
from confluent_kafka import Consumer, KafkaError, TopicPartition

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, "..", "..", "schemas", "tokenledger.capnp")

EVENT_CONTEXT = b"tokenledger-event-v1\n"
GROUP_CONTEXT = b"tokenledger-group-v1\n"


def load_schema(path):
    """The schema imports /capnp/c++.capnp (for C++ only): pycapnp ships that file."""
    ships = os.path.dirname(os.path.dirname(os.path.abspath(capnp.__file__)))
    return capnp.load(path, imports=[ships, "/usr/include"])


def blake2b256(data):
    return hashlib.blake2b(data, digest_size=32).digest()


def key_id_of(public_key):
    """First 8 bytes of BLAKE2b-256(public key), lower-case hex."""
    return blake2b256(public_key)[:8].hex()


# ----------------------------------------------------------------- canonical form
# Cap'n Proto's canonical encoding (capnp::canonicalize): one segment, objects in
# preorder, each struct's data section without trailing zero words and its pointer
# section without trailing null pointers. Written from the encoding spec, on the raw
# words, so it needs nothing but the message bytes.


class _Message:
    def __init__(self, data):
        (count_minus_one,) = struct.unpack_from("<I", data, 0)
        count = count_minus_one + 1
        sizes = struct.unpack_from("<%dI" % count, data, 4)
        offset = 4 + 4 * count
        offset += offset % 8  # padding to a word
        self.segments = []
        for size in sizes:
            self.segments.append(data[offset : offset + 8 * size])
            offset += 8 * size
        if offset > len(data):
            raise ValueError("truncated message")

    def word(self, seg, index):
        return struct.unpack_from("<Q", self.segments[seg], 8 * index)[0]

    def resolve(self, seg, index):
        """The pointer at (seg, index): (pointer word, segment, target word index)."""
        p = self.word(seg, index)
        if p == 0:
            return 0, seg, 0
        if p & 3 == 2:  # far pointer
            double = (p >> 2) & 1
            pad = (p >> 3) & 0x1FFFFFFF
            pad_seg = p >> 32
            if not double:
                return self.resolve(pad_seg, pad)
            far = self.word(pad_seg, pad)
            tag = self.word(pad_seg, pad + 1)
            return tag, far >> 32, (far >> 3) & 0x1FFFFFFF
        offset = (p & 0xFFFFFFFF) >> 2
        if offset >= 1 << 29:
            offset -= 1 << 30
        return p, seg, index + 1 + offset


class _Writer:
    def __init__(self):
        self.words = []

    def alloc(self, n):
        at = len(self.words)
        self.words.extend([0] * n)
        return at

    def set_pointer(self, at, kind, target, upper):
        offset = (target - at - 1) & 0x3FFFFFFF
        self.words[at] = ((offset << 2) | kind) | (upper << 32)

    def copy_pointer(self, msg, seg, index, out_at, clear=None):
        p, tseg, target = msg.resolve(seg, index)
        if p == 0:
            return
        kind = p & 3
        if kind == 0:
            self.copy_struct(msg, p, tseg, target, out_at, clear)
        elif kind == 1:
            self.copy_list(msg, p, tseg, target, out_at)
        else:
            raise ValueError("capabilities and other pointers are not in this schema")

    def _struct_parts(self, msg, data_words, ptr_count, seg, target, clear):
        data = bytearray(msg.segments[seg][8 * target : 8 * (target + data_words)])
        nulls = []
        if clear:
            for at in clear["data_bytes"]:
                if at + 4 <= len(data):
                    data[at : at + 4] = b"\0\0\0\0"
            nulls = clear["pointers"]
        while len(data) >= 8 and data[-8:] == b"\0" * 8:
            del data[-8:]
        ptrs = [
            i for i in range(ptr_count) if i not in nulls and msg.word(seg, target + data_words + i)
        ]
        n_ptrs = (ptrs[-1] + 1) if ptrs else 0
        return bytes(data), n_ptrs, set(ptrs)

    def copy_struct(self, msg, p, seg, target, out_at, clear=None):
        data_words = (p >> 32) & 0xFFFF
        ptr_count = p >> 48
        data, n_ptrs, live = self._struct_parts(msg, data_words, ptr_count, seg, target, clear)
        dw = len(data) // 8
        if dw == 0 and n_ptrs == 0:  # an empty struct: offset -1, no allocation
            self.words[out_at] = 0xFFFFFFFC
            return
        at = self.alloc(dw + n_ptrs)
        for i in range(dw):
            self.words[at + i] = struct.unpack_from("<Q", data, 8 * i)[0]
        self.set_pointer(out_at, 0, at, dw | (n_ptrs << 16))
        for i in range(n_ptrs):
            if i in live:
                self.copy_pointer(msg, seg, target + data_words + i, at + dw + i)

    def copy_list(self, msg, p, seg, target, out_at):
        size = (p >> 32) & 7
        count = p >> 35
        if size == 7:  # composite: a tag word, then the elements
            tag = msg.word(seg, target)
            n = (tag & 0xFFFFFFFF) >> 2
            data_words = (tag >> 32) & 0xFFFF
            ptr_count = tag >> 48
            step = data_words + ptr_count
            parts = [
                self._struct_parts(msg, data_words, ptr_count, seg, target + 1 + i * step, None)
                for i in range(n)
            ]
            dw = max([len(d) // 8 for d, _, _ in parts] or [0])
            pc = max([c for _, c, _ in parts] or [0])
            at = self.alloc(1 + n * (dw + pc))
            self.words[at] = (n << 2) | (dw << 32) | (pc << 48)
            for i, (d, _, live) in enumerate(parts):
                base = at + 1 + i * (dw + pc)
                d = d.ljust(8 * dw, b"\0")
                for w in range(dw):
                    self.words[base + w] = struct.unpack_from("<Q", d, 8 * w)[0]
            for i, (_, _, live) in enumerate(parts):
                base = at + 1 + i * (dw + pc)
                for j in range(pc):
                    if j in live:
                        self.copy_pointer(msg, seg, target + 1 + i * step + data_words + j, base + dw + j)
            self.set_pointer(out_at, 1, at, 7 | ((n * (dw + pc)) << 3))
            return
        if size == 6:  # pointers
            at = self.alloc(count)
            self.set_pointer(out_at, 1, at, 6 | (count << 3))
            for i in range(count):
                self.copy_pointer(msg, seg, target + i, at + i)
            return
        bits = [0, 1, 8, 16, 32, 64][size]
        nbytes = (count * bits + 7) // 8
        raw = bytes(msg.segments[seg][8 * target : 8 * target + nbytes])
        raw = raw.ljust((nbytes + 7) // 8 * 8, b"\0")
        if size == 1 and count % 8:  # bits past the last element are zero
            raw = bytearray(raw)
            raw[nbytes - 1] &= (1 << (count % 8)) - 1
            raw = bytes(raw)
        at = self.alloc(len(raw) // 8)
        for w in range(len(raw) // 8):
            self.words[at + w] = struct.unpack_from("<Q", raw, 8 * w)[0]
        self.set_pointer(out_at, 1, at, size | (count << 3))

    def to_bytes(self):
        return struct.pack("<%dQ" % len(self.words), *self.words)


def canonical(message_bytes, clear=None):
    """The canonical encoding of a framed message's root struct (no segment table).
    `clear`: {"data_bytes": [...], "pointers": [...]} of the root to leave out."""
    msg = _Message(message_bytes)
    w = _Writer()
    w.alloc(1)
    w.copy_pointer(msg, 0, 0, 0, clear)
    return w.to_bytes()


# ----------------------------------------------------------------- signatures


def merkle_root_from(leaf, index, size, path):
    """RFC 9162 2.1.3.2 with BLAKE2b-256 (events/merkle.cpp); None if the path cannot fit."""
    if size == 0 or index >= size:
        return None
    fn, sn = index, size - 1
    r = blake2b256(b"\x00" + leaf)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = blake2b256(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = blake2b256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


class Verifier:
    def __init__(self, schema, keys):
        self.keys = keys  # key id -> nacl VerifyKey
        fields = {f.name: f for f in schema.Envelope.schema.node.struct.fields}
        # What the digest leaves out (events/signing.h): the signatures and group fields.
        self.clear = {
            "data_bytes": [fields[n].slot.offset * 4 for n in ("groupLeaf", "groupSize")],
            "pointers": [
                fields[n].slot.offset for n in ("signature", "groupSignature", "groupProof")
            ],
        }

    def check(self, raw, env):
        """'valid', 'unsigned', 'unknown_key' or 'invalid'."""
        key = self.keys.get(env.signingKeyId)
        signature, group_signature = bytes(env.signature), bytes(env.groupSignature)
        if not signature and not group_signature:
            return "unsigned"
        if key is None:
            return "unknown_key"
        signed = EVENT_CONTEXT + canonical(raw, self.clear)
        try:
            if signature:
                if group_signature or len(env.groupProof) or env.groupSize or env.groupLeaf:
                    return "invalid"
                key.verify(signed, signature)
                return "valid"
            digest = blake2b256(signed)
            root = merkle_root_from(
                digest, env.groupLeaf, env.groupSize, [bytes(p) for p in env.groupProof]
            )
            if root is None:
                return "invalid"
            key.verify(GROUP_CONTEXT + struct.pack(">I", env.groupSize) + root, group_signature)
            return "valid"
        except nacl.exceptions.BadSignatureError:
            return "invalid"


# ----------------------------------------------------------------- token states


def us_to_rfc3339(us):
    import datetime

    t = datetime.datetime.fromtimestamp(us / 1e6, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def apply(tokens, env):
    """A simple view: created / activated / deactivated per token key. Conditional
    events (basedOnVersion) that lost a race are not decided here: see README.md."""
    which = env.event.which()
    key = env.tokenKey
    if which == "created":
        c = env.event.created
        tokens[key] = {
            "key": key,
            "owner": env.owner,
            "kind": str(c.kind),
            "description": c.description,
            "status": "active",
            "replaces": c.replaces or None,
            "expires_at": us_to_rfc3339(c.expiresAtUs) if c.expiresAtUs else None,
            "deactivation_reason": None,
            "effective_at": None,
        }
        if c.replaces in tokens:
            tokens[c.replaces]["replaced_by"] = key
    elif which == "activated" and key in tokens:
        tokens[key].update(status="active", deactivation_reason=None, effective_at=None)
    elif which == "deactivated" and key in tokens:
        d = env.event.deactivated
        tokens[key].update(
            status="inactive",
            deactivation_reason=str(d.reason),
            effective_at=us_to_rfc3339(d.effectiveAtUs) if d.effectiveAtUs else None,
        )


def fetch_keys(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    keys = {}
    for k in body["keys"]:
        public = base64.b64decode(k["public_key"])
        if key_id_of(public) != k["key_id"]:
            raise SystemExit("key %s: its id does not match its key" % k["key_id"])
        keys[k["key_id"]] = nacl.signing.VerifyKey(public)
    return keys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--keys-url", action="append", required=True,
                    help="GET /v1/keys of a replica (repeat for several)")
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    ap.add_argument("--print", action="store_true", help="print each event as a JSON line")
    ap.add_argument("--json-out", help="write the final token dict and counts here")
    ap.add_argument("--idle-seconds", type=float, default=3.0,
                    help="stop after reaching the end of every partition and this long idle")
    args = ap.parse_args()

    schema = load_schema(args.schema)
    keys = {}
    for url in args.keys_url:
        keys.update(fetch_keys(url))
    verifier = Verifier(schema, keys)

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": "tokenledger-python-example-%d" % os.getpid(),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
    })
    meta = consumer.list_topics(args.topic, timeout=10)
    partitions = sorted(meta.topics[args.topic].partitions)
    consumer.assign([TopicPartition(args.topic, p, 0) for p in partitions])  # from the start

    tokens, counts, seen, at_end = {}, {}, set(), set()
    idle = 0.0
    while len(at_end) < len(partitions) or idle < args.idle_seconds:
        m = consumer.poll(0.5)
        if m is None:
            idle += 0.5
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(m.partition())
                continue
            raise SystemExit("kafka: %s" % m.error())
        idle = 0.0
        raw = m.value()
        try:
            with schema.Envelope.from_bytes(raw, traversal_limit_in_words=1 << 20) as env:
                status = verifier.check(raw, env)
                which = env.event.which()
                counts[status] = counts.get(status, 0) + 1
                event_id = bytes(env.eventId)
                if args.print:
                    print(json.dumps({"partition": m.partition(), "offset": m.offset(),
                                      "type": str(which), "key": env.tokenKey,
                                      "owner": env.owner, "signature": status,
                                      "group_size": env.groupSize}), flush=True)
                if status != "valid" or event_id in seen or which == "writerCertified":
                    continue  # untrusted, a duplicate, or not about a token
                seen.add(event_id)
                apply(tokens, env)
        except capnp.KjException as e:
            counts["malformed"] = counts.get("malformed", 0) + 1
            print("skipping a malformed record at %d:%d: %s" % (m.partition(), m.offset(), e),
                  file=sys.stderr)
    consumer.close()
    result = {"signatures": counts, "tokens": tokens}
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
    print(json.dumps({"signatures": counts, "tokens": len(tokens)}), file=sys.stderr)


if __name__ == "__main__":
    main()
