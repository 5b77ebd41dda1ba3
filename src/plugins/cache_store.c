/* cache_store.c — see cache_store.h. One mutex per store: its critical
 * sections are a hash probe plus a list move (never I/O, never a body
 * copy); per-shard locks would buy little at two workers per core and
 * would make the LRU order per shard instead of exact. */
#include "plugins/cache_store.h"
#include <pthread.h>
#include <sys/random.h>
#include <uv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/siphash.h"
#include "plugins/cache_policy.h"
#include "plugins/cache_store_int.h"

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static gh_cache_store *registry;

/* The buckets' hash is keyed with a secret of this process: request
 * paths and queries cannot be chosen to pile up in one chain. */
static uint8_t hash_key[16];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
    if (getrandom(hash_key, sizeof(hash_key), 0) != (ssize_t)sizeof(hash_key)) {
        uint64_t t = uv_hrtime() ^ (uint64_t)(uintptr_t)&hash_key;   /* no entropy: better than none */
        memcpy(hash_key, &t, sizeof(t));
    }
}

uint64_t gh_cache_hash(gh_str key)
{
    pthread_once(&hash_once, hash_key_init);
    uint8_t out[16];
    gh_siphash128(hash_key, key.p, key.len, out);
    uint64_t h;
    memcpy(&h, out, 8);
    return h;
}

gh_cache_store *gh_cache_store_get(uint64_t state_key, uint64_t cap)
{
    pthread_mutex_lock(&registry_mu);
    gh_cache_store *s = registry;
    while (s && s->state_key != state_key)
        s = s->next;
    if (!s && (s = calloc(1, sizeof(*s)))) {
        pthread_mutex_init(&s->mu, NULL);
        s->cap = cap;
        s->state_key = state_key;
        s->next = registry;
        registry = s;
    }
    if (s)
        s->users++;
    pthread_mutex_unlock(&registry_mu);
    return s;
}

static void lru_unlink(gh_cache_store *s, gh_cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->mru = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->lru = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(gh_cache_store *s, gh_cache_entry *e)
{
    e->next = s->mru;
    e->prev = NULL;
    if (s->mru)
        s->mru->prev = e;
    s->mru = e;
    if (!s->lru)
        s->lru = e;
}

/* Unlink e from the bucket and the LRU (lock held); the caller unrefs. */
static void drop(gh_cache_store *s, gh_cache_entry *e)
{
    gh_cache_entry **pp = &s->buckets[e->hash % NBUCKETS];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(s, e);
    s->bytes -= e->cost;
}

void gh_cache_store_put(gh_cache_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&registry_mu);
    bool last = --s->users == 0;
    if (last) {
        gh_cache_store **pp = &registry;
        while (*pp != s)
            pp = &(*pp)->next;
        *pp = s->next;
    }
    pthread_mutex_unlock(&registry_mu);
    if (!last)
        return;
    while (s->lru) {
        gh_cache_entry *e = s->lru;
        drop(s, e);
        gh_cache_entry_unref(e);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

gh_cache_entry *gh_cache_entry_new(gh_str key, gh_str route, gh_str path, int status, const gh_header *h,
                                   size_t n, char *body, size_t body_len)
{
    size_t text = key.len + route.len + path.len;
    for (size_t i = 0; i < n; i++)
        text += h[i].name_len + h[i].value_len;
    gh_cache_entry *e = malloc(sizeof(*e) + n * sizeof(gh_header) + text);
    if (!e) {
        free(body);
        return NULL;
    }
    memset(e, 0, sizeof(*e));
    e->hdrs = (gh_header *)(e + 1);
    char *o = (char *)(e->hdrs + n);
#define COPY(dst, src)                                                                                              \
    do {                                                                                                            \
        if ((src).len)                                                                                              \
            memcpy(o, (src).p, (src).len);                                                                          \
        (dst) = (gh_str){ o, (src).len };                                                                           \
        o += (src).len;                                                                                             \
    } while (0)
    COPY(e->key, key);
    COPY(e->route, route);
    COPY(e->path, path);
#undef COPY
    for (size_t i = 0; i < n; i++) {
        memcpy(o, h[i].name, h[i].name_len);
        memcpy(o + h[i].name_len, h[i].value, h[i].value_len);
        e->hdrs[i] = (gh_header){ o, o + h[i].name_len, h[i].name_len, h[i].value_len };
        o += h[i].name_len + h[i].value_len;
    }
    e->nhdrs = n;
    for (size_t i = 0; i < n; i++) {   /* the validators conditional requests are checked against */
        const gh_header *v = &e->hdrs[i];
        if (v->name_len == 4 && strncasecmp(v->name, "etag", 4) == 0)
            e->etag = (gh_str){ v->value, v->value_len };
        else if (v->name_len == 13 && strncasecmp(v->name, "last-modified", 13) == 0)
            gh_cache_http_date(v->value, v->value_len, &e->last_modified);
    }
    e->status = status;
    e->body = body;
    e->body_len = body_len;
    e->cost = sizeof(*e) + n * sizeof(gh_header) + text + body_len;
    atomic_init(&e->refs, 1);
    return e;
}

void gh_cache_entry_unref(gh_cache_entry *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
        free(e->body);
        free(e);
    }
}

gh_cache_entry *gh_cache_find_locked(gh_cache_store *s, uint64_t hash, gh_str key, uint64_t now_ms,
                                     gh_cache_entry **stale, bool *pass)
{
    for (gh_cache_entry *e = s->buckets[hash % NBUCKETS]; e; e = e->hnext) {
        if (e->hash != hash || !gh_str_eq(e->key, key))
            continue;
        if (e->expires_ms <= now_ms) {
            drop(s, e);   /* expired: a MISS, and the fill replaces it */
            *stale = e;
            return NULL;
        }
        if (e->pass) {
            *pass = true;
            return NULL;
        }
        lru_unlink(s, e);
        lru_front(s, e);
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        return e;
    }
    return NULL;
}

gh_cache_entry *gh_cache_lookup(gh_cache_store *s, uint64_t hash, gh_str key, uint64_t now_ms)
{
    gh_cache_entry *stale = NULL;
    bool pass = false;
    pthread_mutex_lock(&s->mu);
    gh_cache_entry *hit = gh_cache_find_locked(s, hash, key, now_ms, &stale, &pass);
    pthread_mutex_unlock(&s->mu);
    gh_cache_entry_unref(stale);
    return hit;
}

gh_cache_entry *gh_cache_insert_locked(gh_cache_store *s, gh_cache_entry *e)
{
    gh_cache_entry *gone = NULL;   /* dropped ones, chained by hnext, freed outside the lock */
    e->hash = gh_cache_hash(e->key);
    for (gh_cache_entry *o = s->buckets[e->hash % NBUCKETS]; o; o = o->hnext) {
        if (o->hash == e->hash && gh_str_eq(o->key, e->key)) {
            drop(s, o);
            o->hnext = gone;
            gone = o;
            break;
        }
    }
    e->hnext = s->buckets[e->hash % NBUCKETS];
    s->buckets[e->hash % NBUCKETS] = e;
    lru_front(s, e);
    s->bytes += e->cost;
    while (s->bytes > s->cap && s->lru != e) {
        gh_cache_entry *v = s->lru;
        drop(s, v);
        v->hnext = gone;
        gone = v;
    }
    return gone;
}

void gh_cache_unref_chain(gh_cache_entry *gone)
{
    while (gone) {
        gh_cache_entry *next = gone->hnext;
        gh_cache_entry_unref(gone);
        gone = next;
    }
}

void gh_cache_insert(gh_cache_store *s, gh_cache_entry *e)
{
    pthread_mutex_lock(&s->mu);
    gh_cache_entry *gone = gh_cache_insert_locked(s, e);
    pthread_mutex_unlock(&s->mu);
    gh_cache_unref_chain(gone);
}

size_t gh_cache_purge(gh_str route, gh_str path)
{
    size_t n = 0;
    pthread_mutex_lock(&registry_mu);
    for (gh_cache_store *s = registry; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        gh_cache_entry *e = s->mru;
        while (e) {
            gh_cache_entry *next = e->next;
            if (gh_str_eq(e->route, route) && (!path.len || gh_str_eq(e->path, path))) {
                drop(s, e);
                gh_cache_entry_unref(e);   /* readers keep theirs: this is never the last but for idle entries */
                n++;
            }
            e = next;
        }
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&registry_mu);
    return n;
}
