"""What an API key costs per request, counted deterministically.

gatehouse runs under `valgrind --tool=callgrind` (one worker) and answers
lock-step keep-alive GETs; the user-space instructions per request of a
route are (Ir(2N) - Ir(N)) / N, so start-up and shut-down cancel out (the
method of bench/instr-per-request). The key route must cost at most 3,000
instructions more than the plain one: looking a key up by its SHA-256 cost
about 4,600 (the SHA-256 alone ~3,000 under valgrind); the keyed SipHash tag
costs about 2,000 with the header's parsing and the consumer headers.
Skipped without valgrind, and for a sanitizer build (valgrind cannot run
one, and its counts would not be the product's).
"""
import glob
import http.client
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import BIN, free_port, wait_port



def _sanitized(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data


pytestmark = [pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
              pytest.mark.skipif(_sanitized(BIN), reason="a sanitizer build: instruction counts are meaningless")]

KEY = "perf-key-0123456789"
CONFIG = """
listen: [ { address: "127.0.0.1:%(port)d" } ]
log: { level: warn, access: "off" }
upstreams: { up: { targets: [ "%(up)s" ] } }
consumers:
  - { name: perf, groups: [perf], api_keys: [ "%(key)s" ] }
routes:
  - { name: plain, match: { prefix: /plain }, upstream: up }
  - { name: key,   match: { prefix: /key },   upstream: up, plugins: { key_auth: {} } }
"""
WARMUP, N = 50, 200


def callgrind_total(upstream, path, headers, count):
    """Ir of a whole gatehouse run that answered WARMUP + count requests on path."""
    d = tempfile.mkdtemp(prefix="gh-perf-")
    try:
        port = free_port()
        conf = os.path.join(d, "gatehouse.yaml")
        with open(conf, "w") as f:
            f.write(CONFIG % {"port": port, "up": upstream.address, "key": KEY})
        out = os.path.join(d, "callgrind.out.%p")
        env = dict(os.environ,
                   GLIBC_TUNABLES="glibc.cpu.x86_rep_movsb_threshold=4294967295:"
                                  "glibc.cpu.x86_rep_stosb_threshold=4294967295")
        with open(os.path.join(d, "stderr.log"), "wb") as err:
            proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--vgdb=no", "--callgrind-out-file=" + out,
                                     BIN, "run", "-c", conf, "--workers", "1"],
                                    stdout=subprocess.DEVNULL, stderr=err, cwd=d, env=env)
            try:
                wait_port(port, timeout=60, proc=proc)
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                for _ in range(WARMUP + count):
                    c.request("GET", path, headers=headers)
                    r = c.getresponse()
                    r.read()
                    assert r.status == 200, r.status
                c.close()
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0
        files = glob.glob(os.path.join(d, "callgrind.out.*"))
        assert files, "callgrind wrote nothing"
        total = 0
        for name in files:
            with open(name) as f:
                for line in f:
                    if line.startswith("totals:"):
                        total += int(line.split()[1])
        return total
    finally:
        shutil.rmtree(d, ignore_errors=True)


def per_request(upstream, path, headers):
    return (callgrind_total(upstream, path, headers, 2 * N) - callgrind_total(upstream, path, headers, N)) / N


def test_an_api_key_costs_a_keyed_hash_not_a_sha256(upstreams):
    up = upstreams()
    plain = per_request(up, "/plain", {})
    key = per_request(up, "/key", {"X-API-Key": KEY})
    assert 0 < key - plain <= 3000, "plain %.0f, key %.0f: the key costs %.0f instructions" % (plain, key, key - plain)
