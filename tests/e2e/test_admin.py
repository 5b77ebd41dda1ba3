"""Admin API (SPEC §9, §12.15): a listener of its own with its own handler,
the token rules, and POST /api/reload."""
import http.client
import json
import os
import socket
import subprocess
import tempfile

import pytest

from conftest import BIN, free_port, wait_port

TOKEN = "s3cret-admin-token"

CONFIG = """
listen:
  - address: 127.0.0.1:{port}
admin:
  address: {admin_addr}
{token_line}
routes:
  - name: hello
    match: { prefix: /hello }
    respond: { status: 200, body: "hi" }
  - name: api
    match: { prefix: /api }
    respond: { status: 200, body: "public api" }
"""


def start(gatehouse, token=False, host="127.0.0.1", env=None):
    port = free_port()
    g = gatehouse(CONFIG, subst={"admin_addr": "%s:%d" % (host, port),
                                 "token_line": "  token: ${ADMIN_TOKEN}" if token else ""},
                  env=dict(env or {}, ADMIN_TOKEN=TOKEN))
    wait_port(port, proc=g.proc)
    g.admin_port = port
    return g


def call(port, method, path, headers=None, host="127.0.0.1"):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def own_address():
    """A non-loopback address of this machine (the peer is then not loopback)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 9))   # no packet is sent (UDP)
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


def test_health_and_ready_without_token(gatehouse):
    g = start(gatehouse, token=True)
    st, h, body = call(g.admin_port, "GET", "/healthz")
    assert st == 200 and json.loads(body) == {"status": "ok"}
    assert h["content-type"] == "application/json"
    st, _, body = call(g.admin_port, "GET", "/readyz")
    assert st == 200 and json.loads(body)["status"] == "ready"


def test_status(gatehouse):
    g = start(gatehouse)
    st, _, body = call(g.admin_port, "GET", "/api/status")
    assert st == 200, body
    s = json.loads(body)
    assert s["version"] and s["uptime_seconds"] >= 0
    assert s["started_at"].endswith("Z") and "T" in s["started_at"]
    assert s["config"]["generation"] == 1 and s["config"]["loaded_at"].endswith("Z")
    assert s["workers"] == 2 and s["open_connections"] >= 1


def test_routes_in_precedence_order(gatehouse):
    g = start(gatehouse)
    st, _, body = call(g.admin_port, "GET", "/api/routes")
    assert st == 200, body
    routes = json.loads(body)["routes"]
    assert [r["name"] for r in routes] == ["hello", "api"]
    assert routes[0]["target"] == "respond 200" and "/hello" in routes[0]["match"]
    assert "plugins" in routes[0]


def test_unknown_path_and_method(gatehouse):
    g = start(gatehouse)
    st, h, body = call(g.admin_port, "GET", "/nope")
    assert st == 404 and h["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "no_route"
    st, h, body = call(g.admin_port, "GET", "/api/reload")
    assert st == 405 and h["allow"] == "POST"


def test_token_rules_from_loopback(gatehouse):
    g = start(gatehouse, token=True)
    st, h, body = call(g.admin_port, "GET", "/api/status")
    assert st == 401 and json.loads(body)["code"] == "unauthorized"
    assert h["www-authenticate"].startswith("Bearer")
    st, _, body = call(g.admin_port, "GET", "/api/status", {"Authorization": "Bearer wrong"})
    assert st == 401
    st, _, body = call(g.admin_port, "GET", "/api/status", {"Authorization": "Bearer " + TOKEN[:-1]})
    assert st == 401
    st, _, body = call(g.admin_port, "GET", "/api/nope", {"Authorization": "Bearer wrong"})
    assert st == 401   # no probing of /api paths without the token
    st, _, body = call(g.admin_port, "GET", "/api/status", {"Authorization": "Bearer " + TOKEN})
    assert st == 200 and json.loads(body)["config"]["generation"] == 1


def test_no_token_loopback_answers(gatehouse):
    g = start(gatehouse)
    st, _, _ = call(g.admin_port, "GET", "/api/status")
    assert st == 200


def test_token_required_from_other_addresses(gatehouse):
    addr = own_address()
    if not addr:
        pytest.skip("no non-loopback address on this machine")
    g = start(gatehouse, token=True, host="0.0.0.0")
    st, _, _ = call(g.admin_port, "GET", "/api/status", host=addr)
    assert st == 401
    st, _, _ = call(g.admin_port, "GET", "/api/status", {"Authorization": "Bearer " + TOKEN}, host=addr)
    assert st == 200
    st, _, _ = call(g.admin_port, "GET", "/healthz", host=addr)
    assert st == 200


def test_non_loopback_without_token_is_a_config_error():
    d = tempfile.mkdtemp(prefix="gh-admin-")
    path = os.path.join(d, "g.yaml")
    with open(path, "w") as f:
        f.write("listen:\n  - address: 127.0.0.1:8080\nadmin:\n  address: 0.0.0.0:9901\n")
    r = subprocess.run([BIN, "check", "-c", path], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "%s:4:12: admin address '0.0.0.0:9901' is not loopback: set admin.token" % path in r.stderr, r.stderr


def test_admin_and_public_ports_are_separate(gatehouse):
    g = start(gatehouse)
    # the admin port serves no public route
    st, _, body = call(g.admin_port, "GET", "/hello")
    assert st == 404 and json.loads(body)["code"] == "no_route"
    # the public port serves no admin path: /api/status is the public route "api"
    st, _, body = g.get("/api/status")
    assert st == 200 and body == b"public api"
    st, _, body = g.get("/healthz")
    assert st == 404


def test_post_reload_ok_and_refused(gatehouse):
    g = start(gatehouse)
    g.write(CONFIG.replace("body: \"hi\"", "body: \"hi again\"")
            .replace("{admin_addr}", "127.0.0.1:%d" % g.admin_port).replace("{token_line}", ""))
    st, _, body = call(g.admin_port, "POST", "/api/reload")
    assert st == 200, body
    assert json.loads(body) == {"status": "reloaded", "generation": 2}
    assert g.get("/hello")[2] == b"hi again"   # in effect when answered

    g.write(CONFIG.replace("prefix: /hello", "prefx: /hello")
            .replace("{admin_addr}", "127.0.0.1:%d" % g.admin_port).replace("{token_line}", ""))
    st, h, body = call(g.admin_port, "POST", "/api/reload")
    assert st == 422, body
    assert h["content-type"] == "application/problem+json"
    p = json.loads(body)
    assert p["generation"] == 2
    assert any(e.startswith(g.path + ":") and "unknown key 'prefx'" in e for e in p["errors"]), p
    assert g.get("/hello")[2] == b"hi again"   # the old configuration keeps serving
    st, _, body = call(g.admin_port, "GET", "/api/status")
    assert json.loads(body)["config"]["generation"] == 2


def test_without_a_token_browsers_of_other_sites_are_refused(gatehouse):
    """No token: loopback is trusted, so a web page in the operator's browser
    must not reach it: a Host that is not loopback (DNS rebinding) and a
    foreign Origin (CSRF) are refused; tools and the dashboard pass."""
    g = start(gatehouse)
    p = g.admin_port
    for path in ("/api/status", "/metrics", "/"):
        st, _, body = call(p, "GET", path, {"Host": "rebound.attacker.example:%d" % p})
        assert st == 403 and b"loopback host" in body, (path, st, body)
    st, _, body = call(p, "POST", "/api/reload", {"Origin": "https://attacker.example", "Content-Length": "0"})
    assert st == 403 and b"cross-origin" in body
    st, _, _ = call(p, "POST", "/api/reload", {"Origin": "http://127.0.0.1:%d" % p, "Content-Length": "0"})
    assert st == 200
    for host in ("localhost:%d" % p, "127.0.0.1:%d" % p, "127.0.0.1"):
        assert call(p, "GET", "/api/status", {"Host": host})[0] == 200, host


def test_with_a_token_the_host_is_not_checked(gatehouse):
    g = start(gatehouse, token=True)
    st, _, _ = call(g.admin_port, "GET", "/api/status",
                    {"Host": "admin.internal.example", "Authorization": "Bearer " + TOKEN})
    assert st == 200
