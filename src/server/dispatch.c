#include "server/dispatch.h"
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "http/status.h"
#include "plugins/plugin.h"
#include "proxy/proxy.h"
#include "route/route.h"
#include "server/client_addr.h"
#include "server/dry_run.h"
#include "server/intake.h"
#include "server/subreq.h"
#include "server/worker.h"
#include "targets/aggregate.h"
#include "targets/batch.h"
#include "targets/targets.h"
#include "targets/versions.h"

/* The rewritten path plus "?query": what the upstream (or echo) is sent. */
static gh_str forward_path(gh_exchange *ex, const gh_route_match *m)
{
    const gh_route_cfg *r = m->route;
    size_t cap = ex->path.len * 2 + r->rewrite.prefix.len + r->rewrite.path.len + 64;
    for (int round = 0; round < 2; round++) {
        char *out = gh_arena_alloc(&ex->arena, cap + ex->query.len + 2);
        if (!out)
            break;
        size_t n = gh_rewrite_path(m, ex->path, out, cap);
        if (n != (size_t)-1) {
            if (ex->query.len) {
                out[n++] = '?';
                memcpy(out + n, ex->query.p, ex->query.len);
                n += ex->query.len;
            }
            out[n] = '\0';
            return (gh_str){ out, n };
        }
        cap = r->rewrite.path.len + ex->path.len * (GH_MAX_PARAMS + 1) + 64;
    }
    return (gh_str){ NULL, 0 };
}

/* Dry run: record what the target would be given, run nothing. */
static void dry_target(gh_exchange *ex, const gh_route_match *m)
{
    gh_dry_run *d = ex->dry_run;
    d->reached = true;
    d->target = m->route;
    if (m->route->target == GH_TARGET_UPSTREAM || m->route->target == GH_TARGET_ECHO)
        d->forwarded = forward_path(ex, m);
    const gh_aggregate_cfg *a = m->route->aggregate;
    d->ncalls = a ? a->n : 0;
    d->calls = a ? gh_arena_zalloc(&ex->arena, a->n * sizeof(gh_str)) : NULL;
    for (size_t i = 0; d->calls && i < a->n; i++)
        d->calls[i] = gh_aggregate_path(ex, &a->backends[i], m);   /* what each backend would get */
}

/* Dry run: the route matched, the version picked (or refused) and why. */
static void dry_route(gh_exchange *ex, const gh_route_match *m, const gh_version_pick *pick, bool picked)
{
    gh_dry_run *d = ex->dry_run;
    d->routed = true;
    d->m = *m;
    d->versioned = m->route->target == GH_TARGET_VERSIONS;
    d->pick = *pick;
    d->chain_of = !picked ? NULL : pick->v ? &pick->v->route : m->route;
}

/* The route's target produces the response. */
static void run_target(gh_exchange *ex, gh_snapshot *snap, const gh_route_match *m)
{
    gh_worker *w = ex->env->owner;
    const gh_route_cfg *route = m->route;
    if (ex->dry_run) {
        dry_target(ex, m);
        return;
    }
    switch (route->target) {
    case GH_TARGET_UPSTREAM: {
        gh_str path_q = forward_path(ex, m);
        if (!path_q.p) {
            gh_problem(ex, 500, "internal_error", "rewrite failed", NULL, 0, NULL);
            return;
        }
        gh_proxy_ctx ctx = { .pw = w->pw, .balancer = snap->balancer, .tls = snap->tls_clients, .worker = w->id };
        gh_proxy_start(ex, &ctx, route, path_q);
        return;
    }
    case GH_TARGET_ECHO: {
        gh_str path_q = forward_path(ex, m);
        gh_target_echo(ex, route, path_q);
        return;
    }
    case GH_TARGET_RESPOND:
        gh_target_respond(ex, route);
        return;
    case GH_TARGET_REDIRECT:
        gh_target_redirect(ex, route, m);
        return;
    case GH_TARGET_AGGREGATE:
        gh_target_aggregate(ex, route, m);
        return;
    case GH_TARGET_BATCH:
        gh_target_batch(ex, route);
        return;
    default:
        gh_problem(ex, 500, "internal_error", "route has no target", NULL, 0, NULL);
    }
}

/* A route with plugins, or a version still to confirm: the chain runs
 * first (maybe asynchronously), so the match is kept in the arena. */
typedef struct chained {
    gh_plugin_run run;
    gh_route_match m;
    gh_snapshot *snap;
    const gh_route_cfg *versioned;   /* the versioned route, when m.route is one of its versions */
    gh_version_pick pick;
} chained;

static void chain_passed(gh_plugin_run *run)
{
    chained *c = run->done_ctx;
    if (c->versioned) {
        bool ok = gh_versions_confirm(run->ex, c->versioned, &c->pick);
        if (run->ex->dry_run)
            run->ex->dry_run->pick = c->pick;   /* the canary by consumer decided now */
        if (!ok)
            return;
        c->m.route = &c->pick.v->route;
    }
    run_target(run->ex, c->snap, &c->m);
}

/* gh_plugin_run.detach: the route's upstream call as a detached sub-request
 * with the path the target would forward (run is a chained's). */
static bool detach_target(gh_plugin_run *run, size_t max_body, gh_detached_done done, void *ctx)
{
    chained *c = (chained *)((char *)run - offsetof(chained, run));
    gh_exchange *ex = run->ex;
    size_t nh = 0;
    gh_header *hs = gh_subreq_fields(ex, &nh);
    gh_subreq_spec spec = { .method = GH_STR("GET"), .target = forward_path(ex, &c->m), .headers = hs,
                            .nheaders = nh, .max_body = max_body, .route = c->m.route };
    return hs && spec.target.p && gh_subreq_detach(ex, &spec, done, ctx);
}

/* path_version: the name of a /vN/ segment the dispatcher cut off. */
static void start_route(gh_exchange *ex, gh_snapshot *snap, const gh_route_match *m, gh_str path_version)
{
    const gh_route_cfg *route = m->route;
    ex->log.route = route->name;
    ex->log.route_id = route->metric_id;
    gh_version_pick pick = { 0 };
    bool picked = route->target != GH_TARGET_VERSIONS || gh_versions_pick(ex, route, path_version, &pick);
    if (ex->dry_run)
        dry_route(ex, m, &pick, picked);
    if (!picked)
        return;
    if (pick.v)
        route = &pick.v->route;
    bool plugins = route->has_plugins;
    if (!plugins && !pick.v) {
        run_target(ex, snap, m);
        return;
    }
    if (!plugins && !pick.announce_later) {   /* a version with nothing left to decide */
        gh_route_match vm = *m;
        vm.route = route;
        run_target(ex, snap, &vm);
        return;
    }
    chained *c = gh_arena_alloc(&ex->arena, sizeof(*c));
    if (!c) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    memset(&c->run, 0, sizeof(c->run));
    /* what a found route's match holds (not the 128-byte Allow text of a 405) */
    c->m.route = route;
    c->m.nparams = m->nparams;
    if (m->nparams)
        memcpy(c->m.params, m->params, m->nparams * sizeof(m->params[0]));
    c->m.matched_prefix = m->matched_prefix;
    c->m.allow = m->allow;
    c->m.allow_text[0] = '\0';
    c->snap = snap;
    c->versioned = pick.v ? m->route : NULL;
    c->pick = pick;
    c->run.ex = ex;
    c->run.chain = &route->chain;
    c->run.consumers = snap->consumers;
    c->run.contexts = gh_pin_plugin_contexts(ex->pin);
    c->run.done = chain_passed;
    c->run.done_ctx = c;
    if (!c->versioned && !ex->dry_run && route->target == GH_TARGET_UPSTREAM)
        c->run.detach = detach_target;
    if (plugins)
        gh_plugin_chain_start(&c->run);
    else
        chain_passed(&c->run);
}

/* A CORS preflight (OPTIONS) to a route that does not list OPTIONS: it
 * belongs to the route the announced method will reach, if that route runs
 * cors (browsers send preflights without being asked). */
static bool preflight_route(gh_exchange *ex, const gh_route_request *rq, gh_route_match *m)
{
    const gh_header *acrm = gh_exchange_header(ex, "access-control-request-method", 29);
    if (!(ex->method_bit & GH_M_OPTIONS) || !acrm || !gh_exchange_header(ex, "origin", 6))
        return false;
    gh_route_request real = *rq;
    real.method = (gh_str){ acrm->value, acrm->value_len };
    if (gh_router_match(gh_pin_snapshot(ex->pin)->router, &real, m) != GH_ROUTE_FOUND)
        return false;
    const gh_plugin_cfg *cors = m->route->chain.p[GH_PLUGIN_CORS];
    return cors && cors->enabled;
}

static void method_not_allowed(gh_exchange *ex, const char *allow_text)
{
    gh_header allow = { "Allow", allow_text, 5, (uint32_t)strlen(allow_text) };
    char detail[192];
    snprintf(detail, sizeof(detail), "method %.*s is not allowed here; allowed: %s",
             (int)(ex->method.len > 32 ? 32 : ex->method.len), ex->method.p, allow_text);
    gh_problem(ex, 405, "method_not_allowed", detail, &allow, 1, NULL);
}

/* The client's header fields taken in (server/intake.h), before anything
 * reads them: routing, plugins, the target. */
static bool intake(gh_exchange *ex, const gh_snapshot *snap)
{
    gh_str bad;
    int r = gh_intake_run(ex, snap->intake, &bad);
    if (r == GH_INTAKE_OK)
        return true;
    if (r == GH_INTAKE_UNDERSCORE) {
        char detail[160];
        snprintf(detail, sizeof(detail), "header name '%.*s' contains an underscore, which is refused here",
                 (int)(bad.len > 64 ? 64 : bad.len), bad.p);
        gh_problem(ex, 400, "bad_request", detail, NULL, 0, NULL);
    } else {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
    }
    return false;
}

void gh_dispatch(gh_exchange *ex)
{
    gh_snapshot *snap = gh_pin_snapshot(ex->pin);
    gh_resolve_client(ex, snap->cfg);
    if (!intake(ex, snap))
        return;

    /* CONNECT's authority-form target names no path: it is matched as "/" */
    gh_str raw = ex->raw_path;
    if (ex->method_bit == GH_M_CONNECT && (raw.len == 0 || raw.p[0] != '/'))
        raw = GH_STR("/");
    char *np = gh_arena_alloc(&ex->arena, raw.len + 2);
    size_t nlen = 0;
    int pr = np ? gh_path_normalize(raw.p, raw.len, np, &nlen, ex->path_strict) : GH_PATH_BAD;
    if (pr != GH_PATH_OK) {
        gh_problem(ex, 400, "bad_request",
                   pr == GH_PATH_CLIMB ? "the path climbs above the root" : "the path has a forbidden encoding or character",
                   NULL, 0, NULL);
        return;
    }
    np[nlen] = '\0';
    ex->path = (gh_str){ np, nlen };
    if (ex->dry_run)
        ex->dry_run->path = ex->path;

    gh_route_request rq = {
        .method = ex->method, .host = ex->host, .path = ex->path, .query = ex->query,
        .headers = ex->headers, .nheaders = ex->nheaders,
    };
    gh_route_match m;
    gh_str path_version = { NULL, 0 }, vname, rest;
    int rc = -1;
    if (gh_versions_path_segment(ex->path, &vname, &rest)) {
        /* /v2/orders/7 belongs to a versioned route at /orders that reads the path */
        gh_route_request vrq = rq;
        vrq.path = rest;
        if (gh_router_match(snap->router, &vrq, &m) == GH_ROUTE_FOUND && gh_versions_claims_path(m.route)) {
            ex->path = rest;
            rq.path = rest;
            path_version = vname;
            rc = GH_ROUTE_FOUND;
        }
    }
    if (rc < 0)
        rc = gh_router_match(snap->router, &rq, &m);
    if (rc == GH_ROUTE_NONE) {
        gh_problem(ex, 404, "no_route", "no route matches this request", NULL, 0, NULL);
        return;
    }
    if (rc == GH_ROUTE_METHOD) {
        gh_route_match pm;
        if (preflight_route(ex, &rq, &pm)) {
            start_route(ex, snap, &pm, path_version);
            return;
        }
        method_not_allowed(ex, m.allow_text);
        return;
    }
    start_route(ex, snap, &m, path_version);
}
