#!/usr/bin/python3
"""libtokenledger_verify from Python (ctypes, standard library only): starts
tokenledgerd on a temporary data directory, creates tokens over HTTP, and checks the
library's answers (valid, bad_secret, unknown, malformed, inactive right after a
deactivation) and its error for a directory without a read model.

    verify_py_test.py --tokenledgerd build/bin/tokenledgerd --library build/lib/libtokenledger_verify.so
"""
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from verify import Verifier, VerifyError  # noqa: E402

OPERATOR = "python-test-operator-secret-0123456789"


def call(port, method, path, body=None, auth=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else b"")
    req.add_header("Authorization", auth or f"Bearer {OPERATOR}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def http_reason(port, key, token):
    basic = "Basic " + base64.b64encode(f"{key}:{token}".encode()).decode()
    _, j = call(port, "POST", "/v1/verify", auth=basic)
    return "ok" if j.get("valid") else j["reason"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenledgerd", required=True)
    ap.add_argument("--library", required=True)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="tl-vlib-py-")
    data = os.path.join(root, "data")
    log = open(os.path.join(root, "stdout.log"), "w+")
    env = dict(os.environ, TOKENLEDGER_OPERATOR_SECRET=OPERATOR)
    daemon = subprocess.Popen([a.tokenledgerd, "--data-dir", data, "--listen", "127.0.0.1:0"],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got!r}, want {want!r}")

    try:
        port = None
        for _ in range(1000):
            log.seek(0)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)\n", log.read())
            if m:
                port = int(m.group(1))
                break
            if daemon.poll() is not None:
                raise SystemExit("tokenledgerd exited at start")
            time.sleep(0.02)
        if port is None:
            raise SystemExit("tokenledgerd did not start")

        status, a_tok = call(port, "POST", "/v1/users/alice/tokens", {"description": "py"})
        assert status == 201, a_tok
        status, b_tok = call(port, "POST", "/v1/users/bob/tokens", {"description": "py"})
        assert status == 201, b_tok
        key, token = a_tok["key"], a_tok["token"]

        with Verifier(data, a.library) as v:
            r = v.verify(key, token)
            check("valid", (r.valid, r.reason, r.owner, r.kind, r.key), (1, "ok", "alice", "user", key))
            cases = [
                ("bad_secret", key, b_tok["token"]),
                ("unknown", "tlk_" + "A" * 24, token),
                ("malformed", "not-a-key", token),
            ]
            for want, k, t in cases:
                got = v.verify(k, t)
                check(want, (got.valid, got.reason), (0, want))
                check(want + " over HTTP", http_reason(port, k, t), want)
            status, _ = call(port, "POST", f"/v1/users/alice/tokens/{key}/deactivate")
            assert status == 200
            check("inactive right after deactivate", v.verify(key, token).reason, "inactive")
            check("inactive over HTTP", http_reason(port, key, token), "inactive")

        try:
            Verifier(os.path.join(root, "nowhere"), a.library)
            failures.append("opening a directory without a read model succeeded")
        except VerifyError as e:
            check("error name", e.name, "no_read_model")
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
        shutil.rmtree(root, ignore_errors=True)

    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print("python ctypes: valid, bad_secret, unknown, malformed, inactive, no_read_model: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
