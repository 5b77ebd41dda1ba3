"""`gatehouse explain` runs the dispatcher itself (issue 9, item 16): its
answer must be the one real requests get. Each test asks explain and a
running gatehouse with the same configuration the same questions and
compares: the version a sticky canary gives (by header, cookie, consumer),
what the plugins decide (401 without a key, the consumer with one, Basic
passwords checked on the thread pool), and the errors on the way.
"""
import json
import re

import pytest

from authkit import basic, sha512_crypt
from test_cli import gh
from test_versions import Fast, req

CANARY = """\
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
consumers:
%(consumers)s
routes:
  - name: orders
    match: { prefix: /orders }
    versions:
      default: "1"
      list:
        "1": { respond: { status: 200, body: "one" } }
        "2": { respond: { status: 200, body: "two" } }
      canary: { version: "2", of: "1", percent: 30, sticky: {sticky} }
  - name: keyed
    match: { prefix: /keyed }
    plugins: { key_auth: {} }
    versions:
      default: "1"
      list:
        "1": { echo: {} }
        "2": { echo: {} }
      canary: { version: "2", of: "1", percent: 50, sticky: consumer }
  - name: basic
    match: { prefix: /basic }
    plugins: { basic_auth: { realm: api } }
    echo: {}
"""

USERS = ["u%d" % i for i in range(200)]          # u30 is the one the issue names
PASSWORD = "pw-Basic-Right!"


def consumers_yaml():
    lines = ["  - { name: c%02d, api_keys: [consumer-key-%02d-0000] }" % (i, i) for i in range(40)]
    lines.append("  - { name: bea, basic: { username: bea, password_hash: '%s' } }" % sha512_crypt(PASSWORD))
    return "\n".join(lines)


def start(gatehouse, sticky):
    return gatehouse(CANARY % {"consumers": consumers_yaml()}, subst={"sticky": sticky})


def explain(g, method, path, *headers):
    args = ["explain", "-c", g.path, method, path]
    for h in headers:
        args += ["-H", h]
    rc, out, err = gh(*args)
    assert rc == 0, (rc, out, err)
    return out


def field(out, name):
    m = re.search(r"^%s:\s+(.*)$" % name, out, re.M)
    return m.group(1) if m else None


def explained_version(out):
    v = field(out, "version")
    assert v, out
    return v.split()[0]


@pytest.mark.parametrize("sticky,kind", [("header:X-User-Id", "header"), ("cookie:uid", "cookie")])
def test_explain_gives_the_version_requests_get_on_a_sticky_canary(gatehouse, sticky, kind):
    g = start(gatehouse, sticky)
    c = Fast(g.port)
    got = {}
    try:
        for u in USERS:
            h = ("X-User-Id", u) if kind == "header" else ("Cookie", "a=b; uid=%s" % u)
            st, hdrs, body = c.get("/orders/7", [h])
            assert st == 200, (st, body)
            got[u] = hdrs["api-version"]
    finally:
        c.close()
    assert set(got.values()) == {"1", "2"}, got          # both sides are exercised
    wrong = {}
    for u in USERS:
        h = "X-User-Id: %s" % u if kind == "header" else "Cookie: a=b; uid=%s" % u
        out = explain(g, "GET", "/orders/7", h)
        if explained_version(out) != got[u]:
            wrong[u] = (explained_version(out), got[u], out)
    assert not wrong, "%d of %d keys explained wrong, e.g. %s" % (len(wrong), len(USERS), list(wrong.items())[:2])
    # and explain says why
    u = next(u for u in USERS if got[u] == "2")
    out = explain(g, "GET", "/orders/7", "X-User-Id: %s" % u if kind == "header" else "Cookie: uid=%s" % u)
    assert re.search(r"^version:\s+2 \(canary; asked for 1 by default\)", out, re.M), out
    assert re.search(r"^canary:\s+30\.00%% of version 1 go to version 2, sticky by %s .*goes to version 2$" % kind,
                     out, re.M), out
    # a version asked for by name that the canary does not take from
    out = explain(g, "GET", "/orders/7", "Api-Version: 2", "X-User-Id: %s" % next(u for u in USERS if got[u] == "1"))
    assert explained_version(out) == "2" and field(out, "canary") is None, out
    assert re.search(r"^version:\s+2 \(header\)", out, re.M), out


def test_explain_runs_the_plugins_and_the_canary_by_consumer(gatehouse):
    g = start(gatehouse, "header:X-User-Id")
    # without a key: the 401 a request gets, and no canary decision
    st, hdrs, body = req(g.port, "GET", "/keyed/x")
    assert st == 401
    out = explain(g, "GET", "/keyed/x")
    assert re.search(r"^result:\s+401 unauthorized\b.*WWW-Authenticate: Key realm=\"gatehouse\"", out, re.M), out
    assert re.search(r"^plugins:\s+key_auth", out, re.M), out
    assert "not decided" in field(out, "canary"), out
    assert field(out, "target") is None and field(out, "forwarded") is None, out
    # a wrong key: refused too
    assert req(g.port, "GET", "/keyed/x", {"X-API-Key": "consumer-key-99-0000"})[0] == 401
    assert field(explain(g, "GET", "/keyed/x", "X-API-Key: consumer-key-99-0000"), "result").startswith("401")
    # with a key: the consumer, and the version the canary gives that consumer
    sides = set()
    for i in range(40):
        key = "consumer-key-%02d-0000" % i
        st, hdrs, body = req(g.port, "GET", "/keyed/x", {"X-API-Key": key})
        assert st == 200, body
        real = json.loads(body)["version"]
        sides.add(real)
        out = explain(g, "GET", "/keyed/x", "X-API-Key: %s" % key)
        assert field(out, "consumer") == "c%02d" % i, out
        assert explained_version(out) == real, (i, real, out)
        assert field(out, "target") == "echo" and field(out, "forwarded") == "/keyed/x", out
    assert sides == {"1", "2"}, sides


def test_explain_checks_basic_passwords_like_a_request(gatehouse):
    g = start(gatehouse, "header:X-User-Id")
    good = "Authorization: " + basic("bea", PASSWORD)
    bad = "Authorization: " + basic("bea", "wrong")
    assert req(g.port, "GET", "/basic/x", {"Authorization": basic("bea", PASSWORD)})[0] == 200
    assert req(g.port, "GET", "/basic/x", {"Authorization": basic("bea", "wrong")})[0] == 401
    out = explain(g, "GET", "/basic/x", good)
    assert field(out, "consumer") == "bea" and field(out, "target") == "echo", out
    out = explain(g, "GET", "/basic/x", bad)
    assert field(out, "result").startswith("401 unauthorized"), out
    assert 'Basic realm="api"' in out, out


def test_explain_answers_what_the_dispatcher_answers(gatehouse):
    g = start(gatehouse, "header:X-User-Id")
    for path, status, code in (("/nothing", 404, "no_route"), ("/a/../../x", 400, "bad_request"),
                               ("/v9/orders", 400, "version_unknown"), ("/orders/%2e%2e/%2e%2e/x", 400, "bad_request")):
        st, hdrs, body = req(g.port, "GET", path)
        assert st == status, (path, st, body)
        out = explain(g, "GET", path)
        assert re.search(r"^result:\s+%d %s\b" % (status, code), out, re.M), (path, out)
    # a header that is not Name: value is a usage error
    rc, out, err = gh("explain", "-c", g.path, "GET", "/orders", "-H", "no colon")
    assert rc == 2 and "Name: value" in err, err
