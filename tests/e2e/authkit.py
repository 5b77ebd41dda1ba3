"""Helpers for test_auth.py: password hashes made outside the gateway, raw
HTTP exchanges that keep repeated response headers, and what the recording
upstream saw.

Hashes: argon2id with the `argon2` command line (Debian package `argon2`),
bcrypt / sha512-crypt / yescrypt with libcrypt (Python's `crypt` module,
and libxcrypt's crypt_gensalt through ctypes for yescrypt, which `crypt`
cannot salt), sha256-crypt with `openssl passwd -5`.
"""
import base64
import ctypes
import ctypes.util
import http.client
import shutil
import subprocess
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated in 3.11, removed in 3.13


# ---------------------------------------------------------------- hashes

def argon2id(password, t=2, m=12, salt="gatehouse-salt"):
    """An encoded argon2id hash ($argon2id$v=19$m=...); m is log2 KiB."""
    if shutil.which("argon2") is None:
        pytest.fail("the argon2 command line is missing: apt-get install -y argon2")
    r = subprocess.run(["argon2", salt, "-id", "-t", str(t), "-m", str(m), "-e"],
                       input=password.encode(), capture_output=True, check=True)
    out = r.stdout.decode().strip()
    assert out.startswith("$argon2id$"), out
    return out


def bcrypt(password):
    # rounds=16 is cost 4: the cheapest bcrypt, the tests need no more
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


def sha512_crypt(password):
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def sha256_crypt(password):
    r = subprocess.run(["openssl", "passwd", "-5", "-stdin"], input=password.encode(),
                       capture_output=True, check=True)
    return r.stdout.decode().strip()


def yescrypt(password):
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    salt = lib.crypt_gensalt(b"$y$", 0, None, 0)
    assert salt and salt.startswith(b"$y$"), salt
    return crypt.crypt(password, salt.decode())


HASHERS = {
    "argon2id": argon2id,
    "bcrypt": bcrypt,
    "sha256crypt": sha256_crypt,
    "sha512crypt": sha512_crypt,
    "yescrypt": yescrypt,
}
PREFIXES = {"argon2id": "$argon2id$", "bcrypt": "$2b$", "sha256crypt": "$5$", "sha512crypt": "$6$",
            "yescrypt": "$y$"}


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


# ------------------------------------------------------------ exchanges

def req(port, method, path, headers=None, body=None, timeout=10, conn=None):
    """(status, [(lower-case name, value)...] in order, body): repeated
    headers (WWW-Authenticate) stay visible. With conn, that keep-alive
    connection is used (and left open)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r.status, [(k.lower(), v) for k, v in r.getheaders()], data


def values(hdrs, name):
    return [v for k, v in hdrs if k == name.lower()]


# --------------------------------------------------------- the upstream

def seen(up):
    """The recorded requests, each {"target", "method", "h": {lower name: [values]}, "body_len"}."""
    out = []
    for r in up.requests():
        h = {}
        for k, v in r["headers"]:
            h.setdefault(k.lower(), []).append(v)
        out.append({"target": r["target"], "method": r["method"], "h": h, "body_len": r["body_len"]})
    return out


def consumer_headers(rec):
    """Every X-Consumer* header the upstream got, {lower name: [values]}."""
    return {k: v for k, v in rec["h"].items() if k.startswith("x-consumer")}
