"""HTTP/1.1 hardening (issue 9, items 7, 10 and 14).

- An absolute-form target's authority is validated exactly as Host is
  (userinfo refused), and replaces Host when it is valid.
- A request line without a version (HTTP/0.9) and bare-LF line endings are
  answered 400 and closed at once, not left to the header timeout.
- The upstream `send` timeout measures a stall: a slow upload that keeps
  making progress is not cut, an upstream that stops reading is.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import HERE, Gatehouse, Upstream, free_port, wait_port

# header_timeout is far longer than any socket timeout below: an answer
# that arrives at all arrived because the head was judged, not timed out.
CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
limits: { header_timeout: 5s }
upstreams:
  main: { targets: [ "{up}" ] }
routes:
  - { name: all, match: { prefix: / }, upstream: main }
"""

ANSWER_WITHIN = 2.0   # seconds; header_timeout is 5s


@pytest.fixture(scope="module")
def gateway():
    up = Upstream("main")
    g = Gatehouse(CONFIG, subst={"up": up.address}, workers=1)
    yield g, up
    g.check_clean_exit()
    up.stop()


def exchange_until_close(port, data, timeout=ANSWER_WITHIN):
    """Send data without closing our side; return all bytes received until
    the gateway closes. A socket timeout (no answer, or no close) fails."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                pytest.fail("no answer and close within %.0fs; got %r" % (timeout, b"".join(chunks)))
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


def problem(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


# ---- item 7: absolute-form targets ---------------------------------------

@pytest.mark.parametrize("target", [
    b"http://api.test@evil.example/admin",   # userinfo: Host would read api.test@evil.example
    b"http://user:pw@api.test/admin",
    b'http://a"<x/',
    b"http://[::1/x",
    b"http://api.test:80x/",
    b"http://api.test#frag/x",
])
def test_absolute_form_bad_authority_refused(gateway, target):
    g, up = gateway
    up.reset()
    out = exchange_until_close(g.port, b"GET " + target + b" HTTP/1.1\r\nHost: api.test\r\n\r\n")
    status, body = problem(out)
    assert status == 400 and body["code"] == "bad_request", out
    assert "target" in body["detail"]
    assert up.requests() == []


def test_absolute_form_valid_replaces_host(gateway):
    g, up = gateway
    up.reset()
    out = exchange_until_close(g.port, b"GET http://API.test:8080/admin?x=1 HTTP/1.1\r\n"
                                       b"Host: other.example\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out
    seen = up.requests()
    assert len(seen) == 1
    assert seen[0]["target"] == "/admin?x=1"
    hosts = [v for k, v in seen[0]["headers"] if k.lower() == "host"]
    assert hosts == ["API.test:8080"]


def test_absolute_form_without_path(gateway):
    g, up = gateway
    up.reset()
    out = exchange_until_close(g.port, b"GET http://[::1]:9?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out
    seen = up.requests()
    assert [r["target"] for r in seen] == ["/?q=1"]
    assert [v for k, v in seen[0]["headers"] if k.lower() == "host"] == ["[::1]:9"]


# ---- item 10: requests that used to hang until header_timeout ------------

@pytest.mark.parametrize("head", [
    b"GET /\r\n",                                    # HTTP/0.9: no version, no more lines
    b"GET /index.html\n",                            # HTTP/0.9 with a bare LF
    b"GET / HTTP/1.1\nHost: x\n\n",                  # bare LF throughout
    b"GET / HTTP/1.1\r\nHost: x\nX-A: b\n\n",        # a bare LF after a good line
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\n",        # an unfinished head with a bare LF
])
def test_refused_at_once(gateway, head):
    g, up = gateway
    up.reset()
    t0 = time.monotonic()
    out = exchange_until_close(g.port, head)
    status, body = problem(out)
    assert status == 400 and body["code"] == "bad_request", out
    assert time.monotonic() - t0 < ANSWER_WITHIN
    assert up.requests() == []


def test_http09_detail_names_the_version(gateway):
    g, _ = gateway
    _, body = problem(exchange_until_close(g.port, b"GET /\r\n"))
    assert body["detail"] == "unsupported HTTP version"


def test_head_in_pieces_still_served(gateway):
    """Judging an unfinished head line by line must not refuse a good one."""
    g, up = gateway
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    try:
        for piece in (b"GET /pieces HT", b"TP/1.1\r\n", b"Host: x\r\n", b"Conn", b"ection: close\r\n", b"\r\n"):
            s.sendall(piece)
            time.sleep(0.02)   # pacing, so each piece is its own read
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    finally:
        s.close()
    assert out.startswith(b"HTTP/1.1 200"), out


# ---- item 14: the send timeout is a stall, not the whole upload ----------

SEND_CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
limits: { max_body_bytes: 64MiB }
upstreams:
  main: { targets: [ "{up}" ], protocol: {proto}, timeouts: { send: 1s }, retries: { attempts: 0 } }
routes:
  - { name: all, match: { prefix: / }, upstream: main }
"""


class H2Upstream:
    """The hyper-h2 upstream (h2_upstream.py) on a free port."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "h2_upstream.py"), str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.proc.stdout.readline()   # READY
        wait_port(self.port, proc=self.proc)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def read_response(s):
    """Status and body of one Content-Length response on s."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        assert b, "closed before a response head: %r" % buf
        buf += b
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    n = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        b = s.recv(65536)
        assert b, "closed inside a response body"
        body += b
    return int(lines[0].split(b" ", 2)[1]), body


@pytest.mark.parametrize("proto", ["http1", "h2"])
def test_slow_upload_with_progress_is_not_cut(gatehouse, upstreams, proto):
    """16 KiB at about 5 KB/s: the upload lasts 3x the 1s send timeout, yet
    the upstream keeps taking bytes, so it succeeds."""
    h2 = H2Upstream() if proto == "h2" else None
    try:
        up = h2 or upstreams("main")
        g = gatehouse(SEND_CONFIG, subst={"up": up.address, "proto": proto}, workers=1)
        piece, pieces = b"x" * 512, 32
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        try:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (len(piece) * pieces))
            t0 = time.monotonic()
            for _ in range(pieces):
                s.sendall(piece)
                time.sleep(0.1)   # pacing the upload, not waiting for anything
            assert time.monotonic() - t0 > 3.0
            status, body = read_response(s)
        finally:
            s.close()
        assert status == 200, body
        got = json.loads(body)
        assert got.get("body_len", got.get("length")) == len(piece) * pieces
        assert got["sha256"] == hashlib.sha256(piece * pieces).hexdigest()
    finally:
        if h2:
            h2.stop()


def test_upstream_that_stops_reading_times_out(gatehouse):
    """An upstream that accepts and never reads: once the socket buffers are
    full nothing moves, and the send timeout (1s) answers 504."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # inherited by its connections
    sink.bind(("127.0.0.1", 0))
    sink.listen(8)   # the kernel completes the handshake; nobody ever accepts or reads
    total = 32 << 20  # far more than the socket buffers on the way can hold
    try:
        g = gatehouse(SEND_CONFIG, subst={"up": "127.0.0.1:%d" % sink.getsockname()[1], "proto": "http1"},
                      workers=1)
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)

        def upload():
            try:
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
                block = b"y" * (1 << 16)
                for _ in range(total // len(block)):
                    s.sendall(block)
            except OSError:
                pass   # the gateway answered and closed

        t0 = time.monotonic()
        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        try:
            status, body = read_response(s)
        finally:
            elapsed = time.monotonic() - t0
            try:
                s.shutdown(socket.SHUT_RDWR)   # unblocks the sender
            except OSError:
                pass                           # already reset by the gateway's close
            s.close()
            sender.join(10)
        assert status == 504, body
        assert json.loads(body)["code"] == "upstream_timeout"
        assert 0.9 <= elapsed < 8, elapsed
    finally:
        sink.close()
