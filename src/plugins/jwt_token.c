/* jwt_token.c — decode, verify and check JSON Web Tokens (see jwt_token.h).
 *
 * Decoding is strict and bounded: exactly three base64url parts, sizes
 * checked before anything is decoded, header and payload JSON objects
 * without duplicate names. Result codes where the RFCs leave a choice:
 *  - `alg` missing or not a string: MALFORMED; a string naming no
 *    supported algorithm ("none" included): BAD_ALG;
 *  - a `crit` header: MALFORMED (we implement no extension, and RFC 7515
 *    4.1.11 says a token demanding one must be refused);
 *  - an empty signature: MALFORMED (the unsecured form "h.p.");
 *  - exp or nbf not a number: MALFORMED; iat not a number: BAD_IAT (as
 *    the header documents).
 * Keys carried by the token itself (jwk, jku, x5u, x5c) are ignored: only
 * the caller's key set is trusted. */
#include "plugins/jwt_token.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <string.h>

/* ------------------------------------------------------------ algorithms */

enum { MD_NONE, MD_256, MD_384, MD_512 };
enum { FAM_HS, FAM_RS, FAM_PS, FAM_ES, FAM_ED };

static const struct alg_info {
    const char *name;
    unsigned char md, fam;
} algs[GH_JWT_ALG_END] = {
    [GH_JWT_HS256] = { "HS256", MD_256, FAM_HS },
    [GH_JWT_HS384] = { "HS384", MD_384, FAM_HS },
    [GH_JWT_HS512] = { "HS512", MD_512, FAM_HS },
    [GH_JWT_RS256] = { "RS256", MD_256, FAM_RS },
    [GH_JWT_RS384] = { "RS384", MD_384, FAM_RS },
    [GH_JWT_RS512] = { "RS512", MD_512, FAM_RS },
    [GH_JWT_PS256] = { "PS256", MD_256, FAM_PS },
    [GH_JWT_PS384] = { "PS384", MD_384, FAM_PS },
    [GH_JWT_PS512] = { "PS512", MD_512, FAM_PS },
    [GH_JWT_ES256] = { "ES256", MD_256, FAM_ES },
    [GH_JWT_ES384] = { "ES384", MD_384, FAM_ES },
    [GH_JWT_EDDSA] = { "EdDSA", MD_NONE, FAM_ED },
};

int gh_jwt_alg_from_name(const char *name, size_t len)
{
    for (int a = 1; name && a < GH_JWT_ALG_END; a++)
        if (strlen(algs[a].name) == len && memcmp(algs[a].name, name, len) == 0)
            return a;
    return 0;
}

const char *gh_jwt_alg_name(int alg)
{
    return alg > 0 && alg < GH_JWT_ALG_END ? algs[alg].name : "unknown";
}

size_t gh_jwt_hmac_min(int alg)
{
    static const size_t md_len[] = { [MD_256] = 32, [MD_384] = 48, [MD_512] = 64 };
    return alg > 0 && alg < GH_JWT_ALG_END && algs[alg].fam == FAM_HS ? md_len[algs[alg].md] : 0;
}

/* Fetched once: a per-call implicit fetch is a locked table lookup. */
static EVP_MD *mds[MD_512 + 1];
static EVP_MAC *hmac;
static CRYPTO_ONCE fetch_once = CRYPTO_ONCE_STATIC_INIT;

static void fetch_algs(void)
{
    mds[MD_256] = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    mds[MD_384] = EVP_MD_fetch(NULL, "SHA2-384", NULL);
    mds[MD_512] = EVP_MD_fetch(NULL, "SHA2-512", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* --------------------------------------------------------------- base64url */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

bool gh_jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                          size_t *outlen)
{
    size_t rem = len % 4, n = len / 4 * 3 + (rem ? rem - 1 : 0);
    if (rem == 1 || n > cap)
        return false;
    uint32_t v = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int d = b64val((unsigned char)in[i]);
        if (d < 0)
            return false;
        v = v << 6 | (uint32_t)d;
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(v >> 16);
            out[o++] = (unsigned char)(v >> 8);
            out[o++] = (unsigned char)v;
            v = 0;
        }
    }
    if (rem == 2) {             /* 12 bits: one byte and 4 unused */
        if (v & 0xf)
            return false;
        out[o++] = (unsigned char)(v >> 4);
    } else if (rem == 3) {      /* 18 bits: two bytes and 2 unused */
        if (v & 0x3)
            return false;
        out[o++] = (unsigned char)(v >> 10);
        out[o++] = (unsigned char)(v >> 2);
    }
    *outlen = o;
    return true;
}

/* ------------------------------------------------------------------ decode */

/* A base64url part holding a JSON object; NULL when it is anything else.
 * The buffer is sized by the token bound, so no allocation but jansson's. */
static json_t *load_object(const char *b64, size_t len)
{
    unsigned char buf[GH_JWT_MAX_TOKEN / 4 * 3];
    size_t n;
    if (!gh_jwt_b64url_decode(b64, len, buf, sizeof(buf), &n))
        return NULL;
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int decode_header(gh_jwt *t)
{
    const json_t *alg = json_object_get(t->header, "alg");
    if (!json_is_string(alg))
        return GH_JWT_MALFORMED;
    t->alg = gh_jwt_alg_from_name(json_string_value(alg), json_string_length(alg));
    if (!t->alg)
        return GH_JWT_BAD_ALG;
    if (json_object_get(t->header, "crit"))
        return GH_JWT_MALFORMED;
    const json_t *kid = json_object_get(t->header, "kid");
    if (kid && !json_is_string(kid))
        return GH_JWT_MALFORMED;
    t->kid = json_string_value(kid);
    return GH_JWT_OK;
}

int gh_jwt_decode(const char *token, size_t len, gh_jwt *out)
{
    out->alg = 0;
    out->header = out->claims = NULL;
    out->kid = out->iss = NULL;
    out->signed_len = out->sig_len = 0;
    if (!token || len > GH_JWT_MAX_TOKEN)
        return GH_JWT_MALFORMED;
    const char *end = token + len;
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return GH_JWT_MALFORMED;
    size_t hlen = (size_t)(d1 - token), slen = (size_t)(end - d2 - 1);
    if (hlen > GH_JWT_MAX_HEADER || !(out->header = load_object(token, hlen)))
        return GH_JWT_MALFORMED;
    int r = decode_header(out);
    if (r == GH_JWT_OK && !(out->claims = load_object(d1 + 1, (size_t)(d2 - d1 - 1))))
        r = GH_JWT_MALFORMED;
    if (r == GH_JWT_OK && (slen == 0 || !gh_jwt_b64url_decode(d2 + 1, slen, out->sig,
                                                              sizeof(out->sig), &out->sig_len)))
        r = GH_JWT_MALFORMED;
    if (r != GH_JWT_OK) {
        gh_jwt_clear(out);
        return r;
    }
    out->iss = json_string_value(json_object_get(out->claims, "iss"));
    out->signed_len = (size_t)(d2 - token);
    return GH_JWT_OK;
}

void gh_jwt_clear(gh_jwt *t)
{
    json_decref(t->header);
    json_decref(t->claims);
    t->header = t->claims = NULL;
    t->kid = t->iss = NULL;
    t->alg = 0;
}

/* ------------------------------------------------------------------ verify */

static bool verify_hmac(const struct alg_info *a, const gh_jwt_key *k, const gh_jwt *t,
                        const char *token)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    const EVP_MD *md = mds[a->md];
    if (!md || !hmac)
        return false;
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(hmac);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0),
        OSSL_PARAM_construct_end(),
    };
    bool ok = c && EVP_MAC_init(c, k->secret, k->secret_len, params) == 1
              && EVP_MAC_update(c, (const unsigned char *)token, t->signed_len) == 1
              && EVP_MAC_final(c, mac, &maclen, sizeof(mac)) == 1
              && maclen == t->sig_len && CRYPTO_memcmp(mac, t->sig, maclen) == 0;
    EVP_MAC_CTX_free(c);
    return ok;
}

/* JWS carries ECDSA signatures as raw r||s (RFC 7518 3.4); OpenSSL wants
 * DER. The length is fixed by the curve: anything else is refused. */
static size_t ecdsa_to_der(const unsigned char *raw, size_t half, unsigned char *der, size_t cap)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)half, NULL), *sv = BN_bin2bn(raw + half, (int)half, NULL);
    if (!s || !r || !sv) {
        ECDSA_SIG_free(s);
        BN_free(r);
        BN_free(sv);
        return 0;
    }
    ECDSA_SIG_set0(s, r, sv);
    int n = i2d_ECDSA_SIG(s, NULL);
    unsigned char *p = der;
    if (n <= 0 || (size_t)n > cap || i2d_ECDSA_SIG(s, &p) != n)
        n = 0;
    ECDSA_SIG_free(s);
    return (size_t)n;
}

/* The key's type must match the family (keys.c sets algs accordingly; this
 * is a second lock should a caller fill a key by hand). */
static bool pkey_fits(const struct alg_info *a, EVP_PKEY *pkey)
{
    int id = EVP_PKEY_get_base_id(pkey);
    switch (a->fam) {
    case FAM_RS:
    case FAM_PS:
        return id == EVP_PKEY_RSA;
    case FAM_ES:
        return id == EVP_PKEY_EC && EVP_PKEY_get_bits(pkey) == (a->md == MD_256 ? 256 : 384);
    default:
        return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448;
    }
}

static bool verify_pkey(const struct alg_info *a, EVP_PKEY *pkey, const gh_jwt *t,
                        const char *token)
{
    const unsigned char *sig = t->sig;
    size_t siglen = t->sig_len;
    unsigned char der[128];
    const EVP_MD *md = mds[a->md];
    if (!pkey_fits(a, pkey) || (a->md != MD_NONE && !md))
        return false;
    if (a->fam == FAM_ES) {
        size_t half = a->md == MD_256 ? 32 : 48;
        if (siglen != 2 * half || !(siglen = ecdsa_to_der(t->sig, half, der, sizeof(der))))
            return false;
        sig = der;
    }
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    bool ok = c && EVP_DigestVerifyInit(c, &pc, md, NULL, pkey) == 1;
    if (ok && a->fam == FAM_PS)   /* RFC 7518 3.5: MGF1 and salt length from the same hash */
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1
             && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1
             && EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) == 1;
    ok = ok && EVP_DigestVerify(c, sig, siglen, (const unsigned char *)token, t->signed_len) == 1;
    EVP_MD_CTX_free(c);
    return ok;
}

static bool verify_with(int alg, const gh_jwt_key *k, const gh_jwt *t, const char *token)
{
    const struct alg_info *a = &algs[alg];
    if (a->fam == FAM_HS)   /* only ever a secret: never the bytes of a public key */
        return k->secret && k->secret_len && verify_hmac(a, k, t, token);
    return k->pkey && verify_pkey(a, k->pkey, t, token);
}

int gh_jwt_verify(const gh_jwt *t, const char *token, const gh_jwt_keyset *ks, uint32_t allowed)
{
    if (!t->header || t->alg <= 0 || t->alg >= GH_JWT_ALG_END)
        return GH_JWT_MALFORMED;
    uint32_t bit = GH_JWT_ALG_BIT(t->alg);
    if (!(allowed & bit))
        return GH_JWT_BAD_ALG;
    CRYPTO_THREAD_run_once(&fetch_once, fetch_algs);
    bool kid_seen = false, tried = false, ok = false;
    /* failed verifications queue errors that a later SSL_get_error on this
     * thread would misread */
    ERR_set_mark();
    /* A token's kid picks the keys that carry it; when none does, the keys
     * that carry no kid at all (a PEM key cannot) are the candidates. */
    for (int pass = 0; pass < 2 && !ok; pass++) {
        if (pass == 1 && (!t->kid || kid_seen))
            break;
        for (size_t i = 0; ks && i < ks->n && !ok; i++) {
            const gh_jwt_key *k = &ks->keys[i];
            if (t->kid && pass == 0) {
                if (!k->kid || strcmp(k->kid, t->kid) != 0)
                    continue;
                kid_seen = true;
            } else if (t->kid && k->kid) {
                continue;
            }
            if (!(k->algs & bit) || (k->alg && k->alg != t->alg))
                continue;
            tried = true;
            ok = verify_with(t->alg, k, t, token);
        }
    }
    ERR_pop_to_mark();
    if (ok)
        return GH_JWT_OK;
    if (t->kid && !kid_seen && !tried)
        return GH_JWT_UNKNOWN_KID;
    return tried ? GH_JWT_BAD_SIGNATURE : GH_JWT_NO_KEY;
}

/* ------------------------------------------------------------------ claims */

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* Sign of now - (claim + delta): exact for integer claims, saturating at
 * the int64 limits; in double for real ones (RFC 7519 NumericDate may be
 * fractional). */
static int time_cmp(int64_t now, const json_t *claim, int64_t delta)
{
    if (json_is_integer(claim)) {
        int64_t c = sat_add((int64_t)json_integer_value(claim), delta);
        return (now > c) - (now < c);
    }
    double c = json_real_value(claim) + (double)delta, n = (double)now;
    return (n > c) - (n < c);
}

static bool str_is(const json_t *j, const char *s)
{
    return json_is_string(j) && json_string_length(j) == strlen(s)
           && memcmp(json_string_value(j), s, json_string_length(j)) == 0;
}

static bool audience_ok(const json_t *aud, const gh_jwt_policy *p)
{
    for (size_t i = 0; i < p->naudiences; i++) {
        if (str_is(aud, p->audiences[i]))
            return true;
        size_t k;
        json_t *v;
        json_array_foreach(aud, k, v)
            if (str_is(v, p->audiences[i]))
                return true;
    }
    return false;
}

const char *gh_jwt_missing_claim(const gh_jwt *t, const gh_jwt_policy *p)
{
    if (!p || !t->claims)
        return NULL;
    if (p->issuer && !json_object_get(t->claims, "iss"))
        return "iss";
    for (size_t i = 0; i < p->nrequire; i++)
        if (!json_object_get(t->claims, p->require[i]))
            return p->require[i];
    return NULL;
}

int gh_jwt_check_claims(const gh_jwt *t, const gh_jwt_policy *p, int64_t now_s)
{
    static const gh_jwt_policy none = { 0 };
    if (!p)
        p = &none;
    if (gh_jwt_missing_claim(t, p))
        return GH_JWT_MISSING_CLAIM;
    int64_t skew = p->skew_s > 0 ? p->skew_s : 0;
    const json_t *exp = json_object_get(t->claims, "exp");
    const json_t *nbf = json_object_get(t->claims, "nbf");
    const json_t *iat = json_object_get(t->claims, "iat");
    if (!t->claims || (exp && !json_is_number(exp)) || (nbf && !json_is_number(nbf)))
        return GH_JWT_MALFORMED;
    if (iat && !json_is_number(iat))
        return GH_JWT_BAD_IAT;
    if (exp && time_cmp(now_s, exp, skew) >= 0)
        return GH_JWT_EXPIRED;
    if (nbf && time_cmp(now_s, nbf, -skew) < 0)
        return GH_JWT_NOT_YET_VALID;
    if (iat && time_cmp(now_s, iat, -skew) < 0)
        return GH_JWT_BAD_IAT;
    if (p->issuer && !str_is(json_object_get(t->claims, "iss"), p->issuer))
        return GH_JWT_BAD_ISSUER;
    if (p->naudiences && !audience_ok(json_object_get(t->claims, "aud"), p))
        return GH_JWT_BAD_AUDIENCE;
    return GH_JWT_OK;
}

const char *gh_jwt_result_text(int r)
{
    static const char *const texts[] = {
        [GH_JWT_OK] = "valid",
        [GH_JWT_MALFORMED] = "malformed token",
        [GH_JWT_BAD_ALG] = "algorithm not allowed",
        [GH_JWT_UNKNOWN_KID] = "unknown key id",
        [GH_JWT_NO_KEY] = "no key for the token's algorithm",
        [GH_JWT_BAD_SIGNATURE] = "invalid signature",
        [GH_JWT_EXPIRED] = "token expired",
        [GH_JWT_NOT_YET_VALID] = "token not yet valid",
        [GH_JWT_BAD_IAT] = "token issued in the future (or bad iat)",
        [GH_JWT_BAD_ISSUER] = "wrong issuer",
        [GH_JWT_BAD_AUDIENCE] = "wrong audience",
        [GH_JWT_MISSING_CLAIM] = "a required claim is missing",
    };
    if (r < 0 || (size_t)r >= sizeof(texts) / sizeof(texts[0]))
        return "unknown error";
    return texts[r];
}
