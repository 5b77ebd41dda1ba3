/* ratelimit_store.h — where rate_limit counts: the seam between the
 * plugin's logic (keys, headers, answers: plugins/rate_limit.c) and the
 * counters. The local store (ratelimit_local.c) is one table per process
 * shared by all workers; a cluster store (Redis) implements the same take,
 * possibly asynchronously: it returns GH_AGAIN and calls back, and the
 * plugin WAITs meanwhile. */
#ifndef GH_PLUGINS_RATELIMIT_STORE_H
#define GH_PLUGINS_RATELIMIT_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/plugin_cfg.h"
#include "core/str.h"
#include "plugins/ratelimit_algo.h"

/* The limits of one rate_limit configuration. */
typedef struct gh_rl_policy {
    int algorithm;                /* GH_RL_SLIDING_WINDOW | GH_RL_TOKEN_BUCKET */
    size_t n;
    gh_rl_limit limits[GH_RL_MAX_LIMITS];
    uint64_t idle_ms;             /* a key unused this long holds no state any more */
} gh_rl_policy;

typedef struct gh_rl_verdict {
    bool allowed;                 /* every limit had room (then each counted it) */
    bool counted;                 /* false: the store could not count (table full, store down) */
    size_t which;                 /* the limit reported: the refusing one, else the closest to it */
    uint64_t remaining, reset_ms; /* of that limit (gh_rl_step) */
} gh_rl_verdict;

typedef struct gh_rl_store gh_rl_store;
typedef void (*gh_rl_done)(void *arg, const gh_rl_verdict *v);

struct gh_rl_store {
    bool wants_key;               /* take needs the key's bytes, not only its hash */
    /* Count one request of `key` (its bytes when wants_key, and its 64-bit hash) at now_ms
     * (the worker's cached clock) against every limit of p. GH_OK: *v is
     * the verdict. GH_AGAIN: done(arg, v) comes later, unless cancel(arg)
     * is called first (the client left). */
    int (*take)(gh_rl_store *s, const gh_rl_policy *p, gh_str key, uint64_t key_hash, uint64_t now_ms,
                gh_rl_verdict *v, gh_rl_done done, void *arg);
    void (*cancel)(gh_rl_store *s, void *arg);
};

/* The process's local store (made on first use, lives until exit). */
gh_rl_store *gh_rl_local_store(void);

/* The local table: its figures and a look at it (tests, docs). */
#define GH_RL_LOCAL_SLOTS (1u << 18)   /* keys held at once, all rate limits together */
#define GH_RL_LOCAL_PROBE 64           /* slots a key may use */
size_t gh_rl_local_bytes(void);        /* memory of the table */
size_t gh_rl_local_keys(uint64_t now_ms);   /* slots holding a live key */

#endif
