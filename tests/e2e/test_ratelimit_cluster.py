"""rate_limit with scope: cluster (SPEC §5.3, §12.13): gateways share one
count in Redis. Two gatehouse processes against one real redis-server and
against a real three-master Redis Cluster let exactly N through; Redis
killed mid-test: on_error: allow keeps serving under the local floor,
deny answers 503 rate_limit_unavailable; Redis back: counting in Redis
resumes without a gateway restart. And scope: cluster without redis: is
refused at load, at the scope's position."""
import json
import os
import signal
import socket
import struct
import threading

from conftest import ResponseReader, server_conns, server_sockets, wait_until
from redis_server import redis, redis_cluster  # noqa: F401  (fixtures)
from test_cli import diag_lines, gh, pos, write

CONFIG = """listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: off }
redis: { REDIS, timeout: 500ms, on_error: ON_ERROR }
routes:
  - name: api
    match: { prefix: /api }
    respond: { status: 200, body: ok }
    plugins: { rate_limit: { LIMIT, key: KEY, scope: cluster } }
"""


def config(redis_where, limit="limit: 30, window: 1h", key="route", on_error="deny"):
    return (CONFIG.replace("REDIS", redis_where).replace("LIMIT", limit).replace("KEY", key)
            .replace("ON_ERROR", on_error))


def one(address):
    return 'address: "%s"' % address


def wait_connected(g, address, n):
    g.wait_stderr(lambda err: err.count("redis %s: connected" % address) >= n,
                  what="%d connections to %s" % (n, address))


def hammer(gates, clients=8, each=20, headers=None):
    """clients threads, each sending `each` requests on fresh connections,
    alternating between the gatehouses: the (status, headers, body) of all."""
    results = []
    lock = threading.Lock()

    def client(i):
        mine = [gates[(i + k) % len(gates)].get("/api", headers=headers) for k in range(each)]
        with lock:
            results.extend(mine)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def check_exactly(results, n):
    statuses = [r[0] for r in results]
    assert statuses.count(200) == n, sorted(set(statuses))
    assert statuses.count(429) == len(results) - n
    # every answer came from one count: each allowed request saw a different remainder
    assert sorted(int(h["ratelimit-remaining"]) for st, h, _ in results if st == 200) == list(range(n))
    for st, h, body in results:
        assert h["ratelimit-limit"] == str(n) and h["ratelimit-policy"] == "%d;w=3600" % n
        if st == 429:
            assert json.loads(body)["code"] == "rate_limited"
            assert int(h["retry-after"]) > 0


def test_two_gateways_one_redis_exactly_n(gatehouse, redis):
    r = redis()
    cfg = config(one(r.address))
    gates = [gatehouse(cfg, workers=2), gatehouse(cfg, workers=2)]
    for g in gates:
        wait_connected(g, r.address, 2)
    check_exactly(hammer(gates), 30)
    # counted in Redis, under one key (the request key's hash, no header value)
    keys = r.cli("--raw", "KEYS", "gh:rl:*").split()
    assert len(keys) == 1 and len(keys[0]) == len("gh:rl:{0123456789abcdef}"), keys


def test_two_gateways_one_redis_cluster_exactly_n(gatehouse, redis_cluster):
    c = redis_cluster()
    cfg = config("cluster: [ %s ]" % ", ".join('"%s"' % s for s in c.seeds[:1]))
    gates = [gatehouse(cfg, workers=2), gatehouse(cfg, workers=2)]
    for g in gates:   # every worker has the slot map
        g.wait_stderr(lambda err: err.count("redis cluster: 16384 of 16384 slots mapped over 3 nodes") >= 2,
                      what="both workers mapped the slots")
    check_exactly(hammer(gates), 30)
    # two limits of one key (one script call, one slot): both counted on the same master
    held = {a: k for a, k in c.keys("gh:rl:*").items() if k}
    assert len(held) == 1 and len(list(held.values())[0]) == 1, held


def test_several_limits_one_call_refused_counts_nowhere(gatehouse, redis):
    """3 per hour and 5 per two hours, counted in Redis by one script call:
    3 pass, then 429 naming the first; the refused requests counted in
    neither limit (both hashes hold 3)."""
    r = redis()
    limits = "limits: [ { limit: 3, window: 1h }, { limit: 5, window: 2h } ]"
    g = gatehouse(config(one(r.address), limit=limits, key="header:X-Client"), workers=1)
    wait_connected(g, r.address, 1)
    h = {"X-Client": "a"}
    st = [g.get("/api", headers=h) for _ in range(5)]
    assert [s[0] for s in st] == [200, 200, 200, 429, 429]
    assert [s[1]["ratelimit-remaining"] for s in st] == ["2", "1", "0", "0", "0"]
    assert st[0][1]["ratelimit-limit"] == "3" and st[3][1]["ratelimit-limit"] == "3"
    assert json.loads(st[3][2])["detail"] == "limit of 3 per 1h reached for header X-Client"
    # in Redis: the two limits' hashes, the 2h one holding 3 (the refused two counted nowhere)
    keys = sorted(r.cli("--raw", "KEYS", "gh:rl:*").split())
    assert len(keys) == 2 and keys[1] == keys[0] + ":1", keys
    assert r.cli("--raw", "HGET", keys[1], "c").strip() == "3"
    assert r.cli("--raw", "HGET", keys[0], "c").strip() == "3"


def test_redis_down_allow_keeps_serving_under_the_local_floor(gatehouse, redis):
    r = redis()
    cfg = config(one(r.address), limit="limit: 5, window: 1h", key="header:X-Client", on_error="allow")
    g1, g2 = gatehouse(cfg, workers=1), gatehouse(cfg, workers=1)
    for g in (g1, g2):
        wait_connected(g, r.address, 1)
    a = {"X-Client": "a"}
    assert [g1.get("/api", headers=a)[0] for _ in range(3)] == [200] * 3
    r.stop()
    g1.wait_stderr("reconnecting", what="the loss noticed")
    # Redis is gone: served, but this gateway's own count (3 so far) still stops at 5
    st = [g1.get("/api", headers=a) for _ in range(4)]
    assert [s[0] for s in st] == [200, 200, 429, 429]
    assert st[1][1]["ratelimit-remaining"] == "0"
    g1.wait_stderr("rate_limit: Redis unavailable: ", what="the failures logged")
    assert "on_error: allow (local limits apply)" in g1.stderr()
    # Redis back (empty): both gateways count in it again, no restart
    r.start()
    for g in (g1, g2):
        wait_connected(g, r.address, 2)
    b = {"X-Client": "b"}
    got = [g.get("/api", headers=b)[0] for g in (g1, g2, g1, g2, g1, g2, g1, g2)]
    assert got.count(200) == 5 and got[5:] == [429] * 3, got
    assert r.cli("--raw", "KEYS", "gh:rl:*").split() != []


def test_redis_down_deny_answers_503(gatehouse, redis):
    r = redis()
    g = gatehouse(config(one(r.address), limit="limit: 100, window: 1h", on_error="deny"), workers=2)
    wait_connected(g, r.address, 2)
    assert g.get("/api")[0] == 200
    r.stop()
    g.wait_stderr(lambda err: err.count("reconnecting") >= 2, what="both workers noticed")
    for _ in range(4):
        st, h, body = g.get("/api")
        assert st == 503
        assert h["content-type"] == "application/problem+json"
        assert json.loads(body)["code"] == "rate_limit_unavailable"
        assert "ratelimit-remaining" not in h
    r.start()
    wait_connected(g, r.address, 4)
    st, h, _ = g.get("/api")
    assert st == 200 and h["ratelimit-remaining"] == "99"   # Redis was empty: its count starts again


def test_client_leaving_while_redis_answers_late(gatehouse, redis):
    """A request waits on Redis (stopped with SIGSTOP, timeout 10 s); its
    client resets the connection: the gateway drops it at once (not after
    the timeout) and cancels its interest; Redis answers afterwards into
    nothing, and the next request is served normally."""
    r = redis()
    g = gatehouse(config(one(r.address), limit="limit: 100, window: 1h").replace("500ms", "10s"), workers=1)
    wait_connected(g, r.address, 1)
    os.kill(r.proc.pid, signal.SIGSTOP)
    try:
        a = socket.create_connection(("127.0.0.1", g.port))
        a.sendall(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
        # the gateway asked Redis: the call sits unread in Redis's socket
        wait_until(lambda: any(q > 0 for q, _ in server_sockets(r.port)), what="the call sent to Redis")
        # leave with a reset (a FIN alone is a half-close: HTTP/1.1 answers it)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()
        wait_until(lambda: server_conns(g.port) == 0, 5, "the gateway dropped the client's connection")
    finally:
        os.kill(r.proc.pid, signal.SIGCONT)
    b = socket.create_connection(("127.0.0.1", g.port))
    b.sendall(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
    st, h, _ = ResponseReader(b).response()
    b.close()
    assert st == 200 and h["ratelimit-remaining"] == "98"   # the left client's request was counted
    g.check_clean_exit()


def test_cluster_scope_without_redis_is_refused_at_load(tmp_path):
    text = ('listen: [ { address: "127.0.0.1:1" } ]\n'
            "routes:\n"
            "  - name: api\n    match: { prefix: /api }\n    respond: { body: ok }\n"
            "    plugins: { rate_limit: { limit: 5, window: 1m, scope: cluster } }\n")
    path = write(str(tmp_path), "gatehouse.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc != 0
    assert diag_lines(err, path) == [(pos(text, "cluster } }"),
                                      "rate_limit scope 'cluster' needs a top-level redis: section "
                                      "(redis: { address: host:port })")]


def test_routes_and_explain_show_a_cluster_limit_and_ask_redis_nothing(tmp_path, redis):
    r = redis()
    text = config(one(r.address), limit="limits: [ { limit: 10, window: 1s }, { limit: 1000, window: 1h } ]")
    text = text.replace("{port}", "1")
    path = write(str(tmp_path), "gatehouse.yaml", text)
    want = "rate_limit(10 per 1s and 1000 per 1h by route, sliding_window, cluster)"
    for args in (("routes",), ("explain", "GET", "/api")):
        rc, out, err = gh(args[0], "-c", path, *args[1:])
        assert rc == 0 and want in out, out + err
    assert r.cli("--raw", "KEYS", "*").split() == []   # a dry run counts nothing
