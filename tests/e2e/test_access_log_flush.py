"""Issue 11, the access log's batching: lines are buffered per worker and
written by the worker's 100 ms tick (or as soon as 48 KiB are buffered), not
once per loop turn. What that must not cost: a line of a lone request, with
no traffic after it, still reaches the file (the tick runs on an idle
worker); a graceful stop writes every buffered line; a line longer than the
buffer is written whole; every line stays one JSON object."""
import http.client
import json
import os

from conftest import wait_until

CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "{log}" }
upstreams:
  up:
    targets: [ "{up}" ]
routes:
  - { name: all, match: { prefix: / }, upstream: up }
"""


def lines_in(path):
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    assert text == "" or text.endswith("\n"), "a line was cut: %r" % text[-200:]
    return [json.loads(l) for l in text.splitlines()]


def start(gatehouse, upstreams, tmp_path):
    up = upstreams("up")
    log = str(tmp_path / "access.log")
    g = gatehouse(CONFIG, subst={"up": up.address, "log": log}, workers=1)
    return g, log


def test_a_lone_request_is_logged_without_further_traffic(gatehouse, upstreams, tmp_path):
    g, log = start(gatehouse, upstreams, tmp_path)
    status, _, _ = g.get("/lone", headers={"User-Agent": "lone-client"})
    assert status == 200
    # nothing else arrives: only the worker's tick can write the line
    wait_until(lambda: any(l["path"] == "/lone" for l in lines_in(log)), timeout=5,
               what="the lone request's line")
    line = [l for l in lines_in(log) if l["path"] == "/lone"][0]
    assert line["user_agent"] == "lone-client" and line["status"] == 200


def test_a_graceful_stop_writes_every_buffered_line(gatehouse, upstreams, tmp_path):
    g, log = start(gatehouse, upstreams, tmp_path)
    n = 300
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    for i in range(n):
        c.request("GET", "/batch/%d" % i, headers={"user-AGENT": "ua-%d" % i})
        r = c.getresponse()
        r.read()
        assert r.status == 200
    c.close()
    g.check_clean_exit()   # SIGTERM right after the last response
    lines = [l for l in lines_in(log) if l["path"].startswith("/batch/")]
    assert sorted(l["path"] for l in lines) == sorted("/batch/%d" % i for i in range(n))
    assert all(l["user_agent"] == "ua-" + l["path"].rsplit("/", 1)[1] for l in lines)


def test_a_line_longer_than_the_buffer_is_written_whole(gatehouse, upstreams, tmp_path):
    g, log = start(gatehouse, upstreams, tmp_path)
    g.get("/before")
    # bytes that are not UTF-8 become \ufffd (6 bytes each): the User-Agent
    # alone makes the line longer than the 64 KiB buffer
    ua = "\xff" * 12000   # sent as latin-1: 12,000 bytes 0xff
    status, _, _ = g.get("/long", headers={"User-Agent": ua})
    assert status == 200
    g.get("/after")
    wait_until(lambda: {"/before", "/long", "/after"} <= {l["path"] for l in lines_in(log)}, timeout=5,
               what="the three lines")
    long_line = [l for l in lines_in(log) if l["path"] == "/long"][0]
    assert long_line["user_agent"] == "\ufffd" * 12000
    assert os.path.getsize(log) > 64 * 1024
