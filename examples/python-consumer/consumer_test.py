#!/usr/bin/env python3
"""Integration test of the Python consumer against a real broker (CTest
`integration.python_consumer`, fixture `kafka`).

  consumer_test.py --tokenledgerd BIN --ledger-audit BIN --venv DIR --work DIR

Makes a trust root and certifies a fresh data directory's writer (ledger-audit),
starts tokenledgerd in Kafka mode on $KAFKA_BROKERS with a fresh topic, creates,
deactivates and rotates tokens through the API (concurrently too, so that events
are signed in groups), runs consumer.py with the venv's python, and compares the
consumer's dict of tokens with GET /v1/users/{user}/tokens. Then checks that a
record with one changed byte fails its signature check.
"""
import argparse
import concurrent.futures
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAILED = []


def check(name, ok, detail=""):
    print(("ok   - " if ok else "FAIL - ") + name + ("" if ok else "\n       " + str(detail)[:2000]))
    if not ok:
        FAILED.append(name)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit("%s: exit %d\n%s%s" % (cmd[0], r.returncode, r.stdout, r.stderr))
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenledgerd", required=True)
    ap.add_argument("--ledger-audit", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    args.venv, args.work = os.path.abspath(args.venv), os.path.abspath(args.work)
    brokers = os.environ.get("KAFKA_BROKERS")
    if not brokers:
        raise SystemExit("KAFKA_BROKERS is not set: run through ctest (it starts the broker)")

    subprocess.run(["bash", os.path.join(HERE, "setup_venv.sh"), args.venv], check=True)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work + "/trust")
    data = args.work + "/data"
    root = args.work + "/trust/root-key"
    run([args.ledger_audit, "keys", "new-root", "--out", root])
    writer = run([args.tokenledgerd, "--data-dir", data, "--print-writer-key"]).splitlines()[0]
    run([args.ledger_audit, "keys", "certify", "--root", root, "--writer-key", writer,
         "--out", data + "/writer.cert"])

    topic = "python-consumer-" + secrets.token_hex(4)
    secret = "op-test-" + secrets.token_hex(16)
    env = dict(os.environ, TOKENLEDGER_OPERATOR_SECRET=secret)
    out = open(args.work + "/daemon.out", "w+")
    daemon = subprocess.Popen(
        [args.tokenledgerd, "--data-dir", data, "--listen", "127.0.0.1:0", "--trust-root",
         root + ".pub", "--log", "kafka", "--kafka-brokers", brokers, "--topic", topic,
         "--partitions", "3"],
        stdout=out, stderr=open(args.work + "/daemon.err", "w"), env=env)
    try:
        url = None
        for _ in range(600):
            out.seek(0)
            for line in out.read().splitlines():
                if line.startswith("listening on "):
                    url = "http://" + line.split()[-1]
            if url or daemon.poll() is not None:
                break
            time.sleep(0.1)
        if not url:
            raise SystemExit("tokenledgerd did not start: " + open(args.work + "/daemon.err").read())
        for _ in range(600):
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=5):
                    break
            except Exception:
                time.sleep(0.1)

        def call(method, path, body=None):
            req = urllib.request.Request(url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": "Bearer " + secret,
                                                  "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)

        users = ["alice", "bob", "carol@example.com"]
        created = {}

        def sequence(user):
            keys = []
            for i in range(4):
                body = {"description": "token %d" % i}
                if i == 3:
                    body.update(kind="destination", destination_id="dest-%d" % i)
                keys.append(call("POST", "/v1/users/%s/tokens" % user, body)["key"])
            call("POST", "/v1/users/%s/tokens/%s/deactivate" % (user, keys[0]))
            call("POST", "/v1/users/%s/tokens/%s/deactivate" % (user, keys[1]),
                 {"reason": "compromised"})
            call("POST", "/v1/users/%s/tokens/%s/activate" % (user, keys[1]))
            rotated = call("POST", "/v1/users/%s/tokens/%s/rotate" % (user, keys[2]))
            call("POST", "/v1/users/%s/tokens/%s/rotate" % (user, rotated["key"]),
                 {"grace_seconds": 3600})
            return keys

        # Concurrent commands: the appender signs them in groups (Merkle proofs).
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for user, keys in zip(users, pool.map(sequence, users)):
                created[user] = keys
            list(pool.map(lambda i: call("POST", "/v1/users/dave/tokens",
                                         {"description": "burst %d" % i}), range(40)))
        users.append("dave")

        result_file = args.work + "/consumer.json"
        py = os.path.join(args.venv, "bin", "python")
        r = subprocess.run([py, os.path.join(HERE, "consumer.py"), "--brokers", brokers,
                            "--topic", topic, "--keys-url", url + "/v1/keys", "--print",
                            "--json-out", result_file], capture_output=True, text=True,
                           timeout=300)
        check("consumer.py exits 0", r.returncode == 0, r.stderr)
        if r.returncode != 0:
            return
        view = json.load(open(result_file))
        printed = [json.loads(l) for l in r.stdout.splitlines()]
        counts = view["signatures"]
        certs = [p for p in printed if p["type"] == "writerCertified"]
        events = [p for p in printed if p["type"] != "writerCertified"]
        check("a writer certificate on each of the 3 partitions", len(certs) == 3, certs)
        bad = [p for p in events if p["signature"] != "valid"]
        check("every event's signature is valid (%d)" % len(events), not bad, bad[:5])
        # 3 users x (4 creates, 2 deactivates, 1 activate, 2 rotations of 2 events) + 40 creates
        check("it read every event", len(events) == 3 * 11 + 40, len(events))
        grouped = [p for p in events if p["group_size"] > 1]
        check("group signatures with Merkle proofs among them (%d)" % len(grouped), grouped)

        api = {}
        for user in users:
            for t in call("GET", "/v1/users/%s/tokens" % user)["tokens"]:
                api[t["key"]] = t
        mine = view["tokens"]
        check("same token keys as the API (%d)" % len(api), set(mine) == set(api),
              sorted(set(mine) ^ set(api)))
        for key, t in api.items():
            m = mine.get(key, {})
            want = {"owner": t["owner"], "kind": t["kind"],
                    "description": t["description"], "replaces": t.get("replaces"),
                    "replaced_by": t.get("replaced_by"),
                    # an active token with a scheduled deactivation (rotation grace) is
                    # "inactive, effective later" in the event view
                    "status": "inactive" if "deactivates_at" in t else t["status"],
                    "deactivation_reason": t.get("deactivation_reason")}
            got = {k: m.get(k) for k in want}
            check("token %s of %s matches the API" % (key, t["owner"]), got == want,
                  {"consumer": got, "api": want})

        # A changed byte must fail the signature check: re-run the verifier on a
        # tampered copy of one record (a description byte).
        tamper = subprocess.run([py, "-c", TAMPER, brokers, topic, url + "/v1/keys"],
                                capture_output=True, text=True, timeout=120, cwd=HERE)
        check("a changed byte fails the signature check", tamper.stdout.strip() == "valid invalid",
              tamper.stdout + tamper.stderr)
    finally:
        daemon.terminate()
        daemon.wait(30)
    print("%d failed" % len(FAILED))
    sys.exit(1 if FAILED else 0)


TAMPER = r"""
import sys, capnp
from confluent_kafka import Consumer, TopicPartition
import consumer as c
schema = c.load_schema(c.DEFAULT_SCHEMA)
v = c.Verifier(schema, c.fetch_keys(sys.argv[3]))
k = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "tamper", "enable.auto.commit": False})
parts = k.list_topics(sys.argv[2], timeout=10).topics[sys.argv[2]].partitions
k.assign([TopicPartition(sys.argv[2], p, 0) for p in parts])
while True:
    m = k.poll(5)
    if m is None: sys.exit("no created event found")
    if m.error(): continue
    raw = m.value()
    with schema.Envelope.from_bytes(raw) as e:
        if e.event.which() != "created" or b"token " not in raw: continue
        good = v.check(raw, e)
    i = raw.find(b"token ")
    bad = raw[:i] + b"T" + raw[i + 1:]
    with schema.Envelope.from_bytes(bad) as e:
        print(good, v.check(bad, e))
    break
k.close()
"""

if __name__ == "__main__":
    main()
