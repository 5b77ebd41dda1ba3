/* cfgsrc.c — the configuration sources behind one reload path: the file,
 * the watched file (uv_fs_event on its directory, so an editor's
 * write-to-temp + rename is seen; a burst of events is applied once, after
 * DEBOUNCE_MS of quiet) and etcd (cluster/etcd.c), with its cache file. */
#include "server/cfgsrc.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cluster/etcd.h"
#include "config/demo.h"
#include "core/log.h"

#define DEBOUNCE_MS 100
#define CACHE_HEADER "# gatehouse: last good configuration from etcd, revision "

struct gh_cfgsrc {
    uv_loop_t *loop;
    char *path, *dir, *base;
    void (*changed)(void *ud);
    void *ud;
    bool watching;
    uv_fs_event_t ev;
    uv_timer_t debounce;
    /* etcd */
    const gh_etcd_cfg *etcd;
    gh_tls_client *tls;           /* https endpoints */
    gh_etcd *client;
    bool ready;                   /* the first document (or its absence) is known */
    char *doc;                    /* newest document; NULL = none */
    size_t len;
    int64_t rev;
};

static char *dupn(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* ------------------------------------------------------------ watch --- */

static void on_quiet(uv_timer_t *t)
{
    gh_cfgsrc *s = t->data;
    gh_log_info("configuration file %s changed; reloading", s->path);
    s->changed(s->ud);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    gh_cfgsrc *s = h->data;
    if (status < 0 || (filename && strcmp(filename, s->base) != 0))
        return;
    uv_timer_start(&s->debounce, on_quiet, DEBOUNCE_MS, 0);   /* restarted by each event of a burst */
}

static void set_watch(gh_cfgsrc *s, bool on)
{
    if (on == s->watching || !s->path)
        return;
    if (on) {
        int rc = uv_fs_event_start(&s->ev, on_fs_event, s->dir, 0);
        if (rc < 0) {
            gh_log_error("watch: cannot watch %s: %s", s->dir, uv_strerror(rc));
            return;
        }
    } else {
        uv_fs_event_stop(&s->ev);
        uv_timer_stop(&s->debounce);
    }
    s->watching = on;
}

/* ------------------------------------------------------------- etcd --- */

static void set_doc(gh_cfgsrc *s, const char *v, size_t len, int64_t rev)
{
    char *d = dupn(v, len);
    if (!d)
        return;
    free(s->doc);
    s->doc = d;
    s->len = len;
    s->rev = rev;
}

/* The cache file: a comment line with the revision, then the document. */
static bool read_cache(gh_cfgsrc *s)
{
    if (!s->etcd->cache_file.len)
        return false;
    size_t len;
    char *text = gh_config_read_file(s->etcd->cache_file.p, &len);
    if (!text) {
        gh_log_warn("etcd: no usable cache file %s: %s", s->etcd->cache_file.p, strerror(errno));
        return false;
    }
    size_t hl = strlen(CACHE_HEADER);
    int64_t rev = 0;
    if (len > hl && memcmp(text, CACHE_HEADER, hl) == 0)
        rev = strtoll(text + hl, NULL, 10);
    set_doc(s, text, len, rev);
    free(text);
    gh_log_warn("etcd: starting from the cache file %s (revision %lld)", s->etcd->cache_file.p, (long long)rev);
    return true;
}

/* The cache file is written on the thread pool: fsync has no place on the loop. */
typedef struct cache_job {
    uv_work_t work;
    char *file, *doc;
    size_t len;
    int64_t rev;
} cache_job;

static void cache_write(uv_work_t *w)
{
    cache_job *j = w->data;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", j->file, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fprintf(f, CACHE_HEADER "%lld\n", (long long)j->rev) > 0 && fwrite(j->doc, 1, j->len, f) == j->len;
    ok = f && fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    if (f)
        ok = fclose(f) == 0 && ok;
    /* rename: a reader (a restart) sees the old copy or the new one, never half */
    if (!ok || rename(tmp, j->file) != 0) {
        gh_log_error("etcd: cannot write the cache file %s: %s", j->file, strerror(errno));
        unlink(tmp);
    }
}

static void cache_written(uv_work_t *w, int status)
{
    cache_job *j = w->data;
    free(j->file);
    free(j->doc);
    free(j);
}

static void write_cache(gh_cfgsrc *s)
{
    cache_job *j = calloc(1, sizeof(*j));
    if (j && (j->file = strdup(s->etcd->cache_file.p)) && (j->doc = dupn(s->doc, s->len))) {
        j->len = s->len;
        j->rev = s->rev;
        j->work.data = j;
        if (uv_queue_work(s->loop, &j->work, cache_write, cache_written) == 0)
            return;
    }
    gh_log_error("etcd: cannot write the cache file %s: out of memory", s->etcd->cache_file.p);
    if (j) {
        free(j->file);
        free(j->doc);
        free(j);
    }
}

static void first_known(gh_cfgsrc *s)
{
    if (s->ready)
        return;
    s->ready = true;
}

static void on_value(void *ud, const char *v, size_t len, int64_t rev)
{
    gh_cfgsrc *s = ud;
    if (!v) {
        gh_log_warn("etcd: no document at %s%s", s->etcd->key.p, s->doc ? "; keeping the running configuration" : "");
        if (!s->ready)
            read_cache(s);   /* deleted while this node was away: its last good copy */
        first_known(s);
        return;
    }
    if (s->doc && rev == s->rev && rev && s->ready)
        return;   /* the revision we already have (from the cache file, or before a reconnect) */
    set_doc(s, v, len, rev);
    if (!s->ready) {
        first_known(s);
        return;
    }
    gh_log_info("etcd: revision %lld of %s; reloading", (long long)rev, s->etcd->key.p);
    s->changed(s->ud);
}

static void on_unreachable(void *ud, const char *why)
{
    gh_cfgsrc *s = ud;
    if (s->ready)
        return;
    gh_log_warn("etcd unreachable at start (%s)", why);
    read_cache(s);
    first_known(s);
}

/* -------------------------------------------------------------- API --- */

static void src_closed(uv_handle_t *h)
{
    gh_cfgsrc *s = h->data;
    free(s->path);
    free(s->dir);
    free(s->base);
    free(s->doc);
    gh_tls_client_free(s->tls);
    free(s);
}

gh_cfgsrc *gh_cfgsrc_new(uv_loop_t *loop, const char *path, const gh_config *boot, void (*changed)(void *ud),
                         void *ud)
{
    gh_cfgsrc *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->changed = changed;
    s->ud = ud;
    if (path) {
        char *a = strdup(path), *b = strdup(path);
        s->path = strdup(path);
        s->dir = a ? strdup(dirname(a)) : NULL;
        s->base = b ? strdup(basename(b)) : NULL;
        free(a);
        free(b);
    }
    uv_fs_event_init(loop, &s->ev);
    s->ev.data = s;
    uv_timer_init(loop, &s->debounce);
    s->debounce.data = s;   /* every etcd call has a deadline: the wait for the first document is bounded */
    if (boot)
        set_watch(s, boot->watch);
    s->etcd = boot ? boot->etcd : NULL;
    s->ready = true;
    if (s->etcd) {
        gh_diag d;
        bool ok;
        gh_diag_init(&d, path);
        s->tls = gh_etcd_tls(boot, &d, &ok);
        gh_diag_print(&d, stderr);
        gh_diag_free(&d);
        if (!ok)
            return s;   /* no client: no document; the caller reports it */
        s->ready = false;
        s->client = gh_etcd_start(loop, s->etcd, s->tls,
                                  (gh_etcd_handler){ .value = on_value, .unreachable = on_unreachable, .ud = s });
        while (!s->ready && s->client)
            uv_run(loop, UV_RUN_ONCE);
    }
    return s;
}

bool gh_cfgsrc_is_remote(const gh_cfgsrc *s)
{
    return s && s->etcd;
}

bool gh_cfgsrc_current(gh_cfgsrc *s, gh_cfgdoc *out)
{
    memset(out, 0, sizeof(*out));
    if (s->path && !(out->path = strdup(s->path)))
        return false;
    if (s->etcd && s->doc) {
        char name[1024];
        snprintf(name, sizeof(name), "etcd:%s@%lld", s->etcd->key.p, (long long)s->rev);
        out->text = dupn(s->doc, s->len);
        out->len = s->len;
        out->name = strdup(name);
        out->revision = s->rev;
        if (!out->text || !out->name) {
            gh_cfgdoc_free(out);
            return false;
        }
    }
    return true;
}

void gh_cfgsrc_loaded(gh_cfgsrc *s, const gh_cfgdoc *doc, const gh_config *cfg, bool ok)
{
    if (!ok)
        return;
    set_watch(s, cfg->watch);
    if (s->etcd && s->etcd->cache_file.len && doc->text && doc->revision == s->rev && s->doc &&
        !(s->len > strlen(CACHE_HEADER) && memcmp(s->doc, CACHE_HEADER, strlen(CACHE_HEADER)) == 0))
        write_cache(s);
}

void gh_cfgsrc_free(gh_cfgsrc *s)
{
    if (!s)
        return;
    gh_etcd_stop(s->client);
    uv_close((uv_handle_t *)&s->ev, NULL);
    uv_close((uv_handle_t *)&s->debounce, src_closed);   /* the last: frees s */
}

gh_snapshot *gh_cfgdoc_load(const gh_cfgdoc *doc, int nworkers, gh_diag *diag)
{
    if (!doc->text)
        return gh_snapshot_load(doc->path, nworkers, diag);
    gh_config *cfg = gh_config_load_layered(doc->path, doc->name, doc->text, doc->len, diag);
    if (!cfg)
        return NULL;
    cfg->revision = doc->revision;
    return gh_snapshot_build(cfg, nworkers, diag);
}

void gh_cfgdoc_free(gh_cfgdoc *doc)
{
    free(doc->path);
    free(doc->text);
    free(doc->name);
    memset(doc, 0, sizeof(*doc));
}
