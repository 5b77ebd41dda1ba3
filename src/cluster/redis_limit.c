/* redis_limit.c — the rate-limit scripts: one EVALSHA per request, atomic
 * in Redis, so any number of gateways share one count.
 *
 * Each limit is one Redis hash, "gh:rl:{KEY}" (one key, so one slot in a
 * Redis Cluster), expiring once it no longer matters. Both scripts answer
 * {allowed, remaining, reset_ms}. The scripts are loaded on every new
 * connection (SCRIPT LOAD, pipelined behind AUTH) and again when Redis says
 * NOSCRIPT (restarted, flushed, failed over). */
#include "cluster/redis_int.h"
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"

/* The clock: the caller's now_ms, or Redis's TIME when 0 (one clock for the
 * fleet). Scripts may call TIME since Redis 5 (effects replication). */
#define CLOCK                                                                        \
    "local limit = tonumber(ARGV[1])\n"                                              \
    "local window = tonumber(ARGV[2])\n"                                             \
    "local now = tonumber(ARGV[3])\n"                                                \
    "if now == 0 then\n"                                                             \
    "  local t = redis.call('TIME')\n"                                               \
    "  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"            \
    "end\n"

/* Two buckets (Cloudflare's and Kong's approximation): the previous
 * window's count weighted by how much of it the sliding window still
 * covers, plus the current window's. Allowed while that is below limit;
 * refused requests are not counted. */
static const char sliding_window_lua[] =
    CLOCK
    "local idx = math.floor(now / window)\n"
    "local h = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')\n"
    "local w = tonumber(h[1]) or idx\n"
    "local cur = tonumber(h[2]) or 0\n"
    "local prev = tonumber(h[3]) or 0\n"
    "if idx == w + 1 then prev = cur; cur = 0\n"
    "elseif idx > w + 1 then prev = 0; cur = 0\n"
    "elseif idx < w then idx = w end\n"          /* a gateway whose clock is behind counts in the newest window */
    "local elapsed = now - idx * window\n"
    "if elapsed < 0 then elapsed = 0 end\n"
    "if elapsed >= window then elapsed = window - 1 end\n"
    "local function wait(c)\n"                   /* ms until prev*(window-e)/window + c < limit */
    "  if c >= limit then\n"
    "    return window - elapsed + math.floor(window * (1 - limit / c)) + 1\n"
    "  end\n"
    "  if prev == 0 then return 0 end\n"
    "  local e = math.floor(window * (1 - (limit - c) / prev)) + 1\n"
    "  if e <= elapsed then return 0 end\n"
    "  return e - elapsed\n"
    "end\n"
    "local est = prev * (window - elapsed) / window + cur\n"
    "if est >= limit then return {0, 0, wait(cur)} end\n"
    "cur = cur + 1\n"
    "redis.call('HSET', KEYS[1], 'w', idx, 'c', cur, 'p', prev)\n"
    "redis.call('PEXPIRE', KEYS[1], 2 * window)\n"
    "local remaining = math.ceil(limit - est - 1)\n"
    "if remaining < 0 then remaining = 0 end\n"
    "local reset = 0\n"
    "if remaining == 0 then reset = wait(cur) end\n"
    "return {1, remaining, reset}\n";

/* limit tokens, refilled evenly over window; a full bucket is the same as
 * no key, so the key expires when it would be full again. */
static const char token_bucket_lua[] =
    CLOCK
    "local h = redis.call('HMGET', KEYS[1], 't', 'ts')\n"
    "local tokens = tonumber(h[1])\n"
    "local ts = tonumber(h[2])\n"
    "if tokens == nil or ts == nil then tokens = limit; ts = now end\n"
    "if now > ts then\n"
    "  tokens = math.min(limit, tokens + (now - ts) * limit / window)\n"
    "  ts = now\n"
    "end\n"
    "local allowed = 0\n"
    "if tokens >= 1 then tokens = tokens - 1; allowed = 1 end\n"
    "local reset = 0\n"
    "if tokens < 1 then reset = math.ceil((1 - tokens) * window / limit) end\n"
    "redis.call('HSET', KEYS[1], 't', tokens, 'ts', ts)\n"
    "redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((limit - tokens) * window / limit)))\n"
    "return {allowed, math.floor(tokens), reset}\n";

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

int gh_redis_limit(gh_redis *c, int algo, const char *key, size_t keylen, uint64_t limit, uint64_t window_ms,
                   uint64_t now_ms, gh_redis_limit_cb cb, void *ctx, gh_redis_handle *h)
{
    if (algo < 0 || algo > GH_REDIS_TOKEN_BUCKET || limit == 0 || window_ms == 0)
        return GH_REDIS_ERROR;
    char stack[512], *k = stack;
    size_t klen = keylen + 8;   /* "gh:rl:{" KEY "}" */
    if (klen > sizeof(stack) && !(k = malloc(klen)))
        return GH_REDIS_UNAVAILABLE;
    memcpy(k, "gh:rl:{", 7);
    memcpy(k + 7, key, keylen);
    k[klen - 1] = '}';
    char nums[3][24];
    int nl = snprintf(nums[0], sizeof(nums[0]), "%" PRIu64, limit);
    int nw = snprintf(nums[1], sizeof(nums[1]), "%" PRIu64, window_ms);
    int nn = snprintf(nums[2], sizeof(nums[2]), "%" PRIu64, now_ms);
    const char *argv[7] = { "EVALSHA", c->sha[algo], "1", k, nums[0], nums[1], nums[2] };
    size_t len[7] = { 7, 40, 1, klen, (size_t)nl, (size_t)nw, (size_t)nn };
    char *cmd = NULL;
    long long n = redisFormatCommandArgv(&cmd, 7, argv, len);
    unsigned slot = gh_redis_key_slot(k, klen);
    if (k != stack)
        free(k);
    if (n < 0)
        return GH_REDIS_UNAVAILABLE;
    gh_redis_req *req;
    int st = gh_redis_submit(c, cmd, (size_t)n, (int)slot, &req);
    if (st == GH_REDIS_OK) {
        req->lcb = cb;
        req->ctx = ctx;
        req->limit = limit;
        *h = (gh_redis_handle){ req, req->seq };
    }
    return st;
}

void gh_redis_verdict_answer(gh_redis_req *req, int status, const redisReply *r)
{
    if (status == GH_REDIS_OK) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[1]->type == REDIS_REPLY_INTEGER && r->element[2]->type == REDIS_REPLY_INTEGER) {
            gh_redis_verdict v = {
                .allowed = r->element[0]->integer == 1,
                .limit = req->limit,
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
