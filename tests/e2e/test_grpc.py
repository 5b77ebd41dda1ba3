"""`protocol: h2` upstreams and gRPC pass-through (SPEC §3, §8, §12.22).

A real grpcio server (grpc_server.py) and a real grpcio client talk through
the gateway: unary and streaming calls both ways, statuses, messages and
trailing metadata, large messages. A small hyper-h2 server (h2_upstream.py)
stands behind the gateway for plain HTTP/1.1 and HTTP/2 clients: headers,
bodies both ways, trailers, resets, timeouts, retries, multiplexing, GOAWAY.
Stubs are generated at test time from the proto below.
"""
import hashlib
import http.client
import json
import os
import queue
import subprocess
import sys
import threading
import time

import grpc
import pytest

import certs
from conftest import HERE, free_port, raw_exchange, wait_port

PROTO = """
syntax = "proto3";
package ghtest;
message Msg { string text = 1; bytes data = 2; int32 count = 3; string meta = 4; }
service Echo {
  rpc Unary(Msg) returns (Msg);
  rpc ServerStream(Msg) returns (stream Msg);
  rpc ClientStream(stream Msg) returns (Msg);
  rpc Bidi(stream Msg) returns (stream Msg);
  rpc Fail(Msg) returns (Msg);
  rpc Sleep(Msg) returns (Msg);
}
"""

LIMIT = 16 * 1024 * 1024

GRPC_CONFIG = """
listen:
  - address: 127.0.0.1:{port}
    http2: true
log: { access: stdout, level: warn }
upstreams:
  grpc:
    targets: [ "{up}" ]
    protocol: h2
    timeouts: { connect: 1s, send: 5s, read: 5s }
routes:
  - name: grpc
    match: { prefix: /ghtest.Echo }
    upstream: grpc
  - name: grpc-deadline
    match: { path: /ghtest.Echo/Sleep, headers: { x-route-timeout: "1" } }
    upstream: grpc
    timeout: 300ms
"""

H2_CONFIG = """
listen:
  - address: 127.0.0.1:{port}
    http2: true
log: { access: stdout, level: warn }
upstreams:
  h2up:
    targets: [ "{up}" ]
    protocol: h2
    timeouts: { connect: 1s, send: 5s, read: 1s }
    retries: { attempts: 1, on: [reset, 503] }
  down:
    targets: [ "127.0.0.1:{dead}" ]
    protocol: h2
routes:
  - name: api
    match: { prefix: / }
    upstream: h2up
    request_headers: { set: { X-Env: prod }, remove: [X-Drop] }
    response_headers: { set: { X-Served-By: gatehouse }, remove: [X-Count] }
  - name: routed-timeout
    match: { prefix: /timed }
    upstream: h2up
    rewrite: { strip_prefix: true }
    timeout: 300ms
  - name: down
    match: { prefix: /down }
    upstream: down
"""


TLS_CONFIG = """
listen:
  - address: 127.0.0.1:{port}
    http2: true
log: { access: stdout, level: warn }
upstreams:
  grpc:
    targets: [ "{up}" ]
    protocol: h2
    tls: { ca: "{ca}" }
routes:
  - name: grpc
    match: { prefix: / }
    upstream: grpc
"""


# ------------------------------------------------------------ fixtures --

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("grpc-stubs"))
    with open(os.path.join(d, "ghtest.proto"), "w") as f:
        f.write(PROTO)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", d, "--python_out=" + d,
                    "--grpc_python_out=" + d, os.path.join(d, "ghtest.proto")], check=True)
    sys.path.insert(0, d)
    import ghtest_pb2
    import ghtest_pb2_grpc
    return d, ghtest_pb2, ghtest_pb2_grpc


class Proc:
    """A helper server on a free port: "PORT" in args is replaced by it."""

    def __init__(self, args):
        self.port = free_port()
        args = [str(self.port) if a == "PORT" else a for a in args]
        self.proc = subprocess.Popen([sys.executable] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.proc.stdout.readline()   # READY
        wait_port(self.port, proc=self.proc)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def grpc_up(stubs):
    p = Proc([os.path.join(HERE, "grpc_server.py"), "PORT", stubs[0]])
    yield p
    p.stop()


@pytest.fixture
def h2_up():
    p = Proc([os.path.join(HERE, "h2_upstream.py"), "PORT"])
    yield p
    p.stop()


@pytest.fixture
def grpc_gw(gatehouse, grpc_up, stubs):
    g = gatehouse(GRPC_CONFIG, subst={"up": grpc_up.address})
    ch = grpc.insecure_channel("127.0.0.1:%d" % g.port,
                               options=[("grpc.max_receive_message_length", LIMIT),
                                        ("grpc.max_send_message_length", LIMIT)])
    yield g, stubs[2].EchoStub(ch), stubs[1]
    ch.close()


def h2_gateway(gatehouse, h2_up, **kw):
    return gatehouse(H2_CONFIG, subst={"up": h2_up.address, "dead": free_port()}, **kw)


def curl(*args, timeout=20):
    r = subprocess.run(["curl", "-s", "--max-time", "15"] + list(args), capture_output=True, timeout=timeout)
    return r.returncode, r.stdout


def stats(up):
    rc, out = curl("--http2-prior-knowledge", "http://%s/__stats" % up.address)
    assert rc == 0
    return json.loads(out)


# ---------------------------------------------------------------- gRPC --

def test_unary_metadata_both_ways(grpc_gw):
    g, stub, pb = grpc_gw
    resp, call = stub.Unary.with_call(pb.Msg(text="hi", data=b"abc"), metadata=(("x-custom", "v1"),),
                                      timeout=10)
    assert resp.text == "echo:hi" and resp.data == b"abc" and resp.count == 3
    seen = json.loads(resp.meta)
    assert seen["x-custom"] == "v1"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert len(seen["x-request-id"]) == 32
    assert seen["traceparent"].startswith("00-")
    assert call.code() == grpc.StatusCode.OK
    assert ("x-initial", "yes") in call.initial_metadata()
    assert ("x-trailing", "done") in call.trailing_metadata()
    lines = g.access_log(wait_for=1)
    rec = [l for l in lines if l["path"] == "/ghtest.Echo/Unary"][-1]
    assert rec["status"] == 200 and rec["upstream"] == "grpc"
    assert rec["target"] == g.subst["up"] and isinstance(rec["upstream_ms"], float) and rec["attempts"] == 1
    assert rec["protocol"] == "HTTP/2"


def test_server_streaming_arrives_as_sent(grpc_gw):
    g, stub, pb = grpc_gw
    msgs = list(stub.ServerStream(pb.Msg(count=50), timeout=10))
    assert [m.count for m in msgs] == list(range(50))
    # 5 messages 200 ms apart: each reaches the client when sent, not at the end
    t0 = time.monotonic()
    times = [time.monotonic() - t0 for _ in stub.ServerStream(pb.Msg(text="slow", count=5), timeout=10)]
    assert len(times) == 5
    assert times[-1] - times[0] >= 0.6, times


def test_client_streaming(grpc_gw):
    g, stub, pb = grpc_gw
    resp = stub.ClientStream(iter([pb.Msg(text="m%d" % i, data=b"x" * 1000) for i in range(25)]), timeout=10)
    assert resp.count == 25
    assert resp.data == b"25000"
    assert resp.text == ",".join("m%d" % i for i in range(25))


def test_bidi_streaming_interleaves(grpc_gw):
    g, stub, pb = grpc_gw
    q = queue.Queue()

    def requests():
        while True:
            m = q.get()
            if m is None:
                return
            yield m

    responses = stub.Bidi(requests(), timeout=10)
    for i in range(10):
        q.put(pb.Msg(text="ping%d" % i, count=i))
        r = next(responses)   # answered before the next request is even made
        assert r.text == "re:ping%d" % i and r.count == i
    q.put(None)
    assert list(responses) == []


def test_status_message_and_trailing_metadata(grpc_gw):
    g, stub, pb = grpc_gw
    with pytest.raises(grpc.RpcError) as e:
        stub.Fail(pb.Msg(text="nope ü 100%"), timeout=10)
    err = e.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "bad thing: nope ü 100%"
    md = dict(err.trailing_metadata())
    assert md["x-detail"] == "custom-trailer"
    assert md["x-blob-bin"] == b"\x00\x01\xfe\xff"


def test_large_messages_both_ways(grpc_gw):
    g, stub, pb = grpc_gw
    blob = os.urandom(2 * 1024 * 1024 + 17)
    resp = stub.Unary(pb.Msg(text="big", data=blob), timeout=30)
    assert resp.count == len(blob)
    assert hashlib.sha256(resp.data).digest() == hashlib.sha256(blob).digest()
    msgs = list(stub.ServerStream(pb.Msg(count=3, data=blob), timeout=30))
    assert len(msgs) == 3 and all(m.data == blob for m in msgs)
    resp = stub.ClientStream(iter([pb.Msg(data=blob) for _ in range(3)]), timeout=30)
    assert resp.data == str(3 * len(blob)).encode()


def test_concurrent_calls(grpc_gw):
    g, stub, pb = grpc_gw
    futs = [stub.Unary.future(pb.Msg(text="c%d" % i, data=os.urandom(i * 500)), timeout=20) for i in range(40)]
    for i, f in enumerate(futs):
        r = f.result()
        assert r.text == "echo:c%d" % i and r.count == i * 500


def test_deadlines_and_cancellation(grpc_gw):
    g, stub, pb = grpc_gw
    # the client gives up: the gateway cancels the upstream stream and goes on
    with pytest.raises(grpc.RpcError) as e:
        stub.Sleep(pb.Msg(count=1500), timeout=0.3)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert stub.Unary(pb.Msg(text="after"), timeout=5).text == "echo:after"
    # the route's timeout: the gateway answers, gRPC-style
    with pytest.raises(grpc.RpcError) as e:
        stub.Sleep(pb.Msg(count=1500), metadata=(("x-route-timeout", "1"),), timeout=5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "timeout" in e.value.details()
    futs = [stub.Sleep.future(pb.Msg(count=2000), timeout=0.2) for _ in range(10)]
    for f in futs:
        with pytest.raises(grpc.RpcError):
            f.result()
    assert stub.Unary(pb.Msg(text="still"), timeout=5).text == "echo:still"


def test_grpc_upstream_down_is_unavailable(gatehouse, stubs):
    g = gatehouse(GRPC_CONFIG, subst={"up": "127.0.0.1:%d" % free_port()})
    with grpc.insecure_channel("127.0.0.1:%d" % g.port) as ch:
        with pytest.raises(grpc.RpcError) as e:
            stubs[2].EchoStub(ch).Unary(stubs[1].Msg(text="x"), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


# ------------------------------------------------ plain HTTP through h2 --

def test_http1_request_head_forwarded(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    status, headers, body = g.get("/x/y?a=1&b=2", headers={
        "Host": "api.example.com:8080", "X-Custom": "v", "TE": "trailers", "Connection": "X-Secret",
        "X-Secret": "s", "Keep-Alive": "timeout=5", "Proxy-Authorization": "Basic x", "X-Drop": "1",
        "X-Forwarded-For": "198.51.100.1", "X-Request-Id": "client-id-1"})
    assert status == 200
    info = json.loads(body)
    assert info["method"] == "GET" and info["target"] == "/x/y?a=1&b=2"
    assert info["authority"] == "api.example.com:8080" and info["scheme"] == "http"
    h = info["headers"]
    assert h["x-custom"] == "v"
    assert h["te"] == "trailers"            # SPEC §12.22: kept toward HTTP/2 upstreams
    for gone in ("connection", "x-secret", "keep-alive", "proxy-authorization", "x-drop", "host"):
        assert gone not in h, gone
    assert h["x-env"] == "prod"
    assert h["x-forwarded-for"] == "198.51.100.1, 127.0.0.1"
    assert h["x-forwarded-host"] == "api.example.com:8080"
    assert h["x-forwarded-port"] == str(g.port)
    assert h["x-request-id"] == "client-id-1" == headers["x-request-id"]
    assert h["traceparent"].startswith("00-")
    assert headers["x-served-by"] == "gatehouse"
    # TE other than trailers is not forwarded
    info = json.loads(g.get("/t", headers={"TE": "gzip"})[2])
    assert "te" not in info["headers"]


def test_trailers_and_response_header_ops(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    rc, out = curl("--http2-prior-knowledge", "-i", "http://127.0.0.1:%d/trailers" % g.port)
    assert rc == 0
    text = out.decode()
    head, _, rest = text.partition("\r\n\r\n")
    assert head.startswith("HTTP/2 200") and "x-served-by: gatehouse" in head
    # the trailers reach an HTTP/2 client after the body (curl -i prints them there)
    assert rest.startswith("hello") and "x-checksum: abc" in rest and "x-count: 1" in rest
    # HTTP/1.1 clients get the body (trailers are dropped by that codec)
    status, headers, body = g.get("/trailers")
    assert status == 200 and body == b"hello"


def test_bodies_stream_both_ways(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    blob = os.urandom(3 * 1024 * 1024 + 5)
    status, _, body = g.request("POST", "/upload", body=blob, headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    assert json.loads(body) == {"length": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    n = 8 * 1024 * 1024 + 3
    want = hashlib.sha256((bytes(range(251)) * (n // 251 + 1))[:n]).hexdigest()
    status, headers, body = g.get("/big?n=%d" % n, timeout=30)
    assert status == 200 and headers["content-length"] == str(n)
    assert hashlib.sha256(body).hexdigest() == want
    # HTTP/2 client both ways
    rc, out = curl("--http2-prior-knowledge", "http://127.0.0.1:%d/big?n=%d" % (g.port, n))
    assert rc == 0 and hashlib.sha256(out).hexdigest() == want
    path = os.path.join(g.dir, "blob")
    with open(path, "wb") as f:
        f.write(blob)
    rc, out = curl("--http2-prior-knowledge", "--data-binary", "@" + path, "http://127.0.0.1:%d/upload" % g.port)
    assert rc == 0 and json.loads(out)["sha256"] == hashlib.sha256(blob).hexdigest()


def test_chunked_upload_streams_upstream(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    blob = os.urandom(3 * 1024 * 1024 + 5)
    # chunked from the client, a stream of unknown length upstream; the
    # upstream's window makes the gateway take the client's bytes piecemeal
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=20)
    c.request("POST", "/upload", body=iter([blob[:100000], blob[100000:]]), encode_chunked=True)
    r = c.getresponse()
    assert json.loads(r.read()) == {"length": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    c.close()


def test_response_streams_as_it_arrives(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    c.request("GET", "/drip?n=4&gap=0.3")
    r = c.getresponse()
    t0 = time.monotonic()
    first = r.readline()
    t_first = time.monotonic() - t0
    rest = r.read()
    total = time.monotonic() - t0
    assert first == b"chunk 0\n" and rest == b"chunk 1\nchunk 2\nchunk 3\n"
    assert total - t_first >= 0.6, (t_first, total)
    c.close()


def test_status_passthrough_and_retries(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    assert g.get("/status/404")[0] == 404
    before = stats(h2_up)["streams"]
    status, _, body = g.get("/status/503")
    assert status == 503 and json.loads(body) == {"status": 503}
    assert stats(h2_up)["streams"] - before == 3   # the GET, its retry, and the stats call
    before = stats(h2_up)["streams"]
    assert g.request("POST", "/status/503", body=b"x")[0] == 503
    assert stats(h2_up)["streams"] - before == 2   # not idempotent: no retry


def test_upstream_down_is_502_problem(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    status, headers, body = g.get("/down")
    assert status == 502
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "upstream_error"
    rc, out = curl("--http2-prior-knowledge", "-i", "http://127.0.0.1:%d/down" % g.port)
    assert out.startswith(b"HTTP/2 502") and b'"code":"upstream_error"' in out
    rec = [l for l in g.access_log(wait_for=2) if l["path"] == "/down"]
    assert rec and rec[-1]["error"] == "upstream_error" and rec[-1]["upstream"] == "down"


def test_upstream_resets(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    # refused before any head: retried, then 502
    status, _, body = g.get("/rst")
    assert status == 502 and json.loads(body)["code"] == "upstream_error"
    # reset after the head: the client must see a broken response, not a short one
    out = raw_exchange(g.port, b"GET /rst-head HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
    assert out.startswith(b"HTTP/1.1 200")
    assert b"partial" in out and not out.endswith(b"0\r\n\r\n")
    rc, _ = curl("--http2-prior-knowledge", "http://127.0.0.1:%d/rst-head" % g.port)
    assert rc != 0
    assert g.get("/ok")[0] == 200


def test_timeouts(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    t0 = time.monotonic()
    status, _, body = g.get("/slow?delay=3")
    assert status == 504 and json.loads(body)["code"] == "upstream_timeout"
    assert time.monotonic() - t0 < 2.5
    t0 = time.monotonic()
    status, _, body = g.get("/timed/slow?delay=0.8")   # route timeout 300ms < read timeout 1s
    assert status == 504 and json.loads(body)["code"] == "upstream_timeout"
    assert time.monotonic() - t0 < 0.7
    # a stream that stops after its head: the client's response is cut
    out = raw_exchange(g.port, b"GET /drip?n=3&gap=2 HTTP/1.1\r\nHost: x\r\n\r\n", timeout=4)
    assert out.startswith(b"HTTP/1.1 200") and b"chunk 0" in out and not out.endswith(b"0\r\n\r\n")
    assert g.get("/ok")[0] == 200


def test_streams_share_one_connection(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up, workers=1)
    before = stats(h2_up)["connections"]
    results = []

    def one(i):
        status, _, body = g.get("/m/%d" % i)
        results.append((status, json.loads(body)["path"]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted((200, "/m/%d" % i) for i in range(30))
    # one gateway connection for all 30 (plus the stats calls' own)
    assert stats(h2_up)["connections"] - before == 2


def test_client_abort_cancels_upstream_stream(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up)
    before = stats(h2_up)["resets"]
    out = raw_exchange(g.port, b"GET /drip?n=50&gap=0.1 HTTP/1.1\r\nHost: x\r\n\r\n", timeout=0.5)
    assert b"chunk 0" in out
    deadline = time.time() + 3
    while stats(h2_up)["resets"] == before and time.time() < deadline:
        time.sleep(0.1)
    assert stats(h2_up)["resets"] > before
    assert g.get("/ok")[0] == 200


def test_goaway_and_closed_connections_recover(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up, workers=1)
    assert g.get("/goaway")[0] == 200
    for i in range(3):
        assert g.get("/after-goaway/%d" % i)[0] == 200
    assert g.get("/close")[0] == 200
    for i in range(3):
        assert g.get("/after-close/%d" % i)[0] == 200


def test_slow_reader_holds_memory_flat(gatehouse, h2_up):
    g = h2_gateway(gatehouse, h2_up, workers=1)
    g.get("/warm")
    rss0 = g.rss_kib()
    n = 64 * 1024 * 1024
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=30)
    c.request("GET", "/big?n=%d" % n)
    r = c.getresponse()
    r.read(1024)
    time.sleep(1.0)   # the client stalls: the upstream must be held back, not buffered
    grown = g.rss_kib() - rss0
    got = 1024 + len(r.read())
    c.close()
    assert got == n
    assert grown < 8 * 1024, "gateway grew %d KiB while the client stalled" % grown


# ------------------------------------------------------------- over TLS --

def test_grpc_over_tls_upstream(gatehouse, stubs, pki):
    up = Proc([os.path.join(HERE, "grpc_server.py"), "PORT", stubs[0], pki.up_ca1[0], pki.up_ca1[1]])
    try:
        g = gatehouse(TLS_CONFIG, subst={"up": up.address, "ca": pki.ca1})
        _, pb, pbg = stubs
        with grpc.insecure_channel("127.0.0.1:%d" % g.port) as ch:
            stub = pbg.EchoStub(ch)
            resp = stub.Unary(pb.Msg(text="tls", data=b"x" * 100000), timeout=10)
            assert resp.text == "echo:tls" and resp.count == 100000
            assert json.loads(resp.meta)["x-forwarded-proto"] == "http"
            assert [m.count for m in stub.ServerStream(pb.Msg(count=10), timeout=10)] == list(range(10))
            with pytest.raises(grpc.RpcError) as e:
                stub.Fail(pb.Msg(text="t"), timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert dict(e.value.trailing_metadata())["x-detail"] == "custom-trailer"
        # the certificate is checked: another CA's upstream is refused
        g2 = gatehouse(TLS_CONFIG, subst={"up": up.address, "ca": pki.ca2})
        status, _, body = g2.get("/ghtest.Echo/Unary")
        assert status == 502
        assert json.loads(body)["detail"] == "the TLS handshake with the upstream failed"
        assert "TLS handshake failed" in g2.stderr()
    finally:
        up.stop()


def test_tls_upstream_without_h2_is_refused(gatehouse, pki):
    # an HTTPS/1.1-only server: ALPN does not pick h2, so no HTTP/2 is spoken to it
    up = Proc([os.path.join(HERE, "certs.py"), "tls-upstream", "PORT", pki.up_ca1[0], pki.up_ca1[1]])
    try:
        g = gatehouse(TLS_CONFIG, subst={"up": up.address, "ca": pki.ca1})
        status, _, body = g.get("/x")
        assert status == 502 and json.loads(body)["code"] == "upstream_error"
        assert "did not select h2" in g.stderr()
    finally:
        up.stop()
