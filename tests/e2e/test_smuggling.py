"""Request smuggling and malformed input (SPEC §8): every ambiguous or
malformed request is answered 400 and the connection closed, and the
upstream never sees any of it."""
import pytest

from conftest import Gatehouse, Upstream, raw_exchange

CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: "off" }
upstreams:
  main: { targets: [ "{up}" ] }
routes:
  - { name: all, match: { prefix: / }, upstream: main }
"""

VECTORS = {
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    "duplicate_cl": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "conflicting_cl": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "cl_list": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
    "cl_plus": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
    "cl_hex": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc",
    "cl_negative": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "cl_overflow": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "te_gzip_chunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te_chunked_twice": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "te_two_headers": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_identity": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
    "te_xchunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te_http10": b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_space_before_colon": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "obs_fold_te": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "bare_cr_in_value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "bare_lf_line": b"GET / HTTP/1.1\nHost: x\n\n",
    "nul_in_value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "ctl_in_value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "space_before_colon": b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n",
    "bad_method": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_target_space": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_target_ctl": b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_version": b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
    "missing_host": b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bad_host": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "bad_chunk_size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk_missing_crlf": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
    "chunk_size_overflow": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
}


@pytest.fixture(scope="module")
def gateway():
    up = Upstream("main")
    g = Gatehouse(CONFIG, subst={"up": up.address}, workers=1)
    yield g, up
    g.check_clean_exit()
    up.stop()


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_refused_and_never_forwarded(gateway, name):
    g, up = gateway
    up.reset()
    # a smuggled second request follows each vector: it must not be processed either
    data = VECTORS[name] + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    out = raw_exchange(g.port, data, timeout=3)
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    head = out.split(b"\r\n\r\n", 1)[0]
    assert b"Connection: close" in head
    assert b'"code":"bad_request"' in out
    assert out.count(b"HTTP/1.1 ") == 1            # nothing after the refusal
    for r in up.requests():
        assert r["target"] != "/smuggled", r
    # nothing complete reached the upstream (a chunked body that turns out
    # malformed is cut off with the upstream connection, so the upstream
    # never sees a whole request)
    assert up.requests() == [], up.requests()


def test_valid_request_after_vectors_still_served(gateway):
    g, up = gateway
    out = raw_exchange(g.port, b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
