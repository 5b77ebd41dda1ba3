"""Helpers for test_jwt.py: JSON Web Tokens made outside the gateway.

Keys come from `openssl genpkey` (RSA 2048, EC P-256 and P-384, Ed25519);
signatures from the openssl command line:
  RS256/384/512  openssl dgst -shaN -sign key.pem
  PS256          ... -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest
  ES256/ES384    openssl dgst -shaN -sign key.pem, whose DER ECDSA-Sig-Value
                 (SEQUENCE of two INTEGERs) is turned into raw r||s here
  EdDSA          openssl pkeyutl -sign -rawin -inkey ed.pem
HS256/384/512 with Python's hmac. Public JWKs are built from the DER
SubjectPublicKeyInfo (`openssl pkey -pubout -outform DER`): the modulus of
an RSA key from `openssl rsa -pubin -modulus`, the uncompressed EC point
and the Ed25519 key from the end of the DER.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import time


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    r = subprocess.run(["openssl"] + list(args), input=data, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r.stdout


# ------------------------------------------------------------------ keys

class Key:
    """A private key on disk (PEM) and its public forms."""

    GENPKEY = {
        "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "ed25519": ["-algorithm", "ED25519"],
    }

    def __init__(self, directory, name, kind):
        self.kind = kind
        self.path = os.path.join(directory, name + ".pem")
        self.pub_path = os.path.join(directory, name + ".pub.pem")
        openssl("genpkey", *self.GENPKEY[kind], "-out", self.path)
        openssl("pkey", "-in", self.path, "-pubout", "-out", self.pub_path)
        with open(self.pub_path, "rb") as f:
            self.pub_pem = f.read()
        self.pub_der = openssl("pkey", "-in", self.path, "-pubout", "-outform", "DER")

    def jwk(self, kid=None, alg=None, use=None):
        if self.kind == "rsa":
            out = openssl("rsa", "-pubin", "-in", self.pub_path, "-modulus", "-noout").decode().strip()
            assert out.startswith("Modulus="), out
            n = bytes.fromhex(out[len("Modulus="):])
            k = {"kty": "RSA", "n": b64u(n), "e": b64u(b"\x01\x00\x01")}
        elif self.kind in ("p256", "p384"):
            size = 32 if self.kind == "p256" else 48
            point = self.pub_der[-(1 + 2 * size):]
            assert point[0] == 4, "not an uncompressed point"
            k = {"kty": "EC", "crv": "P-256" if size == 32 else "P-384",
                 "x": b64u(point[1:1 + size]), "y": b64u(point[1 + size:])}
        else:
            k = {"kty": "OKP", "crv": "Ed25519", "x": b64u(self.pub_der[-32:])}
        if kid is not None:
            k["kid"] = kid
        if alg is not None:
            k["alg"] = alg
        if use is not None:
            k["use"] = use
        return k


def jwks(*jwk_list):
    return json.dumps({"keys": list(jwk_list)}, indent=2)


# ------------------------------------------------------------ signatures

def der_ecdsa_to_raw(der, size):
    """ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r||s, each
    left-padded to the curve size (RFC 7518 3.4)."""
    def length(buf, i):
        n = buf[i]
        i += 1
        if n & 0x80:
            k = n & 0x7f
            n = int.from_bytes(buf[i:i + k], "big")
            i += k
        return n, i

    assert der[0] == 0x30, der.hex()
    total, i = length(der, 1)
    assert i + total == len(der), der.hex()
    out = b""
    for _ in range(2):
        assert der[i] == 0x02, der.hex()
        n, i = length(der, i + 1)
        v = der[i:i + n].lstrip(b"\x00")
        i += n
        assert len(v) <= size
        out += v.rjust(size, b"\x00")
    return out


def sign(alg, signing_input, key=None, secret=None, der_ecdsa=False):
    """The JWS signature bytes of signing_input (bytes) for alg."""
    if alg.startswith("HS"):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return hmac.new(secret if isinstance(secret, bytes) else secret.encode(), signing_input, digest).digest()
    bits = alg[2:]
    if alg.startswith("RS"):
        return openssl("dgst", "-sha" + bits, "-sign", key.path, data=signing_input)
    if alg.startswith("PS"):
        return openssl("dgst", "-sha" + bits, "-sigopt", "rsa_padding_mode:pss", "-sigopt",
                       "rsa_pss_saltlen:digest", "-sign", key.path, data=signing_input)
    if alg.startswith("ES"):
        der = openssl("dgst", "-sha" + bits, "-sign", key.path, data=signing_input)
        return der if der_ecdsa else der_ecdsa_to_raw(der, 32 if bits == "256" else 48)
    if alg == "EdDSA":
        d = os.path.dirname(key.path)
        path = os.path.join(d, "msg-%d-%d" % (os.getpid(), time.monotonic_ns()))
        with open(path, "wb") as f:
            f.write(signing_input)
        try:
            return openssl("pkeyutl", "-sign", "-rawin", "-inkey", key.path, "-in", path)
        finally:
            os.unlink(path)
    raise ValueError(alg)


def make_token(claims, alg="RS256", key=None, secret=None, kid=None, header=None, der_ecdsa=False,
               sign_alg=None):
    """A compact JWS. `header` replaces the default {"alg", "typ"[, "kid"]};
    `sign_alg` signs with another algorithm than the header names."""
    if header is None:
        header = {"alg": alg, "typ": "JWT"}
        if kid is not None:
            header["kid"] = kid
    h = b64u(json.dumps(header, separators=(",", ":")))
    p = b64u(claims if isinstance(claims, (bytes, str)) else json.dumps(claims, separators=(",", ":")))
    signing_input = (h + "." + p).encode()
    sig = sign(sign_alg or alg, signing_input, key=key, secret=secret, der_ecdsa=der_ecdsa)
    return h + "." + p + "." + b64u(sig)


def claims(**kw):
    """Typical claims: exp in an hour, iat now; None values are left out."""
    now = int(time.time())
    c = {"iat": now, "exp": now + 3600}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def bearer(token):
    return {"Authorization": "Bearer " + token}
