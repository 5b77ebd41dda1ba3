"""The response cache (SPEC §7.3, §12.19): HIT/MISS/BYPASS and Age, the
upstream's Cache-Control and Expires, 304 from the cache for both
validators, LRU eviction under `size`, max_entry, the Authorization
bypass and shared_auth, vary, HEAD, purge on the admin API, compression of
a HIT, and collapsing of concurrent misses. The upstream counts what it
gets, per request-target."""
import email.utils
import gzip
import http.client
import http.server
import json
import socket
import threading
import time
import urllib.parse

import pytest

from conftest import free_port, wait_port, wait_read, wait_until
from redis_server import redis, redis_cluster  # noqa: F401  (fixtures)

CONFIG = """
listen:
  - address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
log: { access: stdout, level: warn }
upstreams:
  main:
    targets: [ "{up}" ]
    timeouts: { connect: 1s, send: 5s, read: 10s }
    retries: { attempts: 0 }
consumers:
  - { name: alice, api_keys: [ "alice-key-0123456789abcdef" ] }
  - { name: bob, api_keys: [ "bob-key-0123456789abcdef00" ] }
routes:
  - name: keyed
    match: { prefix: /keyed }
    upstream: main
    plugins:
      key_auth: {}
      cache: { ttl: 60s }
  - name: small
    match: { prefix: /small }
    upstream: main
    plugins:
      cache: { ttl: 60s, size: 8KiB, max_entry: 3000 }
  - name: auth
    match: { prefix: /shared }
    upstream: main
    plugins:
      cache: { ttl: 60s, shared_auth: true }
  - name: zipped
    match: { prefix: /zip }
    upstream: main
    plugins:
      cache: { ttl: 60s }
      compress: { min_size: 100 }
  - name: colbig
    match: { prefix: /colbig }
    upstream: main
    plugins:
      cache: { ttl: 60s, max_entry: 3000, collapse: true }
  - name: api
    match: { prefix: / }
    upstream: main
    plugins:
      cache: { ttl: 60s, vary: [Accept-Language], key_headers: [X-Tenant], collapse: %s }
"""

LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


class Upstream:
    """Answers by query: cc, expires (seconds from now, or raw text), etag,
    lm (Last-Modified), cookie, status, n (body bytes), hold (wait for the
    test's go). Counts requests per target."""

    def __init__(self):
        self.counts = {}
        self.lock = threading.Lock()
        self.go = threading.Event()
        up = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                with up.lock:
                    up.counts[self.path] = up.counts.get(self.path, 0) + 1
                    n = up.counts[self.path]
                q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                if "hold" in q:
                    up.go.wait(20)
                status = int(q.get("status", "200"))
                body = (b"%s #%d lang=%s tenant=%s " % (self.path.encode(), n,
                        (self.headers.get("Accept-Language") or "-").encode(),
                        (self.headers.get("X-Tenant") or "-").encode()))
                if "n" in q:
                    body = (body * (int(q["n"]) // len(body) + 1))[:int(q["n"])]
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                if "cc" in q:
                    self.send_header("Cache-Control", q["cc"])
                if "expires" in q:
                    e = q["expires"]
                    self.send_header("Expires", email.utils.formatdate(time.time() + int(e), usegmt=True)
                                     if e.lstrip("-").isdigit() else e)
                if "etag" in q:
                    self.send_header("ETag", q["etag"])
                if "lm" in q:
                    self.send_header("Last-Modified", LAST_MODIFIED)
                if "cookie" in q:
                    self.send_header("Set-Cookie", "s=1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.port = free_port()
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        self.srv.request_queue_size = 256
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        wait_port(self.port)

    def count(self, target):
        with self.lock:
            return self.counts.get(target, 0)

    def stop(self):
        self.go.set()
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def up():
    u = Upstream()
    yield u
    u.stop()


def start(gatehouse, up, collapse="true", **kw):
    admin = free_port()
    g = gatehouse(CONFIG % collapse, subst={"up": "127.0.0.1:%d" % up.port, "admin": admin}, **kw)
    wait_port(admin)
    g.admin = admin
    return g


@pytest.fixture
def g(gatehouse, up):
    return start(gatehouse, up)


def cache_of(h):
    return h.get("gatehouse-cache")


def test_miss_then_hit_with_age(g, up):
    s1, h1, b1 = g.get("/a?x=1")
    assert (s1, cache_of(h1)) == (200, "MISS")
    assert h1.get("age") == "0"   # collapse: the MISS is served from its fill's entry
    s2, h2, b2 = g.get("/a?x=1")
    assert (s2, cache_of(h2), b2) == (200, "HIT", b1)
    assert int(h2["age"]) >= 0 and h2["content-type"] == "text/plain"
    assert h2["x-request-id"] != h1["x-request-id"]
    assert up.count("/a?x=1") == 1
    # the query is part of the key
    h3 = g.get("/a?x=2")[1]
    assert cache_of(h3) == "MISS"
    # each collapsed fill is a sub-request of its own (under its parent's
    # request id), logged without a cache field. Workers write their lines in
    # batches, so lines of two workers are matched by request id, not order.
    log = g.access_log(wait_for=5)
    cache = {l["request_id"]: l["cache"] for l in log if l["cache"]}
    assert len(cache) == 3 and [l["cache"] for l in log].count(None) == 2
    assert [cache[h["x-request-id"]] for h in (h1, h2, h3)] == ["miss", "hit", "miss"]
    c = http.client.HTTPConnection("127.0.0.1", g.admin, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    assert 'gatehouse_cache_total{route="api",result="hit"} 1' in text
    assert 'gatehouse_cache_total{route="api",result="miss"} 2' in text


@pytest.mark.parametrize("cc,stored", [
    ("no-store", False), ("private", False), ("no-cache", False), ("max-age=0", False),
    ("max-age=60", True), ("public, s-maxage=60", True), ("s-maxage=0, max-age=60", False),
])
def test_cache_control(g, up, cc, stored):
    t = "/cc?cc=" + urllib.parse.quote(cc)
    g.get(t)
    h = g.get(t)[1]
    assert cache_of(h) == ("HIT" if stored else "MISS")
    assert up.count(t) == (1 if stored else 2)


def test_max_age_shorter_than_ttl_wins(g, up):
    t = "/short?cc=max-age%3D1"
    g.get(t)
    assert cache_of(g.get(t)[1]) == "HIT"
    # expired once a second has passed: the next request is a MISS again
    wait_until(lambda: cache_of(g.get(t)[1]) == "MISS", timeout=5, what="the entry to expire")
    assert up.count(t) == 2


def test_expires(g, up):
    future, past, bad = "/exp?expires=60", "/exp?expires=-60", "/exp?expires=soon"
    for t in (future, past, bad):
        g.get(t)
        g.get(t)
    assert (up.count(future), up.count(past), up.count(bad)) == (1, 2, 2)


def test_set_cookie_and_errors_not_stored(g, up):
    for t in ("/ck?cookie=1", "/err?status=500", "/err?status=206"):
        g.get(t)
        assert cache_of(g.get(t)[1]) == "MISS"
        assert up.count(t) == 2
    g.get("/nf?status=404")
    assert cache_of(g.get("/nf?status=404")[1]) == "HIT"


def test_304_from_cache(g, up):
    t = "/v?etag=%22v1%22&lm=1"
    g.get(t)
    s, h, b = g.request("GET", t, headers={"If-None-Match": '"v1"'})
    assert (s, b, h["etag"], cache_of(h)) == (304, b"", '"v1"', "HIT")
    s, h, _ = g.request("GET", t, headers={"If-None-Match": 'W/"v0", W/"v1"'})
    assert s == 304
    s, _, _ = g.request("GET", t, headers={"If-None-Match": '"v2"'})
    assert s == 200
    s, h, _ = g.request("GET", t, headers={"If-Modified-Since": LAST_MODIFIED})
    assert (s, h["last-modified"]) == (304, LAST_MODIFIED)
    s, _, _ = g.request("GET", t, headers={"If-Modified-Since": "Tue, 20 Oct 2015 07:28:00 GMT"})
    assert s == 200
    assert up.count(t) == 1


def test_lru_eviction_under_size(g, up):
    # route small: size 8KiB, entries of ~2.2KiB: three fit, the fourth evicts
    # the least recently used
    a, b, c, d = ("/small/%s?n=2000" % k for k in "abcd")
    for t in (a, b, c):
        g.get(t)
    assert cache_of(g.get(a)[1]) == "HIT"   # a is now the most recent: b is the LRU
    g.get(d)
    assert cache_of(g.get(b)[1]) == "MISS"  # evicted (and stored again, evicting c)
    assert cache_of(g.get(a)[1]) == "HIT"
    assert cache_of(g.get(d)[1]) == "HIT"
    assert up.count(b) == 2 and up.count(a) == 1 and up.count(d) == 1


def test_max_entry(g, up):
    # route small collapses (the default): the first big MISS is a fill cut at
    # max_entry and then its own request; the key is then marked to pass, so
    # the next one goes upstream once, alone
    big, fits = "/small/big?n=3001", "/small/fits?n=3000"
    for t in (big, fits):
        s, _, body = g.get(t)
        assert (s, len(body)) == (200, int(t.split("=")[1]))
        g.get(t)
    assert (up.count(big), up.count(fits)) == (3, 1)


def test_authorization_bypass_and_shared_auth(g, up):
    auth = {"Authorization": "Bearer abc"}
    g.request("GET", "/p", headers=auth)
    s, h, _ = g.request("GET", "/p", headers=auth)
    assert cache_of(h) == "BYPASS" and up.count("/p") == 2
    assert cache_of(g.get("/p")[1]) == "MISS"   # the bypassed answers were not stored
    g.request("GET", "/shared/p", headers=auth)
    assert cache_of(g.request("GET", "/shared/p", headers=auth)[1]) == "HIT"
    assert up.count("/shared/p") == 1


def test_a_consumer_s_answer_never_reaches_another(g, up):
    """An API key in X-API-Key (not Authorization) identifies a consumer too:
    without shared_auth the answer is neither stored nor served."""
    for key in ("alice-key-0123456789abcdef", "bob-key-0123456789abcdef00", "alice-key-0123456789abcdef"):
        s, h, _ = g.request("GET", "/keyed/me", headers={"X-API-Key": key})
        assert (s, cache_of(h)) == (200, "BYPASS")
    assert up.count("/keyed/me") == 3


def test_vary_and_key_headers(g, up):
    en = g.request("GET", "/l", headers={"Accept-Language": "en"})[2]
    fr = g.request("GET", "/l", headers={"Accept-Language": "fr"})[2]
    assert b"lang=en" in en and b"lang=fr" in fr
    assert g.request("GET", "/l", headers={"Accept-Language": "en"})[2] == en
    t1 = g.request("GET", "/t", headers={"X-Tenant": "one"})[2]
    t2 = g.request("GET", "/t", headers={"X-Tenant": "two"})[2]
    assert t1 != t2 and b"tenant=one" in t1
    assert g.request("GET", "/t", headers={"X-Tenant": "one"})[2] == t1
    assert up.count("/l") == 2 and up.count("/t") == 2


def test_head_shares_get_entry(g, up):
    s, h, b = g.request("HEAD", "/h")
    assert (s, cache_of(h), b) == (200, "MISS", b"")   # a HEAD miss stores nothing
    full = g.get("/h")
    s, h, b = g.request("HEAD", "/h")
    assert (s, cache_of(h), b) == (200, "HIT", b"")
    assert h["content-length"] == str(len(full[2]))
    assert up.count("/h") == 2


def test_post_bypasses(g, up):
    s, h, _ = g.request("POST", "/post", body=b"x")
    assert cache_of(h) == "BYPASS"


def admin_delete(g, query):
    c = http.client.HTTPConnection("127.0.0.1", g.admin, timeout=5)
    c.request("DELETE", "/api/cache" + query)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, json.loads(body)


def test_purge(g, up):
    for t in ("/pg/one", "/pg/one?q=1", "/pg/two"):
        g.get(t)
    status, body = admin_delete(g, "?route=api&path=/pg/one")
    assert (status, body["purged"]) == (200, 2)
    assert cache_of(g.get("/pg/one")[1]) == "MISS"
    assert cache_of(g.get("/pg/two")[1]) == "HIT"
    status, body = admin_delete(g, "?route=api")
    assert status == 200 and body["purged"] >= 2
    assert cache_of(g.get("/pg/two")[1]) == "MISS"
    assert admin_delete(g, "?route=nope")[0] == 404
    status, body = admin_delete(g, "")
    assert status == 400 and body["code"] == "bad_request"


def test_gzip_on_hit(g, up):
    t = "/zip/z?n=5000"
    plain = g.get(t)[2]
    for _ in range(2):
        s, h, b = g.request("GET", t, headers={"Accept-Encoding": "gzip"})
        assert (s, cache_of(h), h.get("content-encoding")) == (200, "HIT", "gzip")
        assert gzip.decompress(b) == plain
    s, h, b = g.get(t)
    assert (cache_of(h), "content-encoding" in h, b) == ("HIT", False, plain)
    assert up.count(t) == 1




def send_all(g, target, n):
    conns = []
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=20)
        c.request("GET", target)
        conns.append(c)
    return conns


def answers(conns):
    out = []
    for c in conns:
        r = c.getresponse()
        out.append((r.status, r.getheader("Gatehouse-Cache"), r.read()))
        c.close()
    return out


@pytest.mark.parametrize("target,status", [("/col?hold=1", 200), ("/col?hold=1&status=500", 500)])
def test_collapse_100_concurrent_misses(g, up, target, status):
    conns = send_all(g, target, 100)
    wait_until(lambda: up.count(target) == 1, what="the leader's upstream request")
    wait_read(g.port, 100)   # every request is in the gateway, waiting
    up.go.set()
    got = answers(conns)
    assert {s for s, _, _ in got} == {status}
    assert len({b for _, _, b in got}) == 1   # one answer, shared
    assert sorted(c for _, c, _ in got).count("MISS") == 1
    assert up.count(target) == 1


def test_collapse_off_sends_each(gatehouse, up):
    g = start(gatehouse, up, collapse="false")
    target = "/nocol?hold=1"
    conns = send_all(g, target, 5)
    wait_until(lambda: up.count(target) == 5, what="five upstream requests")
    up.go.set()
    assert {s for s, _, _ in answers(conns)} == {200}


def request_bytes(g, target):
    """What http.client sends: the same Host, so the same cache key."""
    return b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (target.encode(), g.port)


def leave(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()   # a reset: the client is gone


def wait_gone(g, n):
    """The gateway logged n clients that left (499) before their answer."""
    wait_until(lambda: sum(1 for l in g.access_log() if l.get("status") == 499) >= n,
               what="%d clients logged as gone" % n)


def test_collapse_leader_leaves(g, up):
    # the fill is the flight's, not the leader's: its client going cancels nothing
    target = "/lead?hold=1"
    leader = socket.create_connection(("127.0.0.1", g.port))
    leader.sendall(request_bytes(g, target))
    wait_until(lambda: up.count(target) == 1, what="the fill's upstream request")
    conns = send_all(g, target, 5)
    wait_read(g.port, 6)
    leave(leader)
    wait_gone(g, 1)
    up.go.set()
    got = answers(conns)
    assert {s for s, _, _ in got} == {200} and len({b for _, _, b in got}) == 1
    assert {c for _, c, _ in got} == {"HIT"}
    assert up.count(target) == 1
    # the fill was stored: a later request is a HIT from it
    s, h, b = g.get(target)
    assert (s, cache_of(h), b) == (200, "HIT", got[0][2])
    assert up.count(target) == 1


def test_collapse_everyone_leaves(g, up):
    # nobody waits any more: the fill still ends and stores its entry
    target = "/gone?hold=1"
    socks = []
    for _ in range(4):
        c = socket.create_connection(("127.0.0.1", g.port))
        c.sendall(request_bytes(g, target))
        socks.append(c)
    wait_until(lambda: up.count(target) == 1, what="the fill's upstream request")
    wait_read(g.port, 4)
    for c in socks:
        leave(c)
    wait_gone(g, 4)
    up.go.set()
    wait_until(lambda: g.access_log() and any(l.get("path", "").startswith("/gone") and l.get("status") == 200
                                              for l in g.access_log()), what="the fill's log line")
    s, h, _ = g.get(target)
    assert (s, cache_of(h)) == (200, "HIT")
    assert up.count(target) == 1


def test_collapse_everyone_leaves_then_stop(g, up):
    # the gateway stops while a fill nobody waits for is still held: no leak
    target = "/stop?hold=1"
    c = socket.create_connection(("127.0.0.1", g.port))
    c.sendall(request_bytes(g, target))
    wait_until(lambda: up.count(target) == 1, what="the fill's upstream request")
    leave(c)
    wait_gone(g, 1)
    g.check_clean_exit()


def test_collapse_shares_a_non_storable_answer(g, up):
    # asked at the same time: one answer for all; not kept for later ones
    target = "/ns?hold=1&cc=no-store"
    conns = send_all(g, target, 10)
    wait_until(lambda: up.count(target) == 1, what="the fill's upstream request")
    wait_read(g.port, 10)
    up.go.set()
    got = answers(conns)
    assert {s for s, _, _ in got} == {200} and len({b for _, _, b in got}) == 1
    assert up.count(target) == 1
    s, h, _ = g.get(target)
    assert (s, cache_of(h)) == (200, "MISS")
    assert up.count(target) == 2


def test_collapse_over_max_entry_goes_alone(g, up):
    # the fill is cut at max_entry: every waiter then asks the upstream itself
    target = "/colbig/x?hold=1&n=3001"
    conns = send_all(g, target, 4)
    wait_until(lambda: up.count(target) == 1, what="the fill's upstream request")
    wait_read(g.port, 4)
    up.go.set()
    got = answers(conns)
    assert [(s, len(b)) for s, _, b in got] == [(200, 3001)] * 4
    assert {c for _, c, _ in got} == {"MISS"}
    assert up.count(target) == 5
    # marked to pass: a later miss goes upstream on its own, no second cut fill
    s, h, b = g.get(target)
    assert (s, cache_of(h), len(b)) == (200, "MISS", 3001)
    assert up.count(target) == 6


REDIS_CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
admin: { address: "127.0.0.1:{admin}" }
log: { access: off }
redis: { REDIS, timeout: 500ms }
upstreams:
  main: { targets: [ "{up}" ], retries: { attempts: 0 } }
routes:
  - name: api
    match: { prefix: / }
    upstream: main
    plugins:
      cache: { ttl: 60s, store: redis }
"""


def redis_gates(gatehouse, up, where, connected):
    cfg = REDIS_CONFIG.replace("REDIS", where)
    gates = [gatehouse(cfg, subst={"up": "127.0.0.1:%d" % up.port, "admin": free_port()}) for _ in range(2)]
    for g in gates:
        g.admin = g.subst["admin"]
        wait_port(g.admin)
        g.wait_stderr(lambda err: err.count(connected) >= 2, what="both workers connected to Redis")
    return gates


def check_shared(gates, up, keys):
    g1, g2 = gates
    s, h, body = g1.get("/shared-entry?cc=max-age%3D30")
    assert (s, cache_of(h)) == (200, "MISS")
    wait_until(lambda: len(keys()) == 1, what="the entry in Redis")
    for g in (g2, g1):
        s, h, b = g.get("/shared-entry?cc=max-age%3D30")
        assert (s, cache_of(h), b) == (200, "HIT", body)
        assert 0 <= int(h["age"]) <= 30
    assert up.count("/shared-entry?cc=max-age%3D30") == 1


def check_purge(gates, up, keys):
    """An entry stored in Redis by one gateway, purged through the other's
    admin API, is a MISS on the first: by path, then the whole route."""
    a, b = gates
    x, y = "/pg/x?cc=max-age%3D30", "/pg/y?cc=max-age%3D30"
    before = len(keys())
    for t in (x, y):
        assert cache_of(a.get(t)[1]) == "MISS"
    wait_until(lambda: len(keys()) == before + 2, what="both entries in Redis")
    assert admin_delete(b, "?route=api&path=/pg/x") == (200, {"route": "api", "purged": 1})
    assert len(keys()) == before + 1
    assert cache_of(a.get(x)[1]) == "MISS" and up.count(x) == 2
    assert cache_of(a.get(y)[1]) == "HIT" and up.count(y) == 1
    wait_until(lambda: len(keys()) == before + 2, what="x stored again")
    status, body = admin_delete(b, "?route=api")
    assert status == 200 and body["purged"] == before + 2
    assert keys() == []
    assert cache_of(a.get(y)[1]) == "MISS" and up.count(y) == 2


def test_redis_store_shared_by_two_gateways(gatehouse, up, redis):
    r = redis()
    gates = redis_gates(gatehouse, up, 'address: "%s"' % r.address, "redis %s: connected" % r.address)
    keys = lambda: [k for k in r.cli("KEYS", "gh:c:*").split() if k]
    check_shared(gates, up, keys)
    ttl = int(r.cli("PTTL", keys()[0]))
    assert 0 < ttl <= 30000   # max-age (shorter than ttl) is the TTL in Redis
    check_purge(gates, up, keys)
    # Redis gone: a MISS, never an error
    r.stop()
    s, h, _ = gates[1].get("/after-redis")
    assert (s, cache_of(h)) == (200, "MISS")
    # and a purge says Redis could not be reached, not that it purged
    status, body = admin_delete(gates[1], "?route=api")
    assert (status, body["code"]) == (503, "upstream_unavailable") and "redis" in body["detail"]


def test_redis_cluster_store_shared(gatehouse, up, redis_cluster):
    c = redis_cluster()
    gates = redis_gates(gatehouse, up, "cluster: [ %s ]" % ", ".join('"%s"' % s for s in c.seeds[:1]),
                        "redis cluster: 16384 of 16384 slots mapped over 3 nodes")
    keys = lambda: [k for ks in c.keys("gh:c:*").values() for k in ks]
    check_shared(gates, up, keys)
    check_purge(gates, up, keys)
