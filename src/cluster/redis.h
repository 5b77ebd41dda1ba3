/* redis.h — a worker's Redis client (hiredis async on the worker's libuv
 * loop) and the atomic rate-limit scripts it runs.
 *
 * One pipelined connection per server (one per master with Redis Cluster):
 * every request of the worker shares it. Each call is answered exactly once
 * through its callback: with the reply, or GH_REDIS_TIMEOUT after
 * redis.timeout, or GH_REDIS_UNAVAILABLE at once while the server is
 * unreachable (the client reconnects by itself, 100 ms doubling to 5 s), or
 * not at all after gh_redis_cancel. Single-threaded: everything runs on the
 * loop given to gh_redis_new. */
#ifndef GH_CLUSTER_REDIS_H
#define GH_CLUSTER_REDIS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "config/config.h"

struct redisReply;
typedef struct gh_redis gh_redis;

enum gh_redis_status {
    GH_REDIS_OK = 0,
    GH_REDIS_ERROR,        /* Redis answered an error (reply->str says which) */
    GH_REDIS_TIMEOUT,      /* no answer within redis.timeout */
    GH_REDIS_UNAVAILABLE,  /* not connected, the connection dropped, or too much in flight */
    GH_REDIS_CLOSED,       /* the client was freed while the call waited */
};
const char *gh_redis_status_name(int status);

/* What a call returns to cancel it with; valid until its callback ran. */
typedef struct gh_redis_handle {
    struct gh_redis_req *req;
    uint64_t seq;
} gh_redis_handle;

struct gh_tls_client;
/* cfg is copied; the client connects at once. tls: made from cfg->tls
 * (referenced here; NULL = plaintext). NULL only without memory. */
gh_redis *gh_redis_new(uv_loop_t *loop, const gh_redis_cfg *cfg, struct gh_tls_client *tls);
/* Stop and release. Callers still waiting are answered GH_REDIS_CLOSED
 * from inside this call. Handles close on the loop: run it once more
 * before uv_loop_close. Not from inside a gh_redis callback. */
void gh_redis_free(gh_redis *c);
/* The configuration the client was made from (for reload comparisons). */
const gh_redis_cfg *gh_redis_config(const gh_redis *c);
/* A connection to every server is up (with Cluster: the slot map is known). */
bool gh_redis_ready(const gh_redis *c);

/* The caller lost interest (its client left): the callback will not run.
 * Harmless on a handle whose callback already ran. */
void gh_redis_cancel(gh_redis_handle h);

/* ---- commands ---- */
typedef void (*gh_redis_cb)(void *ctx, int status, const struct redisReply *reply);
/* argv[key_index] routes the command with Redis Cluster (-1: any node).
 * Returns GH_REDIS_OK when sent: cb runs later, exactly once (unless
 * cancelled through *h). Any other status is the answer, given at once
 * (not connected: GH_REDIS_UNAVAILABLE), and cb never runs. reply is valid
 * during the callback only (NULL unless the status is OK or ERROR). */
int gh_redis_command(gh_redis *c, int argc, const char **argv, const size_t *argvlen, int key_index,
                     gh_redis_cb cb, void *ctx, gh_redis_handle *h);

/* ---- rate limits (one EVALSHA round trip, atomic in Redis) ---- */
enum gh_redis_algo { GH_REDIS_SLIDING_WINDOW = 0, GH_REDIS_TOKEN_BUCKET };

typedef struct gh_redis_verdict {
    bool allowed;
    size_t which;          /* the limit reported (from 0): the refusing one with the longest wait,
                              else the one closest to refusing */
    uint64_t limit;        /* its limit */
    uint64_t remaining;    /* requests still allowed now */
    uint64_t reset_ms;     /* until the next request would be allowed (0: now) */
} gh_redis_verdict;

typedef void (*gh_redis_limit_cb)(void *ctx, int status, const gh_redis_verdict *v);

/* Count one request against `limit` per `window_ms` for key. The Redis key
 * is "gh:rl:{KEY}": one slot per limit, so one node answers. sliding_window
 * is the two-bucket approximation (the previous window's count weighted by
 * its remaining overlap, as Cloudflare and Kong do); token_bucket holds
 * `limit` tokens refilled evenly over window_ms. Idle keys expire.
 * now_ms 0: Redis's own clock, one clock for the whole fleet (tests pass a
 * fixed time). Returns and calls back as gh_redis_command; v is NULL
 * unless status is GH_REDIS_OK. */
int gh_redis_limit(gh_redis *c, int algo, const char *key, size_t keylen, uint64_t limit, uint64_t window_ms,
                   uint64_t now_ms, gh_redis_limit_cb cb, void *ctx, gh_redis_handle *h);

/* Several limits of one key in one call (one round trip, atomic): the
 * request counts in all of them only when every one has room. The first
 * limit's Redis key is "gh:rl:{KEY}", the others' "gh:rl:{KEY}:1", ...
 * (one hash tag, one slot). At most GH_REDIS_MAX_LIMITS. */
#define GH_REDIS_MAX_LIMITS 4
typedef struct gh_redis_window {
    uint64_t limit, window_ms;
} gh_redis_window;
int gh_redis_limits(gh_redis *c, int algo, const char *key, size_t keylen, const gh_redis_window *w, size_t n,
                    uint64_t now_ms, gh_redis_limit_cb cb, void *ctx, gh_redis_handle *h);

/* CRC16 slot of a key, {hash tag} honoured (Redis Cluster spec). */
unsigned gh_redis_key_slot(const char *key, size_t len);

#endif
