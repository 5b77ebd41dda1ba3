/* describe.h — an upstream's traffic settings in one line, for `routes` and
 * `explain`: balancer, targets, retries, health checks, circuit breaker. */
#ifndef GH_PROXY_DESCRIBE_H
#define GH_PROXY_DESCRIBE_H
#include <stddef.h>
#include "config/config.h"

/* Writes into buf (always NUL-terminated); returns buf. Values from ${ENV}
 * show as "***". */
char *gh_upstream_describe(const gh_config *cfg, const gh_upstream_cfg *u, char *buf, size_t cap);

/* "round_robin", "least_conn", "random_two", "hash" (enum gh_balance). */
const char *gh_balance_name(int balance);

#endif
