/* ratelimit_algo.h — the arithmetic of rate limits, as pure functions on
 * one 64-bit word per key and limit, so a store can keep the word in an
 * atomic and update it with compare-and-swap (and tests can drive it with
 * a fake clock). Time is milliseconds since the key's origin (its first
 * request), so a new key always gets a whole first window.
 *
 * sliding_window: the two-bucket approximation (as Cloudflare and Kong):
 * the count of the current fixed window plus the previous window's count
 * weighted by the part of it the sliding window still covers. Word:
 * [window number:24][previous count:20][current count:20].
 *
 * token_bucket: a bucket of `limit` tokens refilled at limit/window, kept
 * as GCRA (the theoretical arrival time, in microseconds since the origin):
 * up to `limit` requests at once, then one per window/limit. */
#ifndef GH_PLUGINS_RATELIMIT_ALGO_H
#define GH_PLUGINS_RATELIMIT_ALGO_H
#include <stdbool.h>
#include <stdint.h>

typedef struct gh_rl_limit {
    uint64_t limit, window_ms;
} gh_rl_limit;

typedef struct gh_rl_step {
    bool allowed;
    uint64_t remaining;           /* requests still allowed right after this one */
    uint64_t reset_ms;            /* until a request would be allowed again; 0 = now */
} gh_rl_step;

/* One request at t_ms: the new word (unchanged when refused) and *out. */
uint64_t gh_rl_sliding_take(uint64_t word, uint64_t t_ms, gh_rl_limit l, gh_rl_step *out);
uint64_t gh_rl_bucket_take(uint64_t word, uint64_t t_ms, gh_rl_limit l, gh_rl_step *out);
/* Give back a request taken at t_ms (another limit of the same request refused it). */
uint64_t gh_rl_sliding_refund(uint64_t word, uint64_t t_ms, gh_rl_limit l);
uint64_t gh_rl_bucket_refund(uint64_t word, uint64_t t_ms, gh_rl_limit l);

#endif
