/* cache_flight.h — collapsed fills (SPEC §7.3 `collapse`): concurrent
 * identical misses make one upstream request, the fill, started by the
 * first (the leader): a detached sub-request the leader waits for like the
 * others (gh_cache_flight_join), or, where a route cannot detach, the
 * leader's own teed response. The waiters get its answer, whatever it is
 * (an error too), and are woken on their own worker's loop (a uv_async per
 * worker, gh_cache_wake). Everything is under the store's lock; the
 * waiters live in their exchanges' arenas and leave the lists when their
 * client goes, which never stops the fill. */
#ifndef GH_PLUGINS_CACHE_FLIGHT_H
#define GH_PLUGINS_CACHE_FLIGHT_H
#include <uv.h>
#include "plugins/cache_store.h"

typedef struct gh_cache_flight gh_cache_flight;
typedef struct gh_cache_waiter gh_cache_waiter;

/* One per worker and cache configuration (the plugin's context). */
typedef struct gh_cache_wake {
    uv_async_t async;
    gh_cache_store *store;
    gh_cache_waiter *ready;         /* answered waiters of this worker (store lock) */
    void (*resume)(gh_cache_waiter *w);
} gh_cache_wake;

struct gh_cache_waiter {
    gh_cache_waiter *next;
    gh_cache_flight *flight;        /* waiting on it, or NULL once answered */
    gh_cache_wake *wake;
    gh_cache_entry *entry;          /* the answer (a reference), or NULL: the fill failed */
    bool retry;                     /* (no answer) the leader left: collapse again, else go alone */
    void *data;                     /* the plugin's: its run */
};

enum { GH_CACHE_HIT, GH_CACHE_LEAD, GH_CACHE_JOINED, GH_CACHE_MISS };

/* One decision under the lock: a fresh entry (*hit, a reference), or, when
 * w is given, join the fill under way for key (w waits) or lead a new one
 * (*lead); without w a plain MISS. */
int gh_cache_decide(gh_cache_store *s, uint64_t hash, gh_str key, uint64_t now_ms, gh_cache_waiter *w,
                    gh_cache_entry **hit, gh_cache_flight **lead);
/* The leader waits for its own fill like the others (a detached fill,
 * answered by gh_cache_flight_done). */
void gh_cache_flight_join(gh_cache_store *s, gh_cache_flight *f, gh_cache_waiter *w);
/* The leader's fill ended: e (a reference the call takes; NULL or a pass
 * marker when there is nothing to share, then retry tells the waiters
 * whether to collapse again) goes to every waiter and, when keep, into the store, in one step:
 * a request after this sees the entry, or no flight. */
void gh_cache_flight_done(gh_cache_store *s, gh_cache_flight *f, gh_cache_entry *e, bool keep, bool retry);
/* The waiting client left: w leaves the flight or its worker's ready list. */
void gh_cache_waiter_cancel(gh_cache_store *s, gh_cache_waiter *w);

/* The per-worker wake on loop (resume called there for each answered
 * waiter); free closes it on its loop. */
gh_cache_wake *gh_cache_wake_new(gh_cache_store *s, uv_loop_t *loop, void (*resume)(gh_cache_waiter *w));
void gh_cache_wake_free(gh_cache_wake *k);

#endif
