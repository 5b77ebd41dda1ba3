"""Authentication and access plugins end to end (SPEC §5, §5.1, §5.2,
§12.8, §12.16, §12.26, §12.27): key_auth, basic_auth, mtls_auth, acl,
ip_filter, global plugins and route overrides, several authenticators on
one route, and the configuration errors of all of them.

Every test runs a real gatehouse in front of the recording upstream
(upstream.py, GET /__requests) and asserts what crossed the gateway: the
identity headers the upstream received when a request was let through,
and that it received nothing at all when the gateway refused one.

Password hashes are made outside the gateway (authkit.py): argon2id with
the `argon2` command line (Debian package `argon2`), bcrypt, sha512-crypt
and yescrypt with libcrypt, sha256-crypt with `openssl passwd -5`.
Client certificates come from certs.py's throwaway PKI; curl presents them.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import http.client

import pytest

import certs
from authkit import HASHERS, PREFIXES, argon2id, basic, consumer_headers, req, seen, values
from conftest import free_port, raw_exchange, wait_read
from test_cli import diag_lines, gh, pos, write

ALICE_KEY = "alice-key-123456"
BOB_KEY = "bob-secret-key-789"                  # configured only as its sha256
CAROL_KEY = "carol+key/with=chars&more"         # needs percent-encoding in a query
KEY_CHALLENGE = 'Key realm="gatehouse"'
MTLS_CHALLENGE = 'ClientCertificate realm="gatehouse"'
SUBJECT = "CN=client1,O=Example"


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


CONSUMERS = """\
consumers:
  - name: alice
    groups: [admins, beta]
    api_keys: [ "%s" ]
  - name: bob
    api_keys: [ { sha256: "%s" } ]
  - name: carol
    groups: [users]
    api_keys: [ "%s" ]
""" % (ALICE_KEY, sha256_hex(BOB_KEY), CAROL_KEY)


def config(routes, consumers=CONSUMERS, top=""):
    """A plaintext listener ({port}), the recording upstream `up` ({up}),
    info-level logs (failed attempts are logged at info), access log on
    stdout."""
    return ("listen: [ { address: \"127.0.0.1:{port}\" } ]\n"
            "log: { access: stdout, level: info }\n" + top +
            "upstreams:\n  up: { targets: [ \"{up}\" ], retries: { attempts: 0 } }\n" +
            consumers + "routes:\n" + routes)


def route(name, prefix, plugins=None, target="upstream: up"):
    text = "  - name: %s\n    match: { prefix: %s }\n    %s\n" % (name, prefix, target)
    if plugins is not None:
        text += "    plugins: %s\n" % plugins
    return text


def start(gatehouse, upstreams, routes, workers=1, **kw):
    up = upstreams("up")
    g = gatehouse(config(routes, **kw), subst={"up": up.address}, workers=workers)
    return g, up


def assert_problem(status, hdrs, body, want_status, code):
    assert status == want_status, (status, body)
    assert values(hdrs, "content-type")[0].startswith("application/problem+json"), hdrs
    doc = json.loads(body)
    assert doc["code"] == code and doc["status"] == want_status, doc
    return doc


def assert_401(resp, *challenges):
    status, hdrs, body = resp
    assert_problem(status, hdrs, body, 401, "unauthorized")
    assert values(hdrs, "www-authenticate") == list(challenges), hdrs


def assert_403(resp):
    status, hdrs, body = resp
    assert_problem(status, hdrs, body, 403, "forbidden")
    assert values(hdrs, "www-authenticate") == [], hdrs


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="gh-auth-") as d:
        yield d


def check(tmp, text, name="gatehouse.yaml"):
    path = write(tmp, name, text)
    rc, out, err = gh("check", "-c", path)
    return path, rc, out + err


def assert_check_error(tmp, text, needle, message, nth=1):
    """`check` exits 1 with FILE:LINE:COL: at the nth occurrence of needle."""
    path, rc, output = check(tmp, text)
    assert rc == 1, output
    diags = diag_lines(output, path)
    where = pos(text, needle, nth)
    assert any(at == where and re.search(message, msg) for at, msg in diags), (where, message, output)
    return output


# ================================================================ key_auth

KEY_ROUTES = (route("k", "/k", "{ key_auth: {} }") +
              route("q", "/q", "{ key_auth: { query: api_key } }") +
              route("h", "/h", "{ key_auth: { header: X-API-Key, query: api_key, hide_credentials: true } }") +
              route("open", "/open"))


def test_key_auth_header_key_passes_with_identity_headers(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, KEY_ROUTES)
    status, _, body = req(g.port, "GET", "/k/one?x=1", {"X-API-Key": ALICE_KEY})
    assert status == 200, body
    # the header name is case-insensitive
    status, _, body = req(g.port, "GET", "/k/two", {"x-api-key": ALICE_KEY})
    assert status == 200, body
    got = seen(up)
    assert [r["target"] for r in got] == ["/k/one?x=1", "/k/two"]
    for r in got:
        assert consumer_headers(r) == {"x-consumer": ["alice"], "x-consumer-groups": ["admins,beta"]}
        assert r["h"]["x-api-key"] == [ALICE_KEY]           # not hidden unless asked
    log = g.access_log(wait_for=2)
    assert [(l["path"], l["status"], l["consumer"], l["route"]) for l in log[-2:]] == [
        ("/k/one", 200, "alice", "k"), ("/k/two", 200, "alice", "k")]


def test_key_auth_sha256_stored_key(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, KEY_ROUTES)
    # bob has no groups: X-Consumer only, and a client-sent group list never survives
    status, _, body = req(g.port, "GET", "/k/bob", {"X-API-Key": BOB_KEY, "X-Consumer-Groups": "admins"})
    assert status == 200, body
    # the configured digest itself is not a key
    assert_401(req(g.port, "GET", "/k/digest", {"X-API-Key": sha256_hex(BOB_KEY)}), KEY_CHALLENGE)
    got = seen(up)
    assert [r["target"] for r in got] == ["/k/bob"]
    assert consumer_headers(got[0]) == {"x-consumer": ["bob"]}
    assert g.access_log(wait_for=2)[-2]["consumer"] == "bob"


def test_key_auth_query_parameter(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, KEY_ROUTES)
    status, _, body = req(g.port, "GET", "/q/x?a=1&api_key=%s&b=2" % ALICE_KEY)
    assert status == 200, body
    # percent-encoded key bytes are decoded before the lookup
    enc = "carol%2Bkey%2Fwith%3Dchars%26more"
    status, _, body = req(g.port, "GET", "/q/y?api_key=" + enc)
    assert status == 200, body
    # a query-only key_auth does not read the header
    assert_401(req(g.port, "GET", "/q/z", {"X-API-Key": ALICE_KEY}), KEY_CHALLENGE)
    got = seen(up)
    # without hide_credentials the query is forwarded as sent
    assert [r["target"] for r in got] == ["/q/x?a=1&api_key=%s&b=2" % ALICE_KEY, "/q/y?api_key=" + enc]
    assert consumer_headers(got[0]) == {"x-consumer": ["alice"], "x-consumer-groups": ["admins,beta"]}
    assert consumer_headers(got[1]) == {"x-consumer": ["carol"], "x-consumer-groups": ["users"]}


def test_key_auth_hide_credentials_removes_header_and_query_parameter(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, KEY_ROUTES)
    k = ALICE_KEY
    cases = [
        ("/h/hdr?keep=1", {"X-API-Key": k}, "/h/hdr?keep=1"),
        ("/h/only?api_key=" + k, {}, "/h/only"),
        ("/h/mid?a=1&api_key=%s&b=2" % k, {}, "/h/mid?a=1&b=2"),
        ("/h/last?a=1&api_key=" + k, {}, "/h/last?a=1"),
        ("/h/first?api_key=%s&b=2" % k, {}, "/h/first?b=2"),
        # a parameter whose name merely ends in api_key is not the credential
        ("/h/near?x_api_key=1&api_key=%s" % k, {}, "/h/near?x_api_key=1"),
    ]
    for path, headers, _ in cases:
        status, _, body = req(g.port, "GET", path, headers)
        assert status == 200, (path, body)
    got = seen(up)
    assert [r["target"] for r in got] == [want for _, _, want in cases]
    for r in got:
        assert "x-api-key" not in r["h"], r
        assert k not in r["target"], r
        assert consumer_headers(r) == {"x-consumer": ["alice"], "x-consumer-groups": ["admins,beta"]}


def test_key_auth_hide_credentials_removes_every_copy_of_the_key(gatehouse, upstreams):
    """hide_credentials: the upstream never sees the key, whichever copy
    authenticated (Kong clears the header and the query parameter alike)."""
    g, up = start(gatehouse, upstreams, KEY_ROUTES)
    k = ALICE_KEY
    assert req(g.port, "GET", "/h/twice?api_key=%s&x=1&api_key=%s" % (k, k))[0] == 200
    assert req(g.port, "GET", "/h/both?api_key=%s&x=2" % k, {"X-API-Key": k})[0] == 200
    got = seen(up)
    assert len(got) == 2
    for r in got:
        assert "x-api-key" not in r["h"], r
        assert k not in r["target"], r["target"]
    assert [r["target"] for r in got] == ["/h/twice?x=1", "/h/both?x=2"]


def test_key_auth_reload_changes_the_keys(gatehouse, upstreams):
    up = upstreams("up")
    g = gatehouse(config(KEY_ROUTES), subst={"up": up.address}, workers=2)
    assert req(g.port, "GET", "/k/before", {"X-API-Key": ALICE_KEY})[0] == 200
    new_consumers = CONSUMERS.replace(ALICE_KEY, "alice-rotated-key-2")
    g.reload(config(KEY_ROUTES, consumers=new_consumers), wait=0.5)
    assert_401(req(g.port, "GET", "/k/old", {"X-API-Key": ALICE_KEY}), KEY_CHALLENGE)
    assert req(g.port, "GET", "/k/new", {"X-API-Key": "alice-rotated-key-2"})[0] == 200
    # a reload that would make a key ambiguous is refused; the running keys stay
    g.reload(config(KEY_ROUTES, consumers=new_consumers.replace(CAROL_KEY, "alice-rotated-key-2")), wait=0.5)
    assert req(g.port, "GET", "/k/still", {"X-API-Key": "alice-rotated-key-2"})[0] == 200
    assert req(g.port, "GET", "/k/carol", {"X-API-Key": CAROL_KEY})[0] == 200
    got = seen(up)
    assert [(r["target"], r["h"]["x-consumer"]) for r in got] == [
        ("/k/before", ["alice"]), ("/k/new", ["alice"]), ("/k/still", ["alice"]), ("/k/carol", ["carol"])]
    assert "alice-rotated-key-2" not in g.stderr()


def test_key_auth_wrong_or_missing_key_is_401_and_nothing_is_forwarded(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, KEY_ROUTES)
    for path, headers in (("/k/wrong", {"X-API-Key": "not-a-configured-key"}),
                          ("/k/empty", {"X-API-Key": ""}),
                          ("/k/prefix", {"X-API-Key": ALICE_KEY[:-1]}),
                          ("/k/longer", {"X-API-Key": ALICE_KEY + "0"}),
                          ("/k/missing", {}),
                          ("/k/otherheader", {"Authorization": "Bearer " + ALICE_KEY}),
                          ("/q/wrong?api_key=nope-nope-nope", {}),
                          ("/q/missing?apikey=" + ALICE_KEY, {}),
                          ("/h/wrong?api_key=nope-nope-nope", {})):
        resp = req(g.port, "POST", path, headers, body=b"{}")
        assert_401(resp, KEY_CHALLENGE)
        assert json.loads(resp[2])["detail"], resp
    assert seen(up) == []
    log = g.access_log(wait_for=9)
    assert len(log) == 9 and all(l["status"] == 401 and l["consumer"] is None for l in log), log


def test_key_auth_refused_keys_are_not_logged(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, KEY_ROUTES)
    secret_h = "wrong-key-SECRET-4242"
    secret_q = "wrong-key-QSECRET-777"
    ids = []
    for resp in (req(g.port, "GET", "/k/x", {"X-API-Key": secret_h}),
                 req(g.port, "GET", "/q/x?api_key=" + secret_q),
                 req(g.port, "GET", "/h/x?api_key=" + secret_q)):
        assert_401(resp, KEY_CHALLENGE)
        ids.append(values(resp[1], "x-request-id")[0])
    g.access_log(wait_for=3)
    g.stop()
    err = g.stderr()
    with open(g.out_path) as f:
        out = f.read()
    # each failed attempt is logged (by its request id), the keys are not
    for rid in ids:
        assert any(rid in line and "invalid" in line for line in err.splitlines()), (rid, err)
    for s in (secret_h, secret_q):
        assert s not in err and s not in out, (s, err, out)
    assert seen(up) == []


def test_client_sent_consumer_headers_are_always_stripped(gatehouse, upstreams):
    g, up = start(gatehouse, upstreams, KEY_ROUTES)
    forged = {"X-Consumer": "admin", "X-Consumer-Groups": "root", "X-Consumer-Id": "0",
              "x-consumer-custom-id": "42", "X-CONSUMER-USERNAME": "root", "X-Consumers": "all"}
    h = dict(forged)
    h["X-API-Key"] = ALICE_KEY
    assert req(g.port, "GET", "/k/authed", h)[0] == 200
    h = dict(forged)
    h["X-API-Key"] = BOB_KEY
    assert req(g.port, "GET", "/k/nogroups", h)[0] == 200
    assert req(g.port, "GET", "/open/plain", dict(forged))[0] == 200
    got = seen(up)
    assert [r["target"] for r in got] == ["/k/authed", "/k/nogroups", "/open/plain"]
    assert consumer_headers(got[0]) == {"x-consumer": ["alice"], "x-consumer-groups": ["admins,beta"]}
    assert consumer_headers(got[1]) == {"x-consumer": ["bob"]}
    assert consumer_headers(got[2]) == {}
    log = g.access_log(wait_for=3)
    assert [l["consumer"] for l in log[-3:]] == ["alice", "bob", None]


def test_refused_request_body_is_never_parsed_as_a_request(gatehouse, upstreams):
    """A 401 answered before the body was read: the body (which looks like
    an authenticated request) must be skipped or the connection closed,
    never dispatched."""
    g, up = start(gatehouse, upstreams, KEY_ROUTES)
    inner = ("GET /k/smuggled HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n" % ALICE_KEY).encode()
    data = (b"POST /k/refused HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(inner) + inner +
            b"GET /open/after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = raw_exchange(g.port, data, timeout=3)
    assert out.startswith(b"HTTP/1.1 401 "), out
    assert out.count(b"HTTP/1.1 200 ") <= 1, out
    targets = [r["target"] for r in seen(up)]
    assert "/k/smuggled" not in targets and "/k/refused" not in targets, targets
    assert targets in ([], ["/open/after"]), targets
    if targets:
        assert out.count(b"HTTP/1.1 ") == 2, out


# ============================================================== basic_auth

PASSWORDS = {kind: "pw-%s-Right!" % kind for kind in HASHERS}


@pytest.fixture(scope="module")
def hashes():
    return {kind: fn(PASSWORDS[kind]) for kind, fn in HASHERS.items()}


def basic_consumers(hashes, extra=""):
    text = "consumers:\n"
    for kind, h in hashes.items():
        text += ("  - name: u-%s\n    groups: [%s]\n    basic: { username: %s, password_hash: '%s' }\n"
                 % (kind, kind, kind, h))
    return text + extra


BASIC_ROUTES = (route("b", "/b", "{ basic_auth: { realm: api } }") +
                route("up", "/up", "{ basic_auth: { realm: api } }",
                      target="upstream: up\n    rewrite: { strip_prefix: true }") +
                route("bh", "/bh", "{ basic_auth: { hide_credentials: true } }") +
                route("open", "/open"))
API_CHALLENGE = 'Basic realm="api", charset="UTF-8"'
DEFAULT_BASIC_CHALLENGE = 'Basic realm="gatehouse", charset="UTF-8"'


SLOW_PW = "slow-argon2-pw"


@pytest.fixture(scope="module")
def slow_hash():
    """An argon2id hash that takes ~0.1 s to verify (t=3, 32 MiB): long
    enough to observe what happens while verifications are in flight."""
    return argon2id(SLOW_PW, t=3, m=15)


def slow_consumer(name, h, groups=None):
    text = "consumers:\n  - name: %s\n" % name
    if groups:
        text += "    groups: [%s]\n" % groups
    return text + "    basic: { username: %s, password_hash: '%s' }\n" % (name, h)


def test_hash_helpers_make_the_expected_kinds(hashes):
    for kind, h in hashes.items():
        assert h.startswith(PREFIXES[kind]), (kind, h)


@pytest.mark.parametrize("kind", sorted(HASHERS))
def test_basic_auth_hash_kinds(gatehouse, upstreams, hashes, kind):
    g, up = start(gatehouse, upstreams, BASIC_ROUTES, consumers=basic_consumers(hashes))
    right = basic(kind, PASSWORDS[kind])
    status, _, body = req(g.port, "GET", "/b/ok", {"Authorization": right, "X-Consumer": "forged"})
    assert status == 200, body
    assert_401(req(g.port, "GET", "/b/wrong", {"Authorization": basic(kind, PASSWORDS[kind] + "x")}),
               API_CHALLENGE)
    assert_401(req(g.port, "GET", "/b/empty", {"Authorization": basic(kind, "")}), API_CHALLENGE)
    assert_401(req(g.port, "GET", "/b/unknown", {"Authorization": basic("nobody", PASSWORDS[kind])}),
               API_CHALLENGE)
    # another consumer's password is not this one's
    other = [k for k in sorted(HASHERS) if k != kind][0]
    assert_401(req(g.port, "GET", "/b/swap", {"Authorization": basic(kind, PASSWORDS[other])}), API_CHALLENGE)
    got = seen(up)
    assert [r["target"] for r in got] == ["/b/ok"]
    assert consumer_headers(got[0]) == {"x-consumer": ["u-" + kind], "x-consumer-groups": [kind]}
    assert got[0]["h"]["authorization"] == [right]       # not hidden unless asked
    log = g.access_log(wait_for=5)
    assert [(l["status"], l["consumer"]) for l in log] == [(200, "u-" + kind)] + [(401, None)] * 4


def test_basic_auth_sequence_on_one_keep_alive_connection(gatehouse, upstreams, hashes):
    """Right, wrong, right again, malformed: a remembered success never
    lets a different password in, and every answer comes back in order on
    the same connection."""
    g, up = start(gatehouse, upstreams, BASIC_ROUTES, consumers=basic_consumers(hashes))
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    pw = PASSWORDS["argon2id"]
    steps = [
        ("/b/1", basic("argon2id", pw), 200),
        ("/b/2", basic("argon2id", pw + "!"), 401),
        ("/b/3", basic("argon2id", pw), 200),           # remembered: no hash, same answer
        ("/b/4", basic("argon2id", pw[:-1]), 401),
        ("/b/5", "basic " + basic("argon2id", pw)[6:], 200),       # the scheme is case-insensitive
        ("/b/6", "Basic !!!notbase64", 401),
        ("/b/7", "Basic " + base64.b64encode(b"argon2id").decode(), 401),   # no colon
        ("/b/8", "Bearer " + pw, 401),                   # not a Basic credential: the challenge
        ("/b/9", basic("bcrypt", PASSWORDS["bcrypt"]), 200),
    ]
    ids = []
    for path, auth, want in steps:
        status, hdrs, body = req(g.port, "GET", path, {"Authorization": auth}, conn=c)
        assert status == want, (path, status, body)
        if want == 401:
            assert values(hdrs, "www-authenticate") == [API_CHALLENGE], hdrs
            if not auth.startswith("Bearer"):
                ids.append(values(hdrs, "x-request-id")[0])
    c.close()
    got = seen(up)
    assert [(r["target"], r["h"]["x-consumer"]) for r in got] == [
        ("/b/1", ["u-argon2id"]), ("/b/3", ["u-argon2id"]), ("/b/5", ["u-argon2id"]), ("/b/9", ["u-bcrypt"])]
    # failed attempts are logged, without the password or the header carrying it
    g.access_log(wait_for=len(steps))
    g.stop()
    err = g.stderr()
    with open(g.out_path) as f:
        out = f.read()
    for rid in ids:
        assert any(rid in line for line in err.splitlines()), (rid, err)
    for path, auth, want in steps:
        if want == 401:
            secret = auth.split(" ", 1)[1]
            assert secret not in err and secret not in out, (path, err)
    for wrong in (pw + "!", pw[:-1]):
        assert wrong not in err and wrong not in out


def test_basic_auth_hide_credentials_and_default_realm(gatehouse, upstreams, hashes):
    g, up = start(gatehouse, upstreams, BASIC_ROUTES, consumers=basic_consumers(hashes))
    status, _, body = req(g.port, "GET", "/bh/x", {"Authorization": basic("sha256crypt", PASSWORDS["sha256crypt"])})
    assert status == 200, body
    assert_401(req(g.port, "GET", "/bh/none"), DEFAULT_BASIC_CHALLENGE)
    got = seen(up)
    assert len(got) == 1 and "authorization" not in got[0]["h"], got
    assert consumer_headers(got[0]) == {"x-consumer": ["u-sha256crypt"], "x-consumer-groups": ["sha256crypt"]}


def test_basic_auth_request_body_crosses_after_verification(gatehouse, upstreams, hashes):
    """Verification is asynchronous (thread pool): a request body arriving
    meanwhile must still reach the upstream whole."""
    g, up = start(gatehouse, upstreams, BASIC_ROUTES, consumers=basic_consumers(hashes))
    data = os.urandom(300 * 1024)
    status, _, body = req(g.port, "POST", "/up/upload", {"Authorization": basic("argon2id", PASSWORDS["argon2id"]),
                                                        "Content-Type": "application/octet-stream"}, body=data)
    assert status == 200, body
    info = json.loads(body)
    assert info["body_len"] == len(data) and info["sha256"] == hashlib.sha256(data).hexdigest()
    # refused with a body: nothing forwarded
    assert_401(req(g.port, "POST", "/b/refused", {"Authorization": basic("argon2id", "nope")}, body=data),
               API_CHALLENGE)
    assert [r["target"] for r in seen(up)] == ["/upload"]


def test_basic_auth_plaintext_password_is_refused_by_check(tmp):
    text = ("listen: [ { address: \"127.0.0.1:18080\" } ]\n"
            "consumers:\n"
            "  - name: alice\n"
            "    basic: { username: alice, password_hash: \"hunter2-plaintext\" }\n"
            "routes:\n" + route("b", "/b", "{ basic_auth: {} }", target="echo: {}"))
    out = assert_check_error(tmp, text, '"hunter2-plaintext"', r"plaintext")
    # the refused value is a password: it is not repeated
    assert "hunter2-plaintext" not in out, out
    # an unsupported scheme (md5-crypt) is refused the same way
    md5 = text.replace('"hunter2-plaintext"', '"$1$abcdefgh$0123456789abcdefghijkl"')
    assert_check_error(tmp, md5, '"$1$', r"argon2id")


def test_basic_auth_parallel_argon2_keeps_the_gateway_responsive(gatehouse, upstreams, slow_hash):
    """20 argon2id verifications at once all succeed; they run on the
    thread pool, so the same single worker keeps answering a plain route
    quickly meanwhile."""
    pw = SLOW_PW       # ~0.1 s each: 20 of them keep the pool busy for a while
    consumers = slow_consumer("par", slow_hash, "p")
    g, up = start(gatehouse, upstreams, BASIC_ROUTES, consumers=consumers, workers=1)
    results = []
    lock = threading.Lock()

    def one(i):
        try:
            r = req(g.port, "GET", "/b/par/%d" % i, {"Authorization": basic("par", pw)}, timeout=20)
        except Exception as e:   # noqa: BLE001 - reported below
            r = (None, [], repr(e).encode())
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    t0 = time.time()
    for t in threads:
        t.start()
    time.sleep(0.02)
    plain = []
    while any(t.is_alive() for t in threads) and len(plain) < 50:
        s0 = time.time()
        status, _, _ = req(g.port, "GET", "/open/ping")
        plain.append((status, time.time() - s0))
        time.sleep(0.02)
    for t in threads:
        t.join(30)
    burst = time.time() - t0
    assert len(results) == 20
    assert all(r[0] == 200 for r in results), [(r[0], r[2][:200]) for r in results if r[0] != 200]
    assert plain, "the burst ended before a plain request could be made (%.3f s)" % burst
    assert all(s == 200 for s, _ in plain), plain
    slowest = max(d for _, d in plain)
    # verifying on the loop thread would hold a plain request behind most of
    # the burst's hashing; a loaded machine may slow any request a little
    assert slowest < max(0.3, burst / 4), ("plain route stalled during the burst", slowest, burst)
    got = seen(up)
    par = [r for r in got if r["target"].startswith("/b/par/")]
    assert len(par) == 20 and all(r["h"]["x-consumer"] == ["par"] for r in par)


def test_basic_auth_client_gone_during_verification(gatehouse, upstreams, slow_hash):
    """Clients that leave while their password is being verified: nothing
    is forwarded for them, nothing leaks or crashes (the fixture requires
    a clean exit, also under the sanitizers), and service goes on."""
    pw = SLOW_PW
    consumers = slow_consumer("gone", slow_hash)
    g, up = start(gatehouse, upstreams, BASIC_ROUTES, consumers=consumers, workers=1)
    auth = basic("gone", pw)
    for i in range(8):
        s = socket.create_connection(("127.0.0.1", g.port))
        s.sendall(("GET /b/gone/%d HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % (i, auth)).encode())
        wait_read(g.port, 1)   # the head is read and the verification queued
        # a reset, not a FIN (a FIN may be a half-close: the answer is still wanted)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(1.0)
    status, _, body = req(g.port, "GET", "/b/after", {"Authorization": auth})
    assert status == 200, body
    targets = [r["target"] for r in seen(up)]
    assert targets == ["/b/after"], targets


def test_basic_auth_over_http2_streams_wait_independently(gatehouse, upstreams, slow_hash):
    """h2c: several streams of one connection wait for their verification
    while another stream of the same connection is answered; streams reset
    by the client while they wait are never forwarded."""
    from test_http2 import H2
    pw = SLOW_PW
    consumers = slow_consumer("hh", slow_hash, "h2")
    up = upstreams("up")
    text = config(BASIC_ROUTES, consumers=consumers).replace(
        'listen: [ { address: "127.0.0.1:{port}" } ]', 'listen: [ { address: "127.0.0.1:{port}", http2: true } ]')
    g = gatehouse(text, subst={"up": up.address}, workers=1)
    c = H2(g.port, timeout=10)
    try:
        good = [c.request("/b/h2/%d" % i, headers=[("authorization", basic("hh", pw)),
                                                  ("x-consumer", "forged")]) for i in range(4)]
        gone = [c.request("/b/h2gone/%d" % i, headers=[("authorization", basic("hh", pw))]) for i in range(3)]
        bad = c.request("/b/h2bad", headers=[("authorization", basic("hh", pw + "x"))])
        for sid in gone:
            c.conn.reset_stream(sid)
        c.flush()
        plain = c.request("/open/h2")
        c.pump([plain], timeout=10)
        assert c.streams[plain]["status"] == 200
        assert not any(c.done(s) for s in good), "the plain stream should not wait for the hashes"
        c.pump(good + [bad], timeout=15)
        for sid in good:
            assert c.streams[sid]["status"] == 200, c.streams[sid]
        st = c.streams[bad]
        assert st["status"] == 401, st
        assert [v for k, v in st["headers"] if k == b"www-authenticate"] == [API_CHALLENGE.encode()], st
        # the connection is still fine
        assert c.get("/b/h2/again", headers=[("authorization", basic("hh", pw))])["status"] == 200
    finally:
        c.close()
    got = seen(up)   # every stream was answered: the upstream has recorded them all
    targets = sorted(r["target"] for r in got)
    assert targets == sorted(["/b/h2/%d" % i for i in range(4)] + ["/open/h2", "/b/h2/again"]), targets
    for r in got:
        if r["target"].startswith("/b/"):
            assert consumer_headers(r) == {"x-consumer": ["hh"], "x-consumer-groups": ["h2"]}, r


def test_basic_auth_chunked_body_crosses_after_verification(gatehouse, upstreams, hashes):
    g, up = start(gatehouse, upstreams, BASIC_ROUTES, consumers=basic_consumers(hashes))
    parts = [os.urandom(7000) for _ in range(20)]
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    c.request("POST", "/up/upload", body=iter(parts), encode_chunked=True,
              headers={"Authorization": basic("yescrypt", PASSWORDS["yescrypt"]), "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    info = json.loads(r.read())
    c.close()
    assert r.status == 200, info
    data = b"".join(parts)
    assert info["body_len"] == len(data) and info["sha256"] == hashlib.sha256(data).hexdigest()


def test_basic_auth_sigterm_during_verification_drains(gatehouse, upstreams, slow_hash):
    """SIGTERM while verifications are in flight: the requests already
    accepted are finished (SPEC §9 drain), and the process exits 0."""
    pw = SLOW_PW
    consumers = slow_consumer("dr", slow_hash)
    g, up = start(gatehouse, upstreams, BASIC_ROUTES, consumers=consumers, workers=1)
    results = []

    def one(i):
        try:
            results.append(req(g.port, "GET", "/b/drain/%d" % i, {"Authorization": basic("dr", pw)}, timeout=15)[0])
        except Exception as e:   # noqa: BLE001
            results.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    wait_read(g.port, 8)   # all eight requests are in hand before the drain starts
    g.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(20)
    assert g.proc.wait(timeout=15) == 0, g.stderr()
    assert results == [200] * 8, results
    assert len(seen(up)) == 8


def test_basic_auth_pipelined_requests_answer_in_order(gatehouse, upstreams, slow_hash):
    """HTTP/1.1 pipelining: a request behind one that waits for its hash is
    not answered (nor forwarded) out of order. The refused /b/p3 ends its
    exchange while the next request is already parsed: nothing of p3's
    plugin run may be touched after its 401 was sent (the sanitizer build
    reports it when it is)."""
    g, up = start(gatehouse, upstreams, BASIC_ROUTES, consumers=slow_consumer("pp", slow_hash))
    auth = basic("pp", SLOW_PW)
    data = ("GET /b/p1 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n"
            "GET /open/p2 HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /b/p3 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cHA6d3Jvbmc=\r\n\r\n"
            "GET /b/p4 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nConnection: close\r\n\r\n"
            % (auth, auth)).encode()
    out = raw_exchange(g.port, data, timeout=5)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
    assert statuses == [b"200", b"200", b"401", b"200"], out[:3000]
    paths = re.findall(rb'"path": ?"(/[^"]*)"', out)
    assert paths == [b"/b/p1", b"/open/p2", b"/b/p4"], out[:3000]
    assert [r["target"] for r in seen(up)] == ["/b/p1", "/open/p2", "/b/p4"]


def test_basic_auth_reload_during_verification(gatehouse, upstreams, slow_hash):
    """SIGHUP while verifications are in flight: they finish against the
    configuration they started with (pinned), then the new one applies."""
    up = upstreams("up")
    g = gatehouse(config(BASIC_ROUTES, consumers=slow_consumer("rv", slow_hash, "old")), subst={"up": up.address},
                  workers=1)
    results = []

    def one(i):
        try:
            results.append(req(g.port, "GET", "/b/rv/%d" % i, {"Authorization": basic("rv", SLOW_PW)}, timeout=15)[0])
        except Exception as e:   # noqa: BLE001
            results.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    g.reload(config(BASIC_ROUTES, consumers=slow_consumer("rv", slow_hash, "new")), wait=0)
    for t in threads:
        t.join(20)
    assert results == [200] * 8, results
    g.wait_stderr("configuration reloaded")
    assert req(g.port, "GET", "/b/rv/after", {"Authorization": basic("rv", SLOW_PW)})[0] == 200
    got = seen(up)
    assert len(got) == 9
    assert got[-1]["target"] == "/b/rv/after" and got[-1]["h"]["x-consumer-groups"] == ["new"]
    assert all(r["h"]["x-consumer-groups"] in (["old"], ["new"]) for r in got)


def test_basic_auth_reload_replaces_the_password(gatehouse, upstreams, hashes):
    """A success is remembered for a while; a reload that changes the hash
    must not keep accepting the old password."""
    old_pw, new_pw = "old-password-1", "new-password-2"

    def cfg(pw):
        return config(BASIC_ROUTES, consumers=("consumers:\n  - name: rl\n    basic: { username: rl, "
                                               "password_hash: '%s' }\n" % HASHERS["sha512crypt"](pw)))

    up = upstreams("up")
    g = gatehouse(cfg(old_pw), subst={"up": up.address}, workers=1)
    assert req(g.port, "GET", "/b/1", {"Authorization": basic("rl", old_pw)})[0] == 200
    assert req(g.port, "GET", "/b/2", {"Authorization": basic("rl", old_pw)})[0] == 200
    g.reload(cfg(new_pw), wait=0.5)
    assert_401(req(g.port, "GET", "/b/3", {"Authorization": basic("rl", old_pw)}), API_CHALLENGE)
    assert req(g.port, "GET", "/b/4", {"Authorization": basic("rl", new_pw)})[0] == 200
    assert [r["target"] for r in seen(up)] == ["/b/1", "/b/2", "/b/4"]


# =============================================================== mtls_auth

@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="gh-auth-pki-")
    try:
        yield certs.make_pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def mtls_config(pki, routes, client_cert="optional", http2=False):
    return ("listen:\n"
            "  - address: 127.0.0.1:{port}\n" + ("    http2: true\n" if http2 else "") +
            "    tls:\n"
            "      certificates: [ { cert: %s, key: %s } ]\n"
            "      client_ca: %s\n"
            "      client_cert: %s\n"
            "  - address: 127.0.0.1:{plain}\n"
            "log: { access: stdout, level: info }\n"
            "upstreams:\n  up: { targets: [ \"{up}\" ], retries: { attempts: 0 } }\n"
            "consumers:\n"
            "  - name: svc\n    groups: [services]\n    mtls_subject: \"%s\"\n"
            "  - name: other\n    mtls_subject: \"CN=someone-else,O=Example\"\n"
            "routes:\n" % (pki.default[0], pki.default[1], pki.ca1, client_cert, SUBJECT)) + routes


def curl_tls(g, pki, path, cert=None, extra=()):
    """(status, [(name, value)], body) over TLS with curl, presenting cert."""
    args = ["curl", "-sS", "--max-time", "5", "--cacert", pki.ca1,
            "--resolve", "default.example.com:%d:127.0.0.1" % g.port, "-D", "-", "-o", "/dev/stderr"]
    if cert:
        args += ["--cert", cert[0], "--key", cert[1]]
    args += list(extra) + ["https://default.example.com:%d%s" % (g.port, path)]
    r = subprocess.run(args, capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    head = r.stdout.decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    hdrs = [(l.split(":", 1)[0].strip().lower(), l.split(":", 1)[1].strip()) for l in head[1:] if ":" in l]
    return status, hdrs, r.stderr


MTLS_ROUTES = route("m", "/m", "{ mtls_auth: {} }") + route("open", "/open")


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_mtls_auth_certificate_subject_names_the_consumer(gatehouse, upstreams, pki, http2):
    up = upstreams("up")
    plain = free_port()
    g = gatehouse(mtls_config(pki, MTLS_ROUTES, http2=http2), subst={"up": up.address, "plain": plain}, workers=1)
    extra = ["--http2"] if http2 else ["--http1.1"]
    status, _, body = curl_tls(g, pki, "/m/ok", pki.client1,
                               extra + ["-H", "X-Consumer: forged", "-H", "X-Client-Cert-Subject: CN=forged"])
    assert status == 200, body
    got = seen(up)
    assert len(got) == 1
    assert consumer_headers(got[0]) == {"x-consumer": ["svc"], "x-consumer-groups": ["services"]}
    assert got[0]["h"]["x-client-cert-subject"] == [SUBJECT]
    assert g.access_log(wait_for=1)[-1]["consumer"] == "svc"


def test_mtls_auth_refusals(gatehouse, upstreams, pki):
    up = upstreams("up")
    plain = free_port()
    g = gatehouse(mtls_config(pki, MTLS_ROUTES), subst={"up": up.address, "plain": plain}, workers=1)
    # a valid certificate whose subject is nobody's: 401 (it was a credential, a wrong one)
    status, hdrs, body = curl_tls(g, pki, "/m/unknown", pki.client2)
    assert status == 401, body
    assert values(hdrs, "www-authenticate") == [MTLS_CHALLENGE], hdrs
    assert json.loads(body)["code"] == "unauthorized"
    # no certificate at all; a certificate from an untrusted CA (optional: not verified = none)
    for path, cert in (("/m/none", None), ("/m/ca2", pki.client_ca2)):
        status, hdrs, body = curl_tls(g, pki, path, cert, ["-H", "X-Client-Cert-Subject: " + SUBJECT])
        assert status == 401, (path, body)
        assert values(hdrs, "www-authenticate") == [MTLS_CHALLENGE], hdrs
    # the plaintext listener: no certificate can be there, a header is not one
    assert_401(req(plain, "GET", "/m/plain", {"X-Client-Cert-Subject": SUBJECT}), MTLS_CHALLENGE)
    # the open route still serves clients without certificates
    assert curl_tls(g, pki, "/open/x")[0] == 200
    assert [r["target"] for r in seen(up)] == ["/open/x"]


def test_mtls_auth_escaped_subject_does_not_impersonate(gatehouse, upstreams, pki):
    """A certificate whose CN is "admin,O=Example" (subject O=Evil) has the
    RFC 4514 subject CN=admin\\,O=Example,O=Evil: it is not the consumer
    whose mtls_subject is CN=admin,O=Example."""
    up = upstreams("up")
    plain = free_port()
    text = mtls_config(pki, MTLS_ROUTES).replace(
        "consumers:\n", "consumers:\n  - name: admin\n    groups: [admins]\n    mtls_subject: \"CN=admin,O=Example\"\n")
    g = gatehouse(text, subst={"up": up.address, "plain": plain}, workers=1)
    status, hdrs, body = curl_tls(g, pki, "/m/evil", pki.client_comma)
    assert status == 401, body
    assert values(hdrs, "www-authenticate") == [MTLS_CHALLENGE], hdrs
    assert seen(up) == []


def test_check_refuses_mtls_auth_without_a_client_ca(tmp, pki):
    text = ("listen:\n"
            "  - address: 127.0.0.1:18443\n"
            "    tls: { certificates: [ { cert: %s, key: %s } ] }\n"
            "  - address: 127.0.0.1:18080\n"
            "consumers:\n  - name: svc\n    mtls_subject: \"%s\"\n"
            "routes:\n" % (pki.default[0], pki.default[1], SUBJECT) +
            route("m", "/m", "{ mtls_auth: {} }", target="echo: {}"))
    assert_check_error(tmp, text, "mtls_auth", r"client_ca")


def test_check_refuses_mtls_auth_without_a_client_ca_when_global_one_is_off(tmp, pki):
    """`mtls_auth: false` globally (turned off) must not hide a route that
    turns it on from the client_ca check."""
    text = ("listen: [ { address: \"127.0.0.1:18080\" } ]\n"
            "plugins: { mtls_auth: false }\n"
            "consumers:\n  - name: svc\n    mtls_subject: \"%s\"\n"
            "routes:\n" % SUBJECT +
            route("m", "/m", "{ mtls_auth: {} }", target="echo: {}"))
    assert_check_error(tmp, text, "mtls_auth", r"client_ca", nth=2)


# ===================================================================== acl

ACL_CONSUMERS = CONSUMERS + """\
  - name: dave
    groups: [admins, banned]
    api_keys: [ "dave-key-000000" ]
  - name: erin
    api_keys: [ "erin-key-000000" ]
"""


def test_acl_allow_deny_on_groups(gatehouse, upstreams):
    routes = (route("a", "/a", "{ key_auth: {}, acl: { allow: [admins], deny: [banned] } }") +
              route("d", "/d", "{ key_auth: {}, acl: { deny: [banned] } }"))
    g, up = start(gatehouse, upstreams, routes, consumers=ACL_CONSUMERS)
    assert req(g.port, "GET", "/a/alice", {"X-API-Key": ALICE_KEY})[0] == 200      # admins
    assert_403(req(g.port, "GET", "/a/carol", {"X-API-Key": CAROL_KEY}))            # users only
    assert_403(req(g.port, "GET", "/a/erin", {"X-API-Key": "erin-key-000000"}))     # no groups
    assert_403(req(g.port, "GET", "/a/dave", {"X-API-Key": "dave-key-000000"}))     # deny wins over allow
    assert_401(req(g.port, "GET", "/a/nokey"), KEY_CHALLENGE)                       # authentication first
    # a deny-only acl lets everyone else in, also consumers without groups
    assert req(g.port, "GET", "/d/erin", {"X-API-Key": "erin-key-000000"})[0] == 200
    assert_403(req(g.port, "GET", "/d/dave", {"X-API-Key": "dave-key-000000"}))
    assert [r["target"] for r in seen(up)] == ["/a/alice", "/d/erin"]
    log = g.access_log(wait_for=7)
    assert [(l["status"], l["consumer"]) for l in log] == [
        (200, "alice"), (403, "carol"), (403, "erin"), (403, "dave"), (401, None), (200, "erin"), (403, "dave")]


def test_acl_without_authentication_warns_and_refuses(gatehouse, upstreams, tmp):
    routes = route("a", "/a", "{ acl: { allow: [admins] } }") + route("open", "/open")
    text = config(routes).replace("{up}", "127.0.0.1:1").replace("{port}", "18080")
    path, rc, output = check(tmp, text)
    assert rc == 0, output
    diags = diag_lines(output, path)
    assert any(at == pos(text, "acl:") and "warning" in msg and "authentication" in msg for at, msg in diags), output
    g, up = start(gatehouse, upstreams, routes)
    assert_403(req(g.port, "GET", "/a/x", {"X-API-Key": ALICE_KEY}))
    assert req(g.port, "GET", "/open/x")[0] == 200
    assert [r["target"] for r in seen(up)] == ["/open/x"]


# =============================================================== ip_filter

def test_ip_filter_allow_and_deny(gatehouse, upstreams):
    routes = (route("allow", "/allow", "{ ip_filter: { allow: [127.0.0.0/8] } }") +
              route("deny", "/deny", "{ ip_filter: { deny: [127.0.0.1] } }") +
              route("elsewhere", "/elsewhere", "{ ip_filter: { allow: [10.0.0.0/8, \"::1\"] } }") +
              route("both", "/both", "{ ip_filter: { allow: [127.0.0.0/8], deny: [127.0.0.1/32] } }") +
              # ip_filter runs before authentication: a refused address never gets a 401
              route("first", "/first", "{ key_auth: {}, ip_filter: { deny: [127.0.0.0/8] } }"))
    g, up = start(gatehouse, upstreams, routes)
    assert req(g.port, "GET", "/allow/x")[0] == 200
    for path in ("/deny/x", "/elsewhere/x", "/both/x", "/first/x"):
        assert_403(req(g.port, "GET", path))
    assert [r["target"] for r in seen(up)] == ["/allow/x"]


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_ip_filter_ipv6(gatehouse, upstreams):
    port6 = free_port()
    up = upstreams("up")
    text = config(route("six", "/six", "{ ip_filter: { allow: [\"::1\"] } }") +
                  route("net", "/net", "{ ip_filter: { allow: [\"2001:db8::/32\", 127.0.0.0/8] } }") +
                  route("deny6", "/deny6", "{ ip_filter: { deny: [\"::/0\"] } }"))
    text = text.replace("listen: [ { address: \"127.0.0.1:{port}\" } ]",
                        "listen: [ { address: \"127.0.0.1:{port}\" }, { address: \"[::1]:{port6}\" } ]")
    g = gatehouse(text, subst={"up": up.address, "port6": port6}, workers=1)

    def get6(path):
        c = http.client.HTTPConnection("::1", port6, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, [(k.lower(), v) for k, v in r.getheaders()], body

    assert get6("/six/a")[0] == 200
    assert_403(get6("/net/a"))
    assert_403(get6("/deny6/a"))
    assert_403(req(g.port, "GET", "/six/v4"))          # 127.0.0.1 is not ::1
    assert req(g.port, "GET", "/deny6/v4")[0] == 200    # ::/0 is not IPv4
    assert [r["target"] for r in seen(up)] == ["/six/a", "/deny6/v4"]


def test_ip_filter_uses_the_client_address_after_trusted_proxies(gatehouse, upstreams):
    routes = (route("deny10", "/deny10", "{ ip_filter: { deny: [10.0.0.0/8] } }") +
              route("allow10", "/allow10", "{ ip_filter: { allow: [10.0.0.0/8] } }"))
    g, up = start(gatehouse, upstreams, routes, top="trusted_proxies: [127.0.0.1]\n")
    xff = {"X-Forwarded-For": "10.1.2.3"}
    assert_403(req(g.port, "GET", "/deny10/via", xff))
    assert req(g.port, "GET", "/deny10/direct")[0] == 200
    assert req(g.port, "GET", "/allow10/via", xff)[0] == 200
    assert_403(req(g.port, "GET", "/allow10/direct"))
    # the right-most untrusted address decides, not a forged left-most one
    assert_403(req(g.port, "GET", "/allow10/forged", {"X-Forwarded-For": "10.9.9.9, 203.0.113.7"}))
    assert [r["target"] for r in seen(up)] == ["/deny10/direct", "/allow10/via"]
    log = g.access_log(wait_for=5)
    assert [l["client"] for l in log] == ["10.1.2.3", "127.0.0.1", "10.1.2.3", "127.0.0.1", "203.0.113.7"]


def test_ip_filter_ignores_x_forwarded_for_from_an_untrusted_peer(gatehouse, upstreams):
    routes = route("allow10", "/allow10", "{ ip_filter: { allow: [10.0.0.0/8] } }")
    g, up = start(gatehouse, upstreams, routes, top="trusted_proxies: [192.0.2.0/24]\n")
    assert_403(req(g.port, "GET", "/allow10/spoof", {"X-Forwarded-For": "10.1.2.3"}))
    assert seen(up) == []


# ================================================= global plugins, overrides

def test_global_key_auth_and_route_overrides(gatehouse, upstreams):
    routes = (route("inherit", "/inherit") +
              route("free", "/free", "{ key_auth: false }") +
              route("qk", "/qk", "{ key_auth: { query: k } }") +
              route("acl", "/acl", "{ acl: { allow: [users] } }"))
    g, up = start(gatehouse, upstreams, routes, top="plugins: { key_auth: {} }\n")
    assert_401(req(g.port, "GET", "/inherit/nokey"), KEY_CHALLENGE)
    assert req(g.port, "GET", "/inherit/key", {"X-API-Key": ALICE_KEY})[0] == 200
    assert req(g.port, "GET", "/free/nokey", {"X-Consumer": "admin"})[0] == 200
    assert req(g.port, "GET", "/qk/q?k=" + ALICE_KEY)[0] == 200
    # the route's settings replace the global ones: only the query parameter counts there
    assert_401(req(g.port, "GET", "/qk/header", {"X-API-Key": ALICE_KEY}), KEY_CHALLENGE)
    # a route adding acl keeps the inherited key_auth
    assert_401(req(g.port, "GET", "/acl/nokey"), KEY_CHALLENGE)
    assert_403(req(g.port, "GET", "/acl/alice", {"X-API-Key": ALICE_KEY}))
    assert req(g.port, "GET", "/acl/carol", {"X-API-Key": CAROL_KEY})[0] == 200
    got = seen(up)
    assert [r["target"] for r in got] == ["/inherit/key", "/free/nokey", "/qk/q?k=" + ALICE_KEY, "/acl/carol"]
    assert [r["h"].get("x-consumer") for r in got] == [["alice"], None, ["alice"], ["carol"]]


def test_routes_and_explain_show_plugins_in_phase_order(tmp):
    # written in reverse phase order on purpose
    routes = (route("k", "/k", "{ acl: { allow: [admins], deny: [banned] }, "
                               "key_auth: { query: api_key, hide_credentials: true }, "
                               "ip_filter: { allow: [127.0.0.0/8] } }", target="echo: {}") +
              route("open", "/open", "{ key_auth: false }", target="echo: {}"))
    text = config(routes, top="plugins: { key_auth: {} }\n").replace("{up}", "127.0.0.1:1").replace("{port}", "18080")
    path = write(tmp, "gatehouse.yaml", text)
    rc, out, err = gh("routes", "-c", path)
    assert rc == 0, err
    lines = out.splitlines()
    k = [i for i, l in enumerate(lines) if re.match(r"\s*\d+\s+k\s", l)][0]
    plugins_k = lines[k + 1].strip()
    assert re.fullmatch(r"plugins: ip_filter(\(.*\))?, key_auth\(.*\), acl\(.*\)", plugins_k), plugins_k
    assert "query api_key" in plugins_k and "allow admins" in plugins_k and "deny banned" in plugins_k, plugins_k
    o = [i for i, l in enumerate(lines) if re.match(r"\s*\d+\s+open\s", l)][0]
    assert lines[o + 1].strip() == "plugins: (none)", lines[o + 1]
    # secrets never shown (§12.16)
    for s in (ALICE_KEY, CAROL_KEY):
        assert s not in out and s not in err
    rc, out2, err2 = gh("explain", "-c", path, "GET", "/k/x?api_key=zzz")
    assert rc == 0, err2
    line = [l for l in out2.splitlines() if l.startswith("plugins:")]
    assert len(line) == 1, out2
    assert line[0].split(None, 1)[1] == plugins_k.split(None, 1)[1], (line, plugins_k)
    rc, out3, _ = gh("explain", "-c", path, "GET", "/open/x")
    assert rc == 0 and re.search(r"^plugins:\s+\(none\)$", out3, re.M), out3


# ========================================== several authenticators, one route

def test_key_or_basic_on_one_route(gatehouse, upstreams, hashes):
    consumers = CONSUMERS + ("  - name: bea\n    groups: [web]\n    basic: { username: bea, password_hash: '%s' }\n"
                             % hashes["bcrypt"])
    routes = route("m", "/m", "{ basic_auth: { realm: api }, key_auth: {} }")
    g, up = start(gatehouse, upstreams, routes, consumers=consumers)
    assert req(g.port, "GET", "/m/key", {"X-API-Key": ALICE_KEY})[0] == 200
    assert req(g.port, "GET", "/m/basic", {"Authorization": basic("bea", PASSWORDS["bcrypt"])})[0] == 200
    # neither: one challenge per authenticator, in phase order
    assert_401(req(g.port, "GET", "/m/none"), KEY_CHALLENGE, API_CHALLENGE)
    # the first authenticator that finds a credential decides: a wrong key is not rescued by good Basic
    assert_401(req(g.port, "GET", "/m/wrongkey", {"X-API-Key": "wrong-key-000000",
                                                  "Authorization": basic("bea", PASSWORDS["bcrypt"])}),
               KEY_CHALLENGE)
    # ...and a good key is not spoiled by a wrong Basic password
    assert req(g.port, "GET", "/m/both", {"X-API-Key": ALICE_KEY, "Authorization": basic("bea", "wrong")})[0] == 200
    assert_401(req(g.port, "GET", "/m/wrongbasic", {"Authorization": basic("bea", "wrong")}), API_CHALLENGE)
    got = seen(up)
    assert [(r["target"], r["h"].get("x-consumer")) for r in got] == [
        ("/m/key", ["alice"]), ("/m/basic", ["bea"]), ("/m/both", ["alice"])]
    assert got[1]["h"]["x-consumer-groups"] == ["web"]


def test_key_basic_and_mtls_challenges_together(gatehouse, upstreams, pki, hashes):
    routes = route("all", "/all", "{ mtls_auth: {}, basic_auth: {}, key_auth: {} }")
    up = upstreams("up")
    plain = free_port()
    g = gatehouse(mtls_config(pki, routes), subst={"up": up.address, "plain": plain}, workers=1)
    status, hdrs, body = curl_tls(g, pki, "/all/none")
    assert status == 401, body
    assert values(hdrs, "www-authenticate") == [KEY_CHALLENGE, DEFAULT_BASIC_CHALLENGE, MTLS_CHALLENGE], hdrs
    assert curl_tls(g, pki, "/all/cert", pki.client1)[0] == 200
    assert [(r["target"], r["h"].get("x-consumer")) for r in seen(up)] == [("/all/cert", ["svc"])]


# ============================================================ config errors

BASE = "listen: [ { address: \"127.0.0.1:18080\" } ]\n"


@pytest.mark.parametrize("name,text,needle,message,nth", [
    ("typo", BASE + "routes:\n" + route("r", "/r", "{ key_auht: {} }", target="echo: {}"),
     "key_auht", r"unknown plugin 'key_auht'.*did you mean 'key_auth'", 1),
    ("typo_global", BASE + "plugins: { ip_filtr: { allow: [127.0.0.1] } }\nroutes:\n" +
     route("r", "/r", None, target="echo: {}"), "ip_filtr", r"did you mean 'ip_filter'", 1),
    ("cache_store", BASE + "routes:\n" + route("r", "/r", "{ cache: { store: disk } }", target="echo: {}"),
     "disk", r"unknown cache store 'disk' \(use memory or redis\)", 1),
    ("option_typo", BASE + "routes:\n" + route("r", "/r", "{ key_auth: { heder: X-Key } }", target="echo: {}"),
     "heder", r"header", 1),
    ("dup_key", BASE + "consumers:\n"
     "  - { name: a, api_keys: [ \"shared-key-0001\" ] }\n"
     "  - { name: b, api_keys: [ \"other-key-0002\", \"shared-key-0001\" ] }\n"
     "routes:\n" + route("r", "/r", "{ key_auth: {} }", target="echo: {}"),
     "\"shared-key-0001\"", r"already consumer 'a'", 2),
    ("dup_hashed_key", BASE + "consumers:\n"
     "  - { name: a, api_keys: [ \"shared-key-0001\" ] }\n"
     "  - { name: b, api_keys: [ { sha256: \"%s\" } ] }\n" % sha256_hex("shared-key-0001") +
     "routes:\n" + route("r", "/r", "{ key_auth: {} }", target="echo: {}"),
     "{ sha256", r"already consumer 'a'", 1),
    ("acl_empty", BASE + "consumers: [ { name: a, api_keys: [ \"a-key-00000001\" ] } ]\nroutes:\n" +
     route("r", "/r", "{ key_auth: {}, acl: {} }", target="echo: {}"), "acl", r"allow or deny", 1),
    ("ip_filter_bad", BASE + "routes:\n" + route("r", "/r", "{ ip_filter: { allow: [10.0.0.0/33] } }",
                                                 target="echo: {}"),
     "10.0.0.0/33", r"invalid address", 1),
    ("short_key", BASE + "consumers: [ { name: a, api_keys: [ \"short\" ] } ]\nroutes:\n" +
     route("r", "/r", "{ key_auth: {} }", target="echo: {}"), "\"short\"", r"at least 8", 1),
    ("bad_sha", BASE + "consumers: [ { name: a, api_keys: [ { sha256: \"abc\" } ] } ]\nroutes:\n" +
     route("r", "/r", "{ key_auth: {} }", target="echo: {}"), "\"abc\"", r"64 hex", 1),
])
def test_config_errors_name_line_and_column(tmp, name, text, needle, message, nth):
    out = assert_check_error(tmp, text, needle, message, nth)
    assert "shared-key-0001" not in out, out     # a duplicated key is named by its owner, never shown
