"""Issue 9, paths: variants of a protected path that backends read as that
path (items 6), case-insensitive matching, redirects that must not leave
the site (item 8) and redirects that keep the request's host (item 19).

Every request is sent as raw bytes, so no client library normalizes the
path before the gateway sees it.
"""
import json
import re

import pytest

from conftest import raw_exchange

KEY = "alice-key-123456"

# Tomcat/Jetty/Spring read ";x" as a path parameter; IIS drops trailing dots
# and spaces: each of these is "/private" to such a backend.
VARIANTS = [b"/private;x/y", b"/private;x", b"/private%3Bx", b"/private.", b"/private%20"]


def config(routes, listen_extra="", upstream="{up}"):
    return ("listen:\n  - address: 127.0.0.1:{port}\n" + listen_extra +
            "upstreams:\n  up: { targets: [ \"%s\" ], retries: { attempts: 0 } }\n" % upstream +
            "consumers:\n  - name: alice\n    api_keys: [ \"%s\" ]\n" % KEY +
            "routes:\n" + routes)


PROTECTED = """\
  - name: private
    match: { prefix: /private%s }
    upstream: up
    plugins: { key_auth: {} }
  - name: public
    match: { prefix: / }
    upstream: up
"""


def raw_get(port, target, host=b"gw.test", headers=b""):
    req = b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + headers + b"Connection: close\r\n\r\n"
    resp = raw_exchange(port, req, timeout=3.0)
    assert resp, "no answer to %r" % target
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), hdrs, body


def problem_code(body):
    return json.loads(body)["code"]


def start(gatehouse, upstreams, routes, listen_extra=""):
    up = upstreams("up")
    g = gatehouse(config(routes, listen_extra), subst={"up": up.address}, workers=1)
    return g, up


# ------------------------------------------------------------ item 6

@pytest.mark.parametrize("target", VARIANTS, ids=[v.decode() for v in VARIANTS])
def test_strict_refuses_variants_of_a_protected_path(gatehouse, upstreams, target):
    g, up = start(gatehouse, upstreams, PROTECTED % "")
    status, _, body = raw_get(g.port, target)
    assert status == 400 and problem_code(body) == "bad_request", (status, body)
    assert up.requests() == []


@pytest.mark.parametrize("target", VARIANTS, ids=[v.decode() for v in VARIANTS])
def test_lax_reads_variants_as_the_protected_path(gatehouse, upstreams, target):
    g, up = start(gatehouse, upstreams, PROTECTED % "", listen_extra="    path_strict: false\n")
    status, hdrs, body = raw_get(g.port, target)
    assert status == 401 and problem_code(body) == "unauthorized", (status, body)
    assert up.requests() == []
    # with the key it reaches the upstream as the path that was matched
    status, _, body = raw_get(g.port, target, headers=b"X-API-Key: " + KEY.encode() + b"\r\n")
    assert status == 200, body
    want = "/private/y" if target.startswith(b"/private;x/") else "/private"
    assert [r["target"] for r in up.requests()] == [want]


def test_strict_still_serves_plain_paths(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, PROTECTED % "")
    assert raw_get(g.port, b"/private")[0] == 401
    assert raw_get(g.port, b"/public/a.b/c%20d")[0] == 200
    assert [r["target"] for r in up.requests()] == ["/public/a.b/c%20d"]


# ------------------------------------------------------------ case_insensitive

CASELESS = """\
  - name: private
    match: { prefix: /private, case_insensitive: true }
    upstream: up
    plugins: { key_auth: {} }
  - name: item
    match: { path: "/Items/{id}", case_insensitive: true }
    upstream: up
    plugins: { key_auth: {} }
  - name: re
    match: { regex: "^/admin/[a-z]+$", case_insensitive: true }
    upstream: up
    plugins: { key_auth: {} }
  - name: public
    match: { regex: "^/" }      # after the regex above in file order
    upstream: up
"""


@pytest.mark.parametrize("target", [b"/PRIVATE", b"/Private/x", b"/pRiVaTe", b"/items/7", b"/ITEMS/7",
                                    b"/ADMIN/Users"])
def test_case_insensitive_route_needs_the_key_in_any_case(gatehouse, upstreams, target):
    g, up = start(gatehouse, upstreams, CASELESS)
    status, _, body = raw_get(g.port, target)
    assert status == 401 and problem_code(body) == "unauthorized", (target, status, body)
    assert up.requests() == []
    status, _, _ = raw_get(g.port, target, headers=b"X-API-Key: " + KEY.encode() + b"\r\n")
    assert status == 200
    # forwarded as sent: only matching ignores case
    assert [r["target"] for r in up.requests()] == [target.decode()]


def test_case_sensitive_by_default(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, PROTECTED % "")
    assert raw_get(g.port, b"/PRIVATE")[0] == 200       # another path: the public route
    assert raw_get(g.port, b"/private")[0] == 401


# ------------------------------------------------------------ item 8

def test_redirect_never_builds_a_protocol_relative_location(gatehouse, upstreams):
    g, _ = start(gatehouse, upstreams, """\
  - name: old
    match: { prefix: /old }
    redirect: { to: "/{rest}" }
  - name: tpl
    match: { path: "/t/{rest*}" }
    redirect: { to: "/{rest}", status: 301 }
""", listen_extra="    path_strict: false\n")
    for target, want in ((b"/old/\\evil.com", "/evil.com"), (b"/old/%5Cevil.com", "/%5Cevil.com"),
                         (b"/old/%2F%2Fevil.com", "/%2F%2Fevil.com"), (b"/old//evil.com", "/evil.com"),
                         (b"/old/\\\\evil.com/x", "/evil.com/x"), (b"/t/\\evil.com", "/evil.com"),
                         (b"/old/a/b", "/a/b")):
        status, hdrs, _ = raw_get(g.port, target)
        assert status in (301, 302), (target, status)
        loc = hdrs["location"]
        assert not re.match(r"^[/\\][/\\]", loc), (target, loc)
        assert loc == want, (target, loc)


# ------------------------------------------------------------ item 19

def test_redirect_keeps_the_request_host(gatehouse, upstreams):
    g, _ = start(gatehouse, upstreams, """\
  - name: to-https
    match: { prefix: /app }
    redirect: { to: "https://{host}/{rest}", status: 308 }
""")
    status, hdrs, _ = raw_get(g.port, b"/app/a/b?x=1", host=b"API.Example.com:8080")
    assert status == 308
    assert hdrs["location"] == "https://api.example.com/a/b"
    status, hdrs, _ = raw_get(g.port, b"/app", host=b"[::1]:8080")
    assert status == 308 and hdrs["location"] == "https://[::1]/"
    # a Host the gateway refuses never reaches a Location
    status, hdrs, _ = raw_get(g.port, b"/app/x", host=b"evil.com/x")
    assert status == 400 and "location" not in hdrs
