/* jwt.c — bearer tokens (SPEC §5.1, §5.2, §12.9): the token's `iss` picks
 * one of the configured issuers, whose keys (PEM, JWKS or a secret) and
 * algorithms verify it (plugins/jwt_token.c); `sub` may name a consumer;
 * `scopes` per method are checked against `scope`/`scp`; chosen claims are
 * forwarded as headers, and client-sent copies of those headers are always
 * removed.
 *
 * Verifying a signature costs far more than proxying a request, so each
 * worker thread remembers the tokens it verified (bounded, direct-mapped):
 * a slot is chosen by the token's signature bytes (random to anyone without
 * the key) and a hit needs the very same token, byte for byte, verified by
 * the same plugin instance. A repeat pays only the time checks (exp, nbf)
 * again. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "plugins/jwt_token.h"
#include "plugins/plugin.h"

typedef struct issuer_rt {
    gh_jwt_keyset keys;
    uint32_t allowed;             /* GH_JWT_ALG_BIT set */
    gh_jwt_policy policy;
    const char **audiences;
} issuer_rt;

typedef struct jwt_rt {
    uint64_t instance;
    issuer_rt *issuers;
    size_t nissuers;
    const char **require;         /* jwt.require as C strings, shared by the issuers' policies */
} jwt_rt;

static const char challenge[] = "Bearer realm=\"gatehouse\"";

/* ------------------------------------------------------------- cache */

#define CACHE_SLOTS 1024

typedef struct cache_entry {
    char *token;                  /* owned copy */
    size_t len;
    uint64_t instance;            /* 0 = empty */
    double exp, nbf;              /* seconds, as in the token (doubles: no overflow); +-inf when absent */
    const gh_consumer_cfg *consumer;
    json_t *claims;               /* owned */
} cache_entry;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p)
{
    cache_entry *c = p;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        json_decref(c[i].claims);
        free(c[i].token);
    }
    free(c);
}

static void cache_init(void) { pthread_key_create(&cache_key, cache_free); }

static cache_entry *cache_slot(const char *tok, size_t len)
{
    pthread_once(&cache_once, cache_init);
    cache_entry *c = pthread_getspecific(cache_key);
    if (!c) {
        c = calloc(CACHE_SLOTS, sizeof(*c));
        if (!c || pthread_setspecific(cache_key, c) != 0) {
            free(c);
            return NULL;
        }
    }
    uint64_t h = len;   /* the last bytes are the signature's */
    for (size_t i = len > 16 ? len - 16 : 0; i < len; i++)
        h = (h ^ (uint8_t)tok[i]) * 1099511628211ull;
    return &c[(h ^ h >> 32) % CACHE_SLOTS];
}

static double number_claim(const json_t *claims, const char *name, double absent)
{
    const json_t *v = json_object_get(claims, name);
    return json_is_number(v) ? json_number_value(v) : absent;
}

/* --------------------------------------------------------- requests */

static int invalid(gh_plugin_run *run, const char *why)
{
    char *h = gh_arena_printf(&run->ex->arena, "Bearer realm=\"gatehouse\", error=\"invalid_token\", "
                                               "error_description=\"%s\"", why);
    char detail[128];
    snprintf(detail, sizeof(detail), "invalid token: %s", why);
    return gh_plugin_unauthorized(run, h ? h : challenge, detail);
}

/* Does the token grant every scope the rule for this method requires? */
static bool scopes_ok(const gh_jwt_cfg *c, gh_exchange *ex, const json_t *claims, const char **missing)
{
    /* the method's own rule; HEAD reads like GET; else "*" */
    const gh_scope_rule *rule = NULL, *get = NULL, *any = NULL;
    for (size_t i = 0; i < c->nscopes; i++) {
        if (gh_str_eq(c->scopes[i].method, ex->method))
            rule = &c->scopes[i];
        else if (gh_str_eq_c(c->scopes[i].method, "GET"))
            get = &c->scopes[i];
        else if (gh_str_eq_c(c->scopes[i].method, "*"))
            any = &c->scopes[i];
    }
    if (!rule && gh_str_eq_c(ex->method, "HEAD"))
        rule = get;
    if (!rule)
        rule = any;
    if (!rule)
        return true;
    const json_t *scope = json_object_get(claims, "scope");
    const json_t *scp = json_object_get(claims, "scp");
    for (size_t k = 0; k < rule->nscopes; k++) {
        gh_str want = rule->scopes[k];
        bool have = false;
        const char *s = json_string_value(scope);   /* RFC 8693: space-separated */
        while (s && *s && !have) {
            while (*s == ' ')
                s++;
            size_t n = strcspn(s, " ");
            have = n == want.len && memcmp(s, want.p, n) == 0;
            s += n;
        }
        size_t i;
        const json_t *v;
        if (json_is_array(scp))
            json_array_foreach(scp, i, v) have = have || (json_is_string(v) && gh_str_eq_c(want, json_string_value(v)));
        else if (json_is_string(scp))
            have = have || gh_str_eq_c(want, json_string_value(scp));
        if (!have) {
            *missing = want.p;
            return false;
        }
    }
    return true;
}

/* A claim as header text: strings, numbers, booleans, arrays of those
 * (comma-joined); NULL for objects, nulls and anything with a control
 * character (no header injection through a claim). */
static char *claim_text(gh_exchange *ex, const json_t *v)
{
    char buf[1024];
    size_t n = 0;
    const json_t *one[1] = { v };
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < count; i++) {
        const json_t *x = json_is_array(v) ? json_array_get(v, i) : one[0];
        int w;
        if (json_is_string(x))
            w = snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "", json_string_value(x));
        else if (json_is_integer(x))
            w = snprintf(buf + n, sizeof(buf) - n, "%s%lld", i ? "," : "", (long long)json_integer_value(x));
        else if (json_is_real(x))
            w = snprintf(buf + n, sizeof(buf) - n, "%s%.17g", i ? "," : "", json_real_value(x));
        else if (json_is_boolean(x))
            w = snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "", json_is_true(x) ? "true" : "false");
        else
            return NULL;
        if (w < 0 || (size_t)w >= sizeof(buf) - n)
            return NULL;
        n += (size_t)w;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            return NULL;
    return gh_arena_strndup(&ex->arena, buf, n);
}

/* The token is good: identity, scopes, forwarded claims. */
static int accept_token(gh_plugin_run *run, const gh_jwt_cfg *c, const json_t *claims, const gh_consumer_cfg *who)
{
    gh_exchange *ex = run->ex;
    const char *missing = NULL;
    if (!scopes_ok(c, ex, claims, &missing)) {
        char detail[160];
        snprintf(detail, sizeof(detail), "the token lacks scope '%.64s' needed for %.*s", missing,
                 (int)(ex->method.len > 16 ? 16 : ex->method.len), ex->method.p);
        return gh_plugin_forbidden(run, detail);
    }
    gh_plugin_authenticated(run, who);
    for (size_t i = 0; i < c->nforward_claims; i++) {
        const gh_claim_header *f = &c->forward_claims[i];
        const json_t *v = json_object_getn(claims, f->claim.p, f->claim.len);
        char *text = v ? claim_text(ex, v) : NULL;
        if (text)
            gh_exchange_add_header(ex, f->header.p, f->header.len, text, strlen(text));
    }
    if (c->hide_credentials)
        gh_exchange_remove_header(ex, "authorization", 13);
    return GH_PLUGIN_NEXT;
}

static const gh_consumer_cfg *consumer_of(gh_plugin_run *run, const json_t *claims)
{
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    return sub ? gh_consumers_by_jwt_subject(run->consumers, sub, strlen(sub)) : NULL;
}

static int jwt_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    const gh_jwt_cfg *c = (const gh_jwt_cfg *)conf;
    const jwt_rt *rt = conf->rt;
    gh_exchange *ex = run->ex;
    /* (client-sent copies of the claim headers went at intake: server/intake.c) */
    if (run->authenticated)
        return GH_PLUGIN_NEXT;
    const gh_header *h = gh_exchange_header(ex, "authorization", 13);
    if (!h || h->value_len < 7 || strncasecmp(h->value, "bearer ", 7) != 0) {
        gh_plugin_no_credential(run, challenge);
        return GH_PLUGIN_NEXT;
    }
    const char *tok = h->value + 7;
    size_t len = h->value_len - 7;
    while (len && *tok == ' ')
        tok++, len--;
    int64_t now = (int64_t)time(NULL), skew = (int64_t)(c->clock_skew_ms / 1000);
    cache_entry *e = cache_slot(tok, len);
    if (e && e->instance == rt->instance && e->len == len && memcmp(e->token, tok, len) == 0) {
        if ((double)now >= e->exp + (double)skew)
            return invalid(run, gh_jwt_result_text(GH_JWT_EXPIRED));
        if ((double)now < e->nbf - (double)skew)
            return invalid(run, gh_jwt_result_text(GH_JWT_NOT_YET_VALID));
        return accept_token(run, c, e->claims, e->consumer);
    }
    gh_jwt t;
    int r = gh_jwt_decode(tok, len, &t);
    if (r != GH_JWT_OK)
        return invalid(run, gh_jwt_result_text(r));
    const issuer_rt *is = NULL;
    for (size_t i = 0; i < rt->nissuers && !is; i++)
        if (c->issuers[i].issuer.len && t.iss && strcmp(t.iss, c->issuers[i].issuer.p) == 0)
            is = &rt->issuers[i];
    for (size_t i = 0; i < rt->nissuers && !is; i++)
        if (c->issuers[i].issuer.len == 0)
            is = &rt->issuers[i];
    if (!is) {   /* every issuer names one: a token without iss lacks it, one with another is wrong */
        bool has_iss = json_object_get(t.claims, "iss") != NULL;
        gh_jwt_clear(&t);
        return invalid(run, has_iss ? gh_jwt_result_text(GH_JWT_BAD_ISSUER) : "missing iss");
    }
    r = gh_jwt_verify(&t, tok, &is->keys, is->allowed);
    if (r == GH_JWT_OK)
        r = gh_jwt_check_claims(&t, &is->policy, now);
    if (r != GH_JWT_OK) {
        char why[96];
        const char *missing = r == GH_JWT_MISSING_CLAIM ? gh_jwt_missing_claim(&t, &is->policy) : NULL;
        if (missing)
            snprintf(why, sizeof(why), "missing %s", missing);   /* names checked at load: no quotes */
        gh_jwt_clear(&t);
        return invalid(run, missing ? why : gh_jwt_result_text(r));
    }
    const gh_consumer_cfg *who = consumer_of(run, t.claims);
    if (!who && c->require_consumer) {
        gh_jwt_clear(&t);
        return invalid(run, "the token's subject is not a consumer");
    }
    /* remembered before accept_token: its answer may end the exchange, and tok with it */
    char *copy = e ? malloc(len) : NULL;
    if (copy) {
        memcpy(copy, tok, len);
        json_decref(e->claims);
        free(e->token);
        e->token = copy;
        e->len = len;
        e->instance = rt->instance;
        e->exp = number_claim(t.claims, "exp", HUGE_VAL);
        e->nbf = number_claim(t.claims, "nbf", -HUGE_VAL);
        e->consumer = who;
        e->claims = json_incref(t.claims);
    }
    int step = accept_token(run, c, t.claims, who);
    gh_jwt_clear(&t);
    return step;
}

/* ---------------------------------------------------------- compile */

static atomic_uint_fast64_t instances;

static void release_rt(jwt_rt *rt)
{
    for (size_t i = 0; rt && i < rt->nissuers; i++) {
        gh_jwt_keys_free(&rt->issuers[i].keys);
        free(rt->issuers[i].audiences);
    }
    if (rt) {
        free(rt->issuers);
        free(rt->require);
    }
    free(rt);
}

static bool compile_issuer(const gh_jwt_issuer_cfg *ic, issuer_rt *is, const jwt_rt *rt, size_t nrequire,
                           int64_t skew, gh_diag *d)
{
    char err[256];
    bool ok = ic->keys_file.len ? gh_jwt_keys_add_file(&is->keys, ic->keys_file.p, err, sizeof(err))
                                : gh_jwt_keys_add_secret(&is->keys, ic->secret.p, ic->secret.len, err, sizeof(err));
    if (!ok) {
        gh_diag_error(d, ic->keys_mark, "%s", err);
        return false;
    }
    uint32_t can = gh_jwt_keys_algs(&is->keys);
    is->allowed = ic->nalgorithms ? 0 : can;
    for (size_t i = 0; i < ic->nalgorithms; i++) {
        int alg = gh_jwt_alg_from_name(ic->algorithms[i].p, ic->algorithms[i].len);
        if (!alg) {
            gh_diag_error(d, ic->algorithms_mark, "unknown algorithm '%.*s' (HS256/384/512, RS256/384/512, "
                          "PS256/384/512, ES256/384, EdDSA; never none)", (int)(ic->algorithms[i].len > 40 ? 40 :
                          ic->algorithms[i].len), ic->algorithms[i].p);
            return false;
        }
        if (!(can & GH_JWT_ALG_BIT(alg)) && gh_jwt_hmac_min(alg) && !ic->keys_file.len) {
            /* the secret is long enough for HS256 (else adding it failed), not for this one */
            gh_diag_error(d, ic->keys_mark, "the secret is %zu bytes long; %s needs at least %zu bytes (RFC 7518 3.2)",
                          ic->secret.len, gh_jwt_alg_name(alg), gh_jwt_hmac_min(alg));
            return false;
        }
        if (!(can & GH_JWT_ALG_BIT(alg))) {
            gh_diag_error(d, ic->algorithms_mark, "no key of this issuer can verify %s%s", gh_jwt_alg_name(alg),
                          gh_jwt_hmac_min(alg) ? " (an HMAC key must be as long as the hash: RFC 7518 3.2)" : "");
            return false;
        }
        is->allowed |= GH_JWT_ALG_BIT(alg);
    }
    is->audiences = calloc(ic->naudiences ? ic->naudiences : 1, sizeof(char *));
    if (!is->audiences)
        return false;
    for (size_t i = 0; i < ic->naudiences; i++)
        is->audiences[i] = ic->audiences[i].p;
    is->policy = (gh_jwt_policy){ .issuer = ic->issuer.len ? ic->issuer.p : NULL,
                                  .audiences = is->audiences, .naudiences = ic->naudiences, .skew_s = skew,
                                  .require = rt->require, .nrequire = nrequire };
    return true;
}

static bool jwt_compile(gh_plugin_cfg *conf, const gh_plugin_build *b)
{
    const gh_jwt_cfg *c = (const gh_jwt_cfg *)conf;
    jwt_rt *rt = calloc(1, sizeof(*rt));
    if (!rt || !(rt->issuers = calloc(c->nissuers, sizeof(*rt->issuers)))) {
        free(rt);
        return false;
    }
    rt->instance = atomic_fetch_add(&instances, 1) + 1;
    if (!(rt->require = calloc(c->nrequire + 1, sizeof(char *)))) {
        release_rt(rt);
        return false;
    }
    for (size_t i = 0; i < c->nrequire; i++)
        rt->require[i] = c->require[i].p;
    bool ok = true;
    for (size_t i = 0; i < c->nissuers; i++) {
        ok &= compile_issuer(&c->issuers[i], &rt->issuers[i], rt, c->nrequire, (int64_t)(c->clock_skew_ms / 1000),
                             b->diag);
        rt->nissuers = i + 1;
    }
    if (!ok) {
        release_rt(rt);
        return false;
    }
    conf->rt = rt;
    return true;
}

static void jwt_release(gh_plugin_cfg *conf) { release_rt(conf->rt); }

static void jwt_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    const gh_jwt_cfg *c = (const gh_jwt_cfg *)conf;
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->nissuers && n + 1 < cap; i++) {
        gh_str iss = c->issuers[i].issuer;
        int w = snprintf(buf + n, cap - n, "%s%.*s", i ? ", " : "issuers ", iss.len ? (int)iss.len : 3,
                         iss.len ? iss.p : "any");
        if (w > 0)
            n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
    }
    for (size_t i = 0; i < c->nforward_claims && n + 1 < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%.*s", i ? ", " : "; forwards ", (int)c->forward_claims[i].header.len,
                         c->forward_claims[i].header.p);
        if (w > 0)
            n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
    }
}

const gh_plugin_ops gh_jwt_plugin = {
    .name = "jwt", .compile = jwt_compile, .release = jwt_release, .request = jwt_request,
    .describe = jwt_describe,
};
