"""W3C Trace Context through the gateway (SPEC §8, §9): a client's valid
traceparent is continued (same trace id and flags, the gateway's own span as
parent-id) with its tracestate; an absent or invalid one starts a new trace
and its tracestate is dropped. Real upstreams record what they were sent
(HTTP/1.1 upstream.py, HTTP/2 h2_upstream.py); clients speak HTTP/1.1 and h2c.
The access log's trace_id is the one the upstream saw.
"""
import asyncio
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from conftest import HERE, free_port, raw_exchange, wait_port, wait_until

TRACE_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
TID, PID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
VALID = "00-%s-%s-03" % (TID, PID)     # flags 03: kept as sent, not rewritten to 01
STATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"

CONFIG = """
listen:
  - address: 127.0.0.1:{port}
    http2: true
workers: 1
log: { access: stdout }
upstreams:
  h1: { targets: [ "{h1}" ] }
  h2: { targets: [ "{h2}" ], protocol: h2 }
routes:
  - { name: h1, match: { prefix: /h1 }, upstream: h1 }
  - { name: h2, match: { prefix: /h2 }, upstream: h2 }
  - { name: local, match: { prefix: /local }, respond: { status: 204 } }
"""


class Proc:
    """h2_upstream.py on a free port."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "h2_upstream.py"), str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.proc.stdout.readline()   # READY
        wait_port(self.port, proc=self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def gw(gatehouse, upstreams):
    h1 = upstreams("h1")
    h2 = Proc()
    g = gatehouse(CONFIG, subst={"h1": h1.address, "h2": "127.0.0.1:%d" % h2.port}, workers=1)
    yield g, h1
    h2.stop()


def headers_list(extra):
    """extra: list of (name, value), repeats allowed."""
    return b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in extra)


def h1_request(g, path, extra):
    """One HTTP/1.1 request exactly as given; (status, body)."""
    req = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: gw.test\r\n" + headers_list(extra) + \
        b"Connection: close\r\n\r\n"
    resp = raw_exchange(g.port, req, timeout=5.0)
    head, _, body = resp.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def h2c_request(g, path, extra):
    """The same over h2c (prior knowledge), with curl."""
    args = ["curl", "-sS", "--max-time", "8", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code}"]
    for k, v in extra:
        args += ["-H", "%s: %s" % (k, v)]
    r = subprocess.run(args + ["http://127.0.0.1:%d%s" % (g.port, path)], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), body


def upstream_saw(g, h1, path, body):
    """Headers (lower-case names, repeats joined with ', ') the upstream got for path."""
    if path.startswith("/h2"):
        return {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    rec = [r for r in h1.requests() if r["target"] == path][-1]
    out = {}
    for k, v in rec["headers"]:
        k = k.lower()
        out[k] = out[k] + ", " + v if k in out else v
    return out


def log_line(g, path):
    wait_until(lambda: any(l["path"] == path for l in g.access_log()), what="the access line of " + path)
    return [l for l in g.access_log() if l["path"] == path][-1]


CLIENTS = {"h1": h1_request, "h2c": h2c_request}
CASES = [(c, u) for c in CLIENTS for u in ("/h1", "/h2")]


@pytest.mark.parametrize("client,up", CASES)
def test_continued_with_tracestate(gw, client, up):
    g, h1 = gw
    path = "%s/continued-%s" % (up, client)
    status, body = CLIENTS[client](g, path, [("traceparent", VALID), ("tracestate", STATE)])
    assert status == 200
    seen = upstream_saw(g, h1, path, body)
    m = TRACE_RE.match(seen["traceparent"])
    assert m, seen["traceparent"]
    assert m.group(1) == TID                        # same trace
    assert m.group(2) not in (PID, "0" * 16)        # the gateway's own span
    assert m.group(3) == "03"                       # flags kept
    assert seen["tracestate"] == STATE              # forwarded unchanged
    assert log_line(g, path)["trace_id"] == TID


@pytest.mark.parametrize("client,up", CASES)
def test_started_when_absent(gw, client, up):
    g, h1 = gw
    path = "%s/absent-%s" % (up, client)
    status, body = CLIENTS[client](g, path, [])
    assert status == 200
    seen = upstream_saw(g, h1, path, body)
    m = TRACE_RE.match(seen["traceparent"])
    assert m, seen["traceparent"]
    assert m.group(1) != "0" * 32 and m.group(2) != "0" * 16
    assert m.group(3) == "01"                       # the gateway samples everything
    assert "tracestate" not in seen
    assert log_line(g, path)["trace_id"] == m.group(1)


INVALID = [
    "00-%s-%s-01x" % (TID, PID),                     # version 00 is exactly 55 characters
    "00-%s-%s-01" % (TID.upper(), PID),              # uppercase
    "00-%s-%s-01" % ("0" * 32, PID),                 # all-zero trace-id
    "00-%s-%s-01" % (TID, "0" * 16),                 # all-zero parent-id
    "ff-%s-%s-01" % (TID, PID),                      # version ff
    "garbage",
]


@pytest.mark.parametrize("client,up", CASES)
def test_restarted_when_invalid(gw, client, up):
    g, h1 = gw
    traces = set()
    for i, bad in enumerate(INVALID):
        path = "%s/invalid-%s-%d" % (up, client, i)
        status, body = CLIENTS[client](g, path, [("traceparent", bad), ("tracestate", STATE)])
        assert status == 200
        seen = upstream_saw(g, h1, path, body)
        m = TRACE_RE.match(seen["traceparent"])
        assert m, (bad, seen["traceparent"])
        assert m.group(1) != TID and m.group(3) == "01", (bad, seen["traceparent"])
        assert "tracestate" not in seen, bad      # never kept beside a trace it does not belong to
        assert log_line(g, path)["trace_id"] == m.group(1)
        traces.add(m.group(1))
    assert len(traces) == len(INVALID)


def test_higher_version_continued_as_00(gw):
    g, h1 = gw
    status, body = h1_request(g, "/h1/v1", [("traceparent", "cc-%s-%s-01-future-field" % (TID, PID))])
    assert status == 200
    m = TRACE_RE.match(upstream_saw(g, h1, "/h1/v1", body)["traceparent"])
    assert m and m.group(1) == TID and m.group(2) != PID and m.group(3) == "01"


def test_tracestate_fields_joined_and_limits(gw):
    g, h1 = gw
    # two tracestate fields are one list
    _, body = h1_request(g, "/h1/joined", [("traceparent", VALID), ("tracestate", "rojo=1"),
                                           ("tracestate", "congo=2")])
    assert upstream_saw(g, h1, "/h1/joined", body)["tracestate"] == "rojo=1,congo=2"
    # 33 members, then over 512 bytes: dropped, while the trace continues
    many = ",".join("k%d=v" % i for i in range(33))
    long = ",".join("%s=%s" % (c, "v" * 200) for c in "abc")
    bad_member = "rojo=1,Not-Lower=2"
    for i, ts in enumerate((many, long, bad_member)):
        path = "/h1/limits-%d" % i
        _, body = h1_request(g, path, [("traceparent", VALID), ("tracestate", ts)])
        seen = upstream_saw(g, h1, path, body)
        assert TRACE_RE.match(seen["traceparent"]).group(1) == TID
        assert "tracestate" not in seen, ts
    # 32 members pass
    ok = ",".join("k%d=v" % i for i in range(32))
    _, body = h1_request(g, "/h1/limits-ok", [("traceparent", VALID), ("tracestate", ok)])
    assert upstream_saw(g, h1, "/h1/limits-ok", body)["tracestate"] == ok


def test_repeated_traceparent_starts_a_trace(gw):
    g, h1 = gw
    _, body = h1_request(g, "/h1/twice", [("traceparent", VALID), ("traceparent", VALID), ("tracestate", STATE)])
    seen = upstream_saw(g, h1, "/h1/twice", body)
    assert TRACE_RE.match(seen["traceparent"]).group(1) != TID
    assert "tracestate" not in seen
    assert seen["traceparent"].count("00-") == 1      # one field, the gateway's


def test_local_answer_logs_a_trace_and_request_id_kept(gw):
    g, h1 = gw
    status, _ = h1_request(g, "/local/a", [("traceparent", VALID), ("X-Request-Id", "client-id-1")])
    assert status == 204
    line = log_line(g, "/local/a")
    assert line["trace_id"] == TID and line["request_id"] == "client-id-1"
    h1_request(g, "/local/b", [])
    assert re.match(r"^[0-9a-f]{32}$", log_line(g, "/local/b")["trace_id"])


def test_websocket_upgrade_carries_traceparent(gw):
    g, h1 = gw
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    h1_request(g, "/h1/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
                             ("Sec-WebSocket-Key", key), ("traceparent", VALID)])
    rec = [r for r in h1.requests() if r["target"] == "/h1/ws"][-1]
    seen = {k.lower(): v for k, v in rec["headers"]}
    assert seen.get("upgrade", "").lower() == "websocket"
    assert TRACE_RE.match(seen["traceparent"]).group(1) == TID


def test_health_probes_carry_no_trace(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse("""
listen: [ { address: 127.0.0.1:{port} } ]
workers: 1
upstreams:
  main:
    targets: [ "%s" ]
    health_check: { active: { path: /health, interval: 100ms, timeout: 1s } }
routes:
  - { name: api, match: { prefix: / }, upstream: main }
""" % a.address, workers=1)
    probes = wait_until(lambda: [r for r in a.requests() if r["target"] == "/health"], what="a health probe")
    names = {k.lower() for k, _ in probes[0]["headers"]}
    assert "traceparent" not in names and "tracestate" not in names
