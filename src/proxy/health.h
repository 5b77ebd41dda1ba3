/* health.h — active health checks (SPEC §3 `health_check.active`).
 *
 * One checker runs on the main thread's loop, off the request path. Per
 * target of each upstream with `health_check.active`, every `interval` it
 * sends `GET path` over HTTP/1.1 on a fresh connection (`Connection: close`,
 * so every check also proves that the target still accepts connections),
 * plain or TLS with the snapshot's client context for the upstream (verify,
 * ca, sni, client certificate), and waits at most `timeout` for the status
 * line. A status in `expect` is a success; `healthy_after` successes in a row
 * make a target healthy, `unhealthy_after` failures in a row unhealthy. The
 * verdict goes to the target's shared state (proxy/upstate.h), which every
 * worker reads at its next pick; each change is logged once (warn / info).
 *
 * Probes are keyed by target address, like that state: gh_health_apply with
 * a new configuration keeps the probes (and their counters) of targets still
 * checked, starts new ones and stops the others. A target checked by several
 * upstreams is probed once, with the settings of the first in the file.
 * Targets start healthy. */
#ifndef GH_PROXY_HEALTH_H
#define GH_PROXY_HEALTH_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "config/config.h"
#include "tls/tls.h"

typedef struct gh_health gh_health;

gh_health *gh_health_new(uv_loop_t *loop);
/* Check what cfg asks for from now on. tls: the snapshot's client contexts,
 * per cfg->upstreams[i] (NULL entries for plaintext); referenced, not owned.
 * Nothing of cfg is kept: it may be freed after the call. */
void gh_health_apply(gh_health *h, const gh_config *cfg, gh_tls_client *const *tls);
/* Stops every check; run the loop afterwards to let the handles close. */
void gh_health_free(gh_health *h);

/* ---- the counting, also for tests ---- */
typedef struct gh_health_counts {
    uint32_t ok, failed;          /* successes / failures in a row */
} gh_health_counts;

/* One check's result: returns the verdict after it, given the one before. */
bool gh_health_judge(gh_health_counts *c, bool healthy, bool success, uint32_t healthy_after,
                     uint32_t unhealthy_after);
/* u's `expect` as a set of statuses: bit s of set[s / 64] (s < 640). */
void gh_health_expect_set(const gh_upstream_cfg *u, uint64_t set[10]);
static inline bool gh_health_expected(const uint64_t set[10], int status)
{
    return status >= 0 && status < 640 && (set[status >> 6] >> (status & 63) & 1);
}

#endif
