"""Admin API, the operations endpoints (SPEC §6, §9, §12.15, §12.16):
GET /api/upstreams (targets with health, ejection, in-flight, the circuit),
GET /api/versions (lifecycle and who still calls each version, counted per
route × version × consumer across workers and reloads), GET /api/config
(the running document with every secret masked)."""
import calendar
import datetime
import http.client
import json
import time

from conftest import free_port, wait_port, wait_until

ADMIN_TOKEN = "adm-literal-token-7Hq2"
ALICE_KEY = "alice-env-key-Zx81Qp"        # from ${ALICE_KEY}: masked by origin
BOB_KEY = "bob-literal-key-Lm42Rt"        # in api_keys: masked by key name
GREETING = "greeting-from-env-Ww93"       # a respond body from ${GREETING}


def day(offset):
    d = datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)
    return d.isoformat(), calendar.timegm(d.timetuple())


DEP, DEP_T = day(-30)
SUN, SUN_T = day(25)

CONFIG = """
listen:
  - address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
  token: %s
log: { access: "off" }
upstreams:
  main:
    targets: [ "{live}", "{dead}" ]
    timeouts: { connect: 1s, send: 2s, read: 2s }
    retries: { attempts: 1, on: [connect_error, reset, timeout] }
    health_check: { passive: { failures: 1, within: 10s, eject_for: 60s } }
    circuit_breaker: { failure_ratio: 0.9, min_requests: 1000, window: 30s, open_for: 60s }
  lossy:
    targets: [ "{dead2}" ]
    timeouts: { connect: 1s, send: 2s, read: 2s }
    retries: { attempts: 0 }
    health_check: { passive: { failures: 100, within: 60s, eject_for: 60s } }
  side:
    balance: least_conn
    targets: [ { address: "{live}", weight: 3 } ]
consumers:
  - name: alice
    api_keys: [ "${ALICE_KEY}" ]
  - name: bob
    api_keys: [ "%s" ]
routes:
  - name: api
    match: { prefix: /api }
    upstream: main
  - name: lossy
    match: { prefix: /lossy }
    upstream: lossy
  - name: hello
    match: { prefix: /hello }
    respond: { status: 200, body: "${GREETING}" }
  - name: orders
    match: { prefix: /orders }
    plugins: { key_auth: {} }
    versions:
      from: [header:Api-Version]
      default: "2"
      list:
        "1": { upstream: side, deprecated: %s, sunset: %s, docs: "https://example.com/migrate" }
        "2": { upstream: side }
        "3": { upstream: side, preview: true, preview_requires: { header: X-Beta } }
""" % (ADMIN_TOKEN, BOB_KEY, DEP, SUN)


def start(gatehouse, upstreams, extra=""):
    live = upstreams("live")
    admin = free_port()
    g = gatehouse(CONFIG + extra, subst={"admin": admin, "live": live.address,
                                         "dead": "127.0.0.1:%d" % free_port(),
                                         "dead2": "127.0.0.1:%d" % free_port()},
                  env={"ALICE_KEY": ALICE_KEY, "GREETING": GREETING})
    wait_port(admin, proc=g.proc)
    g.admin_port = admin
    return g, live


def call(port, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def admin(g, path, token=ADMIN_TOKEN):
    status, body = call(g.admin_port, "GET", path, {"Authorization": "Bearer " + token} if token else {})
    return status, body


def admin_json(g, path):
    status, body = admin(g, path)
    assert status == 200, body
    return json.loads(body)


def rfc3339_epoch(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


# ------------------------------------------------------------- upstreams

def test_upstreams_show_a_dead_target_ejected_and_the_breaker(gatehouse, upstreams):
    g, live = start(gatehouse, upstreams)
    dead = g.subst["dead"]
    before = admin_json(g, "/api/upstreams")["upstreams"]
    assert [u["name"] for u in before] == ["main", "lossy", "side"]
    main = before[0]
    assert main["balancer"] == "round_robin" and main["circuit"] == "closed" and main["pending"] == 0
    assert [t["address"] for t in main["targets"]] == [live.address, dead]
    for t in main["targets"]:   # nothing known yet: every target takes traffic
        assert t == {"address": t["address"], "weight": 1, "up": True, "healthy": True, "ejected": False,
                     "ejected_until": None, "in_flight": 0, "failures": 0}
    side = before[2]
    assert side["balancer"] == "least_conn" and side["circuit"] is None
    assert side["targets"][0]["weight"] == 3

    # round robin reaches the dead target soon; its connect error ejects it
    # (the retry answers the client from the live one)
    t0 = int(time.time())
    for _ in range(4):
        assert call(g.port, "GET", "/api/x")[0] == 200

    def dead_state():
        for t in admin_json(g, "/api/upstreams")["upstreams"][0]["targets"]:
            if t["address"] == dead and t["ejected"]:
                return t
    t = wait_until(dead_state, what="the dead target to show as ejected")
    # the ejection restarts the failure window
    assert t["up"] is False and t["healthy"] is True and t["failures"] == 0 and t["in_flight"] == 0
    until = rfc3339_epoch(t["ejected_until"])
    assert t0 + 59 <= until <= int(time.time()) + 61
    ok = [x for x in admin_json(g, "/api/upstreams")["upstreams"][0]["targets"] if x["address"] == live.address][0]
    assert ok["up"] is True and ok["ejected"] is False

    # failures below the passive limit are counted, the target stays up
    for _ in range(2):
        assert call(g.port, "GET", "/lossy")[0] == 502
    lossy = admin_json(g, "/api/upstreams")["upstreams"][1]
    assert lossy["circuit"] is None and lossy["pending"] == 0
    t = lossy["targets"][0]
    assert (t["failures"], t["up"], t["ejected"], t["ejected_until"]) == (2, True, False, None)


# -------------------------------------------------------------- versions

def orders(g, version, key=None):
    h = {"Api-Version": version}
    if key:
        h["X-API-Key"] = key
    return call(g.port, "GET", "/orders/1", h)[0]


def test_versions_list_lifecycle_and_who_still_calls_the_deprecated_one(gatehouse, upstreams):
    g, _ = start(gatehouse, upstreams)
    t0 = int(time.time())
    for _ in range(3):
        assert orders(g, "1", ALICE_KEY) == 200
    for _ in range(2):
        assert orders(g, "1", BOB_KEY) == 200
    assert orders(g, "1") == 401          # no key: still a caller of v1, "(anonymous)"
    assert orders(g, "2", ALICE_KEY) == 200
    assert call(g.port, "GET", "/hello")[0] == 200   # not versioned: not counted
    t1 = int(time.time())

    # both workers count on their own; the reader sums them (the done hook
    # runs right after the response is sent: wait for the last one to land)
    def body():
        b = admin_json(g, "/api/versions")
        v = b["routes"][0]["versions"]
        return b if v[0]["requests_24h"] == 6 and v[1]["requests_24h"] == 1 else None
    b = wait_until(body, what="the counts of all seven requests")
    assert [r["route"] for r in b["routes"]] == ["orders"]
    r = b["routes"][0]
    assert r["default"] == "2"
    v1, v2, v3 = r["versions"]
    assert (v1["name"], v1["state"], v1["docs"]) == ("1", "deprecated", "https://example.com/migrate")
    assert rfc3339_epoch(v1["deprecated"]) == DEP_T and rfc3339_epoch(v1["sunset"]) == SUN_T
    assert v1["days_to_sunset"] == 25
    assert [(c["consumer"], c["requests_24h"]) for c in v1["callers"]] == [
        ("alice", 3), ("bob", 2), ("(anonymous)", 1)]
    for c in v1["callers"]:
        assert t0 <= rfc3339_epoch(c["last_seen"]) <= t1 + 1
    assert (v2["name"], v2["state"], v2["deprecated"], v2["sunset"], v2["days_to_sunset"], v2["docs"]) == (
        "2", "active", None, None, None, None)
    assert [(c["consumer"], c["requests_24h"]) for c in v2["callers"]] == [("alice", 1)]
    assert (v3["name"], v3["state"], v3["requests_24h"], v3["callers"]) == ("3", "preview", 0, [])

    # a reload that keeps the route's and the versions' names keeps the counts
    assert g.reload(CONFIG + "  - { name: extra, match: { prefix: /extra }, respond: { status: 204 } }\n")
    assert orders(g, "1", BOB_KEY) == 200

    def after():
        v = admin_json(g, "/api/versions")["routes"][0]["versions"][0]
        return v if v["requests_24h"] == 7 else None
    v1 = wait_until(after, what="the count after the reload")
    assert [(c["consumer"], c["requests_24h"]) for c in v1["callers"]] == [
        ("alice", 3), ("bob", 3), ("(anonymous)", 1)]


def test_versions_needs_the_token(gatehouse, upstreams):
    g, _ = start(gatehouse, upstreams)
    for path in ("/api/versions", "/api/upstreams", "/api/config"):
        assert admin(g, path, token=None)[0] == 401
        assert admin(g, path, token="wrong")[0] == 401
    status, body = call(g.admin_port, "POST", "/api/config", {"Authorization": "Bearer " + ADMIN_TOKEN})
    assert status == 405 and json.loads(body)["code"] == "method_not_allowed"


# ---------------------------------------------------------------- config

def test_config_is_the_running_document_with_every_secret_masked(gatehouse, upstreams):
    g, live = start(gatehouse, upstreams)
    status, raw = admin(g, "/api/config")
    assert status == 200
    for secret in (ADMIN_TOKEN, ALICE_KEY, BOB_KEY, GREETING):
        assert secret.encode() not in raw, secret
    doc = json.loads(raw)
    assert doc["listen"] == [{"address": "127.0.0.1:%d" % g.port}]
    assert doc["admin"] == {"address": "127.0.0.1:%d" % g.admin_port, "token": "***"}
    assert doc["consumers"] == [{"name": "alice", "api_keys": "***"}, {"name": "bob", "api_keys": "***"}]
    assert [r["name"] for r in doc["routes"]] == ["api", "lossy", "hello", "orders"]
    assert doc["routes"][2]["respond"] == {"status": 200, "body": "***"}    # came from ${GREETING}
    assert doc["upstreams"]["main"]["targets"][0] == live.address
    assert doc["upstreams"]["main"]["health_check"]["passive"]["failures"] == 1
    assert doc["upstreams"]["main"]["circuit_breaker"]["failure_ratio"] == 0.9
    assert doc["routes"][3]["versions"]["list"]["3"]["preview"] is True
    assert doc["log"] == {"access": "off"}

    # after a reload it shows the new document
    assert g.reload(CONFIG.replace("/hello", "/hi"))
    doc = admin_json(g, "/api/config")
    assert doc["routes"][2]["match"] == {"prefix": "/hi"}
