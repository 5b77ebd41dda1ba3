#include "proxy/upstate.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"

#define RLX memory_order_relaxed

/* acquire/release only: snapshots are built on the main thread but may be
 * freed by the worker that unpins them last */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static gh_target_state *targets;
static gh_circuit *circuits;

gh_target_state *gh_target_state_acquire(const char *address)
{
    pthread_mutex_lock(&lock);
    gh_target_state *t = targets;
    while (t && strcmp(t->key, address) != 0)
        t = t->next;
    if (!t && (t = calloc(1, sizeof(*t))) && !(t->key = strdup(address))) {
        free(t);
        t = NULL;
    }
    if (t && t->refs == 0) {
        atomic_init(&t->healthy, true);
        t->next = targets;
        targets = t;
    }
    if (t)
        t->refs++;
    pthread_mutex_unlock(&lock);
    return t;
}

void gh_target_state_release(gh_target_state *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&lock);
    if (--t->refs == 0) {
        gh_target_state **pp = &targets;
        while (*pp != t)
            pp = &(*pp)->next;
        *pp = t->next;
        free(t->key);
        free(t);
    }
    pthread_mutex_unlock(&lock);
}

/* A circuit belongs to an upstream as named and as made of its targets. */
static char *circuit_key(const gh_upstream_cfg *u)
{
    size_t n = u->name.len + 1;
    for (size_t i = 0; i < u->ntargets; i++)
        n += u->targets[i].address.len + 1;
    char *k = malloc(n), *p = k;
    if (!k)
        return NULL;
    memcpy(p, u->name.p, u->name.len);
    p += u->name.len;
    for (size_t i = 0; i < u->ntargets; i++) {
        *p++ = '\n';
        memcpy(p, u->targets[i].address.p, u->targets[i].address.len);
        p += u->targets[i].address.len;
    }
    *p = 0;
    return k;
}

gh_circuit *gh_circuit_acquire(const gh_upstream_cfg *u)
{
    char *key = circuit_key(u);
    if (!key)
        return NULL;
    pthread_mutex_lock(&lock);
    gh_circuit *c = circuits;
    while (c && strcmp(c->key, key) != 0)
        c = c->next;
    if (!c && (c = calloc(1, sizeof(*c)))) {
        c->key = key;
        key = NULL;
        c->next = circuits;
        circuits = c;
    }
    if (c)
        c->refs++;
    pthread_mutex_unlock(&lock);
    free(key);
    return c;
}

void gh_circuit_release(gh_circuit *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&lock);
    if (--c->refs == 0) {
        gh_circuit **pp = &circuits;
        while (*pp != c)
            pp = &(*pp)->next;
        *pp = c->next;
        free(c->key);
        free(c);
    }
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------ targets -- */

bool gh_target_up(gh_target_state *t, const gh_upstream_cfg *u, uint64_t now)
{
    if (!atomic_load_explicit(&t->healthy, RLX))
        return false;
    uint_fast64_t until = atomic_load_explicit(&t->ejected_until, RLX);
    if (until == 0)
        return true;
    if (until > now)
        return false;
    /* the ejection ran out: whoever clears it says so, once */
    if (atomic_compare_exchange_strong(&t->ejected_until, &until, 0))
        gh_log_info("upstream %s target %s: back in rotation after its ejection", u->name.p, t->key);
    return true;
}

void gh_target_report(gh_target_state *t, const gh_upstream_cfg *u, bool failed, uint64_t now)
{
    if (!failed || !u->passive.failures)
        return;
    uint_fast64_t ws = atomic_load_explicit(&t->window_start, RLX);
    if (now - ws >= u->passive.within_ms && atomic_compare_exchange_strong(&t->window_start, &ws, now))
        atomic_store_explicit(&t->fails, 0, RLX);
    if (atomic_fetch_add_explicit(&t->fails, 1, RLX) + 1 < u->passive.failures)
        return;
    uint_fast64_t until = atomic_load_explicit(&t->ejected_until, RLX);
    if (until > now || !atomic_compare_exchange_strong(&t->ejected_until, &until, now + u->passive.eject_for_ms))
        return;   /* already out (another worker ejected it) */
    atomic_fetch_add_explicit(&t->ejections, 1, RLX);   /* rare: a shared atomic is fine */
    atomic_store_explicit(&t->fails, 0, RLX);
    gh_log_warn("upstream %s target %s: down, ejected for %llums after %u failures within %llums",
                u->name.p, t->key, (unsigned long long)u->passive.eject_for_ms, u->passive.failures,
                (unsigned long long)u->passive.within_ms);
}

bool gh_target_set_healthy(gh_target_state *t, bool healthy)
{
    bool was = !healthy;
    return atomic_compare_exchange_strong(&t->healthy, &was, healthy);
}

void gh_target_set_addr(gh_target_state *t, const struct sockaddr *sa, socklen_t len)
{
    uint64_t w[4] = { 0 };
    if (len > sizeof(w))
        return;
    memcpy(w, sa, len);
    unsigned seq = atomic_load_explicit(&t->addr_seq, RLX);
    atomic_store_explicit(&t->addr_seq, seq + 1, RLX);   /* odd: being written */
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < 4; i++)
        atomic_store_explicit(&t->addr_words[i], w[i], RLX);
    atomic_store_explicit(&t->addr_len, (unsigned)len, RLX);
    atomic_store_explicit(&t->addr_seq, seq + 2, memory_order_release);
}

bool gh_target_addr(gh_target_state *t, struct sockaddr_storage *out, socklen_t *len)
{
    unsigned seq = atomic_load_explicit(&t->addr_seq, memory_order_acquire);
    if (seq == 0 || (seq & 1))
        return false;
    uint64_t w[4];
    for (int i = 0; i < 4; i++)
        w[i] = atomic_load_explicit(&t->addr_words[i], RLX);
    unsigned n = atomic_load_explicit(&t->addr_len, RLX);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&t->addr_seq, RLX) != seq)
        return false;
    memcpy(out, w, sizeof(w));
    *len = (socklen_t)n;
    return true;
}

/* ----------------------------------------------------------- circuits -- */

static void trip(gh_circuit *c, const gh_upstream_cfg *u, int from, uint64_t now, const char *why)
{
    atomic_store_explicit(&c->opened_at, now, RLX);
    int st = from;
    if (atomic_compare_exchange_strong(&c->state, &st, GH_CIRCUIT_OPEN))
        gh_log_warn("upstream %s: circuit open for %llums (%s)", u->name.p,
                    (unsigned long long)u->circuit.open_for_ms, why);
}

int gh_circuit_admit(gh_circuit *c, const gh_upstream_cfg *u, uint64_t now)
{
    if (u->circuit.max_pending && atomic_load_explicit(&c->pending, RLX) >= u->circuit.max_pending)
        return GH_ADMIT_NO;
    int st = atomic_load_explicit(&c->state, memory_order_acquire);
    if (st == GH_CIRCUIT_OPEN) {
        if (now - atomic_load_explicit(&c->opened_at, RLX) < u->circuit.open_for_ms)
            return GH_ADMIT_NO;
        if (atomic_compare_exchange_strong(&c->state, &st, GH_CIRCUIT_HALF_OPEN))
            gh_log_info("upstream %s: circuit half-open, probing", u->name.p);
        st = GH_CIRCUIT_HALF_OPEN;
    }
    if (st == GH_CIRCUIT_HALF_OPEN) {
        bool busy = false;
        if (!atomic_compare_exchange_strong(&c->probing, &busy, true))
            return GH_ADMIT_NO;   /* one probe at a time */
        atomic_fetch_add_explicit(&c->pending, 1, RLX);
        return GH_ADMIT_PROBE;
    }
    atomic_fetch_add_explicit(&c->pending, 1, RLX);
    return GH_ADMIT_YES;
}

void gh_circuit_report(gh_circuit *c, const gh_upstream_cfg *u, bool failed, bool probe, uint64_t now)
{
    if (probe) {
        if (failed) {
            trip(c, u, GH_CIRCUIT_HALF_OPEN, now, "the probe failed");
        } else {
            atomic_store_explicit(&c->requests, 0, RLX);
            atomic_store_explicit(&c->failures, 0, RLX);
            atomic_store_explicit(&c->window_start, now, RLX);
            int st = GH_CIRCUIT_HALF_OPEN;
            if (atomic_compare_exchange_strong(&c->state, &st, GH_CIRCUIT_CLOSED))
                gh_log_info("upstream %s: circuit closed (the probe succeeded)", u->name.p);
        }
        atomic_store_explicit(&c->probing, false, memory_order_release);
        return;
    }
    if (atomic_load_explicit(&c->state, RLX) != GH_CIRCUIT_CLOSED)
        return;   /* requests admitted before it opened: their outcomes are stale */
    uint_fast64_t ws = atomic_load_explicit(&c->window_start, RLX);
    if (now - ws >= u->circuit.window_ms && atomic_compare_exchange_strong(&c->window_start, &ws, now)) {
        atomic_store_explicit(&c->requests, 0, RLX);
        atomic_store_explicit(&c->failures, 0, RLX);
    }
    unsigned r = atomic_fetch_add_explicit(&c->requests, 1, RLX) + 1;
    if (!failed)
        return;
    unsigned f = atomic_fetch_add_explicit(&c->failures, 1, RLX) + 1;
    if (r >= u->circuit.min_requests && (double)f >= u->circuit.failure_ratio * (double)r)
        trip(c, u, GH_CIRCUIT_CLOSED, now, "failure ratio reached");
}

void gh_circuit_end(gh_circuit *c, bool probe)
{
    atomic_fetch_sub_explicit(&c->pending, 1, RLX);
    if (probe)
        atomic_store_explicit(&c->probing, false, memory_order_release);
}
