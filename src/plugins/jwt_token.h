/* jwt_token.h — JSON Web Tokens (RFC 7519, JWS RFC 7515, algorithms RFC
 * 7518 and RFC 8037): decode, verify the signature against a key set, check
 * the registered claims. Pure functions over bytes; no exchange, no
 * configuration, no clock of its own (the caller passes `now`). Fuzzed by
 * tests/fuzz/fuzz_jwt.c. The jwt plugin (plugins/jwt.c) is the only user.
 *
 * Trust rules kept here, in one place:
 *  - "none", unknown and disallowed algorithms are refused;
 *  - a key verifies only the algorithms of its type (a secret: HS*; RSA:
 *    RS* and PS*; P-256: ES256; P-384: ES384; Ed25519/Ed448: EdDSA), so an
 *    HS token is never checked with the bytes of an RSA public key;
 *  - a token naming a `kid` the set does not hold is refused;
 *  - an HMAC key verifies only the HS algorithms whose hash it is at least
 *    as long as (RFC 7518 3.2), and a key shorter than 32 bytes is refused;
 *  - sizes are bounded before anything is decoded. */
#ifndef GH_PLUGINS_JWT_TOKEN_H
#define GH_PLUGINS_JWT_TOKEN_H
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gh_jwt_alg {
    GH_JWT_HS256 = 1, GH_JWT_HS384, GH_JWT_HS512,
    GH_JWT_RS256, GH_JWT_RS384, GH_JWT_RS512,
    GH_JWT_PS256, GH_JWT_PS384, GH_JWT_PS512,
    GH_JWT_ES256, GH_JWT_ES384,
    GH_JWT_EDDSA,
    GH_JWT_ALG_END
};
#define GH_JWT_ALG_BIT(a) (1u << (a))
#define GH_JWT_ALGS_ALL (((1u << GH_JWT_ALG_END) - 1) & ~1u)

/* "RS256" -> GH_JWT_RS256; 0 when unknown (and for "none"). */
int gh_jwt_alg_from_name(const char *name, size_t len);
/* "unknown" for a value outside the enum. */
const char *gh_jwt_alg_name(int alg);
/* The shortest HMAC key an HS algorithm accepts: its hash size (RFC 7518
 * 3.2: 32, 48, 64 bytes); 0 for other algorithms. */
size_t gh_jwt_hmac_min(int alg);

/* Strict base64url without padding (RFC 7515 section 2), as in tokens and
 * JWKs: only A-Z a-z 0-9 - _, no '=', no whitespace, the unused bits of
 * the last character zero (one encoding per value). Decodes in[0, len)
 * into out (at most cap bytes); false when invalid or too long. */
bool gh_jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                          size_t *outlen);

/* Bounds: a longer token, or a longer encoded header, is malformed. */
#define GH_JWT_MAX_TOKEN 8192
#define GH_JWT_MAX_HEADER 1024

typedef struct gh_jwt_key {
    char *kid;                /* NULL when the key has none */
    int alg;                  /* the JWK's "alg" when given (the only one it verifies), else 0 */
    uint32_t algs;            /* GH_JWT_ALG_BIT of every algorithm its type can verify */
    EVP_PKEY *pkey;           /* public key; NULL for a secret */
    unsigned char *secret;    /* HMAC secret (HS*) */
    size_t secret_len;
} gh_jwt_key;

typedef struct gh_jwt_keyset {
    gh_jwt_key *keys;
    size_t n;
} gh_jwt_keyset;

/* Add keys from a PEM public key (or certificate) or a JWKS document
 * ({"keys":[...]} with RSA, EC P-256/P-384, OKP Ed25519/Ed448 and oct
 * keys), detected by content. false with a message in err (never key
 * material) on any problem; the set is then unchanged. */
bool gh_jwt_keys_add_text(gh_jwt_keyset *ks, const char *text, size_t len, char *err, size_t errlen);
bool gh_jwt_keys_add_file(gh_jwt_keyset *ks, const char *path, char *err, size_t errlen);
/* An HMAC secret (raw bytes). */
bool gh_jwt_keys_add_secret(gh_jwt_keyset *ks, const void *secret, size_t len, char *err, size_t errlen);
/* Union of the algorithms the keys can verify. */
uint32_t gh_jwt_keys_algs(const gh_jwt_keyset *ks);
void gh_jwt_keys_free(gh_jwt_keyset *ks);

enum gh_jwt_result {
    GH_JWT_OK = 0,
    GH_JWT_MALFORMED,         /* not header.payload.signature in base64url, bad JSON, too large */
    GH_JWT_BAD_ALG,           /* "none", unknown, or not among the allowed algorithms */
    GH_JWT_UNKNOWN_KID,       /* the token's kid is not in the key set */
    GH_JWT_NO_KEY,            /* no key of the set can verify this algorithm */
    GH_JWT_BAD_SIGNATURE,
    GH_JWT_EXPIRED,           /* exp + skew <= now */
    GH_JWT_NOT_YET_VALID,     /* nbf - skew > now */
    GH_JWT_BAD_IAT,           /* iat in the future beyond the skew, or not a number */
    GH_JWT_BAD_ISSUER,
    GH_JWT_BAD_AUDIENCE,
    GH_JWT_MISSING_CLAIM,     /* a required claim is absent: gh_jwt_missing_claim names it */
};
/* A short English reason for problem details and logs (never token bytes). */
const char *gh_jwt_result_text(int r);

typedef struct gh_jwt {
    int alg;                  /* enum gh_jwt_alg */
    json_t *header;           /* owned: the decoded JOSE header */
    json_t *claims;           /* owned: the decoded payload (an object) */
    const char *kid;          /* in header, or NULL */
    const char *iss;          /* in claims, or NULL */
    size_t signed_len;        /* bytes of "header.payload" (the signing input) */
    unsigned char sig[1024];  /* decoded signature (RSA up to 8192 bits) */
    size_t sig_len;
} gh_jwt;

/* Split and decode (no trust yet). On any result other than GH_JWT_OK
 * nothing is left to free. */
int gh_jwt_decode(const char *token, size_t len, gh_jwt *out);
/* Verify t's signature over token[0, t->signed_len) with a key of ks that
 * can verify t->alg, restricted to allowed (GH_JWT_ALG_BIT set). */
int gh_jwt_verify(const gh_jwt *t, const char *token, const gh_jwt_keyset *ks, uint32_t allowed);

typedef struct gh_jwt_policy {
    const char *issuer;       /* required `iss`, or NULL for any */
    const char *const *audiences;   /* `aud` (string or array) must hold one; none = not checked */
    size_t naudiences;
    int64_t skew_s;           /* clock skew tolerated on exp, nbf, iat */
    const char *const *require;   /* claims that must be present (jwt.require) */
    size_t nrequire;
} gh_jwt_policy;
/* Presence first (the policy's issuer requires `iss`, then `require` in
 * order), then exp, nbf, iat (numbers when present), iss, aud against the
 * policy at now. */
int gh_jwt_check_claims(const gh_jwt *t, const gh_jwt_policy *p, int64_t now_s);
/* The first claim the policy requires that t lacks, or NULL. */
const char *gh_jwt_missing_claim(const gh_jwt *t, const gh_jwt_policy *p);

void gh_jwt_clear(gh_jwt *t);

#endif
