/* jwt_keys.c — key sets for jwt_token.h, built at configuration time from
 * PEM public keys or certificates, JWKS documents (RFC 7517/7518/8037) and
 * raw HMAC secrets. Each key is tagged with the algorithms its type can
 * verify; that tag is what keeps an RSA key from ever serving as an HMAC
 * secret. A document is loaded whole or not at all, and error messages
 * name places (block, index, member), never key bytes. An HMAC key is
 * tagged with the HS algorithms it is long enough for (RFC 7518 3.2: at
 * least the hash size), and one too short for any of them is refused:
 * inline secrets and JWKS "oct" keys alike. */
#include "plugins/jwt_token.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (1u << 20)
#define RSA_ALGS (GH_JWT_ALG_BIT(GH_JWT_RS256) | GH_JWT_ALG_BIT(GH_JWT_RS384) \
                  | GH_JWT_ALG_BIT(GH_JWT_RS512) | GH_JWT_ALG_BIT(GH_JWT_PS256) \
                  | GH_JWT_ALG_BIT(GH_JWT_PS384) | GH_JWT_ALG_BIT(GH_JWT_PS512))
#define HS_ALGS (GH_JWT_ALG_BIT(GH_JWT_HS256) | GH_JWT_ALG_BIT(GH_JWT_HS384) \
                 | GH_JWT_ALG_BIT(GH_JWT_HS512))

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The HS algorithms a key of len bytes may verify; false with a message
 * when it is too short for alg (0: for any of them). */
static bool hmac_algs(size_t len, int alg, uint32_t *out, const char *where, char *err, size_t errlen)
{
    int need = alg ? alg : GH_JWT_HS256;
    if (len < gh_jwt_hmac_min(need)) {
        seterr(err, errlen, "%s%sthe secret is %zu byte%s long; %s needs at least %zu bytes (RFC 7518 3.2)", where,
               where[0] ? ": " : "", len, len == 1 ? "" : "s", gh_jwt_alg_name(need), gh_jwt_hmac_min(need));
        return false;
    }
    *out = 0;
    for (int a = GH_JWT_HS256; a <= GH_JWT_HS512; a++)
        if (len >= gh_jwt_hmac_min(a))
            *out |= GH_JWT_ALG_BIT(a);
    return true;
}

static void key_free(gh_jwt_key *k)
{
    free(k->kid);
    EVP_PKEY_free(k->pkey);
    if (k->secret)
        OPENSSL_cleanse(k->secret, k->secret_len);
    free(k->secret);
}

/* Appends to the set; on failure frees the keys and leaves the set as it was. */
static bool commit(gh_jwt_keyset *ks, gh_jwt_key *add, size_t n, char *err, size_t errlen)
{
    gh_jwt_key *v = realloc(ks->keys, (ks->n + n) * sizeof(*v));
    if (!v) {
        for (size_t i = 0; i < n; i++)
            key_free(&add[i]);
        seterr(err, errlen, "out of memory");
        return false;
    }
    memcpy(v + ks->n, add, n * sizeof(*v));
    ks->keys = v;
    ks->n += n;
    return true;
}

/* The algorithms a public key can verify; 0 with a message for a key we
 * refuse (type, size, curve, or one that fails OpenSSL's public check). */
static uint32_t pkey_algs(EVP_PKEY *pkey, const char *where, char *err, size_t errlen)
{
    uint32_t a = 0;
    int bits = EVP_PKEY_get_bits(pkey);
    char group[32] = "";
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        /* the upper bound is the room for a signature in gh_jwt */
        if (bits < 2048 || bits > 8192) {
            seterr(err, errlen, "%s: an RSA key of %d bits (2048 to 8192 are accepted)", where, bits);
            return 0;
        }
        a = RSA_ALGS;
        break;
    case EVP_PKEY_EC:
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL);
        if (strcmp(group, "prime256v1") == 0)
            a = GH_JWT_ALG_BIT(GH_JWT_ES256);
        else if (strcmp(group, "secp384r1") == 0)
            a = GH_JWT_ALG_BIT(GH_JWT_ES384);
        else {
            seterr(err, errlen, "%s: EC curve %s is not supported (P-256, P-384 are)", where,
                   group[0] ? group : "(explicit)");
            return 0;
        }
        break;
    case EVP_PKEY_ED25519:
    case EVP_PKEY_ED448:
        a = GH_JWT_ALG_BIT(GH_JWT_EDDSA);
        break;
    default:
        seterr(err, errlen, "%s: unsupported key type (RSA, EC, Ed25519, Ed448 are)", where);
        return 0;
    }
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = c && EVP_PKEY_public_check(c) == 1;
    EVP_PKEY_CTX_free(c);
    if (!ok) {
        seterr(err, errlen, "%s: the public key is not valid", where);
        return 0;
    }
    return a;
}

/* ------------------------------------------------------------------- PEM */

static EVP_PKEY *pem_block_key(const char *name, const unsigned char *der, long len,
                               const char *where, char *err, size_t errlen)
{
    EVP_PKEY *pkey = NULL;
    if (strcmp(name, PEM_STRING_PUBLIC) == 0) {
        pkey = d2i_PUBKEY(NULL, &der, len);
    } else if (strcmp(name, PEM_STRING_X509) == 0) {
        X509 *x = d2i_X509(NULL, &der, len);
        pkey = x ? X509_get_pubkey(x) : NULL;
        X509_free(x);
    } else {
        seterr(err, errlen, "%s: a \"%.40s\" block; expected PUBLIC KEY or CERTIFICATE%s", where,
               name, strstr(name, "PRIVATE") ? " (give the public key, not the private one)" : "");
        return NULL;
    }
    if (!pkey)
        seterr(err, errlen, "%s: cannot decode the %s", where, name);
    return pkey;
}

static bool add_pem(gh_jwt_keyset *ks, const char *text, size_t len, char *err, size_t errlen)
{
    if (len > INT_MAX) {
        seterr(err, errlen, "too large");
        return false;
    }
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    gh_jwt_key *keys = NULL;
    size_t n = 0;
    bool ok = bio != NULL;
    char *name = NULL, *hdr = NULL, where[48];
    unsigned char *der = NULL;
    long dlen;
    ERR_set_mark();
    while (ok && PEM_read_bio(bio, &name, &hdr, &der, &dlen) == 1) {
        snprintf(where, sizeof(where), "PEM block %zu", n + 1);
        gh_jwt_key k = { 0 };
        ok = (k.pkey = pem_block_key(name, der, dlen, where, err, errlen))
             && (k.algs = pkey_algs(k.pkey, where, err, errlen));
        gh_jwt_key *v = ok ? realloc(keys, (n + 1) * sizeof(*v)) : NULL;
        if (v) {
            keys = v;
            keys[n++] = k;
        } else {
            if (ok)
                seterr(err, errlen, "out of memory");
            ok = false;
            EVP_PKEY_free(k.pkey);
        }
        OPENSSL_free(name);
        OPENSSL_free(hdr);
        OPENSSL_free(der);
    }
    /* PEM_read_bio stops with "no start line" at the end, with another
     * error on a broken block */
    unsigned long e = ERR_peek_last_error();
    if (ok && (n == 0 || ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)) {
        seterr(err, errlen, "PEM block %zu: cannot be decoded", n + 1);
        ok = false;
    }
    ERR_pop_to_mark();
    BIO_free(bio);
    if (ok)
        ok = commit(ks, keys, n, err, errlen);
    else
        for (size_t i = 0; i < n; i++)
            key_free(&keys[i]);
    free(keys);
    return ok;
}

/* ------------------------------------------------------------------ JWKS */

/* A base64url member of a JWK, decoded into a new buffer. */
static unsigned char *b64_member(const json_t *jwk, const char *member, size_t *n,
                                 const char *where, char *err, size_t errlen)
{
    const json_t *v = json_object_get(jwk, member);
    if (!json_is_string(v)) {
        seterr(err, errlen, "%s: \"%s\" must be a base64url string", where, member);
        return NULL;
    }
    size_t cap = json_string_length(v) / 4 * 3 + 2;
    unsigned char *out = malloc(cap);
    if (out && gh_jwt_b64url_decode(json_string_value(v), json_string_length(v), out, cap, n))
        return out;
    free(out);
    seterr(err, errlen, "%s: \"%s\" is not valid base64url", where, member);
    return NULL;
}

static EVP_PKEY *from_params(const char *type, const OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!c || EVP_PKEY_fromdata_init(c) != 1
        || EVP_PKEY_fromdata(c, &pkey, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(c);
    return pkey;
}

static EVP_PKEY *jwk_rsa(const json_t *jwk, const char *where, char *err, size_t errlen)
{
    size_t nn = 0, ne = 0;
    unsigned char *n = b64_member(jwk, "n", &nn, where, err, errlen);
    unsigned char *e = n ? b64_member(jwk, "e", &ne, where, err, errlen) : NULL;
    BIGNUM *bn = e ? BN_bin2bn(n, (int)nn, NULL) : NULL, *be = e ? BN_bin2bn(e, (int)ne, NULL) : NULL;
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pkey = NULL;
    if (bn && be && b && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn)
        && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be)
        && (params = OSSL_PARAM_BLD_to_param(b)))
        pkey = from_params("RSA", params);
    if (e && !pkey)
        seterr(err, errlen, "%s: not a usable RSA public key", where);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *jwk_ec(const json_t *jwk, const char *crv, const char *where, char *err,
                        size_t errlen)
{
    size_t clen = strcmp(crv, "P-256") == 0 ? 32 : strcmp(crv, "P-384") == 0 ? 48 : 0;
    if (!clen) {
        seterr(err, errlen, "%s: EC curve \"%.20s\" is not supported (P-256, P-384 are)", where, crv);
        return NULL;
    }
    size_t nx = 0, ny = 0;
    unsigned char *x = b64_member(jwk, "x", &nx, where, err, errlen);
    unsigned char *y = x ? b64_member(jwk, "y", &ny, where, err, errlen) : NULL;
    EVP_PKEY *pkey = NULL;
    if (y && (nx != clen || ny != clen)) {   /* RFC 7518 6.2.1.2: full length */
        seterr(err, errlen, "%s: \"x\" and \"y\" must be %zu bytes for %s", where, clen, crv);
    } else if (y) {
        unsigned char pub[1 + 2 * 48];
        pub[0] = 0x04;   /* uncompressed point */
        memcpy(pub + 1, x, clen);
        memcpy(pub + 1 + clen, y, clen);
        const OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                             clen == 32 ? "prime256v1" : "secp384r1", 0),
            OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * clen),
            OSSL_PARAM_construct_end(),
        };
        if (!(pkey = from_params("EC", params)))
            seterr(err, errlen, "%s: the point is not on %s", where, crv);
    }
    free(x);
    free(y);
    return pkey;
}

static EVP_PKEY *jwk_okp(const json_t *jwk, const char *crv, const char *where, char *err,
                         size_t errlen)
{
    bool ed448 = strcmp(crv, "Ed448") == 0;
    if (!ed448 && strcmp(crv, "Ed25519") != 0) {
        seterr(err, errlen, "%s: OKP curve \"%.20s\" is not supported (Ed25519, Ed448 are)", where, crv);
        return NULL;
    }
    size_t nx = 0, want = ed448 ? 57 : 32;
    unsigned char *x = b64_member(jwk, "x", &nx, where, err, errlen);
    EVP_PKEY *pkey = NULL;
    if (x && nx != want)
        seterr(err, errlen, "%s: \"x\" must be %zu bytes for %s", where, want, crv);
    else if (x && !(pkey = EVP_PKEY_new_raw_public_key(ed448 ? EVP_PKEY_ED448 : EVP_PKEY_ED25519,
                                                        NULL, x, nx)))
        seterr(err, errlen, "%s: not a usable %s key", where, crv);
    free(x);
    return pkey;
}

static const char *opt_string(const json_t *jwk, const char *member, bool *ok, const char *where,
                              char *err, size_t errlen)
{
    const json_t *v = json_object_get(jwk, member);
    if (v && !json_is_string(v)) {
        seterr(err, errlen, "%s: \"%s\" must be a string", where, member);
        *ok = false;
    }
    return json_string_value(v);
}

/* One JWK into k. *skip when it is not for signatures ("use" other than "sig"). */
static bool jwk_key(const json_t *jwk, const char *where, gh_jwt_key *k, bool *skip, char *err,
                    size_t errlen)
{
    bool ok = json_is_object(jwk);
    if (!ok) {
        seterr(err, errlen, "%s: not an object", where);
        return false;
    }
    const char *use = opt_string(jwk, "use", &ok, where, err, errlen);
    const char *kty = opt_string(jwk, "kty", &ok, where, err, errlen);
    const char *kid = opt_string(jwk, "kid", &ok, where, err, errlen);
    const char *alg = opt_string(jwk, "alg", &ok, where, err, errlen);
    const char *crv = opt_string(jwk, "crv", &ok, where, err, errlen);
    if (!ok)
        return false;
    if ((*skip = use && strcmp(use, "sig") != 0))
        return true;
    if (!kty) {
        seterr(err, errlen, "%s: \"kty\" is missing", where);
        return false;
    }
    if (alg && !(k->alg = gh_jwt_alg_from_name(alg, strlen(alg)))) {
        seterr(err, errlen, "%s: unknown \"alg\" \"%.20s\"", where, alg);
        return false;
    }
    if (strcmp(kty, "oct") == 0) {
        if (!(k->secret = b64_member(jwk, "k", &k->secret_len, where, err, errlen)))
            return false;
        k->algs = HS_ALGS;
        if (!k->secret_len) {
            seterr(err, errlen, "%s: the secret \"k\" is empty", where);
            return false;
        }
        /* (an "alg" of another family is refused below) */
        if ((!k->alg || (HS_ALGS & GH_JWT_ALG_BIT(k->alg)))
            && !hmac_algs(k->secret_len, k->alg, &k->algs, where, err, errlen))
            return false;
    } else {
        bool rsa = strcmp(kty, "RSA") == 0, ec = strcmp(kty, "EC") == 0, okp = strcmp(kty, "OKP") == 0;
        if (!rsa && !ec && !okp) {
            seterr(err, errlen, "%s: unsupported \"kty\" \"%.20s\"", where, kty);
            return false;
        }
        if (!rsa && !crv) {
            seterr(err, errlen, "%s: \"crv\" is missing", where);
            return false;
        }
        k->pkey = rsa ? jwk_rsa(jwk, where, err, errlen) : ec ? jwk_ec(jwk, crv, where, err, errlen)
                                                         : jwk_okp(jwk, crv, where, err, errlen);
        if (!k->pkey || !(k->algs = pkey_algs(k->pkey, where, err, errlen)))
            return false;
    }
    if (k->alg && !(k->algs & GH_JWT_ALG_BIT(k->alg))) {
        seterr(err, errlen, "%s: \"alg\" %s does not fit a key of kty %s", where,
               gh_jwt_alg_name(k->alg), kty);
        return false;
    }
    if (kid && !(k->kid = strdup(kid))) {
        seterr(err, errlen, "out of memory");
        return false;
    }
    return true;
}

static bool add_json(gh_jwt_keyset *ks, const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        /* je.text may quote the input, which may be a secret */
        seterr(err, errlen, "invalid JSON at line %d, column %d", je.line, je.column);
        return false;
    }
    const json_t *list = json_object_get(root, "keys");
    bool single = !list && json_object_get(root, "kty");   /* a bare JWK */
    bool ok = single || json_is_array(list);
    size_t n = single ? 1 : json_array_size(list), used = 0;
    gh_jwt_key *keys = calloc(n ? n : 1, sizeof(*keys));
    if (!ok)
        seterr(err, errlen, "neither a JWKS ({\"keys\": [...]}) nor a JWK");
    else if (!keys)
        seterr(err, errlen, "out of memory");
    ok = ok && keys;
    for (size_t i = 0; ok && i < n; i++) {
        char where[32] = "the JWK";
        if (!single)
            snprintf(where, sizeof(where), "keys[%zu]", i);
        gh_jwt_key k = { 0 };
        bool skip = false;
        ok = jwk_key(single ? root : json_array_get(list, i), where, &k, &skip, err, errlen);
        if (ok && !skip)
            keys[used++] = k;
        else
            key_free(&k);
    }
    if (ok && !used) {
        seterr(err, errlen, "no signature key in the document");
        ok = false;
    }
    json_decref(root);
    if (ok)
        ok = commit(ks, keys, used, err, errlen);
    else
        for (size_t i = 0; i < used; i++)
            key_free(&keys[i]);
    free(keys);
    return ok;
}

/* ------------------------------------------------------------------- API */

bool gh_jwt_keys_add_text(gh_jwt_keyset *ks, const char *text, size_t len, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    if (len - i >= 10 && memcmp(text + i, "-----BEGIN", 10) == 0)
        return add_pem(ks, text + i, len - i, err, errlen);   /* a block starts a line */
    if (i < len && text[i] == '{')
        return add_json(ks, text, len, err, errlen);
    seterr(err, errlen, "neither PEM nor JSON (a JWKS)");
    return false;
}

bool gh_jwt_keys_add_file(gh_jwt_keyset *ks, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    char *buf = malloc(MAX_FILE + 1), msg[256];
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    bool ok = false;
    if (!buf)
        seterr(err, errlen, "%s: out of memory", path);
    else if (ferror(f))
        seterr(err, errlen, "%s: %s", path, strerror(errno));
    else if (n > MAX_FILE)
        seterr(err, errlen, "%s: larger than %u bytes", path, MAX_FILE);
    else if (!(ok = gh_jwt_keys_add_text(ks, buf, n, msg, sizeof(msg))))
        seterr(err, errlen, "%s: %s", path, msg);
    fclose(f);
    if (buf)
        OPENSSL_cleanse(buf, n);   /* it may have held secrets */
    free(buf);
    return ok;
}

bool gh_jwt_keys_add_secret(gh_jwt_keyset *ks, const void *secret, size_t len, char *err, size_t errlen)
{
    if (!secret || !len) {
        seterr(err, errlen, "the secret is empty");
        return false;
    }
    gh_jwt_key k = { .secret_len = len };
    if (!hmac_algs(len, 0, &k.algs, "", err, errlen))
        return false;
    if (!(k.secret = malloc(len))) {
        seterr(err, errlen, "out of memory");
        return false;
    }
    memcpy(k.secret, secret, len);
    return commit(ks, &k, 1, err, errlen);
}

uint32_t gh_jwt_keys_algs(const gh_jwt_keyset *ks)
{
    uint32_t a = 0;
    for (size_t i = 0; ks && i < ks->n; i++) {
        const gh_jwt_key *k = &ks->keys[i];
        a |= k->alg ? k->algs & GH_JWT_ALG_BIT(k->alg) : k->algs;
    }
    return a;
}

void gh_jwt_keys_free(gh_jwt_keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        key_free(&ks->keys[i]);
    free(ks->keys);
    ks->keys = NULL;
    ks->n = 0;
}
