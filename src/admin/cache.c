/* cache.c — DELETE /api/cache?route=NAME[&path=/p]: purge a route's cached
 * responses (every entry of the route, or those of one normalized path, for
 * every query and varied header) in this process's stores. */
#include <string.h>
#include "admin/endpoints.h"
#include "http/request.h"
#include "http/status.h"
#include "plugins/cache_store.h"

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
    bool known = false;
    for (size_t i = 0; i < ex->cfg->nroutes && !known; i++)
        known = gh_str_eq(ex->cfg->routes[i].name, route);
    if (!known) {
        gh_problem(ex, 404, "no_route", "no route of that name in the running configuration", NULL, 0, NULL);
        return;
    }
    if (param(ex, "path", &path) && (path.len == 0 || path.p[0] != '/')) {
        gh_problem(ex, 400, "bad_request", "path must start with /", NULL, 0, NULL);
        return;
    }
    size_t n = gh_cache_purge(route, path);
    gh_admin_send_json(ex, 200, json_pack("{s:s, s:I}", "route", route.p ? gh_arena_strndup(&ex->arena, route.p, route.len) : "",
                                          "purged", (json_int_t)n));
}
