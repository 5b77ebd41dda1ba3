"""Active health checks (issue 10, SPEC §3 health_check.active): the main
thread probes every target of an upstream with `GET path`; `unhealthy_after`
failures in a row take a target out, `healthy_after` successes bring it back,
`expect` says which statuses pass, TLS targets are checked over TLS, and the
verdict survives a reload that keeps the target. Upstreams are real
processes, told to fail (/__fail), killed and restarted on the same port.
Every wait is on a condition (a log line, what an upstream recorded)."""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import conftest
from conftest import free_port, wait_until
import certs
from test_tls import TlsUpstream


def conn(g):
    return http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)


def get(c, path="/"):
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    return r.status, r.getheader("X-Upstream"), body


def config(targets, active, extra="", name="main", tls=""):
    return """
listen:
  - address: 127.0.0.1:{port}
log: { access: "off" }
upstreams:
  %s:
    targets: [ %s ]
    timeouts: { connect: 1s, send: 2s, read: 2s }
    retries: { attempts: 0 }
    health_check: { active: { %s } }
%s%s
routes:
  - name: api
    match: { prefix: / }
    upstream: %s
""" % (name, ", ".join('"%s"' % t for t in targets), active, tls, extra, name)


FAST = "path: /health, interval: 100ms, timeout: 1s, healthy_after: 2, unhealthy_after: 3"


def health_checks(up, path="/health"):
    return [r for r in up.requests() if r["target"] == path]


def down_line(target, n, why):
    return "upstream main target %s: down after %d failed health checks (last: %s)" % (target, n, why)


def test_failing_health_path_takes_target_out_and_back(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    g = gatehouse(config([a.address, b.address], FAST), workers=2)
    # the check itself: GET path, Host the target, a connection per check
    wait_until(lambda: health_checks(a), what="a first health check")
    h = {k.lower(): v for k, v in health_checks(a)[0]["headers"]}
    assert health_checks(a)[0]["method"] == "GET"
    assert h["host"] == a.address and h["connection"] == "close"
    c = conn(g)
    assert {get(c)[1] for _ in range(6)} == {"a", "b"}    # targets start healthy
    a.get_json("/__fail?status=503")
    g.wait_stderr(down_line(a.address, 3, "status 503"))
    for _ in range(20):                                   # out: no request reaches it
        assert get(c)[:2] == (200, "b")
    a.get_json("/__fail?status=0")
    g.wait_stderr("upstream main target %s: healthy again after 2 passed health checks" % a.address)
    wait_until(lambda: get(c)[1] == "a", what="traffic back to a")
    err = g.stderr()
    assert err.count("target %s: down" % a.address) == 1      # once per change, not per check
    assert err.count("target %s: healthy again" % a.address) == 1
    assert "target %s: down" % b.address not in err


def test_killed_target_is_taken_out_before_any_client_request_fails(gatehouse, upstreams):
    """No retries: with passive checks alone a request must fail to find a dead
    target; active checks find it first."""
    a, b = upstreams("a"), upstreams("b")
    passive = gatehouse(config([a.address, b.address], FAST).replace(
        "health_check: { active: { %s } }" % FAST, "health_check: { passive: { failures: 1 } }"), workers=1)
    g = gatehouse(config([a.address, b.address], FAST.replace("unhealthy_after: 3", "unhealthy_after: 1")),
                  workers=1)
    a_port = a.port
    a.stop()
    # a probe in flight when the upstream died sees a reset; later ones are refused
    g.wait_stderr(lambda err: ("target %s: down after 1 failed health checks (last: connect" % a.address) in err
                  or ("target %s: down after 1 failed health checks (last: connection error" % a.address) in err,
                  what="a taken out by active checks")
    c = conn(g)
    for _ in range(20):
        assert get(c)[:2] == (200, "b")
    # passive checks alone: the dead target costs a client its request first
    pc = conn(passive)
    assert 502 in [get(pc)[0] for _ in range(4)]
    passive.wait_stderr("target %s: down, ejected" % a.address)
    # restarted on the same port: back after healthy_after checks
    upstreams("a", port=a_port)
    g.wait_stderr("upstream main target %s: healthy again after 2 passed health checks" % a.address)
    wait_until(lambda: get(c)[1] == "a", what="traffic back to the restarted target")


def test_every_target_down_answers_503_without_trying(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config([a.address], FAST.replace("/health", "/status/500")), workers=1)
    g.wait_stderr(down_line(a.address, 3, "status 500"))
    st, _, body = get(conn(g), "/work")
    assert st == 503 and json.loads(body)["code"] == "upstream_unavailable"
    assert not [r for r in a.requests() if r["target"] == "/work"]


def test_expect_ranges(gatehouse, upstreams):
    a, b, c = upstreams("a"), upstreams("b"), upstreams("c")
    text = """
listen:
  - address: 127.0.0.1:{port}
log: { access: "off" }
upstreams:
  ok503:       # 503 listed: passes
    targets: [ "%s" ]
    health_check: { active: { path: /status/503, interval: 100ms, unhealthy_after: 1, expect: [200-299, 503] } }
  only2xx:     # 302 not listed: fails
    targets: [ "%s" ]
    health_check: { active: { path: /status/302, interval: 100ms, unhealthy_after: 1, expect: [200-299] } }
  default:     # the default is 200-399: 302 passes
    targets: [ "%s" ]
    health_check: { active: { path: /status/302, interval: 100ms, unhealthy_after: 1 } }
routes:
  - { name: a, match: { prefix: /a }, upstream: ok503 }
  - { name: b, match: { prefix: /b }, upstream: only2xx }
  - { name: c, match: { prefix: /c }, upstream: default }
""" % (a.address, b.address, c.address)
    g = gatehouse(text, workers=1)
    g.wait_stderr("upstream only2xx target %s: down after 1 failed health checks (last: status 302)" % b.address)
    # the others have been judged several times by now, and passed every time
    wait_until(lambda: len(health_checks(a, "/status/503")) >= 4 and len(health_checks(c, "/status/302")) >= 4,
               what="several checks of a and c")
    err = g.stderr()
    assert "target %s: down" % a.address not in err and "target %s: down" % c.address not in err
    k = conn(g)
    assert get(k, "/a")[0] == 200 and get(k, "/c")[0] == 200
    st, _, body = get(k, "/b")
    assert st == 503 and json.loads(body)["code"] == "upstream_unavailable"


def test_state_and_counters_survive_a_reload_and_removed_targets_stop(gatehouse, upstreams):
    a, b, d = upstreams("a"), upstreams("b"), upstreams("d")
    slow_up = FAST.replace("healthy_after: 2", "healthy_after: 1000")   # once down, stays down
    g = gatehouse(config([a.address, b.address], slow_up), workers=2)
    a.get_json("/__fail?status=503")
    g.wait_stderr(down_line(a.address, 3, "status 503"))
    a.get_json("/__fail?status=0")   # now it passes, but needs 1000 passes in a row
    # reload: a target added, a kept; a reset state would send a request to a at once
    assert g.reload(config([a.address, b.address, d.address], slow_up))
    c = conn(g)
    seen = [get(c) for _ in range(30)]
    assert all(st == 200 for st, _, _ in seen)
    assert {who for _, who, _ in seen} == {"b", "d"}
    assert "target %s: healthy again" % a.address not in g.stderr()
    # removed from the configuration: its checks stop at once
    assert g.reload(config([b.address, d.address], slow_up))
    before = len(health_checks(a))
    n_b = len(health_checks(b))
    wait_until(lambda: len(health_checks(b)) >= n_b + 5, what="more checks of b")
    assert len(health_checks(a)) <= before + 1   # at most one that was already on its way


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="gh-pki-")
    try:
        yield certs.make_pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_tls_targets_are_checked_over_tls(gatehouse, pki):
    good = TlsUpstream(*pki.up_ca1)
    bad = TlsUpstream(*pki.up_ca2)   # signed by a CA the upstream does not trust
    try:
        tls = "    tls: { verify: true, ca: %s }\n" % pki.ca1
        g = gatehouse(config([good.address, bad.address], FAST.replace("unhealthy_after: 3", "unhealthy_after: 1"),
                             tls=tls), workers=1)
        g.wait_stderr(lambda err: ("target %s: down after 1 failed health checks (last: TLS handshake failed"
                                   % bad.address) in err, what="the untrusted target taken out")
        # the trusted one is checked over TLS, handshake and all, and passes
        wait_until(lambda: good.stats(pki.ca1)["connections"] >= 4, what="TLS checks of the good target")
        assert "target %s: down" % good.address not in g.stderr()
        c = conn(g)
        for _ in range(6):
            st, _, body = get(c)
            assert st == 200 and json.loads(body)["server"] == "tls-upstream"
    finally:
        good.stop()
        bad.stop()


# ------------------------------------------------------------ resolve_every ---
# The gateway runs in a private mount namespace whose /etc/hosts is a file the
# test rewrites (glibc reads it at every lookup) and whose resolv.conf points
# at a closed local port, so a name missing from it fails at once.

SVC = "ghtest-svc"
HERE = os.path.dirname(os.path.abspath(__file__))


def _can_unshare():
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount --bind /dev/null /dev/null"], capture_output=True)
    return r.returncode == 0


@pytest.fixture
def private_hosts(tmp_path, monkeypatch):
    if not _can_unshare():
        pytest.skip("needs unshare -m and mount (root or CAP_SYS_ADMIN) for a private /etc/hosts")
    hosts = tmp_path / "hosts"
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
    wrapper = tmp_path / "gatehouse-ns"
    wrapper.write_text("#!/bin/sh\nexec unshare -m --propagation private sh -c "
                       "'mount --bind \"$0\" /etc/hosts && mount --bind %s /etc/resolv.conf && exec \"$@\"' "
                       "%s %s \"$@\"\n" % (resolv, hosts, conftest.BIN))
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "BIN", str(wrapper))

    def write(ip):
        # rewritten in place: the bind mount follows the inode
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n" + ("%s %s\n" % (ip, SVC) if ip else ""))
    return write


def upstream_on(host, port, name, made):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "upstream.py"), str(port), name, host],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    made.append(p)
    assert p.stdout.readline().strip() == b"READY"
    return p


def test_resolve_every_follows_a_name_and_keeps_the_last_address(gatehouse, private_hosts):
    port = free_port()
    made = []
    try:
        upstream_on("127.0.0.1", port, "a", made)
        upstream_on("127.0.0.2", port, "b", made)
        private_hosts("127.0.0.1")
        text = config(["%s:%d" % (SVC, port)], FAST).replace(
            "    health_check: { active: { %s } }\n" % FAST, "    resolve_every: 100ms\n")
        g = gatehouse(text, workers=2, args=["--log-level", "debug"])
        c = conn(g)
        assert {get(c)[1] for _ in range(4)} == {"a"}
        # the name moves: new connections follow it
        private_hosts("127.0.0.2")
        g.wait_stderr("target %s:%d: %s now resolves to 127.0.0.2 (was 127.0.0.1)" % (SVC, port, SVC))
        for _ in range(10):
            assert get(c)[:2] == (200, "b")
        # the name stops resolving: its last address stays, said once
        private_hosts(None)
        g.wait_stderr(lambda err: err.count("lookup of %s failed" % SVC) >= 3, what="three failed lookups")
        assert g.stderr().count("cannot resolve %s" % SVC) == 1
        assert "keeping its last address 127.0.0.2" in g.stderr()
        for _ in range(10):
            assert get(c)[:2] == (200, "b")
        private_hosts("127.0.0.2")
        g.wait_stderr("target %s:%d: %s resolves again" % (SVC, port, SVC))
        assert get(c)[:2] == (200, "b")
    finally:
        for p in made:
            p.kill()
            p.wait()


def test_routes_shows_active_checks_and_resolve_every(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(config(["localhost:9001"], "path: /ready, interval: 2s, expect: [200, 204-299]",
                           extra="    resolve_every: 30s\n").replace("{port}", "18080"))
    out = subprocess.run([conftest.BIN, "routes", "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert ("active checks: GET /ready every 2000ms, timeout 1000ms, healthy after 2, unhealthy after 3, "
            "expect 200,204-299; names re-resolved every 30000ms") in out.stdout, out.stdout
