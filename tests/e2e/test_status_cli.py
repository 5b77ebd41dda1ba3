"""`gatehouse status -a ADDR` (SPEC §1, §9): the admin API's summary in a
terminal, and its exit codes (0; 1 token refused, with the reason; 2 usage;
3 admin API unreachable).

Against a real gatehouse: status, upstreams and deprecated versions with
their callers. The per-route rates and percentiles come from two /api/stats
samples; a small admin stand-in serves two known samples (the shared JSON
contract) so the arithmetic is checked exactly."""
import http.server
import json
import os
import re
import subprocess
import threading

import pytest

from conftest import BIN, free_port, wait_port
from test_admin_api import ADMIN_TOKEN, ALICE_KEY, BOB_KEY, orders, start


def status(*args, env=None, timeout=30):
    full = dict(os.environ)
    full.pop("GATEHOUSE_ADMIN_TOKEN", None)
    full.update(env or {})
    p = subprocess.run([BIN, "status"] + list(args), capture_output=True, text=True, env=full, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_status_against_a_running_gatehouse(gatehouse, upstreams):
    g, live = start(gatehouse, upstreams)
    for key in (ALICE_KEY, ALICE_KEY, BOB_KEY):
        assert orders(g, "1", key) == 200
    addr = "127.0.0.1:%d" % g.admin_port

    rc, out, err = status("-a", addr, "--token", ADMIN_TOKEN, "--interval", "100ms")
    assert rc == 0, err
    assert re.search(r"^gatehouse \S+ at %s, up \d+\S*s?.*, 2 workers, \d+ open connections$" % re.escape(addr),
                     out, re.M), out
    assert "config: generation 1 from %s, loaded 20" % g.path in out
    # upstream targets, one line each, the circuit on the upstream's first
    # (in-flight: the last response may still be handing its connection back)
    assert re.search(r"^  main +%s +yes +healthy +closed +\d +0$" % re.escape(live.address), out, re.M), out
    assert re.search(r"^  side +%s +yes +healthy +- +\d +0$" % re.escape(live.address), out, re.M), out
    dead = g.subst["dead"]
    assert re.search(r"^  +%s +yes +healthy +0 +0$" % re.escape(dead), out, re.M), out
    # the deprecated version with its callers, most requests first
    assert re.search(r"^  orders v1  deprecated  sunset \S+ \(in 25 days\), 3 requests$", out, re.M), out
    callers = re.findall(r"^    (\S+) +(\d+)  last seen 20\S+Z$", out, re.M)
    assert callers == [("alice", "2"), ("bob", "1")]
    assert " v2 " not in out     # active versions are not listed

    # the token from the environment
    rc, out2, err = status("-a", addr, "--interval", "100ms", env={"GATEHOUSE_ADMIN_TOKEN": ADMIN_TOKEN})
    assert rc == 0, err


def test_status_exit_codes(gatehouse, upstreams):
    g, _ = start(gatehouse, upstreams)
    addr = "127.0.0.1:%d" % g.admin_port
    rc, out, err = status("-a", addr)
    assert rc == 1 and out == ""
    assert "/api/status refused (401): the admin API needs Authorization: Bearer TOKEN" in err
    assert "--token" in err
    rc, _, err = status("-a", addr, "--token", "wrong")
    assert rc == 1 and "refused (401): the admin token is wrong" in err

    dead = "127.0.0.1:%d" % free_port()
    rc, out, err = status("-a", dead, "--token", ADMIN_TOKEN)
    assert rc == 3 and out == ""
    assert err.strip() == "gatehouse status: cannot reach the admin API at %s: Connection refused" % dead

    for args, msg in ((["--token", "x"], "status needs -a ADDR"),
                      (["-a", addr, "--interval", "fast"], "--interval takes a duration"),
                      (["-a", addr, "extra"], "status takes no arguments ('extra')"),
                      (["-a", "no-port"], "'no-port' is not an address")):
        rc, out, err = status(*args)
        assert rc == 2 and msg in err, (args, err)
    p = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    assert "status -a ADDR [--token T] [--interval 1s]" in p.stdout


# ------------------------------------------------- against /api/stats samples

BUCKETS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]


def lat(**at):
    v = [0] * (len(BUCKETS) + 1)
    for k, n in at.items():
        v[int(k[1:])] = n
    return v


def route(name, requests, errors, latency):
    return {"route": name, "requests": requests, "client_errors": 0, "errors": errors, "rate_limited": 0,
            "latency": latency, "latency_sum_ms": 0}


SAMPLES = [
    {"time": "2026-12-07T10:56:37Z", "uptime_seconds": 12, "latency_buckets_ms": BUCKETS,
     "totals": {"requests": 14, "client_errors": 0, "errors": 1, "rate_limited": 0},
     "routes": [route("users", 10, 0, lat(b0=10)), route("idle", 4, 1, lat(b1=4)), route("", 0, 0, lat())],
     "connections": {"open": 3},
     "config": {"generation": 2, "loaded_at": "2026-12-07T10:56:30Z", "source": "gatehouse.yaml",
                "last_reload": {"result": "error", "at": "2026-12-07T10:56:35Z",
                                "errors": ["gatehouse.yaml:3:5: unknown key 'lisen'"]}},
     "recent_errors": []},
]
SAMPLES.append(json.loads(json.dumps(SAMPLES[0])))
SAMPLES[1]["routes"][0] = route("users", 110, 5, lat(b0=10, b5=100))   # 100 more, all within 10..25 ms
SAMPLES[1]["totals"]["requests"] = 114
SAMPLES[1]["recent_errors"] = [{"time": "2026-12-07T10:56:37.123Z", "status": 502, "code": "upstream_error",
                                "route": "users", "method": "GET", "path": "/users/7", "request_id": "5f0c1d"}]
STATUS = {"version": "9.9", "uptime_seconds": 3725, "started_at": "2026-12-07T09:54:32Z",
          "config": {"generation": 2, "loaded_at": "2026-12-07T10:56:30Z", "source": "gatehouse.yaml"},
          "workers": 4, "open_connections": 3}


class FakeAdmin(http.server.ThreadingHTTPServer):
    daemon_threads = True


def fake_admin(refuse=None):
    port = free_port()
    calls = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            calls.append(self.path)
            if refuse:
                self.send(refuse, {"type": "about:blank", "status": refuse, "code": "forbidden",
                                   "detail": "the admin API answers loopback clients only (no admin.token set)"})
            elif self.path == "/api/status":
                self.send(200, STATUS)
            elif self.path == "/api/stats":
                self.send(200, SAMPLES[min(calls.count("/api/stats"), 2) - 1])
            elif self.path == "/api/upstreams":
                self.send(200, {"upstreams": []})
            elif self.path == "/api/versions":
                self.send(200, {"routes": []})
            else:
                self.send(404, {})

        def send(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = FakeAdmin(("127.0.0.1", port), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    wait_port(port)
    return srv, port, calls


@pytest.fixture
def admin_stub():
    made = []

    def make(**kw):
        srv, port, calls = fake_admin(**kw)
        made.append(srv)
        return port, calls
    yield make
    for s in made:
        s.shutdown()
        s.server_close()


def test_status_routes_from_two_stats_samples(admin_stub):
    port, calls = admin_stub()
    rc, out, err = status("-a", "127.0.0.1:%d" % port, "--interval", "200ms")
    assert rc == 0, err
    assert calls[:3] == ["/api/status", "/api/stats", "/api/stats"]
    assert "gatehouse 9.9 at 127.0.0.1:%d, up 1h 2m, 4 workers, 3 open connections" % port in out
    assert "last reload: error at 2026-12-07T10:56:35Z\n  gatehouse.yaml:3:5: unknown key 'lisen'\n" in out
    assert "requests: 114 total, 0 client errors, 1 errors, 0 rate limited" in out
    rows = {m[0]: m[1:] for m in re.findall(
        r"^  (\S+(?: route\))?) +([\d.]+) +(\S+) +(\S+) +(\S+) +(\S+) +(\d+)$", out, re.M)}
    # users: 100 requests in the interval, 5 of them 5xx, all within 10..25 ms
    rate, e, p50, p95, p99, total = rows["users"]
    assert 0 < float(rate) <= 500.0 and (e, p50, p95, p99, total) == ("5.0", "18ms", "24ms", "25ms", "110")
    # idle: nothing in the interval: the cumulative counts (4 within 0.5..1 ms)
    assert rows["idle"] == ("0.0", "25.0", "0.75ms", "0.97ms", "0.99ms", "4")
    assert rows["(no route)"] == ("0.0", "-", "-", "-", "-", "0")
    assert re.search(r"^  2026-12-07T10:56:37.123Z 502 upstream_error +users +GET /users/7  5f0c1d$", out, re.M)
    assert "DEPRECATED VERSIONS: none" in out


def test_status_403_gives_the_reason(admin_stub):
    port, _ = admin_stub(refuse=403)
    rc, out, err = status("-a", "127.0.0.1:%d" % port)
    assert rc == 1 and out == ""
    assert err.strip() == ("gatehouse status: /api/status refused (403): "
                           "the admin API answers loopback clients only (no admin.token set)")


def test_status_other_answers_are_not_an_admin_api(admin_stub):
    port, _ = admin_stub(refuse=500)
    rc, out, err = status("-a", "127.0.0.1:%d" % port)
    assert rc == 3 and out == ""
    assert err.strip() == "gatehouse status: /api/status answered 500"
