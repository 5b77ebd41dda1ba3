"""A real redis-server for the end-to-end tests, on a free loopback port.

    r = RedisServer()          # started and answering
    r.cli("INFO", "clients")   # redis-cli's output
    r.stop(); r.start()        # same port, empty data
    c = RedisCluster()         # three masters, every slot served
    t = RedisServer(tls=(cert, key, ca))   # TLS only (`--tls-port`, no clear port)
"""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import free_port, wait_port, wait_until

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"


def need_redis():
    if not (os.access(REDIS_SERVER, os.X_OK) and os.access(REDIS_CLI, os.X_OK)):
        pytest.skip("redis-server/redis-cli not installed (scripts/install-deps.sh test installs them)")


class RedisServer:
    def __init__(self, *args, tls=None):
        need_redis()
        self.tls = tls
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="gh-redis-")
        self.args = list(args)
        self.proc = None
        self.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        ports = ["--port", str(self.port)]
        if self.tls:
            cert, key, ca = self.tls
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert, "--tls-key-file", key,
                     "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]
        self.proc = subprocess.Popen(
            [REDIS_SERVER] + ports + ["--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir] + self.args,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)

    def cli(self, *args):
        tls = ["--tls", "--cacert", self.tls[2]] if self.tls else []
        r = subprocess.run([REDIS_CLI, "-p", str(self.port)] + tls + list(args),
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    def clients(self):
        """Connected clients other than the redis-cli asking."""
        for line in self.cli("INFO", "clients").splitlines():
            if line.startswith("connected_clients:"):
                return int(line.split(":")[1]) - 1
        return -1

    def wait_clients(self, n, timeout=10.0):
        wait_until(lambda: self.clients() == n, timeout, "%d clients on redis %s" % (n, self.address))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """Three masters (`--cluster-enabled yes`, bus ports from free_port()),
    joined by `redis-cli --cluster create`; ready once every node says
    cluster_state:ok. tls=(cert, key, ca, client_cert, client_key): TLS
    only, the cluster bus too."""

    def __init__(self, n=3, tls=None):
        self.nodes = []
        try:
            # the bus always asks for client certificates: tls[3:5] is one (clientAuth)
            extra = ["--tls-cluster", "yes", "--tls-client-cert-file", tls[3],
                     "--tls-client-key-file", tls[4]] if tls else []
            for _ in range(n):
                self.nodes.append(RedisServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                              "--cluster-port", str(free_port()), *extra,
                                              tls=tls[:3] if tls else None))
            cli_tls = ["--tls", "--cacert", tls[2]] if tls else []
            r = subprocess.run([REDIS_CLI] + cli_tls + ["--cluster", "create"] + self.seeds +
                               ["--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
            for x in self.nodes:
                wait_until(lambda: "cluster_state:ok" in x.cli("CLUSTER", "INFO"), 20,
                           "cluster up on %s" % x.address)
        except BaseException:
            self.close()
            raise

    @property
    def seeds(self):
        return [x.address for x in self.nodes]

    def keys(self, pattern):
        """Keys matching pattern on every node, as {address: [keys]}."""
        return {x.address: x.cli("--raw", "KEYS", pattern).split() for x in self.nodes}

    def close(self):
        for x in self.nodes:
            x.close()


@pytest.fixture
def redis_cluster():
    made = []

    def make(tls=None):
        c = RedisCluster(tls=tls)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def redis():
    made = []

    def make(*args, tls=None):
        r = RedisServer(*args, tls=tls)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
