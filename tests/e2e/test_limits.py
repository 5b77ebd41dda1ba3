"""Limits and timeouts against abuse (SPEC §2 `limits`, §12.5)."""
import json
import socket
import time

from conftest import ResponseReader, accept_queue, raw_exchange, server_conns, wait_until

CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
limits:
  header_timeout: 1s
  body_timeout: 1s
  min_body_rate: 1KiB
  idle_timeout: 1s
  max_header_bytes: 2KiB
  max_headers: 20
  max_body_bytes: 1000
  max_connections: 50
upstreams:
  main: { targets: [ "{up}" ] }
routes:
  - { name: all, match: { prefix: / }, upstream: main }
"""


def start(gatehouse, upstreams):
    up = upstreams("main")
    return gatehouse(CONFIG, subst={"up": up.address}, workers=1), up


def problem(out):
    return json.loads(out.split(b"\r\n\r\n", 1)[1])


def test_head_too_large_is_431(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    out = raw_exchange(g.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431") and problem(out)["code"] == "header_too_large"
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
    out = raw_exchange(g.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
    assert out.startswith(b"HTTP/1.1 431") and problem(out)["code"] == "header_too_large"
    # just under the limits: served
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(18))
    out = raw_exchange(g.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + hdrs + b"\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert up.requests()[-1]["target"] == "/"
    assert len(up.requests()) == 1


def test_body_limit_413_content_length_and_exact_size(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    out = raw_exchange(g.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n" + b"a" * 1001)
    assert out.startswith(b"HTTP/1.1 413") and problem(out)["code"] == "payload_too_large"
    assert up.requests() == []
    out = raw_exchange(g.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n"
                       + b"a" * 1000)
    assert out.startswith(b"HTTP/1.1 200") and b'"body_len": 1000' in out


def test_chunked_body_over_limit_stops_before_upstream_sees_the_excess(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    body = b"".join(b"64\r\n" + b"b" * 100 + b"\r\n" for _ in range(15)) + b"0\r\n\r\n"
    out = raw_exchange(g.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 413") and problem(out)["code"] == "payload_too_large"
    time.sleep(0.2)
    assert up.requests() == []   # the upstream never got a complete request


def test_slowloris_head_is_cut_off(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    got = b""
    # keep trickling header bytes: the deadline is for the whole head
    try:
        for i in range(40):
            s.sendall(b"X-%d: y\r\n" % i)
            time.sleep(0.1)
            s.setblocking(False)
            try:
                got += s.recv(65536)
            except BlockingIOError:
                pass
            s.setblocking(True)
            if got:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    elapsed = time.time() - t0
    s.close()
    assert got.startswith(b"HTTP/1.1 408"), got
    assert b'"code":"request_timeout"' in got
    assert elapsed < 2.0
    assert up.requests() == []


def test_slow_body_is_cut_off(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n")
    t0 = time.time()
    got = b""
    try:
        for i in range(60):   # 10 bytes per 100 ms = 100 B/s, far below 1 KiB/s
            s.sendall(b"c" * 10)
            time.sleep(0.1)
            s.setblocking(False)
            try:
                got += s.recv(65536)
            except BlockingIOError:
                pass
            s.setblocking(True)
            if got:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()
    assert time.time() - t0 < 3.0
    assert got.startswith(b"HTTP/1.1 408") or got == b"", got


def test_idle_keepalive_connection_is_closed(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ResponseReader(s).response()[0] == 200   # all of it: what follows must be the close
    t0 = time.time()
    s.settimeout(4)
    assert s.recv(100) == b""          # closed by the gateway
    assert 0.8 < time.time() - t0 < 2.5
    s.close()


def test_max_connections(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    held = [socket.create_connection(("127.0.0.1", g.port), timeout=5) for _ in range(50)]
    wait_until(lambda: accept_queue(g.port) == 0 and server_conns(g.port) == 50, what="50 accepted connections")
    extra = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        assert extra.recv(100) == b""   # refused: closed at once
    except ConnectionResetError:
        pass
    extra.close()
    for s in held:
        s.close()
    wait_until(lambda: server_conns(g.port) == 0, what="the gateway to close the 50")
    out = raw_exchange(g.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
