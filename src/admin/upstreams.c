/* upstreams.c — GET /api/upstreams: per upstream of the running
 * configuration its balancer, circuit and pending requests, and per target
 * what the traffic layer knows right now (proxy/upstate.h). Only atomic
 * loads: a worker is never held up by a reader. */
#include <time.h>
#include "admin/endpoints.h"
#include "proxy/describe.h"
#include "proxy/upstate.h"
#include "server/worker.h"

static const char *circuit_name(const gh_circuit *c)
{
    static const char *const names[] = { "closed", "open", "half_open" };
    int st = atomic_load_explicit(&c->state, memory_order_relaxed);
    return st >= 0 && st <= 2 ? names[st] : "closed";
}

static json_t *target_json(const gh_config *cfg, const gh_upstream_cfg *u, const gh_target_cfg *tc,
                           gh_target_state *t, uint64_t now_ms, int64_t now)
{
    bool healthy = gh_target_healthy(t);
    uint64_t until = atomic_load_explicit(&t->ejected_until, memory_order_relaxed);
    bool ejected = until > now_ms;
    json_t *until_j = json_null();
    if (ejected) {   /* the monotonic deadline, as a wall-clock date */
        char buf[32];
        gh_admin_rfc3339(now + (int64_t)((until - now_ms + 999) / 1000), buf);
        until_j = json_string(buf);
    }
    /* failures of the passive checks' current window; none once it ran out */
    uint64_t ws = atomic_load_explicit(&t->window_start, memory_order_relaxed);
    unsigned fails = atomic_load_explicit(&t->fails, memory_order_relaxed);
    if (u->passive.failures && now_ms - ws >= u->passive.within_ms)
        fails = 0;
    return json_pack("{s:s, s:I, s:b, s:b, s:b, s:o, s:I, s:I}", "address", gh_config_show(cfg, tc->address).p,
                     "weight", (json_int_t)tc->weight, "up", healthy && !ejected, "healthy", healthy, "ejected",
                     ejected, "ejected_until", until_j, "in_flight",
                     (json_int_t)atomic_load_explicit(&t->inflight, memory_order_relaxed), "failures",
                     (json_int_t)fails);
}

void gh_admin_upstreams(gh_exchange *ex)
{
    gh_snapshot *s = gh_pin_snapshot(ex->pin);
    const gh_config *cfg = s->cfg;
    uint64_t now_ms = gh_now_ms(ex->env);   /* the clock upstate's deadlines use */
    int64_t now = (int64_t)time(NULL);
    json_t *list = json_array();
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const gh_upstream_cfg *u = &cfg->upstreams[i];
        gh_upstream_rt *rt = gh_balance_upstream(s->balancer, i);
        json_t *targets = json_array();
        uint64_t inflight = 0;
        for (size_t k = 0; k < u->ntargets; k++) {
            inflight += atomic_load_explicit(&rt->ts[k]->inflight, memory_order_relaxed);
            json_array_append_new(targets, target_json(cfg, u, &u->targets[k], rt->ts[k], now_ms, now));
        }
        if (rt->circuit)
            inflight = atomic_load_explicit(&rt->circuit->pending, memory_order_relaxed);
        json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:I, s:o}", "name", gh_config_show(cfg, u->name).p,
                                              "balancer", gh_balance_name(u->balance), "circuit",
                                              rt->circuit ? json_string(circuit_name(rt->circuit)) : json_null(),
                                              "pending", (json_int_t)inflight, "targets", targets));
    }
    gh_admin_send_json(ex, 200, json_pack("{s:o}", "upstreams", list));
}
