/* subreq.c — child exchanges with an in-memory downstream (subreq.h). */
#include "server/subreq.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/method.h"
#include "http/request.h"
#include "proxy/proxy.h"
#include "server/dispatch.h"
#include "server/worker.h"

#define SR(ex) ((gh_subreq *)(ex)->down_ctx)

/* The response is complete (or cannot be): done runs on the next turn,
 * never inside the producer's call (the proxy may still touch the child). */
static void settle(gh_exchange *ex)
{
    gh_exchange_response_over(ex);
    gh_env_defer(ex->env, &SR(ex)->task);
}

static int mem_head(gh_exchange *ex, int status, const gh_header *hdrs, size_t n, int64_t content_length)
{
    gh_subreq *sr = SR(ex);
    /* the producer's header memory is transient (the upstream's read buffer) */
    gh_header *hs = gh_arena_alloc(&ex->arena, (n ? n : 1) * sizeof(*hs));
    if (!hs)
        return GH_ERROR;
    for (size_t i = 0; i < n; i++) {
        char *nm = gh_arena_alloc(&ex->arena, hdrs[i].name_len + hdrs[i].value_len + 2);
        if (!nm)
            return GH_ERROR;
        memcpy(nm, hdrs[i].name, hdrs[i].name_len);
        nm[hdrs[i].name_len] = '\0';
        char *v = nm + hdrs[i].name_len + 1;
        memcpy(v, hdrs[i].value, hdrs[i].value_len);
        v[hdrs[i].value_len] = '\0';
        hs[i] = (gh_header){ nm, v, hdrs[i].name_len, hdrs[i].value_len };
    }
    sr->headers = hs;
    sr->nheaders = n;
    sr->status = status;
    ex->status = status;
    ex->head_sent = true;
    if (content_length > 0 && (uint64_t)content_length <= sr->max_body) {
        sr->buf = gh_arena_alloc(&ex->arena, (size_t)content_length + 1);   /* the exact size, once */
        sr->body_cap = sr->buf ? (size_t)content_length : 0;
    }
    return GH_OK;
}

static int mem_body(gh_exchange *ex, const char *p, size_t len)
{
    gh_subreq *sr = SR(ex);
    if (sr->error)
        return GH_ERROR;
    if (len > sr->max_body - sr->body_len) {
        /* The producer drops its connection and waits for on_abort, as
         * after a client that went away: the response is not over, so
         * end_child calls on_abort and the producer releases the rest. */
        sr->error = "response_too_large";
        ex->log.error = "payload_too_large";
        gh_env_defer(ex->env, &sr->task);
        return GH_ERROR;
    }
    if (len > sr->body_cap - sr->body_len) {
        size_t cap = sr->body_cap ? sr->body_cap * 2 : 4096;
        while (cap - sr->body_len < len)
            cap *= 2;
        if (cap > sr->max_body)
            cap = sr->max_body;
        char *nb = gh_arena_alloc(&ex->arena, cap + 1);
        if (!nb)
            return GH_ERROR;
        if (sr->body_len)
            memcpy(nb, sr->buf, sr->body_len);
        sr->buf = nb;
        sr->body_cap = cap;
    }
    memcpy(sr->buf + sr->body_len, p, len);
    sr->body_len += len;
    ex->bytes_out += len;
    return GH_OK;
}

static int mem_finish(gh_exchange *ex)
{
    settle(ex);
    return GH_OK;
}

static int mem_finish_trailers(gh_exchange *ex, const gh_header *hdrs, size_t n)
{
    return mem_finish(ex);   /* trailers are not collected */
}

static void mem_abort(gh_exchange *ex)
{
    SR(ex)->error = "aborted";
    settle(ex);
}

/* The request body, delivered like a codec does: what the consumer does
 * not take now comes again on the next resume. */
static void mem_resume_body(gh_exchange *ex)
{
    gh_subreq *sr = SR(ex);
    if (!ex->body_cb || ex->body_done)
        return;
    size_t n = sr->req_body.len - sr->req_off;
    size_t took = ex->body_cb(ex, sr->req_body.p + sr->req_off, n, true);
    if (took > n)
        took = n;
    sr->req_off += took;
    ex->body_received += took;
    if (sr->req_off == sr->req_body.len)
        ex->body_done = true;
}

static int mem_upgrade(gh_exchange *ex, const gh_header *hdrs, size_t n, gh_takeover *t)
{
    return GH_ERROR;
}

static const gh_downstream_ops mem_ops = {
    .send_head = mem_head,
    .send_body = mem_body,
    .finish = mem_finish,
    .abort = mem_abort,
    .resume_body = mem_resume_body,
    .finish_trailers = mem_finish_trailers,
    .upgrade = mem_upgrade,
};

/* Free the child the way a codec ends an exchange: its producer told to
 * drop what it holds, then logged (plugins' after-response hooks run
 * there), then freed. */
static void end_child(gh_subreq *sr)
{
    gh_exchange *ex = sr->child;
    sr->child = NULL;
    if (sr->task.queued)
        gh_env_undefer(ex->env, &sr->task);
    if (!ex->response_done && ex->on_abort) {
        ex->on_abort(ex);
        if (!ex->status)
            ex->status = 499;
    }
    gh_exchange_response_over(ex);
    if (ex->env->done)
        ex->env->done(ex);
    gh_exchange_free(ex);
}

static void settled(gh_task *t)
{
    gh_subreq *sr = (gh_subreq *)((char *)t - offsetof(gh_subreq, task));
    gh_exchange *ex = sr->child;
    if (!sr->error && !ex->response_done)
        sr->error = "aborted";
    if (sr->buf)
        sr->buf[sr->body_len] = '\0';
    sr->body = sr->buf ? sr->buf : "";
    sr->problem = ex->log.error;
    sr->running = false;
    sr->done(sr);
}

static char *copy(gh_exchange *ex, const char *p, size_t n)
{
    char *o = gh_arena_alloc(&ex->arena, n + 1);
    if (o) {
        if (n)
            memcpy(o, p, n);
        o[n] = '\0';
    }
    return o;
}

/* The child's request part, from spec and the parent's connection facts. */
static bool fill_request(gh_exchange *c, const gh_exchange *parent, const gh_subreq_spec *spec)
{
    const char *m = copy(c, spec->method.p, spec->method.len);
    const char *t = copy(c, spec->target.p, spec->target.len);
    gh_header *hs = gh_arena_alloc(&c->arena, (spec->nheaders + 1) * sizeof(*hs));
    if (!m || !t || !hs || spec->target.len == 0 || t[0] != '/')
        return false;
    for (size_t i = 0; i < spec->nheaders; i++) {
        const gh_header *h = &spec->headers[i];
        const char *n = copy(c, h->name, h->name_len), *v = copy(c, h->value, h->value_len);
        if (!n || !v)
            return false;
        hs[i] = (gh_header){ n, v, h->name_len, h->value_len };
    }
    c->method = (gh_str){ m, spec->method.len };
    c->method_bit = gh_method_bit(m, spec->method.len);
    c->head_request = c->method_bit == GH_M_HEAD;
    c->target = (gh_str){ t, spec->target.len };
    gh_split_target(c);
    c->path = c->raw_path;   /* gh_dispatch normalizes it; a route's upstream gets it as given */
    c->headers = hs;
    c->nheaders = spec->nheaders;
    /* copies: after the start the child reads nothing of the parent */
    c->host = (gh_str){ copy(c, parent->host.p ? parent->host.p : "", parent->host.len), parent->host.len };
    c->authority = (gh_str){ copy(c, parent->authority.p ? parent->authority.p : "", parent->authority.len),
                             parent->authority.len };
    c->minor = 1;
    c->keep_alive = true;
    c->tls = parent->tls;
    c->path_strict = true;
    c->local_port = parent->local_port;
    memcpy(c->peer, parent->peer, sizeof(c->peer));
    memcpy(c->client, parent->client, sizeof(c->client));
    c->client_port = parent->client_port;
    memcpy(c->request_id, parent->request_id, sizeof(c->request_id));
    c->request_id_len = parent->request_id_len;
    c->trace = parent->trace;
    c->trace.state = (gh_str){ copy(c, parent->trace.state.p ? parent->trace.state.p : "", parent->trace.state.len),
                               parent->trace.state.len };
    c->client_cert = (gh_str){ copy(c, parent->client_cert.p ? parent->client_cert.p : "", parent->client_cert.len),
                               parent->client_cert.len };
    if (!c->host.p || !c->authority.p || !c->trace.state.p || !c->client_cert.p)
        return false;
    if (!parent->client_cert.len)
        c->client_cert = (gh_str){ NULL, 0 };
    c->uncounted = parent->uncounted;
    if (spec->body.len) {
        char *b = copy(c, spec->body.p, spec->body.len);
        if (!b)
            return false;
        c->body_kind = GH_BODY_LENGTH;
        c->content_length = spec->body.len;
        ((gh_subreq *)c->down_ctx)->req_body = (gh_str){ b, spec->body.len };
    } else {
        c->body_kind = GH_BODY_NONE;
        c->body_done = true;
    }
    return true;
}

bool gh_subreq_start(gh_subreq *sr, gh_exchange *parent, const gh_subreq_spec *spec, gh_subreq_done done,
                     void *ctx)
{
    memset(sr, 0, sizeof(*sr));
    sr->parent = parent;
    sr->depth = gh_subreq_depth(parent) + 1;
    sr->done = done;
    sr->ctx = ctx;
    sr->max_body = spec->max_body;
    sr->task.run = settled;
    gh_exchange *c = gh_exchange_new(parent->env);
    if (!c)
        return false;
    c->down = &mem_ops;
    c->down_ctx = sr;
    if (!fill_request(c, parent, spec)) {
        gh_exchange_free(c);
        return false;
    }
    /* the parent's snapshot, pinned once more for the child */
    ((gh_pin *)parent->pin)->inflight++;
    c->pin = parent->pin;
    c->cfg = parent->cfg;
    sr->child = c;
    sr->running = true;
    if (!spec->route) {
        gh_dispatch(c);
        return true;
    }
    gh_worker *w = parent->env->owner;
    gh_snapshot *snap = gh_pin_snapshot(c->pin);
    gh_proxy_ctx pctx = { .pw = w->pw, .balancer = snap->balancer, .tls = snap->tls_clients, .worker = w->id };
    /* the parent's policy decided: its identity goes with the call */
    c->log.consumer = parent->log.consumer;
    c->consumer_groups = parent->consumer_groups;
    c->log.route = parent->log.route;   /* logged and counted under the parent's route */
    c->log.route_id = parent->log.route_id;
    gh_proxy_start(c, &pctx, spec->route, c->target);
    return true;
}

void gh_subreq_cancel(gh_subreq *sr)
{
    if (!sr->running)
        return;
    sr->running = false;
    if (sr->child)
        end_child(sr);
}

void gh_subreq_release(gh_subreq *sr)
{
    sr->running = false;
    if (sr->child)
        end_child(sr);
    sr->headers = NULL;
    sr->nheaders = 0;
    sr->body = "";
    sr->body_len = 0;
}

/* ------------------------------------------------------------ detached -- */

typedef struct detached {
    gh_subreq sr;
    gh_detached_done done;
    void *ctx;
    gh_http_env *env;
    struct detached *prev, *next;   /* the worker's running ones */
} detached;

static void detached_unlink(detached *d)
{
    gh_worker *w = d->env->owner;
    if (d->prev)
        d->prev->next = d->next;
    else
        w->detached = d->next;
    if (d->next)
        d->next->prev = d->prev;
}

static void detached_done(gh_subreq *sr)
{
    detached *d = sr->ctx;
    detached_unlink(d);
    gh_detached_answer a = { sr->status, sr->headers, sr->nheaders, sr->body, sr->body_len, sr->error, d->env };
    d->done(d->ctx, &a);
    gh_subreq_release(sr);
    free(d);
}

bool gh_subreq_detach(gh_exchange *parent, const gh_subreq_spec *spec, gh_detached_done done, void *ctx)
{
    detached *d = calloc(1, sizeof(*d));
    if (!d)
        return false;
    gh_worker *w = parent->env->owner;
    d->done = done;
    d->ctx = ctx;
    d->env = parent->env;
    if (!gh_subreq_start(&d->sr, parent, spec, detached_done, d)) {
        free(d);
        return false;
    }
    d->sr.parent = NULL;   /* it may outlive the parent: nobody reads it */
    d->next = w->detached;
    if (d->next)
        d->next->prev = d;
    w->detached = d;
    return true;
}

void gh_subreq_detached_stop(gh_http_env *env)
{
    gh_worker *w = env->owner;
    while (w->detached) {
        detached *d = w->detached;
        detached_unlink(d);
        gh_subreq_cancel(&d->sr);
        gh_detached_answer a = { .error = "aborted", .body = "", .env = env };
        d->done(d->ctx, &a);
        free(d);
    }
}

gh_header *gh_subreq_fields(gh_exchange *ex, size_t *n)
{
    static const char *const drop[] = { "content-length", "content-type", "transfer-encoding", "expect",
                                        "accept-encoding", "range", "if-range", "if-none-match",
                                        "if-modified-since" };
    gh_header *hs = gh_arena_alloc(&ex->arena, (ex->nheaders + 1) * sizeof(*hs));
    size_t k = 0;
    for (size_t i = 0; hs && i < ex->nheaders; i++) {
        bool keep = true;
        for (size_t j = 0; keep && j < sizeof(drop) / sizeof(drop[0]); j++)
            keep = !(ex->headers[i].name_len == strlen(drop[j]) &&
                     strncasecmp(ex->headers[i].name, drop[j], ex->headers[i].name_len) == 0);
        if (keep)
            hs[k++] = ex->headers[i];
    }
    *n = k;
    return hs;
}

const gh_header *gh_subreq_header(const gh_subreq *sr, const char *name, size_t len)
{
    for (size_t i = 0; i < sr->nheaders; i++)
        if (sr->headers[i].name_len == len && strncasecmp(sr->headers[i].name, name, len) == 0)
            return &sr->headers[i];
    return NULL;
}

bool gh_subreq_is_child(const gh_exchange *ex)
{
    return ex->down == &mem_ops || (ex->filter && ex->filter->next == &mem_ops);
}

unsigned gh_subreq_depth(const gh_exchange *ex)
{
    return gh_subreq_is_child(ex) ? ((const gh_subreq *)ex->down_ctx)->depth : 0;
}
