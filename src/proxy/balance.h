/* balance.h — choosing a target of an upstream (SPEC §3 `balance`) and the
 * per-snapshot view of each upstream's shared state (proxy/upstate.h).
 * Balancer state is per snapshot and per worker (each worker writes only
 * its own slot), so picking a target takes no lock and shares no cache
 * line; random_two reads the process-wide in-flight counts (atomics). */
#ifndef GH_PROXY_BALANCE_H
#define GH_PROXY_BALANCE_H
#include <stdint.h>
#include "config/config.h"
#include "proxy/upstate.h"

typedef struct gh_balancer gh_balancer;

typedef struct gh_ring_point {
    uint64_t hash;
    uint32_t target;
} gh_ring_point;

/* One upstream of the snapshot, as the call layer sees it. */
typedef struct gh_upstream_rt {
    gh_target_state **ts;         /* [ntargets], from the registry */
    gh_circuit *circuit;          /* circuit_breaker configured, else NULL */
    bool checks;                  /* health checks configured: ask ts before picking */
    gh_ring_point *ring;          /* balance: hash, sorted by hash */
    size_t nring;
} gh_upstream_rt;

/* Builds the balancer and acquires the upstreams' shared state (main thread). */
gh_balancer *gh_balancer_new(const gh_config *cfg, int nworkers);
void gh_balancer_free(gh_balancer *b);
gh_upstream_rt *gh_balance_upstream(gh_balancer *b, size_t upstream);
/* Index of the target to use among those not in `skip` (bit i = target i:
 * tried, or down); -1 when every target is skipped. key: the request's hash
 * key (balance: hash), or NULL: then round robin. */
int gh_balance_pick(gh_balancer *b, int worker, size_t upstream, uint64_t skip, const uint64_t *key);
/* least_conn bookkeeping: a request to target started / ended. */
void gh_balance_begin(gh_balancer *b, int worker, size_t upstream, int target);
void gh_balance_end(gh_balancer *b, int worker, size_t upstream, int target);
/* The hash every ring point and key goes through (64-bit, well mixed). */
uint64_t gh_balance_hash(const void *p, size_t n, uint64_t seed);

#endif
