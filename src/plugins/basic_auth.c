/* basic_auth.c — HTTP Basic (RFC 7617) against password hashes (SPEC
 * §5.1, §12.8): argon2id through libargon2; bcrypt, sha256-crypt,
 * sha512-crypt and yescrypt through libcrypt.
 *
 * These hashes are slow on purpose (milliseconds), so verification runs on
 * libuv's thread pool and the chain WAITs: the worker's loop keeps serving
 * other requests. An unknown user is verified against another consumer's
 * hash, so both answers take the same time. Accepted credentials are
 * remembered per worker thread for a minute (keyed by the SHA-256 of the
 * header value and the plugin instance), so a client sending the same
 * credentials on every request pays the hash once. */
#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "plugins/plugin.h"

typedef struct basic_rt {
    uint64_t instance;            /* unique per compiled configuration: cache entries never outlive it */
    char challenge[160];
} basic_rt;

/* ------------------------------------------------------------- cache */

#define CACHE_SLOTS 256
#define CACHE_TTL_MS 60000

typedef struct cache_entry {
    uint8_t digest[32];
    uint64_t instance;
    uint64_t expires_ms;
    const gh_consumer_cfg *consumer;
} cache_entry;

static _Thread_local cache_entry cache[CACHE_SLOTS];

static cache_entry *cache_slot(const uint8_t d[32]) { return &cache[(d[0] | d[1] << 8) % CACHE_SLOTS]; }

static const gh_consumer_cfg *cache_get(const uint8_t d[32], uint64_t instance, uint64_t now)
{
    const cache_entry *e = cache_slot(d);
    if (e->instance == instance && e->expires_ms > now && CRYPTO_memcmp(e->digest, d, 32) == 0)
        return e->consumer;
    return NULL;
}

/* ----------------------------------------------------------- verify */

typedef struct job {
    uv_work_t work;
    gh_plugin_run *run;           /* NULL once the client has gone */
    const gh_basic_auth_cfg *conf;
    const gh_consumer_cfg *consumer;   /* the user's, or NULL (then the dummy hash) */
    char *password;
    char *hash;
    uint8_t digest[32];
    bool ok;
} job;

static bool verify(const char *password, const char *hash)
{
    if (strncmp(hash, "$argon2", 7) == 0)
        return argon2_verify(hash, password, strlen(password), Argon2_id) == ARGON2_OK;
    struct crypt_data *data = calloc(1, sizeof(*data));
    if (!data)
        return false;
    const char *out = crypt_r(password, hash, data);
    size_t n = strlen(hash);
    bool ok = out && out[0] != '*' && strlen(out) == n && CRYPTO_memcmp(out, hash, n) == 0;
    OPENSSL_cleanse(data, sizeof(*data));
    free(data);
    return ok;
}

static void work_run(uv_work_t *w)
{
    job *j = w->data;
    j->ok = verify(j->password, j->hash) && j->consumer;
}

static void job_free(job *j)
{
    OPENSSL_cleanse(j->password, strlen(j->password));
    free(j->password);
    free(j->hash);
    free(j);
}

static void work_done(uv_work_t *w, int status)
{
    job *j = w->data;
    gh_plugin_run *run = j->run;
    if (!run) {   /* the exchange is gone */
        job_free(j);
        return;
    }
    const basic_rt *rt = j->conf->base.rt;
    if (status != 0 || !j->ok) {
        job_free(j);
        gh_plugin_resume(run, GH_PLUGIN_DONE);   /* before answering: the answer may end the exchange */
        gh_plugin_unauthorized(run, rt->challenge, "invalid username or password");
        return;
    }
    cache_entry *e = cache_slot(j->digest);
    memcpy(e->digest, j->digest, 32);
    e->instance = rt->instance;
    e->expires_ms = gh_now_ms(run->ex->env) + CACHE_TTL_MS;
    e->consumer = j->consumer;
    gh_plugin_authenticated(run, j->consumer);
    if (j->conf->hide_credentials)
        gh_exchange_remove_header(run->ex, "authorization", 13);
    job_free(j);
    gh_plugin_resume(run, GH_PLUGIN_NEXT);
}

static void cancel(gh_plugin_run *run)
{
    ((job *)run->wait_ctx)->run = NULL;
}

/* ---------------------------------------------------------- request */

static int basic_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    const gh_basic_auth_cfg *c = (const gh_basic_auth_cfg *)conf;
    const basic_rt *rt = conf->rt;
    gh_exchange *ex = run->ex;
    if (run->authenticated)
        return GH_PLUGIN_NEXT;
    const gh_header *h = gh_exchange_header(ex, "authorization", 13);
    if (!h || h->value_len < 6 || strncasecmp(h->value, "basic ", 6) != 0) {
        gh_plugin_no_credential(run, rt->challenge);
        return GH_PLUGIN_NEXT;
    }
    const char *b64 = h->value + 6;
    size_t blen = h->value_len - 6;
    while (blen && *b64 == ' ')
        b64++, blen--;
    uint8_t digest[32];
    gh_sha256(h->value, h->value_len, digest);
    const gh_consumer_cfg *cached = cache_get(digest, rt->instance, gh_now_ms(ex->env));
    if (cached) {
        gh_plugin_authenticated(run, cached);
        if (c->hide_credentials)
            gh_exchange_remove_header(ex, "authorization", 13);
        return GH_PLUGIN_NEXT;
    }
    char *plain = blen && blen % 4 == 0 && blen <= 1024 ? gh_arena_alloc(&ex->arena, blen / 4 * 3 + 1) : NULL;
    int n = plain ? EVP_DecodeBlock((unsigned char *)plain, (const unsigned char *)b64, (int)blen) : -1;
    for (size_t i = blen; n > 0 && i > 0 && b64[i - 1] == '='; i--)
        n--;   /* EVP_DecodeBlock counts padding as bytes */
    char *colon = n > 0 ? memchr(plain, ':', (size_t)n) : NULL;
    if (!colon || memchr(plain, '\0', (size_t)n))
        return gh_plugin_unauthorized(run, rt->challenge, "malformed Basic credentials");
    plain[n] = '\0';
    const gh_consumer_cfg *who = gh_consumers_by_user(run->consumers, plain, (size_t)(colon - plain));
    const char *hash = who ? who->basic_hash.p : gh_consumers_any_hash(run->consumers);
    if (!hash)
        return gh_plugin_unauthorized(run, rt->challenge, "invalid username or password");
    job *j = calloc(1, sizeof(*j));
    if (j) {
        j->password = strdup(colon + 1);
        j->hash = strdup(hash);
    }
    OPENSSL_cleanse(plain, (size_t)n);
    if (!j || !j->password || !j->hash) {
        if (j)
            job_free(j);   /* strdup'd password is cleansed there */
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return GH_PLUGIN_DONE;
    }
    j->run = run;
    j->conf = c;
    j->consumer = who;
    memcpy(j->digest, digest, 32);
    j->work.data = j;
    if (uv_queue_work(ex->env->loop, &j->work, work_run, work_done) != 0) {
        job_free(j);
        gh_problem(ex, 500, "internal_error", "cannot verify the password now", NULL, 0, NULL);
        return GH_PLUGIN_DONE;
    }
    run->cancel = cancel;
    run->wait_ctx = j;
    return GH_PLUGIN_WAIT;
}

static atomic_uint_fast64_t instances;

static bool basic_compile(gh_plugin_cfg *conf, const gh_plugin_build *b)
{
    const gh_basic_auth_cfg *c = (const gh_basic_auth_cfg *)conf;
    basic_rt *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return false;
    rt->instance = atomic_fetch_add(&instances, 1) + 1;
    snprintf(rt->challenge, sizeof(rt->challenge), "Basic realm=\"%.*s\", charset=\"UTF-8\"",
             (int)(c->realm.len > 100 ? 100 : c->realm.len), c->realm.p);
    conf->rt = rt;
    return true;
}

static void basic_release(gh_plugin_cfg *conf) { free(conf->rt); }

static void basic_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    const gh_basic_auth_cfg *c = (const gh_basic_auth_cfg *)conf;
    snprintf(buf, cap, "realm %.*s%s", (int)c->realm.len, c->realm.p, c->hide_credentials ? ", hidden" : "");
}

const gh_plugin_ops gh_basic_auth_plugin = {
    .name = "basic_auth", .compile = basic_compile, .release = basic_release,
    .request = basic_request, .describe = basic_describe,
};
