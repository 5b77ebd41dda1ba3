#include "version.h"
#include "server/server.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "admin/admin.h"
#include "config/demo.h"
#include "core/log.h"
#include "observe/access_log.h"
#include "observe/metrics.h"
#include "proxy/health.h"
#include "proxy/resolve.h"
#include "server/cfgsrc.h"
#include "server/fd_limit.h"
#include "server/worker.h"

typedef struct server {
    const gh_run_options *opt;
    uv_loop_t *loop;
    uv_signal_t sig_hup, sig_term, sig_int, sig_usr1;
    uv_timer_t timer;             /* drain watch, deferred reloads */
    gh_worker *workers;
    gh_health *health;            /* active health checks, on this loop */
    gh_resolver *resolver;        /* resolve_every, on this loop */
    int nworkers;
    uint64_t generation;
    gh_cfgsrc *source;            /* file, watched file or etcd */
    gh_config *boot;              /* with etcd: the bootstrap file, whose etcd settings the source uses */
    bool loading;                 /* a document is being prepared off the loop */
    bool reload_pending;
    bool announce_pending;
    bool draining;
    uint64_t drain_deadline;
    char access_target[4096];
    unsigned long reloads_ok, reloads_error;
    uv_async_t admin_wake;        /* POST /api/reload asked */
    uv_mutex_t admin_lock;        /* guards admin_asked (workers push, we pop) */
    gh_admin_reload **admin_asked, **admin_waiting, **admin_applying;
    size_t nasked, nwaiting, napplying;
} server;

static server *the_server;   /* for the admin API's reload requests */

static int count_workers(const gh_run_options *o, const gh_config *cfg)
{
    if (o->workers > 0)
        return o->workers;
    if (cfg->workers > 0)
        return cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void apply_logging(server *s, const gh_config *cfg)
{
    gh_log_level = s->opt->log_level >= 0 ? s->opt->log_level : cfg->log.level;
    if (strcmp(s->access_target, cfg->log.access.p) != 0) {
        int rc = gh_access_log_open(cfg->log.access.p);
        if (rc < 0)
            gh_log_error("cannot open access log %s: %s", cfg->log.access.p, strerror(-rc));
        else
            snprintf(s->access_target, sizeof(s->access_target), "%s", cfg->log.access.p);
    }
}

static bool workers_caught_up(server *s)
{
    for (int i = 0; i < s->nworkers; i++)
        if (atomic_load(&s->workers[i].seen_generation) != s->generation)
            return false;
    return true;
}

static void publish(server *s, gh_snapshot *snap)
{
    snap->generation = ++s->generation;
    gh_snapshot *old = atomic_exchange(&gh_current_snapshot, snap);
    for (int i = 0; i < s->nworkers; i++)
        gh_worker_notify(&s->workers[i]);
    gh_snapshot_unref(old);
}

static void announce_reload(server *s);

/* A refused reload: the POST /api/reload requests waiting get its messages. */
static void answer_admin(server *s, const gh_diag *d, const char *err)
{
    const char **msgs = calloc(d ? d->n + 1 : 1, sizeof(*msgs));
    size_t n = 0;
    for (size_t i = 0; msgs && d && i < d->n; i++)
        msgs[n++] = d->items[i].text;
    if (msgs && err && err[0])
        msgs[n++] = err;
    for (size_t i = 0; i < s->nwaiting; i++)
        gh_admin_reload_done(s->admin_waiting[i], false, s->generation, msgs, n);
    s->nwaiting = 0;
    free(msgs);
}

/* The last reload's result for /api/stats and /api/status. */
static void note_reload_failed(const gh_diag *d, const char *err, int64_t revision)
{
    const char **msgs = calloc(d->n + 1, sizeof(*msgs));
    size_t n = 0;
    for (size_t i = 0; msgs && i < d->n; i++)
        msgs[n++] = d->items[i].text;
    if (msgs && err && err[0])
        msgs[n++] = err;
    gh_metrics_reload(false, revision, msgs, n);
    free(msgs);
}

/* A reload in preparation: the document is parsed, validated and compiled
 * (upstream names resolved) on the thread pool, so the loop keeps serving
 * health checks, the admin wake-ups and etcd meanwhile. */
typedef struct load_job {
    uv_work_t work;
    server *s;
    gh_cfgdoc doc;
    int nworkers;
    gh_diag d;
    gh_snapshot *snap;
} load_job;

static void load_work(uv_work_t *w)
{
    load_job *j = w->data;
    j->snap = gh_cfgdoc_load(&j->doc, j->nworkers, &j->d);
}

static const char *rev_text(const gh_cfgdoc *doc, char *buf, size_t n)
{
    if (doc->revision)
        snprintf(buf, n, "; etcd revision %lld refused", (long long)doc->revision);
    else
        buf[0] = '\0';
    return buf;
}

static void load_done(uv_work_t *w, int status)
{
    load_job *j = w->data;
    server *s = j->s;
    gh_snapshot *snap = j->snap;
    gh_diag *d = &j->d;
    char err[512] = "", rev[64];
    s->loading = false;
    if (s->draining) {
        gh_snapshot_unref(snap);
        snap = NULL;
        snprintf(err, sizeof(err), "the gateway is draining; no reload");
    }
    if (snap) {
        gh_snapshot *cur = atomic_load(&gh_current_snapshot);
        snap->listen = gh_listen_set_make(snap->cfg, snap->tls_servers, cur->listen, s->nworkers, err, sizeof(err));
        if (!snap->listen) {
            gh_snapshot_unref(snap);
            snap = NULL;
        }
    }
    gh_cfgsrc_loaded(s->source, &j->doc, snap ? snap->cfg : NULL, snap != NULL);
    if (!snap) {
        s->reloads_error++;
        for (size_t i = 0; i < d->n; i++)
            gh_log_error("%s", d->items[i].text);
        if (err[0])
            gh_log_error("%s", err);
        answer_admin(s, d, err);
        note_reload_failed(d, err, j->doc.revision);
        /* last, so that the line closes this reload's output */
        gh_log_error("reload failed; keeping the running configuration (generation %llu%s)",
                     (unsigned long long)s->generation, rev_text(&j->doc, rev, sizeof(rev)));
    } else {
        for (size_t i = 0; i < d->n; i++)
            gh_log_warn("%s", d->items[i].text);
        if (count_workers(s->opt, snap->cfg) != s->nworkers)
            gh_log_warn("reload: a change of `workers` takes effect at the next restart");
        apply_logging(s, snap->cfg);
        gh_fd_limit_check(snap->cfg, s->nworkers);
        gh_resolver_apply(s->resolver, snap->cfg);
        gh_health_apply(s->health, snap->cfg, snap->tls_clients);
        gh_metrics_assign(snap->cfg);
        publish(s, snap);
        gh_metrics_reload(true, j->doc.revision, NULL, 0);
        /* answered with the "reloaded" line, once every worker serves it */
        free(s->admin_applying);
        s->admin_applying = s->admin_waiting;
        s->napplying = s->nwaiting;
        s->admin_waiting = NULL;
        s->nwaiting = 0;
        s->reloads_ok++;
        s->announce_pending = true;   /* said by the timer once every worker serves it */
    }
    gh_diag_free(d);
    gh_cfgdoc_free(&j->doc);
    free(j);
}

static void reload(server *s)
{
    if (!s->workers)
        return;   /* still starting (waiting for etcd's first document): nothing to reload yet */
    if (s->loading || !workers_caught_up(s)) {
        s->reload_pending = true;   /* one reload at a time: retried by the timer */
        return;
    }
    s->reload_pending = false;
    announce_reload(s);   /* the previous one, if the timer has not said it yet */
    load_job *j = calloc(1, sizeof(*j));
    if (!j || !gh_cfgsrc_current(s->source, &j->doc)) {
        free(j);
        gh_log_error("reload: out of memory; keeping the running configuration");
        return;
    }
    j->s = s;
    j->work.data = j;
    j->nworkers = s->nworkers;
    gh_diag_init(&j->d, j->doc.name ? j->doc.name : s->opt->config ? s->opt->config : "<demo>");
    s->loading = true;
    if (uv_queue_work(s->loop, &j->work, load_work, load_done) < 0) {
        s->loading = false;
        gh_diag_free(&j->d);
        gh_cfgdoc_free(&j->doc);
        free(j);
        gh_log_error("reload: cannot queue the load; keeping the running configuration");
    }
}

static void on_source_changed(void *ud)
{
    server *s = ud;
    if (!s->draining)
        reload(s);
}

/* "reloaded" means in effect: every worker uses the new snapshot and a removed
 * port refuses connections, so whoever waits for the line may rely on it. */
static void announce_reload(server *s)
{
    if (!s->announce_pending || !workers_caught_up(s))
        return;
    s->announce_pending = false;
    gh_snapshot *cur = atomic_load(&gh_current_snapshot);
    if (cur->cfg->revision)
        gh_log_info("configuration reloaded (generation %llu, etcd revision %lld)", (unsigned long long)s->generation,
                    (long long)cur->cfg->revision);
    else
        gh_log_info("configuration reloaded (generation %llu)", (unsigned long long)s->generation);
    for (size_t i = 0; i < s->napplying; i++)
        gh_admin_reload_done(s->admin_applying[i], true, s->generation, NULL, 0);
    s->napplying = 0;
}

static void on_timer(uv_timer_t *t)
{
    server *s = t->data;
    announce_reload(s);
    if (s->draining) {
        bool all = true;
        for (int i = 0; i < s->nworkers; i++)
            all = all && atomic_load(&s->workers[i].stopped);
        if (all || uv_now(s->loop) >= s->drain_deadline) {
            if (!all)
                gh_log_warn("drain_timeout reached with requests in flight; exiting");
            uv_stop(s->loop);
        }
        return;
    }
    if (s->reload_pending)
        reload(s);
}

/* A worker's POST /api/reload: handed to the main loop, which runs the
 * same reload as SIGHUP. */
static void admin_request(gh_admin_reload *r)
{
    server *s = the_server;
    uv_mutex_lock(&s->admin_lock);
    gh_admin_reload **a = realloc(s->admin_asked, sizeof(*a) * (s->nasked + 1));
    if (a) {
        s->admin_asked = a;
        a[s->nasked++] = r;
    }
    uv_mutex_unlock(&s->admin_lock);
    if (!a) {
        gh_admin_reload_done(r, false, 0, NULL, 0);
        return;
    }
    uv_async_send(&s->admin_wake);
}

static void on_admin_wake(uv_async_t *h)
{
    server *s = h->data;
    uv_mutex_lock(&s->admin_lock);
    gh_admin_reload **asked = s->admin_asked;
    size_t n = s->nasked;
    s->admin_asked = NULL;
    s->nasked = 0;
    uv_mutex_unlock(&s->admin_lock);
    gh_admin_reload **w = realloc(s->admin_waiting, sizeof(*w) * (s->nwaiting + n));
    if (!w) {
        for (size_t i = 0; i < n; i++)
            gh_admin_reload_done(asked[i], false, s->generation, NULL, 0);
        free(asked);
        return;
    }
    s->admin_waiting = w;
    for (size_t i = 0; i < n; i++)
        w[s->nwaiting++] = asked[i];
    free(asked);
    if (s->draining) {
        static const char *const why[] = { "the gateway is draining; no reload" };
        for (size_t i = 0; i < s->nwaiting; i++)
            gh_admin_reload_done(s->admin_waiting[i], false, s->generation, why, 1);
        s->nwaiting = 0;
    } else if (n) {
        reload(s);   /* or later, by the timer, when a reload is still in progress */
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    server *s = h->data;
    switch (signum) {
    case SIGHUP:
        if (!s->draining)
            reload(s);
        break;
    case SIGUSR1:
        gh_log_reopen();
        gh_access_log_reopen();
        gh_log_info("log files reopened");
        break;
    default:
        if (s->draining)
            return;
        if (!s->workers) {   /* asked to stop while waiting for etcd's first document */
            gh_log_info("stopped before serving");
            exit(0);
        }
        s->draining = true;
        gh_log_info("draining: no new connections; finishing requests in flight");
        atomic_store(&gh_draining, true);
        for (int i = 0; i < s->nworkers; i++)
            gh_worker_notify(&s->workers[i]);
        gh_snapshot *cur = atomic_load(&gh_current_snapshot);
        s->drain_deadline = uv_now(s->loop) + cur->cfg->drain_timeout_ms;
        break;
    }
}

static void start_signals(server *s)
{
    struct { uv_signal_t *h; int sig; } sigs[] = {
        { &s->sig_hup, SIGHUP }, { &s->sig_term, SIGTERM }, { &s->sig_int, SIGINT }, { &s->sig_usr1, SIGUSR1 },
    };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        uv_signal_init(s->loop, sigs[i].h);
        sigs[i].h->data = s;
        uv_signal_start(sigs[i].h, on_signal, sigs[i].sig);
    }
}

static void announce(const gh_run_options *o, const gh_config *cfg, int nworkers)
{
    char addrs[1024] = "";
    size_t off = 0;
    for (size_t i = 0; i < cfg->nlistens && off < sizeof(addrs) - 80; i++)
        off += (size_t)snprintf(addrs + off, sizeof(addrs) - off, "%s%s://%s", i ? ", " : "",
                                cfg->listens[i].tls ? "https" : "http", cfg->listens[i].address.p);
    gh_log_info("gatehouse %s serving on %s with %d worker%s (config: %s)", GH_VERSION, addrs, nworkers,
                nworkers == 1 ? "" : "s", cfg->revision ? cfg->file : o->config ? o->config : "embedded demo");
    if (!o->config)
        gh_demo_banner(stderr, cfg);
}

/* The first document of an etcd source: etcd's, else the cache file's. */
static gh_snapshot *start_remote(server *s, gh_diag *d)
{
    gh_cfgdoc doc;
    if (!s->source || !gh_cfgsrc_current(s->source, &doc))
        return NULL;
    if (!doc.text) {
        gh_diag_fail(d, "no configuration: etcd has no document at %s and there is no cache file to start from",
                     s->boot->etcd->key.p);
        gh_cfgdoc_free(&doc);
        return NULL;
    }
    gh_diag sub;
    gh_diag_init(&sub, doc.name);
    gh_snapshot *snap = gh_cfgdoc_load(&doc, s->nworkers, &sub);
    for (size_t i = 0; i < sub.n; i++)
        gh_log_error("%s", sub.items[i].text);
    if (!snap)
        gh_diag_fail(d, "the configuration from %s is invalid", doc.name);
    else
        gh_cfgsrc_loaded(s->source, &doc, snap->cfg, true);
    gh_diag_free(&sub);
    gh_cfgdoc_free(&doc);
    return snap;
}

int gh_server_run(const gh_run_options *o)
{
    signal(SIGPIPE, SIG_IGN);
    server s = { .opt = o, .loop = uv_default_loop() };
    /* handlers first: a SIGHUP right after the port opens must not kill us */
    start_signals(&s);
    the_server = &s;
    gh_admin_started_at = (int64_t)time(NULL);
    uv_mutex_init(&s.admin_lock);
    uv_async_init(s.loop, &s.admin_wake, on_admin_wake);
    s.admin_wake.data = &s;
    gh_admin_set_reloader(admin_request);
    gh_diag d;
    gh_diag_init(&d, o->config ? o->config : "<demo>");
    gh_config *cfg = o->config ? gh_config_load_file(o->config, &d) : gh_demo_load(&d);
    if (!cfg) {
        gh_diag_print(&d, stderr);
        gh_diag_free(&d);
        return 1;
    }
    s.nworkers = count_workers(o, cfg);
    gh_metrics_init(s.nworkers);
    gh_snapshot *snap = NULL;
    if (cfg->etcd) {
        /* a fleet node: the bootstrap file names etcd; the document comes from there */
        s.boot = cfg;
        s.source = gh_cfgsrc_new(s.loop, o->config, s.boot, on_source_changed, &s);
        snap = start_remote(&s, &d);
    } else {
        s.source = gh_cfgsrc_new(s.loop, o->config, cfg, on_source_changed, &s);
        snap = gh_snapshot_build(cfg, s.nworkers, &d);
    }
    gh_diag_print(&d, stderr);
    gh_diag_free(&d);
    if (!snap || !s.source)
        return 1;
    if (snap->cfg->log.errors.len && strcmp(snap->cfg->log.errors.p, "stderr") != 0) {
        int rc = gh_log_open(snap->cfg->log.errors.p);
        if (rc < 0) {
            fprintf(stderr, "gatehouse: cannot open error log %s: %s\n", snap->cfg->log.errors.p, strerror(-rc));
            gh_snapshot_unref(snap);
            return 3;
        }
    }
    apply_logging(&s, snap->cfg);
    gh_fd_limit_raise();
    gh_fd_limit_check(snap->cfg, s.nworkers);
    char err[512];
    snap->listen = gh_listen_set_make(snap->cfg, snap->tls_servers, NULL, s.nworkers, err, sizeof(err));
    if (!snap->listen) {
        gh_log_error("%s", err);
        gh_snapshot_unref(snap);
        return 3;
    }
    gh_metrics_assign(snap->cfg);
    snap->generation = s.generation = 1;
    atomic_store(&gh_current_snapshot, snap);
    s.workers = calloc((size_t)s.nworkers, sizeof(gh_worker));
    for (int i = 0; i < s.nworkers; i++) {
        if (gh_worker_start(&s.workers[i], i) != 0) {
            gh_log_error("cannot start worker %d", i);
            return 3;
        }
    }
    if (!(s.resolver = gh_resolver_new(s.loop)) || !(s.health = gh_health_new(s.loop)))
        gh_log_error("out of memory: health checks or re-resolution do not run");
    gh_resolver_apply(s.resolver, snap->cfg);
    gh_health_apply(s.health, snap->cfg, snap->tls_clients);
    uv_timer_init(s.loop, &s.timer);
    s.timer.data = &s;
    uv_timer_start(&s.timer, on_timer, 50, 50);
    announce(o, snap->cfg, s.nworkers);
    uv_run(s.loop, UV_RUN_DEFAULT);

    /* drained: let every worker finish, then free what is left */
    atomic_store(&gh_draining, true);
    for (int i = 0; i < s.nworkers; i++)
        if (atomic_load(&s.workers[i].stopped))
            gh_worker_join(&s.workers[i]);
    bool all = true;
    for (int i = 0; i < s.nworkers; i++)
        all = all && atomic_load(&s.workers[i].stopped);
    if (!all) {   /* drain_timeout: requests still in flight are cut */
        gh_log_info("exiting");
        fflush(NULL);
        _exit(0);
    }
    gh_health_free(s.health);
    gh_resolver_free(s.resolver);
    gh_cfgsrc_free(s.source);
    gh_snapshot_unref(atomic_exchange(&gh_current_snapshot, NULL));
    free(s.workers);
    uv_close((uv_handle_t *)&s.timer, NULL);
    uv_close((uv_handle_t *)&s.sig_hup, NULL);
    uv_close((uv_handle_t *)&s.sig_term, NULL);
    uv_close((uv_handle_t *)&s.sig_int, NULL);
    uv_close((uv_handle_t *)&s.sig_usr1, NULL);
    uv_close((uv_handle_t *)&s.admin_wake, NULL);
    uv_run(s.loop, UV_RUN_DEFAULT);
    uv_loop_close(s.loop);
    uv_mutex_destroy(&s.admin_lock);
    free(s.admin_asked);
    free(s.admin_waiting);
    free(s.admin_applying);
    gh_config_free(s.boot);
    gh_log_info("stopped");
    return 0;
}
