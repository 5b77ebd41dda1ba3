"""HTTP/2 hardening (issue 9): resets the client causes are counted
(MadeYouReset), one client connection holds a bounded number of upstream
connections, pseudo-headers are validated, and what one connection can make
the gateway hold in memory is bounded."""
import socket
import struct
import time

import pytest

import conftest

from test_http2 import (CONFIG, DATA, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY, H2, HEADERS, PROTOCOL_ERROR, Raw,
                        frame, recorded, start, status_of, still_serving)
from hpack import Decoder

RESET_BURST = 200          # src/http/h2_conn.c
UPSTREAM_CONNS = 32        # per client connection


def upstream_connections(up):
    """Connections the upstream accepted since up.reset(), not counting the
    reset's and this question's own."""
    return up.stats()["connections"] - 2


def calm(c):
    g = c.goaway()
    return g is not None and g[1] == ENHANCE_YOUR_CALM


# ------------------------------------------------- item 5: MadeYouReset --

def test_server_resets_caused_by_the_client_end_the_connection_and_bound_upstream_connections(gatehouse, upstreams):
    """CVE-2025-8671: each stream announces content-length 1 and sends 2
    bytes, so the gateway itself resets it (PROTOCOL_ERROR) after it was
    dispatched. Those resets count like the client's own: GOAWAY
    (ENHANCE_YOUR_CALM) comes, and the upstream saw a bounded number of
    connections."""
    g, up = start(gatehouse, upstreams)
    up.reset()
    c = Raw(g.port, timeout=5.0)
    sid, sent = 1, 0
    while sent < 5000 and not c.eof and not calm(c):
        out = []
        for _ in range(50):
            out.append(c.headers_frame(sid, [(":method", "POST"), (":scheme", "http"), (":path", "/myr/%d" % sid),
                                             (":authority", "gw.test"), ("content-length", "1")], end_stream=False))
            out.append(frame(DATA, END_STREAM, sid, b"xy"))
            sid += 2
        if not c.send(b"".join(out)):
            break
        sent += 50
        # wait for the gateway's answer to this batch: its last reset (or the GOAWAY)
        last = sid - 2
        c.read(until=lambda f, last=last: f[0] == GOAWAY or (f[2] == last and f[0] != HEADERS), timeout=5.0)
    c.wait_closed(timeout=5.0)
    assert calm(c), "no GOAWAY(ENHANCE_YOUR_CALM) after %d server-reset streams (goaway=%s)" % (sent, c.goaway())
    assert PROTOCOL_ERROR in c.resets().values()
    assert sent <= 2 * RESET_BURST, sent
    c.close()
    n = upstream_connections(up)
    assert n <= RESET_BURST + UPSTREAM_CONNS, "%d upstream connections for one client connection" % n
    still_serving(g)


def test_a_hundred_streams_share_a_bounded_number_of_upstream_connections(gatehouse, upstreams):
    """Streams beyond the per-connection bound wait for a sibling's upstream
    connection instead of opening their own; all of them are answered."""
    g, up = start(gatehouse, upstreams)
    up.reset()
    c = H2(g.port, timeout=10.0)
    sids = [c.request("/slow?delay=0.2&i=%d" % i) for i in range(100)]
    c.pump(sids, timeout=20.0)
    assert all(c.streams[s]["status"] == 200 for s in sids), [c.streams[s]["status"] for s in sids]
    c.close()
    n = upstream_connections(up)
    assert n <= UPSTREAM_CONNS, "%d upstream connections for one client connection" % n
    assert len(recorded(up, "/slow")) == 100
    still_serving(g)


def test_streams_waiting_for_an_upstream_slot_can_be_reset(gatehouse, upstreams):
    """A stream in line for an upstream connection that the client resets
    leaves the line; the others are still served."""
    g, up = start(gatehouse, upstreams)
    c = H2(g.port, timeout=10.0)
    sids = [c.request("/slow?delay=0.3&i=%d" % i) for i in range(60)]
    for s in sids[40:50]:
        c.conn.reset_stream(s)
    c.flush()
    rest = sids[:40] + sids[50:]
    c.pump(rest, timeout=20.0)
    assert all(c.streams[s]["status"] == 200 for s in rest)
    c.close()
    still_serving(g)


def test_a_stream_that_waits_longer_than_the_connect_timeout_gets_503(gatehouse, upstreams):
    """When the siblings hold every upstream connection allowed (long
    requests), a waiting stream is answered 503 upstream_unavailable after
    the upstream's connect timeout (1s here) instead of waiting for ever;
    the others complete."""
    g, up = start(gatehouse, upstreams)
    c = H2(g.port, timeout=10.0)
    busy = [c.request("/slow?delay=4&i=%d" % i) for i in range(UPSTREAM_CONNS)]
    t0 = time.time()
    extra = [c.request("/slow?delay=0&x=%d" % i) for i in range(4)]
    c.pump(extra, timeout=10.0)
    waited = time.time() - t0
    assert [c.streams[s]["status"] for s in extra] == [503] * 4
    assert all(b"upstream_unavailable" in c.streams[s]["body"] for s in extra)
    assert 0.9 <= waited < 3.5, waited   # the connect timeout, not the siblings' 4 s
    c.pump(busy, timeout=10.0)
    assert all(c.streams[s]["status"] == 200 for s in busy)
    c.close()


# ------------------------------------------ item 7: pseudo-header checks --

BAD_HEADS = [
    ("absolute-form path", [(":method", "GET"), (":scheme", "http"), (":path", "http://evil.example/admin"),
                            (":authority", "gw.test")]),
    ("authority-form path", [(":method", "GET"), (":scheme", "http"), (":path", "evil.example:80"),
                             (":authority", "gw.test")]),
    ("asterisk for GET", [(":method", "GET"), (":scheme", "http"), (":path", "*"), (":authority", "gw.test")]),
    ("empty path", [(":method", "GET"), (":scheme", "http"), (":path", ""), (":authority", "gw.test")]),
    ("scheme ftp", [(":method", "GET"), (":scheme", "ftp"), (":path", "/x"), (":authority", "gw.test")]),
    ("scheme javascript", [(":method", "GET"), (":scheme", "javascript"), (":path", "/x"),
                           (":authority", "gw.test")]),
    ("userinfo in authority", [(":method", "GET"), (":scheme", "http"), (":path", "/admin"),
                               (":authority", "api.test@evil.example")]),
    ("quote in authority", [(":method", "GET"), (":scheme", "http"), (":path", "/x"), (":authority", 'a"<x')]),
    ("open bracket in authority", [(":method", "GET"), (":scheme", "http"), (":path", "/x"),
                                   (":authority", "[::1")]),
    ("userinfo in host", [(":method", "GET"), (":scheme", "http"), (":path", "/admin"),
                          ("host", "api.test@evil.example")]),
]


@pytest.mark.parametrize("name,hdrs", BAD_HEADS, ids=[b[0] for b in BAD_HEADS])
def test_malformed_pseudo_headers_are_refused_and_never_forwarded(gatehouse, upstreams, name, hdrs):
    g, up = start(gatehouse, upstreams)
    up.reset()
    c = Raw(g.port)
    c.send(c.headers_frame(1, hdrs))
    c.read(until=lambda f: f[2] == 1 and (f[1] & END_STREAM or f[0] == 3), timeout=3.0)
    st = status_of(Decoder(), c.frames, 1)
    assert st == 400 or c.resets().get(1) == PROTOCOL_ERROR, (st, c.resets())
    c.close()
    assert up.requests() == [], "a malformed request reached the upstream"


def test_options_asterisk_and_https_scheme_are_well_formed(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    c = H2(g.port)
    st = c.get("*", method="OPTIONS")
    ok = c.get("/ok", scheme="https")
    c.close()
    assert ok["status"] == 200, ok
    assert st["reset"] is None and b"malformed" not in st["body"], st
    h1 = g.raw(b"OPTIONS * HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
    assert h1.startswith(b"HTTP/1.1 %d " % st["status"]), (h1[:40], st["status"])   # as HTTP/1.1 answers it


def test_malformed_requests_count_against_the_reset_budget(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    c = Raw(g.port)
    sid = 1
    for _ in range(RESET_BURST // 50 + 4):
        out = [c.headers_frame(s, [(":method", "GET"), (":scheme", "ftp" if s % 4 == 1 else "http"),
                                   (":path", "/x" if s % 4 == 1 else "http://evil.example/"),
                                   (":authority", "gw.test")]) for s in range(sid, sid + 100, 2)]
        sid += 100
        if not c.send(b"".join(out)) or calm(c):
            break
        c.read(until=lambda f, last=sid - 2: f[0] == GOAWAY or (f[2] == last and (f[1] & END_STREAM or f[0] == 3)),
               timeout=3.0)
    c.wait_closed(timeout=3.0)
    assert calm(c), c.goaway()
    c.close()
    still_serving(g)


# ------------------------------------------- item 13: memory per connection --

STALL_CONFIG = """
listen: [ { address: "127.0.0.1:{port}", http2: true } ]
log: { access: stdout, level: warn }
limits: { header_timeout: 30s, body_timeout: 30s, idle_timeout: 60s, max_body_bytes: 64MiB }
upstreams:
  stuck: { targets: [ "{up}" ], timeouts: { connect: 60s, send: 60s, read: 60s } }
routes:
  - { name: all, match: { prefix: / }, upstream: stuck }
"""
PING = 6
CONNS, STREAMS = 1000, 8
PER_CONN_KIB = 256          # docs/performance.md "Memory per connection"


def sanitized():
    with open(conftest.BIN, "rb") as f:
        return b"__asan_init" in f.read()


def read_frames(sock, until, timeout=10.0):
    """Frames from a blocking socket until until(frame) holds."""
    buf = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        sock.settimeout(max(0.01, deadline - time.time()))
        data = sock.recv(1 << 16)
        if not data:
            raise AssertionError("the gateway closed a stalled connection")
        buf += data
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n = int.from_bytes(buf[:3], "big")
            f = (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n])
            buf = buf[9 + n:]
            if until(f):
                return
    raise AssertionError("no answer from the gateway")


def test_a_thousand_stalled_connections_keep_the_gateway_rss_bounded(gatehouse):
    """1,000 h2c connections, each with 8 streams sending request bodies as
    far as the gateway's windows allow, toward an upstream that takes none
    of it (its accept queue is full, so every connect waits). What each
    connection makes the gateway hold is bounded by its receive windows:
    RSS grows by less than PER_CONN_KIB per connection (the old 1 MiB
    connection window let each hold 8 x 64 KiB here, and up to 1 MiB)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    filler = socket.create_connection(hole.getsockname())   # the queue is full from now on
    g = gatehouse(STALL_CONFIG, subst={"up": "127.0.0.1:%d" % hole.getsockname()[1]}, workers=1)
    from hpack import Encoder
    socks = []
    try:
        # warm up (first allocations, the pools) before the baseline
        c = Raw(g.port)
        c.request(1, "/warm", method="POST", end_stream=False)
        c.send(frame(PING, 0, 0, b"warmwarm"))
        c.read(until=lambda f: f[0] == PING and f[1] & 1, timeout=5.0)
        c.close()
        rss0 = g.rss_kib()
        for i in range(CONNS):
            s = socket.create_connection(("127.0.0.1", g.port), timeout=10.0)
            enc = Encoder()
            out = [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", frame(4, 0, 0)]
            for k in range(STREAMS):
                block = enc.encode([(":method", "POST"), (":scheme", "http"), (":path", "/stall/%d/%d" % (i, k)),
                                    (":authority", "gw.test"), ("content-length", "10000000")])
                out.append(frame(HEADERS, 0x4, 2 * k + 1, block))
            s.sendall(b"".join(out))
            socks.append(s)
        sent = 0
        for s in socks:
            win = [65535]

            def window(f, win=win):
                if f[0] == 8 and f[2] == 0:   # the gateway opens its connection window
                    win[0] += int.from_bytes(f[3][:4], "big") & 0x7FFFFFFF
                    return True
                return False
            read_frames(s, window)
            conn_left = win[0]
            out = []
            for k in range(STREAMS):
                left = min(65535, conn_left)
                conn_left -= left
                while left:
                    n = min(16384, left)
                    out.append(frame(DATA, 0, 2 * k + 1, b"b" * n))
                    left -= n
                    sent += n
            out.append(frame(PING, 0, 0, b"stallack"))
            s.sendall(b"".join(out))
        for s in socks:   # a PING answered: every DATA before it was read
            read_frames(s, lambda f: f[0] == PING and f[1] & 1)
        grown = g.rss_kib() - rss0
        per_conn = grown / CONNS
        print("RSS +%d KiB for %d connections (%.1f KiB each), %d body bytes sent" % (grown, CONNS, per_conn, sent))
        assert sent >= CONNS * 100 * 1024, "the gateway took less body than its windows announce"
        if not sanitized():   # ASan's redzones and quarantine are not the gateway's memory
            assert per_conn < PER_CONN_KIB, "%.1f KiB per stalled connection" % per_conn
    finally:
        for s in socks:
            s.close()
        filler.close()
        hole.close()
