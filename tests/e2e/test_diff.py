"""`gatehouse diff -c OLD NEW` (issue 13): routes added, removed and changed,
and the sample requests that would now reach another route, version or
upstream, answered by the dispatcher's dry-run mode; exit codes as diff(1).
Also the route index at scale: 10,000 routes load, explain and serve the
right route."""
import re

from test_cli import gh, write

OLD = """\
listen: [ { address: "127.0.0.1:{port}" } ]
upstreams:
  a: { targets: [ "{a}" ] }
  b: { targets: [ "{b}" ] }
routes:
  - name: users
    match: { prefix: /users }
    upstream: a
  - name: legacy
    match: { path: "/legacy/{id}" }
    upstream: a
  - name: orders
    match: { prefix: /orders }
    versions:
      default: "1"
      from: [ "header:Api-Version" ]
      list:
        "1": { upstream: a }
        "2": { upstream: b }
  - name: stable
    match: { path: /health, methods: [GET] }
    respond: { status: 200, body: ok }
"""

NEW = OLD.replace("""    match: { prefix: /users }
    upstream: a""", """    match: { prefix: /users }
    upstream: b""").replace("""  - name: legacy
    match: { path: "/legacy/{id}" }
    upstream: a
""", """  - name: beta
    match: { host: "*.beta.example.com", path: "/beta/{rest*}", methods: [GET, POST] }
    echo: {}
""").replace('default: "1"', 'default: "2"')


def files(tmp_path, old, new, a="127.0.0.1:9001", b="127.0.0.1:9002", port=18080):
    sub = lambda t: t.replace("{port}", str(port)).replace("{a}", a).replace("{b}", b)
    return write(str(tmp_path), "old.yaml", sub(old)), write(str(tmp_path), "new.yaml", sub(new))


def block(out, head):
    """The lines of one sample: its head line and the before/after lines."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == head:
            return lines[i + 1].strip(), lines[i + 2].strip()
    raise AssertionError("no sample %r in:\n%s" % (head, out))


def test_routes_added_removed_changed(tmp_path):
    old, new = files(tmp_path, OLD, NEW)
    rc, out, err = gh("diff", "-c", old, new)
    assert rc == 1, err
    assert "routes: 1 added, 1 removed, 2 changed, 1 unchanged" in out
    assert re.search(r"^  \+ beta: host \*\.beta\.example\.com \(wildcard\), path /beta/\{rest\*\}.* -> echo$", out, re.M)
    assert re.search(r"^  - legacy: any host, path /legacy/\{id\}.* -> upstream a ", out, re.M)
    assert re.search(r"^  ~ users\n      target +upstream a .*\n +=> upstream b ", out, re.M)
    assert re.search(r"^  ~ orders\n      target +versions 1, 2 \(default 1\)\n +=> versions 1, 2 \(default 2\)", out, re.M)
    assert "~ stable" not in out
    # the removed route's requests now find nothing; the added one's find it
    assert block(out, "GET /legacy/1") == ("before: route legacy -> upstream a (round_robin, 1 target: "
                                           "127.0.0.1:9001; retries 1), forwarded /legacy/1", "after:  404 no_route")
    before, after = block(out, "POST http://sample.beta.example.com/beta/x/y")
    assert before == "before: 404 no_route"
    assert after == "after:  route beta -> echo, forwarded /beta/x/y"
    # the same twice: a stable order
    assert gh("diff", "-c", old, new)[1] == out


def test_no_difference_exit_0(tmp_path):
    old, _ = files(tmp_path, OLD, NEW)
    rc, out, err = gh("diff", "-c", old, old)
    assert rc == 0, err
    assert "routes: 0 added, 0 removed, 0 changed, 4 unchanged" in out
    assert re.search(r"requests: 0 of \d+ samples answered differently", out)


def test_request_moved_to_another_upstream_as_the_gateway_does(tmp_path, upstreams, gatehouse):
    """What diff says a request will reach is what a running gateway does
    once NEW is loaded."""
    ua, ub = upstreams("a"), upstreams("b")
    old, new = files(tmp_path, OLD, NEW, ua.address, ub.address)
    rc, out, err = gh("diff", "-c", old, new)
    assert rc == 1, err
    before, after = block(out, "GET /users/x")
    assert before.startswith("before: route users -> upstream a (") and before.endswith("forwarded /users/x")
    assert after.startswith("after:  route users -> upstream b (") and after.endswith("forwarded /users/x")
    assert "GET /health" not in out                 # unchanged: not listed
    g = gatehouse(OLD, subst={"a": ua.address, "b": ub.address})
    status, _, body = g.get("/users/x")
    assert status == 200 and b'"server": "a"' in body
    assert g.reload(NEW)
    status, _, body = g.get("/users/x")
    assert status == 200 and b'"server": "b"' in body


def test_version_default_change(tmp_path):
    old, new = files(tmp_path, OLD, NEW)
    rc, out, _ = gh("diff", "-c", old, new)
    assert rc == 1
    before, after = block(out, "GET /orders/x")
    assert before.startswith("before: route orders, version 1 -> upstream a (")
    assert after.startswith("after:  route orders, version 2 -> upstream b (")
    # a request naming its version goes where it went
    assert "[Api-Version: 1]" not in out and "[Api-Version: 2]" not in out


CANARY = OLD.replace('"2": { upstream: b }', '"2": { upstream: b }\n      canary: { version: "2", of: "1", percent: 50 }')


def test_random_canary_is_not_a_difference(tmp_path):
    """A canary places each request at random; diff describes the version
    asked for, so an unchanged canary never shows as a change."""
    old, new = files(tmp_path, CANARY, CANARY)
    for _ in range(5):
        rc, out, err = gh("diff", "-c", old, new)
        assert rc == 0, out + err


def test_invalid_new_exit_2_with_position(tmp_path):
    old, _ = files(tmp_path, OLD, NEW)
    bad = write(str(tmp_path), "bad.yaml", OLD.replace("{port}", "18080").replace("{a}", "127.0.0.1:1")
                .replace("{b}", "127.0.0.1:2").replace("    upstream: a\n  - name: legacy", "    upstream: nope\n  - name: legacy"))
    rc, out, err = gh("diff", "-c", old, bad)
    assert rc == 2
    assert re.search(r"^%s:8:5: upstream 'nope' is not defined$" % re.escape(bad), err, re.M), err
    assert out == ""


def test_usage(tmp_path):
    old, _ = files(tmp_path, OLD, NEW)
    rc, _, err = gh("diff", "-c", old)
    assert rc == 2 and "diff needs -c OLD and NEW" in err


# ---- 10,000 routes ----

def big_config(n, changed=None):
    lines = ["listen: [ { address: \"127.0.0.1:{port}\" } ]", "routes:"]
    for i in range(n):
        k = i % 4
        m = ["prefix: /svc%d" % i, 'path: "/svc%d/{id}"' % i, 'path: "/{tenant}/svc%d/items/{item}"' % i,
             "path: /exact%d" % i][k]
        host = "host: h%d.example.com, " % (i % 50) if i % 5 == 0 else ""
        body = "r%d%s" % (i, "-changed" if i == changed else "")
        lines.append("  - { name: r%d, match: { %s%s }, respond: { status: 200, body: %s } }" % (i, host, m, body))
    return "\n".join(lines) + "\n"


def test_10k_routes_load_explain_and_serve(tmp_path, gatehouse):
    text = big_config(10000)
    path = write(str(tmp_path), "big.yaml", text.replace("{port}", "18080"))
    rc, out, err = gh("check", "-c", path, timeout=30)
    assert rc == 0 and "10000 routes" in out, err
    cases = [
        ("/acme/svc9998/items/3", None, "r9998"),    # a template with a leading parameter
        ("/svc9997/42", None, "r9997"),             # a template
        ("/exact9999", None, "r9999"),              # an exact path
        ("/svc9996/deep/er", None, "r9996"),        # a prefix
        ("/svc5000/x", "h0.example.com", "r5000"),  # a prefix on an exact host
        ("/svc5000/x", None, "404"),                # ... not on another host
    ]
    for url, host, want in cases:
        args = ["explain", "-c", path, "GET", url] + (["-H", "Host: " + host] if host else [])
        rc, out, err = gh(*args, timeout=30)
        assert rc == 0, err
        if want == "404":
            assert "result:    404 no_route" in out, out
        else:
            assert re.search(r"^route: +%s " % want, out, re.M), out
    g = gatehouse(text)
    for url, host, want in cases:
        status, _, body = g.get(url, headers={"Host": host} if host else None)
        assert (status, body) == ((404, body) if want == "404" else (200, want.encode())), (url, status, body)


def test_10k_routes_diff_finds_the_one_change(tmp_path):
    old = write(str(tmp_path), "old.yaml", big_config(10000).replace("{port}", "18080"))
    new = write(str(tmp_path), "new.yaml", big_config(10000, changed=5001).replace("{port}", "18080"))
    rc, out, err = gh("diff", "-c", old, new, timeout=60)
    assert rc == 1, err
    assert "routes: 0 added, 0 removed, 1 changed, 9999 unchanged" in out
    assert re.search(r"^  ~ r5001\n      answer +body \"r5001\" \(5 bytes\)\n +=> body \"r5001-changed\" \(13 bytes\)$",
                     out, re.M), out
    assert re.search(r"^requests: 0 of \d+ samples answered differently$", out, re.M)   # same route, same target
