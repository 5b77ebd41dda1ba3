"""Issue 9, items 17, 23 and 24, end to end: least_conn spreads sequential
requests (ties go round robin), a retired version is not offered again in
the 410 that refuses it, and the access-log fields added for operators
(query with secrets masked, protocol, tls, user_agent, attempts,
upstream_ms as a float)."""
import json
import re
import subprocess
import tempfile

import pytest

from conftest import free_port, raw_exchange

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
    # the retired version is refused and not offered again; a preview is
    # listed (SPEC's version lists name previews), a retired one never
    for headers in ({"Api-Version": "1"}, {"Api-Version": "1", "X-Preview": "1"}):
        status, hdrs, body = g.get("/orders/7", headers=headers)
        doc = json.loads(body)
        assert (status, doc["code"]) == (410, "version_sunset"), body
        assert doc["versions"] == ["2", "3", "4"], doc
        assert hdrs["content-type"].startswith("application/problem+json")
    # the same list wherever the gateway says which versions exist
    status, _, body = g.get("/orders/7", headers={"Api-Version": "9"})
    doc = json.loads(body)
    assert (status, doc["code"], doc["versions"]) == (400, "version_unknown", ["2", "3", "4"]), doc
    assert doc["detail"].endswith("valid: 2, 3, 4"), doc
    status, _, body = g.get("/orders/7")
    doc = json.loads(body)
    assert (status, doc["code"], doc["versions"]) == (400, "version_required", ["2", "3", "4"]), doc
    # what is offered is served
    for v in ("2", "3"):
        status, hdrs, _ = g.get("/orders/7", headers={"Api-Version": v})
        assert status == 200 and hdrs["api-version"] == v


# ================================================================ item 24

def log_lines(g, count):
    """The access-log lines once there are `count` of them (waits on the
    condition: each worker writes its lines in batches)."""
    lines = g.access_log(wait_for=count, timeout=10)
    assert len(lines) >= count, lines
    return lines


def by_path(lines, path):
    found = [l for l in lines if l["path"] == path]
    assert len(found) == 1, (path, lines)
    return found[0]


LOGGED = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: stdout }
consumers:
  - { name: alice, api_keys: [ "alice-key-0123456789" ] }
upstreams:
  main: { targets: [ "{up}" ] }
  pair:
    targets: [ "127.0.0.1:{dead}", "{up}" ]
    retries: { attempts: 1 }
routes:
  - { name: keyed, match: { prefix: /keyed }, upstream: main, plugins: { key_auth: { query: my_cred } } }
  - { name: echo, match: { prefix: /echo }, echo: {} }
  - { name: retry, match: { prefix: /retry }, upstream: pair }
  - { name: api, match: { prefix: / }, upstream: main }
"""


def test_access_log_masks_credentials_in_the_query(gatehouse, upstreams):
    up = upstreams("up")
    g = gatehouse(LOGGED, subst={"up": up.address, "dead": free_port()}, workers=1)
    # the route's key_auth parameter, well-known names (any case, even
    # percent-encoded), and the rest left as sent
    q = ("my_cred=alice-key-0123456789&page=2&api_key=AK1&Token=TK2&api%5Fkey=AK3"
         "&access_token=AT4&sig=SG5&password=PW6&flag&empty=&secret=SC7&x=%22q%22")
    assert g.get("/keyed/a?" + q)[0] == 200
    # a key_auth name of any route counts everywhere: also masked on /api
    assert g.get("/p?my_cred=MC8&keep=1")[0] == 200
    line = by_path(log_lines(g, 2), "/keyed/a")
    assert line["query"] == ("my_cred=***&page=2&api_key=***&Token=***&api%5Fkey=***"
                             "&access_token=***&sig=***&password=***&flag&empty=&secret=***&x=%22q%22"), line
    assert by_path(log_lines(g, 2), "/p")["query"] == "my_cred=***&keep=1"
    raw = open(g.out_path, "rb").read()
    for secret in (b"alice-key-0123456789", b"AK1", b"TK2", b"AK3", b"AT4", b"SG5", b"PW6", b"SC7", b"MC8"):
        assert secret not in raw, secret
    assert line["consumer"] == "alice"


def test_access_log_protocol_user_agent_attempts_and_times(gatehouse, upstreams):
    up = upstreams("up")
    g = gatehouse(LOGGED, subst={"up": up.address, "dead": free_port()}, workers=1)
    # HTTP/1.0, a user agent with a quote, a backslash and bytes that are not UTF-8
    raw_exchange(g.port, b"GET /echo/ten HTTP/1.0\r\nUser-Agent: a \"b\" \\c \xff\xc3\xa9\r\n\r\n")
    g.get("/echo/none")
    g.get("/up", headers={"User-Agent": "tester/1.0"})
    g.get("/retry/x")
    lines = log_lines(g, 4)
    ten = by_path(lines, "/echo/ten")
    assert ten["protocol"] == "HTTP/1.0" and ten["tls"] is None
    assert ten["user_agent"] == 'a "b" \\c \ufffd\u00e9', ten
    assert ten["attempts"] == 0 and ten["upstream_ms"] is None and ten["query"] is None
    none = by_path(lines, "/echo/none")
    assert none["protocol"] == "HTTP/1.1" and none["user_agent"] is None   # none sent
    one = by_path(lines, "/up")
    assert one["user_agent"] == "tester/1.0" and one["attempts"] == 1 and one["status"] == 200
    # milliseconds as floats with 3 decimals, like duration_ms
    assert isinstance(one["upstream_ms"], float) and 0 <= one["upstream_ms"] <= one["duration_ms"], one
    text = next(l for l in open(g.out_path).read().splitlines() if '"path":"/up"' in l)
    assert re.search(r'"upstream_ms":\d+\.\d{3},', text) and re.search(r'"duration_ms":\d+\.\d{3},', text), text
    # the dead target refused the connection, the retry reached the live one:
    # two tries (round robin may also start on the live target: then one)
    retry = by_path(lines, "/retry/x")
    assert retry["status"] == 200 and retry["target"] == up.address
    assert retry["attempts"] in (1, 2)
    assert g.get("/retry/y")[0] == 200
    second = by_path(log_lines(g, 5), "/retry/y")
    assert sorted([retry["attempts"], second["attempts"]]) == [1, 2], (retry, second)


@pytest.fixture(scope="module")
def pki():
    import certs
    with tempfile.TemporaryDirectory(prefix="gh-misc-pki-") as d:
        yield certs.make_pki(d)


def test_access_log_tls_version_and_http2(gatehouse, upstreams, pki):
    up = upstreams("up")
    cfg = """
listen:
  - address: 127.0.0.1:{port}
    http2: true
    tls: { certificates: [ { cert: %s, key: %s } ] }
log: { access: stdout }
upstreams:
  main: { targets: [ "{up}" ] }
routes:
  - { name: api, match: { prefix: / }, upstream: main }
""" % pki.default
    g = gatehouse(cfg, subst={"up": up.address}, workers=1)

    def curl(path, *extra):
        r = subprocess.run(["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_version}",
                            "--cacert", pki.ca1, "--resolve", "default.example.com:%d:127.0.0.1" % g.port,
                            "-A", "curl-test"] + list(extra) + ["https://default.example.com:%d%s" % (g.port, path)],
                           capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return r.stdout.decode()

    assert curl("/h2?token=T0P", "--http2", "--tlsv1.3") == "2"
    assert curl("/h1", "--http1.1", "--tlsv1.2", "--tls-max", "1.2") == "1.1"
    lines = log_lines(g, 2)
    h2 = by_path(lines, "/h2")
    assert (h2["protocol"], h2["tls"], h2["user_agent"], h2["query"]) == ("HTTP/2", "TLSv1.3", "curl-test", "token=***")
    assert h2["attempts"] == 1 and isinstance(h2["upstream_ms"], float)
    h1 = by_path(lines, "/h1")
    assert (h1["protocol"], h1["tls"]) == ("HTTP/1.1", "TLSv1.2"), h1
