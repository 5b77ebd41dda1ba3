"""TLS: termination on listeners (SPEC §2 listen.tls, §8, §12.18, §12.26)
and TLS toward upstreams (SPEC §3 upstreams.X.tls).

A throwaway PKI is made once per session with the openssl command line
(certs.py). Clients are curl, nghttp, openssl s_client and Python's ssl
module; upstreams are the plain echo servers of conftest.py or, for
upstream TLS, certs.py's HTTPS server, which reports the SNI name, ALPN
and client certificate it saw.
"""
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, ResponseReader, accept_queue, free_port, server_conns, wait_port, wait_until
import certs

HERE = os.path.dirname(os.path.abspath(__file__))


# ------------------------------------------------------------ fixtures ---

@pytest.fixture(scope="session")
def pki():
    d = tempfile.mkdtemp(prefix="gh-pki-")
    try:
        yield certs.make_pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


class TlsUpstream:
    """certs.py's HTTPS server on a free port."""

    def __init__(self, cert, key, client_ca=None):
        self.port = free_port()
        cmd = ["/usr/bin/python3", os.path.join(HERE, "certs.py"), "tls-upstream", str(self.port), cert, key]
        if client_ca:
            cmd.append(client_ca)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.proc.stdout.readline()  # READY
        wait_port(self.port, proc=self.proc)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stats(self, ca, cert=None):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
        if cert:
            ctx.load_cert_chain(*cert)
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=5)
        c.request("GET", "/__stats")
        data = json.loads(c.getresponse().read())
        c.close()
        return data

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def tls_upstreams():
    made = []

    def make(cert, client_ca=None):
        u = TlsUpstream(cert[0], cert[1], client_ca)
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()


# ------------------------------------------------------------- helpers ---

def cert_entry(pair):
    return "{ cert: %s, key: %s }" % pair


def tls_block(pki, certificates=None, client_ca=None, client_cert=None, min_version=None, indent="    "):
    certificates = certificates or [pki.default, pki.a, pki.wild_b]
    lines = ["tls:", "  certificates:"]
    lines += ["    - " + cert_entry(c) for c in certificates]
    if client_ca:
        lines.append("  client_ca: %s" % client_ca)
    if client_cert:
        lines.append("  client_cert: %s" % client_cert)
    if min_version:
        lines.append('  min_version: "%s"' % min_version)
    return "\n".join(indent + l for l in lines)


def config(pki, http2=False, upstream_block=None, **tls):
    """One TLS listener (the fixture's {port}) in front of the echo upstream {up}."""
    text = "listen:\n  - address: 127.0.0.1:{port}\n"
    if http2:
        text += "    http2: true\n"
    text += tls_block(pki, **tls) + "\n"
    text += "log: { access: stdout, level: warn }\n"
    text += upstream_block or ("upstreams:\n  main:\n    targets: [ \"{up}\" ]\n"
                               "    timeouts: { connect: 1s, send: 2s, read: 2s }\n"
                               "routes:\n  - name: api\n    match: { prefix: / }\n    upstream: main\n")
    return text


def start(gatehouse, upstreams, pki, workers=1, **kw):
    up = upstreams("main")
    g = gatehouse(config(pki, **kw), subst={"up": up.address}, workers=workers)
    return g, up


def curl(*args, timeout=8):
    return subprocess.run(["curl", "-sS", "--max-time", "3"] + list(args), capture_output=True, timeout=timeout)


def curl_tls(g, pki, path="/", name="default.example.com", *extra):
    """curl over TLS, verifying against CA1, NAME resolved to 127.0.0.1;
    stdout ends with '\\nHTTP_VERSION STATUS'."""
    return curl("--cacert", pki.ca1, "--resolve", "%s:%d:127.0.0.1" % (name, g.port),
                "-w", "\n%{http_version} %{http_code}", *extra,
                "https://%s:%d%s" % (name, g.port, path))


def split_w(out):
    body, _, tail = out.rpartition(b"\n")
    version, code = tail.decode().split()
    return body, version, int(code)


def client_ctx(pki, cert=None, minv=None, maxv=None, alpn=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(pki.ca1)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_connect(port, ctx, sni="default.example.com", session=None, timeout=3):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise


def https_request(sock, path="/", headers=None, method="GET"):
    """An HTTP/1.1 request on an established TLS socket (kept open)."""
    c = http.client.HTTPConnection("127.0.0.1", timeout=3)
    c.sock = sock
    h = {"Host": "default.example.com"}
    h.update(headers or {})
    c.request(method, path, headers=h)
    r = c.getresponse()
    body = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def peer_names(port, sni, pki):
    """(subject CN, [DNS SANs]) of the certificate served for sni (None: no SNI)."""
    ctx = client_ctx(pki)
    ctx.check_hostname = False
    with tls_connect(port, ctx, sni=sni) as s:
        cert = s.getpeercert()
    cn = [v for rdn in cert["subject"] for k, v in rdn if k == "commonName"][0]
    return cn, [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]


def s_client_subject(port, servername=None, extra=()):
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
    if servername:
        cmd += ["-servername", servername]
    else:
        cmd += ["-noservername"]
    r = subprocess.run(cmd + list(extra), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=5)
    m = re.search(r"^subject=(.*)$", r.stdout, re.M)
    return m.group(1).strip() if m else None, r


def forwarded(up, name):
    """Values of header `name` in every request the echo upstream recorded."""
    out = []
    for req in up.requests():
        out.append([v for k, v in req["headers"] if k.lower() == name.lower()])
    return out


def gh(*args, cwd=None, timeout=10):
    r = subprocess.run([BIN] + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def pos(text, needle, nth=1):
    """1-based 'LINE:COL' of the nth occurrence of needle in text."""
    i = -1
    for _ in range(nth):
        i = text.index(needle, i + 1)
    line = text.count("\n", 0, i) + 1
    col = i - (text.rfind("\n", 0, i) + 1) + 1
    return "%d:%d" % (line, col)


def diag_lines(output, file):
    out = []
    for line in output.splitlines():
        m = re.match(re.escape(file) + r":(\d+):(\d+): (.*)$", line)
        if m:
            out.append(("%s:%s" % (m.group(1), m.group(2)), m.group(3)))
    return out


# ------------------------------------------------- versions, basics -----

def test_tls12_and_tls13_both_served(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki)
    r = curl_tls(g, pki, "/v12?x=1", "default.example.com", "-v", "--tlsv1.2", "--tls-max", "1.2")
    assert r.returncode == 0, r.stderr
    body, version, code = split_w(r.stdout)
    assert code == 200 and version == "1.1"
    assert b"SSL connection using TLSv1.2" in r.stderr
    info = json.loads(body)
    assert info["target"] == "/v12?x=1"
    assert info["headers"]["x-forwarded-proto"] == "https"
    assert info["headers"]["x-forwarded-port"] == str(g.port)
    r = curl_tls(g, pki, "/v13", "default.example.com", "-v", "--tlsv1.3")
    assert r.returncode == 0, r.stderr
    body, version, code = split_w(r.stdout)
    assert code == 200 and json.loads(body)["target"] == "/v13"
    assert b"SSL connection using TLSv1.3" in r.stderr
    # Python's ssl agrees on the versions negotiated
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with tls_connect(g.port, client_ctx(pki, minv=v, maxv=v)) as s:
            assert s.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v]
            status, _, _ = https_request(s, "/py")
            assert status == 200


def test_tls_1_0_and_1_1_refused_by_default(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki)
    for flag in ("-tls1", "-tls1_1"):
        subj, r = s_client_subject(g.port, "default.example.com", [flag, "-cipher", "DEFAULT@SECLEVEL=0"])
        assert r.returncode != 0 and subj is None, r.stdout
        assert "Cipher is (NONE)" in r.stdout, r.stdout


def test_min_version_13_refuses_a_tls12_client(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, min_version="1.3")
    r = curl_tls(g, pki, "/old", "default.example.com", "--tlsv1.2", "--tls-max", "1.2")
    assert r.returncode != 0, r.stdout
    r = curl_tls(g, pki, "/new", "default.example.com", "--tlsv1.3")
    assert r.returncode == 0, r.stderr
    assert split_w(r.stdout)[2] == 200
    with pytest.raises(ssl.SSLError):
        tls_connect(g.port, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2)).close()
    assert [q["target"] for q in up.requests()] == ["/new"]


def test_plain_http_on_a_tls_port_is_not_served(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki)
    out = g.raw(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1.5)
    assert not out.startswith(b"HTTP/1.1 200"), out
    assert up.requests() == []
    # still serving TLS afterwards
    assert split_w(curl_tls(g, pki, "/after").stdout)[2] == 200


def test_client_renegotiation_refused(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki)
    sc = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % g.port, "-tls1_2",
                           "-servername", "default.example.com"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""

    def read_until(needle, timeout=10):
        nonlocal out
        deadline = time.time() + timeout
        while needle not in out and time.time() < deadline:
            if select.select([sc.stdout], [], [], max(0, deadline - time.time()))[0]:
                b = os.read(sc.stdout.fileno(), 65536)
                if not b:
                    break
                out += b

    try:
        read_until(b"Verify return code")    # the handshake is done: now ask to renegotiate
        sc.stdin.write(b"R\n")
        sc.stdin.flush()
        read_until(b"no renegotiation")        # the gateway's refusal, before s_client sees EOF
    finally:
        if sc.poll() is None:
            sc.kill()
            sc.wait()
    assert b"RENEGOTIATING" in out and b"no renegotiation" in out, out[-2000:]
    assert split_w(curl_tls(g, pki, "/after").stdout)[2] == 200


# ----------------------------------------------------------------- SNI ---

def test_sni_picks_the_certificate(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki)
    # exact name
    assert peer_names(g.port, "a.example.com", pki) == ("a.example.com", ["a.example.com"])
    # the wildcard covers one label
    assert peer_names(g.port, "x.b.example.com", pki)[0] == "*.b.example.com"
    assert peer_names(g.port, "other-1.b.example.com", pki)[0] == "*.b.example.com"
    # not the bare domain, not two labels: the default (first) certificate
    assert peer_names(g.port, "b.example.com", pki)[0] == "default.example.com"
    assert peer_names(g.port, "y.x.b.example.com", pki)[0] == "default.example.com"
    # unknown names and no SNI at all: the default
    assert peer_names(g.port, "unknown.example.com", pki)[0] == "default.example.com"
    assert peer_names(g.port, None, pki)[0] == "default.example.com"
    # openssl s_client agrees, and names are case-insensitive
    subj, r = s_client_subject(g.port, "A.EXAMPLE.COM")
    assert subj is not None and "CN = a.example.com" in subj.replace("CN=", "CN = "), r.stdout[-2000:]
    subj, r = s_client_subject(g.port, "a.example.com.")   # a trailing dot is the same name
    assert subj is not None and "a.example.com" in subj, r.stdout[-2000:]
    subj, r = s_client_subject(g.port, "x.b.example.com")
    assert "*.b.example.com" in subj, r.stdout[-2000:]
    subj, r = s_client_subject(g.port, "unknown.example.com")
    assert "default.example.com" in subj, r.stdout[-2000:]
    # curl with full verification (hostname checked against the served cert)
    for name in ("a.example.com", "x.b.example.com", "default.example.com"):
        r = curl_tls(g, pki, "/sni", name)
        assert r.returncode == 0, (name, r.stderr)
        body, _, code = split_w(r.stdout)
        assert code == 200 and json.loads(body)["headers"]["host"].startswith(name)
    # an unknown name gets the default certificate, which curl refuses
    r = curl_tls(g, pki, "/sni", "unknown.example.com")
    assert r.returncode == 60, r.stderr


def test_sni_with_tls12_too(gatehouse, upstreams, pki):
    """The certificate switch happens before the cipher suite is chosen:
    an RSA default and ECDSA named certificates both work over TLS 1.2."""
    g, up = start(gatehouse, upstreams, pki)
    for name, cn in (("a.example.com", "a.example.com"), ("z.b.example.com", "*.b.example.com"),
                     ("default.example.com", "default.example.com")):
        ctx = client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2)
        with tls_connect(g.port, ctx, sni=name) as s:
            assert s.version() == "TLSv1.2"
            got = [v for rdn in s.getpeercert()["subject"] for k, v in rdn if k == "commonName"][0]
            assert got == cn
            assert https_request(s, "/sni12", headers={"Host": name})[0] == 200


def test_certificate_chains_served_and_accepted(gatehouse, upstreams, pki):
    """A certificate file with the intermediate after the leaf: the chain is
    served (clients trusting only the root verify it, also when SNI picks a
    non-default certificate), and a client sending leaf + intermediate
    verifies against a client_ca holding only the root."""
    g, up = start(gatehouse, upstreams, pki, certificates=[pki.default, pki.chain],
                  client_ca=pki.ca1, client_cert="required")
    r = curl_tls(g, pki, "/chain", "chain.example.com", "--cert", pki.client2[0], "--key", pki.client2[1])
    assert r.returncode == 0, r.stderr
    assert split_w(r.stdout)[2] == 200
    # a client sending its leaf alone cannot be verified (the root did not sign it)
    r = curl_tls(g, pki, "/leafonly", "chain.example.com", "--cert", pki.client2_leaf[0], "--key", pki.client2_leaf[1])
    assert r.returncode != 0, r.stdout
    assert forwarded(up, "X-Client-Cert-Subject") == [["CN=client2,O=Example"]]


# ---------------------------------------------------------------- ALPN ---

def test_alpn_h2_when_http2_enabled(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, http2=True)
    r = curl_tls(g, pki, "/h2?q=1", "a.example.com", "--http2")
    assert r.returncode == 0, r.stderr
    body, version, code = split_w(r.stdout)
    assert (version, code) == ("2", 200)
    info = json.loads(body)
    assert info["target"] == "/h2?q=1" and info["headers"]["x-forwarded-proto"] == "https"
    # a client that asks only for http/1.1 gets it
    r = curl_tls(g, pki, "/h1", "a.example.com", "--http1.1")
    assert split_w(r.stdout)[1:] == ("1.1", 200)
    # nghttp2's own client
    r = subprocess.run(["nghttp", "-nv", "https://127.0.0.1:%d/nghttp" % g.port], capture_output=True, timeout=8)
    assert r.returncode == 0, r.stderr[-2000:]
    assert b"The negotiated protocol: h2" in r.stdout and b":status: 200" in r.stdout, r.stdout[-3000:]
    # Python: the server's preference (h2) wins whatever the client's order;
    # no ALPN at all is HTTP/1.1
    with tls_connect(g.port, client_ctx(pki, alpn=["http/1.1", "h2"])) as s:
        assert s.selected_alpn_protocol() == "h2"
    with tls_connect(g.port, client_ctx(pki)) as s:
        assert s.selected_alpn_protocol() is None
        assert https_request(s, "/noalpn")[0] == 200


def test_alpn_http11_when_http2_disabled(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, http2=False)
    r = curl_tls(g, pki, "/h1only", "default.example.com", "--http2")
    assert r.returncode == 0, r.stderr
    assert split_w(r.stdout)[1:] == ("1.1", 200)
    with tls_connect(g.port, client_ctx(pki, alpn=["h2", "http/1.1"])) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert https_request(s, "/alpn11")[0] == 200
    # a client that can speak only h2 has nothing in common with this listener
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with tls_connect(g.port, client_ctx(pki, alpn=["h2"])) as s:
            https_request(s, "/never")
    assert [q["target"] for q in up.requests()] == ["/h1only", "/alpn11"]


def test_h2c_prior_knowledge_and_http11_on_plaintext_http2_listener(gatehouse, upstreams):
    up = upstreams("main")
    g = gatehouse("""
listen:
  - address: 127.0.0.1:{port}
    http2: true
log: { access: stdout, level: warn }
upstreams:
  main: { targets: [ "{up}" ] }
routes:
  - name: api
    match: { prefix: / }
    upstream: main
""", subst={"up": up.address}, workers=1)
    url = "http://127.0.0.1:%d" % g.port
    r = curl("--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", url + "/h2c")
    assert r.returncode == 0, r.stderr
    body, version, code = split_w(r.stdout)
    assert (version, code) == ("2", 200)
    assert json.loads(body)["headers"]["x-forwarded-proto"] == "http"
    r = curl("--http1.1", "-w", "\n%{http_version} %{http_code}", url + "/h11")
    assert split_w(r.stdout)[1:] == ("1.1", 200)
    r = subprocess.run(["nghttp", "-nv", url + "/nghttp"], capture_output=True, timeout=8)
    assert r.returncode == 0 and b":status: 200" in r.stdout, r.stdout[-2000:]
    assert [q["target"] for q in up.requests()] == ["/h2c", "/h11", "/nghttp"]


# --------------------------------------------------- session resumption ---

@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_session_resumption(gatehouse, upstreams, pki, version):
    g, up = start(gatehouse, upstreams, pki, workers=2)
    v = getattr(ssl.TLSVersion, version)
    for name in ("default.example.com", "a.example.com"):
        ctx = client_ctx(pki, minv=v, maxv=v)
        with tls_connect(g.port, ctx, sni=name) as s:
            assert not s.session_reused
            # TLS 1.3 tickets come after the handshake: read a response first
            assert https_request(s, "/first", headers={"Host": name})[0] == 200
            sess = s.session
        assert sess is not None
        # several reconnections (two workers: whichever accepts must resume)
        for i in range(4):
            with tls_connect(g.port, ctx, sni=name, session=sess) as s:
                assert s.session_reused, (name, i)
                assert s.getpeercert()["subjectAltName"][0][1] == name
                assert https_request(s, "/again", headers={"Host": name})[0] == 200
                if version == "TLSv1_3":
                    sess = s.session


def test_session_resumption_with_openssl_s_client(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki)
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % g.port, "-servername",
                        "default.example.com", "-tls1_2", "-reconnect"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=8)
    assert r.stdout.count("Reused, TLSv1.2") >= 5, r.stdout[-3000:]


# ---------------------------------------------------------------- mTLS ---

SUBJECT = "CN=client1,O=Example"


def test_mtls_required(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, client_ca=pki.ca1, client_cert="required")
    # no client certificate: refused (TLS 1.3 reports it after the handshake,
    # so curl fails either in the handshake or on the first read)
    r = curl_tls(g, pki, "/nocert")
    assert r.returncode != 0, r.stdout
    r = curl_tls(g, pki, "/nocert12", "default.example.com", "--tlsv1.2", "--tls-max", "1.2")
    assert r.returncode == 35, r.stderr
    # a certificate from an unrelated CA (same subject): refused
    r = curl_tls(g, pki, "/ca2", "default.example.com", "--cert", pki.client_ca2[0], "--key", pki.client_ca2[1])
    assert r.returncode != 0, r.stdout
    # server certificates of CA1 are not client certificates
    r = curl_tls(g, pki, "/srvcert", "default.example.com", "--cert", pki.a[0], "--key", pki.a[1])
    assert r.returncode != 0, r.stdout
    assert up.requests() == []
    # the good one: 200 and the verified subject forwarded
    r = curl_tls(g, pki, "/good", "default.example.com", "--cert", pki.client1[0], "--key", pki.client1[1])
    assert r.returncode == 0, r.stderr
    body, _, code = split_w(r.stdout)
    assert code == 200
    assert json.loads(body)["headers"]["x-client-cert-subject"] == SUBJECT
    # a client claiming a subject itself: replaced by the verified one
    r = curl_tls(g, pki, "/spoof", "default.example.com", "--cert", pki.client1[0], "--key", pki.client1[1],
                 "-H", "X-Client-Cert-Subject: CN=admin", "-H", "x-client-cert-subject: CN=root")
    assert split_w(r.stdout)[2] == 200
    assert forwarded(up, "X-Client-Cert-Subject") == [[SUBJECT], [SUBJECT]]


def test_mtls_required_over_http2(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, http2=True, client_ca=pki.ca1, client_cert="required")
    r = curl_tls(g, pki, "/h2good", "default.example.com", "--http2", "--cert", pki.client1[0],
                 "--key", pki.client1[1], "-H", "X-Client-Cert-Subject: CN=admin")
    assert r.returncode == 0, r.stderr
    body, version, code = split_w(r.stdout)
    assert (version, code) == ("2", 200)
    assert forwarded(up, "X-Client-Cert-Subject") == [[SUBJECT]]
    r = curl_tls(g, pki, "/h2bad", "default.example.com", "--http2", "--cert", pki.client_ca2[0],
                 "--key", pki.client_ca2[1])
    assert r.returncode != 0, r.stdout
    assert len(up.requests()) == 1


def test_mtls_optional(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, http2=True, client_ca=pki.ca1, client_cert="optional")
    # no certificate: served, no subject; a client-sent one is removed
    r = curl_tls(g, pki, "/none", "default.example.com", "-H", "X-Client-Cert-Subject: CN=admin")
    assert r.returncode == 0, r.stderr
    assert split_w(r.stdout)[2] == 200
    # a certificate that does not verify: served, but vouched for by no one
    r = curl_tls(g, pki, "/ca2", "default.example.com", "--cert", pki.client_ca2[0], "--key", pki.client_ca2[1],
                 "-H", "X-Client-Cert-Subject: CN=admin")
    assert r.returncode == 0, r.stderr
    assert split_w(r.stdout)[2] == 200
    # the same over HTTP/2
    r = curl_tls(g, pki, "/ca2h2", "default.example.com", "--http2", "--cert", pki.client_ca2[0],
                 "--key", pki.client_ca2[1], "-H", "X-Client-Cert-Subject: CN=admin")
    assert split_w(r.stdout)[1:] == ("2", 200)
    # over TLS 1.2 as well
    r = curl_tls(g, pki, "/ca2v12", "default.example.com", "--tlsv1.2", "--tls-max", "1.2",
                 "--cert", pki.client_ca2[0], "--key", pki.client_ca2[1])
    assert split_w(r.stdout)[2] == 200
    # a verified certificate: the subject, whatever the client claims
    r = curl_tls(g, pki, "/good", "default.example.com", "--cert", pki.client1[0], "--key", pki.client1[1],
                 "-H", "X-Client-Cert-Subject: CN=admin")
    assert split_w(r.stdout)[2] == 200
    r = curl_tls(g, pki, "/goodh2", "default.example.com", "--http2", "--cert", pki.client1[0],
                 "--key", pki.client1[1])
    assert split_w(r.stdout)[1:] == ("2", 200)
    r = curl_tls(g, pki, "/good12", "default.example.com", "--tlsv1.2", "--tls-max", "1.2",
                 "--cert", pki.client1[0], "--key", pki.client1[1])
    assert split_w(r.stdout)[2] == 200
    got = {q["target"]: [v for k, v in q["headers"] if k.lower() == "x-client-cert-subject"]
           for q in up.requests()}
    assert got == {"/none": [], "/ca2": [], "/ca2h2": [], "/ca2v12": [],
                   "/good": [SUBJECT], "/goodh2": [SUBJECT], "/good12": [SUBJECT]}


def test_mtls_subject_is_rfc4514_escaped(gatehouse, upstreams, pki):
    """A CN with a comma must not read as an extra attribute."""
    g, up = start(gatehouse, upstreams, pki, client_ca=pki.ca1, client_cert="required")
    r = curl_tls(g, pki, "/comma", "default.example.com", "--cert", pki.client_comma[0],
                 "--key", pki.client_comma[1])
    assert split_w(r.stdout)[2] == 200, r.stderr
    assert forwarded(up, "X-Client-Cert-Subject") == [["CN=admin\\,O=Example,O=Evil"]]


def test_mtls_none_never_asks_and_never_forwards(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, client_ca=pki.ca1, client_cert="none")
    r = curl_tls(g, pki, "/x", "default.example.com", "--cert", pki.client1[0], "--key", pki.client1[1],
                 "-H", "X-Client-Cert-Subject: CN=admin")
    assert split_w(r.stdout)[2] == 200, r.stderr
    assert forwarded(up, "X-Client-Cert-Subject") == [[]]


def test_plain_listener_removes_client_sent_subject(gatehouse, upstreams):
    up = upstreams("main")
    g = gatehouse("""
listen:
  - address: 127.0.0.1:{port}
log: { access: stdout, level: warn }
upstreams:
  main: { targets: [ "{up}" ] }
routes:
  - name: api
    match: { prefix: / }
    upstream: main
""", subst={"up": up.address}, workers=1)
    status, _, _ = g.get("/p", headers={"X-Client-Cert-Subject": "CN=admin"})
    assert status == 200
    assert forwarded(up, "X-Client-Cert-Subject") == [[]]


def test_mtls_subject_survives_session_resumption(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, client_ca=pki.ca1, client_cert="optional")
    for cert, want in ((pki.client1, [SUBJECT]), (pki.client_ca2, []), (None, [])):
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            up.reset()
            ctx = client_ctx(pki, cert=cert, minv=v, maxv=v)
            with tls_connect(g.port, ctx) as s:
                assert https_request(s, "/full", headers={"X-Client-Cert-Subject": "CN=admin"})[0] == 200
                sess = s.session
            with tls_connect(g.port, ctx, session=sess) as s:
                assert s.session_reused, (cert, v)
                assert https_request(s, "/resumed", headers={"X-Client-Cert-Subject": "CN=admin"})[0] == 200
            assert forwarded(up, "X-Client-Cert-Subject") == [want, want], (cert, v)


# ------------------------------------------- bytes over TLS, robustness ---

@pytest.mark.parametrize("proto", ["--http1.1", "--http2"])
def test_large_bodies_both_ways(gatehouse, upstreams, pki, tmp, proto):
    """Partial SSL writes and records spanning reads, with a slow reader."""
    import hashlib
    g, up = start(gatehouse, upstreams, pki, http2=True)
    n = 8 * 1024 * 1024 + 13
    out = os.path.join(tmp, "down")
    r = curl_tls(g, pki, "/big?n=%d" % n, "default.example.com", proto, "-o", out)
    assert r.returncode == 0, r.stderr
    assert os.path.getsize(out) == n
    with open(out, "rb") as f:
        assert f.read() == b"x" * n
    r = curl_tls(g, pki, "/chunked?n=%d" % (n // 2), "default.example.com", proto, "-o", out,
                 "--limit-rate", "20M")
    assert r.returncode == 0, r.stderr
    assert os.path.getsize(out) == n // 2
    data = os.urandom(3 * 1024 * 1024 + 7)
    src = os.path.join(tmp, "up")
    with open(src, "wb") as f:
        f.write(data)
    r = curl_tls(g, pki, "/upload", "default.example.com", proto, "--data-binary", "@" + src,
                 "-H", "Content-Type: application/octet-stream")
    assert r.returncode == 0, r.stderr
    body, _, code = split_w(r.stdout)
    assert code == 200
    got = json.loads(body)
    assert got["body_len"] == len(data) and got["sha256"] == hashlib.sha256(data).hexdigest()


def test_pipelined_requests_over_tls(gatehouse, upstreams, pki):
    """Several requests in one TLS record, and one request split over many."""
    g, up = start(gatehouse, upstreams, pki)
    with tls_connect(g.port, client_ctx(pki)) as s:
        s.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: default.example.com\r\n\r\n" % i for i in range(5)))
        reader = ResponseReader(s)
        for i in range(5):
            status, _, body = reader.response()
            assert status == 200 and json.loads(body)["path"] == "/p%d" % i
        for b in b"GET /split HTTP/1.1\r\nHost: default.example.com\r\n\r\n":
            s.sendall(bytes([b]))
        status, _, body = reader.response()
        assert status == 200 and json.loads(body)["path"] == "/split"
        s.sendall(b"GET /last HTTP/1.1\r\nHost: default.example.com\r\n\r\n")
        status, _, body = reader.response()
        assert status == 200 and json.loads(body)["path"] == "/last"
        assert reader.buf == b""
    assert [q["target"] for q in up.requests()] == ["/p0", "/p1", "/p2", "/p3", "/p4", "/split", "/last"]


def test_server_sent_events_stream_over_tls(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki)
    with tls_connect(g.port, client_ctx(pki)) as s:
        # the next event comes 2 s later: the first must not wait for it (the
        # test ends at the first, so the gap costs nothing)
        s.sendall(b"GET /sse?events=2&gap=2 HTTP/1.1\r\nHost: default.example.com\r\n\r\n")
        t0 = time.time()
        data = b""
        while b"event 0" not in data:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
        assert b"event 1" not in data and time.time() - t0 < 1.5, "first event was held back"


def read_to_eof(s, limit):
    """True when the peer closed (EOF or reset) within limit seconds."""
    s.settimeout(limit)
    data = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                return True, data
            data += b
    except ConnectionResetError:
        return True, data
    except socket.timeout:
        return False, data


def test_stalled_handshake_closed_after_header_timeout(gatehouse, upstreams, pki):
    """The header deadline armed at accept covers a handshake that never
    ends: a TCP connection that sends nothing, or half a ClientHello, is
    closed once header_timeout has passed (else: a slowloris keeps every
    file descriptor of a TLS listener)."""
    up = upstreams("main")
    text = config(pki).replace("log:", "limits: { header_timeout: 1s }\nlog:")
    g = gatehouse(text, subst={"up": up.address}, workers=1)
    t0 = time.time()
    idle = socket.create_connection(("127.0.0.1", g.port), timeout=3)
    half = socket.create_connection(("127.0.0.1", g.port), timeout=3)
    try:
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 20)
        closed_idle, _ = read_to_eof(idle, 2.0)
        closed_half, _ = read_to_eof(half, max(0.1, 2.2 - (time.time() - t0)))
        assert closed_idle and closed_half, "still open after %.1fs: idle=%s half-hello=%s" % (
            time.time() - t0, not closed_idle, not closed_half)
        assert time.time() - t0 > 0.8
    finally:
        idle.close()
        half.close()


def test_partial_request_head_over_tls_gets_408(gatehouse, upstreams, pki):
    up = upstreams("main")
    text = config(pki).replace("log:", "limits: { header_timeout: 1s }\nlog:")
    g = gatehouse(text, subst={"up": up.address}, workers=1)
    t0 = time.time()
    with tls_connect(g.port, client_ctx(pki)) as s:
        s.sendall(b"GET /slowloris HTTP/1.1\r\nHost: default.example.com\r\nX-A: 1\r\n")
        closed, data = read_to_eof(s, 2.5)
    assert closed, "not closed after %.1fs" % (time.time() - t0)
    assert data.startswith(b"HTTP/1.1 408"), data
    assert up.requests() == []


def test_broken_handshakes_do_not_disturb_others(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, workers=1)
    # garbage, a record too short to be a ClientHello, a TLS alert, each
    # followed by an abrupt reset; plain HTTP; a client that gives up after
    # its ClientHello
    for junk in (os.urandom(300), b"\x16\x03\x01\x00\x05hello", b"\x15\x03\x03\x00\x02\x02\x28",
                 b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        c = socket.create_connection(("127.0.0.1", g.port), timeout=3)
        c.sendall(junk)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    raw = socket.create_connection(("127.0.0.1", g.port), timeout=3)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx(pki).wrap_bio(incoming, outgoing, server_hostname="a.example.com")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    raw.sendall(outgoing.read())
    raw.close()
    # a client that closes right after the handshake
    tls_connect(g.port, client_ctx(pki)).close()
    for i in range(3):
        assert split_w(curl_tls(g, pki, "/ok%d" % i).stdout)[2] == 200
    assert [q["target"] for q in up.requests()] == ["/ok0", "/ok1", "/ok2"]


class BioClient:
    """A TLS client over memory BIOs: the test decides what goes out in
    which TCP write."""

    def __init__(self, port, ctx, sni="default.example.com"):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=sni)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.raw.sendall(self.out.read())
                self.inc.write(self.raw.recv(65536))
        self.raw.sendall(self.out.read())

    def queue(self, data):
        self.obj.write(data)

    def queue_close_notify(self):
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass

    def flush(self):
        self.raw.sendall(self.out.read())

    def until_closed(self, limit):
        closed, data = read_to_eof(self.raw, limit)
        self.inc.write(data)
        app = b""
        try:
            while True:
                chunk = self.obj.read(65536)
                if not chunk:
                    break
                app += chunk
        except (ssl.SSLError, ssl.SSLWantReadError):
            pass
        return closed, app

    def close(self):
        self.raw.close()


@pytest.mark.parametrize("together", [False, True], ids=["separate", "same-write"])
def test_close_notify_ends_the_connection(gatehouse, upstreams, pki, together):
    """A client's close_notify (it closes its side, waiting for ours) ends
    the connection at once, also when it arrives in the same TCP segment as
    the last request bytes (read-ahead must not swallow the EOF)."""
    g, up = start(gatehouse, upstreams, pki, workers=1)
    for payload, want in ((b"GET /full HTTP/1.1\r\nHost: default.example.com\r\n\r\n", b"HTTP/1.1 200"),
                          (b"GET /cut HTTP/1.1\r\nHost: defa", b"")):
        c = BioClient(g.port, client_ctx(pki))
        try:
            c.queue(payload)
            if not together:
                c.flush()
                time.sleep(0.1)
            c.queue_close_notify()
            c.flush()
            t0 = time.time()
            closed, app = c.until_closed(1.5)
            assert closed, "%r + close_notify: connection still open after %.1fs" % (payload[:20], time.time() - t0)
            assert app.startswith(want), app[:200]
        finally:
            c.close()
    assert [q["target"] for q in up.requests()] == ["/full"]


def test_drain_closes_idle_keepalive_tls_connections(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, workers=1)
    keep = tls_connect(g.port, client_ctx(pki))
    try:
        assert https_request(keep, "/before")[0] == 200
        time.sleep(0.1)
        t0 = time.time()
        g.proc.send_signal(signal.SIGTERM)
        closed, _ = read_to_eof(keep, 2.0)
        assert closed, "idle keep-alive TLS connection not closed by the drain"
        g.proc.wait(timeout=3)
        assert g.proc.returncode == 0 and time.time() - t0 < 2
    finally:
        keep.close()


def test_drain_does_not_wait_for_a_connection_in_its_handshake(gatehouse, upstreams, pki):
    """SIGTERM: a connection still in its TLS handshake holds no request;
    it is closed at once and the gateway exits without waiting for
    drain_timeout (30s)."""
    g, up = start(gatehouse, upstreams, pki, workers=1)
    hs = socket.create_connection(("127.0.0.1", g.port), timeout=3)
    try:
        time.sleep(0.1)
        t0 = time.time()
        g.proc.send_signal(signal.SIGTERM)
        try:
            g.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        assert g.proc.poll() == 0, "still running %.1fs after SIGTERM, held by a connection in its handshake" % (
            time.time() - t0)
    finally:
        hs.close()


def test_many_concurrent_tls_clients(gatehouse, upstreams, pki):
    import concurrent.futures
    g, up = start(gatehouse, upstreams, pki, workers=2, http2=True, client_ca=pki.ca1)
    names = ["default.example.com", "a.example.com", "q.b.example.com"]
    versions = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]

    def one(i):
        name = names[i % 3]
        v = versions[i % 2]
        cert = pki.client1 if i % 4 == 0 else None
        with tls_connect(g.port, client_ctx(pki, cert=cert, minv=v, maxv=v, alpn=["http/1.1"]), sni=name) as s:
            results = []
            for k in range(3):
                st, _, body = https_request(s, "/c%d/%d" % (i, k), headers={"Host": name})
                results.append((st, json.loads(body)["headers"].get("x-client-cert-subject")))
            return i, results

    with concurrent.futures.ThreadPoolExecutor(32) as ex:
        for i, results in ex.map(one, range(96)):
            want = SUBJECT if i % 4 == 0 else None
            assert results == [(200, want)] * 3, (i, results)
    assert len(up.requests()) == 96 * 3


# ------------------------------------------------------- config errors ---

def write_config(d, text, name="gatehouse.yaml"):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="gh-tls-") as d:
        yield d


def listener_config(certs_text, extra_tls="", upstream_tls=None):
    text = ("listen:\n  - address: 127.0.0.1:18443\n    tls:\n      certificates:\n" + certs_text + extra_tls +
            "upstreams:\n  main:\n    targets: [ \"127.0.0.1:19001\" ]\n")
    if upstream_tls:
        text += upstream_tls
    text += "routes:\n  - name: api\n    match: { prefix: / }\n    upstream: main\n"
    return text


def test_check_accepts_valid_tls_and_resolves_paths_from_the_config_dir(tmp, pki):
    os.makedirs(os.path.join(tmp, "certs"))
    for f in ("default.pem", "default.key", "a.pem", "a.key", "ca1.pem"):
        shutil.copy(os.path.join(pki.dir, f), os.path.join(tmp, "certs", f))
    text = listener_config("        - { cert: certs/default.pem, key: certs/default.key }\n"
                           "        - { cert: certs/a.pem, key: certs/a.key }\n",
                           "      client_ca: certs/ca1.pem\n      client_cert: optional\n      min_version: \"1.3\"\n",
                           "    tls: { ca: certs/ca1.pem, sni: localhost }\n")
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path, cwd="/")
    assert rc == 0, out + err


def test_check_missing_cert_file(tmp, pki):
    text = listener_config("        - { cert: %s, key: %s }\n" % pki.default +
                           "        - { cert: missing/nope.pem, key: %s }\n" % pki.a[1])
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path, cwd="/")
    assert rc == 1, out + err
    lines = diag_lines(out + err, path)
    want = pos(text, "cert: missing")
    assert any(p == want and "nope.pem" in m for p, m in lines), (want, out + err)


def test_check_key_not_matching_cert(tmp, pki):
    text = listener_config("        - { cert: %s, key: %s }\n" % (pki.a[0], pki.wild_b[1]))
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1, out + err
    lines = diag_lines(out + err, path)
    want = pos(text, "key: ")
    assert any(p == want and "match" in m for p, m in lines), (want, out + err)


def test_check_garbage_cert_and_every_bad_file_reported(tmp, pki):
    bad = write_config(tmp, "this is not a certificate\n", "bad.pem")
    text = listener_config("        - { cert: %s, key: %s }\n" % (bad, pki.a[1]) +
                           "        - { cert: %s, key: %s }\n" % (pki.a[0], pki.default[1]))
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1, out + err
    lines = dict(diag_lines(out + err, path))
    assert pos(text, "cert: ") in lines, out + err           # the garbage file
    assert pos(text, "key: ", 2) in lines, out + err          # the mismatched pair


def test_check_key_formats(tmp, pki):
    """A traditional (PKCS#1) key is fine; an encrypted one is refused at
    its key (no passphrase prompt), by check and by run."""
    text = listener_config("        - { cert: %s, key: %s }\n" % (pki.default[0], pki.default_key_traditional))
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 0, out + err
    text = listener_config("        - { cert: %s, key: %s }\n" % (pki.default[0], pki.default_key_encrypted))
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path, timeout=5)
    assert rc == 1, out + err
    lines = diag_lines(out + err, path)
    assert any(p == pos(text, "key: ") and "encrypted" in m for p, m in lines), out + err


def test_check_client_cert_required_without_client_ca(tmp, pki):
    for mode in ("required", "optional"):
        text = listener_config("        - { cert: %s, key: %s }\n" % pki.default,
                               "      client_cert: %s\n" % mode)
        path = write_config(tmp, text)
        rc, out, err = gh("check", "-c", path)
        assert rc == 1, out + err
        lines = diag_lines(out + err, path)
        want = pos(text, "client_cert")
        assert any(p == want and "client_ca" in m for p, m in lines), (mode, want, out + err)


def test_check_missing_client_ca_file(tmp, pki):
    text = listener_config("        - { cert: %s, key: %s }\n" % pki.default,
                           "      client_ca: /nonexistent/ca.pem\n      client_cert: required\n")
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1, out + err
    want = pos(text, "client_ca")
    assert any(p == want for p, m in diag_lines(out + err, path)), (want, out + err)


def test_check_bad_upstream_tls_files(tmp, pki):
    text = listener_config("        - { cert: %s, key: %s }\n" % pki.default, "",
                           "    tls: { ca: /nonexistent/ca.pem }\n")
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1, out + err
    assert any(p == pos(text, "ca: /nonexistent") for p, m in diag_lines(out + err, path)), out + err
    text = listener_config("        - { cert: %s, key: %s }\n" % pki.default, "",
                           "    tls: { cert: %s, key: %s }\n" % (pki.gw_client[0], pki.a[1]))
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1, out + err
    assert any(p == pos(text, "key: ", 2) and "match" in m for p, m in diag_lines(out + err, path)), out + err
    text = listener_config("        - { cert: %s, key: %s }\n" % pki.default, "",
                           "    tls: { cert: %s }\n" % pki.gw_client[0])
    path = write_config(tmp, text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1, out + err
    assert any(p == pos(text, "cert: ", 2) for p, m in diag_lines(out + err, path)), out + err


def test_run_refuses_a_bad_certificate(tmp, pki):
    text = listener_config("        - { cert: %s, key: %s }\n" % (pki.a[0], pki.default[1]))
    text = text.replace("18443", str(free_port()))
    path = write_config(tmp, text)
    r = subprocess.run([BIN, "run", "-c", path, "--workers", "1"], capture_output=True, text=True, timeout=5)
    assert r.returncode == 1, r.stderr
    assert pos(text, "key: ") in r.stderr, r.stderr


# -------------------------------------------------------------- reload ---

def test_reload_with_a_bad_certificate_keeps_the_old_one(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, workers=2)
    # a keep-alive connection made before the reloads
    keep = tls_connect(g.port, client_ctx(pki))
    assert https_request(keep, "/before")[0] == 200
    good = config(pki)
    # each bad config also changes the routes: none of it may apply
    teapot = "routes:\n  - name: api\n    match: { prefix: / }\n    respond: { status: 418, body: new }\n"
    for bad in (config(pki, upstream_block=teapot, certificates=[(pki.default[0], pki.a[1])]),  # key mismatch
                config(pki, upstream_block=teapot, certificates=[(pki.dir + "/gone.pem", pki.default[1])]),
                config(pki, upstream_block=teapot, client_cert="required")):  # no client_ca
        g.reload(bad)
        assert peer_names(g.port, "default.example.com", pki)[0] == "default.example.com"
        assert peer_names(g.port, "a.example.com", pki)[0] == "a.example.com"
        r = curl_tls(g, pki, "/still")
        body, _, code = split_w(r.stdout)
        assert code == 200 and json.loads(body)["target"] == "/still", (r.stdout, r.stderr)
    err = g.stderr()
    assert "gone.pem" in err and "match" in err and "client_ca" in err, err
    assert err.count("reload failed") >= 3, err
    assert https_request(keep, "/kept")[0] == 200
    keep.close()
    g.write(good)


def test_reload_rotates_the_certificate(gatehouse, upstreams, pki):
    g, up = start(gatehouse, upstreams, pki, workers=2)
    keep = tls_connect(g.port, client_ctx(pki))
    assert https_request(keep, "/before")[0] == 200
    sessions = []
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_ctx(pki, minv=v, maxv=v)
        with tls_connect(g.port, ctx) as s:
            assert https_request(s, "/sess")[0] == 200
            sessions.append((ctx, s.session))
    assert peer_names(g.port, "default.example.com", pki)[0] == "default.example.com"
    g.reload(config(pki, certificates=[pki.rotated, pki.a]))
    # sessions from before the reload: offered, the handshake still succeeds
    for ctx, sess in sessions:
        with tls_connect(g.port, ctx, session=sess) as s:
            assert https_request(s, "/resumed-after-reload")[0] == 200
    # every worker serves the new certificate to new connections
    for _ in range(6):
        assert peer_names(g.port, "default.example.com", pki)[0] == "rotated.example.com"
    assert peer_names(g.port, "rotated.example.com", pki)[0] == "rotated.example.com"
    # the wildcard certificate was removed: its names now get the default
    assert peer_names(g.port, "x.b.example.com", pki)[0] == "rotated.example.com"
    # a connection made before the reload is not dropped
    assert https_request(keep, "/after")[0] == 200
    keep.close()
    assert "reload failed" not in g.stderr()


def test_reload_picks_up_certificate_files_replaced_in_place(gatehouse, upstreams, pki, tmp):
    """certbot-style renewal: same paths, new contents, then SIGHUP."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    shutil.copy(pki.default[0], cert)
    shutil.copy(pki.default[1], key)
    g, up = start(gatehouse, upstreams, pki, workers=2, certificates=[(cert, key)])
    assert peer_names(g.port, "default.example.com", pki)[0] == "default.example.com"
    shutil.copy(pki.rotated[0], cert)
    shutil.copy(pki.rotated[1], key)
    g.reload()
    for _ in range(4):
        assert peer_names(g.port, "default.example.com", pki)[0] == "rotated.example.com"
    assert "reload failed" not in g.stderr()


def test_run_resolves_certificate_paths_from_the_config_dir(tmp, pki):
    """`run -c DIR/gh.yaml` from another working directory: a relative
    certificate path means DIR/..., and a missing one refuses to start."""
    port = free_port()
    text = ("listen:\n  - address: 127.0.0.1:%d\n" % port +
            tls_block(None, certificates=[("live/cert.pem", "live/key.pem")]) + "\n" +
            "routes:\n  - name: r\n    match: { prefix: / }\n    respond: { status: 200, body: ok }\n")
    path = write_config(tmp, text)
    other = tempfile.mkdtemp(prefix="gh-cwd-")
    try:
        r = subprocess.run([BIN, "run", "-c", path, "--workers", "1"], capture_output=True, text=True,
                           cwd=other, timeout=5)
        assert r.returncode == 1, r.stderr
        assert "%s:%s:" % (path, pos(text, "cert: ")) in r.stderr, r.stderr
        assert os.path.join(tmp, "live/cert.pem") in r.stderr, r.stderr
        os.makedirs(os.path.join(tmp, "live"))
        shutil.copy(pki.default[0], os.path.join(tmp, "live", "cert.pem"))
        shutil.copy(pki.default[1], os.path.join(tmp, "live", "key.pem"))
        # the same files under the working directory must not be what is used
        os.makedirs(os.path.join(other, "live"))
        shutil.copy(pki.a[0], os.path.join(other, "live", "cert.pem"))
        shutil.copy(pki.a[1], os.path.join(other, "live", "key.pem"))
        p = subprocess.Popen([BIN, "run", "-c", path, "--workers", "1"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, cwd=other)
        try:
            wait_port(port, proc=p)
            assert peer_names(port, "default.example.com", pki)[0] == "default.example.com"
        finally:
            p.terminate()
            _, err = p.communicate(timeout=10)
        assert p.returncode == 0, err
    finally:
        shutil.rmtree(other, ignore_errors=True)


# --------------------------------------------------------- upstream TLS ---

def upstream_tls_config(routes):
    """routes: [(name, address, tls_flow_mapping_or_None)] -> upstreams and
    prefix routes /NAME, in front of a plaintext listener."""
    text = "listen:\n  - address: 127.0.0.1:{port}\nlog: { access: stdout, level: warn }\nupstreams:\n"
    for name, address, tls in routes:
        text += "  %s:\n    targets: [ \"%s\" ]\n    timeouts: { connect: 1s, send: 2s, read: 2s }\n" % (
            name, address)
        text += "    retries: { attempts: 0 }\n"
        if tls is not None:
            text += "    tls: %s\n" % tls
    text += "routes:\n"
    for name, _, _ in routes:
        text += "  - name: %s\n    match: { prefix: /%s }\n    upstream: %s\n" % (name, name, name)
    return text


def is_problem(status, headers, body, want_status, code):
    assert status == want_status, (status, body)
    assert headers.get("content-type", "").startswith("application/problem+json"), headers
    assert json.loads(body)["code"] == code, body


def test_upstream_tls_verified_against_ca(gatehouse, tls_upstreams, pki):
    good = tls_upstreams(pki.up_ca1)
    g = gatehouse(upstream_tls_config([("ok", good.address, "{ ca: %s }" % pki.ca1)]), workers=1)
    status, headers, body = g.get("/ok/x?y=1")
    assert status == 200, body
    info = json.loads(body)
    assert info["server"] == "tls-upstream"
    assert info["path"] == "/ok/x?y=1"
    assert info["sni"] is None               # an IP literal is not sent as SNI
    assert info["alpn"] == "http/1.1"
    assert info["client_subject"] is None
    assert info["headers"]["x-forwarded-proto"] == "http"   # the client's side, not the upstream's


def test_upstream_tls_refuses_a_certificate_from_another_ca(gatehouse, tls_upstreams, pki):
    good = tls_upstreams(pki.up_ca1)
    bad = tls_upstreams(pki.up_ca2)
    g = gatehouse(upstream_tls_config([
        ("ok", good.address, "{ ca: %s }" % pki.ca1),
        ("bad", bad.address, "{ ca: %s }" % pki.ca1),
        ("sysca", good.address, "{ verify: true }"),       # system CAs do not know CA1
        ("noverify", bad.address, "{ verify: false }"),
    ]), workers=1)
    assert g.get("/ok")[0] == 200
    is_problem(*g.get("/bad"), 502, "upstream_error")
    is_problem(*g.get("/sysca"), 502, "upstream_error")
    status, _, body = g.get("/noverify")
    assert status == 200, body
    assert json.loads(body)["server"] == "tls-upstream"
    # nothing reached the refused upstream's handler
    assert bad.stats(pki.ca2)["connections"] == 2   # /noverify, and this stats request


def test_upstream_tls_sni_and_name_check(gatehouse, tls_upstreams, pki):
    both = tls_upstreams(pki.up_ca1)                 # DNS:localhost, IP:127.0.0.1
    dns_only = tls_upstreams(pki.up_localhost_only)  # DNS:localhost
    g = gatehouse(upstream_tls_config([
        ("named", dns_only.address, "{ ca: %s, sni: localhost }" % pki.ca1),
        ("ipcheck", dns_only.address, "{ ca: %s }" % pki.ca1),           # 127.0.0.1 not in the cert
        ("wrong", both.address, "{ ca: %s, sni: wrong.example.com }" % pki.ca1),
        ("sent", both.address, "{ ca: %s, sni: localhost }" % pki.ca1),
    ]), workers=1)
    status, _, body = g.get("/named")
    assert status == 200, body
    assert json.loads(body)["sni"] == "localhost"
    is_problem(*g.get("/ipcheck"), 502, "upstream_error")
    is_problem(*g.get("/wrong"), 502, "upstream_error")
    status, _, body = g.get("/sent")
    assert status == 200 and json.loads(body)["sni"] == "localhost", body


def test_upstream_tls_client_certificate(gatehouse, tls_upstreams, pki):
    strict = tls_upstreams(pki.up_ca1, client_ca=pki.ca1)
    g = gatehouse(upstream_tls_config([
        ("withcert", strict.address, "{ ca: %s, cert: %s, key: %s }" % (pki.ca1, pki.gw_client[0], pki.gw_client[1])),
        ("nocert", strict.address, "{ ca: %s }" % pki.ca1),
    ]), workers=1)
    status, _, body = g.get("/withcert")
    assert status == 200, body
    assert json.loads(body)["client_subject"] == "CN=gatehouse,O=Example"
    is_problem(*g.get("/nocert"), 502, "upstream_error")


def test_upstream_tls_connections_are_pooled(gatehouse, tls_upstreams, pki):
    up = tls_upstreams(pki.up_ca1)
    g = gatehouse(upstream_tls_config([("ok", up.address, "{ ca: %s }" % pki.ca1)]), workers=1)
    conns = set()
    for i in range(10):
        status, _, body = g.get("/ok/%d" % i)
        assert status == 200, body
        conns.add(json.loads(body)["conn"])
    assert len(conns) == 1, conns


def test_upstream_tls_large_bodies_both_ways(gatehouse, tls_upstreams, pki):
    import hashlib
    up = tls_upstreams(pki.up_ca1)
    g = gatehouse(upstream_tls_config([("big", up.address, "{ ca: %s }" % pki.ca1)]), workers=1)
    n = 6 * 1024 * 1024 + 5
    status, _, body = g.get("/big/%d" % n)
    assert status == 200 and len(body) == n and body == b"y" * n
    data = os.urandom(4 * 1024 * 1024 + 3)
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    c.request("POST", "/big?upload=1", body=data, headers={"Content-Type": "application/octet-stream"})
    r = c.getresponse()
    info = json.loads(r.read())
    c.close()
    assert r.status == 200
    assert info["body_len"] == len(data) and info["sha256"] == hashlib.sha256(data).hexdigest()


def test_upstream_tls_sni_defaults_to_the_target_host_name(gatehouse, tls_upstreams, pki):
    up = tls_upstreams(pki.up_localhost_only)
    g = gatehouse(upstream_tls_config([("byname", "localhost:%d" % up.port, "{ ca: %s }" % pki.ca1)]), workers=1)
    status, _, body = g.get("/byname")
    assert status == 200, body
    assert json.loads(body)["sni"] == "localhost"


def test_upstream_tls_pool_is_not_shared_across_tls_settings(gatehouse, tls_upstreams, pki):
    """A connection opened with verify: false must never serve an upstream
    that verifies, even to the same address."""
    ca2_server = tls_upstreams(pki.up_ca2)
    g = gatehouse(upstream_tls_config([
        ("lax", ca2_server.address, "{ verify: false }"),
        ("strict", ca2_server.address, "{ ca: %s }" % pki.ca1),
    ]), workers=1)
    for _ in range(3):
        assert g.get("/lax")[0] == 200
        is_problem(*g.get("/strict"), 502, "upstream_error")


def test_upstream_tls_reload_changes_verification(gatehouse, tls_upstreams, pki):
    """Pooled connections made under the old settings are not reused once a
    reload turns verification on."""
    ca2_server = tls_upstreams(pki.up_ca2)
    g = gatehouse(upstream_tls_config([("svc", ca2_server.address, "{ verify: false }")]), workers=1)
    assert g.get("/svc/1")[0] == 200
    assert g.get("/svc/2")[0] == 200
    g.reload(upstream_tls_config([("svc", ca2_server.address, "{ ca: %s }" % pki.ca1)]))
    is_problem(*g.get("/svc/3"), 502, "upstream_error")
    g.reload(upstream_tls_config([("svc", ca2_server.address, "{ ca: %s }" % pki.ca2)]))
    assert g.get("/svc/4")[0] == 200


class PlainHttpServer:
    """A plaintext HTTP server as real ones behave: whatever arrives that is
    not HTTP gets a 400 and the connection closed. silent=True: accepts
    (kernel backlog) and never answers."""

    def __init__(self, silent=False):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stop_flag = False
        if not silent:
            self.thread = threading.Thread(target=self.serve, daemon=True)
            self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop_flag:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                c.settimeout(1)
                c.recv(4096)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            finally:
                c.close()

    def close(self):
        self.stop_flag = True
        self.sock.close()


def test_upstream_tls_against_a_plaintext_server_is_502(gatehouse, pki):
    plain = PlainHttpServer()
    try:
        g = gatehouse(upstream_tls_config([("plain", plain.address, "{ ca: %s }" % pki.ca1)]), workers=1)
        t0 = time.time()
        is_problem(*g.get("/plain"), 502, "upstream_error")
        assert time.time() - t0 < 0.8
        assert "TLS handshake failed" in g.stderr()
    finally:
        plain.close()


def test_upstream_tls_handshake_that_never_ends_times_out(gatehouse, pki):
    """The handshake is part of connecting: `timeouts.connect` (1s) bounds
    it, not the read timeout (2s)."""
    silent = PlainHttpServer(silent=True)
    try:
        g = gatehouse(upstream_tls_config([("silent", silent.address, "{ ca: %s }" % pki.ca1)]), workers=1)
        t0 = time.time()
        is_problem(*g.get("/silent"), 504, "upstream_timeout")
        assert 0.8 < time.time() - t0 < 1.8, time.time() - t0
    finally:
        silent.close()


def test_https_downstream_to_https_upstream_over_h2(gatehouse, tls_upstreams, pki):
    up = tls_upstreams(pki.up_ca1, client_ca=pki.ca1)
    text = config(pki, http2=True, client_ca=pki.ca1, client_cert="required",
                  upstream_block=("upstreams:\n  main:\n    targets: [ \"%s\" ]\n"
                                  "    tls: { ca: %s, sni: localhost, cert: %s, key: %s }\n"
                                  "routes:\n  - name: api\n    match: { prefix: / }\n    upstream: main\n"
                                  % (up.address, pki.ca1, pki.gw_client[0], pki.gw_client[1])))
    g = gatehouse(text, workers=1)
    r = curl_tls(g, pki, "/through", "a.example.com", "--http2", "--cert", pki.client1[0], "--key", pki.client1[1])
    assert r.returncode == 0, r.stderr
    body, version, code = split_w(r.stdout)
    assert (version, code) == ("2", 200), body
    info = json.loads(body)
    assert info["server"] == "tls-upstream" and info["sni"] == "localhost"
    assert info["client_subject"] == "CN=gatehouse,O=Example"
    assert info["headers"]["x-client-cert-subject"] == SUBJECT
    assert info["headers"]["x-forwarded-proto"] == "https"


def test_client_reset_after_its_request_does_not_make_the_gateway_spin(gatehouse, upstreams, pki):
    """A TLS client that sends a request, then FIN, and whose socket is reset
    before the answer is written: the gateway's write fails (EPIPE) and the
    connection is closed; it must never keep retrying the write (a busy
    loop found by the TLS benchmark)."""
    g, up = start(gatehouse, upstreams, pki)
    ctx = client_ctx(pki, verify=False)
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", g.port))
        t = ctx.wrap_socket(s, server_hostname="default.example.com")
        t.sendall(b"GET /slow?delay=0.2 HTTP/1.1\r\nHost: default.example.com\r\n\r\n")
        raw = socket.socket(fileno=t.detach())
        raw.shutdown(socket.SHUT_WR)
        raw.close()
    # the answers come back to closed sockets. Wait until the gateway holds no
    # client connection and every request the upstream got has ended (a reset
    # can discard a request before the gateway reads it: fewer than ten is fine)
    def settled():
        ended = len([l for l in g.access_log() if l.get("path", "").startswith("/slow")])
        forwarded = len([r for r in up.requests() if r["target"].startswith("/slow")])
        return accept_queue(g.port) == 0 and server_conns(g.port) == 0 and ended >= forwarded
    wait_until(settled, what="the exchanges to end")

    def ticks():
        with open("/proc/%d/stat" % g.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])   # utime + stime

    t0 = ticks()
    time.sleep(1.0)
    assert ticks() - t0 <= 5, "gateway busy while idle"   # 5 ticks = 50 ms of 1 s
