#include "proxy/health.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/bufpool.h"
#include "core/log.h"
#include "http/h1_parse.h"
#include "proxy/pool.h"
#include "proxy/upstate.h"

enum { IDLE = 0, CONNECTING, HANDSHAKE, SENDING, READING };

typedef struct probe {
    struct probe *next;
    gh_health *h;
    gh_target_state *ts;          /* own reference: the verdict goes here; ts->key is the address */
    char *upstream;               /* its name, for logs */
    char *host;                   /* the target's host: the TLS name when the upstream sets no sni */
    char *req;                    /* the whole request, built at apply */
    size_t req_len, sent;
    struct sockaddr_storage sa;
    socklen_t salen;
    bool resolving;               /* resolve_every: the state has the address */
    gh_tls_client *tls;           /* referenced; NULL = plaintext */
    uint64_t interval_ms, timeout_ms;
    uint32_t healthy_after, unhealthy_after;
    uint64_t expect[10];
    gh_health_counts counts;      /* kept across reloads that keep the target */
    uv_timer_t tick;
    gh_upconn *uc;                /* the check in flight, or NULL */
    int phase;
    bool seen;                    /* still checked by the configuration being applied */
    size_t got;
    char buf[4096];               /* the response head (only the status matters) */
} probe;

struct gh_health {
    uv_loop_t *loop;
    gh_bufpool bufs;              /* gh_upconn wants one; checks read into their own buffer */
    gh_proxy_worker *pw;          /* connections: the same code the workers connect with */
    probe *probes;
};

/* ------------------------------------------------------------ counting -- */

bool gh_health_judge(gh_health_counts *c, bool healthy, bool success, uint32_t healthy_after,
                     uint32_t unhealthy_after)
{
    if (success) {
        c->failed = 0;
        if (c->ok < UINT32_MAX)
            c->ok++;
        return healthy || c->ok >= healthy_after;
    }
    c->ok = 0;
    if (c->failed < UINT32_MAX)
        c->failed++;
    return healthy && c->failed < unhealthy_after;
}

void gh_health_expect_set(const gh_upstream_cfg *u, uint64_t set[10])
{
    memset(set, 0, 10 * sizeof(uint64_t));
    for (size_t i = 0; i < u->active.nexpect; i++)
        for (unsigned s = u->active.expect[i].lo; s <= u->active.expect[i].hi && s < 640; s++)
            set[s >> 6] |= 1ULL << (s & 63);
}

/* ------------------------------------------------------------- a check -- */

static void finish(probe *p, bool success, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void finish(probe *p, bool success, const char *fmt, ...)
{
    if (p->uc)
        gh_upconn_close(p->uc);
    p->uc = NULL;
    p->phase = IDLE;
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (!success)
        gh_log_debug("upstream %s target %s: health check failed: %s", p->upstream, p->ts->key, why);
    bool was = gh_target_healthy(p->ts);
    bool now = gh_health_judge(&p->counts, was, success, p->healthy_after, p->unhealthy_after);
    if (now == was || !gh_target_set_healthy(p->ts, now))
        return;
    if (now)
        gh_log_info("upstream %s target %s: healthy again after %u passed health checks", p->upstream, p->ts->key,
                    p->counts.ok);
    else
        gh_log_warn("upstream %s target %s: down after %u failed health checks (last: %s)", p->upstream,
                    p->ts->key, p->counts.failed, why);
}

static void step(probe *p);

static void read_head(probe *p)
{
    for (;;) {
        ssize_t n = gh_upconn_read(p->uc, p->buf + p->got, sizeof(p->buf) - p->got);
        if (n == -EAGAIN) {
            gh_upconn_events(p->uc, gh_transport_wants(p->uc->tp, false));
            return;
        }
        if (n < 0) {
            finish(p, false, "connection error: %s", strerror((int)-n));
            return;
        }
        if (n == 0) {
            finish(p, false, "connection closed before a response");
            return;
        }
        p->got += (size_t)n;
        gh_header hs[64];
        gh_h1_message m;
        int rc = gh_h1_parse_response(p->buf, p->got, &m, hs, 64, sizeof(p->buf), false);
        if (rc > 0) {
            bool ok = gh_health_expected(p->expect, m.status);
            finish(p, ok, "status %d", m.status);
            return;
        }
        if (rc == GH_H1_BAD) {
            finish(p, false, "malformed response");
            return;
        }
        if (rc == GH_H1_TOO_BIG || p->got == sizeof(p->buf)) {
            finish(p, false, "response head too large");
            return;
        }
    }
}

static void step(probe *p)
{
    gh_upconn *uc = p->uc;
    if (p->phase == HANDSHAKE) {
        int rc = gh_transport_handshake(uc->tp, uc->fd);
        if (rc == -EAGAIN) {
            gh_upconn_events(uc, gh_transport_wants(uc->tp, false));
            return;
        }
        if (rc < 0) {
            const char *why = gh_tls_error(uc->tp);
            finish(p, false, "TLS handshake failed: %s", why ? why : "?");
            return;
        }
        p->phase = SENDING;
    }
    if (p->phase == SENDING) {
        while (p->sent < p->req_len) {
            struct iovec iov = { p->req + p->sent, p->req_len - p->sent };
            ssize_t n = gh_upconn_writev(uc, &iov, 1);
            if (n == -EAGAIN) {
                gh_upconn_events(uc, gh_transport_wants(uc->tp, true));
                return;
            }
            if (n < 0) {
                finish(p, false, "connection error: %s", strerror((int)-n));
                return;
            }
            p->sent += (size_t)n;
        }
        p->phase = READING;
    }
    read_head(p);
}

static void on_event(gh_upconn *uc, int events)
{
    probe *p = uc->owner;
    if (events < 0) {
        int so = gh_upconn_connect_result(uc);   /* libuv says EBADF for any EPOLLERR */
        finish(p, false, "%s: %s", p->phase == CONNECTING ? "connect error" : "connection error",
               strerror(-(so < 0 ? so : events)));
        return;
    }
    if (p->phase == CONNECTING) {
        if (!(events & UV_WRITABLE))
            return;
        int r = gh_upconn_connect_result(uc);
        if (r < 0) {
            finish(p, false, "connect error: %s", strerror(-r));
            return;
        }
        p->phase = SENDING;
        if (p->tls) {
            if (!(uc->tp = gh_tls_connect(p->tls, uc->fd, p->host))) {
                uc->tp = &gh_transport_plain;
                finish(p, false, "out of memory");
                return;
            }
            p->phase = HANDSHAKE;
        }
    }
    step(p);
}

static void on_timeout(gh_upconn *uc)
{
    probe *p = uc->owner;
    finish(p, false, "timed out after %llums", (unsigned long long)p->timeout_ms);
}

static void on_tick(uv_timer_t *t)
{
    probe *p = t->data;
    if (p->uc)
        return;   /* the last check is still running (timeout > interval) */
    int err = 0;
    struct sockaddr_storage ab;
    socklen_t alen = p->salen;
    const struct sockaddr *sa = (const struct sockaddr *)&p->sa;
    if (p->resolving && gh_target_addr(p->ts, &ab, &alen))
        sa = (const struct sockaddr *)&ab;
    p->uc = gh_upconn_connect(p->h->pw, sa, alen, &err);
    if (!p->uc) {
        finish(p, false, "connect error: %s", strerror(-err));
        return;
    }
    p->uc->owner = p;
    p->uc->on_event = on_event;
    p->uc->on_timer = on_timeout;
    p->phase = CONNECTING;
    p->sent = p->got = 0;
    gh_upconn_timer(p->uc, p->timeout_ms);
}

/* ------------------------------------------------------------- probes -- */

static void cancel(probe *p)
{
    if (p->uc)
        gh_upconn_close(p->uc);
    p->uc = NULL;
    p->phase = IDLE;
}

static void on_probe_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Is address a target of any upstream of cfg? */
static bool in_config(const gh_config *cfg, const char *address)
{
    for (size_t i = 0; cfg && i < cfg->nupstreams; i++)
        for (size_t j = 0; j < cfg->upstreams[i].ntargets; j++)
            if (strcmp(cfg->upstreams[i].targets[j].address.p, address) == 0)
                return true;
    return false;
}

/* No longer checked. A target that stays in the configuration (checks
 * removed from its upstream) must not stay out because of an old verdict. */
static void probe_stop(probe *p, const gh_config *cfg)
{
    cancel(p);
    if (gh_target_set_healthy(p->ts, true) && in_config(cfg, p->ts->key))
        gh_log_info("upstream %s target %s: no longer health-checked; back in rotation", p->upstream, p->ts->key);
    gh_target_state_release(p->ts);
    gh_tls_client_free(p->tls);
    free(p->upstream);
    free(p->host);
    free(p->req);
    uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, on_probe_closed);
}

static probe *probe_new(gh_health *h, const char *address)
{
    probe *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (!(p->ts = gh_target_state_acquire(address))) {
        free(p);
        return NULL;
    }
    p->h = h;
    uv_timer_init(h->loop, &p->tick);
    p->tick.data = p;
    p->next = h->probes;
    h->probes = p;
    return p;
}

static char *dup_str(gh_str s)
{
    char *d = malloc(s.len + 1);
    if (d) {
        memcpy(d, s.p, s.len);
        d[s.len] = 0;
    }
    return d;
}

/* Take u's settings for target t. false: out of memory (the old ones stay). */
static bool configure(probe *p, const gh_upstream_cfg *u, const gh_target_cfg *t, gh_tls_client *tls)
{
    gh_str host = u->tls && u->tls->sni.len ? u->tls->sni : t->address;
    int n = snprintf(NULL, 0,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-health-check\r\n"
                     "Connection: close\r\n\r\n", u->active.path.p, host.p);
    char *req = n > 0 ? malloc((size_t)n + 1) : NULL, *name = dup_str(u->name), *th = dup_str(t->host);
    if (!req || !name || !th) {
        free(req);
        free(name);
        free(th);
        return false;
    }
    snprintf(req, (size_t)n + 1,
             "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-health-check\r\n"
             "Connection: close\r\n\r\n", u->active.path.p, host.p);
    /* a check in flight goes on with the old request and TLS context only if
     * they are the same; otherwise it is dropped without a verdict */
    if (p->uc && (tls != p->tls || !p->req || strcmp(p->req, req) != 0))
        cancel(p);
    free(p->req);
    free(p->upstream);
    free(p->host);
    p->req = req;
    p->req_len = (size_t)n;
    p->upstream = name;
    p->host = th;
    if (tls)
        gh_tls_client_ref(tls);
    gh_tls_client_free(p->tls);
    p->tls = tls;
    memcpy(&p->sa, &t->sa, sizeof(p->sa));
    p->salen = t->salen;
    p->resolving = u->resolve_every_ms != 0;
    p->timeout_ms = u->active.timeout_ms;
    p->healthy_after = u->active.healthy_after;
    p->unhealthy_after = u->active.unhealthy_after;
    gh_health_expect_set(u, p->expect);
    return true;
}

void gh_health_apply(gh_health *h, const gh_config *cfg, gh_tls_client *const *tls)
{
    if (!h)
        return;
    for (probe *p = h->probes; p; p = p->next)
        p->seen = false;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const gh_upstream_cfg *u = &cfg->upstreams[i];
        for (size_t j = 0; u->active.on && j < u->ntargets; j++) {
            const gh_target_cfg *t = &u->targets[j];
            probe *p = h->probes;
            while (p && strcmp(p->ts->key, t->address.p) != 0)
                p = p->next;
            if (p && p->seen)
                continue;   /* checked for an earlier upstream already */
            bool fresh = !p;
            if (fresh && !(p = probe_new(h, t->address.p))) {
                gh_log_error("upstream %s target %s: out of memory; not health-checked", u->name.p, t->address.p);
                continue;
            }
            p->seen = true;
            if (!configure(p, u, t, tls ? tls[i] : NULL)) {
                gh_log_error("upstream %s target %s: out of memory; health check settings not updated", u->name.p,
                             t->address.p);
                if (fresh)
                    p->seen = false;   /* stopped below */
                continue;
            }
            /* a new target is checked at once; a changed interval restarts the rhythm */
            if (fresh || p->interval_ms != u->active.interval_ms) {
                p->interval_ms = u->active.interval_ms;
                uv_timer_start(&p->tick, on_tick, fresh ? 0 : p->interval_ms, p->interval_ms);
            }
        }
    }
    probe **pp = &h->probes;
    while (*pp) {
        probe *p = *pp;
        if (p->seen) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        probe_stop(p, cfg);
    }
}

gh_health *gh_health_new(uv_loop_t *loop)
{
    gh_health *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->loop = loop;
    gh_bufpool_init(&h->bufs, 4096, 0);
    if (!(h->pw = gh_proxy_worker_new(loop, &h->bufs))) {
        free(h);
        return NULL;
    }
    return h;
}

void gh_health_free(gh_health *h)
{
    if (!h)
        return;
    while (h->probes) {
        probe *p = h->probes;
        h->probes = p->next;
        probe_stop(p, NULL);
    }
    gh_proxy_worker_free(h->pw);
    gh_bufpool_destroy(&h->bufs);
    free(h);
}
