/* registry.c — the one table of plugins, indexed by id (= phase order,
 * config/plugin_cfg.h), and the compile step run at snapshot build for
 * every plugin configuration of a file: the global ones once, each route's
 * own once. */
#include "plugins/plugin.h"

extern const gh_plugin_ops gh_ip_filter_plugin, gh_cors_plugin, gh_key_auth_plugin, gh_jwt_plugin,
    gh_basic_auth_plugin, gh_mtls_auth_plugin, gh_acl_plugin;

const gh_plugin_ops *const gh_plugin_registry[GH_PLUGIN_COUNT] = {
    [GH_PLUGIN_IP_FILTER] = &gh_ip_filter_plugin,
    [GH_PLUGIN_CORS] = &gh_cors_plugin,
    [GH_PLUGIN_KEY_AUTH] = &gh_key_auth_plugin,
    [GH_PLUGIN_JWT] = &gh_jwt_plugin,
    [GH_PLUGIN_BASIC_AUTH] = &gh_basic_auth_plugin,
    [GH_PLUGIN_MTLS_AUTH] = &gh_mtls_auth_plugin,
    [GH_PLUGIN_ACL] = &gh_acl_plugin,
};

static bool compile_set(gh_plugin_set *set, const gh_plugin_build *b)
{
    bool ok = true;
    for (int id = 0; id < GH_PLUGIN_COUNT; id++) {
        gh_plugin_cfg *p = set->p[id];
        if (p && p->enabled && !p->rt && gh_plugin_registry[id]->compile)
            ok &= gh_plugin_registry[id]->compile(p, b);
    }
    return ok;
}

static void release_set(gh_plugin_set *set)
{
    for (int id = 0; id < GH_PLUGIN_COUNT; id++) {
        gh_plugin_cfg *p = set->p[id];
        if (p && p->rt && gh_plugin_registry[id]->release)
            gh_plugin_registry[id]->release(p);
        if (p)
            p->rt = NULL;
    }
}

bool gh_plugins_compile(gh_config *cfg, gh_consumers **consumers, gh_diag *diag)
{
    *consumers = gh_consumers_build(cfg, diag);
    if (!*consumers)
        return false;
    gh_plugin_build b = { .cfg = cfg, .consumers = *consumers, .diag = diag };
    bool ok = compile_set(&cfg->plugins, &b);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const gh_versions_cfg *vs = cfg->routes[i].versions;
        ok &= compile_set(&cfg->routes[i].plugins, &b);
        for (size_t k = 0; vs && k < vs->n; k++)
            ok &= compile_set(&vs->list[k].route.plugins, &b);
    }
    return ok;
}

void gh_plugins_release(gh_config *cfg, gh_consumers *consumers)
{
    release_set(&cfg->plugins);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const gh_versions_cfg *vs = cfg->routes[i].versions;
        release_set(&cfg->routes[i].plugins);
        for (size_t k = 0; vs && k < vs->n; k++)
            release_set(&vs->list[k].route.plugins);
    }
    gh_consumers_free(consumers);
}
