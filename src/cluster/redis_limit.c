/* redis_limit.c — the rate-limit scripts: one EVALSHA per request, atomic
 * in Redis, so any number of gateways share one count.
 *
 * Each limit is one Redis hash: "gh:rl:{KEY}" for the first of a call's
 * limits, "gh:rl:{KEY}:I" for the others (one hash tag: one slot in a Redis
 * Cluster, so one script sees them all), expiring once it no longer
 * matters. All of a request's limits go in one call. The scripts are loaded on every new
 * connection (SCRIPT LOAD, pipelined behind AUTH) and again when Redis says
 * NOSCRIPT (restarted, flushed, failed over). */
#include "cluster/redis_int.h"
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "core/str.h"

/* Every script: KEYS are the limits' hashes (one per limit, one hash tag,
 * so one slot), ARGV = now, then limit and window (ms) per limit. The
 * clock is the caller's now, or Redis's TIME when 0 (one clock for the
 * fleet; scripts may call TIME since Redis 5, effects replication). All
 * limits are looked at first; the request is counted in all of them only
 * when every one has room, so a refused request counts nowhere. The answer
 * is {allowed, remaining, reset_ms, which}: which (from 0) is the refusing
 * limit with the longest wait, else the one closest to refusing. */
#define PROLOGUE                                                                     \
    "local now = tonumber(ARGV[1])\n"                                                \
    "if now == 0 then\n"                                                             \
    "  local t = redis.call('TIME')\n"                                               \
    "  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"           \
    "end\n"                                                                          \
    "local s = {}\n"                                                                 \
    "local which, longest = 0, -1\n"

/* The answer once s[i].remaining and s[i].reset are known for all. */
#define EPILOGUE                                                                     \
    "local best = 1\n"                                                               \
    "for i = 2, #KEYS do\n"                                                          \
    "  local x, b = s[i], s[best]\n"                                                 \
    "  if x.remaining < b.remaining or (x.remaining == b.remaining and x.reset > b.reset) then best = i end\n" \
    "end\n"                                                                          \
    "return {1, s[best].remaining, s[best].reset, best - 1}\n"

/* Two buckets (Cloudflare's and Kong's approximation): the previous
 * window's count weighted by how much of it the sliding window still
 * covers, plus the current window's. Allowed while that is below limit. */
static const char sliding_window_lua[] =
    PROLOGUE
    "local function wait(x, c)\n"                /* ms until prev*(window-e)/window + c < limit */
    "  if c >= x.limit then\n"
    "    return x.window - x.elapsed + math.floor(x.window * (1 - x.limit / c)) + 1\n"
    "  end\n"
    "  if x.prev == 0 then return 0 end\n"
    "  local e = math.floor(x.window * (1 - (x.limit - c) / x.prev)) + 1\n"
    "  if e <= x.elapsed then return 0 end\n"
    "  return e - x.elapsed\n"
    "end\n"
    "for i = 1, #KEYS do\n"
    "  local x = { limit = tonumber(ARGV[2 * i]), window = tonumber(ARGV[2 * i + 1]) }\n"
    "  x.idx = math.floor(now / x.window)\n"
    "  local h = redis.call('HMGET', KEYS[i], 'w', 'c', 'p')\n"
    "  local w = tonumber(h[1]) or x.idx\n"
    "  x.cur = tonumber(h[2]) or 0\n"
    "  x.prev = tonumber(h[3]) or 0\n"
    "  if x.idx == w + 1 then x.prev = x.cur; x.cur = 0\n"
    "  elseif x.idx > w + 1 then x.prev = 0; x.cur = 0\n"
    "  elseif x.idx < w then x.idx = w end\n"    /* a gateway whose clock is behind counts in the newest window */
    "  x.elapsed = now - x.idx * x.window\n"
    "  if x.elapsed < 0 then x.elapsed = 0 end\n"
    "  if x.elapsed >= x.window then x.elapsed = x.window - 1 end\n"
    "  x.est = x.prev * (x.window - x.elapsed) / x.window + x.cur\n"
    "  if x.est >= x.limit then\n"
    "    local r = wait(x, x.cur)\n"
    "    if r > longest then which = i; longest = r end\n"
    "  end\n"
    "  s[i] = x\n"
    "end\n"
    "if which > 0 then return {0, 0, longest, which - 1} end\n"
    "for i = 1, #KEYS do\n"
    "  local x = s[i]\n"
    "  x.cur = x.cur + 1\n"
    "  redis.call('HSET', KEYS[i], 'w', x.idx, 'c', x.cur, 'p', x.prev)\n"
    "  redis.call('PEXPIRE', KEYS[i], 2 * x.window)\n"
    "  x.remaining = math.ceil(x.limit - x.est - 1)\n"
    "  if x.remaining < 0 then x.remaining = 0 end\n"
    "  x.reset = 0\n"
    "  if x.remaining == 0 then x.reset = wait(x, x.cur) end\n"
    "end\n"
    EPILOGUE;

/* limit tokens, refilled evenly over window; a full bucket is the same as
 * no key, so the key expires when it would be full again. */
static const char token_bucket_lua[] =
    PROLOGUE
    "for i = 1, #KEYS do\n"
    "  local x = { limit = tonumber(ARGV[2 * i]), window = tonumber(ARGV[2 * i + 1]) }\n"
    "  local h = redis.call('HMGET', KEYS[i], 't', 'ts')\n"
    "  x.tokens = tonumber(h[1])\n"
    "  x.ts = tonumber(h[2])\n"
    "  if x.tokens == nil or x.ts == nil then x.tokens = x.limit; x.ts = now end\n"
    "  if now > x.ts then\n"
    "    x.tokens = math.min(x.limit, x.tokens + (now - x.ts) * x.limit / x.window)\n"
    "    x.ts = now\n"
    "  end\n"
    "  if x.tokens < 1 then\n"
    "    local r = math.ceil((1 - x.tokens) * x.window / x.limit)\n"
    "    if r > longest then which = i; longest = r end\n"
    "  end\n"
    "  s[i] = x\n"
    "end\n"
    "if which > 0 then return {0, 0, longest, which - 1} end\n"
    "for i = 1, #KEYS do\n"
    "  local x = s[i]\n"
    "  x.tokens = x.tokens - 1\n"
    "  x.reset = 0\n"
    "  if x.tokens < 1 then x.reset = math.ceil((1 - x.tokens) * x.window / x.limit) end\n"
    "  redis.call('HSET', KEYS[i], 't', x.tokens, 'ts', x.ts)\n"
    "  redis.call('PEXPIRE', KEYS[i], math.max(1, math.ceil((x.limit - x.tokens) * x.window / x.limit)))\n"
    "  x.remaining = math.floor(x.tokens)\n"
    "end\n"
    EPILOGUE;

static const char *const scripts[2] = {
    [GH_REDIS_SLIDING_WINDOW] = sliding_window_lua,
    [GH_REDIS_TOKEN_BUCKET] = token_bucket_lua,
};

void gh_redis_scripts_init(gh_redis *c)
{
    for (int i = 0; i < 2; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        EVP_Digest(scripts[i], strlen(scripts[i]), md, &mdlen, EVP_sha1(), NULL);
        for (unsigned k = 0; k < mdlen && k < 20; k++)
            snprintf(c->sha[i] + 2 * k, 3, "%02x", md[k]);
    }
}

static void on_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    gh_redis_node *n = privdata;
    redisReply *r = reply;
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        if (!n->auth_failed)
            gh_log_warn("redis %s: SCRIPT LOAD: %s", n->name, r->str);
        return;
    }
    /* the connection works end to end (AUTH passed): back-off starts over */
    n->answered = true;
    n->auth_failed = false;
    n->backoff_ms = GH_REDIS_BACKOFF_MIN_MS;
    (void)ac;
}

void gh_redis_scripts_load(gh_redis_node *n)
{
    for (int i = 0; i < 2; i++) {
        const char *argv[3] = { "SCRIPT", "LOAD", scripts[i] };
        size_t len[3] = { 6, 4, strlen(scripts[i]) };
        gh_redis_node_internal(n, on_loaded, 3, argv, len);
    }
}

bool gh_redis_is_noscript(const redisReply *r) { return r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0; }

/* One RESP bulk string: "$LEN\r\nBYTES\r\n". */
static char *put_bulk(char *p, const char *s, size_t n)
{
    *p++ = '$';
    p += gh_u64_dec(p, n);
    *p++ = '\r', *p++ = '\n';
    memcpy(p, s, n);
    p += n;
    *p++ = '\r', *p++ = '\n';
    return p;
}

static char *put_num(char *p, uint64_t v)
{
    char d[20];
    return put_bulk(p, d, gh_u64_dec(d, v));
}

int gh_redis_limits(gh_redis *c, int algo, const char *key, size_t keylen, const gh_redis_window *w, size_t n,
                    uint64_t now_ms, gh_redis_limit_cb cb, void *ctx, gh_redis_handle *h)
{
    if (algo < 0 || algo > GH_REDIS_TOKEN_BUCKET || n == 0 || n > GH_REDIS_MAX_LIMITS)
        return GH_REDIS_ERROR;
    for (size_t i = 0; i < n; i++)
        if (w[i].limit == 0 || w[i].window_ms == 0)
            return GH_REDIS_ERROR;
    /* EVALSHA sha n KEY KEY:1 ... now limit window ..., in RESP by hand
     * (one request per call: printf's machinery would cost more than the
     * rest of the call); keys "gh:rl:{KEY}", "gh:rl:{KEY}:1", ... */
    size_t klen = keylen + 8, argc = 4 + 3 * n;
    /* "*N\r\n", then per argument "$LEN\r\n" and "\r\n" (25 at most) and its
     * bytes: 7 + 40 + 1, the keys, and 1 + 2n numbers of up to 20 digits */
    size_t room = 23 + argc * 25 + 48 + n * (klen + 2) + (1 + 2 * n) * 20;
    char *cmd = malloc(room), *p = cmd, *key0;
    if (!cmd)
        return GH_REDIS_UNAVAILABLE;
    *p++ = '*';
    p += gh_u64_dec(p, argc);
    *p++ = '\r', *p++ = '\n';
    p = put_bulk(p, "EVALSHA", 7);
    p = put_bulk(p, c->sha[algo], 40);
    p = put_num(p, n);
    for (size_t i = 0; i < n; i++) {
        size_t l = klen + (i ? 2 : 0);
        *p++ = '$';
        p += gh_u64_dec(p, l);
        *p++ = '\r', *p++ = '\n';
        if (i == 0)
            key0 = p;
        memcpy(p, "gh:rl:{", 7);
        memcpy(p + 7, key, keylen);
        p += klen;
        p[-1] = '}';
        if (i)
            *p++ = ':', *p++ = (char)('0' + i);
        *p++ = '\r', *p++ = '\n';
    }
    p = put_num(p, now_ms);
    for (size_t i = 0; i < n; i++) {
        p = put_num(p, w[i].limit);
        p = put_num(p, w[i].window_ms);
    }
    /* the slot matters only to Redis Cluster */
    int slot = c->cfg.cluster ? (int)gh_redis_key_slot(key0, klen) : -1;
    gh_redis_req *req;
    int st = gh_redis_submit(c, cmd, (size_t)(p - cmd), slot, &req);
    if (st == GH_REDIS_OK) {
        req->lcb = cb;
        req->ctx = ctx;
        req->nlimits = n;
        for (size_t i = 0; i < n; i++)
            req->limits[i] = w[i].limit;
        *h = (gh_redis_handle){ req, req->seq };
    }
    return st;
}

int gh_redis_limit(gh_redis *c, int algo, const char *key, size_t keylen, uint64_t limit, uint64_t window_ms,
                   uint64_t now_ms, gh_redis_limit_cb cb, void *ctx, gh_redis_handle *h)
{
    gh_redis_window w = { limit, window_ms };
    return gh_redis_limits(c, algo, key, keylen, &w, 1, now_ms, cb, ctx, h);
}

void gh_redis_verdict_answer(gh_redis_req *req, int status, const redisReply *r)
{
    if (status == GH_REDIS_OK) {
        bool ints = r->type == REDIS_REPLY_ARRAY && r->elements == 4;
        for (size_t i = 0; ints && i < 4; i++)
            ints = r->element[i]->type == REDIS_REPLY_INTEGER;
        if (ints && r->element[3]->integer >= 0 && (size_t)r->element[3]->integer < req->nlimits) {
            size_t which = (size_t)r->element[3]->integer;
            gh_redis_verdict v = {
                .allowed = r->element[0]->integer == 1,
                .which = which,
                .limit = req->limits[which],
                .remaining = r->element[1]->integer > 0 ? (uint64_t)r->element[1]->integer : 0,
                .reset_ms = r->element[2]->integer > 0 ? (uint64_t)r->element[2]->integer : 0,
            };
            req->lcb(req->ctx, GH_REDIS_OK, &v);
            return;
        }
        status = GH_REDIS_ERROR;   /* not our script's answer */
    }
    if (status == GH_REDIS_ERROR && r && r->type == REDIS_REPLY_ERROR)
        gh_log_debug("redis rate limit: %.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
    req->lcb(req->ctx, status, NULL);
}
