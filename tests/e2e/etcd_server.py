"""A real etcd (Debian's etcd-server) for the end-to-end tests, on free
loopback ports with a temporary data directory.

    e = EtcdServer()                 # started and answering
    rev = e.put("/k", "text")        # through the HTTP/JSON gateway; returns the revision
    e.get("/k")                      # (value, mod_revision) or (None, 0)
    e.compact(rev)
    e.stop(); e.start()              # same ports, same data
    e.enable_auth("secret")          # user root with that password
    t = EtcdServer(tls=(cert, key, ca), client=(cert, key))   # https only; client certificates required
    p = TcpProxy(e.port)             # a loopback forwarder that can be paused
"""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import urllib.request

import pytest

from conftest import free_port, wait_port, wait_until

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"


def need_etcd():
    if not (os.access(ETCD, os.X_OK) and os.access(ETCDCTL, os.X_OK)):
        pytest.skip("etcd/etcdctl not installed (Debian: etcd-server, etcd-client)")


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class EtcdServer:
    def __init__(self, tls=None, client=None):
        need_etcd()
        self.tls = tls
        if tls:   # how the fixture itself talks to a TLS etcd: its CA, and a client certificate
            self.client_tls = ssl.create_default_context(cafile=tls[2])
            if client:
                self.client_tls.load_cert_chain(*client)
        self.port = free_port()
        self.peer = free_port()
        self.dir = tempfile.mkdtemp(prefix="gh-etcd-")
        self.proc = None
        self.token = None
        self.start()

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def start(self):
        peer = "http://127.0.0.1:%d" % self.peer
        self.log = open(os.path.join(self.dir, "etcd.log"), "ab")
        tls = []
        if self.tls:
            cert, key, ca = self.tls
            tls = ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca, "--client-cert-auth"]
        self.proc = subprocess.Popen(
            [ETCD, "--name", "default", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "default=" + peer, "--log-level", "error"] + tls,
            stdout=self.log, stderr=self.log)
        wait_port(self.port, proc=self.proc)
        wait_until(self._answers, 20, "etcd at %s to answer" % self.url)

    def _answers(self):
        try:
            self.call("/v3/kv/range", {"key": b64("/")})
            return True
        except Exception:
            return False

    def call(self, path, body, auth=True):
        headers = {"Content-Type": "application/json"}
        if auth and self.token:
            headers["Authorization"] = self.token
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers=headers)
        with urllib.request.urlopen(req, timeout=5, context=self.client_tls) as r:
            return json.loads(r.read())

    client_tls = None   # an ssl.SSLContext with a client certificate, for a TLS etcd

    def put(self, key, value):
        r = self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})
        return int(r["header"]["revision"])

    def get(self, key):
        r = self.call("/v3/kv/range", {"key": b64(key)})
        kvs = r.get("kvs") or []
        if not kvs:
            return None, 0
        return base64.b64decode(kvs[0].get("value", "")).decode(), int(kvs[0]["mod_revision"])

    def revision(self):
        return int(self.call("/v3/kv/range", {"key": b64("/")})["header"]["revision"])

    def compact(self, rev):
        self.call("/v3/kv/compaction", {"revision": rev, "physical": True})

    def ctl(self, *args):
        extra = ["--user", "root:" + self.root_password] if getattr(self, "root_password", None) else []
        r = subprocess.run([ETCDCTL, "--endpoints", self.url] + extra + list(args),
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def enable_auth(self, password):
        self.ctl("user", "add", "root:" + password)
        self.ctl("user", "grant-role", "root", "root")
        self.ctl("auth", "enable")
        self.root_password = password
        self.token = self.call("/v3/auth/authenticate", {"name": "root", "password": password}, auth=False)["token"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.log.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class TcpProxy:
    """Forwards a free loopback port to `target`. pause() closes every
    connection and refuses new ones until resume()."""

    def __init__(self, target):
        self.target = target
        self.port = free_port()
        self.lock = threading.Lock()
        self.conns = []
        self.paused = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.paused:
                    c.close()
                    continue
                try:
                    u = socket.create_connection(("127.0.0.1", self.target))
                except OSError:
                    c.close()
                    continue
                self.conns += [c, u]
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pause(self):
        with self.lock:
            self.paused = True
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def resume(self):
        with self.lock:
            self.paused = False

    def close(self):
        self.closed = True
        self.pause()
        self.sock.close()


@pytest.fixture
def etcd():
    made = []

    def make():
        e = EtcdServer()
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()
