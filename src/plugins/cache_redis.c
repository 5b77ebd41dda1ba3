/* cache_redis.c — see cache_redis.h. The value: "GHC1", then little-endian
 * u32 status, i64 stored unix ms, u32 age, then length-prefixed (u32) key,
 * u32 header count and name/value pairs, and the body. */
#include "plugins/cache_redis.h"
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *put(char *o, const void *p, size_t n)
{
    memcpy(o, p, n);
    return o + n;
}

static char *put32(char *o, uint32_t v) { return put(o, &v, 4); }

char *gh_cache_encode(const gh_cache_entry *e, int64_t unix_ms, size_t *len)
{
    size_t n = 4 + 4 + 8 + 4 + 4 + e->key.len + 4 + 4 + e->body_len;
    for (size_t i = 0; i < e->nhdrs; i++)
        n += 8 + e->hdrs[i].name_len + e->hdrs[i].value_len;
    char *buf = malloc(n), *o = buf;
    if (!buf)
        return NULL;
    o = put(o, "GHC1", 4);
    o = put32(o, (uint32_t)e->status);
    o = put(o, &unix_ms, 8);
    o = put32(o, e->age0);
    o = put32(o, (uint32_t)e->key.len);
    o = put(o, e->key.p, e->key.len);
    o = put32(o, (uint32_t)e->nhdrs);
    for (size_t i = 0; i < e->nhdrs; i++) {
        o = put32(o, e->hdrs[i].name_len);
        o = put(o, e->hdrs[i].name, e->hdrs[i].name_len);
        o = put32(o, e->hdrs[i].value_len);
        o = put(o, e->hdrs[i].value, e->hdrs[i].value_len);
    }
    o = put32(o, (uint32_t)e->body_len);
    put(o, e->body, e->body_len);
    *len = n;
    return buf;
}

typedef struct rd {
    const char *p, *end;
    bool ok;
} rd;

static const char *take(rd *r, size_t n)
{
    if (!r->ok || (size_t)(r->end - r->p) < n) {
        r->ok = false;
        return NULL;
    }
    const char *at = r->p;
    r->p += n;
    return at;
}

static uint32_t take32(rd *r)
{
    uint32_t v = 0;
    const char *p = take(r, 4);
    if (p)
        memcpy(&v, p, 4);
    return v;
}

#define MAX_HEADERS 256

gh_cache_entry *gh_cache_decode(const char *p, size_t len, gh_str key, uint64_t now_ms, int64_t unix_now_ms)
{
    rd r = { p, p + len, true };
    const char *magic = take(&r, 4);
    if (!magic || memcmp(magic, "GHC1", 4) != 0)
        return NULL;
    int status = (int)take32(&r);
    int64_t unix_ms = 0;
    const char *t = take(&r, 8);
    if (t)
        memcpy(&unix_ms, t, 8);
    uint32_t age0 = take32(&r);
    uint32_t klen = take32(&r);
    const char *k = take(&r, klen);
    if (!k || klen != key.len || memcmp(k, key.p, klen) != 0)
        return NULL;   /* another key with the same hash */
    uint32_t nh = take32(&r);
    if (!r.ok || nh > MAX_HEADERS)
        return NULL;
    gh_header h[MAX_HEADERS];
    for (uint32_t i = 0; i < nh; i++) {
        uint32_t nl = take32(&r);
        const char *name = take(&r, nl);
        uint32_t vl = take32(&r);
        const char *value = take(&r, vl);
        h[i] = (gh_header){ name, value, nl, vl };
    }
    uint32_t blen = take32(&r);
    const char *body = take(&r, blen);
    if (!r.ok || r.p != r.end)
        return NULL;
    char *copy = malloc(blen ? blen : 1);
    if (!copy)
        return NULL;
    memcpy(copy, body, blen);
    gh_cache_entry *e = gh_cache_entry_new(key, (gh_str){ 0 }, (gh_str){ 0 }, status, h, nh, copy, blen);
    if (!e)
        return NULL;
    int64_t age_ms = unix_now_ms - unix_ms;
    age_ms = age_ms < 0 ? 0 : age_ms > (int64_t)now_ms ? (int64_t)now_ms : age_ms;
    e->stored_ms = now_ms - (uint64_t)age_ms;
    e->expires_ms = UINT64_MAX;   /* Redis expires it */
    e->age0 = age0;
    return e;
}

#include "core/siphash.h"

/* The Redis key: the same on every gateway (a fixed siphash key; a
 * collision only makes the value's full-key check fail: a MISS). */
static int redis_key(gh_str key, char out[40])
{
    static const uint8_t k[16] = "gatehouse-cache1";
    uint8_t h[16];
    gh_siphash128(k, key.p, key.len, h);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "gh:c:{", 6);
    for (int i = 0; i < 16; i++) {
        out[6 + 2 * i] = hex[h[i] >> 4];
        out[7 + 2 * i] = hex[h[i] & 15];
    }
    out[38] = '}';
    return 39;
}

static void on_get(void *ctx, int status, const struct redisReply *reply)
{
    gh_cache_redis_get *g = ctx;
    gh_cache_entry *e = NULL;
    if (status == GH_REDIS_OK && reply && reply->type == REDIS_REPLY_STRING) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e = gh_cache_decode(reply->str, reply->len, g->key, g->now_ms,
                            (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    }
    g->cb(g->ctx, e);
}

bool gh_cache_redis_lookup(gh_redis *r, gh_cache_redis_get *g)
{
    char name[40];
    int n = redis_key(g->key, name);
    const char *argv[] = { "GET", name };
    size_t argvlen[] = { 3, (size_t)n };
    return r && gh_redis_command(r, 2, argv, argvlen, 1, on_get, g, &g->h) == GH_REDIS_OK;
}

static void on_set(void *ctx, int status, const struct redisReply *reply)
{
    (void)ctx;
    (void)status;
    (void)reply;
}

void gh_cache_redis_store(gh_redis *r, const gh_cache_entry *e, uint64_t lifetime_ms)
{
    if (!r)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t len;
    char *value = gh_cache_encode(e, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &len);
    if (!value)
        return;
    char name[40], px[24];
    int n = redis_key(e->key, name);
    size_t pn = gh_u64_dec(px, lifetime_ms);
    const char *argv[] = { "SET", name, value, "PX", px };
    size_t argvlen[] = { 3, (size_t)n, len, 2, pn };
    gh_redis_handle h;
    gh_redis_command(r, 5, argv, argvlen, 1, on_set, NULL, &h);
    free(value);
}
