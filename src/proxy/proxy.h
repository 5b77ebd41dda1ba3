/* proxy.h — the `upstream` target: forward an exchange to a target of an
 * upstream over a pooled keep-alive connection, streaming both bodies, with
 * timeouts and retries (SPEC §3, §8, §12.2). Runs no policy: the route and
 * the path to forward are decided before it is called. */
#ifndef GH_PROXY_PROXY_H
#define GH_PROXY_PROXY_H
#include "config/config.h"
#include "http/exchange.h"
#include "proxy/balance.h"
#include "proxy/pool.h"

struct gh_tls_client;

typedef struct gh_proxy_ctx {
    gh_proxy_worker *pw;          /* this worker's pools */
    gh_balancer *balancer;        /* the pinned snapshot's balancer */
    struct gh_tls_client *const *tls;   /* the snapshot's, per upstream index; NULL = plain */
    int worker;                   /* index of this worker */
} gh_proxy_ctx;

/* The pool tag of an upstream's connections (0 = plain): connections are
 * shared only between upstreams that would make the same TLS connection. */
uint64_t gh_proxy_tls_tag(const gh_upstream_cfg *u);

/* path_q: the path to forward (rewritten) plus "?query" if any. */
void gh_proxy_start(gh_exchange *ex, const gh_proxy_ctx *ctx, const gh_route_cfg *route, gh_str path_q);

#endif
