"""request_validation (SPEC §5.4): required headers and query parameters,
media types (415), max_body (413 from Content-Length before the upstream is
contacted, and for chunked / HTTP/2 bodies as they stream: the upstream
never gets a complete request), and `json: true` (400 with the byte
position; a valid body reaches the upstream byte for byte, with
Content-Length). The upstream records what it received."""
import hashlib
import json
import socket

from conftest import ResponseReader, server_conns, wait_until
from test_cli import gh
from test_http2 import H2

CONFIG = """
listen: [ { address: "127.0.0.1:{port}", http2: true } ]
log: { access: stdout, level: warn }
limits: { body_timeout: 5s }
upstreams:
  main: { targets: [ "{up}" ], retries: { attempts: 0 } }
routes:
  - name: req
    match: { prefix: /req }
    upstream: main
    plugins:
      request_validation: { required_headers: [X-Tenant, X-Region], required_query: [page, size] }
  - name: types
    match: { prefix: /types }
    upstream: main
    plugins:
      request_validation: { content_types: [application/json, "text/*"] }
  - name: small
    match: { prefix: /small }
    upstream: main
    plugins:
      request_validation: { max_body: 1000 }
  - name: json
    match: { prefix: /upload }
    upstream: main
    plugins:
      request_validation: { json: true, max_body: 64KiB }
"""


def start(gatehouse, upstreams):
    up = upstreams("main")
    g = gatehouse(CONFIG, subst={"up": up.address}, workers=1)
    return g, up


def problem(body):
    p = json.loads(body)
    return p["code"], p["detail"]


def raw_response(g, data):
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    try:
        s.sendall(data)
        return ResponseReader(s).response()
    finally:
        s.close()


def chunked(*parts):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def upstream_saw_nothing_complete(up, path):
    """The gateway's upstream connections are closed (aborted, not kept for
    reuse), and no request for path was received complete."""
    wait_until(lambda: server_conns(up.port) == 0, what="upstream connections closed")
    assert not [r for r in up.requests() if r["target"].startswith(path)], up.requests()


def test_missing_headers_and_query_are_named(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    st, _, body = g.get("/req")
    assert st == 400
    code, detail = problem(body)
    assert code == "bad_request"
    assert detail == ("missing required header(s): X-Tenant, X-Region; "
                      "missing required query parameter(s): page, size"), detail
    st, _, body = g.get("/req?size=2&pagex=1", headers={"x-tenant": "t"})
    assert st == 400 and problem(body)[1] == ("missing required header(s): X-Region; "
                                              "missing required query parameter(s): page"), body
    st, _, body = g.get("/req?page&size=2", headers={"X-Tenant": "t", "X-Region": "eu"})
    assert st == 200, body
    assert [r["target"] for r in up.requests()] == ["/req?page&size=2"]


def test_content_types(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    ok = [("Application/JSON; charset=utf-8", b"{}"), ("text/plain", b"hi"), ("TEXT/csv ;x=1", b"a,b")]
    for ctype, body in ok:
        st, _, out = g.request("POST", "/types", body=body, headers={"Content-Type": ctype})
        assert st == 200, (ctype, out)
    st, _, out = g.request("POST", "/types", body=b"\x89PNG", headers={"Content-Type": "image/png"})
    assert st == 415 and problem(out) == ("unsupported_media_type", "Content-Type image/png is not accepted "
                                          "here; accepted: application/json, text/*"), out
    st, _, out = g.request("POST", "/types", body=b"{}", headers={"Content-Type": "application/jsonx"})
    assert st == 415, out
    # a body without Content-Type is refused, and the detail says so
    st, _, out = raw_response(g, b"POST /types HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    assert st == 415 and "no Content-Type" in problem(out)[1], out
    # no body: nothing to check
    st, _, out = g.get("/types")
    assert st == 200, out
    assert len(up.requests()) == len(ok) + 1


def test_content_length_over_max_body_refused_before_upstream(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    st, _, out = g.request("POST", "/small", body=b"x" * 1001)
    assert st == 413 and problem(out) == ("payload_too_large",
                                          "request body of 1001 bytes exceeds max_body (1000 bytes)"), out
    assert up.stats()["connections"] == 1   # only this query: the gateway never connected
    st, _, out = g.request("POST", "/small", body=b"x" * 1000)
    assert st == 200 and json.loads(out)["body_len"] == 1000, out


def test_expect_continue_too_large_gets_413_without_100(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    try:
        s.sendall(b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        st, _, out = ResponseReader(s).response()   # the first response, whatever it is
    finally:
        s.close()
    assert st == 413 and problem(out)[0] == "payload_too_large", (st, out)
    assert up.stats()["connections"] == 1
    # within the limit the client is told to go on, and the body arrives
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    try:
        s.sendall(b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        r = ResponseReader(s)
        assert r.response()[0] == 100
        s.sendall(b"hello")
        st, _, out = r.response()
    finally:
        s.close()
    assert st == 200 and json.loads(out)["body_len"] == 5, out


def test_chunked_body_over_max_body_never_reaches_upstream_complete(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    head = b"POST /small/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    st, _, out = raw_response(g, head + chunked(b"a" * 600, b"b" * 600))
    assert st == 413 and problem(out) == ("payload_too_large", "request body exceeds max_body (1000 bytes)"), out
    upstream_saw_nothing_complete(up, "/small/a")
    # one chunk past the limit on its own
    st, _, out = raw_response(g, head.replace(b"/a", b"/b") + chunked(b"c" * 1001))
    assert st == 413, out
    upstream_saw_nothing_complete(up, "/small/b")
    # exactly max_body passes, streamed in chunks
    st, _, out = raw_response(g, head.replace(b"/a", b"/c") + chunked(b"d" * 400, b"e" * 600))
    assert st == 200 and json.loads(out)["body_len"] == 1000, out


def test_h2_body_over_max_body_never_reaches_upstream_complete(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    c = H2(g.port)
    try:
        sid = c.request("/small/h2", method="POST", end_stream=False)
        c.conn.send_data(sid, b"a" * 600)
        c.flush()
        c.conn.send_data(sid, b"b" * 600, end_stream=True)
        c.flush()
        c.pump([sid])
        st = c.streams[sid]
        assert st["status"] == 413, st
        assert json.loads(bytes(st["body"]))["detail"] == "request body exceeds max_body (1000 bytes)"
        upstream_saw_nothing_complete(up, "/small/h2")
        # the whole body already in the gateway when the plugin sets the bound
        sid = c.request("/small/h2all", method="POST", body=b"q" * 1200)
        c.pump([sid])
        assert c.streams[sid]["status"] == 413
        upstream_saw_nothing_complete(up, "/small/h2all")
        # HTTP/2 with content-length over the limit: at once
        sid = c.request("/small/h2cl", method="POST", headers=[("content-length", "5000")], end_stream=False)
        c.pump([sid])
        assert c.streams[sid]["status"] == 413
        # within the limit it streams through
        sid = c.request("/small/ok", method="POST", body=b"z" * 1000)
        c.pump([sid])
        assert c.streams[sid]["status"] == 200 and json.loads(bytes(c.streams[sid]["body"]))["body_len"] == 1000
    finally:
        c.close()
    assert up.stats()["connections"] >= 1


def test_valid_json_forwarded_byte_identical_with_content_length(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    doc = json.dumps({"name": "gatehouse", "list": list(range(2000)), "u": "\u00e9\u4e2d"},
                     ensure_ascii=False).encode()
    half = len(doc) // 2
    st, _, out = raw_response(g, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              + chunked(doc[:half], doc[half:]))
    assert st == 200, out
    got = json.loads(out)
    assert got == {"server": "main", "body_len": len(doc), "sha256": hashlib.sha256(doc).hexdigest()}, got
    hdrs = {k.lower(): v for k, v in up.requests()[-1]["headers"]}
    assert hdrs.get("content-length") == str(len(doc)) and "transfer-encoding" not in hdrs, hdrs
    # HTTP/2, no content-length: the same bytes, with one
    c = H2(g.port)
    try:
        sid = c.request("/upload", method="POST", body=doc)
        c.pump([sid])
        assert c.streams[sid]["status"] == 200
        assert json.loads(bytes(c.streams[sid]["body"]))["sha256"] == hashlib.sha256(doc).hexdigest()
    finally:
        c.close()
    hdrs = {k.lower(): v for k, v in up.requests()[-1]["headers"]}
    assert hdrs.get("content-length") == str(len(doc)), hdrs


def test_invalid_json_gets_400_with_the_byte_position(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    cases = [(b'{"a": 1} x', "at byte 10 (line 1, column 10): end of file expected near 'x'"),
             (b'{"a":1,}', "at byte 8 (line 1, column 8): string or '}' expected near '}'"),
             (b'[1,\n 2', "at byte 6 (line 2, column 2): ']' expected near end of file")]
    for body, where in cases:
        st, _, out = g.request("POST", "/upload", body=body, headers={"Content-Type": "application/json"})
        assert st == 400, (body, out)
        code, detail = problem(out)
        assert code == "bad_request" and detail == "malformed JSON body " + where, detail
    # buffering is bounded by max_body too
    st, _, out = raw_response(g, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              + chunked(b"[" + b"1," * 40000 + b"1]"))
    assert st == 413, out
    assert not up.requests()


def test_explain_and_routes_show_the_settings(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams)
    rc, out, err = gh("explain", "-c", g.path, "POST", "/upload", "-H", "Content-Type: application/json")
    assert rc == 0, (out, err)
    assert "request_validation(max_body 65536; json)" in out, out
    rc, out, err = gh("explain", "-c", g.path, "GET", "/req?page=1")
    assert rc == 0 and "400 bad_request: missing required header(s): X-Tenant, X-Region; " \
                       "missing required query parameter(s): size" in out, out
    rc, out, err = gh("routes", "-c", g.path)
    assert rc == 0 and "request_validation(headers X-Tenant,X-Region; query page,size)" in out, out
    assert up.stats()["connections"] == 1
