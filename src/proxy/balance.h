/* balance.h — choosing a target of an upstream (SPEC §3 `balance`).
 * State is per snapshot and per worker (each worker writes only its own
 * slot), so picking a target takes no lock and shares no cache line. */
#ifndef GH_PROXY_BALANCE_H
#define GH_PROXY_BALANCE_H
#include <stdint.h>
#include "config/config.h"

typedef struct gh_balancer gh_balancer;

gh_balancer *gh_balancer_new(const gh_config *cfg, int nworkers);
void gh_balancer_free(gh_balancer *b);
/* Index of the target to use, avoiding those in `tried` (bit i = target i)
 * while any other exists; -1 if the upstream has no targets. */
int gh_balance_pick(gh_balancer *b, int worker, size_t upstream, uint64_t tried);
/* least_conn bookkeeping: a request to target started / ended. */
void gh_balance_begin(gh_balancer *b, int worker, size_t upstream, int target);
void gh_balance_end(gh_balancer *b, int worker, size_t upstream, int target);

#endif
