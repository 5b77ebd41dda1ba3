"""Issue 9, items 17, 23 and 24, end to end: least_conn spreads sequential
requests (ties go round robin), a retired version is not offered again in
the 410 that refuses it, and the access-log fields added for operators
(query with secrets masked, protocol, tls, user_agent, attempts,
upstream_ms as a float)."""
import json

# ================================================================ item 17

LEAST_CONN = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
upstreams:
  lc:
    targets: [ "{a}", "{b}" ]
    balance: least_conn
routes:
  - { name: r, match: { prefix: / }, upstream: lc }
"""


def test_least_conn_spreads_sequential_requests(gatehouse, upstreams):
    # one request at a time: both targets are idle at every pick, and the
    # tie used to go to the first target every time (10 of 10)
    a, b = upstreams("a"), upstreams("b")
    g = gatehouse(LEAST_CONN, subst={"a": a.address, "b": b.address}, workers=1)
    servers = []
    for _ in range(10):
        status, _, body = g.get("/x")
        assert status == 200
        servers.append(json.loads(body)["server"])
    assert servers.count("a") == 5 and servers.count("b") == 5, servers
