"""Version management end to end (SPEC §6, §12.11, §12.12): where the version
is read (`path`, `header:NAME`, `query:NAME`, `accept`, in `from` order),
the default, version_required / version_unknown / version_sunset, the
Deprecation / Sunset / Link announcements, each version's own headers,
rewrite and plugins over the route's, previews, the sticky canary (share,
stickiness across requests, restarts and reloads), the access log, and what
`gatehouse check` / `routes` / `explain` say about versioned routes.

Every test runs a real gatehouse. Upstreams are real processes named v1, v2,
v3 (upstream.py: each answers with `X-Upstream: <name>` and records what it
received at /__requests), so a test sees which service a request reached and
exactly what crossed the gateway. Lifecycle dates are computed from the
current clock (a deprecation 30 days ago, a sunset 30 days ahead, a sunset
already past), and the expected header values are computed here, in Python.
"""
import calendar
import datetime
import email.utils
import http.client
import json
import re
import socket
import threading
import time

import pytest

from conftest import Gatehouse
from test_cli import diag_lines, gh, pos, write


# ---------------------------------------------------------------- dates

def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def day(offset):
    """(YYYY-MM-DD, epoch of 00:00 UTC that day) for today + offset days (§12.11)."""
    d = utc_today() + datetime.timedelta(days=offset)
    return d.isoformat(), calendar.timegm(d.timetuple())


def rfc3339(epoch, offset_minutes=0):
    """An RFC 3339 time for epoch, written in the given UTC offset."""
    tz = datetime.timezone(datetime.timedelta(minutes=offset_minutes))
    t = datetime.datetime.fromtimestamp(int(epoch), tz)
    if offset_minutes == 0:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.isoformat()          # 2026-12-28T13:30:00+02:00


def imf(epoch):
    """IMF-fixdate, as RFC 8594 wants in Sunset."""
    return email.utils.formatdate(epoch, usegmt=True)


# ---------------------------------------------------------------- clients

def req(port, method, path, headers=None, timeout=10):
    """One request on its own connection: (status, [(name lower, value)], body).
    Repeated response headers are kept."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, [(k.lower(), v) for k, v in r.getheaders()], body
    finally:
        c.close()


def get(port, path, headers=None):
    return req(port, "GET", path, headers)


def values(hdrs, name):
    return [v for k, v in hdrs if k == name.lower()]


def one(hdrs, name):
    got = values(hdrs, name)
    assert len(got) == 1, (name, hdrs)
    return got[0]


def problem(resp, status, code):
    st, hdrs, body = resp
    assert st == status, (st, body)
    assert one(hdrs, "content-type").startswith("application/problem+json"), hdrs
    doc = json.loads(body)
    assert doc["status"] == status and doc["code"] == code, doc
    return doc


def recorded(up):
    """What the upstream received since the last call: [{target, h: {name: [values]}}]."""
    out = []
    for r in up.requests():
        h = {}
        for k, v in r["headers"]:
            h.setdefault(k.lower(), []).append(v)
        out.append({"method": r["method"], "target": r["target"], "h": h})
    up.reset()
    return out


class Fast:
    """A raw keep-alive HTTP/1.1 client for the canary tests: thousands of
    small requests per second, one connection, responses read by
    Content-Length."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self, path, headers=()):
        head = "GET %s HTTP/1.1\r\nHost: gw.test\r\n" % path
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        self.s.sendall((head + "\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("gateway closed the connection")
            self.buf += data
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("gateway closed the connection mid-body")
            rest += data
        self.buf = rest[n:]
        return int(lines[0].split()[1]), hdrs, rest[:n]

    def close(self):
        self.s.close()


def sides(port, keys, header=None, cookie=None, threads=4, path="/orders/1"):
    """Send one request per key (the key in `header` or in the `cookie`),
    over `threads` keep-alive connections; {key: chosen version}."""
    out = {}
    errors = []

    def run(part):
        c = Fast(port)
        try:
            for k in part:
                if header:
                    hs = [(header, k)]
                elif cookie:
                    hs = [("Cookie", "theme=dark; %s=%s; other=1" % (cookie, k))]
                else:
                    hs = []
                st, h, body = c.get(path, hs)
                if st != 200:
                    errors.append((k, st, body))
                    return
                out[k] = h.get("api-version")
        except Exception as e:          # reported below, in the test's thread
            errors.append((None, repr(e), b""))
        finally:
            c.close()

    ts = [threading.Thread(target=run, args=(keys[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:5]
    assert len(out) == len(keys)
    return out


def many(port, n, path="/orders/1", headers=()):
    """n requests without any sticky key on one connection: [chosen version]."""
    c = Fast(port)
    try:
        got = []
        for _ in range(n):
            st, h, body = c.get(path, headers)
            assert st == 200, (st, body)
            got.append(h.get("api-version"))
        return got
    finally:
        c.close()


# ---------------------------------------------------------------- the main configuration

DEP_PAST, DEP_PAST_TS = day(-30)
SUN_FUTURE, SUN_FUTURE_TS = day(30)
OLD_DEP, OLD_DEP_TS = day(-90)
_, SUN_PAST_TS = day(-1)
SUN_PAST_TS += 9 * 3600 + 30 * 60            # yesterday 09:30 UTC, as RFC 3339
# version 3: a deprecation still ahead (RFC 3339 in +02:00), a sunset further ahead
DEP_FUTURE_TS = day(10)[1] + 12 * 3600        # 12:00 UTC in 10 days
SUN_FUTURE3_TS = day(40)[1] + 6 * 3600 + 1800
DOCS = "https://example.com/migrate-to-v2"

MAIN = """\
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: stdout }
upstreams:
  v1: { targets: [ "{v1}" ], retries: { attempts: 0 } }
  v2: { targets: [ "{v2}" ], retries: { attempts: 0 } }
  v3: { targets: [ "{v3}" ], retries: { attempts: 0 } }
routes:
  - name: orders
    match: { prefix: /orders }
    request_headers: { set: { X-Route: orders, X-Extra: route }, remove: [X-Drop-Route] }
    response_headers: { set: { X-Route-Resp: orders, X-Shared: route } }
    versions:
      from: [path, header:Api-Version, query:version, accept]
      default: "2"
      list:
        "1": { upstream: v1, deprecated: %(dep_past)s, sunset: %(sun_future)s, docs: "%(docs)s" }
        "2":
          upstream: v2
          request_headers: { set: { X-Extra: two, X-Two: "2" }, remove: [X-Drop-Two] }
          response_headers: { set: { X-Shared: two } }
        "3": { upstream: v3, deprecated: "%(dep_future)s", sunset: "%(sun_future3)s" }
        "0": { upstream: v1, deprecated: %(old_dep)s, sunset: "%(sun_past)s", docs: "https://example.com/gone" }
  - name: reverse
    match: { prefix: /rev }
    versions:
      from: [accept, query:version, header:Api-Version, path]
      list:
        "1": { upstream: v1 }
        "2": { upstream: v2 }
        "3": { upstream: v3 }
  - name: items
    match: { prefix: /items }
    versions:
      from: [header:Api-Version]
      default: "1"
      list:
        "1": { upstream: v1 }
        "2": { upstream: v2 }
  - name: strict
    match: { prefix: /strict }
    versions:
      list:
        "1": { upstream: v1 }
        "2": { upstream: v2 }
  - name: flat
    match: { prefix: /v1/flat }
    upstream: v3
  - name: raw
    match: { prefix: /raw }
    versions:
      from: [header:Api-Version]
      default: "1"
      list:
        "1": { upstream: v1, deprecated: %(dep_past)s, sunset: %(sun_future)s, docs: "%(docs)s" }
        "2": { upstream: v2, sunset: %(sun_future)s, docs: "https://example.com/docs-only" }
""" % {
    "dep_past": DEP_PAST, "sun_future": SUN_FUTURE, "docs": DOCS,
    "dep_future": rfc3339(DEP_FUTURE_TS, 120), "sun_future3": rfc3339(SUN_FUTURE3_TS),
    "old_dep": OLD_DEP, "sun_past": rfc3339(SUN_PAST_TS),
}


@pytest.fixture
def three(upstreams):
    return {name: upstreams(name) for name in ("v1", "v2", "v3")}


def start_main(gatehouse, three, config=MAIN, **kw):
    subst = {name: u.address for name, u in three.items()}
    return gatehouse(config, subst=subst, **kw)


def reached(resp, three, name, target, version):
    """The response came from upstream `name`, which received exactly one
    request, for `target`, with `Api-Version: version`; the response names
    the version too. Returns what the upstream received."""
    st, hdrs, body = resp
    assert st == 200, (st, body)
    assert one(hdrs, "x-upstream") == name, hdrs
    assert one(hdrs, "api-version") == version, hdrs
    got = {n: recorded(u) for n, u in three.items()}
    for other, reqs in got.items():
        if other != name:
            assert reqs == [], (other, reqs)
    assert len(got[name]) == 1, got[name]
    r = got[name][0]
    assert r["target"] == target, r
    assert r["h"].get("api-version") == [version], r["h"]
    return r


def nothing_reached(three):
    for name, u in three.items():
        assert recorded(u) == [], name


# ================================================================ selection

def test_path_segment_selects_and_is_cut_from_the_forwarded_path(gatehouse, three):
    g = start_main(gatehouse, three)
    reached(get(g.port, "/v1/orders/7"), three, "v1", "/orders/7", "1")
    reached(get(g.port, "/v2/orders/7?x=1&y=%20z"), three, "v2", "/orders/7?x=1&y=%20z", "2")
    reached(get(g.port, "/v3/orders"), three, "v3", "/orders", "3")
    reached(get(g.port, "/v3/orders/a/b/"), three, "v3", "/orders/a/b/", "3")
    # POST with a body: the same
    st, hdrs, body = req(g.port, "POST", "/v1/orders", headers={"Content-Length": "0"})
    assert st == 200 and one(hdrs, "x-upstream") == "v1"
    r = recorded(three["v1"])
    assert [(x["method"], x["target"]) for x in r] == [("POST", "/orders")]


def test_path_segment_is_only_v_digit_and_only_for_routes_reading_path(gatehouse, three):
    g = start_main(gatehouse, three)
    # not "v" + digit: no version segment, and no route at /vx
    problem(get(g.port, "/vx/orders/7"), 404, "no_route")
    problem(get(g.port, "/v/orders/7"), 404, "no_route")
    # "v" + something starting with a digit is a version name: unknown here
    doc = problem(get(g.port, "/v2beta/orders/7"), 400, "version_unknown")
    assert doc["versions"] == ["1", "2", "3"]
    # a /vN/ further down is part of the path; the default version answers
    reached(get(g.port, "/orders/v1/x"), three, "v2", "/orders/v1/x", "2")
    # items reads only the header: /v2/items is no route, the header works
    problem(get(g.port, "/v2/items/1"), 404, "no_route")
    nothing_reached(three)
    reached(get(g.port, "/items/1", {"Api-Version": "2"}), three, "v2", "/items/1", "2")
    # an unversioned route whose own prefix starts with /v1 keeps its path
    st, hdrs, body = get(g.port, "/v1/flat/x")
    assert st == 200 and one(hdrs, "x-upstream") == "v3"
    assert values(hdrs, "api-version") == []
    r = recorded(three["v3"])
    assert [x["target"] for x in r] == ["/v1/flat/x"] and "api-version" not in r[0]["h"]


def test_header_query_and_accept_each_select(gatehouse, three):
    g = start_main(gatehouse, three)
    reached(get(g.port, "/orders/7", {"Api-Version": "1"}), three, "v1", "/orders/7", "1")
    # "v3" in the header finds "3"; the header name is case-insensitive
    reached(get(g.port, "/orders/7", {"api-version": "v3"}), three, "v3", "/orders/7", "3")
    # the query parameter is forwarded as is
    reached(get(g.port, "/orders/7?a=1&version=1&b=2"), three, "v1", "/orders/7?a=1&version=1&b=2", "1")
    reached(get(g.port, "/orders?version=3"), three, "v3", "/orders?version=3", "3")
    # accept: application/vnd.<anything>.vN+json, among other media types
    reached(get(g.port, "/orders/7", {"Accept": "application/vnd.acme.v1+json"}), three, "v1", "/orders/7", "1")
    reached(get(g.port, "/orders/7", {"Accept": "text/html, application/vnd.example.orders.v3+json;q=0.9"}),
            three, "v3", "/orders/7", "3")
    # a plain Accept names no version: the default
    reached(get(g.port, "/orders/7", {"Accept": "application/json"}), three, "v2", "/orders/7", "2")


def test_client_api_version_header_is_replaced(gatehouse, three):
    g = start_main(gatehouse, three)
    # the path decides; the client's own Api-Version (lower in `from`) is replaced, not added to
    r = reached(get(g.port, "/v1/orders/7", {"Api-Version": "3"}), three, "v1", "/orders/7", "1")
    assert r["h"]["api-version"] == ["1"]
    # the query decides on a route reading the header after it; the client's header goes
    r = reached(get(g.port, "/rev/1?version=2", {"Api-Version": "3"}), three, "v2", "/rev/1?version=2", "2")
    assert r["h"]["api-version"] == ["2"]
    # a version named by the default: the upstream is told too, and the response
    r = reached(get(g.port, "/orders/7"), three, "v2", "/orders/7", "2")


def test_from_order_decides_when_several_name_a_version(gatehouse, three):
    g = start_main(gatehouse, three)
    every = {"Api-Version": "2", "Accept": "application/vnd.acme.v3+json"}
    # orders: path > header > query > accept
    reached(get(g.port, "/v1/orders/7?version=3", every), three, "v1", "/orders/7?version=3", "1")
    reached(get(g.port, "/orders/7?version=1", every), three, "v2", "/orders/7?version=1", "2")
    reached(get(g.port, "/orders/7?version=1", {"Accept": "application/vnd.acme.v3+json"}),
            three, "v1", "/orders/7?version=1", "1")
    reached(get(g.port, "/orders/7", {"Accept": "application/vnd.acme.v3+json"}), three, "v3", "/orders/7", "3")
    # rev: accept > query > header > path; the path segment is still cut
    reached(get(g.port, "/v1/rev/7?version=2", every), three, "v3", "/rev/7?version=2", "3")
    reached(get(g.port, "/v1/rev/7?version=2", {"Api-Version": "3"}), three, "v2", "/rev/7?version=2", "2")
    reached(get(g.port, "/v1/rev/7", {"Api-Version": "3"}), three, "v3", "/rev/7", "3")
    reached(get(g.port, "/v1/rev/7"), three, "v1", "/rev/7", "1")
    # the first source that has a version decides, even a wrong one
    doc = problem(get(g.port, "/v1/rev/7", {"Api-Version": "9"}), 400, "version_unknown")
    assert doc["versions"] == ["1", "2", "3"]
    nothing_reached(three)


def test_default_version_and_the_default_sources(gatehouse, three):
    g = start_main(gatehouse, three)
    reached(get(g.port, "/orders"), three, "v2", "/orders", "2")
    reached(get(g.port, "/orders/7?x=1"), three, "v2", "/orders/7?x=1", "2")
    # strict has no `from`: [path, header:Api-Version]
    reached(get(g.port, "/v1/strict/a"), three, "v1", "/strict/a", "1")
    reached(get(g.port, "/strict/a", {"Api-Version": "2"}), three, "v2", "/strict/a", "2")
    # ... so neither the query nor Accept names a version there
    for resp in (get(g.port, "/strict/a?version=1"),
                 get(g.port, "/strict/a", {"Accept": "application/vnd.acme.v1+json"})):
        problem(resp, 400, "version_required")
    nothing_reached(three)


def test_version_required_without_a_default(gatehouse, three):
    g = start_main(gatehouse, three)
    st, hdrs, body = get(g.port, "/strict/a")
    doc = problem((st, hdrs, body), 400, "version_required")
    assert values(hdrs, "api-version") == []
    assert "1" in doc["detail"] and "2" in doc["detail"], doc
    problem(get(g.port, "/rev/x"), 400, "version_required")
    problem(get(g.port, "/strict/a", {"Api-Version": ""}), 400, "version_required")
    nothing_reached(three)


def test_version_unknown_lists_the_versions(gatehouse, three):
    g = start_main(gatehouse, three)
    for resp in (get(g.port, "/v9/orders/7"),
                 get(g.port, "/orders/7", {"Api-Version": "9"}),
                 get(g.port, "/orders/7?version=v9"),
                 get(g.port, "/orders/7", {"Accept": "application/vnd.acme.v9+json"})):
        doc = problem(resp, 400, "version_unknown")
        assert doc["versions"] == ["1", "2", "3"], doc
        assert values(resp[1], "api-version") == []
    doc = problem(get(g.port, "/v3/strict"), 400, "version_unknown")
    assert doc["versions"] == ["1", "2"]
    nothing_reached(three)
    # the raw JSON carries the list as SPEC §12.12 writes it
    st, hdrs, body = get(g.port, "/v7/items")
    assert st == 404                                   # items does not read the path
    st, hdrs, body = get(g.port, "/items", {"Api-Version": "7"})
    assert st == 400 and b'"versions":["1","2"]' in body.replace(b" ", b""), body


# ================================================================ lifecycle

def test_deprecation_sunset_and_link_exact_values(gatehouse, three):
    g = start_main(gatehouse, three)
    # version 1: deprecated 30 days ago, sunset in 30 days, docs
    st, hdrs, body = get(g.port, "/v1/orders/7")
    assert st == 200 and one(hdrs, "x-upstream") == "v1"
    assert one(hdrs, "deprecation") == "@%d" % DEP_PAST_TS
    assert one(hdrs, "sunset") == imf(SUN_FUTURE_TS)
    assert one(hdrs, "link") == '<%s>; rel="deprecation"' % DOCS
    # on every response of the version, however it was chosen
    for resp in (get(g.port, "/orders/x", {"Api-Version": "v1"}),
                 get(g.port, "/orders/x?version=1"),
                 get(g.port, "/orders/x", {"Accept": "application/vnd.a.v1+json"})):
        assert one(resp[1], "deprecation") == "@%d" % DEP_PAST_TS, resp
        assert one(resp[1], "sunset") == imf(SUN_FUTURE_TS)
        assert one(resp[1], "link") == '<%s>; rel="deprecation"' % DOCS
    # version 3: the deprecation date is still ahead (RFC 3339, +02:00): announced already; no docs, no Link
    st, hdrs, body = get(g.port, "/v3/orders/7")
    assert st == 200 and one(hdrs, "x-upstream") == "v3"
    assert one(hdrs, "deprecation") == "@%d" % DEP_FUTURE_TS
    assert one(hdrs, "sunset") == imf(SUN_FUTURE3_TS)
    assert values(hdrs, "link") == []
    # version 2 names no dates: none of the three, by path or by default
    for resp in (get(g.port, "/v2/orders/7"), get(g.port, "/orders/7")):
        assert resp[0] == 200 and one(resp[1], "x-upstream") == "v2"
        for name in ("deprecation", "sunset", "link"):
            assert values(resp[1], name) == [], (name, resp[1])
    # unversioned routes neither, also on a connection that just served version 1
    c = Fast(g.port)
    try:
        st, h, body = c.get("/v1/orders/7")
        assert st == 200 and h["api-version"] == "1" and h["deprecation"] == "@%d" % DEP_PAST_TS
        st, h, body = c.get("/v1/flat")
        assert st == 200 and h["x-upstream"] == "v3", h
        assert not {"api-version", "deprecation", "sunset", "link"} & set(h), h
        st, h, body = c.get("/v2/orders/7")
        assert st == 200 and h["api-version"] == "2" and not {"deprecation", "sunset", "link"} & set(h), h
    finally:
        c.close()


def test_docs_without_deprecated_adds_no_link(gatehouse, three):
    g = start_main(gatehouse, three)
    st, hdrs, body = get(g.port, "/raw/x", {"Api-Version": "2"})
    assert st == 200 and one(hdrs, "x-upstream") == "v2", body
    assert one(hdrs, "sunset") == imf(SUN_FUTURE_TS)
    assert values(hdrs, "deprecation") == [] and values(hdrs, "link") == [], hdrs


def raw_answer(*header_lines):
    """A /raw target that makes upstream.py answer exactly these headers and "ok"."""
    resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + "".join(h + "\r\n" for h in header_lines) + "\r\nok"
    return "/raw?b=" + resp.encode().hex()


def test_the_gateways_version_headers_replace_the_upstreams(gatehouse, three):
    g = start_main(gatehouse, three)
    st, hdrs, body = get(g.port, raw_answer("Api-Version: 7", "Deprecation: @1",
                                            "Sunset: Thu, 01 Jan 1970 00:00:00 GMT"))
    assert (st, body) == (200, b"ok"), body
    assert values(hdrs, "api-version") == ["1"], hdrs
    assert values(hdrs, "deprecation") == ["@%d" % DEP_PAST_TS], hdrs
    assert values(hdrs, "sunset") == [imf(SUN_FUTURE_TS)], hdrs
    assert recorded(three["v1"])[0]["h"]["api-version"] == ["1"]


def test_the_deprecation_link_is_added_to_the_upstreams_links(gatehouse, three):
    # SPEC §6: "docs *adds* Link: <URL>; rel="deprecation"". Link is a list
    # (RFC 8288): an upstream's own links (pagination, here) must survive.
    g = start_main(gatehouse, three)
    st, hdrs, body = get(g.port, raw_answer('Link: <https://api.example.com/orders?page=2>; rel="next"'))
    assert (st, body) == (200, b"ok"), body
    links = [l.strip() for v in values(hdrs, "link") for l in v.split(",")]
    assert '<%s>; rel="deprecation"' % DOCS in links, hdrs
    assert '<https://api.example.com/orders?page=2>; rel="next"' in links, hdrs


def test_after_the_sunset_410(gatehouse, three):
    g = start_main(gatehouse, three)
    for resp in (get(g.port, "/v0/orders/7"), get(g.port, "/orders/7", {"Api-Version": "0"}),
                 get(g.port, "/orders/7?version=0")):
        doc = problem(resp, 410, "version_sunset")
        assert doc["versions"] == ["1", "2", "3"], doc
    nothing_reached(three)
    log = [l for l in g.access_log(wait_for=3) if l["status"] == 410]
    assert [(l["error"], l["version"], l["route"]) for l in log] == [("version_sunset", "0", "orders")] * 3


def test_sunset_is_checked_per_request_against_the_clock(gatehouse, three):
    # the sunset a few seconds ahead, to the second (RFC 3339): served until then, 410 after, no reload
    sunset = int(time.time()) + 4
    cfg = MAIN.replace('"0": { upstream: v1, deprecated: %s, sunset: "%s"' % (OLD_DEP, rfc3339(SUN_PAST_TS)),
                       '"0": { upstream: v1, deprecated: %s, sunset: "%s"' % (OLD_DEP, rfc3339(sunset)))
    assert cfg != MAIN
    g = start_main(gatehouse, three, config=cfg)
    st, hdrs, body = get(g.port, "/v0/orders/7")
    assert time.time() < sunset, "the gateway took too long to start for this test"
    assert st == 200 and one(hdrs, "x-upstream") == "v1", body
    assert one(hdrs, "sunset") == imf(sunset)
    assert one(hdrs, "deprecation") == "@%d" % OLD_DEP_TS
    assert one(hdrs, "link") == '<https://example.com/gone>; rel="deprecation"'
    recorded(three["v1"])
    time.sleep(max(0.0, sunset - time.time()) + 0.2)
    problem(get(g.port, "/v0/orders/7"), 410, "version_sunset")
    nothing_reached(three)


# ================================================================ a version's own settings

def test_version_headers_merge_over_the_route(gatehouse, three):
    g = start_main(gatehouse, three)
    sent = {"X-Drop-Route": "a", "X-Drop-Two": "b", "X-Extra": "client", "X-Keep": "k"}
    # version 1 has none of its own: the route's
    st, hdrs, body = get(g.port, "/v1/orders", sent)
    assert st == 200
    assert one(hdrs, "x-route-resp") == "orders" and one(hdrs, "x-shared") == "route"
    h = recorded(three["v1"])[0]["h"]
    assert h["x-route"] == ["orders"] and h["x-extra"] == ["route"] and h["x-keep"] == ["k"]
    assert "x-drop-route" not in h and h["x-drop-two"] == ["b"] and "x-two" not in h
    # version 2: its set replaces the route's X-Extra, adds X-Two; both removes apply
    st, hdrs, body = get(g.port, "/v2/orders", sent)
    assert st == 200
    assert one(hdrs, "x-route-resp") == "orders" and one(hdrs, "x-shared") == "two"
    h = recorded(three["v2"])[0]["h"]
    assert h["x-route"] == ["orders"] and h["x-extra"] == ["two"] and h["x-two"] == ["2"]
    assert h["x-keep"] == ["k"] and "x-drop-route" not in h and "x-drop-two" not in h


REWRITE = """\
listen: [ { address: "127.0.0.1:{port}" } ]
upstreams:
  v1: { targets: [ "{v1}" ] }
  v2: { targets: [ "{v2}" ] }
  v3: { targets: [ "{v3}" ] }
routes:
  - name: orders
    match: { prefix: /orders }
    rewrite: { prefix: /svc }
    versions:
      default: "1"
      list:
        "1": { upstream: v1 }
        "2": { upstream: v2, rewrite: { strip_prefix: true, prefix: /api/v2/orders } }
        "3": { upstream: v3, rewrite: { path: "/three/{rest}" } }
"""


def test_version_rewrite_replaces_the_routes(gatehouse, three):
    g = start_main(gatehouse, three, config=REWRITE)
    reached(get(g.port, "/v1/orders/7?q=1"), three, "v1", "/svc/orders/7?q=1", "1")
    reached(get(g.port, "/orders/7"), three, "v1", "/svc/orders/7", "1")
    reached(get(g.port, "/v2/orders/7?q=1"), three, "v2", "/api/v2/orders/7?q=1", "2")
    reached(get(g.port, "/orders/7", {"Api-Version": "2"}), three, "v2", "/api/v2/orders/7", "2")
    reached(get(g.port, "/v3/orders/7/items"), three, "v3", "/three/7/items", "3")


ALICE, BOB = "alice-key-0001", "bob-key-0002"
CONSUMERS = """\
consumers:
  - name: alice
    groups: [staff, beta]
    api_keys: [ "%s" ]
  - name: bob
    groups: [staff]
    api_keys: [ "%s" ]
""" % (ALICE, BOB)

PLUGINS = """\
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: stdout }
upstreams:
  v1: { targets: [ "{v1}" ] }
  v2: { targets: [ "{v2}" ] }
  v3: { targets: [ "{v3}" ] }
""" + CONSUMERS + """\
routes:
  - name: orders
    match: { prefix: /orders }
    versions:
      default: "2"
      list:
        "1": { upstream: v1, plugins: { key_auth: {} }, deprecated: %(dep)s }
        "2": { upstream: v2 }
        "3": { upstream: v3, preview: true, preview_requires: { group: beta }, plugins: { key_auth: {} } }
        "4": { upstream: v3, preview: true, preview_requires: { header: X-Preview } }
  - name: locked
    match: { prefix: /locked }
    plugins: { key_auth: {} }
    versions:
      default: "1"
      list:
        "1": { upstream: v1 }
        "2": { upstream: v2, plugins: { key_auth: false } }
""" % {"dep": DEP_PAST}


def test_version_plugins(gatehouse, three):
    g = start_main(gatehouse, three, config=PLUGINS)
    # version 1 requires a key, version 2 of the same route does not
    st, hdrs, body = get(g.port, "/v1/orders/7")
    problem((st, hdrs, body), 401, "unauthorized")
    assert values(hdrs, "www-authenticate"), hdrs
    assert one(hdrs, "deprecation") == "@%d" % DEP_PAST_TS      # every response of version 1
    nothing_reached(three)
    r = reached(get(g.port, "/v1/orders/7", {"X-API-Key": BOB}), three, "v1", "/orders/7", "1")
    assert r["h"]["x-consumer"] == ["bob"]
    r = reached(get(g.port, "/v2/orders/7"), three, "v2", "/orders/7", "2")
    assert "x-consumer" not in r["h"]
    reached(get(g.port, "/orders/7"), three, "v2", "/orders/7", "2")
    # a route-wide key_auth, switched off by version 2
    problem(get(g.port, "/locked/a"), 401, "unauthorized")
    problem(get(g.port, "/v1/locked/a"), 401, "unauthorized")
    nothing_reached(three)
    reached(get(g.port, "/v1/locked/a", {"X-API-Key": ALICE}), three, "v1", "/locked/a", "1")
    reached(get(g.port, "/v2/locked/a"), three, "v2", "/locked/a", "2")


def test_preview_by_group(gatehouse, three):
    g = start_main(gatehouse, three, config=PLUGINS)
    # alice is in beta
    r = reached(get(g.port, "/v3/orders/7", {"X-API-Key": ALICE}), three, "v3", "/orders/7", "3")
    assert r["h"]["x-consumer"] == ["alice"]
    reached(get(g.port, "/orders/7", {"X-API-Key": ALICE, "Api-Version": "3"}), three, "v3", "/orders/7", "3")
    # bob is not: for him version 3 does not exist
    for resp in (get(g.port, "/v3/orders/7", {"X-API-Key": BOB}),
                 get(g.port, "/orders/7", {"X-API-Key": BOB, "Api-Version": "3"})):
        problem(resp, 404, "no_route")
    nothing_reached(three)


def test_preview_by_header(gatehouse, three):
    g = start_main(gatehouse, three, config=PLUGINS)
    problem(get(g.port, "/v4/orders/7"), 404, "no_route")
    problem(get(g.port, "/orders/7", {"Api-Version": "4"}), 404, "no_route")
    nothing_reached(three)
    reached(get(g.port, "/v4/orders/7", {"X-Preview": "1"}), three, "v3", "/orders/7", "4")
    reached(get(g.port, "/orders/7", {"Api-Version": "4", "x-preview": "yes"}), three, "v3", "/orders/7", "4")


@pytest.mark.parametrize("how", ["group", "header"])
def test_hidden_preview_looks_like_no_route_at_all(gatehouse, three, how):
    # SPEC §6 / docs: "the preview does not exist for them" -- the 404 must not
    # name the version, and must look like a real no_route 404
    g = start_main(gatehouse, three, config=PLUGINS)
    real = get(g.port, "/nothing/here")
    problem(real, 404, "no_route")
    resp = get(g.port, "/v3/orders/7", {"X-API-Key": BOB}) if how == "group" else get(g.port, "/v4/orders/7")
    doc = problem(resp, 404, "no_route")
    assert doc["detail"] == json.loads(real[2])["detail"]
    assert values(resp[1], "deprecation") == [] and values(resp[1], "sunset") == []
    assert values(resp[1], "api-version") == [], resp[1]
    nothing_reached(three)


# ================================================================ canary

CANARY = """\
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
routes:
  - name: orders
    match: { prefix: /orders }
    versions:
      default: "2"
      list:
        "1": { respond: { status: 200, body: "one" } }
        "2": { respond: { status: 200, body: "two-{mark}" } }
        "3": { echo: {}, preview: true, preview_requires: { header: X-Preview } }
      canary: { version: "3", of: "2", percent: {percent}, sticky: {sticky} }
"""

KEYS = ["user-%05d-%x" % (i, i * 2654435761 % 2 ** 32) for i in range(10000)]


def canary_gateway(gatehouse, percent, sticky="header:X-User-Id", mark="a", workers=2):
    return gatehouse(CANARY, subst={"percent": percent, "sticky": sticky, "mark": mark}, workers=workers)


def share(assignment):
    return sum(1 for v in assignment.values() if v == "3")


def test_canary_share_and_stickiness_across_requests_and_restarts(gatehouse):
    t0 = time.time()
    g = canary_gateway(gatehouse, 20)
    first = sides(g.port, KEYS, header="X-User-Id")
    assert set(first.values()) == {"2", "3"}
    n = share(first)
    assert 1900 <= n <= 2100, "%d of 10000 on the canary, want 20%% +- 1 point" % n
    # the same keys again, spread over other connections (and so other workers): the same side
    again = sides(g.port, list(reversed(KEYS)), header="X-User-Id", threads=3)
    moved = [k for k in KEYS if again[k] != first[k]]
    assert not moved, "%d keys changed side, e.g. %s" % (len(moved), moved[:5])
    # a version named explicitly is never moved by the canary
    c = Fast(g.port)
    try:
        for k in KEYS[:200]:
            st, h, body = c.get("/orders/1", [("X-User-Id", k), ("Api-Version", "1")])
            assert (st, h.get("api-version"), body) == (200, "1", b"one")
    finally:
        c.close()
    # canary requests reach the preview version without its header; asking for it directly does not
    k = next(k for k in KEYS if first[k] == "3")
    st, hdrs, body = get(g.port, "/orders/1", {"X-User-Id": k})
    assert st == 200 and json.loads(body)["version"] == "3" and one(hdrs, "api-version") == "3"
    problem(get(g.port, "/orders/1", {"X-User-Id": k, "Api-Version": "3"}), 404, "no_route")
    # a new gatehouse with the same configuration: every key on the same side
    g.check_clean_exit()
    g2 = canary_gateway(gatehouse, 20)
    after = sides(g2.port, KEYS, header="X-User-Id")
    moved = [k for k in KEYS if after[k] != first[k]]
    assert not moved, "%d keys changed side across a restart, e.g. %s" % (len(moved), moved[:5])
    elapsed = time.time() - t0
    assert elapsed < 40, "canary test took %.1fs" % elapsed


def wait_for_mark(port, mark, timeout=10):
    """Wait until the reloaded configuration answers: version 2's body carries the mark."""
    want = ("two-%s" % mark).encode()
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, hdrs, body = get(port, "/v2/orders/1")       # no sticky key: version 2 most of the time
        if body == want:
            return
        time.sleep(0.05)
    raise AssertionError("the reload did not take effect")


def test_canary_reload_raising_the_percentage_keeps_every_canary_key(gatehouse):
    g = canary_gateway(gatehouse, 5)
    at5 = sides(g.port, KEYS, header="X-User-Id")
    n5 = share(at5)
    assert 400 <= n5 <= 600, n5
    g.subst.update(percent=10, mark="b")
    g.reload(CANARY)
    wait_for_mark(g.port, "b")
    at10 = sides(g.port, KEYS, header="X-User-Id")
    n10 = share(at10)
    assert 900 <= n10 <= 1100, n10
    lost = [k for k in KEYS if at5[k] == "3" and at10[k] != "3"]
    assert not lost, "%d canary keys went back to version 2 on raising the percentage, e.g. %s" % (
        len(lost), lost[:5])
    # a decimal percentage, down again: the canary keys are a subset of those at 10%
    g.subst.update(percent="2.5", mark="c")
    g.reload(CANARY)
    wait_for_mark(g.port, "c")
    at25 = sides(g.port, KEYS, header="X-User-Id")
    n25 = share(at25)
    assert 150 <= n25 <= 350, n25
    assert all(at10[k] == "3" for k in KEYS if at25[k] == "3")


def test_canary_sticky_cookie(gatehouse):
    g = canary_gateway(gatehouse, 20, sticky="cookie:uid")
    keys = KEYS[:3000]
    first = sides(g.port, keys, cookie="uid")
    n = share(first)
    assert 450 <= n <= 750, n            # 20% of 3000, +- 5 points
    again = sides(g.port, keys, cookie="uid", threads=2)
    assert again == first
    # a header of the cookie's name is no cookie: without the cookie, placement is random
    got = many(g.port, 300, headers=[("uid", keys[0])])
    assert set(got) == {"2", "3"}, got


def test_canary_without_a_sticky_key_is_random(gatehouse):
    g = canary_gateway(gatehouse, 50)
    got = many(g.port, 400)                           # no X-User-Id at all
    n = got.count("3")
    assert set(got) == {"2", "3"} and 120 <= n <= 280, n
    got = many(g.port, 400, headers=[("X-User-Id", "")])   # an empty key is no key
    assert 120 <= got.count("3") <= 280, got.count("3")
    # with a key: always the same side
    got = many(g.port, 100, headers=[("X-User-Id", "the-same-user")])
    assert len(set(got)) == 1, got


CANARY_CONSUMER = """\
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
consumers:
%(consumers)s
routes:
  - name: orders
    match: { prefix: /orders }
    plugins: { key_auth: {} }
    versions:
      default: "2"
      list:
        "2": { respond: { status: 200, body: "two" }, deprecated: %(dep)s, sunset: %(sun)s, docs: "%(docs)s" }
        "3": { respond: { status: 200, body: "three" } }
      canary: { version: "3", of: "2", percent: 50, sticky: consumer }
  - name: by-ip
    match: { prefix: /ip }
    versions:
      default: "2"
      list:
        "2": { respond: { status: 200, body: "two" } }
        "3": { respond: { status: 200, body: "three" } }
      canary: { version: "3", of: "2", percent: 50, sticky: ip }
""" % {"consumers": "\n".join('  - { name: c%02d, api_keys: [ "key-of-consumer-%02d" ] }' % (i, i) for i in range(24)),
       "dep": DEP_PAST, "sun": SUN_FUTURE, "docs": DOCS}


def consumer_sides(port, rounds=3):
    got = {}
    c = Fast(port)
    try:
        for _ in range(rounds):
            for i in range(24):
                st, h, body = c.get("/orders/1", [("X-API-Key", "key-of-consumer-%02d" % i)])
                assert st == 200, body
                got.setdefault(i, set()).add((h.get("api-version"), body))
    finally:
        c.close()
    return got


def test_canary_sticky_consumer_and_ip(gatehouse):
    g = gatehouse(CANARY_CONSUMER)
    got = consumer_sides(g.port)
    # each consumer always on one side, and both sides used
    assert all(len(v) == 1 for v in got.values()), got
    assert {next(iter(v)) for v in got.values()} == {("2", b"two"), ("3", b"three")}, got
    # all requests come from 127.0.0.1: sticky ip keeps them on one side
    assert len(set(many(g.port, 100, path="/ip/x"))) == 1


def test_canary_sticky_consumer_announces_only_the_chosen_versions_dates(gatehouse):
    # with sticky: consumer the version is decided after the plugins ran; a
    # request moved to the canary (3, no dates) must not carry the
    # Deprecation/Sunset/Link of the version it was moved from (2)
    g = gatehouse(CANARY_CONSUMER)
    seen = set()
    for i in range(24):
        st, hdrs, body = get(g.port, "/orders/1", {"X-API-Key": "key-of-consumer-%02d" % i})
        assert st == 200, body
        v = one(hdrs, "api-version")
        seen.add(v)
        if v == "2":
            assert body == b"two"
            assert one(hdrs, "deprecation") == "@%d" % DEP_PAST_TS and one(hdrs, "sunset") == imf(SUN_FUTURE_TS)
        else:
            assert body == b"three"
            assert (values(hdrs, "deprecation"), values(hdrs, "sunset"), values(hdrs, "link")) == ([], [], []), (
                "consumer c%02d moved to version 3 got version 2's lifecycle headers: %s" % (i, hdrs))
    assert seen == {"2", "3"}


def test_canary_to_a_version_past_its_sunset_gives_its_share_back(gatehouse):
    # check refuses a canary to a retired version; a canary whose version
    # retires while running must not turn requests for the live version 2 into 410s
    sunset = int(time.time()) + 3
    cfg = CANARY.replace('"3": { echo: {}, preview: true, preview_requires: { header: X-Preview } }',
                         '"3": { echo: {}, sunset: "%s" }' % rfc3339(sunset))
    assert cfg != CANARY
    g = gatehouse(cfg, subst={"percent": 100, "sticky": "header:X-User-Id", "mark": "a"})
    st, hdrs, body = get(g.port, "/orders/1", {"X-User-Id": "u1"})
    assert time.time() < sunset, "the gateway took too long to start for this test"
    assert st == 200 and one(hdrs, "api-version") == "3", body
    time.sleep(max(0.0, sunset - time.time()) + 0.2)
    problem(get(g.port, "/orders/1", {"Api-Version": "3"}), 410, "version_sunset")
    for hdrs_sent in ({"X-User-Id": "u1"}, {"Api-Version": "2", "X-User-Id": "u1"}, {}):
        st, hdrs, body = get(g.port, "/orders/1", hdrs_sent)
        assert (st, body) == (200, b"two-a"), ("a request for the live version 2 got", st, body)
        assert one(hdrs, "api-version") == "2"


# ================================================================ logs and the command line

def test_access_log_names_the_version(gatehouse, three):
    g = start_main(gatehouse, three)
    ids = {}
    for label, path, hdrs in (("path", "/v1/orders/7", {}), ("header", "/orders/7", {"Api-Version": "3"}),
                              ("default", "/orders/7", {}), ("query", "/orders?version=1", {}),
                              ("sunset", "/v0/orders", {}), ("unknown", "/v9/orders", {})):
        st, h, body = get(g.port, path, hdrs)
        ids[one(h, "x-request-id")] = label
    log = g.access_log(wait_for=len(ids))
    by = {ids[l["request_id"]]: l for l in log if l["request_id"] in ids}
    assert set(by) == set(ids.values()), log
    assert {k: (v["version"], v["status"], v["route"]) for k, v in by.items()} == {
        "path": ("1", 200, "orders"), "header": ("3", 200, "orders"), "default": ("2", 200, "orders"),
        "query": ("1", 200, "orders"), "sunset": ("0", 410, "orders"), "unknown": (None, 400, "orders")}
    assert by["unknown"]["error"] == "version_unknown"
    # unversioned routes log no version
    st, h, body = get(g.port, "/v1/flat")
    rid = one(h, "x-request-id")
    line = next(l for l in g.access_log(wait_for=len(ids) + 1) if l["request_id"] == rid)
    assert line["version"] is None and line["route"] == "flat"


def cli_config(tmp, text=None):
    text = MAIN.replace("{v1}", "127.0.0.1:19001").replace("{v2}", "127.0.0.1:19002") \
               .replace("{v3}", "127.0.0.1:19003").replace("{port}", "18080") if text is None else text
    return write(tmp, "versions.yaml", text)


@pytest.fixture
def tmp(tmp_path):
    return str(tmp_path)


def test_routes_lists_the_versions(tmp):
    path = cli_config(tmp)
    rc, out, err = gh("routes", "-c", path)
    assert rc == 0, err
    lines = out.splitlines()
    i = next(i for i, l in enumerate(lines) if re.match(r"^\s*\d+\s+orders\s", l))
    block = []
    for l in lines[i + 1:]:
        if re.match(r"^\s*\d+\s+\S", l):
            break
        block.append(l)
    text = "\n".join(block)

    def vline(name):
        found = [l for l in block if re.search(r"\bversion\s+%s\b" % name, l)]
        assert len(found) == 1, (name, text)
        return found[0]

    assert "v1" in vline("1") and DEP_PAST in vline("1") and SUN_FUTURE in vline("1")
    assert "v2" in vline("2") and not re.search(r"\d{4}-\d\d-\d\d", vline("2"))
    assert "v3" in vline("3") and rfc3339(SUN_FUTURE3_TS)[:10] in vline("3")
    assert "v1" in vline("0") and "past" in vline("0")
    # the route line names the default
    assert "default 2" in lines[i], lines[i]


def test_explain_shows_the_version_and_the_forwarded_path(tmp):
    path = cli_config(tmp)
    rc, out, err = gh("explain", "-c", path, "GET", "/v1/orders/7")
    assert rc == 0, err
    assert re.search(r"^route:\s+orders\b", out, re.M), out
    assert re.search(r"^version:\s+1\b.*\bpath\b", out, re.M), out
    assert re.search(r"^forwarded:\s+/orders/7$", out, re.M), out
    assert re.search(r"^upstream:\s+v1\b.*127\.0\.0\.1:19001", out, re.M), out
    # by header, by default, with the query kept
    rc, out, err = gh("explain", "-c", path, "GET", "/orders/7?version=1", "-H", "Api-Version: v3")
    assert rc == 0 and re.search(r"^version:\s+3\b.*\bheader\b", out, re.M), out
    assert re.search(r"^forwarded:\s+/orders/7\?version=1$", out, re.M), out
    rc, out, err = gh("explain", "-c", path, "GET", "/orders/7")
    assert rc == 0 and re.search(r"^version:\s+2\b.*\bdefault\b", out, re.M), out
    # the errors a request would get
    rc, out, err = gh("explain", "-c", path, "GET", "/v9/orders/7")
    assert "400" in out and "version_unknown" in out, out
    rc, out, err = gh("explain", "-c", path, "GET", "/strict/x")
    assert "400" in out and "version_required" in out, out
    rc, out, err = gh("explain", "-c", path, "GET", "/v0/orders/7")
    assert "410" in out and "version_sunset" in out, out
    assert not re.search(r"^forwarded:", out, re.M), out


# ================================================================ check

CHECK = """\
listen: [ { address: "127.0.0.1:18080" } ]
upstreams:
  v1: { targets: [ "127.0.0.1:19001" ] }
  v2: { targets: [ "127.0.0.1:19002" ] }
routes:
  - name: orders
    match: { prefix: /orders }
    versions:
      from: [path, header:Api-Version, query:version, accept]
      default: "2"
      list:
        "1": { upstream: v1, deprecated: %(dep)s, sunset: %(sun)s, docs: "https://example.com/m" }
        "2": { upstream: v2, request_headers: { set: { X-Extra: two } } }
        "3": { echo: {}, preview: true, preview_requires: { group: beta } }
        "0": { upstream: v1, deprecated: %(old)s, sunset: "%(gone)s" }
      canary: { version: "3", of: "2", percent: 5, sticky: header:X-User-Id }
""" % {"dep": DEP_PAST, "sun": SUN_FUTURE, "old": OLD_DEP, "gone": rfc3339(SUN_PAST_TS)}


def check_errors(tmp, text):
    path = write(tmp, "check.yaml", text)
    rc, out, err = gh("check", "-c", path)
    return rc, diag_lines(out + err, path), out + err


def test_check_accepts_the_versioned_config(tmp):
    rc, diags, output = check_errors(tmp, CHECK)
    assert rc == 0, output
    rc, diags, output = check_errors(tmp, MAIN.replace("{v1}", "127.0.0.1:1").replace("{v2}", "127.0.0.1:2")
                                     .replace("{v3}", "127.0.0.1:3").replace("{port}", "18080"))
    assert rc == 0, output


def _sub(old, new):
    assert old in CHECK, old
    return CHECK.replace(old, new)


SUN_BEFORE = day(-40)[0]       # before DEP_PAST (30 days ago)
CHECK_CASES = [
    # (id, text, needle at the reported position, nth occurrence, message regex)
    ("sunset-before-deprecated",
     _sub("sunset: %s," % SUN_FUTURE, "sunset: %s," % SUN_BEFORE),
     SUN_BEFORE, 1, r"sunset is before deprecated"),
    ("canary-unknown-version",
     _sub('canary: { version: "3"', 'canary: { version: "7"'),
     'version: "7"', 1, r"'7'.*not in the list"),
    ("default-not-in-list",
     _sub('default: "2"', 'default: "9"'),
     'default: "9"', 1, r"default '9' is not in the list"),
    ("invalid-date",
     _sub("deprecated: %s," % DEP_PAST, "deprecated: 2026-02-30,"),
     "2026-02-30", 1, r"invalid date '2026-02-30'"),
    ("invalid-date-format",
     _sub("sunset: %s," % SUN_FUTURE, "sunset: 1st of June,"),
     "1st of June", 1, r"invalid date"),
    ("invalid-rfc3339",
     _sub("sunset: %s," % SUN_FUTURE, 'sunset: "2027-01-01T25:00:00Z",'),
     '"2027-01-01T25:00:00Z"', 1, r"invalid date"),
    ("unknown-key-in-version",
     _sub('"2": { upstream: v2, request_headers', '"2": { upstream: v2, deprecatd: 2026-01-01, request_headers'),
     "deprecatd", 1, r"unknown key 'deprecatd'.*did you mean 'deprecated'"),
    ("preview-requires-without-preview",
     _sub('"3": { echo: {}, preview: true, preview_requires', '"3": { echo: {}, preview_requires'),
     "preview_requires", 1, r"preview_requires needs preview"),
    ("canary-percent",
     _sub("percent: 5,", "percent: 5.125,"),
     "5.125", 1, r"invalid percent"),
    ("canary-sticky",
     _sub("sticky: header:X-User-Id", "sticky: header"),
     "header }", 1, r"invalid sticky"),
    ("unknown-version-upstream",
     _sub('"2": { upstream: v2,', '"2": { upstream: v9,'),
     "upstream: v9", 1, r"upstream 'v9' is not defined"),
]


@pytest.mark.parametrize("text,needle,nth,message", [c[1:] for c in CHECK_CASES], ids=[c[0] for c in CHECK_CASES])
def test_check_refuses(tmp, text, needle, nth, message):
    rc, diags, output = check_errors(tmp, text)
    assert rc == 1, output
    where = pos(text, needle, nth)
    assert any(at == where and re.search(message, msg) for at, msg in diags), (where, message, output)
    # `run` refuses the same file
    g = Gatehouse(text, expect_start=False)
    try:
        assert g.proc.wait(timeout=10) == 1
        assert re.search(message, g.stderr()), g.stderr()
    finally:
        g.stop()


def test_check_refuses_a_canary_to_a_sunset_version(tmp):
    text = _sub('canary: { version: "3"', 'canary: { version: "0"')
    rc, diags, output = check_errors(tmp, text)
    assert rc == 1, output
    # the value names the retired version (or the key that references it)
    where = {pos(text, '"0", of:'), pos(text, 'version: "0"')}
    hits = [(at, msg) for at, msg in diags if at in where]
    assert hits and re.search(r"'0'.*sunset", hits[0][1]), (where, output)
    # `of` a retired version too
    text = _sub('of: "2"', 'of: "0"')
    rc, diags, output = check_errors(tmp, text)
    assert rc == 1 and any("'0'" in m and "sunset" in m for _, m in diags), output


def test_check_refuses_a_version_without_a_target(tmp):
    text = _sub('"2": { upstream: v2, request_headers', '"2": { request_headers')
    rc, diags, output = check_errors(tmp, text)
    assert rc == 1, output
    # at the version (its name), or the mapping that lacks the target
    key = pos(text, '"2": {')
    brace = pos(text, '{ request_headers')
    hits = [(at, m) for at, m in diags if at in (key, brace)]
    assert hits and "version '2'" in hits[0][1] and "target" in hits[0][1], (key, brace, output)
    # a block-style version the same
    text = _sub('        "2": { upstream: v2, request_headers: { set: { X-Extra: two } } }\n',
                '        "2":\n          rewrite: { prefix: /two }\n')
    rc, diags, output = check_errors(tmp, text)
    assert rc == 1, output
    lines = {pos(text, '"2":'), pos(text, "rewrite: { prefix: /two }")}
    assert any(at in lines and "target" in m for at, m in diags), (lines, output)


def test_check_reports_every_version_error_at_once(tmp):
    text = _sub('default: "2"', 'default: "9"')
    text = text.replace("sunset: %s," % SUN_FUTURE, "sunset: %s," % SUN_BEFORE) \
               .replace('canary: { version: "3"', 'canary: { version: "7"')
    rc, diags, output = check_errors(tmp, text)
    assert rc == 1, output
    msgs = " | ".join(m for _, m in diags)
    assert "sunset is before deprecated" in msgs and "'9'" in msgs and "'7'" in msgs, output
