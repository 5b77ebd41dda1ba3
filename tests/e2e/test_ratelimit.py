"""The rate_limit plugin with scope: local (SPEC §5.3, §12.13) through a real
gatehouse: one exact count per process across workers, the RateLimit-*
headers and 429 `rate_limited` with Retry-After, several limits on a route,
keys by header, ip and consumer, a flood of distinct keys held under the
table's fixed size, and counts kept across a reload that leaves the limit
alone but started afresh when it changes.
"""
import json
import socket
import tempfile
import threading

from conftest import ResponseReader, wait_until
from test_cli import diag_lines, gh, pos, write


def config(plugins, top="", workers=2, extra_routes=""):
    return ("listen:\n  - address: 127.0.0.1:{port}\nworkers: %d\n"
            "log: { access: off }\n%s"
            "consumers:\n"
            "  - { name: alice, api_keys: [alice-key-123456] }\n"
            "  - { name: bob, api_keys: [bob-key-1234567] }\n"
            "routes:\n"
            "  - name: api\n    match: { prefix: /api }\n"
            "    respond: { status: 200, body: \"ok\" }\n"
            "    plugins: %s\n%s" % (workers, top, plugins, extra_routes))


def get(g, path="/api", headers=None):
    return g.get(path, headers=headers)


def statuses(g, n, headers=None):
    return [get(g, headers=headers)[0] for _ in range(n)]


def test_exactly_n_across_two_workers_with_concurrent_clients(gatehouse):
    """50 per hour, 8 clients sending 25 each on fresh connections (so both
    workers take requests at the same time): exactly 50 pass."""
    g = gatehouse(config("{ rate_limit: { limit: 50, window: 1h, key: route } }"), workers=2)
    results = []
    lock = threading.Lock()

    def client():
        mine = [get(g)[0] for _ in range(25)]
        with lock:
            results.extend(mine)
    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    assert results.count(200) == 50, sorted(set(results))
    assert results.count(429) == 150


def test_headers_and_429_with_retry_after(gatehouse):
    g = gatehouse(config("{ rate_limit: { limit: 3, window: 1m, key: ip } }"))
    for left in (2, 1, 0):
        st, h, _ = get(g)
        assert st == 200
        assert h["ratelimit-limit"] == "3"
        assert h["ratelimit-remaining"] == str(left)
        assert h["ratelimit-policy"] == "3;w=60"
    assert int(h["ratelimit-reset"]) > 0          # the next one would wait
    st, h, body = get(g)
    assert st == 429
    assert h["content-type"] == "application/problem+json"
    p = json.loads(body)
    assert p["code"] == "rate_limited" and p["status"] == 429
    assert p["detail"] == "limit of 3 per 1m reached for ip 127.0.0.1"
    assert 0 < int(h["retry-after"]) <= 120
    assert h["retry-after"] == h["ratelimit-reset"]
    assert h["ratelimit-remaining"] == "0"


def test_several_limits_on_one_route(gatehouse):
    """2 per second (a token bucket: one more every 500 ms) and 5 per hour:
    the short one refuses first, the long one once 5 went through; a
    request refused by one limit is not counted by the other."""
    g = gatehouse(config("{ rate_limit: { limits: [ { limit: 2, window: 1s }, { limit: 5, window: 1h } ],"
                         " key: ip, algorithm: token_bucket } }"))
    assert statuses(g, 2) == [200, 200]
    st, h, body = get(g)
    assert st == 429
    assert json.loads(body)["detail"] == "limit of 2 per 1s reached for ip 127.0.0.1"
    assert h["ratelimit-policy"] == "2;w=1, 5;w=3600"
    assert h["retry-after"] == "1"
    passed = [0]

    def one_more():
        if get(g)[0] == 200:
            passed[0] += 1
        return passed[0] == 3
    wait_until(one_more, timeout=10, what="three more requests let through by the 1s bucket")
    st, h, body = get(g)
    assert st == 429
    assert json.loads(body)["detail"] == "limit of 5 per 1h reached for ip 127.0.0.1"
    assert int(h["retry-after"]) > 60


def test_keys_by_header_ip_and_consumer(gatehouse):
    g = gatehouse(config(
        "{ key_auth: {}, rate_limit: { limit: 2, window: 1h } }",
        top="trusted_proxies: [127.0.0.1]\n",
        extra_routes="  - name: by-header\n    match: { prefix: /h }\n    respond: { status: 200 }\n"
                     "    plugins: { rate_limit: { limit: 2, window: 1h, key: \"header:X-Tenant\" } }\n"
                     "  - name: by-ip\n    match: { prefix: /ip }\n    respond: { status: 200 }\n"
                     "    plugins: { rate_limit: { limit: 2, window: 1h, key: ip } }\n"))
    # consumer (the default key): alice's count is hers, whatever her address
    alice = {"X-API-Key": "alice-key-123456"}
    assert statuses(g, 3, {**alice, "X-Forwarded-For": "192.0.2.1"}) == [200, 200, 429]
    st, _, body = get(g, headers={**alice, "X-Forwarded-For": "192.0.2.2"})
    assert st == 429 and "for consumer alice" in json.loads(body)["detail"]
    assert statuses(g, 2, {"X-API-Key": "bob-key-1234567"}) == [200, 200]
    # header: each tenant apart; no header = by address
    assert [get(g, "/h", {"X-Tenant": "a"})[0] for _ in range(3)] == [200, 200, 429]
    assert get(g, "/h", {"X-Tenant": "b"})[0] == 200
    assert [get(g, "/h")[0] for _ in range(3)] == [200, 200, 429]
    st, _, body = get(g, "/h", {"X-Tenant": "a"})
    assert "header X-Tenant" in json.loads(body)["detail"] and '"a"' not in body.decode()
    # ip: the client address (X-Forwarded-For from a trusted proxy)
    assert [get(g, "/ip", {"X-Forwarded-For": "198.51.100.7"})[0] for _ in range(3)] == [200, 200, 429]
    assert get(g, "/ip", {"X-Forwarded-For": "198.51.100.8"})[0] == 200


def send_distinct_keys(g, first, count, per_conn=2000, batch=500, counted=True):
    """count requests, each with its own X-Key, pipelined in batches; each
    is let through, and (counted) took its key's only request."""
    done = 0
    while done < count:
        s = socket.create_connection(("127.0.0.1", g.port))
        rd = ResponseReader(s, timeout=30)
        n_conn = min(per_conn, count - done)
        sent = 0
        while sent < n_conn:
            n = min(batch, n_conn - sent)
            s.sendall(b"".join(b"GET /api HTTP/1.1\r\nHost: x\r\nX-Key: k%d\r\n\r\n" % (first + done + sent + i)
                               for i in range(n)))
            for _ in range(n):
                st, h, _ = rd.response()
                assert st == 200 and (h["ratelimit-remaining"] == "0" or not counted), (st, h)
            sent += n
        s.close()
        done += n_conn


TABLE_MIB = 16   # docs/configuration.md: 262,144 keys of 64 bytes


def test_distinct_keys_stay_under_the_table_size(gatehouse):
    """100,000 distinct keys (then 100,000 more, near the table's size, where
    some new keys may pass uncounted): the resident memory grows by no more
    than the table's fixed 16 MiB, however many keys come."""
    g = gatehouse(config("{ rate_limit: { limit: 1, window: 1h, key: \"header:X-Key\" } }"), workers=2)
    send_distinct_keys(g, 0, 2000)      # warm up: buffers, pools, the table's first pages
    base = g.rss_kib()
    send_distinct_keys(g, 2000, 100000)
    grown = g.rss_kib() - base
    assert grown < TABLE_MIB * 1024, grown
    send_distinct_keys(g, 200000, 100000, counted=False)
    grown = g.rss_kib() - base
    assert grown < TABLE_MIB * 1024, grown
    # and the keys are counted: the first one again is refused
    st, _, _ = get(g, headers={"X-Key": "k2000"})
    assert st == 429


def test_counts_kept_across_a_reload_that_keeps_the_limit(gatehouse):
    route = "{ rate_limit: { limit: 3, window: 1h, key: route } }"
    g = gatehouse(config(route, workers=1), workers=1, args=["--log-level", "debug"])
    assert statuses(g, 4) == [200, 200, 200, 429]
    # another route added, this one untouched: the same count, the same worker context
    other = "  - name: other\n    match: { prefix: /other }\n    respond: { status: 200 }\n"
    assert g.reload(config(route, workers=1, extra_routes=other))
    assert get(g)[0] == 429
    assert "worker context released" not in g.stderr()
    # the limit changed: counted afresh, and the old context is gone (after its counts)
    assert g.reload(config(route.replace("limit: 3", "limit: 4"), workers=1, extra_routes=other))
    g.wait_stderr("rate_limit: worker context released (3 requests passed, 2 limited)")
    assert statuses(g, 5) == [200, 200, 200, 200, 429]


def test_routes_and_explain_show_the_limits():
    d = tempfile.mkdtemp()
    text = ("listen:\n  - address: 127.0.0.1:1\n"
            "routes:\n  - name: api\n    match: { prefix: /api }\n    respond: { status: 200 }\n"
            "    plugins: { rate_limit: { limits: [ { limit: 10, window: 1s }, { limit: 1000, window: 1h } ],"
            " key: [consumer, route], algorithm: token_bucket } }\n")
    path = write(d, "g.yaml", text)
    want = "rate_limit(10 per 1s and 1000 per 1h by consumer+route, token_bucket, local)"
    rc, out, err = gh("routes", "-c", path)
    assert rc == 0 and want in out, out + err
    rc, out, err = gh("explain", "-c", path, "GET", "/api")
    assert rc == 0 and want in out, out + err
