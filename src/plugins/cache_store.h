/* cache_store.h — the in-memory response store (SPEC §7.3), one per cache
 * configuration per process, shared by the workers.
 *
 * Entries are immutable once inserted and reference-counted: a lookup
 * takes a reference under the store's lock (a hash probe and an LRU move,
 * nothing else), and the HIT is served from the entry's own memory with
 * the lock released; the last reference frees it, so eviction and purge
 * never wait for readers. The store is bounded by bytes (LRU) and lives
 * across reloads while a configuration with the same state key uses it. */
#ifndef GH_PLUGINS_CACHE_STORE_H
#define GH_PLUGINS_CACHE_STORE_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "core/str.h"
#include "http/h1_parse.h"

typedef struct gh_cache_entry {
    atomic_uint refs;
    uint64_t hash;
    gh_str key, route, path;        /* in the entry's allocation */
    int status;
    gh_header *hdrs;                /* the stored end-to-end headers */
    size_t nhdrs;
    gh_str etag;                    /* its ETag value, or empty */
    time_t last_modified;           /* 0 = none */
    char *body;                     /* malloc'd, owned */
    size_t body_len;
    uint64_t stored_ms, expires_ms; /* the loop clock (gh_now_ms) */
    uint32_t age0;                  /* the upstream's Age when stored */
    size_t cost;                    /* bytes counted against `size` */
    bool pass;                      /* a marker, not an answer: a collapsed fill of this key was over
                                     * max_entry, so until it expires its misses go upstream on their
                                     * own (no flight, no second cut fill) */
    struct gh_cache_entry *hnext, *prev, *next;   /* bucket chain; LRU (store's lock) */
} gh_cache_entry;

typedef struct gh_cache_store gh_cache_store;

/* The store for state_key (made with capacity cap bytes, else shared). */
gh_cache_store *gh_cache_store_get(uint64_t state_key, uint64_t cap);
void gh_cache_store_put(gh_cache_store *s);

/* A new entry (refs 1) with copies of key, route, path and headers (its
 * ETag and Last-Modified read from them); takes body (malloc'd). NULL when
 * out of memory (body freed). */
gh_cache_entry *gh_cache_entry_new(gh_str key, gh_str route, gh_str path, int status, const gh_header *h,
                                   size_t n, char *body, size_t body_len);
void gh_cache_entry_unref(gh_cache_entry *e);

/* A fresh entry for key (a reference the caller unrefs), or NULL; an
 * expired one found is dropped. */
gh_cache_entry *gh_cache_lookup(gh_cache_store *s, uint64_t hash, gh_str key, uint64_t now_ms);
/* Keep e (replacing an entry with its key), evicting the least recently
 * used until the store fits. Takes the caller's reference. */
void gh_cache_insert(gh_cache_store *s, gh_cache_entry *e);
/* Drop the entries of a route (path empty: all of them) in every store;
 * returns how many. */
size_t gh_cache_purge(gh_str route, gh_str path);

/* The key's bucket hash (keyed per process: not for sharing across gateways). */
uint64_t gh_cache_hash(gh_str key);

#endif
