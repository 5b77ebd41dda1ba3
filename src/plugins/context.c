/* context.c — per-worker plugin contexts (h2o's on_context_init).
 *
 * A worker keeps a list of live contexts, each for one plugin configuration
 * identified by its state_key (its configuration's hash and where it sits,
 * plugins/registry.c). Each snapshot the worker pins holds an array of them
 * by ctx_slot; a context is counted once per such array. Adopting a new
 * snapshot finds the contexts whose configuration did not change and
 * shares them (state kept across the reload); the rest are made. When the
 * last snapshot using a context is dropped, it is freed. Everything here
 * runs on the worker's own thread: no locks. */
#include <stdlib.h>
#include "plugins/plugin.h"

struct gh_plugin_live {
    gh_plugin_live *next;
    int id;
    uint64_t key;
    void *ctx;
    size_t refs;                  /* snapshots of this worker using it */
};

void **gh_plugin_contexts_adopt(gh_plugin_live **live, const gh_plugin_slots *slots, uv_loop_t *loop)
{
    if (!slots || slots->n == 0)
        return NULL;
    void **arr = calloc(slots->n, sizeof(*arr));
    if (!arr)
        return NULL;
    for (size_t i = 0; i < slots->n; i++) {
        const gh_plugin_cfg *conf = slots->confs[i];
        gh_plugin_live *l = *live;
        while (l && !(l->id == conf->id && l->key == conf->state_key))
            l = l->next;
        if (!l) {
            void *ctx = gh_plugin_registry[conf->id]->context_new(conf, loop);
            if (!ctx || !(l = calloc(1, sizeof(*l)))) {
                if (ctx)
                    gh_plugin_registry[conf->id]->context_free(ctx);
                continue;   /* the plugin runs without its context (as in dry runs) */
            }
            *l = (gh_plugin_live){ .next = *live, .id = conf->id, .key = conf->state_key, .ctx = ctx };
            *live = l;
        }
        l->refs++;
        arr[i] = l->ctx;
    }
    return arr;
}

void gh_plugin_contexts_drop(gh_plugin_live **live, const gh_plugin_slots *slots, void **ctx)
{
    if (!ctx)
        return;
    for (size_t i = 0; i < slots->n; i++) {
        if (!ctx[i])
            continue;
        for (gh_plugin_live **pp = live; *pp; pp = &(*pp)->next) {
            gh_plugin_live *l = *pp;
            if (l->ctx != ctx[i])
                continue;
            if (--l->refs == 0) {
                *pp = l->next;
                gh_plugin_registry[l->id]->context_free(l->ctx);
                free(l);
            }
            break;
        }
    }
    free(ctx);
}
