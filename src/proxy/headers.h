/* headers.h — what crosses the proxy: the upstream request head (hop-by-hop
 * headers removed, X-Forwarded-*, X-Request-Id, traceparent/tracestate, route header
 * operations) and the response headers passed back (SPEC §8). */
#ifndef GH_PROXY_HEADERS_H
#define GH_PROXY_HEADERS_H
#include <stdbool.h>
#include "config/config.h"
#include "http/exchange.h"

enum gh_fwd_body { GH_FWD_NO_BODY = 0, GH_FWD_LENGTH, GH_FWD_CHUNKED };

/* The Host an upstream is sent (HTTP/1.1 Host, HTTP/2 :authority): the
 * client's; else (HTTP/1.0 without Host) the route's exact host; else the
 * target's address, as nginx's $proxy_host. Empty only when t is NULL. */
gh_str gh_proxy_host(const gh_exchange *ex, const gh_route_cfg *route, const gh_target_cfg *t);

/* The Host depends on the target (gh_proxy_host): a head is made per try. */
static inline bool gh_proxy_host_is_route(const gh_exchange *ex, const gh_route_cfg *route)
{
    return !ex->authority.len && route->match.host.len && route->match.host.p[0] != '*';
}
static inline bool gh_proxy_host_by_target(const gh_exchange *ex, const gh_route_cfg *route)
{
    return !ex->authority.len && !gh_proxy_host_is_route(ex, route);
}

/* The request head for the upstream, in the exchange arena.
 * path_q: the rewritten path with "?query" if any; t: the target it goes
 * to (NULL when not known yet: see gh_proxy_host_by_target). */
char *gh_proxy_request_head(gh_exchange *ex, const gh_route_cfg *route, gh_str path_q,
                            int body, const gh_target_cfg *t, size_t *len);

/* The request's header fields as any upstream gets them (the one place
 * that decides what the gateway adds): the fields left by the intake
 * (server/intake.c: hop-by-hop and identity fields already gone) and what
 * plugins added, then X-Forwarded-*, X-Request-Id, X-Consumer*, traceparent (and
 * tracestate, observe/trace.h)
 * and the route's edits. No Host (HTTP/1.1 adds it, HTTP/2 sends
 * :authority), no framing; "te: trailers" when the client asked and keep_te
 * (HTTP/2 upstreams, SPEC §12.22: gRPC needs it). In the exchange arena. */
gh_header *gh_proxy_request_fields(gh_exchange *ex, const gh_route_cfg *route, bool keep_te, size_t *n);

/* Filter an upstream response's headers for the client: drops hop-by-hop
 * and framing headers, applies route response_headers, adds X-Request-Id.
 * Returns an arena array; *n set to its length. */
gh_header *gh_proxy_response_headers(gh_exchange *ex, const gh_route_cfg *route,
                                     const gh_header *h, size_t nh, size_t *n);

/* The same header operations for responses made by local targets. */
gh_header *gh_apply_header_ops(gh_exchange *ex, const gh_header_ops *ops,
                               const gh_header *h, size_t nh, size_t *n);

#endif
