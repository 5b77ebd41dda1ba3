/* plugins.c — `plugins:` maps (SPEC §5): the global one, a route's, and
 * a version's. The rows come from the one plugin table
 * (config/plugin_list.h): name, size of the configuration, parser. A value of
 * `false` turns off a plugin the level above configured; null is `{}`.
 * The order in the file never matters: the id is the phase order. */
#include <stdio.h>
#include <string.h>
#include "config/env.h"
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

typedef bool (*plugin_parse)(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v);

#define ROW_(ID, nm, phase, T, parse, ops) [GH_PLUGIN_##ID] = { #nm, sizeof(T), parse },
static const struct {
    const char *name;
    size_t size;
    plugin_parse parse;
} rows[GH_PLUGIN_COUNT] = { GH_PLUGIN_TABLE(ROW_) };
#undef ROW_

/* FNV-1a over a plugin's configuration node: kinds, keys and values (with
 * ${ENV} expanded, so a changed variable is a changed configuration). What
 * a reload compares to keep a plugin's state (plugins/context.c). */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t node_hash(gh_load *ld, const gh_ynode *n, uint64_t h)
{
    char kind = (char)('0' + n->kind);
    h = mix(h, &kind, 1);
    if (n->kind == GH_Y_SCALAR) {
        gh_str t = n->text;
        bool env;
        gh_diag quiet;   /* a bad reference is reported by the plugin's parser */
        gh_diag_init(&quiet, "");
        if (memchr(t.p, '$', t.len) && !gh_env_expand(&ld->tmp, &quiet, n->mark, n->text, &t, &env))
            t = n->text;
        gh_diag_free(&quiet);
        h = mix(h, t.p, t.len);
        return mix(h, "", 1);
    }
    for (size_t i = 0; n->kind == GH_Y_SEQ && i < n->n; i++)
        h = node_hash(ld, n->items[i], h);
    for (size_t i = 0; n->kind == GH_Y_MAP && i < n->n; i++)
        h = node_hash(ld, n->pairs[i].value, node_hash(ld, n->pairs[i].key, h));
    return mix(h, "}", 1);
}

bool gh_ld_str_list(gh_load *ld, const gh_ynode *n, gh_str **out, size_t *nout, gh_mark **marks)
{
    *out = NULL;
    *nout = 0;
    if (marks)
        *marks = NULL;
    if (gh_ynode_is_null(n))
        return true;
    const gh_ynode *one[1] = { n };
    const gh_ynode *const *items = n->kind == GH_Y_SEQ ? (const gh_ynode *const *)n->items : one;
    size_t count = n->kind == GH_Y_SEQ ? n->n : 1;
    if (n->kind == GH_Y_MAP) {
        gh_ld_error(ld, n->mark, "expected a list");
        return false;
    }
    *out = gh_ld_array(ld, count ? count : 1, sizeof(gh_str));
    if (marks)
        *marks = gh_ld_tmp(ld, (count ? count : 1) * sizeof(gh_mark));
    bool ok = true;
    for (size_t i = 0; i < count; i++) {
        gh_str s;
        if (!gh_ld_str(ld, items[i], &s, NULL)) {
            ok = false;
            continue;
        }
        if (s.len == 0) {
            gh_ld_error(ld, items[i]->mark, "expected a non-empty string");
            ok = false;
            continue;
        }
        if (marks)
            (*marks)[*nout] = items[i]->mark;
        (*out)[(*nout)++] = s;
    }
    return ok;
}

bool gh_ld_plugin_set(gh_load *ld, const gh_ynode *map, gh_plugin_set *set)
{
    if (!gh_ld_is_map(ld, map))
        return false;
    static const char *names[GH_PLUGIN_COUNT];
    for (size_t i = 0; i < GH_PLUGIN_COUNT; i++)
        names[i] = rows[i].name;
    for (size_t i = 0; map->kind == GH_Y_MAP && i < map->n; i++) {
        const gh_ypair *kv = &map->pairs[i];
        gh_str name = kv->key->text;
        int id = -1;
        for (int k = 0; k < GH_PLUGIN_COUNT; k++)
            if (gh_str_eq_c(name, rows[k].name))
                id = k;
        if (id < 0) {
            const char *hint = gh_ld_suggest(name, names, GH_PLUGIN_COUNT);
            char known[256];
            size_t k = 0;
            for (int j = 0; j < GH_PLUGIN_COUNT && k < sizeof(known); j++)
                k += (size_t)snprintf(known + k, sizeof(known) - k, "%s%s", j ? ", " : "", rows[j].name);
            if (hint)
                gh_ld_error(ld, kv->key->mark, "unknown plugin '%.*s' (did you mean '%s'?); known plugins: %s",
                            clip(name), name.p, hint, known);
            else
                gh_ld_error(ld, kv->key->mark, "unknown plugin '%.*s'; known plugins: %s", clip(name), name.p,
                            known);
            continue;
        }
        if (set->p[id]) {
            gh_ld_error(ld, kv->key->mark, "plugin '%s' is configured twice", rows[id].name);
            continue;
        }
        gh_plugin_cfg *conf = gh_ld_zalloc(ld, rows[id].size);
        conf->id = id;
        conf->mark = kv->key->mark;
        conf->enabled = true;
        const gh_ynode *v = kv->value;
        conf->hash = node_hash(ld, v, mix(0xcbf29ce484222325ULL, rows[id].name, strlen(rows[id].name)));
        if (v->kind == GH_Y_SCALAR && !gh_ynode_is_null(v)) {
            bool on;
            if (!gh_ld_bool(ld, v, &on))
                continue;
            conf->enabled = on;
            if (on && !rows[id].parse(ld, conf, NULL))
                continue;
        } else if (!rows[id].parse(ld, conf, v)) {
            continue;
        }
        set->p[id] = conf;
    }
    return true;
}

bool gh_ld_global_plugins(gh_load *ld, void *cfg, const gh_ypair *kv)
{
    return gh_ld_plugin_set(ld, kv->value, &((gh_config *)cfg)->plugins);
}

void gh_plugin_set_merge(const gh_plugin_set *base, const gh_plugin_set *over, gh_plugin_set *out)
{
    for (int i = 0; i < GH_PLUGIN_COUNT; i++)
        out->p[i] = over->p[i] ? over->p[i] : base->p[i];
}

static bool chain_has(const gh_plugin_set *s, int id) { return s->p[id] && s->p[id]->enabled; }

static bool authenticates(const gh_plugin_set *s)
{
    return chain_has(s, GH_PLUGIN_KEY_AUTH) || chain_has(s, GH_PLUGIN_JWT) || chain_has(s, GH_PLUGIN_BASIC_AUTH) ||
           chain_has(s, GH_PLUGIN_MTLS_AUTH);
}

/* The global plugins under the route's own, and whether any will run. */
static void merge_chain(const gh_config *cfg, gh_route_cfg *r)
{
    gh_plugin_set_merge(&cfg->plugins, &r->plugins, &r->chain);
    r->chain.on = 0;
    for (int id = 0; id < GH_PLUGIN_COUNT; id++)
        r->chain.on |= chain_has(&r->chain, id) ? 1u << id : 0;
    r->has_plugins = r->chain.on != 0;
}

/* One route's (or one version's) chain, and its checks. */
static void resolve_chain(gh_load *ld, gh_route_cfg *r, const gh_plugin_cfg **mtls)
{
    merge_chain(ld->cfg, r);
    if (!*mtls && chain_has(&r->chain, GH_PLUGIN_MTLS_AUTH))
        *mtls = r->chain.p[GH_PLUGIN_MTLS_AUTH];
    if (chain_has(&r->chain, GH_PLUGIN_ACL) && !authenticates(&r->chain))
        gh_diag_warn(ld->diag, r->chain.p[GH_PLUGIN_ACL]->mark,
                     "route '%.*s' has acl but no authentication plugin: every request gets 403", clip(r->name),
                     r->name.p);
}

/* A rate_limit with scope: cluster counts in Redis, a cache with store:
 * redis keeps its entries there: the file must say where. */
static void cluster_needs_redis(gh_load *ld, const gh_plugin_set *own)
{
    const gh_rate_limit_cfg *rl = (const gh_rate_limit_cfg *)own->p[GH_PLUGIN_RATE_LIMIT];
    if (rl && rl->base.enabled && rl->scope == GH_RL_CLUSTER && !ld->cfg->redis)
        gh_ld_error(ld, rl->scope_mark,
                    "rate_limit scope 'cluster' needs a top-level redis: section (redis: { address: host:port })");
    const gh_cache_cfg *c = (const gh_cache_cfg *)own->p[GH_PLUGIN_CACHE];
    if (c && c->base.enabled && c->store == GH_CACHE_REDIS && !ld->cfg->redis)
        gh_ld_error(ld, c->store_mark,
                    "cache store 'redis' needs a top-level redis: section (redis: { address: host:port })");
}

/* Cross-checks that need the whole file: every route's and version's
 * chain, mtls_auth against the listeners, acl without anyone to
 * authenticate, cluster limits without redis:. */
void gh_ld_plugins_resolve(gh_load *ld)
{
    gh_config *cfg = ld->cfg;
    bool client_ca = false;
    for (size_t i = 0; i < cfg->nlistens; i++)
        client_ca |= cfg->listens[i].tls && cfg->listens[i].tls->client_ca.len;
    const gh_plugin_cfg *mtls = chain_has(&cfg->plugins, GH_PLUGIN_MTLS_AUTH) ? cfg->plugins.p[GH_PLUGIN_MTLS_AUTH] : NULL;
    cluster_needs_redis(ld, &cfg->plugins);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        gh_route_cfg *r = &cfg->routes[i];
        cluster_needs_redis(ld, &r->plugins);
        if (r->versions) {
            for (size_t k = 0; k < r->versions->n; k++) {
                cluster_needs_redis(ld, &r->versions->list[k].route.plugins);
                resolve_chain(ld, &r->versions->list[k].route, &mtls);
            }
            merge_chain(cfg, r);
        } else {
            resolve_chain(ld, r, &mtls);
        }
    }
    if (mtls && !client_ca)
        gh_ld_error(ld, mtls->mark, "mtls_auth needs a listener with tls.client_ca (clients must present verified certificates)");
}
