"""End-to-end fixtures: real gatehouse processes, real upstream servers.

Every process is started on free loopback ports and stopped at teardown.
A gatehouse that does not exit 0 on SIGTERM (crash, sanitizer report,
leak) fails the test that started it.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("GATEHOUSE_BIN", os.path.join(ROOT, "build", "gatehouse"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d did not open" % port)


class Upstream:
    def __init__(self, name):
        self.name = name
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "upstream.py"), str(self.port), name],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.proc.stdout.readline()  # READY
        wait_port(self.port, proc=self.proc)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def get_json(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        data = json.loads(r.read())
        c.close()
        return data

    def stats(self):
        return self.get_json("/__stats")

    def requests(self):
        return self.get_json("/__requests")

    def reset(self):
        self.get_json("/__reset")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Gatehouse:
    """A running gatehouse. `config` is YAML text; `{port}` in it is replaced
    by the main listen port, and `{name}` by values passed in `subst`."""

    def __init__(self, config, workers=2, subst=None, env=None, args=(), expect_start=True):
        self.dir = tempfile.mkdtemp(prefix="gh-e2e-")
        self.port = free_port()
        self.subst = dict(subst or {})
        self.subst.setdefault("port", self.port)
        self.path = os.path.join(self.dir, "gatehouse.yaml")
        self.write(config)
        self.out_path = os.path.join(self.dir, "stdout.log")
        self.err_path = os.path.join(self.dir, "stderr.log")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        cmd = [BIN, "run", "-c", self.path, "--workers", str(workers)] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=self.err, env=full_env, cwd=self.dir)
        self.stopped = False
        if expect_start:
            try:
                wait_port(self.port, proc=self.proc)
            except RuntimeError:
                raise RuntimeError("gatehouse did not start:\n" + self.stderr())

    def write(self, config):
        text = config
        for k, v in self.subst.items():
            text = text.replace("{%s}" % k, str(v))
        with open(self.path, "w") as f:
            f.write(text)

    def reload(self, config=None, wait=0.3):
        if config is not None:
            self.write(config)
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(wait)

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_log(self, wait_for=0, timeout=3.0):
        """Parsed access-log lines (stdout); waits until at least wait_for lines."""
        deadline = time.time() + timeout
        while True:
            with open(self.out_path, "rb") as f:
                lines = [json.loads(l) for l in f.read().decode().splitlines() if l.startswith("{")]
            if len(lines) >= wait_for or time.time() > deadline:
                return lines
            time.sleep(0.05)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout=15):
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("gatehouse did not exit on SIGTERM\n" + self.stderr())
        self.out.close()
        self.err.close()
        return self.proc.returncode

    def check_clean_exit(self):
        rc = self.stop()
        err = self.stderr()
        assert "AddressSanitizer" not in err and "runtime error:" not in err and "LeakSanitizer" not in err, err
        assert rc == 0, "gatehouse exited %s\n%s" % (rc, err[-4000:])

    # -- clients ---------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def raw(self, data, timeout=3.0, shut=False):
        return raw_exchange(self.port, data, timeout=timeout, shut=shut)


def raw_exchange(port, data, timeout=3.0, shut=False):
    """Send raw bytes; return everything received until close or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


@pytest.fixture
def upstreams():
    made = []

    def make(name="up"):
        u = Upstream(name)
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()


@pytest.fixture
def gatehouse():
    made = []

    def start(config, **kw):
        g = Gatehouse(config, **kw)
        made.append(g)
        return g

    yield start
    errors = []
    for g in made:
        try:
            g.check_clean_exit()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))
