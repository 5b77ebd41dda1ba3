/* registry.c — the one table of plugins, indexed by id (= phase order,
 * expanded from the one plugin table, config/plugin_list.h), and the
 * compile step run at snapshot build for every plugin configuration of a
 * file: the global ones once, each route's own once. */
#include <stdlib.h>
#include "plugins/plugin.h"

#define OPS_(ID, name, phase, T, parse, ops) extern const gh_plugin_ops ops;
GH_PLUGIN_TABLE(OPS_)
#undef OPS_

#define ROW_(ID, name, phase, T, parse, ops) [GH_PLUGIN_##ID] = &ops,
const gh_plugin_ops *const gh_plugin_registry[GH_PLUGIN_COUNT] = { GH_PLUGIN_TABLE(ROW_) };
#undef ROW_

#define PHASE_(ID, name, phase, T, parse, ops) [GH_PLUGIN_##ID] = GH_PHASE_##phase,
const unsigned char gh_plugin_phase[GH_PLUGIN_COUNT] = { GH_PLUGIN_TABLE(PHASE_) };
#undef PHASE_

/* Where a configuration sits, mixed into its hash: two routes with the
 * same settings keep apart counters; a global plugin's is one. */
static uint64_t state_key(uint64_t h, gh_str owner, gh_str sub)
{
    for (size_t i = 0; i < owner.len; i++)
        h = (h ^ (unsigned char)owner.p[i]) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL;
    for (size_t i = 0; i < sub.len; i++)
        h = (h ^ (unsigned char)sub.p[i]) * 0x100000001b3ULL;
    return h ? h : 1;
}

static bool add_slot(gh_plugin_slots *slots, gh_plugin_cfg *p)
{
    gh_plugin_cfg **a = realloc(slots->confs, (slots->n + 1) * sizeof(*a));
    if (!a)
        return false;
    slots->confs = a;
    p->ctx_slot = (int)slots->n;
    a[slots->n++] = p;
    return true;
}

static bool compile_set(gh_plugin_set *set, const gh_plugin_build *b, gh_plugin_slots *slots, gh_str owner,
                        gh_str sub)
{
    bool ok = true;
    for (int id = 0; id < GH_PLUGIN_COUNT; id++) {
        gh_plugin_cfg *p = set->p[id];
        if (!p || !p->enabled || p->rt)
            continue;
        p->state_key = state_key(p->hash, owner, sub);
        if (gh_plugin_registry[id]->context_new && !add_slot(slots, p))
            ok = false;
        if (gh_plugin_registry[id]->compile)
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

bool gh_plugins_compile(gh_config *cfg, gh_consumers **consumers, gh_plugin_slots *slots, gh_diag *diag)
{
    *slots = (gh_plugin_slots){ 0 };
    *consumers = gh_consumers_build(cfg, diag);
    if (!*consumers)
        return false;
    gh_plugin_build b = { .cfg = cfg, .consumers = *consumers, .diag = diag };
    gh_str none = { "", 0 };
    bool ok = compile_set(&cfg->plugins, &b, slots, none, none);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const gh_versions_cfg *vs = cfg->routes[i].versions;
        ok &= compile_set(&cfg->routes[i].plugins, &b, slots, cfg->routes[i].name, none);
        for (size_t k = 0; vs && k < vs->n; k++)
            ok &= compile_set(&vs->list[k].route.plugins, &b, slots, cfg->routes[i].name, vs->list[k].name);
    }
    return ok;
}

void gh_plugins_release(gh_config *cfg, gh_consumers *consumers, gh_plugin_slots *slots)
{
    if (slots) {
        free(slots->confs);
        *slots = (gh_plugin_slots){ 0 };
    }
    release_set(&cfg->plugins);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const gh_versions_cfg *vs = cfg->routes[i].versions;
        release_set(&cfg->routes[i].plugins);
        for (size_t k = 0; vs && k < vs->n; k++)
            release_set(&vs->list[k].route.plugins);
    }
    gh_consumers_free(consumers);
}
