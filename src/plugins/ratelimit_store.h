/* ratelimit_store.h — where rate_limit counts: the seam between the
 * plugin's logic (keys, headers, answers: plugins/rate_limit.c) and the
 * counters. The local store (ratelimit_local.c) is one table per process
 * shared by all workers; the cluster store (ratelimit_cluster.c, Redis)
 * implements the same take asynchronously: it returns GH_AGAIN and calls
 * back, and the plugin WAITs meanwhile. */
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
    bool deny_on_error;           /* cluster: redis.on_error is deny (else allow) */
} gh_rl_policy;

typedef struct gh_rl_verdict {
    bool allowed;                 /* every limit had room (then each counted it) */
    bool counted;                 /* false: the store could not count (table full, store down) */
    bool unavailable;             /* the store is down and says deny (503 rate_limit_unavailable) */
    size_t which;                 /* the limit reported: the refusing one, else the closest to it */
    uint64_t remaining, reset_ms; /* of that limit (gh_rl_step) */
} gh_rl_verdict;

typedef struct gh_rl_store gh_rl_store;
typedef void (*gh_rl_done)(void *arg, const gh_rl_verdict *v);

/* One request's take at an asynchronous store: made by the caller (in the
 * exchange's arena), kept until done ran or cancel was called. */
typedef struct gh_rl_wait {
    gh_rl_done done;              /* the caller's */
    void *arg;
    struct gh_redis *redis;       /* the worker's Redis client (NULL without redis:) */
    const gh_rl_policy *policy;   /* the store's, from here on */
    gh_rl_verdict floor;          /* the local floor's verdict */
    uint64_t handle[2];           /* the store's: its pending call */
} gh_rl_wait;

struct gh_rl_store {
    bool wants_key;               /* take needs the key's bytes, not only its hash */
    bool async;                   /* take may answer later: the caller passes a gh_rl_wait */
    /* Count one request of `key` (its bytes when wants_key, and its 64-bit hash) at now_ms
     * (the worker's cached clock) against every limit of p. GH_OK: *v is
     * the verdict. GH_AGAIN (async stores): w->done(w->arg, v) comes later,
     * unless cancel(w) is called first (the client left). */
    int (*take)(gh_rl_store *s, const gh_rl_policy *p, gh_str key, uint64_t key_hash, uint64_t now_ms,
                gh_rl_verdict *v, gh_rl_wait *w);
    void (*cancel)(gh_rl_store *s, gh_rl_wait *w);
};

/* The process's local store (made on first use, lives until exit). */
gh_rl_store *gh_rl_local_store(void);

/* The process's cluster store: counts in Redis (one call for all of a
 * policy's limits), each limit also applied by the local store as a floor;
 * while Redis is unreachable redis.on_error decides. */
gh_rl_store *gh_rl_cluster_store(void);
/* Takes whose Redis call failed (unreachable, timeout, error), since start. */
uint64_t gh_rl_cluster_errors(void);

/* The local table: its figures and a look at it (tests, docs). */
#define GH_RL_LOCAL_SLOTS (1u << 18)   /* keys held at once, all rate limits together */
#define GH_RL_LOCAL_PROBE 64           /* slots a key may use */
size_t gh_rl_local_bytes(void);        /* memory of the table */
size_t gh_rl_local_keys(uint64_t now_ms);   /* slots holding a live key */

#endif
