/* fuzz_jwt.c — libFuzzer harness for plugins/jwt_token.c, with a key set
 * from plugins/jwt_keys.c.
 *
 * Two kinds of input. Without a NUL byte it is a token as it would come in
 * an Authorization header. With one it is "header JSON \0 payload JSON
 * [\0 raw signature]": the harness encodes the parts and, when no signature
 * is given, signs with the HS secret of the set (HS384/HS512 when the header
 * mentions them), so mutations of the JSON reach the claim checks behind a
 * valid signature. The key set (an HS secret, RSA, EC P-256, Ed25519, with
 * and without kids) is built once from constants and `now` is fixed: runs
 * are deterministic. Traps on broken invariants: results in range, nothing
 * owned after a failed decode, the signing input ending at the second dot,
 * kid/iss/alg as in the JSON, an algorithm outside `allowed` always
 * BAD_ALG, verification repeatable, no issuer/audience failure without a
 * policy, and the OpenSSL error queue left empty. */
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/jwt_token.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)
#define NOW 1700000000

static const char secret[] = "fuzz-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef-x";   /* 64 bytes: HS512 */
static const char jwks_text[] =
    "{\"keys\":["
    "{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"ZnV6ei1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZi0wMTIz\"},"
    "{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\","
    "\"x\":\"WkXXsA_I7npsECvaoJHviYToUDw78gMKWu2vUN9sMTY\","
    "\"y\":\"AfvkcDlWY6Q4I3YDE2u5S1VI2XL5gijLdBcV9-KZgjs\"},"
    "{\"kty\":\"OKP\",\"kid\":\"ed\",\"crv\":\"Ed25519\",\"x\":\"bvcPgg_mPfnyFi--4dKI2y-u3a7vyt6f7MEfbpMcFRI\"}"
    "]}";
static const char rsa_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAoccs/KqweR81zgvCA+jP\n"
    "PAzQe+pBrGaFdZ18FRD6PZE1om3eFwqEl9eZ8eUkSzB9uEole3Prnl2BP1Gn8kWR\n"
    "8oqgWS9dIdwKLGtdFAofWfj5kWJIyLhnXZDWyfmAmW4LuSXPiNJrzf/jK3qOrzeA\n"
    "ZNgF61ROkuffPCWnSWpYjEoTC5uqmwYX7aW2iqlzfjwJuw88jFjEB0Kyi1LPDaDb\n"
    "6/4QxkNP7XaG0/byN72JSjlWDYlDB2jjzjdYGUoVm9kdrn0akrITqJI9bM6pLn8C\n"
    "nLVaPKveYycI9/PJR06GHIi1vx6lB8D8CwnPRzsGwvBq7oCZekhaWHQ8PZcOzMiR\n"
    "EQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static gh_jwt_keyset ks;
static const char *const auds[] = { "api", "other" };
static const gh_jwt_policy policy = { .issuer = "https://issuer.example", .audiences = auds, .naudiences = 2, .skew_s = 60 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    CHECK(gh_jwt_keys_add_text(&ks, jwks_text, strlen(jwks_text), err, sizeof(err)));
    CHECK(gh_jwt_keys_add_text(&ks, rsa_pem, strlen(rsa_pem), err, sizeof(err)));
    CHECK(gh_jwt_keys_add_secret(&ks, secret, strlen(secret), err, sizeof(err)));
    ERR_clear_error();
    return 0;
}

static size_t b64(const uint8_t *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        for (size_t k = 0; k < 4 && k <= n - i; k++)
            out[o++] = a[(v >> (18 - 6 * k)) & 63];
    }
    return o;
}

/* "header\0payload[\0signature]" as a token, in an exact-size buffer. */
static char *assemble(const uint8_t *d, size_t n, const uint8_t *z1, size_t *len)
{
    const uint8_t *p = z1 + 1, *z2 = memchr(p, 0, (size_t)(d + n - p));
    const uint8_t *s = z2 ? z2 + 1 : NULL;
    size_t hl = (size_t)(z1 - d), pl = (size_t)((z2 ? z2 : d + n) - p), sl = z2 ? (size_t)(d + n - s) : 0;
    char *t = malloc((n + 64) / 3 * 4 + 16);
    CHECK(t);
    size_t o = b64(d, hl, t);
    t[o++] = '.';
    o += b64(p, pl, t + o);
    unsigned char mac[EVP_MAX_MD_SIZE];
    if (!z2) {
        const EVP_MD *md = memmem(d, hl, "HS384", 5) ? EVP_sha384()
                           : memmem(d, hl, "HS512", 5) ? EVP_sha512() : EVP_sha256();
        unsigned int ml = 0;
        CHECK(HMAC(md, secret, (int)strlen(secret), (const unsigned char *)t, o, mac, &ml));
        s = mac;
        sl = ml;
    }
    t[o++] = '.';
    o += b64(s, sl, t + o);
    char *exact = malloc(o);
    CHECK(exact);
    memcpy(exact, t, o);
    free(t);
    *len = o;
    return exact;
}

static void check_decoded(const gh_jwt *t, const char *tok, size_t len)
{
    CHECK(t->alg > 0 && t->alg < GH_JWT_ALG_END);
    CHECK(json_is_object(t->header) && json_is_object(t->claims));
    const json_t *alg = json_object_get(t->header, "alg");
    CHECK(strcmp(json_string_value(alg), gh_jwt_alg_name(t->alg)) == 0);
    CHECK(t->kid == json_string_value(json_object_get(t->header, "kid")));
    CHECK(t->iss == json_string_value(json_object_get(t->claims, "iss")));
    CHECK(!json_object_get(t->header, "crit"));
    CHECK(t->signed_len < len && tok[t->signed_len] == '.');
    const char *d1 = memchr(tok, '.', t->signed_len);
    CHECK(d1 && !memchr(d1 + 1, '.', t->signed_len - (size_t)(d1 + 1 - tok)));
    CHECK((size_t)(d1 - tok) <= GH_JWT_MAX_HEADER);
    CHECK(t->sig_len > 0 && t->sig_len <= sizeof(t->sig));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = size;
    const uint8_t *z = size ? memchr(data, 0, size) : NULL;
    char *tok = z ? assemble(data, size, z, &len) : malloc(size ? size : 1);
    CHECK(tok);
    if (!z && size)
        memcpy(tok, data, size);
    gh_jwt t;
    int r = gh_jwt_decode(tok, len, &t);
    CHECK(r == GH_JWT_OK || r == GH_JWT_MALFORMED || r == GH_JWT_BAD_ALG);
    CHECK(gh_jwt_result_text(r)[0]);
    if (r != GH_JWT_OK) {
        CHECK(!t.header && !t.claims);
    } else {
        check_decoded(&t, tok, len);
        int v = gh_jwt_verify(&t, tok, &ks, GH_JWT_ALGS_ALL);
        CHECK(v == GH_JWT_OK || v == GH_JWT_UNKNOWN_KID || v == GH_JWT_NO_KEY
              || v == GH_JWT_BAD_SIGNATURE);
        CHECK(gh_jwt_verify(&t, tok, &ks, GH_JWT_ALGS_ALL) == v);
        CHECK(gh_jwt_verify(&t, tok, &ks, GH_JWT_ALGS_ALL & ~GH_JWT_ALG_BIT(t.alg)) == GH_JWT_BAD_ALG);
        CHECK(ERR_peek_error() == 0);
        int c = gh_jwt_check_claims(&t, &policy, NOW);
        CHECK(c == GH_JWT_OK || c == GH_JWT_MALFORMED || (c >= GH_JWT_EXPIRED && c <= GH_JWT_MISSING_CLAIM));
        int open = gh_jwt_check_claims(&t, NULL, NOW);
        CHECK(open != GH_JWT_BAD_ISSUER && open != GH_JWT_BAD_AUDIENCE && open != GH_JWT_MISSING_CLAIM);
        gh_jwt_clear(&t);
        CHECK(!t.header && !t.claims);
    }
    gh_jwt_clear(&t);
    free(tok);
    return 0;
}
