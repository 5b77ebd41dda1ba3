#include "proxy/upcall.h"
#include <strings.h>
#include "core/log.h"
#include "proxy/proxy.h"

static bool idempotent(uint32_t method_bit)
{
    return method_bit & (GH_M_GET | GH_M_HEAD | GH_M_OPTIONS | GH_M_PUT | GH_M_DELETE | GH_M_TRACE);
}

int gh_upcall_status_outcome(const gh_upstream_cfg *u, int status)
{
    return gh_upstream_failure_status(u, status) ? GH_OUT_STATUS : GH_OUT_OK;
}

bool gh_upcall_is_failure(const gh_upstream_cfg *u, int outcome)
{
    (void)u;
    return outcome != GH_OUT_OK;
}

bool gh_upcall_may_retry(const gh_upstream_cfg *u, uint32_t method_bit, uint32_t attempts, int outcome,
                         int status, bool replayable)
{
    if (!replayable || outcome == GH_OUT_OK || attempts > u->retry_attempts)
        return false;
    uint32_t bit = 0;
    switch (outcome) {
    case GH_OUT_CONNECT: bit = GH_RETRY_CONNECT_ERROR; break;
    case GH_OUT_CONNECT_TIMEOUT: bit = GH_RETRY_CONNECT_ERROR | GH_RETRY_TIMEOUT; break;
    case GH_OUT_REFUSED: bit = GH_RETRY_CONNECT_ERROR | GH_RETRY_RESET; break;
    case GH_OUT_RESET: bit = GH_RETRY_RESET; break;
    case GH_OUT_TIMEOUT: bit = GH_RETRY_TIMEOUT; break;
    case GH_OUT_STATUS:
        bit = status == 500 ? GH_RETRY_500 : status == 502 ? GH_RETRY_502
            : status == 503 ? GH_RETRY_503 : status == 504 ? GH_RETRY_504 : 0;
        break;
    }
    if (!(u->retry_on & bit))
        return false;
    /* the upstream never got (or never processed) the request: any method;
     * otherwise it may have acted on it: idempotent methods only */
    bool nothing_sent = outcome == GH_OUT_CONNECT || outcome == GH_OUT_CONNECT_TIMEOUT ||
                        outcome == GH_OUT_REFUSED;
    return nothing_sent || idempotent(method_bit);
}

static const gh_header *find_header(const gh_exchange *ex, const char *name, size_t len)
{
    for (size_t i = 0; i < ex->nheaders; i++)
        if (ex->headers[i].name_len == len && strncasecmp(ex->headers[i].name, name, len) == 0)
            return &ex->headers[i];
    return NULL;
}

/* NAME=value in a Cookie header ("a=1; b=2"). */
static gh_str find_cookie(const gh_exchange *ex, gh_str name)
{
    for (size_t i = 0; i < ex->nheaders; i++) {
        const gh_header *h = &ex->headers[i];
        if (h->name_len != 6 || strncasecmp(h->name, "cookie", 6) != 0)
            continue;
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *eq = p;
            while (eq < end && *eq != '=' && *eq != ';')
                eq++;
            const char *v = eq < end && *eq == '=' ? eq + 1 : eq, *ve = v;
            while (ve < end && *ve != ';')
                ve++;
            if ((size_t)(eq - p) == name.len && memcmp(p, name.p, name.len) == 0)
                return (gh_str){ v, (size_t)(ve - v) };
            p = ve;
        }
    }
    return (gh_str){ NULL, 0 };
}

bool gh_upcall_hash_key(const gh_upstream_cfg *u, const gh_exchange *ex, uint64_t *key)
{
    gh_str v = { NULL, 0 };
    switch (u->hash_on) {
    case GH_HASH_HEADER: {
        const gh_header *h = find_header(ex, u->hash_name.p, u->hash_name.len);
        if (h)
            v = (gh_str){ h->value, h->value_len };
        break;
    }
    case GH_HASH_COOKIE: v = find_cookie(ex, u->hash_name); break;
    case GH_HASH_IP: v = (gh_str){ ex->client, strlen(ex->client) }; break;
    case GH_HASH_PATH: v = ex->path; break;
    case GH_HASH_CONSUMER: v = ex->log.consumer; break;
    }
    if (!v.len)
        return false;
    *key = gh_balance_hash(v.p, v.len, 0);
    return true;
}

const char *gh_upcall_start(gh_upcall *c, gh_exchange *ex, const struct gh_proxy_ctx *ctx,
                            const gh_route_cfg *route)
{
    c->ex = ex;
    c->b = ctx->balancer;
    c->upstream = route->upstream_index;
    c->rt = gh_balance_upstream(c->b, c->upstream);
    c->up = route->upstream;
    c->worker = ctx->worker;
    c->target = -1;
    c->counting = c->rt->checks || c->rt->circuit;
    if (c->up->balance == GH_BALANCE_HASH)
        c->has_key = gh_upcall_hash_key(c->up, ex, &c->key);
    if (c->rt->circuit) {
        int a = gh_circuit_admit(c->rt->circuit, c->up, gh_now_ms(ex->env));
        if (a == GH_ADMIT_NO) {
            c->ended = true;
            return "circuit_open";
        }
        c->admitted = true;
        c->probe = a == GH_ADMIT_PROBE;
    }
    return NULL;
}

int gh_upcall_get(gh_upcall *c)
{
    const gh_upstream_cfg *u = c->up;
    uint64_t down = 0;
    if (c->rt->checks) {
        uint64_t now = gh_now_ms(c->ex->env);
        size_t up = 0;
        for (size_t i = 0; i < u->ntargets; i++) {
            if (gh_target_up(c->rt->ts[i], u, now))
                up++;
            else if (i < 64)
                down |= 1ull << i;
        }
        if (!up)
            return -1;
    }
    const uint64_t *key = c->has_key ? &c->key : NULL;
    int t = 0;   /* one target, up: nothing to choose */
    if (u->ntargets > 1 &&   /* every live target tried: start over among them */
        (t = gh_balance_pick(c->b, c->worker, c->upstream, c->tried | down, key)) < 0 &&
        (t = gh_balance_pick(c->b, c->worker, c->upstream, down, key)) < 0)
        return -1;
    c->target = t;
    c->tried |= 1ull << (t & 63);
    c->attempts++;
    c->holding = true;
    c->reported = false;
    atomic_fetch_add_explicit(&c->rt->ts[t]->inflight, 1, memory_order_relaxed);
    if (u->balance == GH_BALANCE_LEAST_CONN)
        gh_balance_begin(c->b, c->worker, c->upstream, t);
    return t;
}

void gh_upcall_report(gh_upcall *c, int outcome)
{
    if (c->reported || c->target < 0)
        return;
    c->reported = true;
    if (!c->counting)
        return;
    bool failed = gh_upcall_is_failure(c->up, outcome);
    uint64_t now = gh_now_ms(c->ex->env);
    gh_target_report(c->rt->ts[c->target], c->up, failed, now);
    if (c->rt->circuit) {
        gh_circuit_report(c->rt->circuit, c->up, failed, c->probe, now);
        c->probe = false;   /* its first outcome decided */
    }
}

void gh_upcall_put(gh_upcall *c)
{
    if (!c->holding)
        return;
    c->holding = false;
    atomic_fetch_sub_explicit(&c->rt->ts[c->target]->inflight, 1, memory_order_relaxed);
    if (c->up->balance == GH_BALANCE_LEAST_CONN)
        gh_balance_end(c->b, c->worker, c->upstream, c->target);
}

bool gh_upcall_failed(gh_upcall *c, int outcome, bool stale, bool replayable)
{
    if (stale && replayable && !c->stale_retry_used) {
        /* a kept-alive connection the upstream closed meanwhile: not the
         * target's failure; retry once, not counted as a try */
        c->stale_retry_used = true;
        c->reported = true;
        gh_upcall_put(c);
        c->attempts--;
        c->tried &= ~(1ull << (c->target & 63));
        return true;
    }
    gh_upcall_report(c, outcome);
    gh_upcall_put(c);
    return gh_upcall_may_retry(c->up, c->ex->method_bit, c->attempts, outcome, 0, replayable);
}

bool gh_upcall_head(gh_upcall *c, int status, bool replayable, bool req_done)
{
    if (c->counting)
        gh_upcall_report(c, gh_upcall_status_outcome(c->up, status));
    if (status < 500 || !req_done ||   /* retries.on lists 5xx statuses only */
        !gh_upcall_may_retry(c->up, c->ex->method_bit, c->attempts, GH_OUT_STATUS, status, replayable))
        return false;
    gh_upcall_put(c);
    return true;
}

void gh_upcall_end(gh_upcall *c)
{
    if (c->ended)
        return;
    c->ended = true;
    gh_upcall_put(c);
    if (c->admitted)
        gh_circuit_end(c->rt->circuit, c->probe);
}
