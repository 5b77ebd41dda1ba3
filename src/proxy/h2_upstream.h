/* h2_upstream.h — the `upstream` target for `protocol: h2` upstreams
 * (SPEC §3, §8, §12.22): each exchange becomes one stream of an HTTP/2
 * client session to the chosen target, so gRPC (trailers, streaming both
 * ways) passes through. Same contract as gh_proxy_start: timeouts, retries,
 * 502/504 problems, end-to-end flow control. */
#ifndef GH_PROXY_H2_UPSTREAM_H
#define GH_PROXY_H2_UPSTREAM_H
#include "proxy/proxy.h"

/* Per-worker sessions (hung off gh_proxy_worker.h2up, made on first use). */
typedef struct gh_h2up_worker gh_h2up_worker;

/* path_q: the path to forward (rewritten) plus "?query" if any. */
void gh_h2up_start(gh_exchange *ex, const gh_proxy_ctx *ctx, const gh_route_cfg *route, gh_str path_q);

/* Close every session (worker exit: no exchange is left by then). NULL ok. */
void gh_h2up_worker_free(gh_h2up_worker *w);

#endif
