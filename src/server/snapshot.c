#include "server/snapshot.h"
#include <stdlib.h>
#include <string.h>
#include "server/listeners.h"

gh_snapshot *gh_snapshot_build(gh_config *cfg, int nworkers, gh_diag *diag)
{
    gh_snapshot *s = calloc(1, sizeof(*s));
    if (!s) {
        gh_config_free(cfg);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->cfg = cfg;
    s->router = gh_router_build(cfg, diag);
    s->balancer = gh_balancer_new(cfg, nworkers);
    if (!s->router || !s->balancer || diag->errors) {
        gh_snapshot_unref(s);
        return NULL;
    }
    return s;
}

gh_snapshot *gh_snapshot_load(const char *path, int nworkers, gh_diag *diag)
{
    gh_config *cfg = path ? gh_config_load_file(path, diag)
                          : gh_config_load_string("<demo>", gh_demo_config, strlen(gh_demo_config), diag);
    if (!cfg)
        return NULL;
    return gh_snapshot_build(cfg, nworkers, diag);
}

void gh_snapshot_ref(gh_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void gh_snapshot_unref(gh_snapshot *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    gh_router_free(s->router);
    gh_balancer_free(s->balancer);
    gh_listen_set_free(s->listen);
    gh_config_free(s->cfg);
    free(s);
}
