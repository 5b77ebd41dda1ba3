/* cache.c — DELETE /api/cache?route=NAME[&path=/p]: purge a route's cached
 * responses (every entry of the route, or those of one normalized path, for
 * every query and varied header) in this process's stores and, when the
 * route's cache is `store: redis`, in Redis (asynchronously: the answer
 * waits for it, with the count of both). */
#include <stdio.h>
#include <string.h>
#include "admin/endpoints.h"
#include "http/request.h"
#include "http/status.h"
#include "plugins/cache_redis.h"
#include "plugins/cache_store.h"

typedef struct purge {
    gh_exchange *ex;
    gh_str route;
    size_t memory;                  /* purged from this process's stores */
    gh_cache_redis_purge redis;
} purge;

static void answer(gh_exchange *ex, gh_str route, uint64_t n)
{
    gh_admin_send_json(ex, 200, json_pack("{s:s, s:I}", "route", gh_arena_strndup(&ex->arena, route.p, route.len),
                                          "purged", (json_int_t)n));
}

static void redis_purged(void *ctx, int status, uint64_t deleted)
{
    purge *p = ctx;
    gh_exchange *ex = p->ex;
    ex->on_abort = NULL;
    ex->consumer = NULL;
    if (status != GH_REDIS_OK) {
        char detail[160];
        snprintf(detail, sizeof(detail), "redis: %s; %zu entries purged from memory, %llu from redis",
                 gh_redis_status_name(status), p->memory, (unsigned long long)deleted);
        gh_problem(ex, 503, "upstream_unavailable", detail, NULL, 0, NULL);
        return;
    }
    answer(ex, p->route, p->memory + deleted);
}

static void purge_abort(gh_exchange *ex)
{
    purge *p = ex->consumer;
    gh_cache_redis_purge_cancel(&p->redis);
}

/* Does the route keep its cache in Redis? */
static bool uses_redis(const gh_route_cfg *r)
{
    const gh_cache_cfg *c = (const gh_cache_cfg *)r->chain.p[GH_PLUGIN_CACHE];
    return c && c->base.enabled && c->store == GH_CACHE_REDIS;
}

/* The decoded value of query parameter name, in the arena; false if absent. */
static bool param(gh_exchange *ex, const char *name, gh_str *out)
{
    gh_str raw, item;
    if (!gh_query_param(ex->query, gh_str_c(name), &raw, &item))
        return false;
    char *buf = gh_arena_alloc(&ex->arena, raw.len + 1);
    if (!buf)
        return false;
    *out = (gh_str){ buf, gh_query_decode(raw, buf) };
    return true;
}

void gh_admin_cache_purge(gh_exchange *ex)
{
    gh_str route = { 0 }, path = { 0 };
    if (!param(ex, "route", &route) || route.len == 0) {
        gh_problem(ex, 400, "bad_request", "give the route to purge: DELETE /api/cache?route=NAME[&path=/p]", NULL, 0,
                   NULL);
        return;
    }
    const gh_route_cfg *known = NULL;
    for (size_t i = 0; i < ex->cfg->nroutes && !known; i++)
        if (gh_str_eq(ex->cfg->routes[i].name, route))
            known = &ex->cfg->routes[i];
    if (!known) {
        gh_problem(ex, 404, "no_route", "no route of that name in the running configuration", NULL, 0, NULL);
        return;
    }
    if (param(ex, "path", &path) && (path.len == 0 || path.p[0] != '/')) {
        gh_problem(ex, 400, "bad_request", "path must start with /", NULL, 0, NULL);
        return;
    }
    size_t n = gh_cache_purge(route, path);
    purge *p = uses_redis(known) ? gh_arena_zalloc(&ex->arena, sizeof(*p)) : NULL;
    if (!p) {
        answer(ex, route, n);
        return;
    }
    if (!ex->env->redis) {
        gh_problem(ex, 503, "upstream_unavailable", "redis: not configured on this gateway", NULL, 0, NULL);
        return;
    }
    *p = (purge){ .ex = ex, .route = route, .memory = n };
    p->redis.cb = redis_purged;
    p->redis.ctx = p;
    ex->consumer = p;
    ex->on_abort = purge_abort;
    gh_cache_redis_purge_start(ex->env->redis, &p->redis, route, path);
}
