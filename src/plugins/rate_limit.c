/* rate_limit.c — the rate_limit plugin (SPEC §5.3, §12.13): builds the
 * request's key, asks the store (plugins/ratelimit_store.h) to count it,
 * and answers: RateLimit-* headers on every response of the route, 429
 * `rate_limited` with Retry-After over the limit.
 *
 * The key: its parts (consumer, ip, route, header:NAME) joined; `consumer`
 * falls back to the client address for requests without a consumer, and a
 * missing header does the same. The store is reached through the plugin's
 * per-worker context; the cluster store answers later (the chain WAITs)
 * and is told when the client leaves. Dry runs (`explain`) have no context
 * and count nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "plugins/plugin.h"
#include "plugins/ratelimit_store.h"

typedef struct rl_rt {
    gh_rl_policy policy;
    char policy_text[160];        /* RateLimit-Policy: "10;w=1, 1000;w=3600" */
    uint32_t policy_len, limit_len[GH_RL_MAX_LIMITS];
    char limit_text[GH_RL_MAX_LIMITS][24];   /* "100" */
    char window_text[GH_RL_MAX_LIMITS][24];  /* "1m" */
} rl_rt;

typedef struct rl_ctx {
    gh_rl_store *store;
    uint64_t passed, limited;     /* this worker's, counted after each response */
} rl_ctx;

static void window_text(char *out, size_t cap, uint64_t ms)
{
    if (ms % 3600000 == 0)
        snprintf(out, cap, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(out, cap, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, cap, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, cap, "%llums", (unsigned long long)ms);
}

static bool rl_compile(gh_plugin_cfg *conf, const gh_plugin_build *b)
{
    const gh_redis_cfg *redis = b->cfg->redis;
    const gh_rate_limit_cfg *c = (const gh_rate_limit_cfg *)conf;
    rl_rt *rt = calloc(1, sizeof(*rt));
    if (!rt || !gh_rl_local_store()) {
        free(rt);
        gh_diag_error(b->diag, conf->mark, "rate_limit: out of memory for its counters");
        return false;
    }
    rt->policy.algorithm = c->algorithm;
    rt->policy.n = c->nlimits;
    rt->policy.deny_on_error = redis && redis->on_error == GH_REDIS_ON_ERROR_DENY;
    size_t n = 0;
    uint64_t longest = 0;
    for (size_t i = 0; i < c->nlimits; i++) {
        rt->policy.limits[i] = (gh_rl_limit){ c->limits[i].limit, c->limits[i].window_ms };
        longest = c->limits[i].window_ms > longest ? c->limits[i].window_ms : longest;
        snprintf(rt->limit_text[i], sizeof(rt->limit_text[i]), "%llu", (unsigned long long)c->limits[i].limit);
        window_text(rt->window_text[i], sizeof(rt->window_text[i]), c->limits[i].window_ms);
        n += (size_t)snprintf(rt->policy_text + n, sizeof(rt->policy_text) - n, "%s%llu;w=%llu", i ? ", " : "",
                              (unsigned long long)c->limits[i].limit,
                              (unsigned long long)((c->limits[i].window_ms + 999) / 1000));
    }
    rt->policy_len = (uint32_t)strlen(rt->policy_text);
    for (size_t i = 0; i < c->nlimits; i++)
        rt->limit_len[i] = (uint32_t)strlen(rt->limit_text[i]);
    /* a sliding window still weighs the previous window; a bucket is full again after one */
    rt->policy.idle_ms = c->algorithm == GH_RL_SLIDING_WINDOW ? 2 * longest : longest;
    conf->rt = rt;
    return true;
}

static void rl_release(gh_plugin_cfg *conf) { free(conf->rt); }

static const char rate_limited[] = "rate_limited";   /* the problem code; rl_after knows it by address */
static const char unavailable[] = "rate_limit_unavailable";

static void *rl_context_new(const gh_plugin_cfg *conf, uv_loop_t *loop)
{
    rl_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx)
        ctx->store = ((const gh_rate_limit_cfg *)conf)->scope == GH_RL_CLUSTER ? gh_rl_cluster_store()
                                                                              : gh_rl_local_store();
    return ctx;
}

static void rl_context_free(void *p)
{
    rl_ctx *ctx = p;
    gh_log_debug("rate_limit: worker context released (%llu requests passed, %llu limited)",
                 (unsigned long long)ctx->passed, (unsigned long long)ctx->limited);
    free(ctx);
}

/* ---- the key ---- */

#define KEY_MAX 512

typedef struct key_part {
    char tag;                     /* what it is: '0' + GH_RL_KEY_*, or 'h' + index for a header */
    const char *what;             /* for a 429's detail */
    gh_str v;
} key_part;

/* The request's key parts: `consumer` and a missing header fall back to the client address. */
static size_t key_parts(const gh_plugin_run *run, const gh_rate_limit_cfg *c, key_part *out)
{
    const gh_exchange *ex = run->ex;
    for (size_t i = 0; i < c->nkeys; i++) {
        int kind = c->keys[i].kind;
        key_part *k = &out[i];
        k->v.p = NULL;
        if (kind == GH_RL_KEY_CONSUMER && run->consumer) {
            *k = (key_part){ '0' + GH_RL_KEY_CONSUMER, "consumer", run->consumer->name };
        } else if (kind == GH_RL_KEY_ROUTE) {
            *k = (key_part){ '0' + GH_RL_KEY_ROUTE, "route", ex->log.route };
        } else if (kind == GH_RL_KEY_HEADER) {
            const gh_header *h = gh_exchange_header(ex, c->keys[i].header.p, c->keys[i].header.len);
            if (h)   /* two header parts stay apart by their index */
                *k = (key_part){ (char)('h' + i), "header", { h->value, h->value_len } };
        }
        if (!k->v.p)
            *k = (key_part){ '0' + GH_RL_KEY_IP, "ip", gh_str_c(ex->client) };
    }
    return c->nkeys;
}

/* The key as bytes (for a store that keeps keys by name): "TAGvalue\n" per
 * part (no header value holds a newline: parts stay apart). */
static gh_str key_text(const key_part *parts, size_t n, char *k)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t vl = parts[i].v.len < KEY_MAX / GH_RL_MAX_KEYS - 2 ? parts[i].v.len : KEY_MAX / GH_RL_MAX_KEYS - 2;
        k[len++] = parts[i].tag;
        if (vl)
            memcpy(k + len, parts[i].v.p, vl);
        len += vl;
        k[len++] = '\n';
    }
    return (gh_str){ k, len };
}

/* "consumer alice", "ip 10.0.0.1, route users": who reached a limit. A
 * header's value is not echoed (it may be a credential). */
static void key_who(const gh_rate_limit_cfg *c, const key_part *parts, size_t n, char *who, size_t cap)
{
    size_t w = 0;
    who[0] = '\0';
    for (size_t i = 0; i < n && w + 1 < cap; i++) {
        int r = parts[i].tag >= 'h'
                    ? snprintf(who + w, cap - w, "%sheader %.*s", w ? ", " : "", (int)c->keys[i].header.len,
                               c->keys[i].header.p)
                    : snprintf(who + w, cap - w, "%s%s %.*s", w ? ", " : "", parts[i].what,
                               (int)(parts[i].v.len > 64 ? 64 : parts[i].v.len), parts[i].v.p);
        if (r > 0)
            w += (size_t)r < cap - w ? (size_t)r : cap - w - 1;
    }
}

/* 64-bit hash of the key parts under the configuration's seed (its
 * state_key), eight bytes a step: a multiply-xorshift mix. */
static uint64_t key_hash(uint64_t seed, const key_part *parts, size_t nparts)
{
    uint64_t h = seed;
    for (size_t i = 0; i < nparts; i++) {
        const char *k = parts[i].v.p;
        size_t n = parts[i].v.len;
        h ^= (uint64_t)(unsigned char)parts[i].tag << 56 ^ n;
        for (; n >= 8; n -= 8, k += 8) {
            uint64_t w;
            memcpy(&w, k, 8);
            h = (h ^ w) * 0xff51afd7ed558ccdULL;
            h ^= h >> 32;
        }
        uint64_t w = 0;
        if (n)
            memcpy(&w, k, n);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 29;
    }
    return h > 1 ? h : h + 2;   /* 0 and 1 mean empty and busy in the store */
}

/* ---- the answer ---- */

static uint32_t put_num(char *out, uint64_t v) { return (uint32_t)gh_u64_dec(out, v); }

#define H(name, v, vl) (gh_header){ name, v, sizeof(name) - 1, vl }

static int verdict(gh_plugin_run *run, const gh_plugin_cfg *conf, const gh_rl_verdict *v)
{
    const gh_rate_limit_cfg *c = (const gh_rate_limit_cfg *)conf;
    const rl_rt *rt = conf->rt;
    gh_exchange *ex = run->ex;
    if (v->unavailable) {
        gh_problem(ex, 503, unavailable, "the rate limit store (Redis) is unreachable and redis.on_error is deny",
                   NULL, 0, NULL);
        return GH_PLUGIN_DONE;
    }
    uint64_t reset_s = (v->reset_ms + 999) / 1000;
    char *num = gh_arena_alloc(&ex->arena, 64);   /* Remaining, Reset, Retry-After */
    if (!num) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return GH_PLUGIN_DONE;
    }
    uint32_t nrem = put_num(num, v->remaining), nreset = put_num(num + 24, reset_s);
    gh_header hs[4] = {
        H("RateLimit-Limit", rt->limit_text[v->which], rt->limit_len[v->which]),
        H("RateLimit-Remaining", num, nrem),
        H("RateLimit-Reset", num + 24, nreset),
        H("RateLimit-Policy", rt->policy_text, rt->policy_len),
    };
    gh_exchange_add_response_headers(ex, hs, 4);
    if (v->allowed)
        return GH_PLUGIN_NEXT;
    key_part parts[GH_RL_MAX_KEYS];
    char who[192], detail[320];
    key_who(c, parts, key_parts(run, c, parts), who, sizeof(who));
    snprintf(detail, sizeof(detail), "limit of %s per %s reached for %s", rt->limit_text[v->which],
             rt->window_text[v->which], who);
    gh_header h = H("Retry-After", num + 48, put_num(num + 48, reset_s ? reset_s : 1));
    gh_problem(ex, 429, rate_limited, detail, &h, 1, NULL);
    return GH_PLUGIN_DONE;
}

/* A request waiting on an asynchronous store (in the exchange's arena). */
typedef struct pending {
    gh_rl_wait w;                 /* first: the store's done gets it back */
    gh_plugin_run *run;
    const gh_plugin_cfg *conf;
    gh_rl_store *store;
} pending;

static void taken(void *arg, const gh_rl_verdict *v)
{
    pending *p = arg;
    gh_plugin_run *run = p->run;
    if (v->allowed) {
        verdict(run, p->conf, v);
        gh_plugin_resume(run, GH_PLUGIN_NEXT);
        return;
    }
    gh_plugin_resume(run, GH_PLUGIN_DONE);   /* forget the wait first: the answer may end the exchange */
    verdict(run, p->conf, v);
}

static void cancel(gh_plugin_run *run)
{
    pending *p = run->wait_ctx;
    p->store->cancel(p->store, &p->w);
}

static int rl_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    rl_ctx *ctx = gh_plugin_context(run, conf);
    if (!ctx)
        return GH_PLUGIN_NEXT;   /* a dry run: decides nothing, counts nothing */
    const gh_rate_limit_cfg *c = (const gh_rate_limit_cfg *)conf;
    const rl_rt *rt = conf->rt;
    gh_exchange *ex = run->ex;
    key_part parts[GH_RL_MAX_KEYS];
    size_t n = key_parts(run, c, parts);
    uint64_t h = key_hash(conf->state_key, parts, n);
    char text[KEY_MAX];
    gh_str key = ctx->store->wants_key ? key_text(parts, n, text) : (gh_str){ NULL, 0 };
    gh_rl_verdict v;
    pending *p = NULL;
    if (ctx->store->async) {
        p = gh_arena_alloc(&ex->arena, sizeof(*p));
        if (!p) {
            gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
            return GH_PLUGIN_DONE;
        }
        *p = (pending){ .w = { .done = taken, .redis = ex->env->redis }, .run = run, .conf = conf,
                        .store = ctx->store };
        p->w.arg = p;
    }
    int r = ctx->store->take(ctx->store, &rt->policy, key, h, gh_now_ms(ex->env), &v, p ? &p->w : NULL);
    if (r == GH_AGAIN) {
        run->cancel = cancel;
        run->wait_ctx = p;
        return GH_PLUGIN_WAIT;
    }
    return verdict(run, conf, &v);
}

static void rl_after(gh_plugin_run *run, const gh_plugin_cfg *conf, void *p)
{
    rl_ctx *ctx = p;
    if (!ctx)
        return;
    if (run->ex->log.error == rate_limited)
        ctx->limited++;
    else
        ctx->passed++;
}

static void rl_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    const gh_rate_limit_cfg *c = (const gh_rate_limit_cfg *)conf;
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->nlimits && n + 1 < cap; i++) {
        char w[24];
        window_text(w, sizeof(w), c->limits[i].window_ms);
        int r = snprintf(buf + n, cap - n, "%s%llu per %s", i ? " and " : "", (unsigned long long)c->limits[i].limit, w);
        if (r > 0)
            n += (size_t)r < cap - n ? (size_t)r : cap - n - 1;
    }
    for (size_t i = 0; i < c->nkeys && n + 1 < cap; i++) {
        static const char *const names[] = { "consumer", "ip", "route", "header:" };
        int r = snprintf(buf + n, cap - n, "%s%s%.*s", i ? "+" : " by ", names[c->keys[i].kind],
                         (int)c->keys[i].header.len, c->keys[i].header.p);
        if (r > 0)
            n += (size_t)r < cap - n ? (size_t)r : cap - n - 1;
    }
    if (n + 1 < cap)
        snprintf(buf + n, cap - n, ", %s, %s", c->algorithm == GH_RL_TOKEN_BUCKET ? "token_bucket" : "sliding_window",
                 c->scope == GH_RL_CLUSTER ? "cluster" : "local");
}

const gh_plugin_ops gh_rate_limit_plugin = {
    .name = "rate_limit",
    .compile = rl_compile,
    .release = rl_release,
    .request = rl_request,
    .describe = rl_describe,
    .context_new = rl_context_new,
    .context_free = rl_context_free,
    .after = rl_after,
};
