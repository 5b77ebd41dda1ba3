/* cache_redis.h — `store: redis`: entries shared by every gateway of a
 * fleet (SPEC §7.3), through the worker's asynchronous Redis client
 * (cluster/redis.h; Redis Cluster too). An entry is one string value with
 * a TTL (PX, its lifetime): "gh:c:{HASH}" (128 bits) holds the full key (checked on
 * read: a hash collision is a MISS), the status, the headers, the body and
 * when it was stored (wall clock, so Age counts across gateways). */
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
    gh_str key;
    uint64_t now_ms;
    gh_redis_handle h;
} gh_cache_redis_get;
bool gh_cache_redis_lookup(gh_redis *r, gh_cache_redis_get *g);
/* SET it with its lifetime, fire and forget (a failure only loses the entry). */
void gh_cache_redis_store(gh_redis *r, const gh_cache_entry *e, uint64_t lifetime_ms);

#endif
