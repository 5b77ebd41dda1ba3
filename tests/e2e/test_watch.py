"""`watch: true` (SPEC §2, §9): a change of the configuration file is
reloaded by the same rules as SIGHUP; an editor's write-to-temp + rename is
seen; a burst of writes is applied once; an invalid save is refused."""
import os
import re
import urllib.request

from conftest import free_port, wait_until

CONFIG = """
watch: true
listen: [{ address: "127.0.0.1:{port}" }]
admin: { address: "127.0.0.1:{admin}" }
routes:
  - name: hello
    match: { path: / }
    respond: { status: 200, body: "%s" }
"""


def start(gatehouse, text):
    admin = free_port()
    g = gatehouse(CONFIG % text, subst={"admin": admin})
    g.admin = admin
    return g


def render(g, text):
    return (CONFIG % text).replace("{port}", str(g.port)).replace("{admin}", str(g.admin))


def body(g):
    return g.get("/")[2].decode()


def reloaded(g):
    return g.stderr().count("configuration reloaded (generation")


def reload_errors(g):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % g.admin, timeout=5) as r:
        m = re.search(r'^gatehouse_config_reloads_total\{result="error"\} (\d+)$', r.read().decode(), re.M)
    return int(m.group(1))


def test_in_place_write_is_applied_once(gatehouse):
    g = start(gatehouse, "one")
    assert body(g) == "one"
    with open(g.path, "w") as f:   # truncate + write: several inotify events
        f.write(render(g, "two"))
    g.wait_stderr("configuration reloaded (generation 2)")
    assert body(g) == "two"
    # a SIGHUP now is generation 3: the write above was not applied twice
    assert g.reload()
    assert reloaded(g) == 2 and "generation 4" not in g.stderr()


def test_editor_rename_over_the_file(gatehouse):
    g = start(gatehouse, "one")
    tmp = os.path.join(os.path.dirname(g.path), ".gatehouse.yaml.swp")
    with open(tmp, "w") as f:
        f.write(render(g, "renamed"))
    os.rename(tmp, g.path)
    g.wait_stderr("configuration reloaded (generation 2)")
    assert body(g) == "renamed"
    # the watch survives the rename: the new file is watched too
    with open(g.path, "w") as f:
        f.write(render(g, "again"))
    g.wait_stderr("configuration reloaded (generation 3)")
    assert body(g) == "again"


def test_burst_of_writes_applied_once(gatehouse):
    g = start(gatehouse, "one")
    for i in range(10):
        with open(g.path, "w") as f:
            f.write(render(g, "burst%d" % i))
    g.wait_stderr("configuration reloaded (generation 2)")
    assert body(g) == "burst9"
    assert g.reload()
    assert reloaded(g) == 2


def test_invalid_save_is_refused_and_old_kept(gatehouse):
    g = start(gatehouse, "good")
    with open(g.path, "w") as f:
        f.write(render(g, "bad") + "    nope: 1\n")
    g.wait_stderr("reload failed")
    assert re.search(r"gatehouse\.yaml:\d+:\d+: unknown key 'nope'", g.stderr())
    assert body(g) == "good"
    assert reload_errors(g) == 1
    with open(g.path, "w") as f:
        f.write(render(g, "fixed"))
    g.wait_stderr("configuration reloaded (generation 2)")
    assert body(g) == "fixed"
