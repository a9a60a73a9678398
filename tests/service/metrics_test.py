#!/usr/bin/env python3
"""GET /metrics and --log-format json against a real tokenledgerd over real sockets.

  metrics_test.py --tokenledgerd PATH metrics    # promtool check metrics, counters move
  metrics_test.py --tokenledgerd PATH log-json   # every log line is a JSON object

Needs promtool (Debian's prometheus package; scripts/deps.sh installs it) for `metrics`.
"""
import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

OPERATOR = "metrics-test-operator-secret"
failures = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(what)


class Daemon:
    def __init__(self, binary, *extra):
        self.dir = tempfile.mkdtemp(prefix="tl-metrics-")
        self.out = open(os.path.join(self.dir, "stdout.log"), "w+")
        self.err = open(os.path.join(self.dir, "stderr.log"), "w+")
        env = dict(os.environ, TOKENLEDGER_OPERATOR_SECRET=OPERATOR)
        self.proc = subprocess.Popen(
            [binary, "--data-dir", os.path.join(self.dir, "data"), "--listen", "127.0.0.1:0",
             "--threads", "1", *extra], stdout=self.out, stderr=self.err, env=env)
        deadline = time.time() + 30
        self.port = None
        while self.port is None:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("tokenledgerd did not start:\n" + self.stderr())
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.stdout())
            if m:
                self.port = int(m.group(1))
            time.sleep(0.05)

    def stdout(self):
        return open(self.out.name).read()

    def stderr(self):
        return open(self.err.name).read()

    def call(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = (r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read().decode())
        c.close()
        return out

    def operator(self, method, path, body=None):
        status, _, text = self.call(method, path, body, {"Authorization": "Bearer " + OPERATOR})
        return status, json.loads(text)

    def verify(self, key, secret):
        basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
        status, _, text = self.call("POST", "/v1/verify", headers={"Authorization": "Basic " + basic})
        return status, json.loads(text)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        check("the daemon stops with 0 on SIGTERM", code == 0, str(code))

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def parse(text):
    """{(name, frozenset of label pairs): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: " + line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(d):
    status, headers, text = d.call("GET", "/metrics")
    check("GET /metrics answers 200 without a credential", status == 200, str(status))
    check("its Content-Type is the text format 0.0.4",
          headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
          headers.get("content-type"))
    return text


def test_metrics(binary):
    promtool = shutil.which("promtool")
    check("promtool is installed (scripts/deps.sh installs Debian's prometheus)", bool(promtool))
    d = Daemon(binary)
    try:
        before = parse(scrape(d))
        status, alice = d.operator("POST", "/v1/users/alice/tokens", {"description": "metrics"})
        check("create answers 201", status == 201, str(alice))
        key, secret = alice["key"], alice["token"]
        check("a valid verify is valid", d.verify(key, secret)[1].get("valid") is True)
        # Another token's secret: well formed (its checksum holds), wrong for `key`.
        status, other = d.operator("POST", "/v1/users/alice/tokens", {"description": "other"})
        wrong = other["token"]
        check("a wrong secret is bad_secret", d.verify(key, wrong)[1].get("reason") == "bad_secret")
        check("a second wrong secret too", d.verify(key, wrong)[1].get("reason") == "bad_secret")
        check("garbage is malformed", d.verify("nonsense", "x")[1].get("reason") == "malformed")
        status, _ = d.operator("POST", f"/v1/users/alice/tokens/{key}/deactivate")
        check("deactivate answers 200", status == 200)
        status, _ = d.operator("POST", "/v1/users/alice/tokens/tlk_000000000000000000000000/rotate")
        check("rotating an unknown token is 404", status == 404)
        check("the deactivated token is inactive", d.verify(key, secret)[1].get("reason") == "inactive")

        text = scrape(d)
        after = parse(text)

        def moved(name, by, **labels):
            got = value(after, name, **labels) - value(before, name, **labels)
            check(f"{name}{labels} moved by {by}", got == by, f"moved by {got}")

        V = "tokenledger_verifications_total"
        moved(V, 1, result="valid", reason="ok")
        moved(V, 2, result="invalid", reason="bad_secret")
        moved(V, 1, result="invalid", reason="malformed")
        moved(V, 1, result="invalid", reason="inactive")
        moved(V, 0, result="invalid", reason="unknown")
        moved("tokenledger_verify_duration_seconds_count", 5)
        moved("tokenledger_verify_duration_seconds_bucket", 5, le="+Inf")
        C = "tokenledger_commands_total"
        moved(C, 2, type="create", outcome="ok")
        moved(C, 1, type="deactivate", outcome="ok")
        moved(C, 1, type="rotate", outcome="not_found")
        moved("tokenledger_command_duration_seconds_count", 2, type="create")
        check("tokenledger_log_append_errors_total is 0",
              value(after, "tokenledger_log_append_errors_total") == 0)
        check("one connection is open (this scrape's)",
              value(after, "tokenledger_http_connections") >= 1)
        check("the projector applied the create and the deactivation",
              value(after, "tokenledger_projector_events_total", outcome="applied") >= 2)
        check("the projector's lag is 0 once applied",
              value(after, "tokenledger_projector_lag_records") == 0,
              str(value(after, "tokenledger_projector_lag_records")))
        check("applied offset per partition is there",
              value(after, "tokenledger_projector_applied_offset", partition="0") >= 2)
        check("the read model's map limit is --map-size-mb",
              value(after, "tokenledger_read_model_map_limit_bytes") == 65536 * 2**20)
        check("the read model takes disk", value(after, "tokenledger_read_model_disk_bytes") > 0)
        check("build info is there", any(n == "tokenledger_build_info" for n, _ in after))
        # One token verified, its use not flushed yet (the default 60 s interval).
        check("one token waits for the last-used flush",
              value(after, "tokenledger_last_used_pending_tokens") == 1,
              str(value(after, "tokenledger_last_used_pending_tokens")))
        check("the last-used flush counter is there",
              any(n == "tokenledger_last_used_flushes_total" for n, _ in after))
        for what, s in [("key", key), ("secret", secret), ("user id", "alice"), ("secret", wrong),
                        ("operator secret", OPERATOR)]:
            check(f"no {what} in /metrics", s not in text)

        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                               text=True)
            check("promtool check metrics passes", p.returncode == 0 and not p.stdout.strip(),
                  p.stdout + p.stderr)
        d.stop()
    finally:
        d.cleanup()


def test_log_json(binary):
    d = Daemon(binary, "--log-format", "json")
    try:
        status, alice = d.operator("POST", "/v1/users/bob/tokens", {"description": "logs"})
        check("create answers 201", status == 201, str(alice))
        key, secret = alice["key"], alice["token"]
        status, history = d.operator("GET", f"/v1/users/bob/tokens/{key}/history")
        request_id = history["events"][0]["request_id"]
        status, _ = d.operator("POST", f"/v1/users/bob/tokens/{key}/deactivate")
        d.stop()
        lines = []
        for stream, text in [("stdout", d.stdout()), ("stderr", d.stderr())]:
            for line in text.splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    check(f"{stream} line is JSON", False, line)
                    continue
                ok = (isinstance(obj, dict) and {"time", "level", "message", "fields"} <= obj.keys()
                      and isinstance(obj["fields"], dict)
                      and obj["level"] in ("info", "warn", "error"))
                check(f"{stream} line has time, level, message, fields", ok, line)
                lines.append(obj)
        check("there are log lines on both streams",
              d.stdout().strip() != "" and d.stderr().strip() != "")
        check("stdout says where it listens",
              any(o["message"].startswith("listening on 127.0.0.1:") for o in lines))
        creates = [o for o in lines if o["fields"].get("command") == "create"]
        check("the create is logged once", len(creates) == 1, str(creates))
        if creates:
            f = creates[0]["fields"]
            check("its line carries the request id the event recorded",
                  f.get("request_id") == request_id, f"{f.get('request_id')} vs {request_id}")
            check("and the outcome and status", f.get("outcome") == "ok" and f.get("status") == "201")
        deacts = [o for o in lines if o["fields"].get("command") == "deactivate"]
        check("the deactivation is logged with a request id",
              len(deacts) == 1 and deacts[0]["fields"].get("request_id", "") != "", str(deacts))
        everything = d.stdout() + d.stderr()
        check("no token secret in the log", secret not in everything)
        check("no operator secret in the log", OPERATOR not in everything)
    finally:
        d.cleanup()


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--tokenledgerd", required=True)
    a.add_argument("suite", choices=["metrics", "log-json"])
    args = a.parse_args()
    (test_metrics if args.suite == "metrics" else test_log_json)(args.tokenledgerd)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
