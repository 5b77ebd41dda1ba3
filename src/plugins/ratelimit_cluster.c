/* ratelimit_cluster.c — the cluster rate-limit store (`scope: cluster`):
 * gateways share one count in Redis.
 *
 * One request is one script call for all of its policy's limits
 * (gh_redis_limits: EVALSHA, atomic, pipelined on the worker's connection),
 * timed by Redis's own clock, so every gateway of a fleet counts in the
 * same windows. The Redis key is the request key's 64-bit hash (seeded
 * with its configuration's state_key): no header value (maybe a
 * credential) is stored in Redis, and gateways with the same route and
 * rate_limit settings share it.
 *
 * The local floor: every cluster limit is first applied by the process's
 * local store, as if it were `scope: local`. The fleet's count includes
 * this process's, so the floor refuses only what Redis would refuse too,
 * and answers that at once, without a round trip: a client over its limit
 * costs Redis at most `limit` calls per window per gateway. While Redis is
 * unreachable (down, timed out, answering errors), redis.on_error decides:
 * allow serves the request under the floor (a fleet of K gateways lets
 * through at most K times the limit), deny answers 503
 * rate_limit_unavailable. The worker's client reconnects by itself. */
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include "cluster/redis.h"
#include "core/log.h"
#include "http/exchange.h"
#include "plugins/ratelimit_store.h"

_Static_assert(GH_RL_MAX_LIMITS <= GH_REDIS_MAX_LIMITS, "one script call holds all of a policy's limits");
_Static_assert(sizeof(gh_redis_handle) <= sizeof(((gh_rl_wait *)0)->handle), "the wait holds the call's handle");

#define LOG_EVERY_MS 10000

static _Atomic uint64_t errors, errors_logged, last_log;

/* Redis could not answer: count it, say so at most every LOG_EVERY_MS
 * (process-wide), and let on_error decide. */
static void failed(gh_rl_wait *w, int status, gh_rl_verdict *v)
{
    uint64_t n = atomic_fetch_add_explicit(&errors, 1, memory_order_relaxed) + 1;
    uint64_t now = uv_hrtime() / 1000000, last = atomic_load_explicit(&last_log, memory_order_relaxed);
    if ((last == 0 || now - last >= LOG_EVERY_MS) && atomic_compare_exchange_strong(&last_log, &last, now)) {
        uint64_t before = atomic_exchange(&errors_logged, n);
        gh_log_warn("rate_limit: Redis %s: %" PRIu64 " cluster limit check%s failed since the last message; "
                    "on_error: %s",
                    gh_redis_status_name(status), n - before, n - before == 1 ? "" : "s",
                    w->policy->deny_on_error ? "deny (503 rate_limit_unavailable)" : "allow (local limits apply)");
    }
    *v = w->policy->deny_on_error ? (gh_rl_verdict){ .unavailable = true } : w->floor;
}

static void on_verdict(void *ctx, int status, const gh_redis_verdict *rv)
{
    gh_rl_wait *w = ctx;
    gh_rl_verdict v;
    if (status == GH_REDIS_OK)
        v = (gh_rl_verdict){ .allowed = rv->allowed, .counted = true, .which = rv->which,
                             .remaining = rv->remaining, .reset_ms = rv->reset_ms };
    else
        failed(w, status, &v);
    w->done(w->arg, &v);
}

static int cluster_take(gh_rl_store *s, const gh_rl_policy *p, gh_str key, uint64_t h, uint64_t now,
                        gh_rl_verdict *v, gh_rl_wait *w)
{
    gh_rl_store *local = gh_rl_local_store();
    local->take(local, p, key, h, now, v, NULL);
    if (!v->allowed)
        return GH_OK;   /* the floor refuses: Redis would too */
    w->policy = p;
    w->floor = *v;
    if (!w->redis) {   /* (the configuration requires redis:) */
        failed(w, GH_REDIS_UNAVAILABLE, v);
        return GH_OK;
    }
    static const char hex[] = "0123456789abcdef";
    char name[16];
    for (int i = 0; i < 16; i++)
        name[i] = hex[(h >> (60 - 4 * i)) & 15];
    gh_redis_window win[GH_RL_MAX_LIMITS];
    for (size_t i = 0; i < p->n; i++)
        win[i] = (gh_redis_window){ p->limits[i].limit, p->limits[i].window_ms };
    gh_redis_handle handle;
    int algo = p->algorithm == GH_RL_TOKEN_BUCKET ? GH_REDIS_TOKEN_BUCKET : GH_REDIS_SLIDING_WINDOW;
    int st = gh_redis_limits(w->redis, algo, name, sizeof(name), win, p->n, 0, on_verdict, w, &handle);
    if (st != GH_REDIS_OK) {
        failed(w, st, v);
        return GH_OK;
    }
    memcpy(w->handle, &handle, sizeof(handle));
    return GH_AGAIN;
}

static void cluster_cancel(gh_rl_store *s, gh_rl_wait *w)
{
    gh_redis_handle handle;
    memcpy(&handle, w->handle, sizeof(handle));
    gh_redis_cancel(handle);
}

static gh_rl_store cluster = { .async = true, .take = cluster_take, .cancel = cluster_cancel };

gh_rl_store *gh_rl_cluster_store(void) { return gh_rl_local_store() ? &cluster : NULL; }

uint64_t gh_rl_cluster_errors(void) { return atomic_load_explicit(&errors, memory_order_relaxed); }
