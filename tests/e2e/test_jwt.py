"""The `jwt` plugin end to end (SPEC §5.1, §5.2, §12.1, §12.9;
docs/authentication.md "jwt").

Tokens are made outside the gateway (jwtkit.py): keys with `openssl
genpkey`, signatures with `openssl dgst` / `openssl pkeyutl`, HMACs with
Python's hmac, JWKS documents built from the public keys' DER. Every test
runs a real gatehouse in front of the recording upstream and asserts what
crossed it: the forwarded claims and identity when a token is accepted,
nothing at all when it is refused.
"""
import base64
import http.client
import json
import os
import re
import tempfile
import time

import pytest

from authkit import consumer_headers, req, seen, values
from jwtkit import Key, b64u, bearer, claims, jwks, make_token
from test_cli import diag_lines, gh, pos

ISS = "https://id.example.com"
# 64 bytes: long enough for HS512 (RFC 7518 3.2)
SECRET = "hs-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef-xyz"
# a binary secret: NUL, 0xff, CR/LF, quote, backslash, high bytes (64 bytes)
BIN_SECRET = bytes([0, 255, 10, 13, 0x80, 0x22, 0x5C, 1]) + b"-binary-secret-" + bytes(range(200, 241))
ALICE_SUB = "auth0|42"
ALICE_KEY = "alice-key-123456"
BOB_KEY = "bob-key-12345678"
BEARER_CHALLENGE = 'Bearer realm="gatehouse"'
KEY_CHALLENGE = 'Key realm="gatehouse"'


# ------------------------------------------------------------------ keys

@pytest.fixture(scope="module")
def keys():
    with tempfile.TemporaryDirectory(prefix="gh-jwt-keys-") as d:
        k = {
            "dir": d,
            "rsa1": Key(d, "rsa1", "rsa"),
            "rsa2": Key(d, "rsa2", "rsa"),
            "p256": Key(d, "p256", "p256"),
            "p384": Key(d, "p384", "p384"),
            "ed": Key(d, "ed", "ed25519"),
            "attacker": Key(d, "attacker", "p256"),
        }
        files = {
            # several keys: selected by kid
            "jwks": jwks(k["rsa1"].jwk(kid="r1"), k["p256"].jwk(kid="e1"), k["rsa2"].jwk(kid="r2"),
                         # not a signature key: skipped
                         k["p384"].jwk(kid="enc1", use="enc")),
            "ed_jwks": jwks(k["ed"].jwk(kid="ed1", alg="EdDSA")),
        }
        for name, text in files.items():
            path = os.path.join(d, name + ".json")
            with open(path, "w") as f:
                f.write(text)
            k[name] = path
        yield k


# ---------------------------------------------------------------- config

def jwt_route(name, prefix, jwt, extra_plugins=""):
    return ("  - name: %s\n    match: { prefix: %s }\n    upstream: up\n    plugins:\n%s      jwt:\n%s"
            % (name, prefix, extra_plugins, jwt))


def main_config(k):
    main = """\
        issuers:
          - { issuer: "%(iss)s", audiences: [api], keys_file: "%(jwks)s", algorithms: [RS256, ES256] }
          - { issuer: internal, secret: "%(secret)s" }
          - { issuer: pem-rsa, keys_file: "%(rsa_pem)s" }
          - { issuer: pem-p384, keys_file: "%(p384_pem)s" }
          - { issuer: ed-jwks, keys_file: "%(ed_jwks)s" }
          - { issuer: ed-pem, keys_file: "%(ed_pem)s" }
          - { issuer: binary, secret_base64: "%(b64)s" }
        clock_skew: 30s
        forward_claims: { X-User-Id: sub, X-Tenant: tenant }
        scopes: { GET: [read], POST: [write] }
        require_consumer: false
        hide_credentials: false
""" % {"iss": ISS, "jwks": k["jwks"], "secret": SECRET, "rsa_pem": k["rsa1"].pub_path,
       "p384_pem": k["p384"].pub_path, "ed_jwks": k["ed_jwks"], "ed_pem": k["ed"].pub_path,
       "b64": base64.b64encode(BIN_SECRET).decode()}
    internal = '        issuers: [ { issuer: internal, secret: "%s" } ]\n' % SECRET
    return ("listen: [ { address: \"127.0.0.1:{port}\" } ]\n"
            "log: { access: stdout, level: info }\n"
            "upstreams:\n  up: { targets: [ \"{up}\" ], retries: { attempts: 0 } }\n"
            "consumers:\n"
            "  - { name: alice, groups: [admins], jwt_subject: \"%s\", api_keys: [ \"%s\" ] }\n"
            "  - { name: bob, jwt_subject: svc-bob, api_keys: [ \"%s\" ] }\n"
            "routes:\n" % (ALICE_SUB, ALICE_KEY, BOB_KEY) +
            jwt_route("j", "/j", main) +
            jwt_route("strict", "/s", internal + "        require_consumer: true\n"
                                                 "        forward_claims: { X-User-Id: sub }\n") +
            jwt_route("hide", "/h", internal + "        hide_credentials: true\n") +
            jwt_route("noskew", "/z", internal + "        clock_skew: 0s\n") +
            jwt_route("both", "/b", internal, extra_plugins="      key_auth: {}\n"))


@pytest.fixture
def gw(gatehouse, upstreams, keys):
    """(gatehouse, upstream) with main_config; one worker, so the per-worker
    token cache is the same for every request."""
    up = upstreams("up")
    g = gatehouse(main_config(keys), subst={"up": up.address}, workers=1)
    return g, up


# ----------------------------------------------------------------- tokens

def std_claims(**kw):
    """Claims the main issuer accepts: iss, aud, a sub mapped to alice,
    scope read and write, a tenant."""
    base = dict(iss=ISS, aud="api", sub=ALICE_SUB, scope="read write", tenant="acme")
    base.update(kw)
    return claims(**base)


def rs256(k, **kw):
    return make_token(std_claims(**kw), "RS256", key=k["rsa1"], kid="r1")


def hs(alg="HS256", secret=SECRET, **kw):
    kw.setdefault("iss", "internal")
    kw.setdefault("aud", None)
    return make_token(std_claims(**kw), alg, secret=secret)


def get(g, path, token=None, headers=None, method="GET", conn=None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    return req(g.port, method, path, h, body=b"{}" if method in ("POST", "PUT") else None, conn=conn)


# ------------------------------------------------------------- assertions

def problem(resp, status, code):
    st, hdrs, body = resp
    assert st == status, (st, body)
    assert values(hdrs, "content-type")[0].startswith("application/problem+json"), hdrs
    doc = json.loads(body)
    assert doc["code"] == code and doc["status"] == status, doc
    return doc


def assert_invalid_token(resp, what=""):
    """401 unauthorized with one challenge: Bearer, realm gatehouse,
    error="invalid_token" (RFC 6750 3.1)."""
    st, hdrs, body = resp
    assert st == 401, (what, st, body)
    problem(resp, 401, "unauthorized")
    ch = values(hdrs, "www-authenticate")
    assert len(ch) == 1, (what, ch)
    assert ch[0].startswith("Bearer ") and 'realm="gatehouse"' in ch[0] and 'error="invalid_token"' in ch[0], \
        (what, ch)
    assert "\r" not in ch[0] and "\n" not in ch[0]


def ok(resp, what=""):
    st, _, body = resp
    assert st == 200, (what, st, body)


# ============================================================ valid tokens

def test_each_algorithm_passes_and_forwards_claims(gw, keys):
    g, up = gw
    k = keys
    cases = [
        # (name, token, sub) — every other sub maps to alice
        ("RS256 JWKS kid r1", make_token(std_claims(), "RS256", key=k["rsa1"], kid="r1"), ALICE_SUB),
        ("RS256 JWKS kid r2", make_token(std_claims(sub="u-2"), "RS256", key=k["rsa2"], kid="r2"), "u-2"),
        ("ES256 JWKS kid e1", make_token(std_claims(), "ES256", key=k["p256"], kid="e1"), ALICE_SUB),
        ("ES256 aud array", make_token(std_claims(sub="u-4", aud=["other", "api"]), "ES256", key=k["p256"],
                                       kid="e1"), "u-4"),
        ("PS256 PEM", make_token(std_claims(iss="pem-rsa", aud=None), "PS256", key=k["rsa1"]), ALICE_SUB),
        ("RS512 PEM", make_token(std_claims(iss="pem-rsa", aud=None, sub="u-6"), "RS512", key=k["rsa1"]), "u-6"),
        ("ES384 PEM", make_token(std_claims(iss="pem-p384", aud=None), "ES384", key=k["p384"]), ALICE_SUB),
        ("EdDSA JWKS", make_token(std_claims(iss="ed-jwks", aud=None, sub="u-8"), "EdDSA", key=k["ed"],
                                  kid="ed1"), "u-8"),
        ("EdDSA PEM", make_token(std_claims(iss="ed-pem", aud=None), "EdDSA", key=k["ed"]), ALICE_SUB),
        ("HS256", hs("HS256", sub="u-10"), "u-10"),
        ("HS384", hs("HS384"), ALICE_SUB),
        ("HS512", hs("HS512", sub="u-12"), "u-12"),
        ("HS256 secret_base64", hs("HS256", secret=BIN_SECRET, iss="binary"), ALICE_SUB),
    ]
    results = []
    for i, (name, token, _) in enumerate(cases):
        st, _, body = get(g, "/j/%d" % i, token, method="POST" if i % 3 == 2 else "GET")
        results.append((name, st))
    assert results == [(name, 200) for name, _, _ in cases], results
    got = seen(up)
    assert [r["target"] for r in got] == ["/j/%d" % i for i in range(len(cases))]
    for (name, token, sub), r in zip(cases, got):
        assert r["h"].get("x-user-id") == [sub], (name, r["h"])
        assert r["h"].get("x-tenant") == ["acme"], (name, r["h"])
        # hide_credentials: false: the token goes on
        assert r["h"].get("authorization") == ["Bearer " + token], name
        want = {"x-consumer": ["alice"], "x-consumer-groups": ["admins"]} if sub == ALICE_SUB else {}
        assert consumer_headers(r) == want, (name, r["h"])
    log = g.access_log(wait_for=len(cases))
    assert [(l["status"], l["consumer"]) for l in log] == [
        (200, "alice" if sub == ALICE_SUB else None) for _, _, sub in cases], log


def test_lower_case_bearer_scheme_and_consumer_without_groups(gw, keys):
    g, up = gw
    ok(req(g.port, "GET", "/j/lower", {"Authorization": "bearer " + hs(sub="svc-bob")}))
    got = seen(up)
    assert len(got) == 1
    assert consumer_headers(got[0]) == {"x-consumer": ["bob"]}
    assert got[0]["h"]["x-user-id"] == ["svc-bob"]


def test_forwarded_claim_values(gw, keys):
    """Strings, numbers, booleans and arrays of them are forwarded; objects,
    nulls and values with control characters are not (no header injection)."""
    g, up = gw
    cases = [
        (7, ["7"]),
        (["a", "b", 3, True], ["a,b,3,true"]),
        (False, ["false"]),
        ("acme\r\nX-Injected: 1", None),
        ("tab\there", None),
        ({"id": "acme"}, None),
        (None, None),               # absent
    ]
    for i, (tenant, _) in enumerate(cases):
        ok(get(g, "/j/t%d" % i, hs(tenant=tenant)), tenant)
    got = seen(up)
    assert len(got) == len(cases)
    for (tenant, want), r in zip(cases, got):
        assert r["h"].get("x-tenant") == want, (tenant, r["h"])
        assert "x-injected" not in r["h"], r["h"]
        assert r["h"]["x-user-id"] == [ALICE_SUB]


# ============================================================== key choice

def test_jwks_selects_the_key_by_kid(gw, keys):
    g, up = gw
    k = keys
    ok(get(g, "/j/r2", make_token(std_claims(), "RS256", key=k["rsa2"], kid="r2")))
    ok(get(g, "/j/r1", make_token(std_claims(), "RS256", key=k["rsa1"], kid="r1")))
    # the kid names one key: a signature by another key of the set does not pass
    assert_invalid_token(get(g, "/j/swapped", make_token(std_claims(), "RS256", key=k["rsa2"], kid="r1")))
    # a kid the set lacks
    assert_invalid_token(get(g, "/j/unknown", make_token(std_claims(), "RS256", key=k["rsa1"], kid="r9")))
    assert_invalid_token(get(g, "/j/unknown-ec", make_token(std_claims(), "ES256", key=k["p256"], kid="zz")))
    # the use: enc key is not a signature key
    assert_invalid_token(get(g, "/j/enc", make_token(std_claims(), "ES256", key=k["p256"], kid="enc1")))
    assert [r["target"] for r in seen(up)] == ["/j/r2", "/j/r1"]


# ============================================================ bad tokens

def invalid_tokens(k):
    """(what, token): each must be refused with 401 invalid_token."""
    now = int(time.time())
    good = rs256(k)
    h, p, s = good.split(".")
    hdr = lambda d: b64u(json.dumps(d, separators=(",", ":")))
    pl = lambda d: b64u(json.dumps(d, separators=(",", ":")))
    std_b64 = s.replace("-", "+").replace("_", "/")
    assert std_b64 != s, "signature without - or _: regenerate"
    other_sig = make_token(std_claims(), "RS256", key=k["rsa2"], kid="r1").split(".")[2]
    tampered = pl(dict(std_claims(), sub="admin"))
    attacker_jwk = k["attacker"].jwk()
    out = [
        # alg none, in every spelling, with or without a signature
        ("alg none, empty signature", hdr({"alg": "none", "typ": "JWT"}) + "." + p + "."),
        ("alg none, two parts", hdr({"alg": "none"}) + "." + p),
        ("alg none with a real signature", make_token(std_claims(), header={"alg": "none", "kid": "r1"},
                                                      key=k["rsa1"], sign_alg="RS256")),
        ("alg None", hdr({"alg": "None"}) + "." + p + "."),
        ("alg NONE", hdr({"alg": "NONE"}) + "." + p + "." + s),
        ("alg missing", make_token(std_claims(), header={"typ": "JWT", "kid": "r1"}, key=k["rsa1"],
                                   sign_alg="RS256")),
        # algorithm confusion: HS256 keyed with the RSA public key's bytes
        ("HS256 keyed with the PEM of the issuer's RSA key",
         make_token(std_claims(iss="pem-rsa", aud=None), "HS256", secret=k["rsa1"].pub_pem)),
        ("HS256 keyed with the PEM, no final newline",
         make_token(std_claims(iss="pem-rsa", aud=None), "HS256", secret=k["rsa1"].pub_pem.rstrip(b"\n"))),
        ("HS256 keyed with the DER of the issuer's RSA key",
         make_token(std_claims(iss="pem-rsa", aud=None), "HS256", secret=k["rsa1"].pub_der)),
        ("HS256 keyed with the PEM, JWKS issuer, kid r1",
         make_token(std_claims(), "HS256", secret=k["rsa1"].pub_pem, kid="r1")),
        ("HS256 with the internal secret at the RSA issuer", make_token(std_claims(), "HS256", secret=SECRET)),
        # algorithms the issuer does not allow, although its keys could verify them
        ("RS384 at an issuer allowing RS256, ES256", make_token(std_claims(), "RS384", key=k["rsa1"], kid="r1")),
        ("PS256 at an issuer allowing RS256, ES256", make_token(std_claims(), "PS256", key=k["rsa1"], kid="r1")),
        # an RSA token for the issuer that only has a secret
        ("RS256 at the secret issuer", make_token(std_claims(iss="internal", aud=None), "RS256", key=k["rsa1"])),
        # the token's own key is never trusted
        ("embedded jwk", make_token(std_claims(), header={"alg": "ES256", "jwk": attacker_jwk},
                                    key=k["attacker"], sign_alg="ES256")),
        ("embedded jwk with a known kid", make_token(std_claims(), header={"alg": "ES256", "kid": "e1",
                                                                           "jwk": attacker_jwk},
                                                     key=k["attacker"], sign_alg="ES256")),
        ("crit header", make_token(std_claims(), header={"alg": "RS256", "kid": "r1", "crit": ["exp"]},
                                   key=k["rsa1"], sign_alg="RS256")),
        # time
        ("expired", rs256(k, iat=now - 7200, exp=now - 120)),
        ("expired beyond the skew", rs256(k, iat=now - 7200, exp=now - 40)),
        ("nbf in the future", rs256(k, nbf=now + 120)),
        ("nbf beyond the skew", rs256(k, nbf=now + 40)),
        ("iat in the future", rs256(k, iat=now + 600)),
        ("exp not a number", rs256(k, exp=str(now + 3600))),
        # iss, aud
        ("unknown issuer", rs256(k, iss="https://evil.example.com")),
        ("issuer differs in case", rs256(k, iss=ISS.upper())),
        ("issuer with a trailing slash", rs256(k, iss=ISS + "/")),
        ("no issuer", rs256(k, iss=None)),
        ("wrong audience", rs256(k, aud="other")),
        ("wrong audiences", rs256(k, aud=["other", "apis"])),
        ("no audience", rs256(k, aud=None)),
        # signature
        ("signature by another key", h + "." + p + "." + other_sig),
        ("payload changed after signing", h + "." + tampered + "." + s),
        ("signature bit flipped", h + "." + p + "." + s[:20] + ("A" if s[20] != "A" else "B") + s[21:]),
        ("ES256 signature in DER", make_token(std_claims(), "ES256", key=k["p256"], kid="e1", der_ecdsa=True)),
        ("HS256 with a wrong secret", hs(secret=SECRET + "x")),
        ("HS256 secret_base64 issuer, text secret", hs(secret=base64.b64encode(BIN_SECRET), iss="binary")),
        # shape
        ("truncated in the payload", good[:len(h) + 1 + len(p) // 2]),
        ("truncated signature", good[:-4]),
        ("no signature part", h + "." + p),
        ("four parts", good + ".AAAA"),
        ("signature with padding", good + "=="),
        ("signature in standard base64", h + "." + p + "." + std_b64),
        ("header with a non-base64url character", h[:5] + "*" + h[6:] + "." + p + "." + s),
        ("payload with a space", h + "." + p[:10] + " " + p[10:] + "." + s),
        ("payload not JSON", h + "." + b64u("not json") + "." + s),
        ("payload a JSON array", h + "." + b64u("[1,2]") + "." + s),
        ("only dots", ".."),
        ("garbage", "not-a-token"),
    ]
    return out


def test_invalid_tokens_are_401_and_reach_nothing(gw, keys):
    g, up = gw
    # control: the shape every bad token is derived from passes
    ok(get(g, "/j/control", rs256(keys)))
    up.reset()
    bad = invalid_tokens(keys)
    wrong = []
    for what, token in bad:
        resp = get(g, "/j/bad", token, headers={"X-User-Id": "admin", "X-Consumer": "alice"})
        try:
            assert_invalid_token(resp, what)
        except AssertionError as e:
            wrong.append((what, resp[0], values(resp[1], "www-authenticate"), str(e)[:200]))
    assert wrong == [], wrong
    assert seen(up) == []
    log = g.access_log(wait_for=len(bad) + 1)
    assert all(l["status"] == 401 and l["consumer"] is None for l in log[1:]), log
    # a refused token is never logged
    g.stop()
    with open(g.out_path) as f:
        out = f.read()
    err = g.stderr()
    for what, token in bad:
        parts = [x for x in token.split(".") if len(x) > 40]
        for part in parts:
            assert part not in err and part not in out, what


def test_missing_token_is_a_plain_bearer_challenge(gw, keys):
    g, up = gw
    for headers in ({}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, {"Authorization": "Token abc"},
                    {"X-API-Key": ALICE_KEY}):
        resp = req(g.port, "GET", "/j/none", headers)
        problem(resp, 401, "unauthorized")
        assert values(resp[1], "www-authenticate") == [BEARER_CHALLENGE], (headers, resp[1])
    assert seen(up) == []


# ============================================================== clock skew

def test_clock_skew(gw, keys):
    g, up = gw
    now = int(time.time())
    ok(get(g, "/j/exp10", rs256(keys, iat=now - 3600, exp=now - 10)), "exp 10 s ago, skew 30 s")
    ok(get(g, "/j/nbf10", rs256(keys, nbf=now + 10)), "nbf in 10 s, skew 30 s")
    ok(get(g, "/j/iat10", rs256(keys, iat=now + 10)), "iat in 10 s, skew 30 s")
    # the same exp 10 s ago on the route with clock_skew: 0s
    assert_invalid_token(get(g, "/z/exp10", hs(iat=now - 3600, exp=now - 10)))
    assert_invalid_token(get(g, "/z/nbf10", hs(nbf=now + 10)))
    ok(get(g, "/z/fresh", hs()))
    assert [r["target"] for r in seen(up)] == ["/j/exp10", "/j/nbf10", "/j/iat10", "/z/fresh"]


# ================================================================== scopes

def test_scopes_per_method(gw, keys):
    g, up = gw
    cases = [
        # (method, claims, want status)
        ("GET", dict(scope="read"), 200),
        ("GET", dict(scope="write"), 403),
        ("GET", dict(scope=None), 403),
        ("GET", dict(scope="readonly reader"), 403),          # whole words only
        ("GET", dict(scope="  write   read "), 200),
        ("POST", dict(scope="read"), 403),
        ("POST", dict(scope="read write"), 200),
        ("GET", dict(scope=None, scp=["openid", "read"]), 200),
        ("POST", dict(scope=None, scp=["read"]), 403),
        ("POST", dict(scope=None, scp=["write"]), 200),
        ("POST", dict(scope="read", scp=["profile"]), 403),
        ("DELETE", dict(scope=None), 200),                      # no rule for DELETE
    ]
    results = []
    for i, (method, c, _) in enumerate(cases):
        st, hdrs, body = get(g, "/j/s%d" % i, hs(**c), method=method)
        if st == 403:
            problem((st, hdrs, body), 403, "forbidden")
        results.append(st)
    assert results == [want for _, _, want in cases], list(zip(cases, results))
    assert [r["target"] for r in seen(up)] == ["/j/s%d" % i for i, (_, _, want) in enumerate(cases) if want == 200]


def test_scopes_are_checked_per_request_for_a_cached_token(gw, keys):
    g, up = gw
    token = hs(scope="read")
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    try:
        ok(get(g, "/j/a", token, conn=conn))
        problem(get(g, "/j/b", token, method="POST", conn=conn), 403, "forbidden")
        ok(get(g, "/j/c", token, conn=conn))
        writer = hs(scope="write")
        problem(get(g, "/j/d", writer, conn=conn), 403, "forbidden")
        ok(get(g, "/j/e", writer, method="POST", conn=conn))
        problem(get(g, "/j/f", writer, conn=conn), 403, "forbidden")
    finally:
        conn.close()
    assert [r["target"] for r in seen(up)] == ["/j/a", "/j/c", "/j/e"]


# =================================================== consumers and headers

def test_require_consumer(gw, keys):
    g, up = gw
    ok(get(g, "/s/alice", hs()))
    assert_invalid_token(get(g, "/s/stranger", hs(sub="auth0|99")))
    assert_invalid_token(get(g, "/s/nosub", hs(sub=None)))
    assert_invalid_token(get(g, "/s/numeric", hs(sub=42)))
    # twice: the refusal is not cached as a success
    assert_invalid_token(get(g, "/s/stranger", hs(sub="auth0|99")))
    # on the route without require_consumer the same token passes, without a consumer
    ok(get(g, "/j/stranger", hs(sub="auth0|99")))
    got = seen(up)
    assert [r["target"] for r in got] == ["/s/alice", "/j/stranger"]
    assert consumer_headers(got[0]) == {"x-consumer": ["alice"], "x-consumer-groups": ["admins"]}
    assert consumer_headers(got[1]) == {}


def test_client_sent_claim_and_consumer_headers_are_removed(gw, keys):
    g, up = gw
    forged = {"X-User-Id": "admin", "x-tenant": "evil", "X-Consumer": "alice", "X-Consumer-Groups": "admins",
              "X-Consumer-Id": "0"}
    # a token without sub or tenant: nothing to forward, nothing forged survives
    ok(get(g, "/j/nosub", hs(sub=None, tenant=None), headers=forged))
    # a token with an unmapped sub: the claim replaces the forged value
    ok(get(g, "/j/unmapped", hs(sub="u-1", tenant=None), headers=forged))
    # a mapped sub: the gateway's identity only, once
    ok(get(g, "/j/mapped", hs(), headers=forged))
    # lower-case copies, and both at once
    ok(get(g, "/j/lower", hs(sub=None, tenant=None),
           headers={"x-user-id": "admin", "x-consumer": "root", "X-USER-ID": "root"}))
    got = seen(up)
    assert [r["target"] for r in got] == ["/j/nosub", "/j/unmapped", "/j/mapped", "/j/lower"]
    assert "x-user-id" not in got[0]["h"] and "x-tenant" not in got[0]["h"], got[0]["h"]
    assert consumer_headers(got[0]) == {}
    assert got[1]["h"]["x-user-id"] == ["u-1"] and "x-tenant" not in got[1]["h"], got[1]["h"]
    assert consumer_headers(got[1]) == {}
    assert got[2]["h"]["x-user-id"] == [ALICE_SUB] and got[2]["h"]["x-tenant"] == ["acme"], got[2]["h"]
    assert consumer_headers(got[2]) == {"x-consumer": ["alice"], "x-consumer-groups": ["admins"]}
    assert "x-user-id" not in got[3]["h"] and consumer_headers(got[3]) == {}, got[3]["h"]


def test_hide_credentials_removes_authorization(gw, keys):
    g, up = gw
    token = hs()
    ok(get(g, "/h/x", token))
    ok(get(g, "/j/x", token))
    got = seen(up)
    assert "authorization" not in got[0]["h"], got[0]["h"]
    assert consumer_headers(got[0]) == {"x-consumer": ["alice"], "x-consumer-groups": ["admins"]}
    assert got[1]["h"]["authorization"] == ["Bearer " + token]


# ================================================================== cache

def test_repeated_token_keeps_working_and_expiry_is_rechecked(gw, keys):
    g, up = gw
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    try:
        token = rs256(keys)
        for i in range(5):
            ok(get(g, "/j/again%d" % i, token, conn=conn), i)
        # clock_skew 0s: valid for two more seconds, refused once it has expired
        exp = int(time.time()) + 2
        short = hs(exp=exp, iat=exp - 10)
        ok(get(g, "/z/first", short, conn=conn))
        ok(get(g, "/z/second", short, conn=conn))
        time.sleep(max(0.0, exp + 1.05 - time.time()))
        assert_invalid_token(get(g, "/z/late", short, conn=conn))
    finally:
        conn.close()
    # a new connection, the same verdict
    assert_invalid_token(get(g, "/z/late2", short))
    ok(get(g, "/j/again-after", token))
    assert [r["target"] for r in seen(up)] == ["/j/again%d" % i for i in range(5)] + [
        "/z/first", "/z/second", "/j/again-after"]


@pytest.mark.parametrize("what,extra", [
    ("exp = 2^63-1 (the largest int64)", {"exp": 9223372036854775807}),
    ("exp = 1e19 (a real)", {"exp": 1e19}),
    ("nbf = -1e19 (a real)", {"nbf": -1e19}),
])
def test_far_time_claims_give_the_same_verdict_when_cached(gw, keys, what, extra):
    """A token valid the first time is valid the second (from the cache):
    exp/nbf far outside the int64 range of seconds must not flip it."""
    g, up = gw
    token = hs(**extra)
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    try:
        first = get(g, "/j/first", token, conn=conn)
        second = get(g, "/j/second", token, conn=conn)
    finally:
        conn.close()
    assert (first[0], second[0]) == (200, 200), (what, first[2], second[2])
    assert [r["target"] for r in seen(up)] == ["/j/first", "/j/second"]


# ========================================================= key_auth + jwt

def test_key_auth_and_jwt_on_one_route(gw, keys):
    g, up = gw
    ok(get(g, "/b/bearer", hs()))
    ok(req(g.port, "GET", "/b/key", {"X-API-Key": BOB_KEY}))
    # neither: one challenge per authenticator, in phase order
    resp = req(g.port, "GET", "/b/none")
    problem(resp, 401, "unauthorized")
    assert values(resp[1], "www-authenticate") == [KEY_CHALLENGE, BEARER_CHALLENGE], resp[1]
    # a bad token alone: the jwt plugin decides
    assert_invalid_token(get(g, "/b/badtoken", hs(secret="wrong-secret")))
    # a good key decides before the (bad) token is looked at
    ok(req(g.port, "GET", "/b/key-and-bad-token", {"X-API-Key": BOB_KEY,
                                                   "Authorization": "Bearer " + hs(secret="wrong-secret")}))
    # a wrong key decides before the (good) token
    resp = req(g.port, "GET", "/b/badkey", {"X-API-Key": "wrong-key-000000", "Authorization": "Bearer " + hs()})
    problem(resp, 401, "unauthorized")
    assert values(resp[1], "www-authenticate") == [KEY_CHALLENGE], resp[1]
    got = seen(up)
    assert [(r["target"], r["h"].get("x-consumer")) for r in got] == [
        ("/b/bearer", ["alice"]), ("/b/key", ["bob"]), ("/b/key-and-bad-token", ["bob"])]


# ================================================================= reload

RELOAD_CONFIG = """\
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: stdout, level: info }
upstreams:
  up: { targets: [ "{up}" ], retries: { attempts: 0 } }
routes:
  - name: r
    match: { prefix: /r }
    upstream: up
    plugins:
      jwt:
        issuers:
          - { issuer: "%s", audiences: [api], keys_file: "{keys_file}", algorithms: [RS256, ES256] }
        forward_claims: { X-User-Id: sub }
""" % ISS


def wait_log(g, needle, count, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if g.stderr().count(needle) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("no %r x%d in\n%s" % (needle, count, g.stderr()))


def test_reload_with_rotated_keys_and_a_broken_keys_file(gatehouse, upstreams, keys, tmp_path):
    k = keys
    keys_file = str(tmp_path / "rotating.jwks")
    with open(keys_file, "w") as f:
        f.write(jwks(k["rsa1"].jwk(kid="k1"), k["p256"].jwk(kid="k3")))
    up = upstreams("up")
    g = gatehouse(RELOAD_CONFIG, subst={"up": up.address, "keys_file": keys_file}, workers=1)
    old = make_token(std_claims(sub="old"), "RS256", key=k["rsa1"], kid="k1")
    new = make_token(std_claims(sub="new"), "RS256", key=k["rsa2"], kid="k2")
    new_ec = make_token(std_claims(sub="new-ec"), "ES256", key=k["p256"], kid="k3")   # kept across the rotation
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    try:
        ok(get(g, "/r/old-before", old, conn=conn))        # now in this worker's cache
        ok(get(g, "/r/ec-before", new_ec, conn=conn))
        assert_invalid_token(get(g, "/r/new-before", new, conn=conn))

        # rotation: the same configuration text, a new keys file
        with open(keys_file, "w") as f:
            f.write(jwks(k["rsa2"].jwk(kid="k2"), k["p256"].jwk(kid="k3")))
        g.reload(wait=0)
        wait_log(g, "configuration reloaded", 1)
    finally:
        conn.close()
    for i in range(2):                      # the worker that cached the old token, twice
        assert_invalid_token(get(g, "/r/old-after%d" % i, old), "old key after rotation")
        ok(get(g, "/r/new-after%d" % i, new))
        ok(get(g, "/r/new-ec%d" % i, new_ec))

    # a broken keys file: check fails at the keys_file key, a reload keeps the running keys
    with open(keys_file, "w") as f:
        f.write('{"keys": [ {"kty": "RSA", "kid": "k2", "n": "%s"' % k["rsa2"].jwk()["n"][:40])
    with open(g.path) as f:
        text = f.read()
    rc, out, err = gh("check", "-c", g.path)
    assert rc == 1, out + err
    diags = diag_lines(out + err, g.path)
    assert any(at == pos(text, "keys_file") and keys_file in msg for at, msg in diags), (pos(text, "keys_file"),
                                                                                        out + err)
    g.reload(wait=0)
    wait_log(g, "reload failed", 1)
    assert pos(text, "keys_file") in g.stderr()
    ok(get(g, "/r/new-kept", new))
    assert_invalid_token(get(g, "/r/old-kept", old))
    assert g.stderr().count("configuration reloaded") == 1

    got = seen(up)
    assert [(r["target"], r["h"]["x-user-id"]) for r in got] == [
        ("/r/old-before", ["old"]), ("/r/ec-before", ["new-ec"]),
        ("/r/new-after0", ["new"]), ("/r/new-ec0", ["new-ec"]),
        ("/r/new-after1", ["new"]), ("/r/new-ec1", ["new-ec"]),
        ("/r/new-kept", ["new"])]


# ========================================================== config errors

BASE = 'listen: [ { address: "127.0.0.1:18080" } ]\nroutes:\n  - name: r\n    match: { prefix: /r }\n' \
       '    echo: {}\n    plugins:\n      jwt:\n        issuers:\n'


def check_text(tmp_path, text):
    path = str(tmp_path / "gatehouse.yaml")
    with open(path, "w") as f:
        f.write(text)
    rc, out, err = gh("check", "-c", path)
    return path, rc, out + err


def test_algorithms_none_is_a_config_error(tmp_path):
    text = BASE + '          - { issuer: internal, secret: "%s", algorithms: [none] }\n' % SECRET
    path, rc, output = check_text(tmp_path, text)
    assert rc == 1, output
    diags = diag_lines(output, path)
    # at the list or at its item
    assert any(at in (pos(text, "[none]"), pos(text, "none]"), pos(text, "algorithms")) and "none" in msg
               for at, msg in diags), output
    assert SECRET not in output


def test_check_errors_for_keys(tmp_path, keys):
    k = keys
    cases = [
        # (what, issuer line, needle, message regex)
        ("HS256 with an RSA key", '{ issuer: a, keys_file: "%s", algorithms: [HS256] }' % k["rsa1"].pub_path,
         "[HS256]", r"HS256"),
        ("missing keys file", '{ issuer: a, keys_file: "%s/nope.jwks" }' % k["dir"], "keys_file",
         r"nope\.jwks"),
        ("private key", '{ issuer: a, keys_file: "%s" }' % k["rsa1"].path, "keys_file", r"PRIVATE|public"),
        ("secret and keys_file", '{ issuer: a, keys_file: "%s", secret: "%s" }' % (k["rsa1"].pub_path, SECRET),
         "secret", r"exactly one"),
        ("bad secret_base64", '{ issuer: a, secret_base64: "***" }', '"***"', r"base64"),
    ]
    failures = []
    for what, line, needle, message in cases:
        text = BASE + "          - " + line + "\n"
        path, rc, output = check_text(tmp_path, text)
        diags = diag_lines(output, path)
        if rc != 1 or not any(at == pos(text, needle) and re.search(message, msg) for at, msg in diags):
            failures.append((what, rc, pos(text, needle), output))
        if SECRET in output:
            failures.append((what, "secret printed", output))
    assert failures == [], failures


# ================================================ weak secrets, required claims

def test_short_hmac_secrets_are_refused_at_load(tmp_path):
    # RFC 7518 3.2: an HMAC key at least as long as the hash, like short API
    # keys: `check` fails at the secret and says the minimum
    s32, s40 = "k" * 32, "k" * 40
    oct_jwks = str(tmp_path / "oct.json")
    with open(oct_jwks, "w") as f:
        f.write(jwks({"kty": "oct", "kid": "h", "k": b64u(b"short-oct-key")}))
    cases = [
        ('{ issuer: a, secret: "a" }', '"a"', r"1 byte long; HS256 needs at least 32 bytes"),
        ('{ issuer: a, secret: "%s" }' % s32[:-1], '"k', r"31 bytes long; HS256 needs at least 32 bytes"),
        # several HS algorithms allowed: checked against each
        ('{ issuer: a, secret: "%s", algorithms: [HS256, HS384] }' % s40, '"k',
         r"40 bytes long; HS384 needs at least 48 bytes"),
        ('{ issuer: a, secret: "%s", algorithms: [HS512] }' % s32, '"k', r"HS512 needs at least 64 bytes"),
        # by decoded length
        ('{ issuer: a, secret_base64: "%s" }' % base64.b64encode(b"x" * 24).decode(), '"eHh4',
         r"24 bytes long; HS256 needs at least 32"),
        # a JWKS oct key too, named by its place in the file
        ('{ issuer: a, keys_file: "%s" }' % oct_jwks, "keys_file", r"keys\[0\]: the secret is 13 bytes long"),
    ]
    failures = []
    for line, needle, message in cases:
        text = BASE + "          - " + line + "\n"
        path, rc, output = check_text(tmp_path, text)
        diags = diag_lines(output, path)
        if rc != 1 or not any(at == pos(text, needle) and re.search(message, msg) for at, msg in diags):
            failures.append((line, rc, pos(text, needle), output))
        if "kkkkkkkk" in output or "short-oct" in output:
            failures.append((line, "secret printed", output))
    assert failures == [], failures
    # long enough: accepted (and a 32-byte secret without algorithms serves HS256)
    for line in ('{ issuer: a, secret: "%s" }' % s32, '{ issuer: a, secret: "%s", algorithms: [HS256] }' % s32,
                 '{ issuer: a, secret: "%s", algorithms: [HS512] }' % SECRET):
        path, rc, output = check_text(tmp_path, BASE + "          - " + line + "\n")
        assert rc == 0, (line, output)


REQUIRE = """\
listen: [ { address: "127.0.0.1:{port}" } ]
routes:
  - name: r
    match: { prefix: /r }
    echo: {}
    plugins:
      jwt:
        require: [exp, jti]
        issuers: [ { issuer: internal, secret: "%s" } ]
  - name: any
    match: { prefix: /any }
    echo: {}
    plugins:
      jwt:
        issuers: [ { issuer: internal, secret: "%s" }, { issuer: other, secret: "%s" } ]
""" % (SECRET, SECRET, SECRET)


def test_required_claims_and_missing_iss(gatehouse):
    g = gatehouse(REQUIRE, workers=1)

    def detail(resp):
        assert_invalid_token(resp)
        ch = values(resp[1], "www-authenticate")[0]
        d = json.loads(resp[2])["detail"]
        assert ('error_description="%s"' % d.split(": ", 1)[1]) in ch, (d, ch)
        return d

    ok(get(g, "/r/x", hs(jti="t-1")))
    # each missing claim is named, after the signature was checked
    assert detail(get(g, "/r/x", hs(jti="t-1", exp=None))) == "invalid token: missing exp"
    assert detail(get(g, "/r/x", hs())) == "invalid token: missing jti"
    # a bad signature is reported as such, whatever the claims lack
    assert detail(get(g, "/r/x", hs(secret=SECRET[::-1], exp=None))) == "invalid token: invalid signature"
    # the issuers name one: a token without iss lacks it; another iss is wrong
    assert detail(get(g, "/r/x", hs(iss=None, jti="t-1"))) == "invalid token: missing iss"
    assert detail(get(g, "/any/x", hs(iss=None))) == "invalid token: missing iss"
    assert detail(get(g, "/any/x", hs(iss="elsewhere"))) == "invalid token: wrong issuer"
    ok(get(g, "/any/x", hs(iss="other", exp=None)))        # nothing required there


def test_require_list_is_checked_at_load(tmp_path):
    text = BASE.replace("        issuers:\n", "        require: [exp, exp]\n        issuers:\n") + \
        '          - { issuer: a, secret: "%s" }\n' % SECRET
    path, rc, output = check_text(tmp_path, text)
    assert rc == 1 and (pos(text, "exp]"), "claim 'exp' is listed twice") in diag_lines(output, path), output
    text = BASE.replace("        issuers:\n", "        require: [\"a\\\"b\"]\n        issuers:\n") + \
        '          - { issuer: a, secret: "%s" }\n' % SECRET
    path, rc, output = check_text(tmp_path, text)
    assert rc == 1 and any(at == pos(text, '"a') and msg.startswith("expected a claim name")
                           for at, msg in diag_lines(output, path)), output
