#include "http/exchange.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* An exchange and the first block of its arena are one allocation, recycled
 * through the worker's free list: a typical request allocates nothing. */
#define EXCHANGE_ARENA_BYTES 6144
#define MAX_FREE_EXCHANGES 256

typedef struct exchange_slab {
    gh_exchange ex;
    _Alignas(16) unsigned char mem[EXCHANGE_ARENA_BYTES];
} exchange_slab;

gh_exchange *gh_exchange_new(gh_http_env *env)
{
    exchange_slab *s;
    if (env->free_exchanges) {
        s = (exchange_slab *)env->free_exchanges;
        env->free_exchanges = *(gh_exchange **)s->mem;
        env->nfree_exchanges--;
    } else {
        s = malloc(sizeof(*s));
        if (!s)
            return NULL;
    }
    gh_exchange *ex = &s->ex;
    memset(ex, 0, sizeof(*ex));
    gh_arena_init_with(&ex->arena, s->mem, sizeof(s->mem), 8192);
    ex->env = env;
    ex->start_ms = gh_now_ms(env);
    ex->start_ns = uv_hrtime();
    ex->log.upstream_us = -1;
    ex->body_limit = env->limits ? env->limits->max_body_bytes : UINT64_MAX;
    ex->body_limit_detail = "request body exceeds max_body_bytes";
    return ex;
}

void gh_exchange_free(gh_exchange *ex)
{
    gh_http_env *env = ex->env;
    if (ex->body_buf.task.queued)
        gh_env_undefer(env, &ex->body_buf.task);
    if (ex->filter)
        ex->filter->release(ex);
    if (ex->pin)
        env->unpin(env, ex->pin);
    gh_arena_free(&ex->arena);
    exchange_slab *s = (exchange_slab *)ex;
    if (env->nfree_exchanges >= MAX_FREE_EXCHANGES) {
        free(s);
        return;
    }
    *(gh_exchange **)s->mem = env->free_exchanges;
    env->free_exchanges = ex;
    env->nfree_exchanges++;
}

const gh_header *gh_exchange_header(const gh_exchange *ex, const char *name, size_t len)
{
    for (size_t i = 0; i < ex->nheaders; i++) {
        const gh_header *h = &ex->headers[i];
        if (h->name_len == len && strncasecmp(h->name, name, len) == 0)
            return h;
    }
    return NULL;
}

void gh_exchange_remove_header(gh_exchange *ex, const char *name, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; i < ex->nheaders; i++) {
        const gh_header *h = &ex->headers[i];
        if (h->name_len == len && strncasecmp(h->name, name, len) == 0)
            continue;
        ex->headers[w++] = *h;
    }
    ex->nheaders = w;
}

bool gh_exchange_add_header(gh_exchange *ex, const char *name, size_t nl, const char *value, size_t vl)
{
    gh_header *hs = gh_arena_alloc(&ex->arena, (ex->nheaders + 1) * sizeof(*hs));
    if (!hs)
        return false;
    if (ex->nheaders)
        memcpy(hs, ex->headers, ex->nheaders * sizeof(*hs));
    hs[ex->nheaders] = (gh_header){ name, value, (uint32_t)nl, (uint32_t)vl };
    ex->headers = hs;
    ex->nheaders++;
    return true;
}

bool gh_exchange_set_header(gh_exchange *ex, const char *name, size_t nl, const char *value, size_t vl)
{
    size_t w = 0;
    bool set = false;
    for (size_t i = 0; i < ex->nheaders; i++) {
        gh_header *h = &ex->headers[i];
        if (h->name_len == nl && strncasecmp(h->name, name, nl) == 0) {
            if (set)
                continue;   /* later copies go */
            h->value = value;
            h->value_len = (uint32_t)vl;
            set = true;
        }
        ex->headers[w++] = *h;
    }
    ex->nheaders = w;
    return set || gh_exchange_add_header(ex, name, nl, value, vl);
}

bool gh_exchange_add_response_header(gh_exchange *ex, const char *name, size_t nl, const char *value,
                                     size_t vl)
{
    gh_header h = { name, value, (uint32_t)nl, (uint32_t)vl };
    return gh_exchange_add_response_headers(ex, &h, 1);
}

bool gh_exchange_add_response_headers(gh_exchange *ex, const gh_header *h, size_t n)
{
    if (ex->nresp_extra + n > ex->capresp_extra) {
        size_t cap = ex->capresp_extra ? ex->capresp_extra * 2 : 8;
        while (cap < ex->nresp_extra + n)
            cap *= 2;
        gh_header *hs = gh_arena_alloc(&ex->arena, cap * sizeof(*hs));
        if (!hs)
            return false;
        if (ex->nresp_extra)
            memcpy(hs, ex->resp_extra, ex->nresp_extra * sizeof(*hs));
        ex->resp_extra = hs;
        ex->capresp_extra = cap;
    }
    memcpy(ex->resp_extra + ex->nresp_extra, h, n * sizeof(*h));
    for (size_t i = 0; i < n; i++)
        ex->resp_extra_lens |= 1ull << (h[i].name_len & 63);
    ex->nresp_extra += n;
    return true;
}

int gh_exchange_send_head(gh_exchange *ex, int status, const gh_header *hdrs, size_t n, int64_t content_length)
{
    if (ex->nresp_extra == 0)
        return ex->down->send_head(ex, status, hdrs, n, content_length);
    gh_header *all = gh_arena_alloc(&ex->arena, (n + ex->nresp_extra) * sizeof(*all));
    if (!all)
        return GH_ERROR;
    /* the gateway's word replaces the producer's (two Access-Control-Allow-Origin
     * make browsers refuse the answer); Vary and Link are lists: both kept */
    uint64_t lens = ex->resp_extra_lens;   /* which name lengths the extras have: most headers skip the inner loop */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (size_t j = 0; j < ex->nresp_extra && !replaced && (lens >> (hdrs[i].name_len & 63) & 1); j++)
            replaced = hdrs[i].name_len == ex->resp_extra[j].name_len &&
                       strncasecmp(hdrs[i].name, ex->resp_extra[j].name, hdrs[i].name_len) == 0 &&
                       !(hdrs[i].name_len == 4 && (strncasecmp(hdrs[i].name, "vary", 4) == 0 ||
                                                   strncasecmp(hdrs[i].name, "link", 4) == 0));
        if (!replaced)
            all[k++] = hdrs[i];
    }
    memcpy(all + k, ex->resp_extra, ex->nresp_extra * sizeof(*all));
    return ex->down->send_head(ex, status, all, k + ex->nresp_extra, content_length);
}

void gh_exchange_read_body(gh_exchange *ex, gh_body_cb cb)
{
    ex->body_cb = cb;
    gh_exchange_resume_body(ex);
}

uint64_t gh_random(gh_http_env *env)
{
    /* xorshift128+: per worker, no locks, good enough for ids (not secrets) */
    uint64_t s1 = env->rng[0];
    const uint64_t s0 = env->rng[1];
    env->rng[0] = s0;
    s1 ^= s1 << 23;
    env->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return env->rng[1] + s0;
}

static bool request_id_ok(const char *v, size_t n)
{
    if (n == 0 || n > 36)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

void gh_exchange_set_request_id(gh_exchange *ex)
{
    const gh_header *h = gh_exchange_header(ex, "x-request-id", 12);
    if (h && request_id_ok(h->value, h->value_len)) {
        gh_exchange_put_request_id(ex, h->value, h->value_len);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    uint64_t a = gh_random(ex->env), b = gh_random(ex->env);
    for (int i = 0; i < 16; i++) {
        ex->request_id[i] = hex[(a >> (i * 4)) & 15];
        ex->request_id[16 + i] = hex[(b >> (i * 4)) & 15];
    }
    ex->request_id[32] = '\0';
    ex->request_id_len = 32;
}

void gh_exchange_cache_clear(gh_http_env *env)
{
    while (env->free_exchanges) {
        exchange_slab *s = (exchange_slab *)env->free_exchanges;
        env->free_exchanges = *(gh_exchange **)s->mem;
        free(s);
    }
    env->nfree_exchanges = 0;
}
