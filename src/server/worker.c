/* worker.c — a worker thread: accept, hand connections to the codec, expire
 * timeouts, follow configuration snapshots, drain. */
#include "server/worker.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include "cluster/redis.h"
#include "core/log.h"
#include "observe/callers.h"
#include "proxy/tunnel.h"
#include "admin/admin.h"
#include "observe/metrics.h"
#include "server/dispatch.h"
#include "server/subreq.h"

_Atomic(gh_snapshot *) gh_current_snapshot;
atomic_bool gh_draining;
atomic_int gh_open_connections;

#define IO_BUF_SIZE (32 * 1024)
#define TICK_MS 100

/* ------------------------------------------------------------ snapshots -- */

static void *pin(gh_http_env *env, const gh_config **cfg)
{
    gh_worker *w = env->owner;
    gh_pin *p = w->pins;   /* the current snapshot is always first */
    p->inflight++;
    *cfg = p->snap->cfg;
    return p;
}

static void drop_pin(gh_worker *w, gh_pin *p)
{
    for (gh_pin **pp = &w->pins; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            gh_plugin_contexts_drop(&w->plugin_live, &p->snap->plugin_slots, p->plugin_ctx);
            gh_snapshot_unref(p->snap);
            free(p);
            return;
        }
    }
}

static void unpin(gh_http_env *env, void *handle)
{
    gh_worker *w = env->owner;
    gh_pin *p = handle;
    if (--p->inflight == 0 && p != w->pins)
        drop_pin(w, p);
}

static void listener_close(gh_worker_listener *l);
static void listener_open(gh_worker *w, const gh_listen_item *it, int fd);

/* The Redis client lives with the worker; a reload that changes `redis:`
 * replaces it (callers waiting on the old one are answered "closed"). */
static void follow_redis(gh_worker *w, const gh_redis_cfg *cfg, gh_tls_client *tls)
{
    gh_redis *old = w->env.redis;
    if (old && gh_redis_cfg_equal(gh_redis_config(old), cfg))
        return;
    w->env.redis = cfg ? gh_redis_new(&w->loop, cfg, tls) : NULL;
    gh_redis_free(old);
}

/* Adopt the published snapshot: new requests use it, old ones finish on theirs. */
static void follow_snapshot(gh_worker *w)
{
    gh_snapshot *s = atomic_load(&gh_current_snapshot);
    if (!s || (w->pins && w->pins->snap == s))
        return;
    gh_pin *p = calloc(1, sizeof(*p));
    if (!p)
        return;
    gh_snapshot_ref(s);
    p->snap = s;
    p->plugin_ctx = gh_plugin_contexts_adopt(&w->plugin_live, &s->plugin_slots, &w->loop);
    p->next = w->pins;
    gh_pin *old = w->pins;
    w->pins = p;
    if (old && old->inflight == 0)
        drop_pin(w, old);
    w->env.limits = &s->cfg->limits;
    follow_redis(w, s->cfg->redis, s->redis_tls);

    /* listeners: keep those still configured, close the rest, open new ones */
    gh_listen_set *set = s->listen;
    for (size_t i = 0; i < w->nlisteners; i++) {
        gh_worker_listener *l = w->listeners[i];
        bool keep = false;
        for (size_t k = 0; set && k < set->n; k++) {
            if (gh_sockaddr_equal((struct sockaddr *)&l->sa, (struct sockaddr *)&set->items[k].sa)) {
                keep = true;
                l->info.handle = set->items[k].admin ? gh_admin_handle : gh_dispatch;
                l->info.uncounted = set->items[k].admin;
                l->info.path_strict = set->items[k].path_strict;
                l->info.http2 = set->items[k].http2;
                l->tls = set->items[k].tls;   /* new certificates for new connections */
                l->info.tls = l->tls != NULL;
            }
        }
        if (!keep) {
            listener_close(l);
            w->listeners[i--] = w->listeners[--w->nlisteners];
        }
    }
    for (size_t k = 0; set && k < set->n; k++) {
        int fd = set->items[k].fds[w->id];
        if (fd < 0)
            continue;
        set->items[k].fds[w->id] = -1;   /* ours now */
        listener_open(w, &set->items[k], fd);
    }
    /* acknowledged only when a removed port really refuses connections */
    w->adopting_generation = s->generation;
    if (w->listeners_closing == 0)
        atomic_store(&w->seen_generation, s->generation);
}

/* ------------------------------------------------------------ accepting -- */

/* accept(2) failing for lack of descriptors or memory leaves the pending
 * connection in the backlog and the listener readable: polling on would
 * spin. Stop polling this worker's listeners for a while instead (as nginx
 * does); the backlog keeps the clients until then. */
#define ACCEPT_PAUSE_MS 250
#define ACCEPT_LOG_EVERY_MS 5000

static void on_accept(uv_poll_t *h, int status, int events);

static void poll_listeners(gh_worker *w, bool on)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (on)
            uv_poll_start(&w->listeners[i]->poll, UV_READABLE, on_accept);
        else
            uv_poll_stop(&w->listeners[i]->poll);
    }
}

static void on_accept_resume(uv_timer_t *t)
{
    gh_worker *w = t->data;
    w->accept_paused = false;
    if (!w->draining)
        poll_listeners(w, true);
}

static bool out_of_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void pause_accepting(gh_worker *w, const gh_worker_listener *l, int err)
{
    unsigned long skipped;
    if (gh_log_limit_pass(&w->accept_log, uv_now(&w->loop), ACCEPT_LOG_EVERY_MS, &skipped))
        gh_log_error("accept on %s: %s; not accepting for %d ms (%lu more such failures in this worker "
                     "since the last report); raise the open-files limit or lower limits.max_connections",
                     l->address, strerror(err), ACCEPT_PAUSE_MS, skipped);
    w->accept_paused = true;
    poll_listeners(w, false);
    uv_timer_start(&w->accept_pause, on_accept_resume, ACCEPT_PAUSE_MS, 0);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    gh_worker_listener *l = h->data;
    gh_worker *w = l->w;
    if (status < 0 || w->draining)
        return;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (out_of_resources(errno))
                pause_accepting(w, l, errno);
            return;
        }
        const gh_limits_cfg *lim = w->env.limits;
        if ((uint64_t)atomic_fetch_add(&gh_open_connections, 1) >= lim->max_connections) {
            atomic_fetch_sub(&gh_open_connections, 1);
            close(fd);   /* over max_connections: refuse at once */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        gh_transport *tp = NULL;
        if (l->tls && !(tp = gh_tls_accept(l->tls, fd))) {
            atomic_fetch_sub(&gh_open_connections, 1);
            close(fd);
            continue;
        }
        if (gh_h1_conn_start(&w->loop, &w->env, fd, (struct sockaddr *)&peer, &l->info, tp) < 0)
            atomic_fetch_sub(&gh_open_connections, 1);
    }
}

static void listener_open(gh_worker *w, const gh_listen_item *it, int fd)
{
    gh_worker_listener *l = calloc(1, sizeof(*l));
    gh_worker_listener **arr = realloc(w->listeners, sizeof(*arr) * (w->nlisteners + 1));
    if (!l || !arr) {
        free(l);
        close(fd);
        return;
    }
    w->listeners = arr;
    l->fd = fd;
    l->w = w;
    memcpy(&l->sa, &it->sa, it->salen);
    snprintf(l->address, sizeof(l->address), "%s", it->address);
    l->info.local_port = gh_sockaddr_port((const struct sockaddr *)&it->sa);
    l->info.handle = it->admin ? gh_admin_handle : gh_dispatch;
    l->info.uncounted = it->admin;
    l->info.path_strict = it->path_strict;
    l->info.http2 = it->http2;
    l->tls = it->tls;
    l->info.tls = it->tls != NULL;
    uv_poll_init_socket(&w->loop, &l->poll, fd);
    l->poll.data = l;
    if (!w->accept_paused)   /* else the pause's end starts it */
        uv_poll_start(&l->poll, UV_READABLE, on_accept);
    w->listeners[w->nlisteners++] = l;
}

static void on_listener_closed(uv_handle_t *h)
{
    gh_worker_listener *l = h->data;
    gh_worker *w = l->w;
    close(l->fd);
    free(l);
    if (--w->listeners_closing == 0)
        atomic_store(&w->seen_generation, w->adopting_generation);
}

static void listener_close(gh_worker_listener *l)
{
    l->w->listeners_closing++;
    uv_poll_stop(&l->poll);
    uv_close((uv_handle_t *)&l->poll, on_listener_closed);
}

/* --------------------------------------------------------------- drain --- */

static void stop_loop_if_done(gh_worker *w)
{
    if (!w->draining || gh_h1_conn_count(&w->env) > 0)
        return;
    uv_stop(&w->loop);
}

static void begin_drain(gh_worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    w->env.draining = true;
    for (size_t i = 0; i < w->nlisteners; i++)
        listener_close(w->listeners[i]);
    w->nlisteners = 0;
    gh_h1_close_idle(&w->env);
    gh_tunnel_close_all(&w->env);
}

/* ------------------------------------------------------------- events ---- */

static void on_wake(uv_async_t *a)
{
    gh_worker *w = a->data;
    follow_snapshot(w);
    if (atomic_load(&gh_draining))
        begin_drain(w);
}

static void on_tick(uv_timer_t *t)
{
    gh_worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    for (int k = 0; k < GH_TO_COUNT; k++) {
        gh_deadline *d;
        while ((d = gh_deadline_pop_due(&w->env.timeouts[k], now)) != NULL)
            d->fire(d);
    }
    if (w->draining)
        gh_h1_close_idle(&w->env);
    /* The access log is written here, once a tick, or by gh_access_log_add
     * when its buffer is nearly full: few large writes instead of one per
     * loop turn. A crash loses at most the last tick's lines. */
    if (w->alog.len)
        gh_access_log_flush(&w->alog);
    stop_loop_if_done(w);
}

static void on_done(gh_exchange *ex)
{
    gh_worker *w = ex->env->owner;
    if (ex->plugin_run)
        gh_plugin_after_response(ex->plugin_run);
    bool counted = ex->cfg->admin && !ex->uncounted;   /* nobody can read metrics without admin */
    /* one clock read for the log line and the metrics, none if neither is on */
    uint64_t end_ns = counted || gh_access_log_enabled() ? uv_hrtime() : 0;
    gh_access_log_add(&w->alog, ex, end_ns);
    gh_callers_record(ex);
    if (counted)
        gh_metrics_exchange(w->env.metrics, ex, end_ns);
}

static void on_conn_closed(gh_http_env *env)
{
    (void)env;
    atomic_fetch_sub_explicit(&gh_open_connections, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------- thread ---- */

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void run(void *arg)
{
    gh_worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* drained (or stopped): release everything this thread owns */
    gh_subreq_detached_stop(&w->env);   /* before the proxy and the log they use */
    gh_access_log_flush(&w->alog);
    gh_proxy_worker_free(w->pw);
    w->pw = NULL;
    follow_redis(w, NULL, NULL);
    for (size_t i = 0; i < w->nlisteners; i++)
        listener_close(w->listeners[i]);
    w->nlisteners = 0;
    gh_h1_worker_close(&w->h1);
    for (gh_pin *p = w->pins; p; p = p->next) {   /* while the loop runs: they may hold handles */
        gh_plugin_contexts_drop(&w->plugin_live, &p->snap->plugin_slots, p->plugin_ctx);
        p->plugin_ctx = NULL;
    }
    uv_walk(&w->loop, close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    while (w->pins) {
        gh_pin *p = w->pins;
        w->pins = p->next;
        gh_plugin_contexts_drop(&w->plugin_live, &p->snap->plugin_slots, p->plugin_ctx);
        gh_snapshot_unref(p->snap);
        free(p);
    }
    free(w->listeners);
    w->listeners = NULL;
    gh_access_log_free(&w->alog);
    gh_bufpool_destroy(&w->bufs);
    gh_exchange_cache_clear(&w->env);
    atomic_store(&w->stopped, true);
}

int gh_worker_start(gh_worker *w, int id)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    int rc = uv_loop_init(&w->loop);
    if (rc < 0)
        return rc;
    gh_bufpool_init(&w->bufs, IO_BUF_SIZE, 64);
    gh_h1_worker_init(&w->h1, &w->loop);
    w->pw = gh_proxy_worker_new(&w->loop, &w->bufs);
    gh_access_log_init(&w->alog);
    gh_http_env *env = &w->env;
    env->loop = &w->loop;
    env->bufs = &w->bufs;
    env->h1 = &w->h1;
    env->owner = w;
    env->pin = pin;
    env->unpin = unpin;
    env->done = on_done;
    env->metrics = gh_metrics_for_worker(id);
    for (int k = 0; k < GH_TO_COUNT; k++)
        gh_deadline_list_init(&env->timeouts[k]);
    if (getrandom(env->rng, sizeof(env->rng), 0) != sizeof(env->rng)) {
        env->rng[0] = (uint64_t)uv_hrtime() ^ (uint64_t)id;
        env->rng[1] = 0x9e3779b97f4a7c15ULL * (uint64_t)(id + 1);
    }
    env->conn_closed = on_conn_closed;
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_init(&w->loop, &w->accept_pause);
    w->accept_pause.data = w;
    follow_snapshot(w);
    return uv_thread_create(&w->thread, run, w);
}

void gh_worker_notify(gh_worker *w)
{
    uv_async_send(&w->wake);
}

void gh_worker_join(gh_worker *w)
{
    uv_thread_join(&w->thread);
}
