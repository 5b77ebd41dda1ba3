"""Reload, drain and log reopen (SPEC §1 signals, §9, §12.23)."""
import http.client
import json
import os
import signal
import socket
import threading
import time

from conftest import ResponseReader, _listening, free_port, raw_exchange, wait_until

CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: stdout, level: info }
upstreams:
  main: { targets: [ "{up}" ] }
routes:
  - name: api
    match: { prefix: /api }
    upstream: main
    rewrite: { strip_prefix: true }
  - name: version
    match: { path: /version }
    respond: { body: "{version}" }
"""


def start(gatehouse, upstreams, version="one", **kw):
    up = upstreams("main")
    g = gatehouse(CONFIG, subst={"up": up.address, "version": version}, **kw)
    return g, up


def test_reload_switches_config(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    assert g.get("/version")[2] == b"one"
    g.subst["version"] = "two"
    g.reload(CONFIG)
    assert g.get("/version")[2] == b"two"
    assert "configuration reloaded" in g.stderr()


def test_invalid_reload_keeps_the_running_config(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    g.reload(CONFIG + "  - name: broken\n    match: { prefix: /x }\n    upstream: nowhere\n")
    assert g.get("/version")[2] == b"one"
    err = g.stderr()
    assert "reload failed" in err and "upstream 'nowhere' is not defined" in err
    assert g.get("/api/x")[0] == 200


def test_reload_under_load_loses_nothing(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    stop = threading.Event()
    results = {"ok": 0, "fail": []}

    def client():
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5)
                conn.request("GET", "/api/load")
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    results["ok"] += 1
                else:
                    results["fail"].append(r.status)
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # a failed request, dropped connection...
                results["fail"].append(repr(e))
                conn = None

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(20):
        g.subst["version"] = "v%d" % i
        g.reload(CONFIG, wait=0.1)
    stop.set()
    for t in threads:
        t.join()
    assert results["fail"] == [], results["fail"][:5]
    assert results["ok"] > 100
    assert g.get("/version")[2] == b"v19"
    assert g.stderr().count("configuration reloaded") == 20


def test_reload_adds_and_removes_listeners(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    second = free_port()
    two = CONFIG.replace('listen: [ { address: "127.0.0.1:{port}" } ]',
                         'listen: [ { address: "127.0.0.1:{port}" }, { address: "127.0.0.1:%d" } ]' % second)
    g.reload(two)
    out = raw_exchange(second, b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    g.reload(CONFIG)   # returns once every worker has closed the second port
    try:
        socket.create_connection(("127.0.0.1", second), timeout=1).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    assert refused
    assert g.get("/version")[0] == 200


def test_drain_finishes_in_flight_requests(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    # a keep-alive connection that is idle when the drain starts
    idle = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    idle.sendall(b"GET /api/a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ResponseReader(idle).response()[0] == 200   # all of it: what follows must be the close
    # a request in flight (the upstream takes 1.5 s)
    busy = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    busy.sendall(b"GET /api/slow?delay=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: any(r["target"].startswith("/slow") for r in up.requests()), what="the slow request upstream")
    t0 = time.time()
    g.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: not _listening(g.port), what="the listeners to close")
    # listeners are closed at once: new connections are refused
    try:
        socket.create_connection(("127.0.0.1", g.port), timeout=1).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    assert refused
    # the idle keep-alive connection was closed
    idle.settimeout(2)
    assert idle.recv(100) == b""
    # the in-flight request completes, with Connection: close
    resp = b""
    while b"slow" not in resp:
        chunk = busy.recv(65536)
        if not chunk:
            break
        resp += chunk
    assert resp.startswith(b"HTTP/1.1 200"), resp
    assert b"Connection: close" in resp.split(b"\r\n\r\n")[0]
    g.proc.wait(timeout=10)
    assert g.proc.returncode == 0
    assert time.time() - t0 < 5


def test_sigusr1_reopens_the_access_log(gatehouse, upstreams, tmp_path):
    up = upstreams("main")
    log = tmp_path / "access.log"
    cfg = CONFIG.replace("access: stdout", "access: %s" % log)
    g = gatehouse(cfg, subst={"up": up.address, "version": "one"})
    g.get("/version")
    wait_until(lambda: log.exists() and log.read_text().count("\n") >= 1, what="the first access-log line")
    rotated = tmp_path / "access.log.1"
    os.rename(log, rotated)
    g.proc.send_signal(signal.SIGUSR1)
    g.wait_stderr("log files reopened")
    g.get("/api/after")
    wait_until(lambda: log.exists() and "/api/after" in log.read_text(), what="the access log to be reopened")
    first = rotated.read_text().splitlines()
    second = log.read_text().splitlines()
    assert json.loads(first[0])["path"] == "/version"
    assert json.loads(second[-1])["path"] == "/api/after"
