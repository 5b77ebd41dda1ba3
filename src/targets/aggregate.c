/* aggregate.c — the `aggregate` target (SPEC §7.1, §12.20).
 *
 * Every backend is a sub-request. One that names an upstream goes straight
 * to it through the upstream-call layer (pooled keep-alive connections,
 * retries, breaker), not through the router: the aggregate route's own
 * plugins already ran on the client's request, and the backends get its
 * outcome, the request's header fields as they stand (identity added by
 * authentication, the credentials unless hidden, X-Request-Id,
 * traceparent). One without an upstream is routed by the gateway itself
 * (its route's plugins apply; built-in responders serve the demo). All
 * start at once, each with a deadline within the aggregate's timeout (one
 * timer for the earliest), so the answer comes by then whatever the
 * backends do. A required backend that fails ends the
 * request at once (502 naming it, the others cancelled); optional ones give
 * null and are listed in Gatehouse-Partial. */
#include "targets/aggregate.h"
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "core/template.h"
#include "http/json_body.h"
#include "http/request.h"
#include "http/status.h"
#include "proxy/backoff.h"
#include "proxy/headers.h"
#include "server/subreq.h"

typedef struct agg agg;
typedef struct call {
    gh_subreq sr;
    agg *a;
    const gh_backend_cfg *b;
    json_t *value;                /* the backend's contribution; NULL = failed or not yet */
    uint64_t deadline_ms;         /* loop time by which it must have answered */
    bool started;                 /* running (started, not done) */
} call;

struct agg {
    gh_exchange *ex;
    const gh_route_cfg *route;
    size_t pending;
    uv_timer_t *timer;            /* the earliest deadline of a running backend */
    call calls[];
};

/* ------------------------------------------------------------ templates */

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

static size_t encode(char *out, const char *v, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    return o;
}

gh_str gh_aggregate_path(gh_exchange *ex, const gh_backend_cfg *b, const gh_route_match *m)
{
    gh_str t = b->path;
    const char *qmark = memchr(t.p, '?', t.len);
    size_t path_end = qmark ? (size_t)(qmark - t.p) : t.len;
    size_t cap = t.len + 1;
    for (size_t i = 0; i < m->nparams; i++)
        cap += m->params[i].value.len * 3;
    cap += ex->query.len * 3;
    char *out = gh_arena_alloc(&ex->arena, cap * 2);   /* every placeholder may repeat: bounded below */
    char *tmp = gh_arena_alloc(&ex->arena, ex->query.len + 1);
    if (!out || !tmp)
        return (gh_str){ NULL, 0 };
    cap *= 2;
    size_t o = 0, i = 0;
    gh_tpl_ph ph;
    for (; gh_tpl_next(t, i, &ph) && ph.closed; i = ph.end) {
        memcpy(out + o, t.p + i, ph.at - i);
        o += ph.at - i;
        gh_str v = { "", 0 };
        bool from_match = false;
        for (size_t k = 0; k < m->nparams && !from_match; k++)
            if (gh_str_eq(m->params[k].name, ph.name)) {
                v = m->params[k].value;
                from_match = true;
            }
        gh_str raw;
        if (!from_match && gh_query_param(ex->query, ph.name, &raw, NULL))
            v = (gh_str){ tmp, gh_query_decode(raw, tmp) };
        bool in_path = ph.at < path_end;
        /* a query value standing for a whole path segment must not climb */
        if (in_path && !from_match && (gh_str_eq_c(v, ".") || gh_str_eq_c(v, "..")))
            v = (gh_str){ "", 0 };
        if (o + v.len * 3 + (t.len - ph.end) >= cap)
            return (gh_str){ NULL, 0 };
        /* match parameters come from the normalized path: no dot-segment,
         * so a {rest} keeps its '/' */
        o += encode(out + o, v.p, v.len, from_match && in_path);
    }
    memcpy(out + o, t.p + i, t.len - i);
    o += t.len - i;
    out[o] = '\0';
    return (gh_str){ out, o };
}

/* -------------------------------------------------------------- answer */

static void cancel_all(agg *a)
{
    gh_backoff_stop(&a->timer);
    for (size_t i = 0; i < a->route->aggregate->n; i++) {
        call *c = &a->calls[i];
        if (c->started)
            gh_subreq_cancel(&c->sr);
        json_decref(c->value);
        c->value = NULL;
    }
}

static void on_client_abort(gh_exchange *ex)
{
    cancel_all(ex->consumer);
}

/* Why backend c's answer is unusable, or NULL (c->value set). */
static const char *judge(call *c, char *buf, size_t cap)
{
    gh_subreq *sr = &c->sr;
    if (sr->error && strcmp(sr->error, "response_too_large") == 0)
        return "its answer exceeds max_body";
    if (sr->problem && strcmp(sr->problem, "upstream_timeout") == 0)
        return "it did not answer in time";
    if (sr->error || sr->status == 0)
        return "its answer was cut short";
    if (sr->status < 200 || sr->status > 299) {
        snprintf(buf, cap, "it answered %d%s%s", sr->status, sr->problem ? " " : "", sr->problem ? sr->problem : "");
        return buf;
    }
    json_error_t err;
    json_t *v = json_loadb(sr->body, sr->body_len, JSON_DECODE_ANY, &err);
    if (!v)
        return "its answer is not JSON";
    if (c->b->nselect) {
        json_t *sel = json_object();
        for (size_t i = 0; sel && i < c->b->nselect; i++) {
            json_t *f = json_is_object(v) ? json_object_get(v, c->b->select[i].p) : NULL;
            if (f)
                json_object_set(sel, c->b->select[i].p, f);
        }
        json_decref(v);
        v = sel;
    }
    c->value = v;
    return NULL;
}

static void answer(agg *a)
{
    gh_exchange *ex = a->ex;
    const gh_aggregate_cfg *cfg = a->route->aggregate;
    json_t *o = json_object();
    char *partial = gh_arena_alloc(&ex->arena, 1);
    size_t plen = 0;
    for (size_t i = 0; o && partial && i < cfg->n; i++) {
        call *c = &a->calls[i];
        if (!c->value) {
            gh_str k = cfg->backends[i].key;
            char *np = gh_arena_alloc(&ex->arena, plen + k.len + 2);
            if (!np) {
                partial = NULL;
                break;
            }
            memcpy(np, partial, plen);
            if (plen)
                np[plen++] = ',';
            memcpy(np + plen, k.p, k.len);
            plen += k.len;
            partial = np;
        }
        json_object_set_new(o, cfg->backends[i].key.p, c->value ? c->value : json_null());
        c->value = NULL;
    }
    size_t len;
    char *body = gh_json_in_arena(ex, o, JSON_COMPACT, 0, &len);   /* alive until written */
    ex->on_abort = NULL;
    ex->consumer = NULL;
    if (!body || !partial) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    gh_header h[2] = { { "Content-Type", "application/json", 12, 16 } };
    size_t n = 1;
    if (plen)
        h[n++] = (gh_header){ "Gatehouse-Partial", partial, 17, (uint32_t)plen };
    gh_header *out = gh_apply_header_ops(ex, &a->route->response_headers, h, n, &n);
    if (!out) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    gh_respond(ex, 200, out, n, body, len);
}

/* A required backend failed: 502 naming it, the others cancelled. */
static void fail(agg *a, const call *c, const char *why)
{
    gh_exchange *ex = a->ex;
    char detail[256];
    snprintf(detail, sizeof(detail), "backend '%s' (%s%s) failed: %s", c->b->key.p,
             c->b->route.upstream ? "upstream " : "routed ",
             c->b->route.upstream ? c->b->route.upstream->name.p : c->b->path.p, why);
    cancel_all(a);
    ex->on_abort = NULL;
    ex->consumer = NULL;
    gh_problem(ex, 502, "upstream_error", detail, NULL, 0, NULL);
}

static void arm(agg *a);

/* c is over (answered, or late); false when the request is answered. */
static bool settle(agg *a, call *c, const char *why)
{
    c->started = false;
    a->pending--;
    if (why && !c->b->optional) {
        fail(a, c, why);
        return false;
    }
    if (a->pending == 0) {
        gh_backoff_stop(&a->timer);
        answer(a);
        return false;
    }
    return true;
}

static void backend_done(gh_subreq *sr)
{
    call *c = sr->ctx;
    char buf[96];
    const char *why = judge(c, buf, sizeof(buf));
    gh_subreq_release(sr);
    settle(c->a, c, why);
}

/* The earliest deadline passed: those backends are late. */
static void on_deadline(void *data)
{
    agg *a = data;
    gh_backoff_stop(&a->timer);
    uint64_t now = gh_now_ms(a->ex->env);
    for (size_t i = 0; i < a->route->aggregate->n; i++) {
        call *c = &a->calls[i];
        if (!c->started || c->deadline_ms > now)
            continue;
        gh_subreq_cancel(&c->sr);
        if (!settle(a, c, "it did not answer in time"))
            return;
    }
    arm(a);
}

static void arm(agg *a)
{
    uint64_t next = UINT64_MAX, now = gh_now_ms(a->ex->env);
    for (size_t i = 0; i < a->route->aggregate->n; i++)
        if (a->calls[i].started && a->calls[i].deadline_ms < next)
            next = a->calls[i].deadline_ms;
    if (next == UINT64_MAX)
        return;
    a->timer = gh_backoff_start(a->ex->env->loop, next > now ? next - now : 0, on_deadline, a);
}

void gh_target_aggregate(gh_exchange *ex, const gh_route_cfg *route, const gh_route_match *m)
{
    const gh_aggregate_cfg *cfg = route->aggregate;
    if (gh_subreq_depth(ex) >= 2) {   /* a backend that aggregates again: a loop in the configuration */
        gh_problem(ex, 500, "internal_error", "sub-requests nest at most two deep", NULL, 0, NULL);
        return;
    }
    agg *a = gh_arena_zalloc(&ex->arena, sizeof(*a) + cfg->n * sizeof(call));
    size_t nh = 0;
    gh_header *hs = a ? gh_subreq_fields(ex, &nh) : NULL;   /* what the backends are sent */
    if (!hs) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    a->ex = ex;
    a->route = route;
    a->pending = cfg->n;
    ex->consumer = a;
    ex->on_abort = on_client_abort;
    uint64_t now = gh_now_ms(ex->env);
    for (size_t i = 0; i < cfg->n; i++) {
        call *c = &a->calls[i];
        c->a = a;
        c->b = &cfg->backends[i];
        c->deadline_ms = now + c->b->route.timeout_ms;
        gh_subreq_spec spec = {
            .method = GH_STR("GET"), .target = gh_aggregate_path(ex, c->b, m), .headers = hs, .nheaders = nh,
            .max_body = cfg->max_body, .route = c->b->route.upstream ? &c->b->route : NULL,
        };
        c->started = spec.target.p && gh_subreq_start(&c->sr, ex, &spec, backend_done, c);
        if (!c->started) {
            cancel_all(a);
            ex->on_abort = NULL;
            ex->consumer = NULL;
            gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
            return;
        }
    }
    arm(a);
}
