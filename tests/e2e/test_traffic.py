"""Traffic between the gateway and its upstreams (issue 10, SPEC §3, §12.2,
§12.7): passive health checks, every target down, the circuit breaker,
retries on timeout, consistent hashing, and state that survives a reload.
Upstreams are real processes, killed, SIGSTOPped or told to fail."""
import http.client
import json
import os
import signal
import subprocess
import time

from conftest import BIN, wait_until


def conn(g):
    return http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)


def get(c, path="/", headers=None):
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    return r.status, r.getheader("X-Upstream"), body


def config(targets, extra="", name="main"):
    return """
listen:
  - address: 127.0.0.1:{port}
log: { access: "off" }
upstreams:
  %s:
    targets: [ %s ]
    timeouts: { connect: 1s, send: 2s, read: 2s }
%s
routes:
  - name: api
    match: { prefix: / }
    upstream: %s
""" % (name, ", ".join('"%s"' % t for t in targets), extra, name)


PASSIVE = """    retries: { attempts: 1, on: [connect_error, reset, timeout] }
    health_check: { passive: { failures: 1, within: 10s, eject_for: 60s } }
"""


def test_killed_target_stops_getting_traffic_without_client_errors(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    extra = PASSIVE.replace("eject_for: 60s", "eject_for: 3s")
    g = gatehouse(config([a.address, b.address], extra), workers=2)
    c = conn(g)
    seen = set()
    for _ in range(10):
        st, who, _ = get(c)
        assert st == 200
        seen.add(who)
    assert seen == {"a", "b"}
    a_port = a.port
    a.stop()   # killed mid-load: its connect fails, the retry goes to b
    statuses, after = [], []
    for _ in range(40):
        st, who, _ = get(c)
        statuses.append(st)
        after.append(who)
    assert statuses == [200] * 40          # zero client errors with one retry
    assert set(after) == {"b"}
    g.wait_stderr("target %s: down, ejected" % a.address)
    # once per change, not per request
    assert g.stderr().count("target %s: down" % a.address) == 1
    # restarted: back in rotation by itself once the ejection runs out
    a2 = upstreams("a", port=a_port)
    wait_until(lambda: get(c)[1] == "a", timeout=10, what="the restarted target to get traffic")
    g.wait_stderr("target %s: back in rotation" % a2.address)


def test_every_target_down_answers_503_at_once(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    g = gatehouse(config([a.address, b.address], PASSIVE), workers=1)
    a.stop()
    b.stop()
    c = conn(g)
    st, _, _ = get(c)                      # both tried, both fail: 502, both ejected
    assert st == 502
    g.wait_stderr("target %s: down" % a.address)
    g.wait_stderr("target %s: down" % b.address)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        st, _, body = get(c)
        times.append(time.perf_counter() - t0)
        assert st == 503
        assert json.loads(body)["code"] == "upstream_unavailable"
    assert min(times) < 0.010, times       # no connect attempted, no timeout waited


def test_hung_target_is_ejected_and_requests_stop_waiting(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    extra = """    retries: { attempts: 1, on: [connect_error, reset, timeout] }
    health_check: { passive: { failures: 2, within: 30s, eject_for: 60s } }
"""
    cfg = config([a.address, b.address], extra).replace("send: 2s, read: 2s", "send: 300ms, read: 300ms")
    g = gatehouse(cfg, workers=1)
    c = conn(g)
    assert get(c)[0] == 200
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(6):                 # the hung one costs a read timeout, the retry answers
            st, who, _ = get(c)
            assert (st, who) == (200, "b")
        g.wait_stderr("target %s: down" % a.address)
        for _ in range(10):
            t0 = time.perf_counter()
            st, who, _ = get(c)
            assert (st, who) == (200, "b")
            assert time.perf_counter() - t0 < 0.25   # nobody waits on the hung target any more
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)


def test_health_and_circuit_state_survive_a_reload(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    extra = """    retries: { attempts: 0 }
    health_check: { passive: { failures: 1, within: 10s, eject_for: 60s } }
"""
    cfg = config([a.address, b.address], extra)
    g = gatehouse(cfg, workers=2)
    a.stop()
    c = conn(g)
    wait_until(lambda: get(c)[0] == 502, what="a request to reach the dead target")
    g.wait_stderr("target %s: down" % a.address)
    # a reload that keeps the target (one more route)
    assert g.reload(cfg + "  - { name: other, match: { prefix: /other }, respond: { status: 204 } }\n")
    c = conn(g)
    for _ in range(20):                    # without the kept state, half would be 502
        assert get(c)[:2] == (200, "b")
    assert g.stderr().count("target %s: down" % a.address) == 1

    # the circuit too: opened on 500s, still open after a reload
    b.get_json("/__fail?status=500")
    extra2 = """    retries: { attempts: 0 }
    circuit_breaker: { failure_ratio: 0.5, min_requests: 3, window: 30s, open_for: 60s }
"""
    cfg2 = config([b.address], extra2, name="solo")
    assert g.reload(cfg2)
    c = conn(g)
    wait_until(lambda: get(c)[0] == 503, what="the circuit to open")
    g.wait_stderr("upstream solo: circuit open")
    b.get_json("/__fail?status=0")
    assert g.reload(cfg2 + "  - { name: other, match: { prefix: /other }, respond: { status: 204 } }\n")
    c = conn(g)
    st, _, body = get(c)
    assert st == 503 and json.loads(body)["code"] == "circuit_open"


def test_circuit_opens_on_500s_fails_fast_and_closes_after_open_for(gatehouse, upstreams):
    a = upstreams("a")
    extra = """    retries: { attempts: 0 }
    circuit_breaker: { failure_ratio: 0.5, min_requests: 4, window: 30s, open_for: 1s }
"""
    g = gatehouse(config([a.address], extra, name="flaky"), workers=2)
    a.get_json("/__fail?status=500")
    c = conn(g)
    statuses = [get(c)[0] for _ in range(4)]
    assert statuses == [500] * 4
    g.wait_stderr("upstream flaky: circuit open")
    before = a.stats()["requests"]
    for _ in range(10):
        t0 = time.perf_counter()
        st, _, body = get(c)
        assert st == 503 and json.loads(body)["code"] == "circuit_open"
        assert time.perf_counter() - t0 < 0.05
    assert a.stats()["requests"] == before + 1   # only the stats call itself
    a.get_json("/__fail?status=0")
    # after open_for a single probe goes through; a good one closes the circuit
    wait_until(lambda: get(c)[0] == 200, timeout=10, what="the circuit to close")
    g.wait_stderr("upstream flaky: circuit closed")
    assert [get(c)[0] for _ in range(10)] == [200] * 10


def test_consistent_hash_key_sticks_and_a_new_target_takes_about_1_over_n(gatehouse, upstreams):
    ups = [upstreams(n) for n in ("a", "b", "c", "d")]
    extra = "    balance: hash\n    hash_on: header:X-User\n"
    g = gatehouse(config([u.address for u in ups[:3]], extra), workers=2)
    c = conn(g)
    keys = ["user-%d" % i for i in range(300)]
    first = {}
    for k in keys:
        st, who, _ = get(c, headers={"X-User": k})
        assert st == 200
        first[k] = who
    for k in keys[:50]:                    # the same key, the same target, on every worker
        assert get(conn(g), headers={"X-User": k})[1] == first[k]
    assert len(set(first.values())) == 3
    assert g.reload(config([u.address for u in ups], extra))
    c = conn(g)
    moved = 0
    for k in keys:
        who = get(c, headers={"X-User": k})[1]
        if who != first[k]:
            moved += 1
            assert who == "d"              # keys move only to the new target
    assert 0.12 < moved / len(keys) < 0.40, moved   # ideal 1/4
    # no key: round robin over all of them
    assert len({get(c)[1] for _ in range(8)}) == 4


def test_routes_and_explain_show_balancer_health_and_circuit(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(config(["127.0.0.1:9001", "127.0.0.1:9002"], """    balance: hash
    hash_on: cookie:sid
    health_check: { passive: { failures: 3 }, active: { path: /ready } }
    circuit_breaker: { open_for: 5s }
""").replace("{port}", "18080"))
    want = ("hash on cookie:sid, 2 targets: 127.0.0.1:9001 127.0.0.1:9002; retries 1; "
            "passive checks: 3 failures in 10000ms eject 30000ms; active checks: GET /ready every 5000ms, "
            "timeout 1000ms, healthy after 2, unhealthy after 3, expect 200-399; "
            "circuit breaker: 0.5 of >= 20 in 10000ms, open 5000ms, max_pending 1024")
    out = subprocess.run([BIN, "routes", "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and ("upstream: " + want) in out.stdout, out.stdout + out.stderr
    out = subprocess.run([BIN, "explain", "-c", str(path), "GET", "/x"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and ("upstream:  main (%s)" % want) in out.stdout, out.stdout + out.stderr
