"""The live dashboard on the admin port (docs/operations.md, "Dashboard"):
embedded files served with ETag/304, no-cache and a strict CSP; in a real
headless Chromium the page shows live numbers, every configured route, counts
that rise with traffic, asks for the admin token when one is set, and sends
no request anywhere but the admin address."""
import asyncio
import json
import os
import subprocess

import pytest

from conftest import HERE, free_port, wait_port

ARTIFACTS = os.path.join(HERE, "artifacts")
TOKEN = "dash-admin-token-42"

CONFIG = """
listen:
  - address: 127.0.0.1:{port}
log: { access: off }
admin:
  address: 127.0.0.1:{admin}
{token_line}
upstreams:
  main:
    targets: [ "{up}" ]
    circuit_breaker: { failure_ratio: 0.5, min_requests: 20, window: 30s, open_for: 60s }
routes:
  - name: hello
    match: { prefix: /hello }
    respond: { status: 200, body: "hi" }
  - name: users
    match: { prefix: /users }
    upstream: main
  - name: limited
    match: { prefix: /limited }
    respond: { status: 200, body: "ok" }
    plugins: { rate_limit: { limit: 2, window: 1h, key: route } }
  - name: idle
    match: { prefix: /idle }
    respond: { status: 204 }
"""
ROUTES = ["hello", "users", "limited", "idle"]


def start(gatehouse, upstreams, token=False):
    admin = free_port()
    up = upstreams("users")
    g = gatehouse(CONFIG, subst={"admin": admin, "up": up.address,
                                 "token_line": "  token: ${ADMIN_TOKEN}" if token else ""},
                  env={"ADMIN_TOKEN": TOKEN})
    wait_port(admin, proc=g.proc)
    g.admin_port = admin
    return g


def curl(*args):
    """(status, {lower-case header: value}, body) from curl -i."""
    out = subprocess.run(["curl", "-sS", "-i", "--max-time", "10"] + list(args),
                         capture_output=True, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


# ------------------------------------------------------------ serving (curl)

@pytest.mark.parametrize("path,ctype", [("/", "text/html; charset=utf-8"),
                                        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
                                        ("/dashboard/style.css", "text/css; charset=utf-8")])
def test_assets_headers_etag_304(gatehouse, upstreams, path, ctype):
    g = start(gatehouse, upstreams, token=True)   # assets are served without the token
    url = "http://127.0.0.1:%d%s" % (g.admin_port, path)
    st, h, body = curl(url)
    assert st == 200 and body
    assert h["content-type"] == ctype
    assert h["cache-control"] == "no-cache"
    assert h["x-content-type-options"] == "nosniff"
    csp = [d.strip() for d in h["content-security-policy"].split(";")]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in h["content-security-policy"]
    etag = h["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10   # strong
    assert int(h["content-length"]) == len(body)

    st, h2, body2 = curl("-H", "If-None-Match: " + etag, url)
    assert st == 304 and body2 == b"" and h2["etag"] == etag and h2["cache-control"] == "no-cache"
    st, _, _ = curl("-H", 'If-None-Match: "other", W/' + etag, url)   # a list, weak form: still a match
    assert st == 304
    st, _, body3 = curl("-H", 'If-None-Match: "other"', url)
    assert st == 200 and body3 == body
    st, h4, body4 = curl("-I", url)
    assert st == 200 and h4["etag"] == etag and body4 == b""


def test_page_is_self_contained(gatehouse, upstreams):
    g = start(gatehouse, upstreams)
    _, _, html = curl("http://127.0.0.1:%d/" % g.admin_port)
    text = html.decode()
    assert "<script>" not in text and " style=" not in text and " on" + "click" not in text   # CSP: nothing inline
    for name in ("app.js", "style.css"):
        _, _, body = curl("http://127.0.0.1:%d/dashboard/%s" % (g.admin_port, name))
        assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"") and b"https://" not in body


def test_unknown_asset_and_methods(gatehouse, upstreams):
    g = start(gatehouse, upstreams)
    st, h, body = curl("http://127.0.0.1:%d/dashboard/nope.js" % g.admin_port)
    assert st == 404 and json.loads(body)["code"] == "no_route"
    st, h, body = curl("-X", "POST", "http://127.0.0.1:%d/" % g.admin_port)
    assert st == 405 and h["allow"] == "GET, HEAD"
    # the public listener does not serve the dashboard
    st, _, _ = g.get("/")
    assert st == 404


# ------------------------------------------------------------- the browser

def browser():
    from cdp import CHROMIUM, Browser
    assert os.path.exists(CHROMIUM), "chromium is not installed (scripts/install-deps.sh test)"
    return Browser()


def run(coro):
    return asyncio.run(coro)


def only_admin(b, admin_port):
    reqs = b.requests()
    assert reqs, "the page made no request"
    origin = "http://127.0.0.1:%d/" % admin_port
    outside = [u for u, _ in reqs if not u.startswith(origin)]
    assert not outside, "requests left the admin address: %s" % outside
    return reqs


ROWS_JS = "Array.from(document.querySelectorAll('#routes-body tr')).map(r => r.dataset.route)"


def count_js(route):
    return ("(function(){var r=document.querySelector('#routes-body tr[data-route=\"%s\"] .c-requests');"
            "return r ? Number(r.textContent) : -1})()" % route)


def test_dashboard_live(gatehouse, upstreams):
    g = start(gatehouse, upstreams)
    b = browser()
    url = "http://127.0.0.1:%d/" % g.admin_port

    async def main():
        await b.start()
        try:
            await b.viewport(1366, 900)
            await b.goto(url)
            # the histogram_quantile interpolation the page uses
            q = await b.eval("[ghDashboard.quantile(0.5,[1,2,4],[0,10,0,0]),"
                             " ghDashboard.quantile(0.99,[1,2,4],[0,0,0,5]),"
                             " ghDashboard.quantile(0.75,[1,2,4],[2,2,0,0]),"
                             " ghDashboard.quantile(0.5,[1,2],[0,0,0])]")
            assert q == [1.5, 4, 1.5, None]
            # live numbers: uptime, then a rate (needs two polls)
            await b.wait("document.querySelector('#big-up .value').textContent !== '–' && "
                         "document.querySelector('#big-rps .value').textContent !== '–'",
                         what="the live numbers")
            rows = await b.wait(ROWS_JS + ".length >= %d && %s" % (len(ROUTES), ROWS_JS), what="the route table")
            # every configured route, idle ones too, in precedence order (as /api/routes)
            table = json.loads(curl("http://127.0.0.1:%d/api/routes" % g.admin_port)[2])["routes"]
            assert sorted(ROUTES) == sorted(r["name"] for r in table)
            assert [r for r in rows if r != ""] == [r["name"] for r in table]
            assert await b.eval("document.querySelector('#big-gen .value').textContent") == "1"
            assert await b.eval(count_js("hello")) == 0

            for _ in range(6):
                assert (await asyncio.to_thread(g.get, "/hello"))[0] == 200
            await b.wait(count_js("hello") + " >= 6", what="the first counts")
            for _ in range(6):
                assert (await asyncio.to_thread(g.get, "/hello"))[0] == 200
            for _ in range(5):
                assert (await asyncio.to_thread(g.get, "/users/7"))[0] == 200
            statuses = [(await asyncio.to_thread(g.get, "/limited"))[0] for _ in range(4)]
            assert statuses == [200, 200, 429, 429]
            await b.wait(count_js("hello") + " >= 12 && " + count_js("users") + " >= 5", what="the counts to rise")
            assert await b.eval(count_js("idle")) == 0
            await b.wait("document.querySelector('#ratelimits-body .total') && "
                         "document.querySelector('#ratelimits-body .total').textContent.startsWith('2 ')",
                         what="the rate-limit hits")
            await b.wait("document.querySelector('#errors-body').textContent.includes('rate_limited')",
                         what="the recent errors")
            await b.wait("document.querySelector('#upstreams-body').textContent.includes(%s)"
                         % json.dumps(g.subst["up"]), what="the upstream targets")
            await b.wait("document.querySelector('#routes-body tr[data-route=\"hello\"] td:nth-child(7)')"
                         ".textContent !== '–'", what="the latency quantiles")
            await b.screenshot(os.path.join(ARTIFACTS, "dashboard.png"))
            await b.viewport(390, 844, mobile=True, scale=2)
            await b.wait("document.documentElement.clientWidth === 390", what="the phone viewport")
            # tables scroll inside their card; the page itself does not scroll sideways
            assert await b.eval("document.documentElement.scrollWidth") <= 390
            await b.screenshot(os.path.join(ARTIFACTS, "dashboard-phone.png"))
            # a refused reload turns the generation box red and lists the error
            assert not await b.eval("document.getElementById('big-gen').classList.contains('bad')")
            assert g.reload(CONFIG.replace("respond: { status: 204 }", "respond: { status: 2004 }")) is False
            await b.wait("document.getElementById('big-gen').classList.contains('bad') && "
                         "document.getElementById('last-reload').textContent.includes('gatehouse.yaml:')",
                         what="the failed reload")
            only_admin(b, g.admin_port)
            assert not b.problems(), b.problems()   # no exception, no CSP violation, no failed load
        finally:
            await b.stop()
    try:
        run(main())
    finally:
        b.close()
    g.check_clean_exit()


def test_dashboard_token_form(gatehouse, upstreams):
    g = start(gatehouse, upstreams, token=True)
    b = browser()
    url = "http://127.0.0.1:%d/" % g.admin_port

    async def login(token):
        await b.eval("document.getElementById('login-token').value = %s; "
                     "document.getElementById('login-form').requestSubmit(); true" % json.dumps(token))

    async def main():
        await b.start()
        try:
            await b.goto(url)
            await b.wait("!document.getElementById('login').hidden", what="the token form")
            await b.screenshot(os.path.join(ARTIFACTS, "dashboard-login.png"), full_page=False)
            await login("wrong-token")
            await b.wait("!document.getElementById('login').hidden && "
                         "document.getElementById('login-msg').textContent.includes('refused')",
                         what="the form again after a 401")
            await login(TOKEN)
            await b.wait("document.getElementById('login').hidden && "
                         "document.querySelector('#big-up .value').textContent !== '–'", what="the data")
            assert await b.eval("sessionStorage.getItem('gatehouse.admin.token')") == TOKEN
            await b.wait(ROWS_JS + ".length >= %d" % len(ROUTES), what="the route table")
            # a reload of the page keeps the token (this tab's sessionStorage): no form
            n = len(b.requests())
            await b.goto(url)
            await b.wait("document.querySelector('#big-up .value').textContent !== '–'", what="the data after reload")
            assert await b.eval("document.getElementById('login').hidden")
            reqs = only_admin(b, g.admin_port)
            api = [h for u, h in reqs[n:] if "/api/" in u]
            assert api and all(h.get("Authorization") == "Bearer " + TOKEN for h in api)
            await b.screenshot(os.path.join(ARTIFACTS, "dashboard-token.png"), full_page=False)
        finally:
            await b.stop()
    try:
        run(main())
    finally:
        b.close()
    g.check_clean_exit()


# ----------------------------------------- every state, from a scripted API

class ScriptedAdmin:
    """The dashboard's files from a real gatehouse, the /api/* answers
    scripted (the states a test cannot easily make a gateway reach: an open
    circuit, a failed reload, a sunset in days, endpoints missing). Each
    /api/stats answer has 10 more requests than the one before."""

    BUCKETS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]

    def __init__(self, gatehouse_admin, missing=()):
        import http.server
        import threading
        self.polls = 0
        self.missing = set(missing)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path in owner.missing:
                    return self.answer(404, "application/problem+json", b'{"code":"no_route"}')
                if self.path.startswith("/api/"):
                    body = owner.api(self.path)
                    if body is None:
                        return self.answer(404, "application/problem+json", b'{"code":"no_route"}')
                    return self.answer(200, "application/json", json.dumps(body).encode())
                c = http.client.HTTPConnection("127.0.0.1", gatehouse_admin, timeout=10)
                c.request("GET", self.path)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("date", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
                c.close()

            def answer(self, status, ctype, body):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def route(self, name, n, errors, limited, lat):
        return {"route": name, "requests": n, "client_errors": limited, "errors": errors, "rate_limited": limited,
                "latency": lat, "latency_sum_ms": 1.0 * n}

    def api(self, path):
        n = self.polls
        if path == "/api/stats":
            self.polls += 1
            k = sum(8 + 6 * (i % 4) for i in range(n))   # uneven traffic: the charts have a shape
            return {
                "time": "2026-12-07T10:56:37Z", "uptime_seconds": 3 * 86400 + 3600 * 4 + n,
                "latency_buckets_ms": self.BUCKETS,
                "totals": {"requests": 2 * k + 7, "client_errors": n + 3, "errors": n, "rate_limited": n + 3},
                "routes": [self.route("users", k + 7, n, 3, [0, k, 0, 0, 0, 0, 0, 7] + [0] * 7),
                           self.route("orders", k, 0, n, [0, 0, 0, k // 2, k - k // 2] + [0] * 10),
                           self.route("idle", 0, 0, 0, [0] * 15)],
                "connections": {"open": 12},
                "config": {"generation": 4, "loaded_at": "2026-12-07T09:00:00Z", "source": "/etc/gatehouse.yaml",
                           "last_reload": {"result": "error", "at": "2026-12-07T10:50:00Z",
                                           "errors": ["/etc/gatehouse.yaml:12:7: unknown key \"upstrem\""]}},
                "recent_errors": [
                    {"time": "2026-12-07T10:56:37.123Z", "status": 502, "code": "upstream_error", "route": "users",
                     "method": "GET", "path": "/users/<b>7</b>", "request_id": "5f0c9a"},
                    {"time": "2026-12-07T10:56:36.001Z", "status": 429, "code": "rate_limited", "route": "orders",
                     "method": "POST", "path": "/orders", "request_id": "77ab01"}]}
        if path == "/api/status":
            return {"version": "v1.2.3", "uptime_seconds": 100, "open_connections": 12,
                    "config": {"generation": 4, "loaded_at": "2026-12-07T09:00:00Z", "source": "/etc/gatehouse.yaml"}}
        if path == "/api/routes":
            return {"generation": 4, "routes": [{"name": r} for r in ("users", "orders", "idle")]}
        if path == "/api/upstreams":
            return {"upstreams": [
                {"name": "users", "balancer": "round_robin", "circuit": "open", "pending": 0, "targets": [
                    {"address": "10.0.0.1:8080", "weight": 1, "up": False, "healthy": False, "ejected": True,
                     "ejected_until": "2026-12-07T10:57:07Z", "in_flight": 0, "failures": 5},
                    {"address": "10.0.0.2:8080", "weight": 1, "up": True, "healthy": True, "ejected": False,
                     "ejected_until": None, "in_flight": 2, "failures": 0}]},
                {"name": "orders", "balancer": "least_conn", "circuit": None, "pending": 0, "targets": [
                    {"address": "10.0.1.1:8080", "weight": 2, "up": True, "healthy": True, "ejected": False,
                     "ejected_until": None, "in_flight": 1, "failures": 0}]}]}
        if path == "/api/versions":
            return {"routes": [{"route": "orders", "default": "2", "versions": [
                {"name": "1", "state": "deprecated", "deprecated": "2026-06-01T00:00:00Z",
                 "sunset": "2026-12-12T00:00:00Z", "days_to_sunset": 5, "docs": None, "requests_24h": 12,
                 "callers": [{"consumer": "alice", "requests_24h": 10, "last_seen": "2026-12-07T10:50:00Z"},
                             {"consumer": "(anonymous)", "requests_24h": 2, "last_seen": "2026-12-07T10:40:00Z"}]},
                {"name": "2", "state": "active", "deprecated": None, "sunset": None, "days_to_sunset": None,
                 "docs": None, "requests_24h": 900, "callers": []}]}]}
        return None

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_dashboard_shows_what_is_wrong(gatehouse, upstreams):
    g = start(gatehouse, upstreams)
    api = ScriptedAdmin(g.admin_port)
    b = browser()

    async def main():
        await b.start()
        try:
            await b.goto("http://127.0.0.1:%d/" % api.port)
            await b.wait("Number(document.querySelector('#big-rps .value').textContent) > 0", what="a rate")
            await b.wait("document.querySelector('#big-p99 .value').textContent !== '–'", what="p99")
            assert await b.eval("document.getElementById('big-gen').classList.contains('bad')")
            assert "reload failed" in await b.eval("document.querySelector('#big-gen .value').textContent")
            assert await b.eval("document.getElementById('big-err').classList.contains('bad')")   # 10 %
            assert not await b.eval("document.getElementById('big-conn').classList.contains('bad')")
            assert "unknown key" in await b.eval("document.getElementById('last-reload').textContent")
            assert await b.eval("document.querySelector('#upstreams-body .pill.bad').textContent") == "open"
            assert "ejected" in await b.eval("document.querySelector('#upstreams-body td.bad:not(:first-child)')"
                                             "? document.querySelector('#upstreams-body tr.sub td.bad').textContent : ''")
            vtext = await b.eval("document.getElementById('versions-body').textContent")
            assert "alice 10" in vtext and "(anonymous) 2" in vtext
            assert await b.eval("document.querySelector('#versions-body td.bad').textContent") == "5"
            # a client's path is shown as text, never as markup
            assert await b.eval("document.querySelector('#errors-body b')") is None
            assert "/users/<b>7</b>" in await b.eval("document.getElementById('errors-body').textContent")
            # users: 10 per poll in the 1 ms bucket (0.5..1]: p50 interpolated inside it
            await b.wait("document.querySelector('#routes-body tr[data-route=\"users\"] td:nth-child(7)')"
                         ".textContent === '0.8 ms'", what="the users p50")
            assert await b.eval(ROWS_JS) == ["users", "orders", "idle"]
            await b.wait("document.querySelector('#chart-rps polyline') && "
                         "document.querySelector('#chart-rps polyline').points.numberOfItems >= 6",
                         what="a few seconds of chart")
            await b.screenshot(os.path.join(ARTIFACTS, "dashboard-states.png"))
            await b.viewport(390, 844, mobile=True, scale=2)
            await b.wait("document.documentElement.clientWidth === 390", what="the phone viewport")
            assert await b.eval("document.documentElement.scrollWidth") <= 390
            await b.screenshot(os.path.join(ARTIFACTS, "dashboard-states-phone.png"), full_page=False)
            only_admin(b, api.port)
            assert not b.problems(), b.problems()
        finally:
            await b.stop()
    try:
        run(main())
    finally:
        b.close()
        api.close()
    g.check_clean_exit()


def test_dashboard_missing_endpoints(gatehouse, upstreams):
    """Missing endpoints (an older gateway): each section says so, the rest works."""
    g = start(gatehouse, upstreams)
    api = ScriptedAdmin(g.admin_port, missing={"/api/upstreams", "/api/versions", "/api/stats"})
    b = browser()

    async def main():
        await b.start()
        try:
            await b.goto("http://127.0.0.1:%d/" % api.port)
            await b.wait("document.body.dataset.ready === '1'", what="a first render")
            for sec in ("upstreams", "versions", "errors", "traffic", "ratelimits"):
                assert not await b.eval("document.querySelector('#%s .na').hidden" % sec), sec
            # /api/status and /api/routes still fill what they can
            assert await b.eval("document.querySelector('#big-gen .value').textContent") == "4"
            assert await b.eval("document.querySelector('#big-conn .value').textContent") == "12"
            assert await b.eval(ROWS_JS) == ["users", "orders", "idle"]
        finally:
            await b.stop()
    try:
        run(main())
    finally:
        b.close()
        api.close()
    g.check_clean_exit()
