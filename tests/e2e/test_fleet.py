"""Fleets (SPEC §10, §12.21): the configuration document in etcd, watched by
three gateways; invalid documents refused; etcd down; the cache file;
compaction; auth; `config push`'s protection against lost updates."""
import json
import os
import re
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import BIN, free_port, wait_until
from certs import _leaf, make_pki
from etcd_server import EtcdServer, TcpProxy, etcd  # noqa: F401 (fixture)

KEY = "/gatehouse/config"

BOOT = """
listen: [{ address: "127.0.0.1:{port}" }]
admin: { address: "127.0.0.1:{admin}" }
config_source:
  etcd:
    endpoints: [{endpoints}]
    key: %s
    cache_file: {cache}
{extra}
""" % KEY
AUTH = "    username: root\n    password: ${ETCD_PASSWORD}"



def doc(text):
    return """
routes:
  - name: hello
    match: { path: / }
    respond: { status: 200, body: "%s" }
""" % text


def start_node(gatehouse, endpoints, extra="", tmp=None, cache=None, **kw):
    admin = free_port()
    cache = cache or os.path.join(tmp, "cache-%d.yaml" % admin)
    g = gatehouse(BOOT, subst={"admin": admin, "endpoints": ", ".join(endpoints), "cache": cache, "extra": extra},
                  **kw)
    g.admin = admin
    g.cache = cache
    return g


def body(g):
    try:
        return g.get("/", timeout=2)[2].decode()
    except OSError:
        return None


def admin_json(g, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (g.admin, path), timeout=5) as r:
        return json.loads(r.read())


def metric(g, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % g.admin, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def push(boot_path, text, tmp, *args):
    path = os.path.join(tmp, "push-%d.yaml" % free_port())
    with open(path, "w") as f:
        f.write(text)
    return subprocess.run([BIN, "config", "push", "-c", boot_path, path] + list(args), capture_output=True,
                          text=True, timeout=30)


def revision_of(r):
    m = re.search(r"^pushed .* revision (\d+)$", r.stdout, re.M)
    assert r.returncode == 0 and m, r.stdout + r.stderr
    return int(m.group(1))


def test_push_reaches_three_nodes_within_a_second_and_invalid_is_refused(etcd, gatehouse, tmp_path):
    e = etcd()
    e.put(KEY, doc("v1"))
    nodes = [start_node(gatehouse, [e.url], tmp=str(tmp_path)) for _ in range(3)]
    for g in nodes:
        assert body(g) == "v1"
    r = push(nodes[0].path, doc("v2"), str(tmp_path))
    rev = revision_of(r)
    pushed = time.time()
    wait_until(lambda: all(body(g) == "v2" for g in nodes), 1.0, "v2 on all three nodes")
    assert time.time() - pushed < 1.0
    for g in nodes:
        g.wait_stderr("configuration reloaded (generation 2, etcd revision %d)" % rev)
        st = admin_json(g, "/api/status")
        assert st["config"]["revision"] == rev
        assert st["config"]["last_reload"]["result"] == "ok"
        assert metric(g, "gatehouse_config_revision") == rev

    # invalid: refused by every node, which keeps serving v2 and says so
    bad_rev = e.put(KEY, "routes:\n  - name: broken\n    match: { path: / }\n")
    for g in nodes:
        g.wait_stderr("reload failed; keeping the running configuration (generation 2; etcd revision %d refused)"
                      % bad_rev)
        assert body(g) == "v2"
        st = admin_json(g, "/api/status")
        assert st["config"]["revision"] == rev
        last = st["config"]["last_reload"]
        assert last["result"] == "error" and last["revision"] == bad_rev
        assert any("etcd:%s@%d:" % (KEY, bad_rev) in m for m in last["errors"]), last
        assert metric(g, 'gatehouse_config_reloads_total{result="error"}') == 1
        assert metric(g, "gatehouse_config_revision") == rev

    # SPEC §12.21: listen, admin and config_source come from the bootstrap file only
    own_rev = e.put(KEY, doc("v3") + "admin: { address: 127.0.0.1:1 }\n")
    for g in nodes:
        g.wait_stderr("etcd revision %d refused" % own_rev)
        assert "`admin` comes from the bootstrap file" in g.stderr()
        assert body(g) == "v2"


def test_etcd_down_cache_file_and_back(etcd, gatehouse, tmp_path):
    e = etcd()
    e.put(KEY, doc("v1"))
    nodes = [start_node(gatehouse, [e.url], tmp=str(tmp_path)) for _ in range(3)]
    rev = revision_of(push(nodes[0].path, doc("v2"), str(tmp_path)))
    wait_until(lambda: all(body(g) == "v2" for g in nodes), 5, "v2 everywhere")
    # the cache file holds the last good document, written whole (temp + rename)
    for g in nodes:
        wait_until(lambda: os.path.exists(g.cache) and "v2" in open(g.cache).read(), 5, "the cache file")
        assert "revision %d" % rev in open(g.cache).read()

    e.stop()
    for g in nodes:
        g.wait_stderr("retrying with back-off")
        assert body(g) == "v2"

    # a node restarted while etcd is down starts from its cache file
    first = nodes[0]
    cache = first.cache
    first.check_clean_exit()
    again = start_node(gatehouse, [e.url], tmp=str(tmp_path), cache=cache)
    again.wait_stderr("starting from the cache file")
    assert body(again) == "v2"
    assert admin_json(again, "/api/status")["config"]["revision"] == rev
    nodes[0] = again

    # etcd back: a newer revision reaches every node (after the back-off)
    e.start()
    new = e.put(KEY, doc("v3"))
    wait_until(lambda: all(body(g) == "v3" for g in nodes), 10, "v3 everywhere after etcd came back")
    for g in nodes:
        wait_until(lambda: admin_json(g, "/api/status")["config"]["revision"] == new, 5, "the new revision")


def test_watch_resumes_and_compaction_forces_a_fresh_read(etcd, gatehouse, tmp_path):
    e = etcd()
    e.put(KEY, doc("v1"))
    proxy = TcpProxy(e.port)
    # the first endpoint accepts connections and never answers: after the
    # call's deadline (5 s) the node fails over to the next one
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        g = start_node(gatehouse, ["http://127.0.0.1:%d" % silent.getsockname()[1], proxy.url],
                       tmp=str(tmp_path))
        assert "etcd did not answer within 5 s" in g.stderr()
        assert body(g) == "v1"
        proxy.pause()
        g.wait_stderr("retrying with back-off")
        # while the node cannot see etcd: two changes, then history compacted past them
        e.put(KEY, doc("v2"))
        last = e.put(KEY, doc("v3"))
        e.compact(last)
        proxy.resume()
        g.wait_stderr("etcd watch compacted at revision", timeout=15)
        wait_until(lambda: body(g) == "v3", 5, "v3 after the compaction")
        assert admin_json(g, "/api/status")["config"]["revision"] == last
        assert "v2" not in g.stderr()
    finally:
        proxy.close()
        silent.close()


def test_auth_with_user_and_password(etcd, gatehouse, tmp_path):
    e = etcd()
    e.put(KEY, doc("v1"))
    e.enable_auth("s3cret")
    g = start_node(gatehouse, [e.url], tmp=str(tmp_path), extra=AUTH, env={"ETCD_PASSWORD": "s3cret"})
    assert body(g) == "v1"
    env = dict(os.environ, ETCD_PASSWORD="s3cret")
    p = os.path.join(str(tmp_path), "v2.yaml")
    with open(p, "w") as f:
        f.write(doc("v2"))
    r = subprocess.run([BIN, "config", "push", "-c", g.path, p], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: body(g) == "v2", 2, "v2 with auth")
    assert "s3cret" not in json.dumps(admin_json(g, "/api/config"))
    env["ETCD_PASSWORD"] = "wrong"
    r = subprocess.run([BIN, "config", "pull", "-c", g.path], capture_output=True, text=True, env=env)
    assert r.returncode == 3 and "authentication failed" in r.stderr, r.stderr


def test_push_refuses_lost_update_and_invalid_document(etcd, tmp_path):
    e = etcd()
    boot = os.path.join(str(tmp_path), "boot.yaml")
    with open(boot, "w") as f:
        f.write(BOOT.replace("{port}", str(free_port())).replace("{admin}", str(free_port()))
                .replace("{endpoints}", e.url).replace("{cache}", os.path.join(str(tmp_path), "c.yaml"))
                .replace("{extra}", ""))
    base = revision_of(push(boot, doc("a"), str(tmp_path)))
    # two operators read revision `base`; the first to push wins
    won = push(boot, doc("b"), str(tmp_path), "--base-revision", str(base))
    assert won.returncode == 0, won.stderr
    lost = push(boot, doc("c"), str(tmp_path), "--base-revision", str(base))
    assert lost.returncode == 1 and "refused" in lost.stderr, lost.stderr
    assert e.get(KEY)[0] == doc("b")

    # invalid: nothing written, errors as FILE:LINE:COL
    bad = push(boot, "routes:\n  - name: x\n    match: { path: / }\n    nope: 1\n", str(tmp_path))
    assert bad.returncode == 1 and re.search(r"push-\d+\.yaml:4:5: unknown key 'nope'", bad.stderr), bad.stderr
    assert "nothing written" in bad.stderr
    own = push(boot, doc("d") + "listen: [{ address: 127.0.0.1:1 }]\n", str(tmp_path))
    assert own.returncode == 1 and "`listen` comes from the bootstrap file" in own.stderr, own.stderr
    assert e.get(KEY)[0] == doc("b")

    pulled = subprocess.run([BIN, "config", "pull", "-c", boot], capture_output=True, text=True)
    assert pulled.returncode == 0 and pulled.stdout == doc("b")

    # the bootstrap of an etcd node holds only the node's own settings
    with open(boot, "a") as f:
        f.write("routes: []\n")
    r = subprocess.run([BIN, "check", "-c", boot], capture_output=True, text=True)
    assert r.returncode == 1 and "`routes` comes from etcd" in r.stdout + r.stderr


def write_boot(e, tmp):
    boot = os.path.join(tmp, "boot-%d.yaml" % free_port())
    with open(boot, "w") as f:
        f.write(BOOT.replace("{port}", str(free_port())).replace("{admin}", str(free_port()))
                .replace("{endpoints}", e.url).replace("{cache}", os.path.join(tmp, "c.yaml"))
                .replace("{extra}", ""))
    return boot


TWO = """
upstreams:
  app: { targets: [127.0.0.1:9] }
routes:
  - name: hello
    match: { path: / }
    respond: { status: 200, body: "%s" }
  - name: api
    match: { prefix: /api }
    upstream: app
"""


def test_push_prints_the_diff_and_dry_run_stops_there(etcd, tmp_path):
    """push shows what `gatehouse diff` shows (stored document -> FILE)
    before writing; --dry-run stops there, with diff's exit codes."""
    e = etcd()
    tmp = str(tmp_path)
    boot = write_boot(e, tmp)
    first = push(boot, doc("a"), tmp)
    assert first.returncode == 0, first.stderr
    assert "%s: no document yet" % KEY in first.stdout
    assert "routes: 1 added, 0 removed, 0 changed, 0 unchanged" in first.stdout
    base = revision_of(first)

    # the diff push prints is the one `gatehouse diff` prints for the same two documents
    old_full, new_full = os.path.join(tmp, "old.yaml"), os.path.join(tmp, "new.yaml")
    own = 'listen: [{ address: "127.0.0.1:%d" }]\n' % free_port()
    with open(old_full, "w") as f:
        f.write(own + doc("a"))
    with open(new_full, "w") as f:
        f.write(own + TWO % "b")
    want = subprocess.run([BIN, "diff", "-c", old_full, new_full], capture_output=True, text=True)
    assert want.returncode == 1 and "+ api" in want.stdout, want.stdout + want.stderr
    dry = push(boot, TWO % "b", tmp, "--dry-run")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert dry.stdout == "%s@%d -> %s\n" % (KEY, base, re.search(r"-> (\S+)", dry.stdout).group(1)) + want.stdout
    assert "nothing written" in dry.stderr and "pushed" not in dry.stdout
    assert e.get(KEY) == (doc("a"), base)

    # the same document again: nothing would change (0); invalid or a stale base: trouble (2)
    same = push(boot, doc("a"), tmp, "--dry-run")
    assert same.returncode == 0 and "routes: 0 added, 0 removed, 0 changed, 1 unchanged" in same.stdout, \
        same.stdout + same.stderr
    bad = push(boot, "routes:\n  - name: x\n    nope: 1\n", tmp, "--dry-run")
    assert bad.returncode == 2 and "unknown key 'nope'" in bad.stderr, bad.stderr
    stale = push(boot, TWO % "b", tmp, "--dry-run", "--base-revision", str(base - 1))
    assert stale.returncode == 2 and "refused" in stale.stderr, stale.stderr

    # a real push prints the same diff, then stores
    real = push(boot, TWO % "b", tmp)
    assert real.stdout.startswith("%s@%d -> " % (KEY, base)) and want.stdout in real.stdout, real.stdout
    rev = revision_of(real)
    assert e.get(KEY) == (TWO % "b", rev)

    # a stored document that no longer loads (put by other means): diffed as if empty
    e.put(KEY, "routes: [oops\n")
    r = push(boot, doc("c"), tmp, "--dry-run")
    assert r.returncode == 1 and "does not load" in r.stderr, r.stderr
    assert "routes: 1 added, 0 removed" in r.stdout, r.stdout


def test_concurrent_pushes_from_one_base(etcd, tmp_path):
    """Two operators push at the same moment from the revision both read:
    exactly one is stored, the other refused (exit 1)."""
    e = etcd()
    tmp = str(tmp_path)
    boot = write_boot(e, tmp)
    base = revision_of(push(boot, doc("base"), tmp))
    procs = []
    for name in ("x", "y"):
        path = os.path.join(tmp, "op-%s.yaml" % name)
        with open(path, "w") as f:
            f.write(doc(name))
        procs.append(subprocess.Popen([BIN, "config", "push", "-c", boot, path, "--base-revision", str(base)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=30) + (p.returncode,) for p in procs]
    codes = sorted(o[2] for o in outs)
    assert codes == [0, 1], outs
    winner = [i for i, o in enumerate(outs) if o[2] == 0][0]
    assert "refused" in outs[1 - winner][1]
    assert e.get(KEY)[0] == doc("xy"[winner])


def test_tls_with_client_certificate(gatehouse, tmp_path):
    pki = make_pki(str(tmp_path / "pki"))
    # etcd's own gateway dials etcd with the server certificate: it must serve both ways
    server = _leaf(pki.dir, "etcd", "/CN=localhost", (pki.ca1, pki.ca1_key), san="DNS:localhost,IP:127.0.0.1",
                   usage="serverAuth,clientAuth")
    e = EtcdServer(tls=(server[0], server[1], pki.ca1), client=pki.gw_client)
    try:
        e.put(KEY, doc("v1"))
        tls = "    tls: { ca: %s, cert: %s, key: %s }" % (pki.ca1, pki.gw_client[0], pki.gw_client[1])
        g = start_node(gatehouse, [e.url], tmp=str(tmp_path), extra=tls)
        assert body(g) == "v1"
        rev = revision_of(push(g.path, doc("v2"), str(tmp_path)))
        wait_until(lambda: body(g) == "v2", 2, "v2 over TLS")
        assert admin_json(g, "/api/status")["config"]["revision"] == rev
        # without the client certificate etcd refuses the handshake: push says why
        boot = open(g.path).read().replace(", cert: %s, key: %s" % pki.gw_client, "")
        nocert = os.path.join(str(tmp_path), "nocert.yaml")
        with open(nocert, "w") as f:
            f.write(boot)
        r = subprocess.run([BIN, "config", "pull", "-c", nocert], capture_output=True, text=True, timeout=30)
        assert r.returncode == 3 and "etcd" in r.stderr, r.stderr
    finally:
        e.close()


def test_load_through_three_nodes_during_ten_pushes(etcd, gatehouse, tmp_path):
    """Requests keep flowing through every node while ten revisions roll out:
    none fails, and each node ends on the last revision."""
    import http.client
    import threading

    e = etcd()
    e.put(KEY, doc("r0"))
    nodes = [start_node(gatehouse, [e.url], tmp=str(tmp_path)) for _ in range(3)]
    stop = threading.Event()
    results = {"ok": 0, "failed": []}
    lock = threading.Lock()

    def load(g):
        conn = None
        n = 0
        while not stop.is_set():
            try:
                if conn is None or n % 10 == 0:   # keep-alive, and new connections now and then
                    if conn:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5)
                conn.request("GET", "/")
                r = conn.getresponse()
                data = r.read().decode()
                with lock:
                    if r.status == 200 and data.startswith("r"):
                        results["ok"] += 1
                    else:
                        results["failed"].append((r.status, data))
            except Exception as ex:   # a dropped connection is a failure too
                with lock:
                    results["failed"].append(repr(ex))
                conn = None
            n += 1
        if conn:
            conn.close()

    threads = [threading.Thread(target=load, args=(g,)) for g in nodes]
    for t in threads:
        t.start()
    try:
        for i in range(1, 11):
            rev = revision_of(push(nodes[0].path, doc("r%d" % i), str(tmp_path)))
            wait_until(lambda: all(body(g) == "r%d" % i for g in nodes), 5, "r%d everywhere" % i)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert results["failed"] == [], results["failed"][:5]
    assert results["ok"] > 30
    for g in nodes:
        assert admin_json(g, "/api/status")["config"]["revision"] == rev
        assert metric(g, 'gatehouse_config_reloads_total{result="ok"}') == 10
