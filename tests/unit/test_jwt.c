/* test_jwt.c — plugins/jwt_token.c and plugins/jwt_keys.c. Tokens are
 * signed here with OpenSSL directly (never with the code under test) using
 * keys generated once per run; key sets come from JWKS built from those
 * keys' public parameters, from PEM and from a certificate. A table of
 * attack tokens checks each is refused with its own result code. Every
 * token is handed over as an exact-size heap copy, so ASan sees any read
 * past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include "plugins/jwt_token.h"

#define NOW 1700000000
#define ALL GH_JWT_ALGS_ALL
#define BIT GH_JWT_ALG_BIT
/* valid at NOW for policy; PL_TAIL to put members before it */
#define PL_TAIL "\"iss\":\"https://issuer.example\",\"aud\":\"api\",\"sub\":\"alice\"," \
                "\"iat\":1699999990,\"exp\":1700000600}"
#define PL "{" PL_TAIL

static const char *const auds[] = { "api", "other-api" };
static const gh_jwt_policy policy = { .issuer = "https://issuer.example", .audiences = auds, .naudiences = 2, .skew_s = 60 };
static const char secret[] = "test-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef-x";   /* 64 bytes: HS512 */

enum { K_HS = -1, K_NOSIG = -2 };   /* not EVP keys: the HMAC secret, no signature */
enum { K_RSA, K_EC256, K_EC384, K_ED25519, K_ED448, K_EC256B, K_COUNT };
static EVP_PKEY *pk[K_COUNT];
static gh_jwt_keyset jwks;          /* from jwks_text: one key of each kind, with kids */
static char jwks_text[8192];
static const char *const kids[K_COUNT] = { "rsa", "ec256", "ec384", "ed25519", "ed448", "ec256b" };
static char huge_hdr[1200], long_pl[7000];   /* filled in setup, used in the attack table */

/* ---- encoding and signing, independent of the code under test ---- */

/* How the attack table spoils a token (some at signing, most after). */
enum mut {
    M_NONE,
    M_FLIP_SIG,                   /* one signature bit changed */
    M_SWAP_PAYLOAD,               /* another payload after signing */
    M_TWO_PARTS, M_FOUR_PARTS,
    M_CUT_SIG,                    /* signature cut to 4n characters: decodes, shorter */
    M_CUT_SIG_ODD,                /* cut to 4n+1 characters: cannot decode */
    M_EMPTY_SIG,
    M_SET_HDR, M_SET_PL, M_SET_SIG,   /* one character replaced by c */
    M_APPEND_SIG,                 /* c appended to the signature */
    M_SIG_SHORT, M_SIG_LONG,      /* raw signature one byte shorter, longer */
    M_SIG_DER,                    /* ECDSA signature in DER instead of r||s */
    M_SIG_ZERO,                   /* all zero: r = s = 0 */
    M_SIG_HUGE,                   /* more than gh_jwt.sig holds */
    M_PSS_SALT0, M_PSS_MGF1_SHA1, /* PSS not as RFC 7518 3.5 says */
};

static size_t b64(const void *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        for (size_t k = 0; k < 4 && k <= n - i; k++)
            out[o++] = a[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = 0;
    return o;
}

static const EVP_MD *md_of(int alg)
{
    switch (alg) {
    case GH_JWT_HS256: case GH_JWT_RS256: case GH_JWT_PS256: case GH_JWT_ES256: return EVP_sha256();
    case GH_JWT_HS384: case GH_JWT_RS384: case GH_JWT_PS384: case GH_JWT_ES384: return EVP_sha384();
    case GH_JWT_EDDSA: return NULL;
    default: return EVP_sha512();
    }
}

/* Signs input as alg: with key, or with the HMAC secret hk for HS*. */
static size_t sign(int alg, EVP_PKEY *key, const void *hk, size_t hklen, const char *input, int mut,
                   unsigned char *sig)
{
    size_t len = 1024, n = strlen(input);
    if (alg <= GH_JWT_HS512) {
        unsigned int ml = 0;
        assert_non_null(HMAC(md_of(alg), hk, (int)hklen, (const unsigned char *)input, n, sig, &ml));
        return ml;
    }
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    assert_int_equal(EVP_DigestSignInit(c, &pc, md_of(alg), NULL, key), 1);
    if (alg >= GH_JWT_PS256 && alg <= GH_JWT_PS512) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 1);
        int salt = mut == M_PSS_SALT0 ? 0 : RSA_PSS_SALTLEN_DIGEST;
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, salt), 1);
        if (mut == M_PSS_MGF1_SHA1)
            assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha1()), 1);
    }
    assert_int_equal(EVP_DigestSign(c, sig, &len, (const unsigned char *)input, n), 1);
    EVP_MD_CTX_free(c);
    if (alg == GH_JWT_ES256 || alg == GH_JWT_ES384) {   /* DER -> raw r||s */
        int half = alg == GH_JWT_ES256 ? 32 : 48;
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
        assert_non_null(es);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + half, half);
        ECDSA_SIG_free(es);
        len = 2 * (size_t)half;
    }
    return len;
}

static char *token_with(const char *hdr, const char *pl, int alg, int key, const void *hk, size_t hklen)
{
    char *t = malloc(20000);
    unsigned char sig[1100];
    size_t n = b64(hdr, strlen(hdr), t);
    t[n++] = '.';
    n += b64(pl, strlen(pl), t + n);
    size_t slen = key == K_NOSIG ? 0 : sign(alg, key >= 0 ? pk[key] : NULL, hk, hklen, t, M_NONE, sig);
    t[n++] = '.';
    b64(sig, slen, t + n);
    return t;
}

static char *token(const char *hdr, const char *pl, int alg, int key)
{
    return token_with(hdr, pl, alg, key, secret, strlen(secret));
}

/* decode, verify, claims: the first failure */
static int run_n(const char *tok, size_t len, const gh_jwt_keyset *ks, uint32_t allowed,
                 const gh_jwt_policy *p, int64_t now)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, tok, len);
    gh_jwt t;
    int r = gh_jwt_decode(copy, len, &t);
    if (r != GH_JWT_OK) {
        assert_null(t.header);
        assert_null(t.claims);
    } else {
        assert_true(json_is_object(t.claims));
        if ((r = gh_jwt_verify(&t, copy, ks, allowed)) == GH_JWT_OK)
            r = gh_jwt_check_claims(&t, p, now);
        gh_jwt_clear(&t);
    }
    free(copy);
    return r;
}

static int run(const char *tok, const gh_jwt_keyset *ks)
{
    return run_n(tok, strlen(tok), ks, ALL, &policy, NOW);
}

/* ---- public keys as JWK, PEM, certificate ---- */

static size_t bn_b64(EVP_PKEY *k, const char *param, int pad, char *out)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64(buf, (size_t)n, out);
}

static void jwk_of(EVP_PKEY *k, const char *kid, char *out)
{
    char a[1400], b[200];
    unsigned char raw[64];
    size_t n = sizeof(raw);
    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
        bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0, a);
        bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0, b);
        sprintf(out, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}", kid, a, b);
        break;
    case EVP_PKEY_EC: {
        int bits = EVP_PKEY_get_bits(k);
        bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, bits / 8, a);
        bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, bits / 8, b);
        sprintf(out, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-%d\",\"x\":\"%s\",\"y\":\"%s\"}", kid, bits, a, b);
        break;
    }
    default:
        assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &n), 1);
        b64(raw, n, a);
        sprintf(out, "{\"kty\":\"OKP\",\"kid\":\"%s\",\"crv\":\"%s\",\"x\":\"%s\"}", kid,
                EVP_PKEY_get_base_id(k) == EVP_PKEY_ED448 ? "Ed448" : "Ed25519", a);
    }
}

static char *bio_text(BIO *b)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static char *pem_of(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    return bio_text(b);
}

static char *cert_of(EVP_PKEY *k)
{
    X509 *x = X509_new();
    BIO *b = BIO_new(BIO_s_mem());
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"jwt test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    assert_int_equal(PEM_write_bio_X509(b, x), 1);
    X509_free(x);
    return bio_text(b);
}

static int setup(void **state)
{
    static const char *const type[K_COUNT] = { "RSA", "EC", "EC", "ED25519", "ED448", "EC" };
    static const char *const crv[K_COUNT] = { NULL, "P-256", "P-384", NULL, NULL, "P-256" };
    char jwk[2000], k[100], err[256];
    for (int i = 0; i < K_COUNT; i++) {
        pk[i] = i == K_RSA ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                : crv[i]   ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", crv[i])
                           : EVP_PKEY_Q_keygen(NULL, NULL, type[i]);
        if (!pk[i])
            return -1;
    }
    size_t n = (size_t)sprintf(jwks_text, "{\"keys\":[");
    for (int i = 0; i < K_EC256B; i++) {
        jwk_of(pk[i], kids[i], jwk);
        n += (size_t)sprintf(jwks_text + n, "%s,", jwk);
    }
    b64(secret, strlen(secret), k);
    sprintf(jwks_text + n, "{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"%s\"}]}", k);
    if (!gh_jwt_keys_add_text(&jwks, jwks_text, strlen(jwks_text), err, sizeof(err))) {
        fprintf(stderr, "jwks: %s\n", err);
        return -1;
    }
    sprintf(huge_hdr, "{\"alg\":\"HS256\",\"kid\":\"hs\",\"x\":\"%0*d\"}", 1100, 0);
    sprintf(long_pl, "{\"x\":\"%0*d\",%s", 6200, 0, PL_TAIL);
    return 0;
}

static int teardown(void **state)
{
    gh_jwt_keys_free(&jwks);
    for (int i = 0; i < K_COUNT; i++)
        EVP_PKEY_free(pk[i]);
    return 0;
}

/* ---- names, base64url ---- */

static void test_alg_names(void **state)
{
    for (int a = 1; a < GH_JWT_ALG_END; a++) {
        const char *n = gh_jwt_alg_name(a);
        assert_int_equal(gh_jwt_alg_from_name(n, strlen(n)), a);
    }
    assert_string_equal(gh_jwt_alg_name(GH_JWT_EDDSA), "EdDSA");
    assert_string_equal(gh_jwt_alg_name(0), "unknown");
    assert_string_equal(gh_jwt_alg_name(GH_JWT_ALG_END), "unknown");
    const char *bad[] = { "none", "None", "NONE", "", "rs256", "HS256 ", "EDDSA", "ES512", "HS2" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gh_jwt_alg_from_name(bad[i], strlen(bad[i])), 0);
    assert_int_equal(gh_jwt_alg_from_name("HS256x", 5), GH_JWT_HS256);
    assert_int_equal(gh_jwt_alg_from_name(NULL, 0), 0);
    for (int r = GH_JWT_OK; r <= GH_JWT_BAD_AUDIENCE; r++)
        assert_non_null(gh_jwt_result_text(r));
    assert_string_equal(gh_jwt_result_text(-1), "unknown error");
    assert_string_equal(gh_jwt_result_text(99), "unknown error");
}

static void test_b64url(void **state)
{
    static const struct { const char *in, *out; } good[] = {
        { "", "" }, { "Zg", "f" }, { "Zm8", "fo" }, { "Zm9v", "foo" }, { "Zm9vYg", "foob" },
        { "-_-_", "\xfb\xff\xbf" },
    };
    static const char *const bad[] = { "Z", "Zh", "Zm9", "Zm9v=", "Zg==", "Zm+v", "Zm/v", "Zm v",
                                       "Zm9v\n", "Zm9v\r" };
    unsigned char out[16];
    size_t n;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(gh_jwt_b64url_decode(good[i].in, strlen(good[i].in), out, sizeof(out), &n));
        assert_int_equal(n, strlen(good[i].out));
        assert_memory_equal(out, good[i].out, n);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(gh_jwt_b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n));
    assert_false(gh_jwt_b64url_decode("Zm\0v", 4, out, sizeof(out), &n));
    assert_false(gh_jwt_b64url_decode("Zm9v", 4, out, 2, &n));   /* cap */
}

/* ---- every algorithm, with and without kid ---- */

static const struct { int alg, key; } every[] = {
    { GH_JWT_HS256, K_HS }, { GH_JWT_HS384, K_HS }, { GH_JWT_HS512, K_HS },
    { GH_JWT_RS256, K_RSA }, { GH_JWT_RS384, K_RSA }, { GH_JWT_RS512, K_RSA },
    { GH_JWT_PS256, K_RSA }, { GH_JWT_PS384, K_RSA }, { GH_JWT_PS512, K_RSA },
    { GH_JWT_ES256, K_EC256 }, { GH_JWT_ES384, K_EC384 },
    { GH_JWT_EDDSA, K_ED25519 }, { GH_JWT_EDDSA, K_ED448 },
};
#define NEVERY (sizeof(every) / sizeof(every[0]))

static void test_every_alg(void **state)
{
    char hdr[128];
    for (size_t i = 0; i < NEVERY; i++) {
        const char *name = gh_jwt_alg_name(every[i].alg);
        const char *kid = every[i].key == K_HS ? "hs" : kids[every[i].key];
        sprintf(hdr, "{\"typ\":\"JWT\",\"alg\":\"%s\",\"kid\":\"%s\"}", name, kid);
        char *tok = token(hdr, PL, every[i].alg, every[i].key);
        gh_jwt t;
        assert_int_equal(gh_jwt_decode(tok, strlen(tok), &t), GH_JWT_OK);
        assert_int_equal(t.alg, every[i].alg);
        assert_string_equal(t.kid, kid);
        assert_string_equal(t.iss, "https://issuer.example");
        assert_int_equal(t.signed_len, (size_t)(strrchr(tok, '.') - tok));
        assert_int_equal(gh_jwt_verify(&t, tok, &jwks, ALL), GH_JWT_OK);
        assert_int_equal(gh_jwt_verify(&t, tok, &jwks, BIT(every[i].alg)), GH_JWT_OK);
        assert_int_equal(gh_jwt_check_claims(&t, &policy, NOW), GH_JWT_OK);
        gh_jwt_clear(&t);
        gh_jwt_clear(&t);   /* twice is harmless */
        free(tok);
        sprintf(hdr, "{\"alg\":\"%s\"}", name);   /* no kid: every key of the type is tried */
        tok = token(hdr, PL, every[i].alg, every[i].key);
        if (run(tok, &jwks) != GH_JWT_OK)
            fail_msg("%s without kid", name);
        free(tok);
    }
}

/* ---- key sets ---- */

static void test_jwks(void **state)
{
    static const uint32_t want[] = {
        BIT(GH_JWT_RS256) | BIT(GH_JWT_RS384) | BIT(GH_JWT_RS512) | BIT(GH_JWT_PS256)
            | BIT(GH_JWT_PS384) | BIT(GH_JWT_PS512),
        BIT(GH_JWT_ES256), BIT(GH_JWT_ES384), BIT(GH_JWT_EDDSA), BIT(GH_JWT_EDDSA),
        BIT(GH_JWT_HS256) | BIT(GH_JWT_HS384) | BIT(GH_JWT_HS512),
    };
    assert_int_equal(jwks.n, 6);
    for (size_t i = 0; i < jwks.n; i++) {
        assert_string_equal(jwks.keys[i].kid, i < 5 ? kids[i] : "hs");
        assert_int_equal(jwks.keys[i].algs, want[i]);
        assert_int_equal(jwks.keys[i].alg, 0);
        assert_true(i < 5 ? jwks.keys[i].pkey && !jwks.keys[i].secret
                          : !jwks.keys[i].pkey && jwks.keys[i].secret_len == strlen(secret));
    }
    assert_int_equal(gh_jwt_keys_algs(&jwks), ALL);

    /* a bare JWK; "use":"enc" keys skipped; "alg" restricts the key */
    char text[3000], jwk[2000], err[256];
    gh_jwt_keyset ks = { 0 };
    jwk_of(pk[K_RSA], "r", jwk);
    assert_true(gh_jwt_keys_add_text(&ks, jwk, strlen(jwk), err, sizeof(err)));
    sprintf(text, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\",\"use\":\"enc\"},%.*s,\"alg\":\"PS256\"}]}",
            (int)strlen(jwk) - 1, jwk);
    assert_true(gh_jwt_keys_add_text(&ks, text, strlen(text), err, sizeof(err)));
    assert_int_equal(ks.n, 2);
    assert_int_equal(ks.keys[1].alg, GH_JWT_PS256);
    gh_jwt_keyset only = { ks.keys + 1, 1 };
    assert_int_equal(gh_jwt_keys_algs(&only), BIT(GH_JWT_PS256));
    char *rs = token("{\"alg\":\"RS256\"}", PL, GH_JWT_RS256, K_RSA);
    char *ps = token("{\"alg\":\"PS256\"}", PL, GH_JWT_PS256, K_RSA);
    assert_int_equal(run(rs, &only), GH_JWT_NO_KEY);
    assert_int_equal(run(ps, &only), GH_JWT_OK);
    free(rs);
    free(ps);
    gh_jwt_keys_free(&ks);
    assert_null(ks.keys);
    assert_int_equal(ks.n, 0);
}

static void test_kid_selection(void **state)
{
    char a[600], b[600], text[1300], err[256];
    gh_jwt_keyset ks = { 0 };
    jwk_of(pk[K_EC256], "a", a);
    jwk_of(pk[K_EC256B], "b", b);
    sprintf(text, "{\"keys\":[%s,%s]}", a, b);
    assert_true(gh_jwt_keys_add_text(&ks, text, strlen(text), err, sizeof(err)));
    /* signed with b's key (or an ES384 one) */
    static const struct { const char *hdr; int alg, key, want; } rows[] = {
        { "{\"alg\":\"ES256\",\"kid\":\"b\"}", GH_JWT_ES256, K_EC256B, GH_JWT_OK },
        { "{\"alg\":\"ES256\",\"kid\":\"a\"}", GH_JWT_ES256, K_EC256B, GH_JWT_BAD_SIGNATURE },
        { "{\"alg\":\"ES256\"}", GH_JWT_ES256, K_EC256B, GH_JWT_OK },   /* a fails, then b */
        { "{\"alg\":\"ES256\",\"kid\":\"c\"}", GH_JWT_ES256, K_EC256B, GH_JWT_UNKNOWN_KID },
        { "{\"alg\":\"ES256\",\"kid\":\"B\"}", GH_JWT_ES256, K_EC256B, GH_JWT_UNKNOWN_KID },
        { "{\"alg\":\"ES384\",\"kid\":\"b\"}", GH_JWT_ES384, K_EC384, GH_JWT_NO_KEY },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *tok = token(rows[i].hdr, PL, rows[i].alg, rows[i].key);
        int r = run(tok, &ks);
        if (r != rows[i].want)
            fail_msg("%s: %s", rows[i].hdr, gh_jwt_result_text(r));
        free(tok);
    }
    gh_jwt_keys_free(&ks);

    /* a kid no key carries falls back to the keys that carry none (a PEM
     * key cannot), never to keys with another kid */
    char *pem = pem_of(pk[K_EC256B]);
    sprintf(text, "{\"keys\":[%s]}", a);
    assert_true(gh_jwt_keys_add_text(&ks, text, strlen(text), err, sizeof(err)));
    assert_true(gh_jwt_keys_add_text(&ks, pem, strlen(pem), err, sizeof(err)));
    static const struct { int key, want; } fallback[] = {
        { K_EC256B, GH_JWT_OK },              /* the kid-less PEM key verifies it */
        { K_EC256, GH_JWT_BAD_SIGNATURE },    /* key "a" is not tried for kid "zzz" */
    };
    for (size_t i = 0; i < sizeof(fallback) / sizeof(fallback[0]); i++) {
        char *tok = token("{\"alg\":\"ES256\",\"kid\":\"zzz\"}", PL, GH_JWT_ES256, fallback[i].key);
        assert_int_equal(run(tok, &ks), fallback[i].want);
        free(tok);
    }
    free(pem);
    gh_jwt_keys_free(&ks);
}

static void test_pem(void **state)
{
    char err[256], text[20000] = "\n  ";
    gh_jwt_keyset ks = { 0 };
    for (int i = 0; i < K_EC256B; i++) {   /* all in one text */
        char *p = pem_of(pk[i]);
        strcat(text, p);
        free(p);
    }
    assert_true(gh_jwt_keys_add_text(&ks, text, strlen(text), err, sizeof(err)));
    assert_int_equal(ks.n, K_EC256B);
    for (size_t i = 0; i < NEVERY; i++) {
        char hdr[64];
        if (every[i].key == K_HS)
            continue;
        sprintf(hdr, "{\"alg\":\"%s\"}", gh_jwt_alg_name(every[i].alg));
        char *tok = token(hdr, PL, every[i].alg, every[i].key);
        assert_int_equal(run(tok, &ks), GH_JWT_OK);
        assert_int_equal(run(tok, &(gh_jwt_keyset){ 0 }), GH_JWT_NO_KEY);
        free(tok);
    }
    gh_jwt_keys_free(&ks);

    char *cert = cert_of(pk[K_RSA]);   /* a certificate gives its public key */
    assert_true(gh_jwt_keys_add_text(&ks, cert, strlen(cert), err, sizeof(err)));
    char *tok = token("{\"alg\":\"RS256\"}", PL, GH_JWT_RS256, K_RSA);
    assert_int_equal(run(tok, &ks), GH_JWT_OK);
    free(tok);
    free(cert);
    assert_int_equal(ks.n, 1);

    /* refused, set unchanged */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, pk[K_EC256], NULL, NULL, 0, NULL, NULL);
    char *priv = bio_text(b), *good_then_priv = pem_of(pk[K_EC256]);
    good_then_priv = realloc(good_then_priv, strlen(good_then_priv) + strlen(priv) + 1);
    strcat(good_then_priv, priv);
    char *bad[] = { pem_of(small), pem_of(p521), pem_of(x25519), priv, good_then_priv,
                    strdup("-----BEGIN PUBLIC KEY-----\nnot*base64\n-----END PUBLIC KEY-----\n"),
                    strdup("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
                    strdup("-----BEGIN PUBLIC KEY-----\n"), strdup("hello"), strdup("") };
    const char *msg[] = { "1024 bits", "curve", "unsupported key type", "private",
                          "PEM block 2: a \"PRIVATE KEY\" block", "decoded",
                          "cannot decode", "decoded", "neither", "neither" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        assert_false(gh_jwt_keys_add_text(&ks, bad[i], strlen(bad[i]), err, sizeof(err)));
        if (!strstr(err, msg[i]))
            fail_msg("bad PEM %zu: \"%s\", wanted \"%s\"", i, err, msg[i]);
        assert_int_equal(ks.n, 1);
        free(bad[i]);
    }
    EVP_PKEY_free(small);
    EVP_PKEY_free(p521);
    EVP_PKEY_free(x25519);
    gh_jwt_keys_free(&ks);
}

static void test_jwks_errors(void **state)
{
    static const struct { const char *json, *msg; } rows[] = {
        { "{", "invalid JSON at line 1" },
        { "[]", "neither PEM nor JSON" },
        { "{\"keys\":{}}", "neither a JWKS" },
        { "{\"keys\":[],\"keys\":[]}", "invalid JSON" },
        { "{\"keys\":[]}", "no signature key" },
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\",\"use\":\"enc\"}]}", "no signature key" },
        { "{\"keys\":[1]}", "keys[0]: not an object" },
        { "{\"keys\":[{\"k\":\"AAAA\"}]}", "\"kty\" is missing" },
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\",\"kid\":1}]}", "\"kid\" must be a string" },
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\",\"use\":true}]}", "\"use\" must be a string" },
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"\"}]}", "empty" },
        { "{\"keys\":[{\"kty\":\"oct\"}]}", "\"k\" must be" },
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA==\"}]}", "not valid base64url" },
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\",\"alg\":\"RS256\"}]}", "does not fit" },
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\",\"alg\":\"none\"}]}", "unknown \"alg\"" },
        { "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", "17 bits" },
        { "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"$N\"}]}", "\"e\" must be" },
        { "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AQAB\",\"alg\":\"ES256\"}]}", "does not fit" },
        { "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AA\"}]}", "not valid" },
        { "{\"keys\":[{\"kty\":\"EC\",\"x\":\"AA\",\"y\":\"AA\"}]}", "\"crv\" is missing" },
        { "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}]}", "not supported" },
        { "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}", "32 bytes" },
        { "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$Z\",\"y\":\"$Z\"}]}", "not on P-256" },
        { "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"$Z\"}]}", "not supported" },
        { "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"}]}", "32 bytes" },
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"$Z\"},{\"kty\":\"foo\"}]}", "keys[1]: unsupported \"kty\"" },
        /* RFC 7518 3.2: an HMAC key at least as long as the hash */
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}",
          "keys[0]: the secret is 3 bytes long; HS256 needs at least 32 bytes" },
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":\"$Z\",\"alg\":\"HS384\"}]}", "HS384 needs at least 48 bytes" },
        { "{\"kty\":\"oct\",\"k\":\"$Z\",\"alg\":\"HS512\"}", "the JWK: the secret is 32 bytes long; HS512" },
        /* jansson's message would quote the text near the error: a secret */
        { "{\"keys\":[{\"kty\":\"oct\",\"k\":TOPSECRET}]}", "invalid JSON at line 1, column" },
    };
    char n[400], z[64], text[1000], err[256];
    unsigned char zero[32] = { 1 };
    bn_b64(pk[K_RSA], OSSL_PKEY_PARAM_RSA_N, 0, n);
    b64(zero, sizeof(zero), z);
    gh_jwt_keyset ks = { 0 };
    assert_false(gh_jwt_keys_add_secret(&ks, "s", 1, err, sizeof(err)));
    assert_string_equal(err, "the secret is 1 byte long; HS256 needs at least 32 bytes (RFC 7518 3.2)");
    assert_false(gh_jwt_keys_add_secret(&ks, secret, 31, err, sizeof(err)));
    assert_int_equal(ks.n, 0);
    assert_true(gh_jwt_keys_add_secret(&ks, secret, strlen(secret), err, sizeof(err)));
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t o = 0;
        for (const char *s = rows[i].json; *s; s++)   /* $N: the RSA modulus, $Z: 32 bytes */
            if (s[0] == '$' && (s[1] == 'N' || s[1] == 'Z'))
                o += (size_t)sprintf(text + o, "%s", *++s == 'N' ? n : z);
            else
                text[o++] = *s;
        text[o] = 0;
        err[0] = 0;
        assert_false(gh_jwt_keys_add_text(&ks, text, o, err, sizeof(err)));
        if (!strstr(err, rows[i].msg) || strstr(err, "TOPSECRET"))
            fail_msg("%s: \"%s\", wanted \"%s\"", rows[i].json, err, rows[i].msg);
        assert_int_equal(ks.n, 1);
    }
    assert_false(gh_jwt_keys_add_secret(&ks, "", 0, err, sizeof(err)));
    assert_false(gh_jwt_keys_add_text(&ks, "{", 1, NULL, 0));   /* no room for a message */
    assert_int_equal(ks.n, 1);
    gh_jwt_keys_free(&ks);
}

static void test_keys_file(void **state)
{
    char path[] = "/tmp/gh-test-jwt-XXXXXX", err[512];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, jwks_text, strlen(jwks_text)), (ssize_t)strlen(jwks_text));
    gh_jwt_keyset ks = { 0 };
    assert_true(gh_jwt_keys_add_file(&ks, path, err, sizeof(err)));
    assert_int_equal(ks.n, 6);
    assert_int_equal(write(fd, "x", 1), 1);   /* trailing garbage */
    assert_false(gh_jwt_keys_add_file(&ks, path, err, sizeof(err)));
    assert_true(strncmp(err, path, strlen(path)) == 0 && strstr(err, ": invalid JSON"));
    char *big = malloc((1 << 20) + 1);
    memset(big, ' ', (1 << 20) + 1);
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(pwrite(fd, big, (1 << 20) + 1, 0), (1 << 20) + 1);
    assert_false(gh_jwt_keys_add_file(&ks, path, err, sizeof(err)));
    assert_non_null(strstr(err, "larger than"));
    free(big);
    close(fd);
    unlink(path);
    assert_false(gh_jwt_keys_add_file(&ks, path, err, sizeof(err)));
    assert_true(strncmp(err, path, strlen(path)) == 0 && strstr(err, "No such file"));
    assert_int_equal(ks.n, 6);
    gh_jwt_keys_free(&ks);
}

/* ---- attacks ---- */


#define H_HS "{\"alg\":\"HS256\",\"kid\":\"hs\"}"
#define H_RS "{\"alg\":\"RS256\",\"kid\":\"rsa\"}"
#define H_ES "{\"alg\":\"ES256\",\"kid\":\"ec256\"}"
#define CL(x) "{\"iss\":\"https://issuer.example\",\"aud\":\"api\"" x "}"
#define PL_ADMIN CL(",\"sub\":\"admin\"")
#define HS GH_JWT_HS256, K_HS
#define RS GH_JWT_RS256, K_RSA
#define ES GH_JWT_ES256, K_EC256
#define NOSIG 0, K_NOSIG
#define NOT_HS (ALL & ~(BIT(GH_JWT_HS256) | BIT(GH_JWT_HS384) | BIT(GH_JWT_HS512)))

static const struct attack {
    const char *name, *hdr, *pl;
    int alg, key, mut;
    char c;
    uint32_t allowed;
    int want;
} attacks[] = {
    { "control: HS256", H_HS, PL, HS, M_NONE, 0, ALL, GH_JWT_OK },
    { "control: RS256", H_RS, PL, RS, M_NONE, 0, ALL, GH_JWT_OK },
    { "control: ES256", H_ES, PL, ES, M_NONE, 0, ALL, GH_JWT_OK },
    /* alg */
    { "alg none", "{\"alg\":\"none\"}", PL, NOSIG, M_NONE, 0, ALL, GH_JWT_BAD_ALG },
    { "alg None", "{\"alg\":\"None\"}", PL, NOSIG, M_NONE, 0, ALL, GH_JWT_BAD_ALG },
    { "alg NONE", "{\"alg\":\"NONE\"}", PL, NOSIG, M_NONE, 0, ALL, GH_JWT_BAD_ALG },
    { "alg none, signed", "{\"alg\":\"none\",\"kid\":\"hs\"}", PL, HS, M_NONE, 0, ALL, GH_JWT_BAD_ALG },
    { "alg empty", "{\"alg\":\"\"}", PL, NOSIG, M_NONE, 0, ALL, GH_JWT_BAD_ALG },
    { "alg hs256", "{\"alg\":\"hs256\",\"kid\":\"hs\"}", PL, HS, M_NONE, 0, ALL, GH_JWT_BAD_ALG },
    { "alg ES512", "{\"alg\":\"ES512\"}", PL, HS, M_NONE, 0, ALL, GH_JWT_BAD_ALG },
    { "alg missing", "{\"kid\":\"hs\"}", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "alg not a string", "{\"alg\":[\"HS256\"]}", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "alg null", "{\"alg\":null}", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "RS256, only ES256 allowed", H_RS, PL, RS, M_NONE, 0, BIT(GH_JWT_ES256), GH_JWT_BAD_ALG },
    { "HS256, HS* not allowed", H_HS, PL, HS, M_NONE, 0, NOT_HS, GH_JWT_BAD_ALG },
    /* key confusion */
    { "HS256 naming the RSA key", "{\"alg\":\"HS256\",\"kid\":\"rsa\"}", PL, HS, M_NONE, 0, ALL,
      GH_JWT_NO_KEY },
    { "ES256 naming the RSA key", "{\"alg\":\"ES256\",\"kid\":\"rsa\"}", PL, ES, M_NONE, 0, ALL,
      GH_JWT_NO_KEY },
    { "ES256 by another key", H_ES, PL, GH_JWT_ES256, K_EC256B, M_NONE, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "key embedded in the header",
      "{\"alg\":\"ES256\",\"jku\":\"https://evil.example/jwks\",\"jwk\":{\"kty\":\"EC\","
      "\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}}", PL, GH_JWT_ES256, K_EC256B, M_NONE, 0, ALL,
      GH_JWT_BAD_SIGNATURE },
    { "unknown kid", "{\"alg\":\"HS256\",\"kid\":\"nope\"}", PL, HS, M_NONE, 0, ALL, GH_JWT_UNKNOWN_KID },
    { "empty kid", "{\"alg\":\"HS256\",\"kid\":\"\"}", PL, HS, M_NONE, 0, ALL, GH_JWT_UNKNOWN_KID },
    { "kid a number", "{\"alg\":\"HS256\",\"kid\":1}", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "kid null", "{\"alg\":\"HS256\",\"kid\":null}", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "kid an object", "{\"alg\":\"HS256\",\"kid\":{}}", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "crit", "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", PL, HS, M_NONE, 0, ALL,
      GH_JWT_MALFORMED },
    { "crit b64", "{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}", PL, HS, M_NONE, 0, ALL,
      GH_JWT_MALFORMED },
    /* claims */
    { "expired", H_HS, CL(",\"exp\":1699999000"), HS, M_NONE, 0, ALL, GH_JWT_EXPIRED },
    { "not yet valid", H_HS, CL(",\"nbf\":1700000100"), HS, M_NONE, 0, ALL, GH_JWT_NOT_YET_VALID },
    { "iat in the future", H_HS, CL(",\"iat\":1700000100"), HS, M_NONE, 0, ALL, GH_JWT_BAD_IAT },
    { "exp a string", H_HS, CL(",\"exp\":\"1700000600\""), HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "exp null", H_HS, CL(",\"exp\":null"), HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "nbf a boolean", H_HS, CL(",\"nbf\":true"), HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "iat a string", H_HS, CL(",\"iat\":\"0\""), HS, M_NONE, 0, ALL, GH_JWT_BAD_IAT },
    { "exp beyond int64", H_HS, CL(",\"exp\":99999999999999999999"), HS, M_NONE, 0, ALL,
      GH_JWT_MALFORMED },
    { "wrong audience", H_HS, "{\"iss\":\"https://issuer.example\",\"aud\":\"someone-else\"}", HS,
      M_NONE, 0, ALL, GH_JWT_BAD_AUDIENCE },
    { "audience list without ours", H_HS, "{\"iss\":\"https://issuer.example\",\"aud\":[\"x\",\"API\"]}",
      HS, M_NONE, 0, ALL, GH_JWT_BAD_AUDIENCE },
    { "no audience", H_HS, "{\"iss\":\"https://issuer.example\"}", HS, M_NONE, 0, ALL,
      GH_JWT_BAD_AUDIENCE },
    { "wrong issuer", H_HS, "{\"iss\":\"https://evil.example\",\"aud\":\"api\"}", HS, M_NONE, 0, ALL,
      GH_JWT_BAD_ISSUER },
    { "issuer with a suffix", H_HS, "{\"iss\":\"https://issuer.example.evil\",\"aud\":\"api\"}", HS,
      M_NONE, 0, ALL, GH_JWT_BAD_ISSUER },
    { "no issuer", H_HS, "{\"aud\":\"api\"}", HS, M_NONE, 0, ALL, GH_JWT_MISSING_CLAIM },
    /* signatures */
    { "HS256 bit flipped", H_HS, PL, HS, M_FLIP_SIG, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "RS256 bit flipped", H_RS, PL, RS, M_FLIP_SIG, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "PS256 bit flipped", "{\"alg\":\"PS256\"}", PL, GH_JWT_PS256, K_RSA, M_FLIP_SIG, 0, ALL,
      GH_JWT_BAD_SIGNATURE },
    { "ES256 bit flipped", H_ES, PL, ES, M_FLIP_SIG, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "EdDSA bit flipped", "{\"alg\":\"EdDSA\"}", PL, GH_JWT_EDDSA, K_ED25519, M_FLIP_SIG, 0, ALL,
      GH_JWT_BAD_SIGNATURE },
    { "HS256 payload swapped", H_HS, PL, HS, M_SWAP_PAYLOAD, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "RS256 payload swapped", H_RS, PL, RS, M_SWAP_PAYLOAD, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "RS256 signature short", H_RS, PL, RS, M_SIG_SHORT, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "RS256 signature too large", H_RS, PL, RS, M_SIG_HUGE, 0, ALL, GH_JWT_MALFORMED },
    { "PS256 with salt length 0", "{\"alg\":\"PS256\"}", PL, GH_JWT_PS256, K_RSA, M_PSS_SALT0, 0, ALL,
      GH_JWT_BAD_SIGNATURE },
    { "PS256 with MGF1-SHA1", "{\"alg\":\"PS256\"}", PL, GH_JWT_PS256, K_RSA, M_PSS_MGF1_SHA1, 0, ALL,
      GH_JWT_BAD_SIGNATURE },
    { "PS256 header, RS256 signature", "{\"alg\":\"PS256\"}", PL, RS, M_NONE, 0, ALL,
      GH_JWT_BAD_SIGNATURE },
    { "RS256 header, PS256 signature", H_RS, PL, GH_JWT_PS256, K_RSA, M_NONE, 0, ALL,
      GH_JWT_BAD_SIGNATURE },
    { "ES256 signature of 63 bytes", H_ES, PL, ES, M_SIG_SHORT, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "ES256 signature of 65 bytes", H_ES, PL, ES, M_SIG_LONG, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "ES256 signature in DER", H_ES, PL, ES, M_SIG_DER, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "ES256 r = s = 0", H_ES, PL, ES, M_SIG_ZERO, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "ES256 header, ES384 signature", H_ES, PL, GH_JWT_ES384, K_EC384, M_NONE, 0, ALL,
      GH_JWT_BAD_SIGNATURE },
    /* structure and encoding */
    { "two parts", H_HS, PL, HS, M_TWO_PARTS, 0, ALL, GH_JWT_MALFORMED },
    { "four parts", H_HS, PL, HS, M_FOUR_PARTS, 0, ALL, GH_JWT_MALFORMED },
    { "HS256 signature cut", H_HS, PL, HS, M_CUT_SIG, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "RS256 signature cut", H_RS, PL, RS, M_CUT_SIG, 0, ALL, GH_JWT_BAD_SIGNATURE },
    { "signature cut to 4n+1", H_HS, PL, HS, M_CUT_SIG_ODD, 0, ALL, GH_JWT_MALFORMED },
    { "empty signature", H_HS, PL, HS, M_EMPTY_SIG, 0, ALL, GH_JWT_MALFORMED },
    { "'+' in the header", H_HS, PL, HS, M_SET_HDR, '+', ALL, GH_JWT_MALFORMED },
    { "'/' in the payload", H_HS, PL, HS, M_SET_PL, '/', ALL, GH_JWT_MALFORMED },
    { "'=' padding", H_HS, PL, HS, M_APPEND_SIG, '=', ALL, GH_JWT_MALFORMED },
    { "space in the signature", H_HS, PL, HS, M_SET_SIG, ' ', ALL, GH_JWT_MALFORMED },
    { "newline in the signature", H_HS, PL, HS, M_SET_SIG, '\n', ALL, GH_JWT_MALFORMED },
    { "NUL in the signature", H_HS, PL, HS, M_SET_SIG, '\0', ALL, GH_JWT_MALFORMED },
    { "huge header", huge_hdr, PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "too long", H_HS, long_pl, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "empty header", "", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "header an array", "[\"alg\",\"HS256\"]", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "header a string", "\"HS256\"", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "header not JSON", "alg=HS256", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "header with trailing bytes", "{\"alg\":\"HS256\"}x", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "payload an array", H_HS, "[1,2]", HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "payload a string", H_HS, "\"alice\"", HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "payload empty", H_HS, "", HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "payload not JSON", H_HS, "sub=alice", HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "payload bad UTF-8", H_HS, "{\"sub\":\"\xff\"}", HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "payload with \\u0000", H_HS, "{\"sub\":\"a\\u0000\"}", HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "duplicate alg", "{\"alg\":\"HS256\",\"alg\":\"none\"}", PL, HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
    { "duplicate alg, none first", "{\"alg\":\"none\",\"alg\":\"HS256\"}", PL, HS, M_NONE, 0, ALL,
      GH_JWT_MALFORMED },
    { "duplicate sub", H_HS, CL(",\"sub\":\"alice\",\"sub\":\"admin\""), HS, M_NONE, 0, ALL,
      GH_JWT_MALFORMED },
    { "duplicate exp", H_HS, CL(",\"exp\":1,\"exp\":1800000000"), HS, M_NONE, 0, ALL, GH_JWT_MALFORMED },
};

static size_t raw_to_der(unsigned char *sig, size_t len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)len / 2, NULL), BN_bin2bn(sig + len / 2, (int)len / 2, NULL));
    unsigned char *p = sig;
    int n = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    return (size_t)n;
}

static char *build(const struct attack *a, size_t *len)
{
    char h[2000], p[10000], s[1500], *t = malloc(14000);
    unsigned char sig[1100];
    size_t hl = b64(a->hdr, strlen(a->hdr), h), pl = b64(a->pl, strlen(a->pl), p), slen = 0;
    if (a->key != K_NOSIG) {
        sprintf(t, "%s.%s", h, p);
        slen = sign(a->alg, a->key >= 0 ? pk[a->key] : NULL, secret, strlen(secret), t, a->mut, sig);
    }
    switch (a->mut) {
    case M_FLIP_SIG: sig[slen / 2] ^= 1; break;
    case M_SIG_SHORT: slen--; break;
    case M_SIG_LONG: sig[slen++] = 0; break;
    case M_SIG_ZERO: memset(sig, 0, slen); break;
    case M_SIG_HUGE: memset(sig, 'A', slen = sizeof(sig)); break;
    case M_SIG_DER: slen = raw_to_der(sig, slen); break;
    case M_SWAP_PAYLOAD: pl = b64(PL_ADMIN, strlen(PL_ADMIN), p); break;
    }
    size_t sl = b64(sig, slen, s), odd = (sl + 3) % 4;
    switch (a->mut) {
    case M_CUT_SIG: sl -= sl % 4 ? sl % 4 : 4; break;
    case M_CUT_SIG_ODD: sl -= odd ? odd : 4; break;
    case M_EMPTY_SIG: sl = 0; break;
    case M_SET_HDR: h[1] = a->c; break;
    case M_SET_PL: p[2] = a->c; break;
    case M_SET_SIG: s[3] = a->c; break;
    case M_APPEND_SIG: s[sl++] = a->c; break;
    }
    size_t n = 0;
    memcpy(t + n, h, hl), n += hl, t[n++] = '.';
    memcpy(t + n, p, pl), n += pl;
    for (int parts = a->mut == M_TWO_PARTS ? 2 : a->mut == M_FOUR_PARTS ? 4 : 3; parts > 2; parts--)
        t[n++] = '.', memcpy(t + n, s, sl), n += sl;
    *len = n;
    return t;
}

static void test_attacks(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
        const struct attack *a = &attacks[i];
        size_t len;
        char *tok = build(a, &len);
        int r = run_n(tok, len, &jwks, a->allowed, &policy, NOW);
        if (r != a->want) {
            print_error("%s: %s, wanted %s\n", a->name, gh_jwt_result_text(r), gh_jwt_result_text(a->want));
            bad++;
        }
        free(tok);
    }
    assert_int_equal(bad, 0);
}

/* An HS256 token whose HMAC key is the RSA public key, as PEM text or DER. */
static void test_alg_confusion(void **state)
{
    char err[256], *pem = pem_of(pk[K_RSA]);
    unsigned char *der = NULL;
    int dlen = i2d_PUBKEY(pk[K_RSA], &der);
    gh_jwt_keyset ks = { 0 };
    assert_true(gh_jwt_keys_add_text(&ks, pem, strlen(pem), err, sizeof(err)));
    char *t1 = token_with("{\"alg\":\"HS256\"}", PL, GH_JWT_HS256, K_HS, pem, strlen(pem));
    char *t2 = token_with("{\"alg\":\"HS256\"}", PL, GH_JWT_HS256, K_HS, der, (size_t)dlen);
    char *t3 = token_with("{\"alg\":\"HS256\",\"kid\":\"rsa\"}", PL, GH_JWT_HS256, K_HS, pem, strlen(pem));
    assert_int_equal(run(t1, &ks), GH_JWT_NO_KEY);
    assert_int_equal(run_n(t1, strlen(t1), &ks, BIT(GH_JWT_HS256), &policy, NOW), GH_JWT_NO_KEY);
    assert_int_equal(run(t2, &ks), GH_JWT_NO_KEY);
    assert_int_equal(run(t3, &jwks), GH_JWT_NO_KEY);
    /* with a secret in the set, that secret is tried, never the PEM */
    assert_true(gh_jwt_keys_add_secret(&ks, "another secret, 32 bytes or more", 32, err, sizeof(err)));
    assert_int_equal(run(t1, &ks), GH_JWT_BAD_SIGNATURE);
    /* a key filled by hand claiming every algorithm still only verifies its own kind */
    gh_jwt_key k[2] = { { .algs = ALL, .pkey = pk[K_RSA] },
                        { .algs = ALL, .secret = (unsigned char *)secret, .secret_len = strlen(secret) } };
    gh_jwt_keyset hand = { k, 1 };
    assert_int_equal(run(t1, &hand), GH_JWT_BAD_SIGNATURE);
    char *es = token("{\"alg\":\"ES256\"}", PL, GH_JWT_ES256, K_EC256);
    assert_int_equal(run(es, &hand), GH_JWT_BAD_SIGNATURE);
    char *rs = token("{\"alg\":\"RS256\"}", PL, GH_JWT_RS256, K_RSA);
    hand.keys = k + 1;
    assert_int_equal(run(rs, &hand), GH_JWT_BAD_SIGNATURE);
    free(t1);
    free(t2);
    free(t3);
    free(es);
    free(rs);
    free(pem);
    OPENSSL_free(der);
    gh_jwt_keys_free(&ks);
}

/* ---- claims ---- */

static int claims_at(const char *pl, const gh_jwt_policy *p, int64_t now)
{
    char *tok = token("{\"alg\":\"HS256\"}", pl, GH_JWT_HS256, K_HS);
    int r = run_n(tok, strlen(tok), &jwks, ALL, p, now);
    free(tok);
    return r;
}

static void test_clock_skew(void **state)
{
    static const struct { const char *pl; int64_t skew; int want; } rows[] = {
        { "{\"exp\":1700000000}", 0, GH_JWT_EXPIRED },       /* expired at exp itself */
        { "{\"exp\":1700000001}", 0, GH_JWT_OK },
        { "{\"exp\":1699999940}", 60, GH_JWT_EXPIRED },
        { "{\"exp\":1699999941}", 60, GH_JWT_OK },
        { "{\"nbf\":1700000000}", 0, GH_JWT_OK },
        { "{\"nbf\":1700000001}", 0, GH_JWT_NOT_YET_VALID },
        { "{\"nbf\":1700000060}", 60, GH_JWT_OK },
        { "{\"nbf\":1700000061}", 60, GH_JWT_NOT_YET_VALID },
        { "{\"iat\":1700000000}", 0, GH_JWT_OK },
        { "{\"iat\":1700000001}", 0, GH_JWT_BAD_IAT },
        { "{\"iat\":1700000060}", 60, GH_JWT_OK },
        { "{\"iat\":1700000061}", 60, GH_JWT_BAD_IAT },
        { "{\"exp\":1699999940.5}", 60, GH_JWT_OK },
        { "{\"exp\":1699999939.5}", 60, GH_JWT_EXPIRED },
        { "{\"exp\":1700000000.0}", 0, GH_JWT_EXPIRED },
        { "{\"nbf\":1700000060.5}", 60, GH_JWT_NOT_YET_VALID },
        { "{\"exp\":9223372036854775807}", 60, GH_JWT_OK },   /* saturates, no overflow */
        { "{\"exp\":-9223372036854775808}", 60, GH_JWT_EXPIRED },
        { "{\"nbf\":-9223372036854775808}", 60, GH_JWT_OK },
        { "{\"iat\":9223372036854775807}", 60, GH_JWT_BAD_IAT },
        { "{\"exp\":1}", INT64_MAX, GH_JWT_OK },
        { "{\"exp\":1e300}", 0, GH_JWT_OK },
        { "{\"exp\":-1e300}", 60, GH_JWT_EXPIRED },
        { "{\"nbf\":1e300}", 60, GH_JWT_NOT_YET_VALID },
        { "{\"exp\":1700000001}", -100, GH_JWT_OK },           /* a negative skew counts as 0 */
        { "{\"nbf\":1700000000}", -100, GH_JWT_OK },
        { "{}", 0, GH_JWT_OK },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        gh_jwt_policy p = { .skew_s = rows[i].skew };
        int r = claims_at(rows[i].pl, &p, NOW);
        if (r != rows[i].want)
            fail_msg("%s skew %lld: %s", rows[i].pl, (long long)rows[i].skew, gh_jwt_result_text(r));
    }
}

/* An HMAC key verifies the HS algorithms it is long enough for, no more. */
static void test_hmac_key_length(void **state)
{
    char err[256];
    static const struct { size_t len; uint32_t algs; } rows[] = {
        { 32, BIT(GH_JWT_HS256) },
        { 47, BIT(GH_JWT_HS256) },
        { 48, BIT(GH_JWT_HS256) | BIT(GH_JWT_HS384) },
        { 64, BIT(GH_JWT_HS256) | BIT(GH_JWT_HS384) | BIT(GH_JWT_HS512) },
    };
    assert_int_equal(gh_jwt_hmac_min(GH_JWT_HS256), 32);
    assert_int_equal(gh_jwt_hmac_min(GH_JWT_HS384), 48);
    assert_int_equal(gh_jwt_hmac_min(GH_JWT_HS512), 64);
    assert_int_equal(gh_jwt_hmac_min(GH_JWT_RS256), 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        gh_jwt_keyset ks = { 0 };
        assert_true(gh_jwt_keys_add_secret(&ks, secret, rows[i].len, err, sizeof(err)));
        assert_int_equal(gh_jwt_keys_algs(&ks), rows[i].algs);
        for (int a = GH_JWT_HS256; a <= GH_JWT_HS512; a++) {
            static const char *const hdr[] = { [GH_JWT_HS256] = "{\"alg\":\"HS256\"}",
                                               [GH_JWT_HS384] = "{\"alg\":\"HS384\"}",
                                               [GH_JWT_HS512] = "{\"alg\":\"HS512\"}" };
            char *t = token_with(hdr[a], PL, a, K_HS, secret, rows[i].len);
            assert_int_equal(run(t, &ks), rows[i].algs & BIT(a) ? GH_JWT_OK : GH_JWT_NO_KEY);
            free(t);
        }
        gh_jwt_keys_free(&ks);
    }
}

/* jwt.require: presence, after the signature, named by gh_jwt_missing_claim */
static void test_required_claims(void **state)
{
    static const char *const req[] = { "exp", "jti" };
    gh_jwt_policy p = { .require = req, .nrequire = 2 };
    gh_jwt t;
    assert_int_equal(claims_at("{\"exp\":1700000600,\"jti\":\"x\"}", &p, NOW), GH_JWT_OK);
    assert_int_equal(claims_at("{\"jti\":\"x\"}", &p, NOW), GH_JWT_MISSING_CLAIM);
    char *tok = token("{\"alg\":\"HS256\"}", "{\"exp\":1700000600}", GH_JWT_HS256, K_HS);
    assert_int_equal(gh_jwt_decode(tok, strlen(tok), &t), GH_JWT_OK);
    assert_string_equal(gh_jwt_missing_claim(&t, &p), "jti");
    /* the issuer's name makes iss required: missing, not wrong */
    p.issuer = "https://issuer.example";
    assert_string_equal(gh_jwt_missing_claim(&t, &p), "iss");
    assert_int_equal(gh_jwt_check_claims(&t, &p, NOW), GH_JWT_MISSING_CLAIM);
    assert_null(gh_jwt_missing_claim(&t, NULL));
    /* missing beats expired: the claim is named before anything is compared */
    assert_int_equal(claims_at("{\"exp\":1}", &p, NOW), GH_JWT_MISSING_CLAIM);
    gh_jwt_clear(&t);
    free(tok);
}

static void test_claims(void **state)
{
    gh_jwt_policy iss_only = { .issuer = "https://issuer.example" };
    assert_int_equal(claims_at("{}", NULL, NOW), GH_JWT_OK);
    assert_int_equal(claims_at("{\"aud\":7}", &iss_only, NOW), GH_JWT_MISSING_CLAIM);
    assert_int_equal(claims_at(CL(""), &iss_only, NOW), GH_JWT_OK);
    assert_int_equal(claims_at("{\"iss\":\"https://issuer.example\",\"aud\":[]}", &policy, NOW),
                     GH_JWT_BAD_AUDIENCE);
    assert_int_equal(claims_at("{\"iss\":\"https://issuer.example\",\"aud\":\"other-api\"}", &policy, NOW),
                     GH_JWT_OK);
    assert_int_equal(claims_at("{\"iss\":\"https://issuer.example\",\"aud\":[\"x\",1,null,\"api\"]}",
                               &policy, NOW), GH_JWT_OK);
    assert_int_equal(claims_at("{\"iss\":\"https://issuer.example\",\"aud\":[[\"api\"]]}", &policy, NOW),
                     GH_JWT_BAD_AUDIENCE);
    assert_int_equal(claims_at("{\"iss\":5,\"aud\":\"api\"}", &policy, NOW), GH_JWT_BAD_ISSUER);
    /* iss points into the claims, and only at a string */
    gh_jwt t;
    char *tok = token("{\"alg\":\"HS256\"}", "{\"iss\":5}", GH_JWT_HS256, K_HS);
    assert_int_equal(gh_jwt_decode(tok, strlen(tok), &t), GH_JWT_OK);
    assert_null(t.iss);
    assert_null(t.kid);
    gh_jwt_clear(&t);
    free(tok);
}

/* ---- bounds, at the byte ---- */

static char *sized_token(size_t hdr_json, size_t total, size_t *len)
{
    char hdr[2000], pl[8000];
    for (size_t fill = 0; fill < 14000; fill++) {
        if (hdr_json)
            sprintf(hdr, "{\"alg\":\"HS256\",\"x\":\"%0*d\"}", (int)(hdr_json - 22), 0);
        else
            sprintf(hdr, fill % 2 ? "{\"alg\":\"HS256\"}" : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
        sprintf(pl, "{\"pad\":\"%0*d\",%s", (int)(fill / 2), 0, PL_TAIL);
        char *t = token(hdr, pl, GH_JWT_HS256, K_HS);
        *len = strlen(t);
        if (!total || *len == total)
            return t;
        free(t);
        if (*len + 16 < total)   /* a pad byte is 4/3 characters; fill / 2 pad bytes */
            fill += (total - *len) * 3 / 2 - 16;
    }
    fail_msg("no token of %zu bytes", total);
    return NULL;
}

static void test_bounds(void **state)
{
    static const struct { size_t hdr_json, total; int want; } rows[] = {
        { 768, 0, GH_JWT_OK },            /* header of 1024 characters */
        { 769, 0, GH_JWT_MALFORMED },     /* 1026 */
        { 0, GH_JWT_MAX_TOKEN, GH_JWT_OK },
        { 0, GH_JWT_MAX_TOKEN + 1, GH_JWT_MALFORMED },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t len;
        char *t = sized_token(rows[i].hdr_json, rows[i].total, &len);
        if (rows[i].hdr_json)
            assert_int_equal(strchr(t, '.') - t, rows[i].want ? 1026 : 1024);
        assert_int_equal(run_n(t, len, &jwks, ALL, &policy, NOW), rows[i].want);
        free(t);
    }
    gh_jwt t;
    assert_int_equal(gh_jwt_decode("", 0, &t), GH_JWT_MALFORMED);
    assert_int_equal(gh_jwt_decode(NULL, 5, &t), GH_JWT_MALFORMED);
    assert_int_equal(gh_jwt_decode("..", 2, &t), GH_JWT_MALFORMED);
    assert_int_equal(gh_jwt_verify(&t, "..", &jwks, ALL), GH_JWT_MALFORMED);   /* after a failed decode */
    gh_jwt_clear(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_every_alg),
        cmocka_unit_test(test_jwks),
        cmocka_unit_test(test_kid_selection),
        cmocka_unit_test(test_pem),
        cmocka_unit_test(test_jwks_errors),
        cmocka_unit_test(test_keys_file),
        cmocka_unit_test(test_attacks),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_clock_skew),
        cmocka_unit_test(test_hmac_key_length),
        cmocka_unit_test(test_required_claims),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
