#include "proxy/resolve.h"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "proxy/upstate.h"

typedef struct name {
    struct name *next;
    gh_resolver *r;
    gh_target_state *ts;          /* own reference: the address goes here; ts->key is the target */
    char *host, *upstream;
    char port[8];
    uint64_t every_ms;
    struct sockaddr_storage cur;  /* what was published last */
    socklen_t curlen;
    uv_timer_t tick;
    uv_getaddrinfo_t req;
    int holds;                    /* the timer handle, a lookup in flight: freed at 0 */
    bool busy;                    /* a lookup is in flight */
    bool failing;                 /* said once, until it resolves again */
    bool seen;                    /* still wanted by the configuration being applied */
} name;

struct gh_resolver {
    uv_loop_t *loop;
    name *names;
};

bool gh_resolve_is_name(const char *host)
{
    unsigned char a[16];
    return strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1;
}

static bool same(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

const struct addrinfo *gh_resolve_choose(const struct addrinfo *list, const struct sockaddr *cur, socklen_t curlen)
{
    const struct addrinfo *first = NULL;
    for (const struct addrinfo *a = list; a; a = a->ai_next) {
        if (a->ai_addrlen > 32 || (a->ai_family != AF_INET && a->ai_family != AF_INET6))
            continue;
        if (cur && same(a->ai_addr, (socklen_t)a->ai_addrlen, cur, curlen))
            return a;
        if (!first)
            first = a;
    }
    return first;
}

static const char *show(const struct sockaddr *sa, char *buf, size_t cap)
{
    const void *p = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, p, buf, (socklen_t)cap))
        snprintf(buf, cap, "?");
    return buf;
}

static void drop(name *n)
{
    if (--n->holds > 0)
        return;
    gh_target_state_release(n->ts);
    free(n->host);
    free(n->upstream);
    free(n);
}

static void on_tick_closed(uv_handle_t *h)
{
    drop(h->data);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    name *n = req->data;
    n->busy = false;
    if (!n->seen) {   /* stopped meanwhile */
        uv_freeaddrinfo(res);
        drop(n);
        return;
    }
    n->holds--;
    char was[64], now[64];
    const struct addrinfo *a = status < 0 ? NULL : gh_resolve_choose(res, (struct sockaddr *)&n->cur, n->curlen);
    if (!a) {
        gh_log_debug("upstream %s target %s: lookup of %s failed: %s", n->upstream, n->ts->key, n->host,
                     status < 0 ? uv_strerror(status) : "no usable address");
        if (!n->failing)
            gh_log_warn("upstream %s target %s: cannot resolve %s (%s); keeping its last address %s", n->upstream,
                        n->ts->key, n->host, status < 0 ? uv_strerror(status) : "no usable address",
                        show((struct sockaddr *)&n->cur, was, sizeof(was)));
        n->failing = true;
        uv_freeaddrinfo(res);
        return;
    }
    if (n->failing)
        gh_log_info("upstream %s target %s: %s resolves again", n->upstream, n->ts->key, n->host);
    n->failing = false;
    if (!same(a->ai_addr, (socklen_t)a->ai_addrlen, (struct sockaddr *)&n->cur, n->curlen)) {
        show((struct sockaddr *)&n->cur, was, sizeof(was));
        memset(&n->cur, 0, sizeof(n->cur));
        memcpy(&n->cur, a->ai_addr, a->ai_addrlen);
        n->curlen = (socklen_t)a->ai_addrlen;
        gh_target_set_addr(n->ts, (struct sockaddr *)&n->cur, n->curlen);
        gh_log_info("upstream %s target %s: %s now resolves to %s (was %s)", n->upstream, n->ts->key, n->host,
                    show((struct sockaddr *)&n->cur, now, sizeof(now)), was);
    }
    uv_freeaddrinfo(res);
}

static void on_tick(uv_timer_t *t)
{
    name *n = t->data;
    if (n->busy)
        return;   /* the last lookup is still running (a slow resolver) */
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    n->req.data = n;
    int rc = uv_getaddrinfo(n->r->loop, &n->req, on_resolved, n->host, n->port, &hints);
    if (rc < 0) {
        if (!n->failing)
            gh_log_warn("upstream %s target %s: cannot start a lookup of %s: %s", n->upstream, n->ts->key, n->host,
                        uv_strerror(rc));
        n->failing = true;
        return;
    }
    n->busy = true;
    n->holds++;
}

static void stop(name *n)
{
    n->seen = false;
    if (n->busy)
        uv_cancel((uv_req_t *)&n->req);   /* its callback drops its hold, canceled or not */
    uv_timer_stop(&n->tick);
    uv_close((uv_handle_t *)&n->tick, on_tick_closed);
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

void gh_resolver_apply(gh_resolver *r, const gh_config *cfg)
{
    if (!r)
        return;
    for (name *n = r->names; n; n = n->next)
        n->seen = false;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const gh_upstream_cfg *u = &cfg->upstreams[i];
        for (size_t j = 0; u->resolve_every_ms && j < u->ntargets; j++) {
            const gh_target_cfg *t = &u->targets[j];
            if (!gh_resolve_is_name(t->host.p))
                continue;
            name *n = r->names;
            while (n && strcmp(n->ts->key, t->address.p) != 0)
                n = n->next;
            if (n && n->seen)
                continue;   /* an earlier upstream re-resolves it already */
            bool fresh = !n;
            char *host = dup_str(t->host), *up = dup_str(u->name);
            if (fresh && host && up && (n = calloc(1, sizeof(*n))) && !(n->ts = gh_target_state_acquire(t->address.p))) {
                free(n);
                n = NULL;
            }
            if (!n || !host || !up) {
                free(host);
                free(up);
                gh_log_error("upstream %s target %s: out of memory; not re-resolved", u->name.p, t->address.p);
                continue;
            }
            if (fresh) {
                n->r = r;
                n->holds = 1;   /* the timer */
                uv_timer_init(r->loop, &n->tick);
                n->tick.data = n;
                n->next = r->names;
                r->names = n;
            }
            free(n->host);
            free(n->upstream);
            n->host = host;
            n->upstream = up;
            snprintf(n->port, sizeof(n->port), "%u", (unsigned)t->port);
            n->seen = true;
            /* what this load resolved is the newest answer */
            memcpy(&n->cur, &t->sa, sizeof(n->cur));
            n->curlen = t->salen;
            gh_target_set_addr(n->ts, (const struct sockaddr *)&t->sa, t->salen);
            if (fresh || n->every_ms != u->resolve_every_ms) {
                n->every_ms = u->resolve_every_ms;
                uv_timer_start(&n->tick, on_tick, n->every_ms, n->every_ms);
            }
        }
    }
    name **pp = &r->names;
    while (*pp) {
        name *n = *pp;
        if (n->seen) {
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        stop(n);
    }
}

gh_resolver *gh_resolver_new(uv_loop_t *loop)
{
    gh_resolver *r = calloc(1, sizeof(*r));
    if (r)
        r->loop = loop;
    return r;
}

void gh_resolver_free(gh_resolver *r)
{
    if (!r)
        return;
    while (r->names) {
        name *n = r->names;
        r->names = n->next;
        stop(n);
    }
    free(r);
}
