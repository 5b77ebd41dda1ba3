"""Request header intake (issue 9, items 2, 3, 4, 9 and 11): what a client
sends can neither impersonate the gateway's identity headers nor remove
what the gateway adds; only WebSocket upgrades become tunnels; CONNECT
needs a route that lists it; an HTTP/1.0 request without Host is forwarded
with one. The upstream fixture echoes the headers it received."""
import json
import os
import socket
import subprocess
import sys

from conftest import HERE, free_port, raw_exchange, wait_port
from jwtkit import bearer, claims, make_token

ISS = "gh-intake"
SECRET = "intake-secret-0123456789abcdef0123456789abcdef0123456789abcdef"

CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: stdout, level: warn }
{limits}
plugins:
  jwt:
    issuers: [ { issuer: %(iss)s, secret: "%(secret)s" } ]
    forward_claims: { X-User-Id: sub }
upstreams:
  up: { targets: [ "{up}" ], retries: { attempts: 0 } }
  h2: { targets: [ "{h2up}" ], protocol: h2, retries: { attempts: 0 } }
routes:
  - name: public
    match: { prefix: /public }
    upstream: up
    plugins: { jwt: false }
  - name: orders
    match: { prefix: /orders }
    plugins:
      jwt:
        issuers: [ { issuer: %(iss)s, secret: "%(secret)s" } ]
        forward_claims: { X-User-Id: sub, X-Tenant: tenant }
    versions:
      from: [query:version]
      default: "2"
      list:
        "1": { upstream: up }
        "2":
          upstream: up
          plugins:
            jwt:
              issuers: [ { issuer: %(iss)s, secret: "%(secret)s" } ]
              forward_claims: { X-User-Id: sub, X-Plan: plan }
  - name: tunnel
    match: { host: tunnel.example, prefix: /, methods: [CONNECT] }
    upstream: up
    plugins: { jwt: false }
  - name: h2
    match: { prefix: /h2 }
    upstream: h2
    plugins: { jwt: false }
  - name: named
    match: { host: named.example, prefix: / }
    upstream: up
    plugins: { jwt: false }
  - name: rest
    match: { prefix: / }
    upstream: up
    plugins: { jwt: false }
""" % {"iss": ISS, "secret": SECRET}


def start(gatehouse, upstreams, underscores=None, h2_port=None):
    up = upstreams("up")
    limits = "" if underscores is None else "limits: { underscores_in_headers: %s }" % underscores
    # an h2 target nobody listens on, unless a test starts one there
    h2up = "127.0.0.1:%d" % (h2_port or free_port())
    g = gatehouse(CONFIG, subst={"up": up.address, "limits": limits, "h2up": h2up}, workers=1)
    return g, up


def token(**kw):
    return make_token(claims(iss=ISS, sub="svc-alice", tenant="acme", plan="gold", **kw),
                      "HS256", secret=SECRET.encode())


def raw_request(g, head):
    """Send one raw request (Connection: close), return (status, headers, body)."""
    data = raw_exchange(g.port, head.encode("latin-1"), timeout=5.0)
    text = data.decode("latin-1")
    head_part, _, body = text.partition("\r\n\r\n")
    lines = head_part.split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def received(body):
    """The headers the upstream fixture saw (lower-case names)."""
    return json.loads(body)["headers"]


# ---- item 2: identity headers on routes where jwt does not run -----------

def test_claim_header_is_stripped_where_jwt_does_not_run(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    status, _, body = g.get("/public/x", headers={
        "X-User-Id": "alice",           # the global jwt's forward_claims
        "X-Tenant": "evil",             # a route's forward_claims
        "X-Plan": "platinum",           # a version's forward_claims
        "X-Consumer": "admin", "X-Consumer-Groups": "admins",
        "X-Client-Cert-Subject": "CN=admin", "X-Other": "kept"})
    assert status == 200
    seen = received(body)
    for name in ("x-user-id", "x-tenant", "x-plan", "x-consumer", "x-consumer-groups",
                 "x-client-cert-subject"):
        assert name not in seen, (name, seen)
    assert seen["x-other"] == "kept"


def test_claim_header_comes_from_the_token_only(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    h = bearer(token())
    h.update({"X-User-Id": "alice", "X-Tenant": "evil", "X-Plan": "platinum"})
    status, _, body = g.get("/orders/7?version=1", headers=h)   # the route's jwt
    assert status == 200
    seen = received(body)
    assert seen["x-user-id"] == "svc-alice"
    assert seen["x-tenant"] == "acme"
    assert "x-plan" not in seen
    status, _, body = g.get("/orders/7", headers=h)   # version 2's own jwt
    assert status == 200
    seen = received(body)
    assert seen["x-user-id"] == "svc-alice"
    assert seen["x-plan"] == "gold"
    assert "x-tenant" not in seen


# ---- item 3: the client's Connection header vs what the gateway adds -----

def test_connection_cannot_remove_what_the_gateway_adds(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    status, _, body = raw_request(g, (
        "GET /orders/7 HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer %s\r\n"
        "Connection: close, X-User-Id, Api-Version, X-Plan, X-Forwarded-For, X-Request-Id, Traceparent\r\n"
        "\r\n") % token())
    assert status == 200
    seen = received(body)
    assert seen["x-user-id"] == "svc-alice"
    assert seen["x-plan"] == "gold"
    assert seen["api-version"] == "2"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert len(seen["x-request-id"]) == 32
    assert len(seen["traceparent"]) == 55
    assert "connection" not in seen


def test_every_connection_token_is_hop_by_hop(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    names = ["X-Hop-%02d" % i for i in range(40)]
    head = "GET /any HTTP/1.1\r\nHost: api.test\r\n"
    head += "".join("%s: %d\r\n" % (n, i) for i, n in enumerate(names[:20]))
    head += "Connection: close, " + ", ".join(names[:30]) + "\r\n"
    head += "Connection: " + ", ".join(names[30:]) + "\r\n"
    head += "".join("%s: %d\r\n" % (n, i) for i, n in enumerate(names[20:]))
    head += "X-End-To-End: yes\r\n\r\n"
    status, _, body = raw_request(g, head)
    assert status == 200
    seen = received(body)
    assert not [n for n in names if n.lower() in seen], seen
    assert seen["x-end-to-end"] == "yes"


# ---- item 4: underscore look-alikes --------------------------------------

UNDERSCORED = "GET /any HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n" \
              "X_Consumer: admin\r\nX_User_Id: alice\r\nX_Custom: 1\r\nX-Fine: 1\r\n\r\n"


def test_underscores_dropped_by_default(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)   # no limits.underscores_in_headers: drop
    status, _, body = raw_request(g, UNDERSCORED)
    assert status == 200
    seen = received(body)
    assert not [k for k in seen if "_" in k], seen
    assert seen["x-fine"] == "1"


def test_underscores_allowed_but_never_for_identity(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, underscores="allow")
    status, _, body = raw_request(g, UNDERSCORED)
    assert status == 200
    seen = received(body)
    assert seen["x_custom"] == "1"
    assert "x_consumer" not in seen and "x_user_id" not in seen, seen


def test_underscores_rejected(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, underscores="reject")
    status, headers, body = raw_request(g, UNDERSCORED)
    assert status == 400
    problem = json.loads(body)
    assert problem["code"] == "bad_request"
    assert "X_Consumer" in problem["detail"]
    assert up.requests() == []
    status, _, _ = raw_request(g, "GET /any HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
    assert status == 200


def test_underscore_policy_config_error(tmp_path):
    import subprocess
    from conftest import BIN
    path = tmp_path / "g.yaml"
    path.write_text("listen: [ { address: \"127.0.0.1:1\" } ]\nlimits:\n  underscores_in_headers: keep\n")
    r = subprocess.run([BIN, "check", "-c", str(path)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "%s:3:27: invalid underscores_in_headers 'keep' (use drop, allow or reject)" % path in r.stderr + r.stdout


# ---- item 9: h2c smuggling and CONNECT -----------------------------------

def test_h2c_upgrade_is_forwarded_as_a_plain_request(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    try:
        s.sendall(b"GET /any HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(body) < length:
            body += s.recv(65536)
        seen = received(body)
        for name in ("upgrade", "http2-settings", "connection"):
            assert name not in seen, seen
        # the connection still speaks HTTP/1.1: no tunnel was made
        s.sendall(b"GET /again HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
        rest = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            rest += b
        assert rest.startswith(b"HTTP/1.1 200"), rest[:200]
    finally:
        s.close()
    assert [r["target"] for r in up.requests()] == ["/any", "/again"]


def test_connect_is_refused_unless_a_route_lists_it(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    status, headers, body = raw_request(g, "CONNECT named.example:443 HTTP/1.1\r\nHost: named.example:443\r\n"
                                           "Connection: close\r\n\r\n")
    assert status == 405
    assert json.loads(body)["code"] == "method_not_allowed"
    assert "CONNECT" not in headers["allow"]
    assert up.requests() == []
    # the `tunnel` route lists CONNECT: it is routed there like any method
    status, _, body = raw_request(g, "CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n"
                                     "Connection: close\r\n\r\n")
    assert status == 200
    assert [r["method"] for r in up.requests()] == ["CONNECT"]


# ---- item 11: HTTP/1.0 without Host --------------------------------------

def test_http10_without_host_is_forwarded_with_one(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    status, _, body = raw_request(g, "GET /any HTTP/1.0\r\nAccept: */*\r\n\r\n")
    assert status == 200
    assert received(body)["host"] == up.address
    recorded = up.requests()
    assert len(recorded) == 1
    assert [v for k, v in recorded[0]["headers"] if k.lower() == "host"] == [up.address]


def test_http10_without_host_gets_an_authority_on_http2(gatehouse, upstreams):
    port = free_port()
    h2 = subprocess.Popen([sys.executable, os.path.join(HERE, "h2_upstream.py"), str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        h2.stdout.readline()   # READY
        wait_port(port, proc=h2)
        g, up = start(gatehouse, upstreams, h2_port=port)
        status, _, body = raw_request(g, "GET /h2/x HTTP/1.0\r\n\r\n")
        assert status == 200
        assert json.loads(body)["authority"] == "127.0.0.1:%d" % port
    finally:
        h2.kill()
        h2.wait()
