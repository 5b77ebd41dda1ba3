/* snapshot.h — one loaded configuration, compiled and ready to serve.
 * Immutable once published; reference-counted so that requests in flight
 * keep the snapshot they started with across reloads (SPEC §9). */
#ifndef GH_SERVER_SNAPSHOT_H
#define GH_SERVER_SNAPSHOT_H
#include <stdatomic.h>
#include <stdint.h>
#include "config/config.h"
#include "plugins/consumers.h"
#include "plugins/plugin.h"
#include "proxy/balance.h"
#include "route/route.h"
#include "server/intake.h"
#include "tls/tls.h"

typedef struct gh_listen_set gh_listen_set;

typedef struct gh_snapshot {
    atomic_int refs;
    uint64_t generation;
    int64_t loaded_at;            /* Unix time the file was loaded (admin API) */
    gh_config *cfg;
    gh_router *router;
    gh_balancer *balancer;
    gh_listen_set *listen;        /* sockets handed to workers with this snapshot */
    gh_tls_server **tls_servers;  /* per cfg->listens[i]; NULL for plaintext */
    gh_tls_client **tls_clients;  /* per cfg->upstreams[i]; NULL without tls */
    gh_tls_client *redis_tls;     /* redis.tls; NULL without */
    gh_consumers *consumers;      /* credential indexes; plugin state lives in cfg's plugin configs */
    gh_intake *intake;            /* request header intake: identity names, underscore policy */
    gh_plugin_slots plugin_slots; /* plugin configurations with per-worker contexts */
} gh_snapshot;

/* Compile cfg (ownership passes to the snapshot, also on failure).
 * NULL when the router reports errors (in diag). refs = 1. */
gh_snapshot *gh_snapshot_build(gh_config *cfg, int nworkers, gh_diag *diag);
void gh_snapshot_ref(gh_snapshot *s);
void gh_snapshot_unref(gh_snapshot *s);

/* Load, validate and compile a configuration file, or the embedded demo
 * when path is NULL. */
gh_snapshot *gh_snapshot_load(const char *path, int nworkers, gh_diag *diag);

#endif
