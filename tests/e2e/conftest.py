"""End-to-end fixtures: real gatehouse processes, real upstream servers.

Every process is started on free loopback ports and stopped at teardown.
A gatehouse that does not exit 0 on SIGTERM (crash, sanitizer report,
leak) fails the test that started it.
"""
import http.client
import errno
import fcntl
import json
import os
import random
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


# Ports. Binding port 0 and releasing it is a race: the kernel hands the
# same port to the next bind(0) or outgoing connection, and a second test run
# on the machine gets it too (gatehouse binds with SO_REUSEPORT, so two
# processes could even share it). Ports are therefore taken below the
# kernel's ephemeral range (which outgoing connections and bind(0) use), in
# blocks of 64 each claimed by a lock file held for the life of this test
# process, and never handed out twice: no two tests of one run and no two
# runs ever get the same port.
PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "gatehouse-e2e-ports")
PORT_BLOCK = 64
_claimed = []          # open lock files: the claims last as long as we do
_ports = []            # the rest of the current block
_next_block = [None]


def _port_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return 10000, max(10000 + PORT_BLOCK, min(low, 65536))


def _bindable(port):
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((host, port))   # no SO_REUSEADDR: TIME_WAIT counts as taken
        except OSError as e:
            if family == socket.AF_INET6 and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue               # no IPv6 loopback here
            return False
    return True


def _claim_block():
    lo, hi = _port_range()
    nblocks = (hi - lo) // PORT_BLOCK
    os.makedirs(PORT_LOCK_DIR, exist_ok=True)
    if _next_block[0] is None:
        _next_block[0] = random.Random(os.getpid() ^ time.time_ns()).randrange(nblocks)
    for _ in range(nblocks):
        b = _next_block[0]
        _next_block[0] = (b + 1) % nblocks
        f = open(os.path.join(PORT_LOCK_DIR, "block-%d" % b), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _claimed.append(f)
        first = lo + b * PORT_BLOCK
        _ports.extend(range(first, first + PORT_BLOCK))
        return
    raise RuntimeError("every port block in %d-%d is claimed" % (lo, hi))


def free_port():
    """A loopback port no other test (of this run or a concurrent one) gets."""
    while True:
        if not _ports:
            _claim_block()
        port = _ports.pop(0)
        if _bindable(port):
            return port


def _listening(port):
    """Whether a socket listens on port (read from /proc: no probe connection)."""
    want = ":%04X " % port
    found = None
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                found = False
                for line in f:
                    fields = line.split()
                    if (fields[1] + " ").endswith(want) and fields[3] == "0A":
                        return True
        except OSError:
            pass
    return found


def wait_port(port, timeout=10.0, proc=None):
    """Wait until something listens on port (or proc exits)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s" % proc.returncode)
        state = _listening(port)
        if state is None:   # no /proc/net: probe with a connection
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                pass
        elif state:
            return
        time.sleep(0.01)
    raise RuntimeError("port %d did not open" % port)


def server_sockets(port):
    """[(recv_q, bytes_received)] of the established connections whose local
    port is port (the server's side), from ss(8)."""
    out = subprocess.run(["ss", "-Htin", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True, check=True).stdout
    socks = []
    for line in out.splitlines():
        fields = line.split()
        if not fields:
            continue
        if line[0] not in " \t":           # a socket: Recv-Q Send-Q Local Peer
            socks.append([int(fields[0]), 0])
        elif socks:                          # its details
            for f in fields:
                if f.startswith("bytes_received:"):
                    socks[-1][1] = int(f.split(":", 1)[1])
    return [tuple(x) for x in socks]


def _ss(*args):
    return subprocess.run(["ss", "-Htn"] + list(args), capture_output=True, text=True, check=True).stdout


def accept_queue(port):
    """Connections to port that the kernel completed but nobody accepted yet."""
    return sum(int(l.split()[0]) for l in _ss("state", "listening", "( sport = :%d )" % port).splitlines() if l.strip())


def server_conns(port):
    """Connections of the server on port that it has not closed yet (its side
    established or, the peer gone, waiting for its close)."""
    out = _ss("state", "established", "state", "close-wait", "( sport = :%d )" % port)
    return sum(1 for l in out.splitlines() if l.strip())


def wait_read(port, n, timeout=10.0):
    """Wait until the server on port has read everything n connections sent
    (each received bytes, none left unread): their requests are in hand."""
    def done():
        socks = server_sockets(port)
        return sum(1 for q, got in socks if got > 0 and q == 0) >= n
    wait_until(done, timeout, "%d connections read on port %d" % (n, port))


def wait_until(cond, timeout=10.0, what="condition"):
    """Poll cond() until it returns something true; return that value."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(0.01)


class Upstream:
    def __init__(self, name, port=None):
        self.name = name
        self.port = port or free_port()   # a port given: a restart where one ran
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
        args = list(args)
        if "--log-level" not in args:
            args += ["--log-level", "info"]   # reload() waits for the info line
        cmd = [BIN, "run", "-c", self.path, "--workers", str(workers)] + args
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

    RELOAD_DONE = ("configuration reloaded (generation", "reload failed;")

    def reloads_done(self):
        err = self.stderr()
        return sum(err.count(m) for m in self.RELOAD_DONE)

    def reload(self, config=None, wait=True, timeout=15.0):
        """SIGHUP, then (unless wait is false) wait until gatehouse says the
        reload is in effect in every worker or failed; True if it applied.
        A number for `wait` is accepted for old callers and means True."""
        if config is not None:
            self.write(config)
        before = self.reloads_done()
        self.proc.send_signal(signal.SIGHUP)
        if not wait:
            return None
        self.wait_stderr(lambda err: sum(err.count(m) for m in self.RELOAD_DONE) > before,
                         timeout=timeout, what="the reload's outcome")
        tail = self.stderr()
        return tail.rfind(self.RELOAD_DONE[0]) > tail.rfind(self.RELOAD_DONE[1])

    def wait_stderr(self, cond, timeout=10.0, what=None):
        """Wait until cond(stderr text) is true; cond may be a substring."""
        if isinstance(cond, str):
            needle = cond
            cond = lambda err: needle in err
            what = what or repr(needle)

        def check():
            if self.proc.poll() is not None and not cond(self.stderr()):
                raise AssertionError("gatehouse exited (%s) while waiting for %s\n%s"
                                     % (self.proc.returncode, what, self.stderr()[-4000:]))
            return cond(self.stderr())
        try:
            return wait_until(check, timeout, what or "stderr")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.stderr()[-4000:]))

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


class ResponseReader:
    """Reads whole HTTP/1.1 responses from a socket, one at a time: a recv may
    return part of a response or several, so nothing is assumed about it."""

    def __init__(self, sock, timeout=5.0):
        self.sock = sock
        self.buf = b""
        self.timeout = timeout

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.time()))
        b = self.sock.recv(65536)
        if not b:
            raise EOFError("connection closed after %r" % self.buf[-300:])
        self.buf += b

    def _until(self, marker, deadline):
        while marker not in self.buf:
            self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _exactly(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_request=False):
        """(status, {lower-case name: value}, body) of the next response."""
        deadline = time.time() + self.timeout
        head = self._until(b"\r\n\r\n", deadline).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if head_request or status in (204, 304) or status < 200:
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                n = int(self._until(b"\r\n", deadline).split(b";")[0], 16)
                if n == 0:
                    self._until(b"\r\n", deadline)   # no trailers in these tests
                    return status, headers, body
                body += self._exactly(n, deadline)
                self._exactly(2, deadline)
        if "content-length" in headers:
            return status, headers, self._exactly(int(headers["content-length"]), deadline)
        body = self.buf   # delimited by close
        self.buf = b""
        try:
            while True:
                self._fill(deadline)
                body, self.buf = body + self.buf, b""
        except EOFError:
            return status, headers, body


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

    def make(name="up", port=None):
        u = Upstream(name, port)
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
