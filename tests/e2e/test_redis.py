"""The `redis:` section and each worker's Redis client (SPEC §2, §10):
one connection per worker, Redis going away and coming back picked up by
itself, a reload that changes the section moving the connections, and
TLS to Redis (`redis.tls`: a cluster limit counted through a TLS-only
Redis, a certificate from the wrong CA refused)."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

import certs
from conftest import BIN
from redis_server import redis, redis_cluster  # noqa: F401  (fixtures)
from test_ratelimit_cluster import check_exactly, hammer

CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
redis: { address: "{redis}", timeout: 50ms }
routes:
  - name: hello
    match: { path: /hello }
    respond: { body: hi }
"""


def test_one_connection_per_worker_and_redis_back_by_itself(gatehouse, redis):
    r = redis()
    g = gatehouse(CONFIG, workers=2, subst={"redis": r.address})
    g.wait_stderr(lambda err: err.count("redis %s: connected" % r.address) == 2, what="both workers connected")
    r.wait_clients(2)
    r.stop()
    g.wait_stderr(lambda err: err.count("redis %s: " % r.address) >= 4 and "reconnecting" in err,
                  what="the loss noticed")
    assert g.get("/hello")[0] == 200          # serving goes on without Redis
    r.start()                                 # same port, no gateway restart
    g.wait_stderr(lambda err: err.count("redis %s: connected" % r.address) == 4, what="both workers back")
    r.wait_clients(2)


def test_reload_moves_the_connections(gatehouse, redis):
    a, b = redis(), redis()
    g = gatehouse(CONFIG, workers=2, subst={"redis": a.address})
    a.wait_clients(2)
    g.subst["redis"] = b.address
    assert g.reload(CONFIG)
    b.wait_clients(2)
    a.wait_clients(0)
    # an unchanged section keeps them
    assert g.reload(CONFIG)
    assert g.stderr().count("redis %s: connected" % b.address) == 2
    # and removing it closes them
    assert g.reload(CONFIG.replace('redis: { address: "{redis}", timeout: 50ms }\n', ""))
    b.wait_clients(0)


def test_acl_credentials_on_every_connection(gatehouse, redis):
    r = redis("--user", "default", "off", "--user", "gh", "on", ">pw", "~*", "+@all")
    cfg = CONFIG.replace("timeout: 50ms", "username: gh, password: \"${GH_REDIS_PW}\"")
    g = gatehouse(cfg, workers=1, subst={"redis": r.address}, env={"GH_REDIS_PW": "pw"})
    g.wait_stderr("redis %s: connected" % r.address)
    out = subprocess.run(["/usr/bin/redis-cli", "-p", str(r.port), "--user", "gh", "--pass", "pw",
                          "--no-auth-warning", "CLIENT", "LIST"], capture_output=True, text=True).stdout
    assert "user=gh" in out
    assert "pw" not in g.stderr()


# ------------------------------------------------------------------ tls ---

TLS_LIMIT = """listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: off }
redis: { address: "{redis}", timeout: 500ms, on_error: deny, tls: { ca: "{ca}" } }
routes:
  - name: api
    match: { prefix: /api }
    respond: { status: 200, body: ok }
    plugins: { rate_limit: { limit: 30, window: 1h, key: route, scope: cluster } }
"""


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="gh-pki-")
    try:
        yield certs.make_pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_tls_two_gateways_exactly_n(gatehouse, redis, pki):
    """Redis serving TLS only: both gateways count through it, exactly N."""
    r = redis(tls=(pki.up_ca1[0], pki.up_ca1[1], pki.ca1))
    gates = [gatehouse(TLS_LIMIT, workers=2, subst={"redis": r.address, "ca": pki.ca1}) for _ in range(2)]
    for g in gates:
        g.wait_stderr(lambda err: err.count("redis %s: connected" % r.address) >= 2, what="both workers")
    check_exactly(hammer(gates), 30)
    assert len(r.cli("--raw", "KEYS", "gh:rl:*").split()) == 1
    # the connections Redis sees are TLS ones (it has no clear port at all)
    r.wait_clients(4)


def test_tls_redis_cluster_exactly_n(gatehouse, redis_cluster, pki):
    """Three TLS-only masters: the slot map and every master's connection
    go through TLS; two gateways still let exactly N through."""
    c = redis_cluster(tls=(pki.up_ca1[0], pki.up_ca1[1], pki.ca1, pki.gw_client[0], pki.gw_client[1]))
    cfg = TLS_LIMIT.replace('address: "{redis}"', 'cluster: [ "%s" ]' % c.seeds[0])
    gates = [gatehouse(cfg, workers=2, subst={"ca": pki.ca1}) for _ in range(2)]
    for g in gates:
        g.wait_stderr(lambda err: err.count("redis cluster: 16384 of 16384 slots mapped over 3 nodes") >= 2,
                      what="both workers mapped the slots")
    check_exactly(hammer(gates), 30)
    held = {a: k for a, k in c.keys("gh:rl:*").items() if k}
    assert len(held) == 1, held


def test_tls_wrong_ca_refused_on_error_applies(gatehouse, redis, pki):
    """A certificate from another CA: no connection, the reason logged,
    on_error: deny answers 503 rate_limit_unavailable; nothing counted."""
    r = redis(tls=(pki.up_ca2[0], pki.up_ca2[1], pki.ca2))
    g = gatehouse(TLS_LIMIT, workers=1, subst={"redis": r.address, "ca": pki.ca1})
    g.wait_stderr("redis %s: TLS handshake failed: self-signed certificate in certificate chain" % r.address)
    st, _, body = g.get("/api")
    assert st == 503 and json.loads(body)["code"] == "rate_limit_unavailable"
    assert "redis %s: connected" % r.address not in g.stderr()
    assert r.cli("--raw", "KEYS", "gh:rl:*").split() == []


def test_tls_files_checked_at_load(tmp_path):
    path = tmp_path / "gatehouse.yaml"
    path.write_text('listen: [ { address: "127.0.0.1:1" } ]\n'
                    'redis:\n  address: 127.0.0.1:6379\n  tls: { ca: missing.pem, cert: c.pem }\n')
    r = subprocess.run([BIN, "check", "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "%s:4:27: cert needs key (a client certificate takes both)" % path in r.stderr, r.stderr
    path.write_text('listen: [ { address: "127.0.0.1:1" } ]\n'
                    'redis:\n  address: 127.0.0.1:6379\n  tls: { ca: /nonexistent/ca.pem }\n')
    r = subprocess.run([BIN, "check", "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "%s:4:10: cannot read ca '/nonexistent/ca.pem'" % path in r.stderr, r.stderr
