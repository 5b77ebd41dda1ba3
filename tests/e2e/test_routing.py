"""Routing, precedence and forwarding through a real gatehouse and real
upstreams (SPEC §4, §8, §12.3, §12.4, §12.10).

Upstreams are tests/e2e/upstream.py processes named a, b, c...; each answers
with JSON naming itself in "server", so a test sees which route (and which
upstream) a request reached, and Upstream.requests() shows exactly what
crossed the gateway.
"""
import json
import re
import socket

import pytest

from conftest import Gatehouse, Upstream, raw_exchange

TRACE_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


# ---------------------------------------------------------------- helpers

def upstreams_yaml(ups):
    """`upstreams:` section for {name: Upstream}."""
    lines = ["upstreams:"]
    for name, u in ups.items():
        lines.append("  %s: { targets: [ { address: %s } ] }" % (name, u.address))
    return "\n".join(lines) + "\n"


def config(routes, ups=None, listen_extra=""):
    text = "listen:\n  - address: 127.0.0.1:{port}\n%sworkers: 1\n" % listen_extra
    if ups:
        text += upstreams_yaml(ups)
    return text + "routes:\n" + routes


def body_json(data):
    return json.loads(data.decode())


def served_by(g, path, headers=None, method="GET"):
    """(status, name of the upstream that answered or None, parsed body)."""
    status, hdrs, data = g.request(method, path, headers=headers)
    try:
        doc = body_json(data)
    except ValueError:
        return status, None, data
    return status, doc.get("server") if isinstance(doc, dict) else None, doc


def forwarded_headers(rec):
    """Recorded request headers as a dict with lower-case names; repeated
    names are joined in order with ', '."""
    out = {}
    for k, v in rec["headers"]:
        k = k.lower()
        out[k] = out[k] + ", " + v if k in out else v
    return out


def header_names(rec):
    return [k.lower() for k, _ in rec["headers"]]


def raw_get(port, target, host="gw.test", extra=b""):
    """Sends one request exactly as given (no client-side normalization),
    Connection: close so the answer ends at once. Returns (status, headers, body)."""
    req = b"GET " + target + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" + extra + \
        b"Connection: close\r\n\r\n"
    resp = raw_exchange(port, req, timeout=2.0)
    assert resp, "no answer to %r" % target
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def assert_problem(status, hdrs, data, want_status, want_code):
    assert status == want_status, (status, data)
    assert hdrs.get("content-type", "").split(";")[0].strip() == "application/problem+json", hdrs
    doc = body_json(data)
    assert doc["status"] == want_status
    assert doc["code"] == want_code
    assert isinstance(doc["type"], str) and doc["type"]
    assert isinstance(doc["title"], str) and doc["title"]
    assert isinstance(doc["request_id"], str) and doc["request_id"]
    if "x-request-id" in hdrs:
        assert hdrs["x-request-id"] == doc["request_id"]
    return doc


# ---------------------------------------------------------------- host precedence

def test_exact_host_beats_wildcard_beats_no_host(gatehouse, upstreams):
    a, b, c = upstreams("a"), upstreams("b"), upstreams("c")
    # written in the "wrong" order: no host first, exact host last
    g = gatehouse(config("""
  - name: any-host
    match: { prefix: / }
    upstream: c
  - name: wildcard
    match: { host: "*.example.com", prefix: / }
    upstream: b
  - name: exact
    match: { host: api.example.com, prefix: / }
    upstream: a
""", {"a": a, "b": b, "c": c}), workers=1)
    assert served_by(g, "/x", {"Host": "api.example.com"})[:2] == (200, "a")
    assert served_by(g, "/x", {"Host": "www.example.com"})[:2] == (200, "b")
    assert served_by(g, "/x", {"Host": "example.org"})[:2] == (200, "c")
    assert served_by(g, "/x", {"Host": "127.0.0.1"})[:2] == (200, "c")
    # host names are case-insensitive
    assert served_by(g, "/x", {"Host": "API.Example.COM"})[:2] == (200, "a")


def test_host_precedence_comes_before_path_kind(gatehouse, upstreams):
    a, c = upstreams("a"), upstreams("c")
    g = gatehouse(config("""
  - name: health-any-host
    match: { path: /health }
    upstream: c
  - name: api-host
    match: { host: api.example.com, prefix: / }
    upstream: a
""", {"a": a, "c": c}), workers=1)
    # a host match with a mere prefix beats an exact path without host
    assert served_by(g, "/health", {"Host": "api.example.com"})[:2] == (200, "a")
    assert served_by(g, "/health", {"Host": "other.example.com"})[:2] == (200, "c")


def test_host_with_port_is_matched_without_the_port(gatehouse, upstreams):
    a, c = upstreams("a"), upstreams("c")
    g = gatehouse(config("""
  - name: fallback
    match: { prefix: / }
    upstream: c
  - name: wild
    match: { host: "*.example.com", prefix: / }
    upstream: c
  - name: exact
    match: { host: api.example.com, prefix: / }
    upstream: a
""", {"a": a, "c": c}), workers=1)
    st, who, doc = served_by(g, "/p", {"Host": "api.example.com:8080"})
    assert (st, who) == (200, "a")
    # the Host header itself is forwarded as the client sent it
    assert doc["headers"]["host"] == "api.example.com:8080"
    assert served_by(g, "/p", {"Host": "api.example.com:443"})[:2] == (200, "a")
    assert served_by(g, "/p", {"Host": "api.example.org:8080"})[:2] == (200, "c")


def test_wildcard_matches_one_or_more_labels_but_not_the_apex(gatehouse, upstreams):
    b = upstreams("b")
    g = gatehouse(config("""
  - name: wild
    match: { host: "*.example.com", prefix: / }
    upstream: b
""", {"b": b}), workers=1)
    assert served_by(g, "/", {"Host": "a.example.com"})[:2] == (200, "b")
    assert served_by(g, "/", {"Host": "a.b.example.com"})[:2] == (200, "b")
    assert served_by(g, "/", {"Host": "a.example.com:81"})[:2] == (200, "b")
    for host in ("example.com", "badexample.com", "example.com.evil.org", "example.org"):
        status, hdrs, data = g.get("/", headers={"Host": host})
        assert_problem(status, hdrs, data, 404, "no_route")
    assert len(b.requests()) == 3


def test_longer_wildcard_suffix_wins(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    g = gatehouse(config("""
  - name: short
    match: { host: "*.example.com", prefix: / }
    upstream: b
  - name: long
    match: { host: "*.api.example.com", prefix: / }
    upstream: a
""", {"a": a, "b": b}), workers=1)
    assert served_by(g, "/", {"Host": "v1.api.example.com"})[:2] == (200, "a")
    assert served_by(g, "/", {"Host": "x.v1.api.example.com"})[:2] == (200, "a")
    # api.example.com itself is not under *.api.example.com, but is under *.example.com
    assert served_by(g, "/", {"Host": "api.example.com"})[:2] == (200, "b")
    assert served_by(g, "/", {"Host": "www.example.com"})[:2] == (200, "b")


# ---------------------------------------------------------------- path precedence

def test_exact_beats_template_beats_longest_prefix_beats_regex(gatehouse, upstreams):
    ups = {n: upstreams(n) for n in ("exact", "tpl", "pfx", "longpfx", "regex")}
    # file order is the reverse of precedence
    g = gatehouse(config("""
  - name: regex
    match: { regex: "^/p/.*$" }
    upstream: regex
  - name: prefix
    match: { prefix: /p }
    upstream: pfx
  - name: longer-prefix
    match: { prefix: /p/long }
    upstream: longpfx
  - name: template
    match: { path: "/p/{id}" }
    upstream: tpl
  - name: exact
    match: { path: /p/exact }
    upstream: exact
  - name: regex-only
    match: { regex: "^/q/[0-9]+$" }
    upstream: regex
""", ups), workers=1)
    assert served_by(g, "/p/exact")[:2] == (200, "exact")
    assert served_by(g, "/p/7")[:2] == (200, "tpl")
    assert served_by(g, "/p/long")[:2] == (200, "tpl")          # template (one segment) beats prefix
    assert served_by(g, "/p/long/x")[:2] == (200, "longpfx")    # longest prefix
    assert served_by(g, "/p/7/8")[:2] == (200, "pfx")           # prefix beats regex
    assert served_by(g, "/p")[:2] == (200, "pfx")
    assert served_by(g, "/q/42")[:2] == (200, "regex")
    status, hdrs, data = g.get("/q/x")
    assert_problem(status, hdrs, data, 404, "no_route")


def test_template_with_more_literal_segments_wins(gatehouse, upstreams):
    a, b, c = upstreams("a"), upstreams("b"), upstreams("c")
    g = gatehouse(config("""
  - name: rest
    match: { path: "/t/{rest*}" }
    upstream: c
  - name: one-literal
    match: { path: "/t/{x}/{y}" }
    upstream: b
  - name: two-literals
    match: { path: "/t/fixed/{y}" }
    upstream: a
""", {"a": a, "b": b, "c": c}), workers=1)
    assert served_by(g, "/t/fixed/1")[:2] == (200, "a")
    assert served_by(g, "/t/other/1")[:2] == (200, "b")
    assert served_by(g, "/t/fixed/1/2")[:2] == (200, "c")
    assert served_by(g, "/t/one")[:2] == (200, "c")
    # {x} is one non-empty segment
    assert served_by(g, "/t/fixed/")[:2] == (200, "c")


def test_prefix_is_segment_aware(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: users
    match: { prefix: /users }
    upstream: a
""", {"a": a}), workers=1)
    for path in ("/users", "/users/", "/users/7", "/users/7/orders?x=1"):
        st, who, doc = served_by(g, path)
        assert (st, who) == (200, "a"), path
        assert doc["target"] == path
    for path in ("/usersx", "/users-admin", "/user", "/"):
        status, hdrs, data = g.get(path)
        assert_problem(status, hdrs, data, 404, "no_route")
    assert [r["target"] for r in a.requests()] == ["/users", "/users/", "/users/7", "/users/7/orders?x=1"]


def test_methods_headers_query_conditions_beat_none(gatehouse, upstreams):
    plain, cond = upstreams("plain"), upstreams("cond")
    # the routes with conditions come after the plain ones in the file
    g = gatehouse(config("""
  - name: m-plain
    match: { path: /m }
    upstream: plain
  - name: h-plain
    match: { prefix: /h }
    upstream: plain
  - name: q-plain
    match: { path: "/q/{id}" }
    upstream: plain
  - name: m-cond
    match: { path: /m, methods: [POST, PUT] }
    upstream: cond
  - name: h-cond
    match: { prefix: /h, headers: { X-Tenant: acme } }
    upstream: cond
  - name: q-cond
    match: { path: "/q/{id}", query: { beta: "1" } }
    upstream: cond
""", {"plain": plain, "cond": cond}), workers=1)
    assert served_by(g, "/m", method="POST")[:2] == (200, "cond")
    assert served_by(g, "/m", method="PUT")[:2] == (200, "cond")
    assert served_by(g, "/m", method="GET")[:2] == (200, "plain")
    assert served_by(g, "/h/1", {"X-Tenant": "acme"})[:2] == (200, "cond")
    assert served_by(g, "/h/1", {"x-tenant": "acme"})[:2] == (200, "cond")   # names are case-insensitive
    assert served_by(g, "/h/1", {"X-Tenant": "other"})[:2] == (200, "plain")
    assert served_by(g, "/h/1")[:2] == (200, "plain")
    assert served_by(g, "/q/9?beta=1")[:2] == (200, "cond")
    assert served_by(g, "/q/9?x=2&beta=1")[:2] == (200, "cond")
    assert served_by(g, "/q/9?beta=2")[:2] == (200, "plain")
    assert served_by(g, "/q/9")[:2] == (200, "plain")


# ---------------------------------------------------------------- 404 / 405

def test_no_route_is_404_problem_json(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: only
    match: { host: api.example.com, path: /only }
    upstream: a
""", {"a": a}), workers=1)
    for path, host in (("/nothing/here", "api.example.com"), ("/only", "other.example.com")):
        status, hdrs, data = g.get(path, headers={"Host": host})
        doc = assert_problem(status, hdrs, data, 404, "no_route")
        assert doc["title"] == "Not Found"
        assert hdrs.get("x-request-id") == doc["request_id"]
    assert a.requests() == []


def test_405_lists_allowed_methods(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: items
    match: { path: /items, methods: [GET, POST] }
    upstream: a
  - name: items-put
    match: { path: /items, methods: [PUT], headers: { X-Admin: "1" } }
    upstream: a
""", {"a": a}), workers=1)
    status, hdrs, data = g.request("DELETE", "/items")
    assert_problem(status, hdrs, data, 405, "method_not_allowed")
    allow = {m.strip() for m in hdrs["allow"].split(",")}
    assert {"GET", "POST"} <= allow, allow
    assert "DELETE" not in allow
    status, hdrs, data = g.request("PATCH", "/items")
    assert status == 405 and "allow" in hdrs
    assert a.requests() == []
    assert served_by(g, "/items", method="POST")[:2] == (200, "a")


def test_full_match_elsewhere_wins_over_405(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    g = gatehouse(config("""
  - name: post-only
    match: { path: /w/submit, methods: [POST] }
    upstream: a
  - name: catch-all
    match: { prefix: /w }
    upstream: b
""", {"a": a, "b": b}), workers=1)
    assert served_by(g, "/w/submit", method="POST")[:2] == (200, "a")
    assert served_by(g, "/w/submit", method="GET")[:2] == (200, "b")
    assert served_by(g, "/w/submit", method="DELETE")[:2] == (200, "b")


def test_full_match_on_a_host_less_route_wins_over_405_on_a_host_route(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    g = gatehouse(config("""
  - name: host-post
    match: { host: api.example.com, path: /x, methods: [POST] }
    upstream: a
  - name: any
    match: { path: /x }
    upstream: b
""", {"a": a, "b": b}), workers=1)
    assert served_by(g, "/x", {"Host": "api.example.com"}, method="POST")[:2] == (200, "a")
    assert served_by(g, "/x", {"Host": "api.example.com"}, method="GET")[:2] == (200, "b")


# ---------------------------------------------------------------- path normalization

def test_path_normalization_forwards_the_normalized_path(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    cases = [
        (b"/a/./b/../c", "/a/c"),
        (b"//a//b", "/a/b"),
        (b"/a///b/", "/a/b/"),
        (b"/%41bc/%7e%2d", "/Abc/~-"),
        (b"/x/%2e%2e/y", "/y"),                     # an encoded dot-segment is a dot-segment
        (b"/a/b/..", "/a/"),
        (b"/a/b?q=%2F..%2F", "/a/b?q=%2F..%2F"),    # the query is not a path
    ]
    for sent, want in cases:
        status, hdrs, body = raw_get(g.port, sent)
        assert status == 200, (sent, status, body)
        assert body_json(body)["target"] == want, sent
    assert [r["target"] for r in a.requests()] == [w for _, w in cases]


def test_normalized_path_is_what_is_matched(gatehouse, upstreams):
    a, b = upstreams("a"), upstreams("b")
    g = gatehouse(config("""
  - name: public
    match: { prefix: /public }
    upstream: a
  - name: admin
    match: { prefix: /admin }
    upstream: b
""", {"a": a, "b": b}), workers=1)
    status, _, body = raw_get(g.port, b"/public/../admin/x")
    assert status == 200 and body_json(body)["server"] == "b"
    assert body_json(body)["target"] == "/admin/x"
    status, _, body = raw_get(g.port, b"/%61dmin")        # %61 = 'a'
    assert status == 200 and body_json(body)["server"] == "b"
    assert a.requests() == []


REFUSED = [
    b"/a%2Fb", b"/a%2fb", b"/a%5Cb", b"/a%00b", b"/a\\b",
    b"/..;x/a", b"/a/..;x/b", b"/a/.;x/b",
    b"/%c0%ae%c0%ae/a", b"/a/%c0%ae/b", b"/a/%ff",
    b"/../a", b"/a/../../b", b"/%2e%2e/a", b"/a/%2E%2E/%2e%2e/b",
]


@pytest.fixture(scope="module")
def strict_gateway():
    a = Upstream("a")
    g = Gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    yield g, a
    try:
        g.check_clean_exit()
    finally:
        a.stop()


@pytest.mark.parametrize("target", REFUSED, ids=[t.decode("latin-1") for t in REFUSED])
def test_refused_path_is_400_and_never_forwarded(strict_gateway, target):
    g, a = strict_gateway
    a.reset()
    status, hdrs, body = raw_get(g.port, target)
    assert_problem(status, hdrs, body, 400, "bad_request")
    assert a.requests() == []


def test_path_strict_false_allows_encoded_slash_but_refuses_climbing(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}, listen_extra="    path_strict: false\n"), workers=1)
    status, _, body = raw_get(g.port, b"/files/a%2Fb")
    assert status == 200, body
    # kept encoded: %2F is not a separator
    assert body_json(body)["target"] == "/files/a%2Fb"
    status, _, body = raw_get(g.port, b"/files/a%5Cb")
    assert status == 200 and body_json(body)["target"] == "/files/a%5Cb"
    for climb in (b"/../etc/passwd", b"/a/../../b", b"/%2e%2e/x"):
        status, hdrs, body = raw_get(g.port, climb)
        assert_problem(status, hdrs, body, 400, "bad_request")
    assert [r["target"] for r in a.requests()] == ["/files/a%2Fb", "/files/a%5Cb"]


# ---------------------------------------------------------------- rewrite

def test_rewrite_strip_prefix_and_prefix(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: strip
    match: { prefix: /strip }
    upstream: a
    rewrite: { strip_prefix: true }
  - name: strip-and-prefix
    match: { prefix: /users }
    upstream: a
    rewrite: { strip_prefix: true, prefix: /internal/users }
  - name: prefix-only
    match: { prefix: /v1 }
    upstream: a
    rewrite: { prefix: /api }
""", {"a": a}), workers=1)
    cases = [
        ("/strip/7", "/7"), ("/strip", "/"), ("/strip/a/b?x=1", "/a/b?x=1"),
        ("/users/7", "/internal/users/7"), ("/users", "/internal/users"), ("/users/", "/internal/users/"),
        ("/v1/things", "/api/v1/things"),
    ]
    for path, want in cases:
        st, who, doc = served_by(g, path)
        assert (st, who) == (200, "a"), path
        assert doc["target"] == want, path
    assert [r["target"] for r in a.requests()] == [w for _, w in cases]


def test_rewrite_path_template(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: user
    match: { path: "/users/{id}" }
    upstream: a
    rewrite: { path: "/v2/accounts/{id}/profile" }
  - name: files
    match: { path: "/files/{bucket}/{rest*}" }
    upstream: a
    rewrite: { path: "/store/{bucket}/objects/{rest*}" }
""", {"a": a}), workers=1)
    assert served_by(g, "/users/42?full=1")[2]["target"] == "/v2/accounts/42/profile?full=1"
    assert served_by(g, "/files/b1/x/y/z.txt")[2]["target"] == "/store/b1/objects/x/y/z.txt"
    assert [r["target"] for r in a.requests()] == ["/v2/accounts/42/profile?full=1",
                                                     "/store/b1/objects/x/y/z.txt"]


def test_regex_named_groups_fill_rewrite_template(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: legacy
    match: { regex: "^/u/(?<id>[0-9]+)/(?<part>[a-z]+)$" }
    upstream: a
    rewrite: { path: "/users/{id}/{part}" }
""", {"a": a}), workers=1)
    st, who, doc = served_by(g, "/u/123/orders?x=y")
    assert (st, who) == (200, "a")
    assert doc["target"] == "/users/123/orders?x=y"
    # the regex sees the normalized path
    status, _, body = raw_get(g.port, b"/u/./7//items")
    assert status == 200 and body_json(body)["target"] == "/users/7/items"
    status, hdrs, data = g.get("/u/abc/orders")
    assert_problem(status, hdrs, data, 404, "no_route")
    assert [r["target"] for r in a.requests()] == ["/users/123/orders?x=y", "/users/7/items"]


# ---------------------------------------------------------------- header operations

def test_request_headers_set_and_remove_reach_the_upstream(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: api
    match: { prefix: /api }
    upstream: a
    request_headers: { set: { X-Env: prod, X-Tenant: fixed }, remove: [Cookie, X-Debug] }
""", {"a": a}), workers=1)
    st, who, doc = served_by(g, "/api/x", {"Cookie": "session=s3cret", "X-Debug": "1",
                                           "X-Tenant": "client-chosen", "X-Keep": "yes"})
    assert (st, who) == (200, "a")
    rec = a.requests()[0]
    fh = forwarded_headers(rec)
    assert fh["x-env"] == "prod"
    assert fh["x-tenant"] == "fixed"          # set replaces the client's value
    assert header_names(rec).count("x-tenant") == 1
    assert "cookie" not in fh and "x-debug" not in fh
    assert fh["x-keep"] == "yes"


def test_response_headers_set_and_remove_reach_the_client(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: api
    match: { prefix: /api }
    upstream: a
    response_headers: { set: { Cache-Control: no-store, X-Served-By: gatehouse }, remove: [X-Upstream] }
  - name: plain
    match: { prefix: /plain }
    upstream: a
""", {"a": a}), workers=1)
    status, hdrs, data = g.get("/api/x")
    assert status == 200 and body_json(data)["server"] == "a"
    assert hdrs["cache-control"] == "no-store"
    assert hdrs["x-served-by"] == "gatehouse"
    assert "x-upstream" not in hdrs
    # the same upstream without the operations shows its header
    status, hdrs, _ = g.get("/plain")
    assert status == 200 and hdrs["x-upstream"] == "a" and "x-served-by" not in hdrs


# ---------------------------------------------------------------- other targets

def test_respond_target(gatehouse):
    g = gatehouse(config("""
  - name: teapot
    match: { path: /tea }
    respond: { status: 418, headers: { Content-Type: text/plain, X-Kind: fixed }, body: "short and stout" }
  - name: created
    match: { path: /made, methods: [POST] }
    respond: { status: 201, body: "{\\"ok\\": true}" }
"""), workers=1)
    status, hdrs, data = g.get("/tea")
    assert status == 418
    assert hdrs["content-type"] == "text/plain"
    assert hdrs["x-kind"] == "fixed"
    assert data == b"short and stout"
    assert hdrs.get("x-request-id")
    assert hdrs["content-length"] == str(len(data))
    status, hdrs, data = g.request("POST", "/made", body=b"ignored")
    assert status == 201 and json.loads(data) == {"ok": True}


def test_echo_target_describes_the_forwarded_request(gatehouse):
    g = gatehouse(config("""
  - name: echo-route
    match: { prefix: /echo }
    echo: {}
    request_headers: { set: { X-Added: "1" }, remove: [X-Drop] }
"""), workers=1)
    status, hdrs, data = g.request("POST", "/echo/a/./b?x=1&y=2", body=b"hello",
                                   headers={"X-Custom": "Val", "X-Drop": "no", "X-Request-Id": "echo-req-1",
                                            "X-Forwarded-For": "203.0.113.9", "Content-Type": "text/plain"})
    assert status == 200
    assert hdrs["content-type"].startswith("application/json")
    doc = body_json(data)
    for key in ("method", "path", "query", "headers", "body_size", "client", "route", "consumer", "version"):
        assert key in doc, key
    assert doc["method"] == "POST"
    assert doc["path"] == "/echo/a/b"
    assert doc["query"] == "x=1&y=2"
    assert doc["body_size"] == 5
    assert doc["client"] == "127.0.0.1"
    assert doc["route"] == "echo-route"
    assert doc["consumer"] is None and doc["version"] is None
    h = doc["headers"]
    assert all(k == k.lower() for k in h), h
    assert h["x-custom"] == "Val"
    assert h["x-added"] == "1"
    assert "x-drop" not in h
    assert h["x-request-id"] == "echo-req-1"
    assert h["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert TRACE_RE.match(h["traceparent"]), h["traceparent"]
    assert hdrs["x-request-id"] == "echo-req-1"


def test_redirect_target_with_rest_and_status(gatehouse):
    g = gatehouse(config("""
  - name: moved
    match: { path: "/old/{rest*}" }
    redirect: { to: "https://new.example.com/v2/{rest}", status: 308 }
  - name: temp
    match: { path: /docs }
    redirect: { to: "https://docs.example.com/", status: 302 }
"""), workers=1)
    status, hdrs, _ = g.get("/old/a/b/c")
    assert status == 308
    assert hdrs["location"] == "https://new.example.com/v2/a/b/c"
    status, hdrs, _ = g.get("/docs")
    assert status == 302 and hdrs["location"] == "https://docs.example.com/"


def test_redirect_rest_on_prefix_route(gatehouse):
    # SPEC §4: `redirect: { to: "https://example.com/{rest}" }`; on a prefix
    # route {rest} is what follows the prefix (a config the gateway accepts
    # must not silently drop the placeholder).
    g = gatehouse(config("""
  - name: moved
    match: { prefix: /old }
    redirect: { to: "https://example.com/new/{rest}", status: 301 }
"""), workers=1)
    status, hdrs, _ = g.get("/old/a/b")
    assert status == 301
    assert hdrs["location"] == "https://example.com/new/a/b"


# ---------------------------------------------------------------- request id, trace context

def test_request_id_kept_when_well_formed(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    status, hdrs, data = g.get("/x", headers={"X-Request-Id": "client-id-123"})
    assert status == 200
    assert hdrs["x-request-id"] == "client-id-123"
    assert forwarded_headers(a.requests()[-1])["x-request-id"] == "client-id-123"
    assert header_names(a.requests()[-1]).count("x-request-id") == 1


def test_request_id_generated_when_missing_or_malformed(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    seen = set()
    for sent in (None, "bad id with spaces", "x" * 200, "<script>"):
        headers = {"X-Request-Id": sent} if sent is not None else {}
        status, hdrs, _ = g.get("/x", headers=headers)
        assert status == 200
        rid = hdrs["x-request-id"]
        assert rid and rid != sent and re.match(r"^[A-Za-z0-9._-]{8,64}$", rid), rid
        rec = a.requests()[-1]
        assert forwarded_headers(rec)["x-request-id"] == rid
        assert header_names(rec).count("x-request-id") == 1
        seen.add(rid)
    assert len(seen) == 4       # a new one each time


def test_traceparent_continued(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    for rid in (None, "abc-123"):
        headers = {"traceparent": "00-%s-%s-01" % (trace_id, parent)}
        if rid:
            headers["X-Request-Id"] = rid
        assert g.get("/x", headers=headers)[0] == 200
        tp = forwarded_headers(a.requests()[-1])["traceparent"]
        m = TRACE_RE.match(tp)
        assert m, tp
        assert m.group(1) == trace_id                       # same trace
        assert m.group(2) != parent                         # the gateway's own span
        assert m.group(2) != "0" * 16, "all-zero parent-id is invalid (W3C): %s (X-Request-Id %s)" % (tp, rid)
        assert m.group(3) == "01"


def test_traceparent_started(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    traces = set()
    cases = [{}, {"traceparent": "garbage"},
             {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
             {"X-Request-Id": "zz-top"}]
    for headers in cases:
        assert g.get("/x", headers=headers)[0] == 200
        tp = forwarded_headers(a.requests()[-1])["traceparent"]
        m = TRACE_RE.match(tp)
        assert m, (headers, tp)
        assert m.group(1) != "0" * 32, "all-zero trace-id is invalid (W3C): %s for %s" % (tp, headers)
        assert m.group(2) != "0" * 16, "all-zero parent-id is invalid (W3C): %s for %s" % (tp, headers)
        traces.add(m.group(1))
    assert len(traces) == len(cases)


# ---------------------------------------------------------------- hop-by-hop, X-Forwarded-*

def test_hop_by_hop_headers_never_reach_the_upstream(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    req = (b"GET /hop HTTP/1.1\r\nHost: gw.test\r\n"
           b"Connection: keep-alive, X-Secret\r\n"
           b"X-Secret: do-not-forward\r\n"
           b"Keep-Alive: timeout=5\r\n"
           b"TE: trailers, gzip\r\n"
           b"Trailer: X-Checksum\r\n"
           b"Upgrade: h2c\r\n"
           b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
           b"Proxy-Connection: keep-alive\r\n"
           b"X-Normal: kept\r\n\r\n")
    s = socket.create_connection(("127.0.0.1", g.port), timeout=3)
    try:
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        n = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(body) < n:
            chunk = s.recv(65536)
            assert chunk
            body += chunk
    finally:
        s.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    rec = a.requests()
    assert len(rec) == 1
    names = header_names(rec[0])
    for hop in ("x-secret", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization",
                "proxy-connection"):
        assert hop not in names, (hop, rec[0]["headers"])
    conn = forwarded_headers(rec[0]).get("connection", "")
    assert "x-secret" not in conn.lower()
    assert forwarded_headers(rec[0])["x-normal"] == "kept"


def test_x_forwarded_for_appended(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    assert g.get("/x", headers={"X-Forwarded-For": "198.51.100.7, 10.1.2.3"})[0] == 200
    assert g.get("/x")[0] == 200
    r1, r2 = a.requests()
    f1, f2 = forwarded_headers(r1), forwarded_headers(r2)
    assert f1["x-forwarded-for"] == "198.51.100.7, 10.1.2.3, 127.0.0.1"
    assert header_names(r1).count("x-forwarded-for") == 1
    assert f2["x-forwarded-for"] == "127.0.0.1"
    assert f1["x-forwarded-proto"] == "http"
    assert f1["x-forwarded-port"] == str(g.port)
    assert f1["x-forwarded-host"] == "127.0.0.1:%d" % g.port


def test_x_forwarded_for_appended_to_every_client_line(gatehouse, upstreams):
    # two X-Forwarded-For field lines are one list (RFC 9110 §5.3); the
    # client's address is appended to the whole list, none is lost
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    status, _, _ = raw_get(g.port, b"/xff", extra=b"X-Forwarded-For: 198.51.100.1\r\n"
                                                   b"X-Forwarded-For: 198.51.100.2\r\n")
    assert status == 200
    rec = a.requests()[0]
    assert header_names(rec).count("x-forwarded-for") == 1
    assert forwarded_headers(rec)["x-forwarded-for"] == "198.51.100.1, 198.51.100.2, 127.0.0.1"


def test_client_x_forwarded_proto_host_port_are_replaced(gatehouse, upstreams):
    a = upstreams("a")
    g = gatehouse(config("""
  - name: all
    match: { prefix: / }
    upstream: a
""", {"a": a}), workers=1)
    assert g.get("/x", headers={"Host": "api.example.com", "X-Forwarded-Proto": "https",
                                "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "443"})[0] == 200
    rec = a.requests()[0]
    f = forwarded_headers(rec)
    names = header_names(rec)
    assert f["x-forwarded-proto"] == "http" and names.count("x-forwarded-proto") == 1
    assert f["x-forwarded-host"] == "api.example.com" and names.count("x-forwarded-host") == 1
    assert f["x-forwarded-port"] == str(g.port) and names.count("x-forwarded-port") == 1
