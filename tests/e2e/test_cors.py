"""The cors plugin (SPEC §5, §5.2, §12.25) through a real gatehouse and a
real upstream.

A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
answered by the gateway: 204 with the Access-Control headers, or 403
`forbidden` for an origin, method or header that is not allowed; it never
reaches the upstream. An actual request from an allowed origin reaches the
upstream and its answer (or any gateway-made answer, such as a later
plugin's 401) carries Access-Control-Allow-Origin & co.; from an unlisted
origin it is passed on without CORS headers.
"""
import http.client
import json
import tempfile

import pytest

from test_cli import diag_lines, gh, pos, write

APP = "https://app.example.com"


# ---------------------------------------------------------------- helpers

def config(routes, up, top=""):
    return ("listen:\n  - address: 127.0.0.1:{port}\nworkers: 1\n%s"
            "upstreams:\n  api: { targets: [ { address: %s } ] }\n"
            "routes:\n%s" % (top, up.address, routes))


def route(cors, prefix="/api", extra=""):
    """One route to the upstream with `plugins: { cors: ... }` (cors is flow YAML)."""
    return ("  - name: api\n    match: { prefix: %s%s }\n    upstream: api\n"
            "    plugins: { cors: %s }\n" % (prefix, extra, cors))


def req(g, method, path, headers=None):
    """(status, [(lower-case name, value)...] in order, body) — repeated
    headers stay visible, unlike Gatehouse.request's dict."""
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, [(k.lower(), v) for k, v in r.getheaders()], data


def one(hdrs, name):
    """The value of a header that must appear exactly once (None if absent)."""
    vals = [v for k, v in hdrs if k == name]
    assert len(vals) <= 1, (name, vals)
    return vals[0] if vals else None


def tokens(hdrs, name):
    """Lower-case members of a list header, over all its lines."""
    out = []
    for k, v in hdrs:
        if k == name:
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
    return out


def cors_headers(hdrs):
    return [(k, v) for k, v in hdrs if k.startswith("access-control-")]


def preflight(g, origin, method="GET", req_headers=None, path="/api/items"):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers is not None:
        h["Access-Control-Request-Headers"] = req_headers
    return req(g, "OPTIONS", path, h)


def assert_forbidden(status, hdrs, data):
    assert status == 403, (status, data)
    assert one(hdrs, "content-type").split(";")[0].strip() == "application/problem+json", hdrs
    doc = json.loads(data)
    assert doc["status"] == 403 and doc["code"] == "forbidden", doc
    assert one(hdrs, "access-control-allow-origin") is None, hdrs
    return doc


def upstream_saw(up):
    return up.requests()


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="gh-cors-") as d:
        yield d


FULL = ('{ origins: ["%s"], methods: [GET, POST, PUT], headers: [Content-Type, X-Request-Id], '
        'credentials: true, max_age: 1h, expose_headers: [X-Total-Count, X-Trace] }' % APP)


# ---------------------------------------------------------------- preflight

def test_preflight_answered_204_and_never_reaches_the_upstream(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route(FULL), up))
    status, hdrs, data = preflight(g, APP, "PUT", "content-type, x-request-id")
    assert status == 204, (status, data)
    assert data == b""
    assert one(hdrs, "content-length") in (None, "0")
    assert one(hdrs, "access-control-allow-origin") == APP
    assert tokens(hdrs, "access-control-allow-methods") == ["get", "post", "put"]
    assert tokens(hdrs, "access-control-allow-headers") == ["content-type", "x-request-id"]
    assert one(hdrs, "access-control-max-age") == "3600"
    assert one(hdrs, "access-control-allow-credentials") == "true"
    assert "origin" in tokens(hdrs, "vary")
    # expose_headers is for actual responses only
    assert one(hdrs, "access-control-expose-headers") is None
    assert one(hdrs, "x-upstream") is None
    # requested header names are matched without regard to case
    status, hdrs, _ = preflight(g, APP, "POST", "Content-Type,X-REQUEST-ID")
    assert status == 204
    # and with no requested headers at all
    status, hdrs, _ = preflight(g, APP, "GET")
    assert status == 204 and one(hdrs, "access-control-allow-origin") == APP
    assert upstream_saw(up) == []


def test_preflight_from_unlisted_origin_is_403_forbidden(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route(FULL), up))
    for origin in ("https://evil.example.org", "http://app.example.com", "https://app.example.com.evil.org",
                   "null"):
        status, hdrs, data = preflight(g, origin, "GET")
        assert_forbidden(status, hdrs, data)
        assert cors_headers(hdrs) == [], (origin, hdrs)
    assert upstream_saw(up) == []


def test_preflight_with_disallowed_method_or_header_is_403(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route(FULL), up))
    assert_forbidden(*preflight(g, APP, "DELETE"))
    assert_forbidden(*preflight(g, APP, "PATCH", "content-type"))
    assert_forbidden(*preflight(g, APP, "POST", "content-type, x-secret"))
    assert_forbidden(*preflight(g, APP, "POST", "Authorization"))
    # the allowed ones still pass on the same gateway
    assert preflight(g, APP, "PUT", "content-type")[0] == 204
    assert upstream_saw(up) == []


def test_preflight_without_configured_headers_echoes_the_requested_ones(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route('{ origins: ["%s"] }' % APP), up))
    status, hdrs, _ = preflight(g, APP, "POST", "X-Custom-One, content-type")
    assert status == 204
    assert tokens(hdrs, "access-control-allow-headers") == ["x-custom-one", "content-type"]
    # default methods: the common set, not everything
    allowed = tokens(hdrs, "access-control-allow-methods")
    assert {"get", "post", "put", "delete"} <= set(allowed), allowed
    assert one(hdrs, "access-control-allow-credentials") is None
    assert one(hdrs, "access-control-max-age") is None
    assert upstream_saw(up) == []


# ---------------------------------------------------------------- origins

WILD = '{ origins: ["https://*.example.com", "http://localhost:3000"], credentials: true }'


@pytest.mark.parametrize("origin", [
    "https://a.example.com",
    "https://a.b.example.com",
    "https://API-1.Example.com",          # host names are case-insensitive
    "http://localhost:3000",
])
def test_wildcard_and_exact_origins_match(gatehouse, upstreams, origin):
    up = upstreams("a")
    g = gatehouse(config(route(WILD), up))
    status, hdrs, _ = preflight(g, origin, "GET")
    assert status == 204
    assert one(hdrs, "access-control-allow-origin") == origin
    assert one(hdrs, "access-control-allow-credentials") == "true"
    status, hdrs, _ = req(g, "GET", "/api/x", {"Origin": origin})
    assert status == 200
    assert one(hdrs, "access-control-allow-origin") == origin


@pytest.mark.parametrize("origin", [
    "https://example.com",                # the bare domain
    "https://evilexample.com",            # suffix trick
    "https://a.example.com.evil.org",
    "https://a.example.com:8443",         # another port
    "http://a.example.com",               # another scheme
    "https://.example.com",               # empty label
    "https://a..example.com",
    "https://user@a.example.com",
    "http://localhost:3001",
    "http://localhost",
    "null",
])
def test_wildcard_and_exact_origins_do_not_match(gatehouse, upstreams, origin):
    up = upstreams("a")
    g = gatehouse(config(route(WILD), up))
    assert_forbidden(*preflight(g, origin, "GET"))
    status, hdrs, _ = req(g, "GET", "/api/x", {"Origin": origin})
    assert status == 200                  # passed on, without CORS headers
    assert cors_headers(hdrs) == [], hdrs


def test_star_origin_without_credentials_answers_star(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route('{ origins: ["*"], expose_headers: [X-Total-Count] }'), up))
    status, hdrs, _ = preflight(g, "https://anything.test", "POST", "content-type")
    assert status == 204
    assert one(hdrs, "access-control-allow-origin") == "*"
    assert one(hdrs, "access-control-allow-credentials") is None
    status, hdrs, _ = req(g, "GET", "/api/x", {"Origin": "https://other.test"})
    assert status == 200
    assert one(hdrs, "access-control-allow-origin") == "*"
    assert one(hdrs, "access-control-allow-credentials") is None
    assert "origin" not in tokens(hdrs, "vary")   # the answer does not depend on the origin
    assert tokens(hdrs, "access-control-expose-headers") == ["x-total-count"]
    # the opaque origin "null" is not admitted by "*"
    assert_forbidden(*preflight(g, "null", "GET"))


# ---------------------------------------------------------------- actual requests

def test_actual_request_from_listed_origin_gets_cors_headers_and_reaches_upstream(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route(FULL), up))
    status, hdrs, data = req(g, "GET", "/api/items?page=2", {"Origin": APP})
    assert status == 200, data
    assert json.loads(data)["server"] == "a"
    assert one(hdrs, "access-control-allow-origin") == APP
    assert "origin" in tokens(hdrs, "vary")
    assert one(hdrs, "access-control-allow-credentials") == "true"
    assert tokens(hdrs, "access-control-expose-headers") == ["x-total-count", "x-trace"]
    # preflight-only headers are not on actual responses
    assert one(hdrs, "access-control-allow-methods") is None
    assert one(hdrs, "access-control-max-age") is None
    seen = upstream_saw(up)
    assert [r["target"] for r in seen] == ["/api/items?page=2"]
    assert dict((k.lower(), v) for k, v in seen[0]["headers"]).get("origin") == APP

    # a POST and an upstream error answer carry them too
    status, hdrs, _ = req(g, "POST", "/api/items", {"Origin": APP, "Content-Type": "application/json"})
    assert status == 200 and one(hdrs, "access-control-allow-origin") == APP
    g2 = gatehouse(config(route(FULL, prefix="/status"), up))
    status, hdrs, _ = req(g2, "GET", "/status/503", {"Origin": APP})
    assert status == 503 and one(hdrs, "access-control-allow-origin") == APP


def test_actual_options_without_request_method_is_not_a_preflight(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route(FULL), up))
    status, hdrs, data = req(g, "OPTIONS", "/api/items", {"Origin": APP})
    assert status == 200 and json.loads(data)["server"] == "a"
    assert one(hdrs, "access-control-allow-origin") == APP
    assert [r["method"] for r in upstream_saw(up)] == ["OPTIONS"]


def test_actual_request_from_unlisted_origin_passes_without_cors_headers(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route(FULL), up))
    status, hdrs, data = req(g, "GET", "/api/items", {"Origin": "https://evil.example.org"})
    assert status == 200 and json.loads(data)["server"] == "a"
    assert cors_headers(hdrs) == [], hdrs
    assert len(upstream_saw(up)) == 1


def test_no_origin_no_cors_headers(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route(FULL), up))
    status, hdrs, _ = req(g, "GET", "/api/items")
    assert status == 200
    assert cors_headers(hdrs) == [], hdrs
    # an OPTIONS with Access-Control-Request-Method but no Origin is no preflight either
    status, hdrs, data = req(g, "OPTIONS", "/api/items", {"Access-Control-Request-Method": "GET"})
    assert status == 200 and json.loads(data)["server"] == "a"
    assert cors_headers(hdrs) == [], hdrs


# ---------------------------------------------------------------- routing, global, chain

def test_preflight_on_route_without_options_in_methods_is_answered(gatehouse, upstreams):
    up = upstreams("a")
    g = gatehouse(config(route(FULL, extra=", methods: [GET, POST]"), up))
    status, hdrs, _ = preflight(g, APP, "POST", "content-type")
    assert status == 204
    assert one(hdrs, "access-control-allow-origin") == APP
    # a refused preflight is still the plugin's 403, not a 405
    assert_forbidden(*preflight(g, "https://evil.example.org", "POST"))
    # an OPTIONS that is no preflight still gets the route's 405
    status, _, _ = req(g, "OPTIONS", "/api/items", {"Origin": APP})
    assert status == 405
    assert req(g, "GET", "/api/items", {"Origin": APP})[0] == 200
    assert [r["method"] for r in upstream_saw(up)] == ["GET"]


def test_global_cors_applies_to_every_route_unless_turned_off(gatehouse, upstreams):
    up = upstreams("a")
    routes = ("  - name: on\n    match: { prefix: /on }\n    upstream: api\n"
              "  - name: off\n    match: { prefix: /off }\n    upstream: api\n"
              "    plugins: { cors: false }\n")
    top = 'plugins:\n  cors: { origins: ["%s"], methods: [GET] }\n' % APP
    g = gatehouse(config(routes, up, top=top))
    status, hdrs, _ = preflight(g, APP, "GET", path="/on/x")
    assert status == 204 and one(hdrs, "access-control-allow-origin") == APP
    status, hdrs, _ = req(g, "GET", "/on/x", {"Origin": APP})
    assert status == 200 and one(hdrs, "access-control-allow-origin") == APP
    status, hdrs, data = preflight(g, APP, "GET", path="/off/x")
    assert status == 200 and json.loads(data)["server"] == "a"   # proxied like any OPTIONS
    assert cors_headers(hdrs) == []
    status, hdrs, _ = req(g, "GET", "/off/x", {"Origin": APP})
    assert status == 200 and cors_headers(hdrs) == []


def test_401_from_key_auth_still_carries_cors_headers(gatehouse, upstreams):
    up = upstreams("a")
    routes = ("  - name: api\n    match: { prefix: /api }\n    upstream: api\n"
              '    plugins: { cors: { origins: ["%s"], credentials: true }, key_auth: {} }\n' % APP)
    top = 'consumers:\n  - { name: alice, api_keys: ["alice-key-123456"] }\n'
    g = gatehouse(config(routes, up, top=top))
    # no key: the 401 is readable by the page (its ACAO is there)
    status, hdrs, data = req(g, "GET", "/api/items", {"Origin": APP})
    assert status == 401, data
    assert json.loads(data)["code"] == "unauthorized"
    assert one(hdrs, "www-authenticate")
    assert one(hdrs, "access-control-allow-origin") == APP
    assert one(hdrs, "access-control-allow-credentials") == "true"
    # from an unlisted origin, the 401 has no CORS headers
    status, hdrs, _ = req(g, "GET", "/api/items", {"Origin": "https://evil.example.org"})
    assert status == 401 and cors_headers(hdrs) == []
    # the preflight needs no key (browsers never send credentials with it)
    status, hdrs, _ = preflight(g, APP, "GET", "x-api-key")
    assert status == 204 and one(hdrs, "access-control-allow-origin") == APP
    assert upstream_saw(up) == []
    # with the key, through to the upstream, still with CORS headers
    status, hdrs, data = req(g, "GET", "/api/items", {"Origin": APP, "X-API-Key": "alice-key-123456"})
    assert status == 200 and json.loads(data)["server"] == "a"
    assert one(hdrs, "access-control-allow-origin") == APP
    assert len(upstream_saw(up)) == 1


# ---------------------------------------------------------------- check

CHECK_BASE = """\
listen:
  - address: 127.0.0.1:18080
upstreams:
  api: { targets: [ { address: 127.0.0.1:19001 } ] }
routes:
  - name: api
    match: { prefix: /api }
    upstream: api
    plugins:
      cors:
        origins: [%s]
        credentials: true
"""


def test_check_refuses_star_origin_with_credentials(tmp):
    text = CHECK_BASE % '"*"'
    path = write(tmp, "cors.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1, out + err
    diags = diag_lines(err + out, path)
    at = pos(text, "credentials")
    assert any(lc == at and "credentials" in msg for lc, msg in diags), (at, err + out)


def test_check_accepts_listed_origins_with_credentials(tmp):
    text = CHECK_BASE % '"https://app.example.com", "https://*.example.com"'
    path = write(tmp, "cors.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 0, out + err
