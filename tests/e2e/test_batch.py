"""batch (SPEC §7.2, §12.20): each item runs through the router and the
whole plugin chain as a sub-request (authentication and rate limits apply
per item, with the outer request's credentials unless the item brings its
own), in parallel within `concurrency`, answered in request order; an
item's body is the parsed JSON when the answer is JSON, else a string; more
than max_requests is 413; a malformed item is 400 naming its index."""
import json
import time

CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: stdout, level: warn }
consumers:
  - { name: alice, groups: [staff], api_keys: [alice-key] }
  - { name: bob, api_keys: [bob-key-12345] }
upstreams:
  main: { targets: [ "{up}" ], retries: { attempts: 0 } }
routes:
  - name: users
    match: { prefix: /users }
    upstream: main
    plugins: { key_auth: {} }
  - name: limited
    match: { prefix: /limited }
    upstream: main
    plugins: { key_auth: {}, rate_limit: { limit: 1, window: 1h } }
  - name: slow
    match: { prefix: /slow }
    upstream: main
  - name: zipped
    match: { prefix: /zipped }
    upstream: main
    plugins: { compress: { min_size: 16 } }
  - name: hello
    match: { path: /hello }
    respond: { status: 200, headers: { Content-Type: text/plain }, body: "hi there" }
  - name: batch
    match: { path: /batch, methods: [POST] }
    batch: { max_requests: 20 }
  - name: batch2
    match: { path: /batch2, methods: [POST] }
    batch: { max_requests: 10, concurrency: 2 }
"""


def start(gatehouse, upstreams):
    up = upstreams("main")
    return gatehouse(CONFIG, workers=1, subst={"up": up.address}), up


def post(g, doc, headers=None):
    body = doc if isinstance(doc, (bytes, str)) else json.dumps(doc)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    st, hs, data = g.request("POST", "/batch", body=body, headers=h)
    return st, hs, json.loads(data)


def test_twenty_mixed_items_answer_in_order_with_per_item_policy(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    reqs = []
    for i in range(20):
        reqs.append({"id": "u%d" % i, "method": "GET", "path": "/users/%d" % i})
    reqs[3] = {"id": "bad-key", "path": "/users/3", "headers": {"X-API-Key": "nope-nope-nope"}}
    reqs[5] = {"id": "lim1", "path": "/limited/a"}
    reqs[9] = {"id": "lim2", "path": "/limited/b"}
    reqs[12] = {"id": "bob", "path": "/users/12", "headers": {"X-API-Key": "bob-key-12345"}}
    reqs[14] = {"id": "text", "path": "/hello"}
    reqs[16] = {"id": "post", "method": "POST", "path": "/users/new", "body": {"name": "zed"}}
    reqs[18] = {"id": 18, "path": "/nowhere"}
    st, h, doc = post(g, {"requests": reqs}, {"X-API-Key": "alice-key", "X-Request-Id": "batch-1"})
    assert st == 200, doc
    assert h["content-type"] == "application/json"
    rs = doc["responses"]
    assert [r["id"] for r in rs] == [r["id"] for r in reqs]
    want = {3: 401, 9: 429, 18: 404}
    assert [r["status"] for r in rs] == [want.get(i, 200) for i in range(20)]
    assert rs[3]["body"]["code"] == "unauthorized"
    assert rs[9]["body"]["code"] == "rate_limited" and "retry-after" in rs[9]["headers"]
    assert rs[0]["body"]["path"] == "/users/0"                         # JSON answers are parsed
    assert rs[0]["body"]["headers"]["x-consumer"] == "alice"          # the outer credentials
    assert rs[12]["body"]["headers"]["x-consumer"] == "bob"           # the item's own win
    assert rs[14]["body"] == "hi there"                                # others are strings
    assert rs[16]["body"]["method"] == "POST" and rs[16]["body"]["body_len"] == len('{"name":"zed"}')
    assert rs[16]["body"]["headers"]["content-type"] == "application/json"
    assert rs[0]["body"]["headers"]["x-request-id"] == "batch-1"
    assert rs[18]["body"]["code"] == "no_route"
    assert up.stats()["requests"] == 20 - 4 + 1   # 401, 429, 404 and /hello never reached it (+ this call)


def test_over_max_requests_is_413(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    st, _, doc = post(g, {"requests": [{"path": "/hello"}] * 21})
    assert st == 413 and doc["code"] == "payload_too_large"
    assert "at most 20" in doc["detail"]
    st, _, doc = post(g, {"requests": [{"path": "/hello"}] * 20})
    assert st == 200 and len(doc["responses"]) == 20


def test_malformed_batch_is_400_naming_the_index(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    st, _, doc = post(g, {"requests": [{"path": "/hello"}, {"path": "/hello"}, {"path": 5}]})
    assert st == 400 and doc["code"] == "bad_request"
    assert doc["detail"] == "request 2: path must be a string starting with '/', without spaces or control characters"
    st, _, doc = post(g, {"requests": [{"path": "/hello", "headers": {"X-A": 1}}]})
    assert st == 400 and doc["detail"].startswith("request 0: header 'X-A'")
    st, _, doc = post(g, {"requests": [{"path": "/hello"}, {"path": "/hello", "headers": {"X-A": "a\u0001b"}}]})
    assert st == 400 and doc["detail"].startswith("request 1: header 'X-A'")
    st, _, doc = post(g, {"requests": [{"path": "/hel lo"}]})
    assert st == 400 and doc["detail"] == "request 0: path must be a string starting with '/', without spaces or control characters"
    st, _, doc = post(g, {"requests": ["nope"]})
    assert st == 400 and doc["detail"] == "request 0: expected an object"
    st, _, doc = post(g, b'{"requests": [')
    assert st == 400 and "not JSON" in doc["detail"]
    st, _, doc = post(g, {"items": []})
    assert st == 400 and "requests" in doc["detail"]
    assert up.stats()["requests"] == 1                                   # nothing ran


def test_a_batch_item_cannot_be_a_batch(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    st, _, doc = post(g, {"requests": [{"method": "POST", "path": "/batch", "body": {"requests": []}}]})
    assert st == 200
    assert doc["responses"][0]["status"] == 400
    assert "cannot be a batch" in doc["responses"][0]["body"]["detail"]


def test_concurrency_bounds_items_in_flight(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    body = json.dumps({"requests": [{"path": "/slow?delay=0.3"}] * 4})
    t0 = time.monotonic()
    st, _, data = g.request("POST", "/batch2", body=body)
    took = time.monotonic() - t0
    assert st == 200
    assert [r["status"] for r in json.loads(data)["responses"]] == [200] * 4
    assert took >= 0.6, took          # two rounds of two
    t0 = time.monotonic()
    st, _, data = g.request("POST", "/batch", body=body)
    assert st == 200 and time.monotonic() - t0 < 0.6   # all four at once


def test_items_are_never_compressed_even_when_the_client_accepts_it(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    st, _, doc = post(g, {"requests": [{"path": "/zipped/a"}, {"path": "/zipped/b", "headers": {"Accept-Encoding": "gzip"}}]},
                      {"Accept-Encoding": "gzip, br"})
    assert st == 200
    for r in doc["responses"]:
        assert r["status"] == 200 and "content-encoding" not in r["headers"], r
        assert r["body"]["server"] == "main"
    st, h, _ = g.get("/zipped/c", headers={"Accept-Encoding": "gzip"})
    assert h.get("content-encoding") == "gzip"   # the route does compress for clients
