#!/usr/bin/env python3
"""A throwaway PKI for the TLS end-to-end tests, and a TLS upstream server.

As a module: `make_pki(dir)` builds every certificate the tests need with the
`openssl` command line (EC P-256 keys, so it takes a fraction of a second)
and returns a `Pki` whose attributes are file paths.

As a program: `certs.py tls-upstream PORT CERT KEY [CLIENT_CA]` serves
HTTPS/1.1 on 127.0.0.1:PORT (thread per connection, keep-alive). With
CLIENT_CA, a client certificate signed by it is required. Every answer is
JSON describing the request and the TLS session it came on: method, path,
headers (lower-case names), the SNI name the client sent (or null), the
ALPN protocol, the TLS version, the verified client certificate's subject
(or null), a connection number, and the request body's length and sha256.
/__stats answers the connection count; /big/N answers N bytes.
"""
import hashlib
import json
import os
import ssl
import subprocess
import sys
import threading


# ------------------------------------------------------------------- PKI

def _run(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), r.stderr))
    return r.stdout


def _key(d, name, rsa=False):
    path = os.path.join(d, name + ".key")
    if rsa:
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path, cwd=d)
    else:
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path, cwd=d)
    return path


def _ca(d, name, subject):
    key = _key(d, name)
    pem = os.path.join(d, name + ".pem")
    _run("req", "-x509", "-new", "-key", key, "-subj", subject, "-days", "30", "-sha256",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-out", pem, cwd=d)
    return pem, key


def _intermediate(d, name, subject, ca):
    key = _key(d, name)
    csr = os.path.join(d, name + ".csr")
    pem = os.path.join(d, name + ".pem")
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
    _run("req", "-new", "-key", key, "-subj", subject, "-out", csr, cwd=d)
    _run("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
         "-days", "30", "-sha256", "-extfile", ext, "-out", pem, cwd=d)
    return pem, key


def _fullchain(d, name, leaf, *chain):
    """leaf's certificate followed by the chain, as one PEM file; (pem, key)."""
    pem = os.path.join(d, name + ".pem")
    with open(pem, "w") as out:
        for p in (leaf[0],) + tuple(c[0] for c in chain):
            with open(p) as f:
                out.write(f.read())
    return pem, leaf[1]


def _leaf(d, name, subject, ca, san=None, usage="serverAuth", rsa=False, days=30):
    """A certificate signed by ca = (pem, key); returns (pem, key)."""
    key = _key(d, name, rsa=rsa)
    csr = os.path.join(d, name + ".csr")
    pem = os.path.join(d, name + ".pem")
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n")
        f.write("keyUsage=critical,digitalSignature,keyEncipherment\n")
        f.write("extendedKeyUsage=%s\n" % usage)
        if san:
            f.write("subjectAltName=%s\n" % san)
    _run("req", "-new", "-key", key, "-subj", subject, "-out", csr, cwd=d)
    _run("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
         "-days", str(days), "-sha256", "-extfile", ext, "-out", pem, cwd=d)
    return pem, key


class Pki:
    """File paths. Server certificates are (pem, key) pairs."""


def make_pki(d):
    os.makedirs(d, exist_ok=True)
    p = Pki()
    p.dir = d
    p.ca1, p.ca1_key = _ca(d, "ca1", "/CN=Gatehouse Test CA1/O=Example")
    p.ca2, p.ca2_key = _ca(d, "ca2", "/CN=Unrelated Test CA2/O=Elsewhere")
    ca1 = (p.ca1, p.ca1_key)
    ca2 = (p.ca2, p.ca2_key)
    # listener certificates (the default one is RSA: both key types are served)
    p.default = _leaf(d, "default", "/CN=default.example.com", ca1, san="DNS:default.example.com", rsa=True)
    p.a = _leaf(d, "a", "/CN=a.example.com", ca1, san="DNS:a.example.com")
    p.wild_b = _leaf(d, "wild_b", "/CN=*.b.example.com", ca1, san="DNS:*.b.example.com")
    # a second default certificate, for rotation on reload
    p.rotated = _leaf(d, "rotated", "/CN=rotated.example.com", ca1,
                      san="DNS:rotated.example.com,DNS:default.example.com")
    # client certificates: the same subject from a trusted and an unrelated CA
    # (DN order O then CN: RFC 4514 writes it reversed, "CN=client1,O=Example")
    p.client1 = _leaf(d, "client1", "/O=Example/CN=client1", ca1, usage="clientAuth")
    p.client_ca2 = _leaf(d, "client_ca2", "/O=Example/CN=client1", ca2, usage="clientAuth")
    # a subject that needs RFC 4514 escaping (a comma inside the CN)
    p.client_comma = _leaf(d, "client_comma", "/O=Evil/CN=admin,O=Example", ca1, usage="clientAuth")
    # upstream (TLS server) certificates
    p.up_ca1 = _leaf(d, "up_ca1", "/CN=localhost", ca1, san="DNS:localhost,IP:127.0.0.1")
    p.up_localhost_only = _leaf(d, "up_localhost_only", "/CN=localhost", ca1, san="DNS:localhost")
    p.up_ca2 = _leaf(d, "up_ca2", "/CN=localhost", ca2, san="DNS:localhost,IP:127.0.0.1")
    # an intermediate CA under CA1: a server and a client certificate whose
    # files carry the chain (leaf, then the intermediate)
    p.ca1_int = _intermediate(d, "ca1_int", "/O=Example/CN=Gatehouse Test Intermediate", ca1)
    p.chain_leaf = _leaf(d, "chain_leaf", "/CN=chain.example.com", p.ca1_int, san="DNS:chain.example.com")
    p.chain = _fullchain(d, "chain_full", p.chain_leaf, p.ca1_int)
    p.client2_leaf = _leaf(d, "client2_leaf", "/O=Example/CN=client2", p.ca1_int, usage="clientAuth")
    p.client2 = _fullchain(d, "client2_full", p.client2_leaf, p.ca1_int)
    # key file formats: traditional (PKCS#1 / SEC1) and encrypted
    p.default_key_traditional = os.path.join(d, "default.trad.key")
    _run("pkey", "-in", p.default[1], "-traditional", "-out", p.default_key_traditional, cwd=d)
    p.default_key_encrypted = os.path.join(d, "default.enc.key")
    _run("pkey", "-in", p.default[1], "-aes256", "-passout", "pass:secret", "-out", p.default_key_encrypted, cwd=d)
    # the gateway's client certificate toward upstreams
    p.gw_client = _leaf(d, "gw_client", "/O=Example/CN=gatehouse", ca1, usage="clientAuth")
    return p


def subject_rfc4514(pem):
    out = subprocess.run(["openssl", "x509", "-in", pem, "-noout", "-subject", "-nameopt", "RFC2253"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


# --------------------------------------------------------- TLS upstream

def serve(port, cert, key, client_ca=None):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    sni = {}

    def on_sni(sock, name, _ctx):
        sni[id(sock)] = name

    ctx.sni_callback = on_sni
    lock = threading.Lock()
    stats = {"connections": 0, "handshake_failures": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            body_in = self.rfile.read(n) if n else b""
            s = self.connection
            if self.path.startswith("/big/"):
                size = int(self.path[5:])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                block = b"y" * 65536
                while size > 0:
                    part = block[:min(size, len(block))]
                    self.wfile.write(part)
                    size -= len(part)
                return
            if self.path == "/__stats":
                with lock:
                    body = json.dumps(stats).encode()
            else:
                peer = s.getpeercert()
                subject = None
                if peer:
                    short = {"commonName": "CN", "organizationName": "O"}
                    subject = ",".join("%s=%s" % (short.get(k, k), v)
                                       for rdn in reversed(peer["subject"]) for k, v in rdn)
                info = {
                    "server": "tls-upstream",
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "sni": sni.get(id(s)),
                    "alpn": s.selected_alpn_protocol(),
                    "tls_version": s.version(),
                    "client_subject": subject,
                    "conn": getattr(s, "conn_no", 0),
                    "body_len": len(body_in),
                    "sha256": hashlib.sha256(body_in).hexdigest(),
                }
                body = json.dumps(info).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def finish_request(self, request, client_address):
            request.settimeout(10)
            try:
                tls = ctx.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                with lock:
                    stats["handshake_failures"] += 1
                return
            with lock:
                stats["connections"] += 1
                tls.conn_no = stats["connections"]
            try:
                Handler(tls, client_address, self)
            except (OSError, ssl.SSLError):
                pass
            finally:
                sni.pop(id(tls), None)

        def handle_error(self, request, client_address):
            pass

    srv = Server(("127.0.0.1", port), Handler)
    print("READY", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "tls-upstream":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        sys.exit("usage: certs.py tls-upstream PORT CERT KEY [CLIENT_CA]")
