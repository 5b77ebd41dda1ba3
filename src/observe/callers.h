/* callers.h — API lifecycle counters: requests per route × version ×
 * consumer over the last 24 hours, so an operator sees who still calls a
 * deprecated version before its sunset (GET /api/versions).
 *
 * Each worker thread counts in tables of its own (no lock, no shared cache
 * line written per request); a table is allocated the first time its
 * thread sees a route/version pair and kept for the life of the process,
 * keyed by names, so a reload that keeps a route's and a version's names
 * keeps their counts. Memory is bounded: GH_CALLERS_PAIRS route/version
 * pairs per worker, GH_CALLERS_MAX consumers per pair, the rest counted as
 * "(other)". Readers (the admin API) sum every worker's tables. */
#ifndef GH_OBSERVE_CALLERS_H
#define GH_OBSERVE_CALLERS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "http/exchange.h"

#define GH_CALLERS_MAX 32         /* named consumers per version (per worker) */
#define GH_CALLERS_PAIRS 256      /* route/version pairs per worker */

/* One finished request of a public listener (the worker's done hook): counts
 * it when the exchange served a version (ex->log.version). */
void gh_callers_count(gh_str route, gh_str version, gh_str consumer, int64_t now);
void gh_callers_count_now(gh_str route, gh_str version, gh_str consumer);
static inline void gh_callers_record(const gh_exchange *ex)
{
    if (ex->log.version.len)   /* the only cost for unversioned routes */
        gh_callers_count_now(ex->log.route, ex->log.version, ex->log.consumer);
}

typedef struct gh_caller_sum {
    char consumer[64];            /* "(anonymous)", "(other)" or a consumer's name */
    uint64_t requests_24h;
    int64_t last_seen;            /* Unix seconds */
} gh_caller_sum;

/* Sums every worker's counts of route/version over the 24 hours before
 * now into out (at most cap; beyond, into "(other)"), sorted by
 * requests_24h descending, then name. Returns how many were written. */
size_t gh_callers_read(gh_str route, gh_str version, int64_t now, gh_caller_sum *out, size_t cap);

/* For gatehouse_version_requests_total{route,version,consumer}: calls each
 * once per label set with its count since start (every worker's summed),
 * sorted by route, version, consumer. Off the request path (allocates);
 * false when out of memory (then nothing was reported). */
bool gh_callers_totals(void (*each)(void *arg, const char *route, const char *version, const char *consumer,
                                    uint64_t total),
                       void *arg);

#endif
