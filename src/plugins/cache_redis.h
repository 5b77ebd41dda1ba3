/* cache_redis.h — `store: redis`: entries shared by every gateway of a
 * fleet (SPEC §7.3), through the worker's asynchronous Redis client
 * (cluster/redis.h; Redis Cluster too). An entry is one string value with
 * a TTL (PX, its lifetime) named "gh:c:{ROUTE}:PATH:KEY" (siphash hex of
 * the route name, the normalized path and the full key: 64, 64 and 128
 * bits). The value holds the full key (checked on read: a hash collision
 * is a MISS), the status, the headers, the body and when it was stored
 * (wall clock, so Age counts across gateways). The route's hash tag puts
 * all its entries in one Cluster slot, so a purge finds them with a SCAN
 * of one node. */
#ifndef GH_PLUGINS_CACHE_REDIS_H
#define GH_PLUGINS_CACHE_REDIS_H
#include <stdint.h>
#include "cluster/redis.h"
#include "plugins/cache_store.h"

/* The value for e, stored at unix_ms (malloc'd; NULL without memory). */
char *gh_cache_encode(const gh_cache_entry *e, int64_t unix_ms, size_t *len);
/* An entry (refs 1) from a value, when it is one for key; its stored_ms is
 * set on the clock of now_ms from the value's unix time. */
gh_cache_entry *gh_cache_decode(const char *p, size_t len, gh_str key, uint64_t now_ms, int64_t unix_now_ms);

/* GET the entry for key: cb(ctx, entry or NULL) later (any Redis error or
 * a missing key is NULL: a MISS), unless it returns false (not sent: a
 * MISS now) or the wait is cancelled through *h. */
typedef void (*gh_cache_redis_cb)(void *ctx, gh_cache_entry *e);
typedef struct gh_cache_redis_get {
    gh_cache_redis_cb cb;
    void *ctx;
    gh_str key, route, path;      /* route and path name the Redis key */
    uint64_t now_ms;
    gh_redis_handle h;
} gh_cache_redis_get;
bool gh_cache_redis_lookup(gh_redis *r, gh_cache_redis_get *g);
/* SET it with its lifetime, fire and forget (a failure only loses the entry). */
void gh_cache_redis_store(gh_redis *r, const gh_cache_entry *e, uint64_t lifetime_ms);

/* The longest Redis key name. */
#define GH_CACHE_REDIS_KEY 80

/* Delete the Redis entries of a route (path empty: all of them): SCAN of
 * the route's slot MATCHing its prefix, an UNLINK per batch found, until
 * the scan ends; then cb(ctx, GH_REDIS_OK or the failure, how many were
 * deleted) once, unless cancelled. *p stays in place until then. */
typedef struct gh_cache_redis_purge {
    void (*cb)(void *ctx, int status, uint64_t deleted);
    void *ctx;
    gh_redis *r;
    char pattern[GH_CACHE_REDIS_KEY];
    size_t plen;
    char cursor[24];
    uint64_t deleted;
    gh_redis_handle h;
} gh_cache_redis_purge;
void gh_cache_redis_purge_start(gh_redis *r, gh_cache_redis_purge *p, gh_str route, gh_str path);
/* The caller left: cb will not run. */
void gh_cache_redis_purge_cancel(gh_cache_redis_purge *p);

#endif
