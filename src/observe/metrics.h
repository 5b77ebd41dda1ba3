/* metrics.h — the statistics registry (SPEC §9): counters and histograms
 * kept per worker and summed by whoever reads them (/metrics, /api/stats).
 *
 * Each worker writes only its own block, with a relaxed atomic load and
 * store (no locked read-modify-write, no cache line shared with another
 * writer); a reader sums the blocks at any time and sees each counter
 * whole. Routes and upstreams are small integer ids interned by name on
 * the main thread when a snapshot is built, so the request path indexes
 * arrays (no hashing, no allocation) and a reload that keeps a name keeps
 * its counts. Names are never freed while the process runs. Id 0 of the
 * routes is "matched no route" (""); id 0 of the upstreams is "none". */
#ifndef GH_OBSERVE_METRICS_H
#define GH_OBSERVE_METRICS_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "http/exchange.h"

/* Latency buckets (upper bounds, inclusive) in microseconds; one more
 * bucket (+Inf) follows them. */
#define GH_METRICS_NBOUNDS 14
extern const uint32_t gh_metrics_bounds_us[GH_METRICS_NBOUNDS];

#define GH_METRICS_MAX_ROUTES 4096      /* beyond: counted under "" */
#define GH_METRICS_MAX_UPSTREAMS 1024   /* beyond: not counted */
#define GH_METRICS_CODE_SLOTS 64        /* distinct (method, status) pairs per route */
#define GH_METRICS_RECENT 50            /* recent errors kept per worker */

/* The fixed method label set: GET ... CONNECT (core/method.h order), OTHER. */
#define GH_METRICS_NMETHODS 10
const char *gh_metrics_method_name(unsigned m);

/* Cache results (ex->log.cache) as a bounded label set. */
enum { GH_MCACHE_HIT, GH_MCACHE_MISS, GH_MCACHE_STALE, GH_MCACHE_BYPASS, GH_MCACHE_OTHER, GH_MCACHE_N };
extern const char *const gh_metrics_cache_names[GH_MCACHE_N];

typedef struct gh_metrics_worker gh_metrics_worker;

/* ---- setup (main thread) ---- */

/* Before the workers start. Without it every call below is a no-op and
 * every read is empty (explain, unit tests of other modules). */
void gh_metrics_init(int nworkers);
gh_metrics_worker *gh_metrics_for_worker(int id);
/* Sets metric_id on cfg's routes and upstreams (interning new names) and
 * allocates their counters for every worker: before the snapshot is
 * published. */
void gh_metrics_assign(gh_config *cfg);

/* ---- recording (the owning worker) ---- */

/* The end of a public listener's exchange; now_ns: uv_hrtime(). */
void gh_metrics_exchange(gh_metrics_worker *m, const gh_exchange *ex, uint64_t now_ns);
/* One plugin step took ns nanoseconds. */
void gh_metrics_plugin(gh_metrics_worker *m, int plugin, uint64_t ns);

/* ---- rare events (any thread; atomics) ---- */
void gh_metrics_redis_error(void);
/* A reload ended (main thread): errors are the refused file's messages. */
void gh_metrics_reload(bool ok, int64_t revision, const char *const *errors, size_t n);

/* ---- reading (any thread; sums over the workers) ---- */

typedef struct gh_metrics_hist {
    uint64_t b[GH_METRICS_NBOUNDS + 1];   /* per bucket, not cumulative; last = +Inf */
    uint64_t sum_us;
    uint64_t count;
} gh_metrics_hist;

typedef struct gh_metrics_route {
    uint64_t requests, client_errors, errors, rate_limited;
    gh_metrics_hist duration;
    uint64_t cache[GH_MCACHE_N];
    struct { uint16_t method, status; uint64_t n; } codes[GH_METRICS_CODE_SLOTS];
    size_t ncodes;
} gh_metrics_route;

bool gh_metrics_enabled(void);
uint32_t gh_metrics_route_count(void);          /* ids 0 .. count-1 */
const char *gh_metrics_route_name(uint32_t id);
uint32_t gh_metrics_route_id(const char *name); /* 0 when unknown (or "") */
void gh_metrics_route_read(uint32_t id, gh_metrics_route *out);
uint32_t gh_metrics_upstream_count(void);       /* ids 1 .. count-1 */
const char *gh_metrics_upstream_name(uint32_t id);
void gh_metrics_upstream_read(uint32_t id, gh_metrics_hist *out);
void gh_metrics_plugin_read(int plugin, gh_metrics_hist *out);
uint64_t gh_metrics_redis_errors(void);

typedef struct gh_metrics_reloads {
    uint64_t ok, error;
    bool any;                     /* a reload happened (else last_* are empty) */
    bool last_ok;
    int64_t last_at;              /* Unix seconds */
    int64_t last_revision;        /* etcd revision of the last reload's document; 0 = a file */
    char **last_errors;           /* malloc'd copies; gh_metrics_reloads_free */
    size_t nlast_errors;
} gh_metrics_reloads;
void gh_metrics_reloads_read(gh_metrics_reloads *out);
void gh_metrics_reloads_free(gh_metrics_reloads *r);

typedef struct gh_metrics_error {
    int64_t time_ms;              /* Unix milliseconds */
    uint64_t order_ns;            /* monotonic: orders errors of one millisecond */
    int status;
    char code[32];
    char route[64];
    char method[16];
    char path[128];
    char request_id[40];
} gh_metrics_error;
/* Up to cap recent errors of every worker, newest first; returns how many. */
size_t gh_metrics_recent_errors(gh_metrics_error *out, size_t cap);

#endif
