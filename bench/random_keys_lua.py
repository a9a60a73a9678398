#!/usr/bin/env python3
"""A wrk script that sends each GET /v1/verify with a credential drawn at random.

Reads KEY:TOKEN lines on stdin (bench/http_verify.sh, bench/last_used.sh) and
writes the Lua script to stdout: one Basic Authorization header per credential.
"""
import base64
import sys

print("local auth = {")
for line in sys.stdin:
    line = line.strip()
    if line:
        print('  "Basic %s",' % base64.b64encode(line.encode()).decode())
print("}")
print("request = function()")
print('  return wrk.format("GET", "/v1/verify", { ["Authorization"] = auth[math.random(#auth)] })')
print("end")
