"""Server hardening (issue 9, items 1, 15 and 18): running out of file
descriptors, a second process on a port already served, plain HTTP sent to
a TLS port.

Every wait is on a condition (a log line, a response, a process exit); the
one fixed interval is the CPU measuring window of the descriptor test.
"""
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from unittest import mock

import pytest

import conftest
from conftest import Gatehouse, free_port, raw_exchange
import certs


def respond_config(body, ports=("{port}",), level="info", extra=""):
    listen = "".join("  - address: 127.0.0.1:%s\n" % p for p in ports)
    return ("listen:\n" + listen +
            "log: { access: off, level: %s }\n" % level + extra +
            "routes:\n  - name: r\n    match: { prefix: / }\n"
            "    respond: { status: 200, body: \"%s\" }\n" % body)


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def wait_log(g, text, count=1, timeout=10.0):
    return wait_for(lambda: g.stderr().count(text) >= count, timeout, "%r in the error log:\n%s" % (text, g.stderr()))


def reload(g, config):
    g.write(config)
    g.proc.send_signal(signal.SIGHUP)


def get(port, path="/", timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        return data
    finally:
        s.close()


def body_of(raw):
    return raw.split(b"\r\n\r\n", 1)[1]


# ------------------------------------------------ item 1: out of descriptors

@contextlib.contextmanager
def nofile_limit(soft, hard):
    """Processes started inside run with RLIMIT_NOFILE (soft, hard). The
    Gatehouse fixture has no hook for it, so its Popen gets a preexec_fn."""
    real = subprocess.Popen

    def popen(*args, **kw):
        kw["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return real(*args, **kw)

    with mock.patch.object(conftest.subprocess, "Popen", popen):
        yield


def cpu_seconds(pid):
    """utime + stime of the whole process (every thread), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)


def test_out_of_descriptors_pauses_accepting_instead_of_spinning(gatehouse):
    """Old code: accept4 fails with EMFILE, the listener stays readable and
    every worker spins at 100% CPU writing the same log line."""
    with nofile_limit(256, 256):
        g = gatehouse(respond_config("ok"), workers=2)

    clients = []
    try:
        for _ in range(330):   # more than 256 descriptors: the rest wait in the backlog
            clients.append(socket.create_connection(("127.0.0.1", g.port), timeout=5))
        wait_log(g, "Too many open files")
        log0, cpu0, t0 = len(g.stderr()), cpu_seconds(g.proc.pid), time.monotonic()
        time.sleep(1.5)   # the measuring window
        used = cpu_seconds(g.proc.pid) - cpu0
        elapsed = time.monotonic() - t0
        grown = len(g.stderr()) - log0
        assert used < 0.25 * elapsed, "gatehouse used %.2fs of CPU in %.2fs while out of descriptors" % (used, elapsed)
        assert grown < 2000, "the error log grew by %d bytes in %.2fs:\n%s" % (grown, elapsed, g.stderr()[-2000:])
        line = [l for l in g.stderr().splitlines() if "Too many open files" in l][0]
        assert "accept on 127.0.0.1:%d" % g.port in line and "not accepting for" in line
    finally:
        for c in clients:
            c.close()
    # descriptors come back: the listeners are polled again and new clients served
    for _ in range(5):
        assert body_of(get(g.port)) == b"ok"
    # the default max_connections cannot fit under 256 descriptors: said at start
    assert "limits.max_connections (100000) does not fit under the open-files limit (256)" in g.stderr()


def test_fd_limit_raised_at_start_and_checked(gatehouse):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 512:
        pytest.skip("the hard open-files limit (%d) is too low to raise to" % hard)
    target = 512 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    # soft below hard: raised to the hard limit
    with nofile_limit(256, target):
        g = gatehouse(respond_config("ok", extra="limits: { max_connections: 100 }\n"), workers=1)
    assert open_files_limit(g.proc.pid) == (target, target)
    assert "open-files limit raised from 256 to %d" % target in g.stderr()
    assert "does not fit" not in g.stderr()
    # a max_connections that fits under a fixed limit: no warning
    with nofile_limit(256, 256):
        g2 = gatehouse(respond_config("ok", extra="limits: { max_connections: 50 }\n"), workers=2)
    assert "does not fit" not in g2.stderr() and "raised" not in g2.stderr()
    # a reload to one that does not fit says so, with a figure that would
    reload(g2, respond_config("ok", extra="limits: { max_connections: 1000 }\n"))
    wait_log(g2, "configuration reloaded")
    assert "limits.max_connections (1000) does not fit under the open-files limit (256)" in g2.stderr()
    assert "set limits.max_connections to at most" in g2.stderr()


# ---------------------------------------- item 15: one process per port

def start_second(config, port):
    """A second gatehouse on `port`, expected to fail: (exit code, stderr)."""
    g = Gatehouse(config, workers=2, subst={"port": port}, expect_start=False)
    try:
        rc = g.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        g.stop()
        raise AssertionError("the second gatehouse kept running:\n" + g.stderr())
    g.out.close()
    g.err.close()
    err = g.stderr()
    shutil.rmtree(g.dir, ignore_errors=True)
    return rc, err


@pytest.mark.parametrize("second_address", ["127.0.0.1", "0.0.0.0"])
def test_second_process_on_a_served_port_exits_3(gatehouse, second_address):
    """Old code: both start (SO_REUSEPORT) and split the traffic silently."""
    g = gatehouse(respond_config("first"), workers=2)
    second = respond_config("second").replace("127.0.0.1:{port}", second_address + ":{port}")
    rc, err = start_second(second, g.port)
    assert rc == 3, err
    assert "cannot listen on %s:%d: address already in use by another process" % (second_address, g.port) in err
    # the first is alone on the port: every new connection reaches it
    for _ in range(20):
        assert body_of(get(g.port)) == b"first"


@pytest.fixture
def reuseport_holder():
    """A socket listening with SO_REUSEPORT, as another gatehouse would."""
    made = []

    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_reload_refuses_a_port_held_by_another_process(gatehouse, reuseport_holder):
    other = reuseport_holder()
    taken = other.getsockname()[1]
    free = free_port()
    g = gatehouse(respond_config("one"), workers=2)

    reload(g, respond_config("one", ports=("{port}", taken)))
    wait_log(g, "reload failed")
    assert "cannot listen on 127.0.0.1:%d: address already in use by another process" % taken in g.stderr()
    assert body_of(get(g.port)) == b"one"   # the old configuration goes on
    # every connection to the taken port lands on its owner, none on gatehouse
    conns = [socket.create_connection(("127.0.0.1", taken), timeout=5) for _ in range(16)]
    other.settimeout(5)
    try:
        for _ in conns:
            other.accept()[0].close()
    finally:
        for c in conns:
            c.close()

    # a reload that keeps the held port and adds a free one works
    reload(g, respond_config("two", ports=("{port}", free)))
    wait_log(g, "configuration reloaded (generation 2)")
    assert body_of(get(g.port)) == b"two"
    assert body_of(get(free)) == b"two"
    # and once the other process is gone, its port can be added
    other.close()
    reload(g, respond_config("three", ports=("{port}", free, taken)))
    wait_log(g, "configuration reloaded (generation 3)")
    assert body_of(get(taken)) == b"three" and body_of(get(free)) == b"three"


def test_overlapping_addresses_of_one_process_still_start(gatehouse):
    """The probe must not trip over the process's own sockets: 0.0.0.0:P
    and 127.0.0.1:P in one configuration, and a reload that keeps them."""
    text = respond_config("both", ports=("{port}",)).replace(
        "  - address: 127.0.0.1:{port}\n", "  - address: 0.0.0.0:{port}\n  - address: 127.0.0.1:{port}\n")
    g = gatehouse(text, workers=2)
    assert body_of(get(g.port)) == b"both"
    reload(g, text.replace("both", "again"))
    wait_log(g, "configuration reloaded (generation 2)")
    assert body_of(get(g.port)) == b"again"


# --------------------------------------- item 18: plain HTTP to a TLS port

@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="gh-pki-")
    try:
        yield certs.make_pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tls_config(pki, http2):
    return ("listen:\n  - address: 127.0.0.1:{port}\n" +
            ("    http2: true\n" if http2 else "") +
            "    tls:\n      certificates:\n        - { cert: %s, key: %s }\n" % pki.default +
            "log: { access: off, level: info }\n"
            "routes:\n  - name: r\n    match: { prefix: / }\n    respond: { status: 200, body: \"secure\" }\n")


def check_plain_http_answer(raw):
    assert raw.startswith(b"HTTP/1.1 400 "), raw
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request", raw
    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    p = json.loads(body)
    assert p["status"] == 400 and p["code"] == "bad_request"
    assert "plain HTTP was sent to a TLS port" in p["detail"]


@pytest.mark.parametrize("http2", [False, True])
@pytest.mark.parametrize("request_line", [b"GET / HTTP/1.1", b"POST /x HTTP/1.1", b"OPTIONS * HTTP/1.1",
                                          b"DELETE /a HTTP/1.0"])
def test_plain_http_to_a_tls_port_gets_400(gatehouse, pki, http2, request_line):
    """Old code: the handshake fails and the connection closes with no answer."""
    g = gatehouse(tls_config(pki, http2), workers=1)
    raw = raw_exchange(g.port, request_line + b"\r\nHost: a\r\nContent-Length: 0\r\n\r\n", timeout=5)
    check_plain_http_answer(raw)


def test_curl_http_to_a_tls_port_and_tls_still_works(gatehouse, pki):
    g = gatehouse(tls_config(pki, True), workers=1)
    r = subprocess.run(["curl", "-sS", "-i", "--max-time", "5", "http://127.0.0.1:%d/some/path" % g.port],
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    check_plain_http_answer(r.stdout)
    # real TLS clients on the same port are unaffected
    ctx = ssl.create_default_context(cafile=pki.ca1)
    with socket.create_connection(("127.0.0.1", g.port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="default.example.com") as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                b = t.recv(65536)
                if not b:
                    break
                data += b
    assert data.startswith(b"HTTP/1.1 200") and body_of(data) == b"secure"
    r = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", pki.ca1, "--resolve",
                        "default.example.com:%d:127.0.0.1" % g.port, "https://default.example.com:%d/" % g.port],
                       capture_output=True, timeout=10)
    assert r.returncode == 0 and r.stdout == b"secure", r.stderr
