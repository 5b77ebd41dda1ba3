/* ratelimit_local.c — the local rate-limit store: ONE table per process,
 * shared by every worker, so a limit counts exactly across workers.
 *
 * A fixed array of GH_RL_LOCAL_SLOTS slots (64 bytes each: 16 MiB, zeroed
 * pages the kernel maps as keys arrive), open addressing over a 64-bit key
 * hash (the key text mixed with its configuration's state_key, so each
 * rate_limit counts apart and an unchanged one keeps its counts across
 * reloads). Every counter is one atomic word updated by compare-and-swap
 * (plugins/ratelimit_algo.h): no lock.
 *
 * Memory is bounded: a key may live in GH_RL_LOCAL_PROBE slots from its
 * hash. A slot whose key has been idle longer than its policy's idle_ms is
 * expired and the next new key there takes it over. When all of a new
 * key's slots hold live keys, the request is let through uncounted and a
 * warning is logged (at most once a minute). */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "core/log.h"
#include "http/exchange.h"
#include "plugins/ratelimit_store.h"

#define TAKING_OVER 1ULL          /* a key hash no real key has (see key_hash) */

typedef struct slot {
    _Atomic uint64_t key;         /* 0 = never used */
    _Atomic uint64_t origin;      /* ms of the key's first request; 0 = not yet */
    _Atomic uint64_t expires;     /* ms after which the slot may be taken over */
    _Atomic uint64_t w[GH_RL_MAX_LIMITS];
    uint64_t pad;
} slot;

_Static_assert(sizeof(slot) == 64, "a slot is one cache line");

static slot *table;
static _Atomic uint64_t full_logged;   /* ms of the last "table full" warning */

static slot *get_table(void)
{
    /* made on the main thread when a snapshot with a local limit compiles
     * (gh_rl_local_store), before any worker can use it; anonymous memory
     * is zero and takes no RAM until a key lands on its page */
    if (!table) {
        void *p = mmap(NULL, gh_rl_local_bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        table = p == MAP_FAILED ? NULL : p;
    }
    return table;
}

static bool expired(slot *s, uint64_t now)
{
    uint64_t e = atomic_load_explicit(&s->expires, memory_order_relaxed);
    return e && now > e;
}

/* The slot of key h, found or claimed; NULL when the key's slots are all live. */
static slot *find(uint64_t h, uint64_t now)
{
    slot *t = table;
    for (;;) {
        slot *stale = NULL;
        uint64_t stale_key = 0;
        for (uint32_t i = 0; i < GH_RL_LOCAL_PROBE; i++) {
            slot *s = &t[(h + i) & (GH_RL_LOCAL_SLOTS - 1)];
            uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
            if (k == h)
                return s;
            if (k == TAKING_OVER) {   /* another worker is resetting it, maybe for this key */
                sched_yield();
                i--;
                continue;
            }
            if (k == 0) {
                if (stale)
                    break;   /* take over the stale slot before it */
                uint64_t zero = 0;
                if (atomic_compare_exchange_strong(&s->key, &zero, h) || zero == h)
                    return s;   /* a fresh slot: its words are zero, its origin set by the first take */
                i--;   /* someone else claimed it: look at it again */
                continue;
            }
            if (!stale && expired(s, now)) {
                stale = s;
                stale_key = k;
            }
        }
        if (!stale)
            return NULL;
        /* take over: announce, reset, then publish (waiters see TAKING_OVER) */
        if (!atomic_compare_exchange_strong(&stale->key, &stale_key, TAKING_OVER))
            continue;   /* it changed under us: look again */
        for (int k = 0; k < GH_RL_MAX_LIMITS; k++)
            atomic_store_explicit(&stale->w[k], 0, memory_order_relaxed);
        atomic_store_explicit(&stale->origin, now, memory_order_relaxed);
        atomic_store_explicit(&stale->expires, 0, memory_order_relaxed);
        atomic_store_explicit(&stale->key, h, memory_order_release);
        return stale;
    }
}

typedef uint64_t (*take_fn)(uint64_t word, uint64_t t, gh_rl_limit l, gh_rl_step *out);
typedef uint64_t (*refund_fn)(uint64_t word, uint64_t t, gh_rl_limit l);

static int local_take(gh_rl_store *st, const gh_rl_policy *p, gh_str key, uint64_t h, uint64_t now,
                      gh_rl_verdict *v, gh_rl_wait *w)
{
    *v = (gh_rl_verdict){ .allowed = true, .remaining = p->limits[0].limit };
    slot *s = find(h, now);
    if (!s) {
        uint64_t last = atomic_load_explicit(&full_logged, memory_order_relaxed);
        if ((last == 0 || now - last >= 60000) &&
            atomic_compare_exchange_strong(&full_logged, &last, now))
            gh_log_warn("rate_limit: the local table is full (%u live keys near a new one); requests of new keys "
                        "pass uncounted until keys expire", GH_RL_LOCAL_PROBE);
        return GH_OK;
    }
    v->counted = true;
    uint64_t origin = atomic_load_explicit(&s->origin, memory_order_relaxed);
    if (!origin) {
        uint64_t zero = 0;
        origin = atomic_compare_exchange_strong(&s->origin, &zero, now) ? now : zero;
    }
    uint64_t t = now > origin ? now - origin : 0;
    take_fn take = p->algorithm == GH_RL_TOKEN_BUCKET ? gh_rl_bucket_take : gh_rl_sliding_take;
    refund_fn refund = p->algorithm == GH_RL_TOKEN_BUCKET ? gh_rl_bucket_refund : gh_rl_sliding_refund;
    atomic_store_explicit(&s->expires, now + p->idle_ms, memory_order_relaxed);
    size_t taken = 0;
    for (size_t i = 0; i < p->n; i++) {
        gh_rl_step step;
        uint64_t old = atomic_load_explicit(&s->w[i], memory_order_relaxed), next;
        do
            next = take(old, t, p->limits[i], &step);
        while (next != old && !atomic_compare_exchange_weak(&s->w[i], &old, next));
        if (!step.allowed) {
            v->allowed = false;
            v->which = i;
            v->remaining = 0;
            v->reset_ms = step.reset_ms;
            /* Retry-After names the longest wait: look (without counting) at the other limits */
            for (size_t j = i + 1; j < p->n; j++) {
                take(atomic_load_explicit(&s->w[j], memory_order_relaxed), t, p->limits[j], &step);
                if (!step.allowed && step.reset_ms > v->reset_ms) {
                    v->which = j;
                    v->reset_ms = step.reset_ms;
                }
            }
            break;
        }
        taken++;
        if (i == 0 || step.remaining < v->remaining ||
            (step.remaining == v->remaining && step.reset_ms > v->reset_ms)) {
            v->which = i;
            v->remaining = step.remaining;
            v->reset_ms = step.reset_ms;
        }
    }
    for (size_t i = 0; !v->allowed && i < taken; i++) {   /* refused: give back what the others took */
        uint64_t old = atomic_load_explicit(&s->w[i], memory_order_relaxed), next;
        do
            next = refund(old, t, p->limits[i]);
        while (next != old && !atomic_compare_exchange_weak(&s->w[i], &old, next));
    }
    return GH_OK;
}

static void local_cancel(gh_rl_store *s, gh_rl_wait *w) {}

static gh_rl_store local = { .take = local_take, .cancel = local_cancel };

gh_rl_store *gh_rl_local_store(void)
{
    return get_table() ? &local : NULL;
}

size_t gh_rl_local_bytes(void) { return (size_t)GH_RL_LOCAL_SLOTS * sizeof(slot); }

size_t gh_rl_local_keys(uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; table && i < GH_RL_LOCAL_SLOTS; i++) {
        uint64_t k = atomic_load(&table[i].key);
        n += k > TAKING_OVER && !expired(&table[i], now);
    }
    return n;
}
