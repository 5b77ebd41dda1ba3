"""aggregate (SPEC §7.1, §12.20): backends called in parallel as sub-requests
over the pooled upstream connections; path templates filled from the match
and the query; identity headers and X-Request-Id forwarded; an optional
backend slower than the timeout gives null and Gatehouse-Partial within the
timeout; a failing required backend gives 502 naming it; `select`; a client
leaving mid-aggregate leaves nothing behind (run under ASan)."""
import json
import socket
import time

from conftest import wait_until

CONFIG = """
listen: [ { address: "127.0.0.1:{port}", http2: true } ]
log: { access: stdout, level: warn }
consumers:
  - { name: alice, groups: [admins, beta], api_keys: [alice-key] }
upstreams:
  users: { targets: [ "{users}" ], retries: { attempts: 0 } }
  orders: { targets: [ "{orders}" ], retries: { attempts: 0 } }
  recs: { targets: [ "{recs}" ], retries: { attempts: 0 } }
  capped: { targets: [ "{users}" ], retries: { attempts: 0 }, circuit_breaker: { max_pending: 1 } }
routes:
  - name: home
    match: { path: "/home/{user}", methods: [GET] }
    plugins: { key_auth: {} }
    aggregate:
      timeout: 600ms
      backends:
        - { key: profile, upstream: users, path: "/users/{user}" }
        - { key: orders, upstream: orders, path: "/orders?user={user}&limit={limit}", optional: true }
        - { key: recs, upstream: recs, path: "/recs/{user}", select: [server, path] }
  - name: slow
    match: { path: "/slowhome/{user}" }
    aggregate:
      timeout: 500ms
      backends:
        - { key: profile, upstream: users, path: "/users/{user}" }
        - { key: orders, upstream: orders, path: "/slow?delay=3", optional: true }
        - { key: recs, upstream: recs, path: "/recs/{user}" }
  - name: broken
    match: { path: /broken }
    aggregate:
      backends:
        - { key: profile, upstream: users, path: "/users/1" }
        - { key: recs, upstream: recs, path: "/status/500" }
  - name: late
    match: { path: /late }
    aggregate:
      timeout: 400ms
      backends:
        - { key: profile, upstream: users, path: "/slow?delay=3" }
  - name: tiny
    match: { path: /tiny }
    aggregate:
      max_body: 10
      backends:
        - { key: profile, upstream: capped, path: "/users/1" }
  - name: card
    match: { path: /card }
    respond: { status: 200, headers: { Content-Type: application/json }, body: '{"title": "hi", "n": 1}' }
  - name: mixed
    match: { path: "/mixed/{user}" }
    aggregate:
      backends:
        - { key: card, path: /card, select: [title] }
        - { key: profile, upstream: users, path: "/users/{user}" }
  - name: loop
    match: { path: /loop }
    aggregate:
      backends:
        - { key: again, path: /loop }
  - name: text
    match: { path: /text }
    aggregate:
      backends:
        - { key: sse, upstream: users, path: "/big?n=20" }
"""


def start(gatehouse, upstreams):
    ups = {n: upstreams(n) for n in ("users", "orders", "recs")}
    g = gatehouse(CONFIG, workers=1, subst={n: u.address for n, u in ups.items()})
    return g, ups


def test_three_backends_merged_with_templates_identity_and_select(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    st, h, body = g.get("/home/7?limit=5", headers={"X-API-Key": "alice-key", "X-Request-Id": "agg-req-1",
                                                   "X-Consumer": "mallory"})
    assert st == 200, body
    assert h["content-type"] == "application/json"
    assert "gatehouse-partial" not in h
    doc = json.loads(body)
    assert list(doc) == ["profile", "orders", "recs"]
    assert doc["profile"]["path"] == "/users/7"
    assert doc["orders"]["target"] == "/orders?user=7&limit=5"
    assert doc["recs"] == {"server": "recs", "path": "/recs/7"}   # select keeps only those
    for name in ("users", "orders", "recs"):
        (rq,) = ups[name].requests()
        hl = {k.lower(): v for k, v in rq["headers"]}
        assert rq["method"] == "GET"
        assert hl["x-consumer"] == "alice"                       # identity from key_auth, not the client's
        assert hl["x-consumer-groups"] == "admins,beta"
        assert hl["x-request-id"] == "agg-req-1"
        assert "accept-encoding" not in hl


def test_query_values_are_encoded_and_cannot_climb(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    st, _, body = g.get("/home/7?limit=a%20b%26c%3D1", headers={"X-API-Key": "alice-key"})
    assert st == 200, body
    assert json.loads(body)["orders"]["target"] == "/orders?user=7&limit=a%20b%26c%3D1"


def test_unauthenticated_aggregate_calls_no_backend(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    st, _, _ = g.get("/home/7")
    assert st == 401
    assert all(u.stats()["requests"] == 1 for u in ups.values())   # only the /__stats call itself


def test_optional_backend_slower_than_timeout_gives_null_and_partial(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    t0 = time.monotonic()
    st, h, body = g.get("/slowhome/3")
    took = time.monotonic() - t0
    assert st == 200, body
    assert h["gatehouse-partial"] == "orders"
    doc = json.loads(body)
    assert doc["orders"] is None and doc["profile"]["path"] == "/users/3" and doc["recs"]["path"] == "/recs/3"
    assert 0.45 <= took < 0.5 + 0.4, took


def test_required_backend_failing_is_502_naming_it(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    st, h, body = g.get("/broken")
    assert st == 502
    p = json.loads(body)
    assert p["code"] == "upstream_error"
    assert "'recs'" in p["detail"] and "500" in p["detail"], p


def test_required_backend_late_is_502_within_timeout(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    t0 = time.monotonic()
    st, _, body = g.get("/late")
    took = time.monotonic() - t0
    assert st == 502
    p = json.loads(body)
    assert p["code"] == "upstream_error" and "'profile'" in p["detail"] and "in time" in p["detail"], p
    assert took < 0.4 + 0.4, took


def test_backend_body_over_max_body_and_non_json_are_failures(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    for _ in range(4):   # and again: nothing of a refused call stays held (max_pending: 1)
        st, _, body = g.get("/tiny")
        assert st == 502 and "max_body" in json.loads(body)["detail"], body
    st, _, body = g.get("/text")
    assert st == 502 and "not JSON" in json.loads(body)["detail"]


def test_backend_without_upstream_is_routed_by_the_gateway(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    st, h, body = g.get("/mixed/4")
    assert st == 200, body
    assert json.loads(body) == {"card": {"title": "hi"}, "profile": json.loads(body)["profile"]}
    assert json.loads(body)["profile"]["path"] == "/users/4"


def test_an_aggregate_that_calls_itself_ends(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    st, _, body = g.get("/loop")
    assert st == 502
    assert "'again'" in json.loads(body)["detail"]


def test_backend_connections_are_pooled(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    for u in ups.values():
        u.reset()
    for i in range(10):
        st, _, body = g.get("/home/%d" % i, headers={"X-API-Key": "alice-key"})
        assert st == 200, body
    for u in ups.values():
        s = u.stats()
        assert s["requests"] == 10 + 1
        # the /__reset's and this /__stats's own connections, and one kept alive by the gateway
        assert s["connections"] == 3, s


def test_client_leaving_mid_aggregate_cancels_cleanly(gatehouse, upstreams):
    g, ups = start(gatehouse, upstreams)
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", g.port))
        s.sendall(b"GET /slowhome/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: any(r["target"].startswith("/slow") for r in ups["orders"].requests()),
                   what="the slow backend called")
        s.close()
        ups["orders"].reset()
    # the gateway still answers, and exits clean (ASan: no leak, no use after free)
    st, _, _ = g.get("/home/1", headers={"X-API-Key": "alice-key"})
    assert st == 200
    g.stop()
    g.check_clean_exit()


def test_explain_records_backend_calls_and_sends_nothing(gatehouse, upstreams, tmp_path):
    import subprocess
    from conftest import BIN
    ups = {n: upstreams(n) for n in ("users", "orders", "recs")}
    cfg = CONFIG
    for n, u in ups.items():
        cfg = cfg.replace("{%s}" % n, u.address)
    p = tmp_path / "g.yaml"
    p.write_text(cfg.replace("{port}", "1"))
    out = subprocess.run([BIN, "explain", "-c", str(p), "GET", "/slowhome/9?x=1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "aggregate of 3 backends" in out.stdout
    assert "calls:     profile: GET users /users/9 (timeout 500ms)" in out.stdout
    assert "orders: GET orders /slow?delay=3 (timeout 500ms, optional)" in out.stdout
    assert all(u.stats()["requests"] == 1 for u in ups.values())
    out = subprocess.run([BIN, "routes", "-c", str(p)], capture_output=True, text=True)
    assert "aggregate of 3 backends (timeout 500ms, max_body 1048576): profile (users /users/{user}), " \
           "orders (orders /slow?delay=3, optional), recs (recs /recs/{user})" in out.stdout, out.stdout


def test_over_http2_with_a_stream_reset_mid_aggregate(gatehouse, upstreams):
    from test_http2 import H2
    g, ups = start(gatehouse, upstreams)
    c = H2(g.port)
    try:
        sid = c.request("/home/5", headers=[("x-api-key", "alice-key")])
        c.pump([sid])
        assert c.streams[sid]["status"] == 200
        assert json.loads(bytes(c.streams[sid]["body"]))["profile"]["path"] == "/users/5"
        sid = c.request("/slowhome/6")
        wait_until(lambda: any(r["target"].startswith("/slow") for r in ups["orders"].requests()),
                   what="the slow backend called")
        c.conn.reset_stream(sid)   # the client gives up on this one: its calls are cancelled
        c.flush()
        sid = c.request("/home/7", headers=[("x-api-key", "alice-key")])
        c.pump([sid])
        assert c.streams[sid]["status"] == 200
    finally:
        c.close()
    g.stop()
    g.check_clean_exit()
