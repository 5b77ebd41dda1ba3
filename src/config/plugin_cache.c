/* plugin_cache.c — configuration of the cache plugin (SPEC §7.3):
 *   cache: { ttl: 30s, methods: [GET, HEAD], vary: [Accept-Language],
 *            key_headers: [X-Tenant], max_entry: 1MiB, size: 256MiB,
 *            store: memory | redis, collapse: true, shared_auth: false }
 * Every key is optional; the defaults are the ones shown (vary and
 * key_headers empty). Only GET and HEAD can be cached: a HEAD shares its
 * GET's entry. */
#include <string.h>
#include "config/schema.h"
#include "core/method.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

enum { K_TTL, K_METHODS, K_VARY, K_KEY_HEADERS, K_MAX_ENTRY, K_SIZE, K_STORE, K_COLLAPSE, K_SHARED_AUTH, K_COUNT };
static const gh_key cache_keys[] = {
    [K_TTL] = GH_KEY_NUM("ttl", GH_V_DURATION, gh_cache_cfg, ttl_ms, 1, 0),
    [K_METHODS] = GH_KEY_DEFER("methods"),
    [K_VARY] = GH_KEY_DEFER("vary"),
    [K_KEY_HEADERS] = GH_KEY_DEFER("key_headers"),
    [K_MAX_ENTRY] = GH_KEY_NUM("max_entry", GH_V_SIZE, gh_cache_cfg, max_entry, 1, 0),
    [K_SIZE] = GH_KEY_NUM("size", GH_V_SIZE, gh_cache_cfg, size, 1024, 0),
    [K_STORE] = GH_KEY_DEFER("store"),
    [K_COLLAPSE] = GH_KEY_VAL("collapse", GH_V_BOOL, gh_cache_cfg, collapse),
    [K_SHARED_AUTH] = GH_KEY_VAL("shared_auth", GH_V_BOOL, gh_cache_cfg, shared_auth),
};
static const gh_section cache_section = GH_SECTION("cache", cache_keys);

static bool methods(gh_load *ld, gh_cache_cfg *c, const gh_ynode *n)
{
    gh_str *items;
    gh_mark *marks;
    size_t count;
    if (!gh_ld_str_list(ld, n, &items, &count, &marks))
        return false;
    if (count == 0) {
        gh_ld_error(ld, n->mark, "cache methods: list GET, HEAD or both");
        return false;
    }
    c->methods = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t bit = gh_method_bit(items[i].p, items[i].len);
        if (bit != GH_M_GET && bit != GH_M_HEAD) {
            gh_ld_error(ld, marks[i], "cache methods: '%.*s' cannot be cached (use GET and/or HEAD)", clip(items[i]),
                        items[i].p);
            return false;
        }
        c->methods |= bit;
    }
    return true;
}

static bool headers(gh_load *ld, const gh_ynode *n, const char *what, gh_str *out, size_t *nout)
{
    gh_str *items;
    gh_mark *marks;
    size_t count;
    if (!gh_ld_str_list(ld, n, &items, &count, &marks))
        return false;
    if (count > GH_CACHE_MAX_HEADERS) {
        gh_ld_error(ld, marks[GH_CACHE_MAX_HEADERS], "cache %s: at most %d headers", what, GH_CACHE_MAX_HEADERS);
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        if (!gh_ld_is_token(items[i])) {
            gh_ld_error(ld, marks[i], "cache %s: '%.*s' is not a header name", what, clip(items[i]), items[i].p);
            return false;
        }
        for (size_t k = 0; k < i; k++) {
            if (gh_str_ieq(items[k], items[i])) {
                gh_ld_error(ld, marks[i], "cache %s: '%.*s' is listed twice", what, clip(items[i]), items[i].p);
                return false;
            }
        }
        out[i] = items[i];
    }
    *nout = count;
    return true;
}

static bool store(gh_load *ld, gh_cache_cfg *c, const gh_ynode *n)
{
    gh_str s;
    if (!gh_ld_text(ld, n, "memory or redis", &s, NULL))
        return false;
    c->store_mark = n->mark;
    if (gh_str_eq_c(s, "memory"))
        c->store = GH_CACHE_MEMORY;
    else if (gh_str_eq_c(s, "redis"))
        c->store = GH_CACHE_REDIS;
    else {
        gh_ld_error(ld, n->mark, "unknown cache store '%.*s' (use memory or redis)", clip(s), s.p);
        return false;
    }
    return true;
}

bool gh_ld_cache(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_cache_cfg *c = (gh_cache_cfg *)conf;
    c->ttl_ms = 30000;
    c->methods = GH_M_GET | GH_M_HEAD;
    c->max_entry = 1u << 20;
    c->size = 256u << 20;
    c->collapse = true;
    const gh_ypair *seen[K_COUNT] = { 0 };
    if (v && !gh_ld_apply(ld, &cache_section, v, c, seen))
        return false;
    bool ok = true;
    if (seen[K_METHODS])
        ok &= methods(ld, c, seen[K_METHODS]->value);
    if (seen[K_VARY])
        ok &= headers(ld, seen[K_VARY]->value, "vary", c->vary, &c->nvary);
    if (seen[K_KEY_HEADERS])
        ok &= headers(ld, seen[K_KEY_HEADERS]->value, "key_headers", c->key_headers, &c->nkey_headers);
    if (seen[K_STORE])
        ok &= store(ld, c, seen[K_STORE]->value);
    if (ok && c->max_entry > c->size) {
        gh_ld_error(ld, seen[K_MAX_ENTRY] ? seen[K_MAX_ENTRY]->value->mark : conf->mark,
                    "cache max_entry (%llu bytes) is larger than size (%llu bytes)",
                    (unsigned long long)c->max_entry, (unsigned long long)c->size);
        ok = false;
    }
    return ok;
}
