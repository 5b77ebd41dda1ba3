/* upcall.h — the upstream-call layer: what every upstream request does
 * whatever its protocol (nginx's peer get/free). forward.c (HTTP/1.1) and
 * h2_upstream.c (HTTP/2) are transport drivers over it: they move bytes and
 * tell it how each attempt ended; it owns the rest.
 *
 *   start   per request: circuit admission (503 circuit_open), hash key
 *   get     per attempt: the target (balancer, tried targets, skipping
 *           ejected / unhealthy ones; -1 = every target down, 503
 *           upstream_unavailable at once), in-flight accounting
 *   report  the attempt's outcome, once: passive health, circuit window
 *   put     the attempt lets go of its target (in-flight accounting)
 *   failed / head  report + retry decision (retries.attempts, retries.on,
 *           idempotency, nothing sent to the client)
 *   end     per request, on every way out
 *
 * Per-target and per-circuit state outlive snapshots (proxy/upstate.h). */
#ifndef GH_PROXY_UPCALL_H
#define GH_PROXY_UPCALL_H
#include <stdbool.h>
#include <stdint.h>
#include "config/config.h"
#include "http/exchange.h"
#include "proxy/balance.h"

struct gh_proxy_ctx;

/* How an attempt ended (SPEC §12.7 counts all but OK as failures; STATUS
 * only for a status in failure_statuses). */
enum gh_outcome {
    GH_OUT_OK = 0,
    GH_OUT_CONNECT,               /* refused, unreachable, TLS handshake: nothing sent */
    GH_OUT_CONNECT_TIMEOUT,       /* connect / handshake too slow: nothing sent */
    GH_OUT_REFUSED,               /* HTTP/2 REFUSED_STREAM: not processed */
    GH_OUT_RESET,                 /* connection or stream reset / closed under the request */
    GH_OUT_TIMEOUT,               /* no answer within send / read timeouts */
    GH_OUT_STATUS,                /* answered with a failure status */
};

typedef struct gh_upcall {
    gh_exchange *ex;
    gh_balancer *b;
    gh_upstream_rt *rt;
    const gh_upstream_cfg *up;
    size_t upstream;
    int worker;
    int target;                   /* the current attempt's, -1 before the first */
    uint64_t tried;               /* bit per target already tried */
    uint32_t attempts;            /* tries so far */
    uint64_t key;                 /* balance: hash */
    bool has_key;
    bool counting;                /* health checks or a circuit count outcomes */
    bool holding;                 /* the attempt holds its target (get without put) */
    bool reported;                /* the attempt's outcome was reported */
    bool admitted, probe;         /* circuit: counted as pending; the half-open probe */
    bool stale_retry_used;        /* one free retry after a dead kept-alive connection */
    bool ended;
} gh_upcall;

/* NULL, or the problem code the request gets at once ("circuit_open"). */
const char *gh_upcall_start(gh_upcall *c, gh_exchange *ex, const struct gh_proxy_ctx *ctx,
                            const gh_route_cfg *route);
/* The next attempt's target; -1: every target is down. */
int gh_upcall_get(gh_upcall *c);
void gh_upcall_report(gh_upcall *c, int outcome);
void gh_upcall_put(gh_upcall *c);
/* The attempt failed (outcome): report, let go, and say whether to try again.
 * stale: the connection was reused and died before answering (a kept-alive
 * connection the upstream closed meanwhile): one free retry, not counted.
 * replayable: nothing reached the client and no body byte was consumed. */
bool gh_upcall_failed(gh_upcall *c, int outcome, bool stale, bool replayable);
/* The response head came (request fully sent: req_done). true: a status to
 * retry on (reported and let go: try again); false: reported, go on. */
bool gh_upcall_head(gh_upcall *c, int status, bool replayable, bool req_done);
void gh_upcall_end(gh_upcall *c);
/* Where the current attempt connects: the target's address as last
 * re-resolved (resolve_every), else as loaded. buf: room for a copy.
 * Inline: without resolve_every it is one test. */
static inline const struct sockaddr *gh_upcall_addr(const gh_upcall *c, struct sockaddr_storage *buf,
                                                    socklen_t *len)
{
    const gh_target_cfg *t = &c->up->targets[c->target];
    if (c->up->resolve_every_ms && gh_target_addr(c->rt->ts[c->target], buf, len))
        return (const struct sockaddr *)buf;
    *len = t->salen;
    return (const struct sockaddr *)&t->sa;
}

/* ---- the rules, also for tests ---- */
int gh_upcall_status_outcome(const gh_upstream_cfg *u, int status);
bool gh_upcall_is_failure(const gh_upstream_cfg *u, int outcome);
/* May a request retry after outcome (status for GH_OUT_STATUS)? attempts:
 * tries made so far. */
bool gh_upcall_may_retry(const gh_upstream_cfg *u, uint32_t method_bit, uint32_t attempts, int outcome,
                         int status, bool replayable);
/* The request's key for balance: hash; false when it has none. */
bool gh_upcall_hash_key(const gh_upstream_cfg *u, const gh_exchange *ex, uint64_t *key);

#endif
