/* cache_redis.c — see cache_redis.h. The value: "GHC1", then little-endian
 * u32 status, i64 stored unix ms, u32 age, then length-prefixed (u32) key,
 * u32 header count and name/value pairs, and the body. */
#include "plugins/cache_redis.h"
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/siphash.h"

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

/* hex of 16 siphash bytes of p, n of them (a fixed key: the same on every
 * gateway; a collision only makes the value's full-key check fail) */
static char *hex_hash(char *o, gh_str p, int n)
{
    static const uint8_t k[16] = "gatehouse-cache1";
    static const char hex[] = "0123456789abcdef";
    uint8_t h[16];
    gh_siphash128(k, p.p ? p.p : "", p.len, h);
    for (int i = 0; i < n; i++) {
        *o++ = hex[h[i] >> 4];
        *o++ = hex[h[i] & 15];
    }
    return o;
}

/* "gh:c:{ROUTE}:PATH:" (hashes): the prefix of the route's (route+path's)
 * keys, the route in the hash tag; path NULL stops after the route. */
static char *key_prefix(char *o, gh_str route, const gh_str *path)
{
    memcpy(o, "gh:c:{", 6);
    o = hex_hash(o + 6, route, 8);
    *o++ = '}';
    *o++ = ':';
    if (path) {
        o = hex_hash(o, *path, 8);
        *o++ = ':';
    }
    return o;
}

static int redis_key(gh_str route, gh_str path, gh_str key, char out[GH_CACHE_REDIS_KEY])
{
    char *o = hex_hash(key_prefix(out, route, &path), key, 16);
    return (int)(o - out);
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
    char name[GH_CACHE_REDIS_KEY];
    int n = redis_key(g->route, g->path, g->key, name);
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
    char name[GH_CACHE_REDIS_KEY], px[24];
    int n = redis_key(e->route, e->path, e->key, name);
    size_t pn = gh_u64_dec(px, lifetime_ms);
    const char *argv[] = { "SET", name, value, "PX", px };
    size_t argvlen[] = { 3, (size_t)n, len, 2, pn };
    gh_redis_handle h;
    gh_redis_command(r, 5, argv, argvlen, 1, on_set, NULL, &h);
    free(value);
}

/* ---------------------------------------------------------------- purge -- */

static void scan(gh_cache_redis_purge *p);

static void purge_end(gh_cache_redis_purge *p, int status)
{
    p->h = (gh_redis_handle){ 0 };
    p->cb(p->ctx, status, p->deleted);
}

static void on_unlink(void *ctx, int status, const struct redisReply *reply)
{
    gh_cache_redis_purge *p = ctx;
    if (status != GH_REDIS_OK || !reply || reply->type != REDIS_REPLY_INTEGER) {
        purge_end(p, status == GH_REDIS_OK ? GH_REDIS_ERROR : status);
        return;
    }
    p->deleted += (uint64_t)reply->integer;
    if (strcmp(p->cursor, "0") == 0)
        purge_end(p, GH_REDIS_OK);
    else
        scan(p);
}

static void on_scan(void *ctx, int status, const struct redisReply *reply)
{
    gh_cache_redis_purge *p = ctx;
    if (status != GH_REDIS_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[0]->len >= sizeof(p->cursor) ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        purge_end(p, status == GH_REDIS_OK ? GH_REDIS_ERROR : status);
        return;
    }
    memcpy(p->cursor, reply->element[0]->str, reply->element[0]->len);
    p->cursor[reply->element[0]->len] = '\0';
    const struct redisReply *keys = reply->element[1];
    if (keys->elements == 0) {
        if (strcmp(p->cursor, "0") == 0)
            purge_end(p, GH_REDIS_OK);
        else
            scan(p);
        return;
    }
    /* one UNLINK for the batch: the keys share the route's slot */
    size_t n = keys->elements + 1;
    const char **argv = malloc(n * sizeof(*argv));
    size_t *argvlen = malloc(n * sizeof(*argvlen));
    if (!argv || !argvlen) {
        free(argv);
        free(argvlen);
        purge_end(p, GH_REDIS_ERROR);
        return;
    }
    argv[0] = "UNLINK";
    argvlen[0] = 6;
    for (size_t i = 0; i < keys->elements; i++) {
        argv[i + 1] = keys->element[i]->str;
        argvlen[i + 1] = keys->element[i]->len;
    }
    int rc = gh_redis_command(p->r, (int)n, argv, argvlen, 1, on_unlink, p, &p->h);
    free(argv);
    free(argvlen);
    if (rc != GH_REDIS_OK)
        purge_end(p, rc);
}

static void scan(gh_cache_redis_purge *p)
{
    /* the pattern carries the route's hash tag: Cluster sends it to the node of the route's slot */
    const char *argv[] = { "SCAN", p->cursor, "MATCH", p->pattern, "COUNT", "1000" };
    size_t argvlen[] = { 4, strlen(p->cursor), 5, p->plen, 5, 4 };
    int rc = gh_redis_command(p->r, 6, argv, argvlen, 3, on_scan, p, &p->h);
    if (rc != GH_REDIS_OK)
        purge_end(p, rc);
}

void gh_cache_redis_purge_start(gh_redis *r, gh_cache_redis_purge *p, gh_str route, gh_str path)
{
    p->r = r;
    p->deleted = 0;
    char *o = key_prefix(p->pattern, route, path.len ? &path : NULL);
    *o++ = '*';
    p->plen = (size_t)(o - p->pattern);
    memcpy(p->cursor, "0", 2);
    scan(p);
}

void gh_cache_redis_purge_cancel(gh_cache_redis_purge *p) { gh_redis_cancel(p->h); }
