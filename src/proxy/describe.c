#include "proxy/describe.h"
#include <stdarg.h>
#include <stdio.h>

typedef struct out {
    char *p;
    size_t cap, len;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    if (o->len >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len = o->len + (size_t)n < o->cap ? o->len + (size_t)n : o->cap - 1;
}

static const char *hash_on(int kind)
{
    static const char *const names[] = { "", "header:", "cookie:", "ip", "path", "consumer" };
    return kind > 0 && kind < 6 ? names[kind] : "?";
}

const char *gh_balance_name(int balance)
{
    static const char *const names[] = { "round_robin", "least_conn", "random_two", "hash" };
    return names[balance & 3];
}

char *gh_upstream_describe(const gh_config *cfg, const gh_upstream_cfg *u, char *buf, size_t cap)
{
    out o = { buf, cap, 0 };
    if (cap)
        buf[0] = 0;
    put(&o, "%s", gh_balance_name(u->balance));
    if (u->balance == GH_BALANCE_HASH)
        put(&o, " on %s%s", hash_on(u->hash_on), u->hash_name.len ? u->hash_name.p : "");
    put(&o, ", %zu target%s:", u->ntargets, u->ntargets == 1 ? "" : "s");
    for (size_t i = 0; i < u->ntargets; i++)
        put(&o, " %s", gh_config_show(cfg, u->targets[i].address).p);
    put(&o, "; retries %u", u->retry_attempts);
    if (u->passive.failures)
        put(&o, "; passive checks: %u failures in %llums eject %llums", u->passive.failures,
            (unsigned long long)u->passive.within_ms, (unsigned long long)u->passive.eject_for_ms);
    if (u->active.on) {
        put(&o, "; active checks: GET %s every %llums, timeout %llums, healthy after %u, unhealthy after %u, expect",
            u->active.path.p, (unsigned long long)u->active.interval_ms, (unsigned long long)u->active.timeout_ms,
            u->active.healthy_after, u->active.unhealthy_after);
        for (size_t i = 0; i < u->active.nexpect; i++) {
            put(&o, "%s%u", i ? "," : " ", u->active.expect[i].lo);
            if (u->active.expect[i].hi != u->active.expect[i].lo)
                put(&o, "-%u", u->active.expect[i].hi);
        }
    }
    if (u->resolve_every_ms)
        put(&o, "; names re-resolved every %llums", (unsigned long long)u->resolve_every_ms);
    if (u->circuit.on)
        put(&o, "; circuit breaker: %g of >= %u in %llums, open %llums, max_pending %u", u->circuit.failure_ratio,
            u->circuit.min_requests, (unsigned long long)u->circuit.window_ms,
            (unsigned long long)u->circuit.open_for_ms, u->circuit.max_pending);
    return buf;
}
