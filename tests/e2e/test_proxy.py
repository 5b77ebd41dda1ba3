"""Proxying: pooled keep-alive, streaming bodies, pipelining, 100-continue,
upstream failures, timeouts and retries (SPEC §3, §8, §12.2)."""
import hashlib
import http.client
import json
import re
import socket
import subprocess
import threading
import time

from conftest import ResponseReader, free_port, raw_exchange, wait_until

BASE = """
listen:
  - address: 127.0.0.1:{port}
log: { access: stdout, level: warn }
upstreams:
  main:
    targets: [ "{up}" ]
    timeouts: { connect: 1s, send: 5s, read: 2s }
routes:
  - name: api
    match: { prefix: / }
    upstream: main
"""


def start(gatehouse, upstreams, config=BASE, **kw):
    up = upstreams("main")
    g = gatehouse(config, subst={"up": up.address}, **kw)
    return g, up


def test_keepalive_connections_are_reused(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, workers=1)
    before = up.stats()["connections"]   # readiness probe + this request
    for i in range(30):
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5)
        c.request("GET", "/item/%d" % i)
        r = c.getresponse()
        assert r.status == 200
        assert json.loads(r.read())["path"] == "/item/%d" % i
        c.close()
    stats = up.stats()
    assert stats["requests"] >= 30
    # 30 client connections, one after the other: one upstream connection
    # (the second stats request opened one more)
    assert stats["connections"] - before - 1 == 1, stats


def test_request_head_forwarded_and_response_headers(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    status, headers, body = g.get("/x?a=1&b=2", headers={"X-Custom": "v1"})
    assert status == 200
    info = json.loads(body)
    assert info["target"] == "/x?a=1&b=2"
    assert info["headers"]["x-custom"] == "v1"
    assert info["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert info["headers"]["x-forwarded-proto"] == "http"
    assert info["headers"]["x-forwarded-port"] == str(g.port)
    assert headers["x-request-id"] == info["headers"]["x-request-id"]
    assert headers["x-upstream"] == "main"


def test_large_bodies_stream_both_ways_with_flat_memory(gatehouse, upstreams):
    cfg = BASE.replace("log:", "limits: { max_body_bytes: 200MiB }\nlog:")
    g, up = start(gatehouse, upstreams, config=cfg)
    size = 100 * 1024 * 1024
    rss0 = g.rss_kib()
    # download 100 MiB
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=30)
    c.request("GET", "/big?n=%d" % size)
    r = c.getresponse()
    assert r.status == 200
    got = 0
    peak = 0
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        got += len(b)
        if got % (16 << 20) < (1 << 20):
            peak = max(peak, g.rss_kib())
    assert got == size
    c.close()
    # upload 100 MiB, Content-Length and chunked
    block = b"z" * (1 << 20)
    digest = hashlib.sha256()
    for _ in range(100):
        digest.update(block)
    for chunked in (False, True):
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=30)
        headers = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
        c.putrequest("POST", "/upload")
        for k, v in headers.items():
            c.putheader(k, v)
        c.endheaders()
        for i in range(100):
            c.send((b"%x\r\n" % len(block) + block + b"\r\n") if chunked else block)
            if i % 25 == 0:
                peak = max(peak, g.rss_kib())
        if chunked:
            c.send(b"0\r\n\r\n")
        r = c.getresponse()
        info = json.loads(r.read())
        assert r.status == 200
        assert info["body_len"] == size
        assert info["sha256"] == digest.hexdigest()
        c.close()
    # the gateway never holds a body: memory grows by far less than one
    assert peak - rss0 < 20 * 1024, (rss0, peak)


def test_chunked_response_and_sse_arrive_as_they_come(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    status, headers, body = g.get("/chunked?n=300000")
    assert status == 200 and len(body) == 300000
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(b"GET /sse?events=3&gap=0.6 HTTP/1.1\r\nHost: x\r\n\r\n")
    arrivals, sent = [], []
    buf = b""
    t0 = time.time()
    while len(arrivals) < 3 and time.time() - t0 < 10:
        b = s.recv(65536)
        if not b:
            break
        buf += b
        while True:
            m = re.search(rb"data: event %d at ([0-9.]+)" % len(arrivals), buf)
            if not m:
                break
            arrivals.append(time.time())
            sent.append(float(m.group(1)))   # when the upstream wrote it
    s.close()
    assert len(arrivals) == 3
    # each event arrives before the upstream even wrote the next: nothing is held back
    assert all(arrivals[i] < sent[i] + 0.6 for i in range(3)), [a - t for a, t in zip(arrivals, sent)]


def test_pipelined_requests_answered_in_order(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10))
    reqs += b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw_exchange(g.port, reqs, timeout=5)
    paths = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])["path"]
             for part in out.split(b"HTTP/1.1 200")[1:]]
    assert paths == ["/p%d" % i for i in range(10)] + ["/last"]


def test_expect_100_continue(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    reader = ResponseReader(s)
    assert reader.response()[0] == 100
    s.sendall(b"hello")
    status, _, body = reader.response()
    s.close()
    assert status == 200 and json.loads(body)["body_len"] == 5


def test_head_and_no_body_statuses(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    out = raw_exchange(g.port, b"HEAD /big?n=1234 HTTP/1.1\r\nHost: x\r\n\r\n"
                               b"GET /status/204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, rest = out.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 1234" in head
    assert rest.startswith(b"HTTP/1.1 204")


def test_connection_refused_is_502(gatehouse):
    dead = free_port()
    g = gatehouse(BASE, subst={"up": "127.0.0.1:%d" % dead})
    status, headers, body = g.get("/x")
    assert status == 502
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "upstream_error"


def test_read_timeout_is_504(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    t0 = time.time()
    status, headers, body = g.get("/slow?delay=4")
    assert status == 504
    assert json.loads(body)["code"] == "upstream_timeout"
    assert 1.5 < time.time() - t0 < 3.5


def test_route_timeout_overrides_read_timeout(gatehouse, upstreams):
    cfg = BASE.replace("    upstream: main\n", "    upstream: main\n    timeout: 500ms\n")
    g, up = start(gatehouse, upstreams, config=cfg)
    t0 = time.time()
    status, _, body = g.get("/slow?delay=3")
    assert status == 504 and time.time() - t0 < 1.5


def test_retry_goes_to_another_target(gatehouse, upstreams):
    good = upstreams("good")
    dead = free_port()
    cfg = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
upstreams:
  pair:
    targets: [ "127.0.0.1:{dead}", "{good}" ]
    retries: { attempts: 1 }
routes:
  - { name: r, match: { prefix: / }, upstream: pair }
"""
    g = gatehouse(cfg, subst={"dead": dead, "good": good.address}, workers=1)
    for i in range(6):
        status, _, body = g.get("/r%d" % i)
        assert status == 200, body
        assert json.loads(body)["server"] == "good"
    # POST (not idempotent) is retried too: a refused connect sent nothing
    status, _, body = g.request("POST", "/p", body=b"abc")
    assert status == 200


def test_no_retry_when_attempts_zero(gatehouse, upstreams):
    good = upstreams("good")
    dead = free_port()
    cfg = """
listen: [ { address: "127.0.0.1:{port}" } ]
upstreams:
  pair:
    targets: [ "127.0.0.1:{dead}", "{good}" ]
    retries: { attempts: 0 }
routes:
  - { name: r, match: { prefix: / }, upstream: pair }
"""
    g = gatehouse(cfg, subst={"dead": dead, "good": good.address}, workers=1)
    statuses = [g.get("/x")[0] for _ in range(4)]
    assert statuses.count(502) == 2 and statuses.count(200) == 2


def test_weighted_round_robin(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    cfg = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
upstreams:
  w:
    targets: [ { address: "{a}", weight: 3 }, { address: "{b}", weight: 1 } ]
routes:
  - { name: r, match: { prefix: / }, upstream: w }
"""
    g = gatehouse(cfg, subst={"a": a.address, "b": b.address}, workers=1)
    servers = [json.loads(g.get("/")[2])["server"] for _ in range(40)]
    assert servers.count("a") == 30 and servers.count("b") == 10


def test_upstream_dying_mid_response_closes_client(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    out = raw_exchange(g.port, b"GET /die-mid HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 1000" in head
    assert len(body) < 1000   # the connection was closed: the truncation is visible
    # chunked: no terminating zero chunk may appear
    out = raw_exchange(g.port, b"GET /die-head HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
    assert out.startswith(b"HTTP/1.1 502")


def test_ambiguous_upstream_response_is_502(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    bad = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    status, _, body = g.get("/raw?b=" + bad.hex())
    assert status == 502 and json.loads(body)["code"] == "upstream_error"
    bad = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    status, _, body = g.get("/raw?b=" + bad.hex())
    assert status == 502


def test_access_log_fields(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    g.get("/logged?q=1", headers={"Host": "api.example.com:8080"})
    lines = g.access_log(wait_for=1)
    e = [l for l in lines if l["path"] == "/logged"][0]
    for key in ("ts", "request_id", "client", "method", "host", "path", "status", "bytes_in", "bytes_out",
                "duration_ms", "route", "consumer", "version", "upstream", "target", "upstream_ms",
                "cache", "error", "query", "protocol", "tls", "user_agent", "attempts"):
        assert key in e, key
    assert e["query"] == "q=1" and e["protocol"] == "HTTP/1.1" and e["tls"] is None and e["attempts"] == 1
    assert isinstance(e["duration_ms"], float) and isinstance(e["upstream_ms"], float)
    assert e["status"] == 200 and isinstance(e["status"], int)
    assert e["host"] == "api.example.com"
    assert e["route"] == "api" and e["upstream"] == "main" and e["target"] == up.address
    assert e["consumer"] is None


def test_retry_backoff_waits_between_tries(gatehouse, upstreams):
    good = upstreams("good")
    dead = free_port()
    cfg = """
listen: [ { address: "127.0.0.1:{port}" } ]
upstreams:
  pair:
    targets: [ "127.0.0.1:{dead}", "{good}" ]
    retries: { attempts: 1, backoff: 300ms }
routes:
  - { name: r, match: { prefix: / }, upstream: pair }
"""
    g = gatehouse(cfg, subst={"dead": dead, "good": good.address}, workers=1)
    times = []
    for _ in range(2):   # round robin: one of the two requests starts on the dead target
        t0 = time.time()
        status, _, _ = g.get("/x")
        times.append(time.time() - t0)
        assert status == 200
    assert max(times) >= 0.3 and min(times) < 0.2, times


def test_trusted_proxies_give_the_real_client(gatehouse):
    cfg = """
listen: [ { address: "127.0.0.1:{port}" } ]
trusted_proxies: [127.0.0.0/8, 10.0.0.0/8]
routes:
  - { name: e, match: { prefix: / }, echo: {} }
"""
    g = gatehouse(cfg, workers=1)
    # the peer (127.0.0.1) is trusted: the right-most untrusted address is the client
    _, _, body = g.get("/", headers={"X-Forwarded-For": "203.0.113.9, 10.1.2.3"})
    info = json.loads(body)
    assert info["client"] == "203.0.113.9"
    # the chain forwarded upstream is the full one plus the peer
    assert info["headers"]["x-forwarded-for"] == "203.0.113.9, 10.1.2.3, 127.0.0.1"
    lines = g.access_log(wait_for=1)
    assert lines[-1]["client"] == "203.0.113.9"
    # garbage stops the walk at the last address that could be trusted
    _, _, body = g.get("/", headers={"X-Forwarded-For": "nonsense, 10.1.2.3"})
    assert json.loads(body)["client"] == "10.1.2.3"


def test_untrusted_peer_is_the_client(gatehouse):
    cfg = """
listen: [ { address: "127.0.0.1:{port}" } ]
trusted_proxies: [10.0.0.0/8]
routes:
  - { name: e, match: { prefix: / }, echo: {} }
"""
    g = gatehouse(cfg, workers=1)
    _, _, body = g.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert json.loads(body)["client"] == "127.0.0.1"


def test_ipv6_listener(gatehouse, upstreams):
    up = upstreams("v6")
    port = free_port()
    cfg = """
listen: [ { address: "127.0.0.1:{port}" }, { address: "[::1]:{port6}" } ]
upstreams:
  main: { targets: [ "{up}" ] }
routes:
  - { name: r, match: { prefix: / }, upstream: main }
"""
    g = gatehouse(cfg, subst={"up": up.address, "port6": port}, workers=1)
    s = socket.create_connection(("::1", port), timeout=5)
    s.sendall(b"GET /six HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    assert out.startswith(b"HTTP/1.1 200")
    info = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert info["headers"]["x-forwarded-for"] == "::1"


def test_least_conn_avoids_the_busy_target(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    cfg = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
upstreams:
  lc:
    targets: [ "{a}", "{b}" ]
    balance: least_conn
routes:
  - { name: r, match: { prefix: / }, upstream: lc }
"""
    g = gatehouse(cfg, subst={"a": a.address, "b": b.address}, workers=1)
    # three slow requests in flight occupy both targets unevenly, then quick ones
    # must go to whichever target has fewer requests in flight
    def slow_at(u):
        return sum(1 for r in u.requests() if r["target"].startswith("/slow"))

    slow = []
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        s.sendall(b"GET /slow?delay=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.append(s)
        wait_until(lambda: slow_at(a) + slow_at(b) == i + 1, what="slow request %d upstream" % i)
    a_busy = slow_at(a)
    quick = [json.loads(g.get("/q")[2])["server"] for _ in range(4)]
    # targets got slow requests 2:1 (least_conn alternates when equal);
    # every quick request goes to the one with a single slow request
    b_slow = 3 - a_busy
    idle_side = "a" if a_busy < b_slow else "b"
    assert quick == [idle_side] * 4, (a_busy, quick)
    for s in slow:
        s.close()
