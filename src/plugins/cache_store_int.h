/* cache_store_int.h — the store's insides, shared by cache_store.c (entries)
 * and cache_flight.c (collapsed fills): both run under the store's lock. */
#ifndef GH_PLUGINS_CACHE_STORE_INT_H
#define GH_PLUGINS_CACHE_STORE_INT_H
#include <pthread.h>
#include "plugins/cache_flight.h"
#include "plugins/cache_store.h"

#define NBUCKETS 4096u

struct gh_cache_store {
    pthread_mutex_t mu;
    gh_cache_entry *buckets[NBUCKETS];
    gh_cache_entry *mru, *lru;      /* most and least recently used */
    uint64_t bytes, cap;
    gh_cache_flight *flights;       /* fills under way that others wait for */
    uint64_t state_key;
    int users;                      /* configurations holding it (registry lock) */
    gh_cache_store *next;           /* the registry */
};

/* Under s->mu: the fresh entry for key with a reference taken, or NULL
 * (an expired one is unlinked into *stale for the caller to unref; a pass
 * marker sets *pass). */
gh_cache_entry *gh_cache_find_locked(gh_cache_store *s, uint64_t hash, gh_str key, uint64_t now_ms,
                                     gh_cache_entry **stale, bool *pass);
/* Under s->mu: insert e; returns the entries it dropped, chained by hnext,
 * to be released with gh_cache_unref_chain once the lock is let go. */
gh_cache_entry *gh_cache_insert_locked(gh_cache_store *s, gh_cache_entry *e);
void gh_cache_unref_chain(gh_cache_entry *gone);

#endif
