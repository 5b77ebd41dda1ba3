"""The `redis:` section and each worker's Redis client (SPEC §2, §10):
one connection per worker, Redis going away and coming back picked up by
itself, a reload that changes the section moving the connections, and a
`tls:` the client cannot honour refused at load."""
import os
import subprocess

from conftest import BIN
from redis_server import redis  # noqa: F401  (fixture)

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


def test_tls_refused_at_load_with_the_reason(tmp_path):
    path = tmp_path / "gatehouse.yaml"
    path.write_text('listen: [ { address: "127.0.0.1:1" } ]\n'
                    'redis:\n  address: 127.0.0.1:6379\n  tls: { ca: ca.pem }\n')
    r = subprocess.run([BIN, "check", "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "%s:4:3: redis.tls is not supported: the hiredis 0.14 client has no TLS" % path in r.stderr
