"""The embedded demo and the first run (SPEC §1, §11): `gatehouse run` with
no configuration serves the demo, and every example its banner prints works
exactly as printed.

The demo binds :8080 and 127.0.0.1:9901; here both are moved to free ports
with GATEHOUSE_DEMO_LISTEN / GATEHOUSE_DEMO_ADMIN, so the banner prints the
test's ports and the commands run are the printed ones, unchanged.
"""
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile

import pytest

from conftest import BIN, ROOT, free_port, wait_port, wait_until

BANNER = re.compile(r"Try:\n\n(.*?)\n\n", re.S)


class Demo:
    """`gatehouse run` without -c, in an empty directory."""

    def __init__(self, extra_env=None):
        self.dir = tempfile.mkdtemp(prefix="gh-demo-")
        self.port, self.admin = free_port(), free_port()
        self.env = dict(os.environ, GATEHOUSE_DEMO_LISTEN="127.0.0.1:%d" % self.port,
                        GATEHOUSE_DEMO_ADMIN="127.0.0.1:%d" % self.admin, **(extra_env or {}))
        self.err_path = os.path.join(self.dir, "stderr.log")
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([BIN, "run", "--workers", "1"], cwd=self.dir, env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=err)
        wait_port(self.port, proc=self.proc)
        wait_port(self.admin, proc=self.proc)

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def banner(self):
        """(label, text) per line of the banner, in order."""
        def whole():
            if self.proc.poll() is not None:
                raise AssertionError("gatehouse exited:\n" + self.stderr())
            return BANNER.search(self.stderr())
        m = wait_until(whole, what="the demo banner")
        return [tuple(re.split(r"\s{2,}", line.strip(), maxsplit=1)) for line in m.group(1).splitlines()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        err = self.stderr()
        assert "AddressSanitizer" not in err and "runtime error:" not in err and "LeakSanitizer" not in err, err
        assert self.proc.returncode == 0, err


@pytest.fixture
def demo():
    d = Demo()
    yield d
    d.stop()


def curl(cmd):
    """Run a printed `curl -i ...` command as it is; (status, headers, body)."""
    out = subprocess.run(shlex.split(cmd), capture_output=True, timeout=10, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def http_date(y, m, d):
    return datetime.datetime(y, m, d, tzinfo=datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


def check_rate_limit(cmd):
    """Up-arrow, Enter: 5 answers within the limit, then 429."""
    remaining = []
    for _ in range(5):
        status, h, _ = curl(cmd)
        assert status == 200 and h["ratelimit-limit"] == "5", h
        remaining.append(int(h["ratelimit-remaining"]))
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0, remaining
    status, h, body = curl(cmd)
    assert status == 429 and json.loads(body)["code"] == "rate_limited", body
    assert int(h["retry-after"]) >= 1 and h["ratelimit-remaining"] == "0", h


# What each banner line must show; every line of the banner has an entry
# here and every entry a line, so a new example cannot go untested.
def expect(label, cmd, d):
    if label == "dashboard":
        assert cmd == "http://127.0.0.1:%d/" % d.admin
        return   # a page for the browser: test_demo_dashboard
    assert cmd.startswith("curl "), cmd
    if label == "limit 5 per 10s":
        return check_rate_limit(cmd)
    status, h, body = curl(cmd)
    if label == "fixed answer":
        assert (status, body) == (200, b"hello from gatehouse\n")
    elif label == "echo":
        echoed = json.loads(body)
        assert status == 200 and (echoed["path"], echoed["query"]) == ("/echo/x", "y=1"), body
    elif label == "401 no key":
        assert status == 401 and h["www-authenticate"] == 'Key realm="gatehouse"', (h, body)
        assert h["content-type"] == "application/problem+json"
    elif label == "200 with key":
        assert status == 200 and json.loads(body)["consumer"] == "demo", body
    elif label == "deprecated v1":
        assert (status, body) == (200, b"hello (v1)\n")
        assert h["api-version"] == "1" and h["deprecation"] == "@1780272000", h   # 2026-06-01
        assert h["sunset"] == http_date(2099, 12, 31), h
        assert h["link"] == '</docs>; rel="deprecation"', h
    elif label == "current v2":
        assert status == 200 and json.loads(body) == {"greeting": "hello", "version": 2}, body
        assert h["api-version"] == "2" and "deprecation" not in h and "sunset" not in h, h
    elif label == "aggregate":
        doc = json.loads(body)
        assert status == 200 and h["gatehouse-partial"] == "account", (h, body)
        assert doc == {"greeting": {"greeting": "hello", "version": 2},
                       "request": {"method": "GET", "path": "/echo/home"}, "account": None}, doc
        status, h, body = curl(cmd.replace("curl -i", "curl -i -H 'X-API-Key: demo-key-12345'"))
        assert status == 200 and "gatehouse-partial" not in h and json.loads(body)["account"] == {"consumer": "demo"}
    elif label == "admin API":
        assert status == 200 and "version" in json.loads(body), body
    elif label == "every route":
        assert status == 200 and h["content-type"].startswith("text/plain"), h
    else:
        raise AssertionError("the banner shows an example this test does not know: %r" % label)


def test_banner_examples_run_as_printed(demo):
    lines = demo.banner()
    labels = [label for label, _ in lines]
    assert labels[0] == "dashboard", labels
    assert sorted(labels) == sorted(["dashboard", "fixed answer", "echo", "401 no key", "200 with key",
                                     "deprecated v1", "current v2", "limit 5 per 10s", "aggregate", "admin API",
                                     "every route"]), labels
    for label, cmd in lines:
        expect(label, cmd, demo)
    # /docs (the deprecated version's docs link) lists the very same commands
    docs = curl(dict(lines)["every route"])[2].decode()
    for _, cmd in lines:
        assert cmd in docs, (cmd, docs)


def test_demo_dashboard(demo):
    """The banner's first line: the dashboard on the admin address."""
    url = demo.banner()[0][1]
    status, h, body = curl("curl -i " + url)
    assert status == 200 and h["content-type"].startswith("text/html"), (status, h)


def test_demo_routes_point_only_at_the_demo(demo):
    """Everything the demo links to is served by the demo: the index's paths,
    /docs, the deprecation link; no URL to anywhere else."""
    yaml = subprocess.run([BIN, "config", "--default"], env=demo.env, capture_output=True, check=True).stdout.decode()
    ours = {"127.0.0.1:%d" % demo.port, "127.0.0.1:%d" % demo.admin}
    assert set(re.findall(r"https?://([^/\s']+)", yaml)) <= ours, yaml
    base = "http://127.0.0.1:%d" % demo.port
    status, _, index = curl("curl -i " + base + "/")
    assert status == 200
    paths = [r["path"] for r in json.loads(index)["routes"]]
    assert {"/echo", "/hello", "/docs", "/private", "/greeting", "/limited"} <= set(paths), paths
    docs = curl("curl -i " + base + "/docs")[2].decode()
    for path in paths:
        status, h, _ = curl("curl -i " + base + path)
        assert status in (200, 401) and "location" not in h, (path, status)
        assert path == "/docs" or base + path in docs, path


def test_config_default_passes_check():
    """`gatehouse config --default | gatehouse check -c /dev/stdin`."""
    r = subprocess.run("%s config --default | %s check -c /dev/stdin" % (shlex.quote(BIN), shlex.quote(BIN)),
                       shell=True, capture_output=True, timeout=10)
    assert r.returncode == 0 and b"configuration ok" in r.stdout and b"warnings" not in r.stdout, r


def test_config_default_follows_the_overrides():
    env = dict(os.environ, GATEHOUSE_DEMO_LISTEN="127.0.0.1:18080", GATEHOUSE_DEMO_ADMIN="127.0.0.1:19901")
    out = subprocess.run([BIN, "config", "--default"], env=env, capture_output=True, check=True).stdout.decode()
    assert "  - address: 127.0.0.1:18080\n" in out and "  address: 127.0.0.1:19901 " in out, out
    dflt = dict(os.environ)
    dflt.pop("GATEHOUSE_DEMO_LISTEN", None)
    dflt.pop("GATEHOUSE_DEMO_ADMIN", None)
    out = subprocess.run([BIN, "config", "--default"], env=dflt, capture_output=True, check=True).stdout.decode()
    assert "  - address: 0.0.0.0:8080\n" in out and "  address: 127.0.0.1:9901 " in out, out


@pytest.mark.parametrize("var", ["GATEHOUSE_DEMO_LISTEN", "GATEHOUSE_DEMO_ADMIN"])
def test_bad_override_is_a_clear_error(var):
    """A value that is not HOST:PORT never reaches the YAML (no injection)."""
    env = dict(os.environ, **{var: "127.0.0.1:1\nrouts: []"})
    for args in (["run"], ["config", "--default"]):
        r = subprocess.run([BIN] + args, env=env, cwd=tempfile.mkdtemp(prefix="gh-demo-"),
                           capture_output=True, timeout=10)
        assert r.returncode == 1 and r.stdout == b"", r
        assert ("gatehouse: %s='127.0.0.1:1\nrouts: []' is not an address" % var).encode() in r.stderr, r.stderr


def test_a_non_loopback_demo_admin_needs_a_token():
    """The override goes through the ordinary rules (§12.15)."""
    env = dict(os.environ, GATEHOUSE_DEMO_LISTEN="127.0.0.1:%d" % free_port(),
               GATEHOUSE_DEMO_ADMIN="0.0.0.0:%d" % free_port())
    r = subprocess.run([BIN, "run"], env=env, cwd=tempfile.mkdtemp(prefix="gh-demo-"), capture_output=True,
                       timeout=10)
    assert r.returncode == 1 and b"is not loopback: set admin.token" in r.stderr, r.stderr


def test_readme_quick_start_shows_the_real_banner(demo):
    """README's Quick start shows the banner as the default demo prints it."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    quick = readme[readme.index("## Quick start"):readme.index("## A 5-minute tour")]
    shown = re.search(r"Try:\n\n(.*?)\n```", quick, re.S).group(1)
    demo.banner()   # printed in full
    printed = BANNER.search(demo.stderr()).group(1)
    printed = printed.replace("127.0.0.1:%d/" % demo.port, "127.0.0.1:8080/") \
                     .replace("127.0.0.1:%d/" % demo.admin, "127.0.0.1:9901/")
    assert shown == printed, (shown, printed)


def test_demo_reloads_on_sighup_with_its_overrides(demo):
    """SIGHUP rebuilds the demo the same way (same ports: nothing to move)."""
    demo.banner()
    demo.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in demo.stderr() or "reload failed" in demo.stderr(),
               what="the reload's outcome")
    assert "configuration reloaded" in demo.stderr(), demo.stderr()
    status, _, body = curl("curl -i http://127.0.0.1:%d/hello" % demo.port)
    assert (status, body) == (200, b"hello from gatehouse\n")
