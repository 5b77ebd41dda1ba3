/* worker.h — one event-loop thread: its listeners, client connections,
 * upstream pools and timeouts. Workers share nothing mutable on the hot
 * path; the main thread talks to them only through gh_worker_notify. */
#ifndef GH_SERVER_WORKER_H
#define GH_SERVER_WORKER_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "core/bufpool.h"
#include "core/log.h"
#include "http/exchange.h"
#include "http/h1_conn.h"
#include "observe/access_log.h"
#include "proxy/pool.h"
#include "server/listeners.h"
#include "server/snapshot.h"

typedef struct gh_pin {
    struct gh_pin *next;
    gh_snapshot *snap;
    size_t inflight;              /* exchanges of this worker on snap */
    void **plugin_ctx;            /* this worker's plugin contexts for snap, by ctx_slot */
} gh_pin;

typedef struct gh_worker_listener {
    uv_poll_t poll;
    int fd;
    struct sockaddr_storage sa;
    char address[64];             /* as configured, for messages */
    gh_h1_listen_info info;
    struct gh_tls_server *tls;    /* current snapshot's, NULL = plaintext */
    struct gh_worker *w;
    bool closing;
} gh_worker_listener;

typedef struct gh_worker {
    int id;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_timer_t tick;
    gh_http_env env;
    gh_h1_worker h1;
    gh_bufpool bufs;
    gh_proxy_worker *pw;
    gh_access_log alog;
    gh_pin *pins;                 /* current first */
    gh_plugin_live *plugin_live;  /* plugin contexts of the pinned snapshots */
    gh_worker_listener **listeners;
    size_t nlisteners;
    uv_timer_t accept_pause;      /* out of descriptors: listeners unpolled until it fires */
    bool accept_paused;
    gh_log_limit accept_log;
    atomic_uint_fast64_t seen_generation;   /* acknowledged to the main thread */
    uint64_t adopting_generation;            /* acknowledged once its removed listeners are closed */
    size_t listeners_closing;
    atomic_bool stopped;
    bool draining;
    struct detached *detached;    /* running detached sub-requests (server/subreq.h) */
} gh_worker;

int gh_worker_start(gh_worker *w, int id);
/* Main thread: a new snapshot was published or drain began. */
void gh_worker_notify(gh_worker *w);
void gh_worker_join(gh_worker *w);

/* Process-wide state read by workers (written by the main thread). */
extern _Atomic(gh_snapshot *) gh_current_snapshot;
extern atomic_bool gh_draining;
extern atomic_int gh_open_connections;

/* The snapshot an exchange pinned. */
static inline gh_snapshot *gh_pin_snapshot(void *pin) { return ((gh_pin *)pin)->snap; }
static inline void *const *gh_pin_plugin_contexts(void *pin) { return ((gh_pin *)pin)->plugin_ctx; }

#endif
