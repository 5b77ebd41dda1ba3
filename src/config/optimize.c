/* optimize.c — the `aggregate` and `batch` targets' keys (SPEC §7.1, §7.2). */
#include <stdio.h>
#include <string.h>
#include "config/schema.h"

#define clip(s) ((int)((s).len > 64 ? 64 : (s).len))

/* ------------------------------------------------------------ aggregate */

static bool set_select(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_backend_cfg *b = obj;
    return gh_ld_str_list(ld, kv->value, &b->select, &b->nselect, NULL);
}

enum { B_KEY, B_UPSTREAM, B_PATH, B_OPTIONAL, B_SELECT, B_TIMEOUT, B_COUNT };
static const gh_key backend_keys[] = {
    [B_KEY] = GH_KEY_DEFER("key"),
    [B_UPSTREAM] = GH_KEY_DEFER("upstream"),
    [B_PATH] = GH_KEY_DEFER("path"),
    [B_OPTIONAL] = GH_KEY_VAL("optional", GH_V_BOOL, gh_backend_cfg, optional),
    [B_SELECT] = GH_KEY_FN("select", 0, set_select),
    [B_TIMEOUT] = GH_KEY_NUM("timeout", GH_V_DURATION, gh_backend_cfg, timeout_ms, 1, 0),
};
static const gh_section backend_section = GH_SECTION("aggregate backend", backend_keys);

/* A backend's path: a path template ({name} anywhere), then an optional
 * "?query" whose values may hold placeholders too. */
static void load_backend_path(gh_load *ld, gh_backend_cfg *b, const gh_ynode *v)
{
    gh_str t;
    if (!gh_ld_str(ld, v, &t, NULL))
        return;
    const char *q = memchr(t.p, '?', t.len);
    gh_str path = { t.p, q ? (size_t)(q - t.p) : t.len };
    if (!gh_ld_path_template(ld, v, path, "backend path"))
        return;
    for (size_t i = path.len; i < t.len; i++) {
        unsigned char c = (unsigned char)t.p[i];
        if (c <= ' ' || c == 0x7f || c == '#') {
            gh_ld_error(ld, v->mark, "invalid backend path '%.*s': spaces, control characters and '#' are not allowed",
                        clip(t), t.p);
            return;
        }
    }
    b->path = t;
}

static void load_backend(gh_load *ld, const gh_route_cfg *r, gh_aggregate_cfg *a, gh_backend_cfg *b,
                         const gh_ynode *item)
{
    const gh_ypair *seen[B_COUNT] = { 0 };
    b->mark = item->mark;
    if (!gh_ld_apply(ld, &backend_section, item, b, seen))
        return;
    if (!seen[B_KEY])
        gh_ld_error(ld, item->mark, "aggregate backend needs a key");
    else if (gh_ld_str(ld, seen[B_KEY]->value, &b->key, NULL)) {
        for (gh_backend_cfg *o = a->backends; o < b; o++)
            if (gh_str_eq(o->key, b->key))
                gh_ld_error(ld, seen[B_KEY]->value->mark, "duplicate backend key '%.*s'", clip(b->key), b->key.p);
    }
    if (!seen[B_PATH])
        gh_ld_error(ld, item->mark, "aggregate backend needs a path");
    else
        load_backend_path(ld, b, seen[B_PATH]->value);
    gh_route_cfg *br = &b->route;
    br->name = r->name;
    br->mark = item->mark;
    br->target = GH_TARGET_UPSTREAM;
    br->request_headers = r->request_headers;
    if (!seen[B_UPSTREAM]) {
        br->target = 0;   /* routed: the path goes through the gateway's own routes */
        return;
    }
    br->target_mark = seen[B_UPSTREAM]->key->mark;
    gh_ld_str(ld, seen[B_UPSTREAM]->value, &br->upstream_name, NULL);
}

enum { A_TIMEOUT, A_MAX_BODY, A_BACKENDS, A_COUNT };
static const gh_key aggregate_keys[] = {
    [A_TIMEOUT] = GH_KEY_NUM("timeout", GH_V_DURATION, gh_aggregate_cfg, timeout_ms, 1, 0),
    [A_MAX_BODY] = GH_KEY_NUM("max_body", GH_V_SIZE, gh_aggregate_cfg, max_body, 1, 0),
    [A_BACKENDS] = GH_KEY_DEFER("backends"),
};
static const gh_section aggregate_section = GH_SECTION("aggregate", aggregate_keys);

void gh_ld_aggregate(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv)
{
    gh_aggregate_cfg *a = gh_ld_zalloc(ld, sizeof(*a));
    const gh_ypair *seen[A_COUNT] = { 0 };
    a->timeout_ms = 5000;
    a->max_body = 1u << 20;
    r->aggregate = a;
    if (!gh_ld_apply(ld, &aggregate_section, kv->value, a, seen))
        return;
    const gh_ynode *list = seen[A_BACKENDS] ? seen[A_BACKENDS]->value : NULL;
    if (!list || list->kind != GH_Y_SEQ || list->n == 0) {
        gh_ld_error(ld, list ? list->mark : kv->key->mark, "aggregate needs backends: a non-empty list of { key, upstream, path }");
        return;
    }
    a->backends = gh_ld_array(ld, list->n, sizeof(*a->backends));
    for (size_t i = 0; i < list->n; i++) {
        gh_backend_cfg *b = &a->backends[i];
        a->n = i + 1;
        load_backend(ld, r, a, b, list->items[i]);
        /* one deadline per backend, within the whole answer's */
        b->route.timeout_ms = b->timeout_ms && b->timeout_ms < a->timeout_ms ? b->timeout_ms : a->timeout_ms;
    }
}

/* ---------------------------------------------------------------- batch */

static const gh_key batch_keys[] = {
    GH_KEY_NUM("max_requests", GH_V_U32, gh_batch_cfg, max_requests, 1, 1000),
    GH_KEY_NUM("concurrency", GH_V_U32, gh_batch_cfg, concurrency, 1, 1000),
    GH_KEY_NUM("max_body", GH_V_SIZE, gh_batch_cfg, max_body, 1, 0),
};
static const gh_section batch_section = GH_SECTION("batch", batch_keys);

void gh_ld_batch(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv)
{
    gh_batch_cfg *b = gh_ld_zalloc(ld, sizeof(*b));
    b->max_requests = 20;
    b->concurrency = 8;
    b->max_body = 1u << 20;
    r->batch = b;
    gh_ld_apply(ld, &batch_section, kv->value, b, NULL);
}
