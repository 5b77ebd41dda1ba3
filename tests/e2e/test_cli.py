"""The command line (SPEC §1, §2, §12.1, §12.17): check, routes, explain,
config --default, version, usage errors, and `run`'s exit codes.

Every test runs the real binary. Error positions are computed from the YAML
text itself (see `pos`), so the expected FILE:LINE:COL is exact.
"""
import http.client
import os
import re
import socket
import subprocess
import tempfile

import pytest

from conftest import BIN, Upstream, free_port, wait_port


# ---------------------------------------------------------------- helpers

def gh(*args, cwd=None, env=None, timeout=10):
    full_env = dict(os.environ)
    full_env.update(env or {})
    r = subprocess.run([BIN] + list(args), capture_output=True, text=True, cwd=cwd, env=full_env,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def write(dirpath, name, text):
    path = os.path.join(dirpath, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def pos(text, needle, nth=1):
    """1-based 'LINE:COL' of the nth occurrence of needle in text."""
    i = -1
    for _ in range(nth):
        i = text.index(needle, i + 1)
    line = text.count("\n", 0, i) + 1
    col = i - (text.rfind("\n", 0, i) + 1) + 1
    return "%d:%d" % (line, col)


def diag_lines(output, file):
    """The FILE:LINE:COL: message lines in output, as (LINE:COL, message)."""
    out = []
    for line in output.splitlines():
        m = re.match(re.escape(file) + r":(\d+):(\d+): (.*)$", line)
        if m:
            assert int(m.group(1)) >= 1 and int(m.group(2)) >= 1, line
            out.append(("%s:%s" % (m.group(1), m.group(2)), m.group(3)))
    return out


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="gh-cli-") as d:
        yield d


VALID = """\
listen:
  - address: 127.0.0.1:18080
workers: 1
limits:
  header_timeout: 5s
  max_body_bytes: 1MiB
upstreams:
  users-v1:
    targets:
      - { address: 127.0.0.1:19001 }
      - { address: 127.0.0.1:19002 }
  legacy:
    targets: [ { address: 127.0.0.1:19003 } ]
routes:
  # file order is deliberately not precedence order
  - name: legacy-regex
    match: { regex: "^/u/(?<id>[0-9]+)$" }
    upstream: legacy
    rewrite: { path: "/users/{id}" }
  - name: static
    match: { prefix: /static }
    upstream: legacy
  - name: users
    match: { prefix: /users }
    upstream: users-v1
    rewrite: { strip_prefix: true, prefix: /internal/users }
  - name: user-by-id
    match: { path: "/users/{id}/profile", methods: [GET] }
    upstream: users-v1
  - name: me
    match: { path: /users/me }
    respond: { status: 200, body: "me" }
  - name: wild
    match: { host: "*.example.com", prefix: / }
    upstream: legacy
  - name: api
    match: { host: api.example.com, prefix: /v1 }
    upstream: users-v1
"""


# ---------------------------------------------------------------- check

def test_check_valid_file_exits_0(tmp):
    path = write(tmp, "ok.yaml", VALID)
    rc, out, err = gh("check", "-c", path)
    assert rc == 0, err
    assert "error" not in (out + err).lower()
    assert path in out and "ok" in out


def test_check_unknown_key_with_did_you_mean(tmp):
    text = VALID.replace("    match: { prefix: /static }", "    match: { prefx: /static }") \
                .replace("workers: 1", "wrokers: 1")
    path = write(tmp, "bad.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1
    diags = dict(diag_lines(err + out, path))
    at = pos(text, "prefx")
    assert at in diags, (at, err)
    assert "prefx" in diags[at] and "did you mean" in diags[at] and "prefix" in diags[at]
    at = pos(text, "wrokers")
    assert at in diags, (at, err)
    assert "did you mean" in diags[at] and "workers" in diags[at]


def test_check_unknown_key_far_from_any_known_key(tmp):
    text = VALID.replace("workers: 1", "frobnicate: 1")
    path = write(tmp, "bad.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1
    diags = dict(diag_lines(err + out, path))
    at = pos(text, "frobnicate")
    assert at in diags and "unknown key" in diags[at] and "frobnicate" in diags[at], err


def test_check_undefined_upstream_points_at_the_upstream_key(tmp):
    text = VALID.replace("    match: { prefix: /static }\n    upstream: legacy",
                         "    match: { prefix: /static }\n    upstream: nosuch")
    path = write(tmp, "bad.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1
    diags = diag_lines(err + out, path)
    at = pos(text, "upstream: nosuch")          # the key, not the value
    assert any(lc == at and "nosuch" in msg for lc, msg in diags), (at, err)


def test_check_bad_duration(tmp):
    text = VALID.replace("header_timeout: 5s", "header_timeout: 5 parsecs")
    path = write(tmp, "bad.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1
    diags = diag_lines(err + out, path)
    assert len(diags) == 1, err
    lc, msg = diags[0]
    assert lc == pos(text, "5 parsecs")
    assert "duration" in msg and "5 parsecs" in msg


def test_check_unset_env_variable(tmp):
    text = VALID.replace('body: "me"', 'body: "${GH_TEST_SURELY_UNSET_VAR}"')
    path = write(tmp, "bad.yaml", text)
    env = {k: v for k, v in os.environ.items() if k != "GH_TEST_SURELY_UNSET_VAR"}
    r = subprocess.run([BIN, "check", "-c", path], capture_output=True, text=True, env=env, timeout=10)
    assert r.returncode == 1
    diags = diag_lines(r.stderr + r.stdout, path)
    assert len(diags) == 1, r.stderr
    lc, msg = diags[0]
    assert lc.split(":")[0] == pos(text, "GH_TEST_SURELY_UNSET_VAR").split(":")[0]
    assert "GH_TEST_SURELY_UNSET_VAR" in msg and "not set" in msg
    # with the variable set, the same file is valid
    rc, out, err = gh("check", "-c", path, env={"GH_TEST_SURELY_UNSET_VAR": "hello"})
    assert rc == 0, err


def test_check_yaml_syntax_error(tmp):
    text = VALID.replace('    respond: { status: 200, body: "me" }',
                         '    respond: { status: 200, body: "me" }\n   oops: [unclosed\n')
    path = write(tmp, "bad.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1
    diags = diag_lines(err + out, path)
    assert diags, err
    line = int(diags[0][0].split(":")[0])
    oops = int(pos(text, "oops").split(":")[0])
    assert oops <= line <= oops + 2, (diags, oops)
    assert "yaml" in diags[0][1].lower()


def test_check_reports_every_error(tmp):
    text = VALID.replace("header_timeout: 5s", "header_timeout: soon") \
                .replace("    upstream: legacy\n    rewrite:", "    upstream: missing\n    rewrite:") \
                .replace("workers: 1", "wrkers: 1")
    path = write(tmp, "bad.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1
    where = {lc for lc, _ in diag_lines(err + out, path)}
    assert pos(text, "soon") in where
    assert pos(text, "upstream: missing") in where
    assert pos(text, "wrkers") in where


def test_check_file_name_exactly_as_given(tmp):
    text = VALID.replace("workers: 1", "workers: lots")
    write(tmp, "conf/sub/bad.yaml", text)
    given = "./conf/sub/../sub/bad.yaml"
    rc, out, err = gh("check", "-c", given, cwd=tmp)
    assert rc == 1
    lines = [l for l in (err + out).splitlines() if l.strip()]
    assert lines and all(l.startswith(given + ":") for l in lines), lines
    assert diag_lines(err + out, given)[0][0] == pos(text, "lots")


def test_check_missing_file_exits_1(tmp):
    rc, out, err = gh("check", "-c", os.path.join(tmp, "nope.yaml"))
    assert rc == 1
    assert "nope.yaml" in err


def test_a_file_that_cannot_be_opened_says_why(tmp):
    # issue 9 item 20: not "nope.yaml:0:0: ...", but what went wrong
    rc, out, err = gh("check", "-c", "nope.yaml", cwd=tmp)
    assert (rc, out, err) == (1, "", "gatehouse: cannot open nope.yaml: No such file or directory\n"), (rc, out, err)
    for cmd in (["routes"], ["explain"], ["run"]):
        args = cmd + ["-c", "nope.yaml"] + (["GET", "/"] if cmd == ["explain"] else [])
        rc, out, err = gh(*args, cwd=tmp)
        assert rc == 1 and "gatehouse: cannot open nope.yaml: No such file or directory" in err, (cmd, rc, err)
        assert ":0:0" not in err
    rc, out, err = gh("check", "-c", tmp)
    assert rc == 1 and err == "gatehouse: cannot read %s: Is a directory\n" % tmp, err


def test_check_counts_in_the_singular_and_plural(tmp):
    one = """\
listen: [ { address: 127.0.0.1:18080 } ]
upstreams:
  u: { targets: [127.0.0.1:19001] }
routes:
  - { name: r, match: { prefix: /r }, upstream: u }
"""
    path = write(tmp, "one.yaml", one)
    rc, out, err = gh("check", "-c", path)
    assert rc == 0 and out == "%s: configuration ok (1 route, 1 upstream)\n" % path, (out, err)
    path = write(tmp, "two.yaml", one + "  - { name: s, match: { prefix: /s }, echo: {} }\n")
    rc, out, err = gh("check", "-c", path)
    assert rc == 0 and "(2 routes, 1 upstream)" in out, out
    path = write(tmp, "none.yaml", "listen: [ { address: 127.0.0.1:18080 } ]\nroutes:\n"
                                   "  - { name: r, match: { prefix: /r }, echo: {} }\n")
    rc, out, err = gh("check", "-c", path)
    assert rc == 0 and "(1 route, 0 upstreams)" in out, out


def test_check_names_the_wrong_value(tmp):
    text = VALID.replace("header_timeout: 5s", "header_timeout: fast").replace("workers: 1", "workers: [1, 2]")
    path = write(tmp, "bad.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1
    diags = dict(diag_lines(err + out, path))
    assert diags[pos(text, "fast")] == 'expected a duration like 250ms, 5s, 1m or 2h, got "fast"', err
    assert diags[pos(text, "[1, 2]")] == "expected auto or an integer between 1 and 256, got [1, 2]", err


def test_check_unknown_plugin_lists_the_known_ones(tmp):
    for name, hint in (("key_aut", "(did you mean 'key_auth'?)"), ("frobnicate", None)):
        text = VALID + "plugins: { %s: {} }\n" % name
        path = write(tmp, "bad.yaml", text)
        rc, out, err = gh("check", "-c", path)
        assert rc == 1
        msg = dict(diag_lines(err + out, path))[pos(text, name)]
        assert msg.startswith("unknown plugin '%s'" % name), msg
        assert (hint in msg) if hint else "did you mean" not in msg, msg
        known = re.search(r"known plugins: (.*)$", msg).group(1).split(", ")
        assert {"key_auth", "jwt", "basic_auth", "mtls_auth", "acl", "ip_filter", "cors"} <= set(known), msg


def test_two_routes_that_tie_are_an_error_naming_both(tmp):
    text = """\
listen:
  - address: 127.0.0.1:18080
routes:
  - name: first-one
    match: { path: /same, methods: [GET] }
    echo: {}
  - name: second-one
    match: { path: /same, methods: [GET] }
    respond: { status: 204 }
  - name: hdr
    match: { prefix: /p, headers: { X-A: "1" } }
    echo: {}
  - name: qry
    match: { prefix: /p, query: { b: "1" } }
    echo: {}
"""
    path = write(tmp, "tie.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 1
    diags = diag_lines(err + out, path)
    tie1 = [(lc, m) for lc, m in diags if "first-one" in m and "second-one" in m]
    assert tie1, err
    assert tie1[0][0] in (pos(text, "name: first-one"), pos(text, "name: second-one")), tie1
    assert any("hdr" in m and "qry" in m for _, m in diags), err
    # one is refused, so `run` refuses it too, and `routes`
    assert gh("routes", "-c", path)[0] == 1


def test_check_warns_about_a_shadowed_route_but_exits_0(tmp):
    text = """\
listen:
  - address: 127.0.0.1:18080
routes:
  - name: never
    match: { regex: "^/a/.*$" }
    echo: {}
  - name: everything
    match: { prefix: / }
    echo: {}
"""
    path = write(tmp, "shadow.yaml", text)
    rc, out, err = gh("check", "-c", path)
    assert rc == 0, err
    warn = [m for lc, m in diag_lines(err + out, path) if "never" in m]
    assert warn and "warning" in warn[0].lower(), err


# ---------------------------------------------------------------- routes, explain

def test_routes_prints_precedence_order(tmp):
    path = write(tmp, "ok.yaml", VALID)
    rc, out, err = gh("routes", "-c", path)
    assert rc == 0, err
    names = []
    for line in out.splitlines():
        m = re.match(r"^\s*(\d+)\s+(\S+)", line)
        if m:
            names.append(m.group(2))
    # host exact, wildcard, then exact path, template, longest prefix, regex
    assert names == ["api", "wild", "me", "user-by-id", "static", "users", "legacy-regex"], out
    # each route line shows its match and target
    line = next(l for l in out.splitlines() if re.match(r"^\s*\d+\s+users\s", l))
    assert "/users" in line and "users-v1" in line
    line = next(l for l in out.splitlines() if re.match(r"^\s*\d+\s+wild\s", l))
    assert "*.example.com" in line and "legacy" in line


def test_explain_absolute_url(tmp):
    path = write(tmp, "ok.yaml", VALID)
    rc, out, err = gh("explain", "-c", path, "GET", "http://www.example.com/users/7?x=1")
    assert rc == 0, err
    assert re.search(r"route:\s+wild\b", out), out
    assert "legacy" in out and "127.0.0.1:19003" in out
    assert re.search(r"forwarded:\s+/users/7\?x=1", out), out
    rc, out, err = gh("explain", "-c", path, "GET", "http://api.example.com:8443/v1/things")
    assert rc == 0 and re.search(r"route:\s+api\b", out) and "users-v1" in out, out


def test_explain_path_with_host_header_and_rewrite(tmp):
    path = write(tmp, "ok.yaml", VALID)
    rc, out, err = gh("explain", "-c", path, "GET", "/users/7/orders?sort=1", "-H", "Host: other.test")
    assert rc == 0, err
    assert re.search(r"route:\s+users\b", out), out
    assert re.search(r"upstream:\s+users-v1\b", out), out
    assert "127.0.0.1:19001" in out and "127.0.0.1:19002" in out
    assert re.search(r"forwarded:\s+/internal/users/7/orders\?sort=1", out), out
    # the Host header decides: the same path on api.example.com is another route
    rc, out, err = gh("explain", "-c", path, "GET", "/v1/x", "-H", "Host: api.example.com")
    assert rc == 0 and re.search(r"route:\s+api\b", out), out
    # a regex route: params and the rewritten path
    rc, out, err = gh("explain", "-c", path, "GET", "/u/42")
    assert rc == 0 and re.search(r"route:\s+legacy-regex\b", out), out
    assert re.search(r"forwarded:\s+/users/42\b", out), out


def test_explain_no_route_says_404(tmp):
    path = write(tmp, "ok.yaml", VALID)
    rc, out, err = gh("explain", "-c", path, "GET", "/nothing/here", "-H", "Host: other.test")
    assert "404" in out and "no_route" in out, out
    assert not re.search(r"^route:", out, re.M), out


def test_explain_method_not_allowed_says_405(tmp):
    path = write(tmp, "ok.yaml", VALID.replace("  - name: users\n    match: { prefix: /users }\n",
                                               "  - name: users\n    match: { prefix: /users, methods: [GET] }\n"))
    rc, out, err = gh("explain", "-c", path, "DELETE", "/users/7")
    assert "405" in out and "GET" in out, out


def test_explain_makes_no_network_traffic(tmp):
    up = Upstream("a")
    try:
        text = VALID.replace("127.0.0.1:19001", up.address)
        path = write(tmp, "ok.yaml", text)
        before = up.stats()
        rc, out, err = gh("explain", "-c", path, "GET", "/users/1")
        assert rc == 0 and up.address in out, out
        after = up.stats()
        # the only new connection is the one that asked for the stats
        assert after["connections"] == before["connections"] + 1, (before, after)
        assert up.requests() == []
    finally:
        up.stop()


ENV_MASK = {"GH_TEST_LEGACY_ADDR": "10.9.8.7:4321", "GH_TEST_SSO_TOKEN": "tok-5up3r-s3cret"}


def masked_config(tmp):
    text = VALID.replace("127.0.0.1:19003", '"${GH_TEST_LEGACY_ADDR}"') + """\
  - name: with-token
    match: { path: /go }
    redirect: { to: "https://sso.example.com/?token=${GH_TEST_SSO_TOKEN}", status: 302 }
"""
    return write(tmp, "env.yaml", text)


def test_env_value_in_redirect_is_masked_in_routes_and_explain(tmp):
    # SPEC §2, §12.16: values that came from ${ENV} are "***" in routes/explain
    path = masked_config(tmp)
    rc, out, err = gh("check", "-c", path, env=ENV_MASK)
    assert rc == 0 and "tok-5up3r-s3cret" not in out + err, out + err
    rc, out, err = gh("routes", "-c", path, env=ENV_MASK)
    assert rc == 0, err
    assert "with-token" in out
    assert "tok-5up3r-s3cret" not in out + err and "***" in out, out
    rc, out, err = gh("explain", "-c", path, "GET", "/go", env=ENV_MASK)
    assert rc == 0 and "with-token" in out, out
    assert "tok-5up3r-s3cret" not in out + err and "***" in out, out


def test_env_value_in_upstream_address_is_masked_in_explain(tmp):
    path = masked_config(tmp)
    rc, out, err = gh("explain", "-c", path, "GET", "/static/x", env=ENV_MASK)
    assert rc == 0 and re.search(r"^route:\s+static\b", out, re.M), out
    assert "10.9.8.7" not in out + err and "***" in out, out


def test_explain_uses_headers_for_header_conditions(tmp):
    text = """\
listen:
  - address: 127.0.0.1:18080
routes:
  - name: tenant-acme
    match: { prefix: /t, headers: { X-Tenant: acme } }
    respond: { status: 200, body: acme }
  - name: tenant-any
    match: { prefix: /t }
    respond: { status: 200, body: any }
"""
    path = write(tmp, "hdr.yaml", text)
    rc, out, err = gh("explain", "-c", path, "GET", "http://x.test/t/1", "-H", "X-Tenant: acme")
    assert rc == 0 and re.search(r"^route:\s+tenant-acme\b", out, re.M), out
    rc, out, err = gh("explain", "-c", path, "GET", "http://x.test/t/1", "-H", "X-Tenant: other")
    assert rc == 0 and re.search(r"^route:\s+tenant-any\b", out, re.M), out


# ---------------------------------------------------------------- config, version, usage

def test_config_default_is_accepted_by_check(tmp):
    rc, out, err = gh("config", "--default")
    assert rc == 0, err
    assert "listen:" in out and "routes:" in out
    path = write(tmp, "demo.yaml", out)
    rc, cout, cerr = gh("check", "-c", path)
    assert rc == 0, cerr
    rc, rout, rerr = gh("routes", "-c", path)
    assert rc == 0 and re.search(r"^\s*1\s+\S+", rout, re.M), rout


def test_version_prints_versions():
    rc, out, err = gh("version")
    assert rc == 0, err
    first = out.splitlines()[0]
    assert re.match(r"^gatehouse \S+", first), out
    for lib in ("libuv", "OpenSSL", "nghttp2", "pcre2"):
        assert re.search(re.escape(lib) + r"\s+\d+\.\d+", out), (lib, out)


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["check"],
    ["routes"],
    ["check", "-c", "x.yaml", "extra"],
    ["check", "-c", "x.yaml", "--bogus-option"],
    ["explain", "-c", "x.yaml"],
    ["explain", "-c", "x.yaml", "GET"],
    ["config"],
    ["run", "--workers", "0"],
    ["run", "--workers", "many"],
    ["run", "--log-level", "loud"],
    ["run", "positional"],
], ids=lambda a: " ".join(a) or "(none)")
def test_usage_errors_exit_2(tmp, args):
    rc, out, err = gh(*args, cwd=tmp, timeout=5)
    assert rc == 2, (rc, out, err)
    assert "usage" in err.lower() or "gatehouse:" in err
    if args and args[0] == "frobnicate":
        assert "frobnicate" in err


def test_help_exits_0():
    rc, out, err = gh("--help")
    assert rc == 0 and "usage" in out.lower()


@pytest.mark.parametrize("cmd", ["run", "check", "routes", "explain", "config", "version"])
def test_every_command_has_its_own_help(tmp, cmd):
    for args in ([cmd, "--help"], [cmd, "-h"], ["help", cmd], [cmd, "-c", "nope.yaml", "--help"]):
        rc, out, err = gh(*args, cwd=tmp, timeout=5)
        assert rc == 0 and err == "", (args, rc, err)
        assert out.startswith("usage: gatehouse %s" % cmd), (args, out)
        assert "usage: gatehouse <command>" not in out, out      # that command's, not the list
    # a usage error shows the command's usage too
    if cmd in ("check", "routes", "explain"):
        rc, out, err = gh(cmd, cwd=tmp, timeout=5)
        assert rc == 2 and "usage: gatehouse %s" % cmd in err, err


# ---------------------------------------------------------------- run

RUN_CFG = """\
listen:
  - address: 127.0.0.1:{port}
workers: 1
routes:
  - name: hello
    match: { path: /hello }
    respond: { status: 200, body: "{greeting}" }
"""


def test_run_port_in_use_exits_3_with_the_address(tmp):
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        path = write(tmp, "run.yaml", RUN_CFG.replace("{port}", str(port)).replace("{greeting}", "hi"))
        rc, out, err = gh("run", "-c", path, timeout=10)
        assert rc == 3, (rc, err)
        assert "127.0.0.1:%d" % port in err
    finally:
        busy.close()


def test_run_invalid_config_exits_1(tmp):
    text = RUN_CFG.replace("{port}", str(free_port())).replace("{greeting}", "hi") \
                  .replace("workers: 1", "workers: 1\nmystery: true")
    path = write(tmp, "run.yaml", text)
    rc, out, err = gh("run", "-c", path, timeout=10)
    assert rc == 1, (rc, err)
    assert any(lc == pos(text, "mystery") for lc, _ in diag_lines(err, path)), err


def test_run_missing_config_exits_1(tmp):
    rc, out, err = gh("run", "-c", os.path.join(tmp, "absent.yaml"), timeout=10)
    assert rc == 1, (rc, err)
    assert "absent.yaml" in err


def test_run_interpolates_env_variables(gatehouse):
    port = free_port()
    cfg = RUN_CFG.replace("{port}", "${GH_TEST_LISTEN_PORT}").replace("{greeting}", "hello ${GH_TEST_WHO}") \
                 .replace("workers: 1", "workers: ${GH_TEST_WORKERS}")
    # the value is used as is: not YAML, not interpolated again
    who = 'world " # x: y ${GH_TEST_LISTEN_PORT}'
    g = gatehouse(cfg, env={"GH_TEST_LISTEN_PORT": str(port), "GH_TEST_WHO": who, "GH_TEST_WORKERS": "1"},
                  expect_start=False)
    wait_port(port, proc=g.proc, timeout=5)
    g.port = port
    status, hdrs, data = g.get("/hello")
    assert status == 200 and data.decode() == "hello " + who


def test_run_without_c_uses_gatehouse_yaml_in_cwd():
    # the conftest Gatehouse passes -c; start one by hand in a directory that
    # holds a gatehouse.yaml and give no -c
    d = tempfile.mkdtemp(prefix="gh-cwd-")
    port = free_port()
    write(d, "gatehouse.yaml", RUN_CFG.replace("{port}", str(port)).replace("{greeting}", "from cwd"))
    proc = subprocess.Popen([BIN, "run"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc=proc, timeout=5)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/hello")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"from cwd")
        c.close()
    finally:
        proc.terminate()
        rc = proc.wait(timeout=10)
    assert rc == 0

