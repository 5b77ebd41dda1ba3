/* cache_flight.c — see cache_flight.h. */
#include <stdlib.h>
#include <string.h>
#include "plugins/cache_store_int.h"

struct gh_cache_flight {
    gh_cache_flight *next;
    uint64_t hash;
    gh_str key;                     /* malloc'd with the flight */
    gh_cache_waiter *waiters;
};

static void join_locked(gh_cache_flight *f, gh_cache_waiter *w)
{
    w->flight = f;
    w->entry = NULL;
    w->next = f->waiters;
    f->waiters = w;
}

int gh_cache_decide(gh_cache_store *s, uint64_t hash, gh_str key, uint64_t now_ms, gh_cache_waiter *w,
                    gh_cache_entry **hit, gh_cache_flight **lead)
{
    gh_cache_entry *stale = NULL;
    bool pass = false;
    int r = GH_CACHE_MISS;
    pthread_mutex_lock(&s->mu);
    *hit = gh_cache_find_locked(s, hash, key, now_ms, &stale, &pass);
    if (*hit) {
        r = GH_CACHE_HIT;
    } else if (w && !pass) {
        gh_cache_flight *f = s->flights;
        while (f && !(f->hash == hash && gh_str_eq(f->key, key)))
            f = f->next;
        if (f) {
            join_locked(f, w);
            r = GH_CACHE_JOINED;
        } else if ((f = malloc(sizeof(*f) + key.len))) {
            memcpy(f + 1, key.p, key.len);
            *f = (gh_cache_flight){ .next = s->flights, .hash = hash, .key = { (const char *)(f + 1), key.len } };
            s->flights = f;
            *lead = f;
            r = GH_CACHE_LEAD;
        }
    }
    pthread_mutex_unlock(&s->mu);
    gh_cache_entry_unref(stale);
    return r;
}

void gh_cache_flight_join(gh_cache_store *s, gh_cache_flight *f, gh_cache_waiter *w)
{
    pthread_mutex_lock(&s->mu);
    join_locked(f, w);
    pthread_mutex_unlock(&s->mu);
}

void gh_cache_flight_done(gh_cache_store *s, gh_cache_flight *f, gh_cache_entry *e, bool keep, bool retry)
{
    gh_cache_entry *gone = NULL;
    pthread_mutex_lock(&s->mu);
    gh_cache_flight **pp = &s->flights;
    while (*pp != f)
        pp = &(*pp)->next;
    *pp = f->next;
    if (e && keep) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);   /* the store's */
        gone = gh_cache_insert_locked(s, e);
    }
    gh_cache_entry *share = e && !e->pass ? e : NULL;   /* a pass marker is kept, not served */
    for (gh_cache_waiter *w = f->waiters, *next; w; w = next) {
        next = w->next;
        if (share)
            atomic_fetch_add_explicit(&share->refs, 1, memory_order_relaxed);
        w->entry = share;
        w->retry = retry;
        w->flight = NULL;
        w->next = w->wake->ready;
        w->wake->ready = w;
        /* under the lock: a waiter that is cancelled cannot free its wake before this */
        uv_async_send(&w->wake->async);
    }
    pthread_mutex_unlock(&s->mu);
    gh_cache_unref_chain(gone);
    gh_cache_entry_unref(e);   /* the caller's */
    free(f);
}

static bool unlink_from(gh_cache_waiter **pp, gh_cache_waiter *w)
{
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return true;
        }
    }
    return false;
}

void gh_cache_waiter_cancel(gh_cache_store *s, gh_cache_waiter *w)
{
    pthread_mutex_lock(&s->mu);
    if (w->flight)
        unlink_from(&w->flight->waiters, w);
    else
        unlink_from(&w->wake->ready, w);
    w->flight = NULL;
    pthread_mutex_unlock(&s->mu);
    gh_cache_entry_unref(w->entry);
    w->entry = NULL;
}

static void on_wake(uv_async_t *a)
{
    gh_cache_wake *k = a->data;
    pthread_mutex_lock(&k->store->mu);
    gh_cache_waiter *list = k->ready;
    k->ready = NULL;
    pthread_mutex_unlock(&k->store->mu);
    while (list) {
        gh_cache_waiter *w = list;
        list = w->next;
        w->next = NULL;
        k->resume(w);
    }
}

gh_cache_wake *gh_cache_wake_new(gh_cache_store *s, uv_loop_t *loop, void (*resume)(gh_cache_waiter *w))
{
    gh_cache_wake *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    if (uv_async_init(loop, &k->async, on_wake) != 0) {
        free(k);
        return NULL;
    }
    k->async.data = k;
    k->store = s;
    k->resume = resume;
    return k;
}

static void wake_closed(uv_handle_t *h) { free(h->data); }

void gh_cache_wake_free(gh_cache_wake *k)
{
    uv_close((uv_handle_t *)&k->async, wake_closed);
}
