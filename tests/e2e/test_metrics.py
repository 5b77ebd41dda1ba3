"""Metrics and statistics (SPEC §9, §12.14): GET /metrics on the admin
listener in the Prometheus text format, parsed strictly; GET /api/stats
per the issue 11 contract; exact counts after a known sequence of
requests; counts kept across a reload that keeps a route's name; the admin
listener's own requests never counted; and Debian's prometheus server
scraping the admin port for real."""
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

import pytest

from conftest import free_port, wait_port, wait_until

KEY = "alice-key-123456"

CONFIG = """
listen:
  - address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin_port}
consumers:
  - { name: alice, api_keys: [%s] }
upstreams:
  live:
    targets: [ "127.0.0.1:{up_port}" ]
  dead:
    targets: [ "127.0.0.1:{dead_port}" ]
    timeouts: { connect: 1s, send: 1s, read: 1s }
routes:
  - name: users
    match: { prefix: /users }
    upstream: live
  - name: private
    match: { prefix: /private }
    respond: { status: 200, body: "secret" }
    plugins: { key_auth: {} }
  - name: limited
    match: { prefix: /limited }
    respond: { status: 200, body: "ok" }
    plugins: { rate_limit: { limit: 1, window: 1h, key: route } }
  - name: broken
    match: { prefix: /broken }
    upstream: dead
{extra}
""" % KEY

EXTRA_ROUTE = """  - name: added
    match: { prefix: /added }
    respond: { status: 200, body: "new" }
"""

BUCKETS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]


# ------------------------------------------------------------- helpers --

def call(port, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_exposition(text):
    """Strict parse of the text format: returns {family: {"type", "help",
    "samples": [(name, labels, value)]}}; fails on anything malformed."""
    assert text.endswith("\n")
    fams, helped = {}, set()
    for line in text.splitlines():
        assert line, "empty line in the exposition"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helped, "HELP twice for " + name
            helped.add(name)
            fams.setdefault(name, {"samples": []})["help"] = line.split(" ", 3)[3]
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert typ in ("counter", "gauge", "histogram"), line
            assert name in helped, "TYPE before HELP for " + name
            fams[name]["type"] = typ
            continue
        assert not line.startswith("#"), line
        m = SAMPLE.match(line)
        assert m, "malformed sample: " + line
        name, _, lbl, value = m.groups()
        labels = {}
        if lbl:
            pos = 0
            while pos < len(lbl):
                lm = LABEL.match(lbl, pos)
                assert lm, "malformed labels: " + line
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in fams and fams[name[: -len(suffix)]].get("type") == "histogram":
                fam = name[: -len(suffix)]
        assert fam in fams and "type" in fams[fam], "sample without HELP/TYPE: " + line
        fams[fam]["samples"].append((name, labels, float(value)))
    for fam, f in fams.items():
        if f["type"] == "histogram":
            check_histogram(fam, f["samples"])
    return fams


def check_histogram(fam, samples):
    series = {}
    for name, labels, v in samples:
        key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        series.setdefault(key, {"buckets": []})
        if name.endswith("_bucket"):
            series[key]["buckets"].append((labels["le"], v))
        else:
            series[key][name[len(fam) + 1:]] = v
    for key, s in series.items():
        les = [le for le, _ in s["buckets"]]
        assert les == ["%g" % (b / 1000) for b in BUCKETS_MS] + ["+Inf"], (fam, key, les)
        counts = [v for _, v in s["buckets"]]
        assert counts == sorted(counts), "buckets not cumulative: %s %s" % (fam, key)
        assert s["count"] == counts[-1], "_count differs from +Inf: %s %s" % (fam, key)
        assert s["sum"] >= 0 and (s["count"] > 0 or s["sum"] == 0)
        # the sum cannot exceed count x the upper bound of the highest non-empty bucket
        bounds = [b / 1000 for b in BUCKETS_MS]
        prev = 0
        for i, c in enumerate(counts[:-1]):
            prev = c
            if c == counts[-1]:
                assert s["sum"] <= counts[-1] * bounds[i] + 1e-6, (fam, key, s)
                break


def scrape(g):
    st, h, body = call(g.admin_port, "GET", "/metrics")
    assert st == 200
    assert h["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_exposition(body.decode())


def value(fams, family, name=None, **labels):
    for n, l, v in fams[family]["samples"]:
        if n == (name or family) and all(l.get(k) == x for k, x in labels.items()):
            return v
    return None


def requests_by(fams):
    return {(l["route"], l["method"], l["code"]): v for _, l, v in fams["gatehouse_requests_total"]["samples"]}


def stats(g):
    st, h, body = call(g.admin_port, "GET", "/api/stats")
    assert st == 200 and h["content-type"] == "application/json"
    return json.loads(body)


def route_order(g):
    st, _, body = call(g.admin_port, "GET", "/api/routes")
    return [r["name"] for r in json.loads(body)["routes"]]


def by_name(s):
    return {r["route"]: r for r in s["routes"]}


def start(gatehouse, upstreams, extra=""):
    up = upstreams("live")
    admin_port = free_port()
    subst = {"admin_port": admin_port, "up_port": up.port, "dead_port": free_port(), "extra": extra}
    g = gatehouse(CONFIG, subst=subst)
    wait_port(admin_port, proc=g.proc)
    g.admin_port = admin_port
    g.subst_all = subst
    return g, up


EXPECTED = {
    ("users", "GET", "200"): 3, ("users", "POST", "200"): 1, ("", "GET", "404"): 1,
    ("private", "GET", "401"): 1, ("private", "GET", "200"): 1,
    ("limited", "GET", "200"): 1, ("limited", "GET", "429"): 1, ("broken", "GET", "502"): 1,
}


def known_sequence(g):
    """Returns the request id of the 502."""
    for i in range(3):
        assert g.get("/users/%d" % i)[0] == 200
    assert g.request("POST", "/users", body=b"{}")[0] == 200
    assert g.get("/nope")[0] == 404
    assert g.get("/private")[0] == 401
    assert g.get("/private", headers={"X-API-Key": KEY})[0] == 200
    assert g.get("/limited")[0] == 200
    st, _, body = g.get("/limited")
    assert st == 429 and json.loads(body)["code"] == "rate_limited"
    st, h, body = g.get("/broken/7")
    assert st == 502, body
    return h["x-request-id"]


def settled(g, total):
    """Each exchange is counted when it ends, just after its last byte left:
    wait for the counts rather than assume them."""
    return wait_until(lambda: sum(requests_by(scrape(g)).values()) == total and scrape(g),
                      what="%d requests counted" % total)


# --------------------------------------------------------------- tests --

def test_exact_counts_histograms_and_families(gatehouse, upstreams):
    g, _ = start(gatehouse, upstreams)
    known_sequence(g)
    fams = settled(g, 10)
    assert requests_by(fams) == EXPECTED
    for fam in ("gatehouse_requests_total", "gatehouse_request_duration_seconds",
                "gatehouse_upstream_duration_seconds", "gatehouse_upstream_target_up", "gatehouse_connections",
                "gatehouse_rate_limited_total", "gatehouse_cache_total", "gatehouse_config_reloads_total",
                "gatehouse_circuit_state", "gatehouse_plugin_duration_seconds", "gatehouse_config_revision",
                "gatehouse_upstream_ejections_total", "gatehouse_redis_errors_total", "gatehouse_info"):
        assert fam in fams, fam
    assert fams["gatehouse_request_duration_seconds"]["type"] == "histogram"
    dur = "gatehouse_request_duration_seconds"
    for route, n in (("users", 4), ("private", 2), ("limited", 2), ("broken", 1), ("", 1)):
        assert value(fams, dur, dur + "_count", route=route) == n, route
        assert value(fams, dur, dur + "_bucket", route=route, le="+Inf") == n
    assert value(fams, "gatehouse_rate_limited_total", route="limited") == 1
    assert value(fams, "gatehouse_rate_limited_total", route="users") == 0
    ud = "gatehouse_upstream_duration_seconds"
    assert value(fams, ud, ud + "_count", upstream="live") == 4
    assert value(fams, ud, ud + "_count", upstream="dead") == 0   # it never answered
    pd = "gatehouse_plugin_duration_seconds"
    assert value(fams, pd, pd + "_count", plugin="key_auth") == 2
    assert value(fams, pd, pd + "_count", plugin="rate_limit") == 2
    assert value(fams, "gatehouse_upstream_target_up", upstream="live",
                 target="127.0.0.1:%d" % g.subst_all["up_port"]) == 1
    assert value(fams, "gatehouse_config_revision") == 1
    assert value(fams, "gatehouse_config_reloads_total", result="ok") == 0
    assert value(fams, "gatehouse_connections", state="open") >= 1   # this scrape's own
    assert value(fams, "gatehouse_redis_errors_total") == 0
    # the admin listener's own requests are never counted
    for _ in range(5):
        call(g.admin_port, "GET", "/healthz")
    assert requests_by(scrape(g)) == EXPECTED


def test_api_stats_contract_and_recent_errors(gatehouse, upstreams):
    g, _ = start(gatehouse, upstreams)
    rid = known_sequence(g)
    settled(g, 10)
    s = stats(g)
    assert set(s) == {"time", "uptime_seconds", "latency_buckets_ms", "totals", "routes", "connections",
                      "config", "recent_errors"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["time"])
    assert s["latency_buckets_ms"] == BUCKETS_MS
    assert s["totals"] == {"requests": 10, "client_errors": 3, "errors": 1, "rate_limited": 1}
    assert [r["route"] for r in s["routes"]] == route_order(g) + [""]   # precedence order
    assert sorted(route_order(g)) == ["broken", "limited", "private", "users"]
    by = {r["route"]: r for r in s["routes"]}
    assert by["users"]["requests"] == 4 and by["users"]["client_errors"] == 0
    assert by["limited"] == dict(by["limited"], requests=2, client_errors=1, errors=0, rate_limited=1)
    assert by["broken"]["errors"] == 1 and by[""]["client_errors"] == 1
    for r in s["routes"]:
        assert set(r) == {"route", "requests", "client_errors", "errors", "rate_limited", "latency",
                          "latency_sum_ms"}
        assert len(r["latency"]) == len(BUCKETS_MS) + 1 and sum(r["latency"]) == r["requests"]
        assert r["latency_sum_ms"] >= 0
    assert s["connections"]["open"] >= 1
    assert s["config"]["generation"] == 1 and s["config"]["last_reload"] is None
    assert s["config"]["source"].endswith("gatehouse.yaml")
    errs = s["recent_errors"]
    # newest first: the 502, then the 429, then the 401 (a 404 is not an error of the gateway's)
    assert [(e["status"], e["code"], e["route"]) for e in errs] == [
        (502, "upstream_error", "broken"), (429, "rate_limited", "limited"), (401, "unauthorized", "private")]
    assert errs[0] == dict(errs[0], method="GET", path="/broken/7", request_id=rid)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", errs[0]["time"])
    # under the token rule like every /api path; /metrics is not
    st, _, _ = call(g.admin_port, "POST", "/api/stats")
    assert st == 405


def test_counts_survive_a_reload_that_keeps_the_name(gatehouse, upstreams):
    g, _ = start(gatehouse, upstreams)
    known_sequence(g)
    settled(g, 10)
    g.subst["extra"] = EXTRA_ROUTE
    g.reload(CONFIG)
    assert g.get("/users/9")[0] == 200
    assert g.get("/added")[0] == 200
    fams = settled(g, 12)
    got = requests_by(fams)
    assert got[("users", "GET", "200")] == 4 and got[("added", "GET", "200")] == 1
    assert value(fams, "gatehouse_config_revision") == 2
    assert value(fams, "gatehouse_config_reloads_total", result="ok") == 1
    s = stats(g)
    assert [r["route"] for r in s["routes"]] == route_order(g) + [""]
    assert "added" in route_order(g) and by_name(s)["added"]["requests"] == 1
    last = s["config"]["last_reload"]
    assert last["result"] == "ok" and last["errors"] == [] and s["config"]["generation"] == 2
    # a refused reload: counted, its errors kept, the counts untouched
    with open(g.path, "a") as f:
        f.write("  - name: bad\n    match: { prefix: /bad }\n    upstream: nowhere\n")
    g.reload()
    fams = scrape(g)
    assert value(fams, "gatehouse_config_reloads_total", result="error") == 1
    st, _, body = call(g.admin_port, "GET", "/api/status")
    last = json.loads(body)["config"]["last_reload"]   # as in /api/stats
    assert last["result"] == "error" and last["errors"] and "nowhere" in " ".join(last["errors"])
    assert requests_by(fams)[("users", "GET", "200")] == 4


def test_no_admin_no_recording(gatehouse):
    """Without admin: nobody can read the metrics, and nothing is recorded
    (the 'metrics off' of the benchmark); the public port has no /metrics."""
    g = gatehouse("""
listen:
  - address: 127.0.0.1:{port}
routes:
  - name: hello
    match: { prefix: /hello }
    respond: { status: 200, body: "hi" }
""")
    assert g.get("/hello")[0] == 200
    assert g.get("/metrics")[0] == 404


@pytest.mark.skipif(not shutil.which("prometheus"), reason="Debian's prometheus is not installed")
def test_prometheus_scrapes_the_admin_port(gatehouse, upstreams):
    g, _ = start(gatehouse, upstreams)
    known_sequence(g)
    settled(g, 10)
    tmp = tempfile.mkdtemp(prefix="gh-prom-")
    port = free_port()
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: gatehouse\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % g.admin_port)
    log = open(os.path.join(tmp, "prometheus.log"), "wb")
    p = subprocess.Popen(["prometheus", "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                          "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                          "--web.listen-address=127.0.0.1:%d" % port], stdout=log, stderr=log)
    try:
        wait_port(port, timeout=30, proc=p)

        def api(path):
            try:
                st, _, body = call(port, "GET", path)
            except OSError:
                return None
            return json.loads(body) if st == 200 else None

        def target_up():
            t = api("/api/v1/targets")
            active = t and t["data"]["activeTargets"]
            return active and active[0]["health"] == "up" and active[0]

        target = wait_until(target_up, timeout=30, what="prometheus reports the target up")
        assert target["scrapeUrl"] == "http://127.0.0.1:%d/metrics" % g.admin_port
        q = urllib.parse.quote('gatehouse_requests_total{route="users",method="GET",code="200"}')

        def query():
            r = api("/api/v1/query?query=" + q)
            return r and r["data"]["result"] and r["data"]["result"]

        result = wait_until(query, timeout=30, what="prometheus has the sample")
        assert result[0]["value"][1] == "3"
    finally:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_redis_errors_and_a_cluster_limit_step_are_counted(gatehouse):
    """Redis down: connection failures count in gatehouse_redis_errors_total;
    the cluster rate_limit step (asynchronous when Redis is asked) is timed
    once per request whatever Redis did; on_error: allow lets it through."""
    admin_port = free_port()
    g = gatehouse("""
listen:
  - address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin_port}
redis: { address: "127.0.0.1:{dead_port}", timeout: 200ms, on_error: allow }
routes:
  - name: api
    match: { prefix: /api }
    respond: { status: 200, body: ok }
    plugins: { rate_limit: { limit: 5, window: 1h, key: route, scope: cluster } }
""", subst={"admin_port": admin_port, "dead_port": free_port()})
    wait_port(admin_port, proc=g.proc)
    g.admin_port = admin_port
    assert g.get("/api")[0] == 200
    assert g.get("/api")[0] == 200
    fams = wait_until(lambda: (lambda f: value(f, "gatehouse_redis_errors_total") >= 1 and
                               sum(requests_by(f).values()) == 2 and f)(scrape(g)),
                      what="redis errors and 2 requests counted")
    pd = "gatehouse_plugin_duration_seconds"
    assert value(fams, pd, pd + "_count", plugin="rate_limit") == 2
    assert requests_by(fams) == {("api", "GET", "200"): 2}
