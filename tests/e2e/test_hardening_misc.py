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


# ================================================================ item 23

SUNSET = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
routes:
  - name: orders
    match: { prefix: /orders }
    versions:
      from: [header:Api-Version]
      list:
        "1": { echo: {}, sunset: 2020-01-01 }
        "2": { echo: {}, deprecated: 2020-01-01, sunset: 2999-01-01 }
        "3": { echo: {} }
        "4": { echo: {}, preview: true, preview_requires: { header: X-Preview } }
"""


def test_refusals_offer_only_the_versions_still_served(gatehouse):
    g = gatehouse(SUNSET, workers=1)
    # the retired version is refused and not offered again; nor is the preview
    for headers in ({"Api-Version": "1"}, {"Api-Version": "1", "X-Preview": "1"}):
        status, hdrs, body = g.get("/orders/7", headers=headers)
        doc = json.loads(body)
        assert (status, doc["code"]) == (410, "version_sunset"), body
        assert doc["versions"] == ["2", "3"], doc
        assert hdrs["content-type"].startswith("application/problem+json")
    # the same list wherever the gateway says which versions exist
    status, _, body = g.get("/orders/7", headers={"Api-Version": "9"})
    doc = json.loads(body)
    assert (status, doc["code"], doc["versions"]) == (400, "version_unknown", ["2", "3"]), doc
    assert doc["detail"].endswith("valid: 2, 3"), doc
    status, _, body = g.get("/orders/7")
    doc = json.loads(body)
    assert (status, doc["code"], doc["versions"]) == (400, "version_required", ["2", "3"]), doc
    # what is offered is served
    for v in ("2", "3"):
        status, hdrs, _ = g.get("/orders/7", headers={"Api-Version": v})
        assert status == 200 and hdrs["api-version"] == v
