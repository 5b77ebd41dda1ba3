#include "server/snapshot.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "config/demo.h"
#include "plugins/plugin.h"
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
    s->loaded_at = (int64_t)time(NULL);
    s->router = gh_router_build(cfg, diag);
    s->balancer = gh_balancer_new(cfg, nworkers);
    /* certificates are read here, on every load: a bad one refuses the
     * configuration (and a reload keeps the running one) */
    s->tls_servers = calloc(cfg->nlistens + 1, sizeof(*s->tls_servers));
    s->tls_clients = calloc(cfg->nupstreams + 1, sizeof(*s->tls_clients));
    for (size_t i = 0; s->tls_servers && i < cfg->nlistens; i++)
        if (cfg->listens[i].tls)
            s->tls_servers[i] = gh_tls_server_new(cfg, &cfg->listens[i], diag);
    for (size_t i = 0; s->tls_clients && i < cfg->nupstreams; i++)
        if (cfg->upstreams[i].tls)
            s->tls_clients[i] = gh_tls_client_new(cfg, &cfg->upstreams[i], diag);
    bool redis_ok = !cfg->redis || !cfg->redis->tls ||
                    (s->redis_tls = gh_tls_client_new_plain(cfg, cfg->redis->tls, diag)) != NULL;
    /* keys files (JWKS, PEM) too: read at every load */
    bool plugins_ok = gh_plugins_compile(cfg, &s->consumers, &s->plugin_slots, diag);
    s->intake = gh_intake_build(cfg);
    if (!plugins_ok || !redis_ok || !s->intake || !s->router || !s->balancer || !s->tls_servers || !s->tls_clients || diag->errors) {
        gh_snapshot_unref(s);
        return NULL;
    }
    return s;
}

gh_snapshot *gh_snapshot_load(const char *path, int nworkers, gh_diag *diag)
{
    gh_config *cfg = path ? gh_config_load_file(path, diag) : gh_demo_load(diag);
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
    for (size_t i = 0; s->tls_servers && i < s->cfg->nlistens; i++)
        gh_tls_server_free(s->tls_servers[i]);
    for (size_t i = 0; s->tls_clients && i < s->cfg->nupstreams; i++)
        gh_tls_client_free(s->tls_clients[i]);
    free(s->tls_servers);
    free(s->tls_clients);
    gh_tls_client_free(s->redis_tls);
    gh_plugins_release(s->cfg, s->consumers, &s->plugin_slots);
    gh_intake_free(s->intake);
    gh_listen_set_free(s->listen);
    gh_config_free(s->cfg);
    free(s);
}
