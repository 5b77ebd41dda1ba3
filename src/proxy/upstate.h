/* upstate.h — what the gateway knows about targets and upstreams beyond one
 * configuration: passive health (failures, ejection), active health (the
 * prober's verdict), requests in flight, and each upstream's circuit.
 *
 * Entries live in a process-wide registry keyed by target address ("host:port"
 * as written) and, for circuits, by upstream name + its target list. A
 * snapshot acquires its entries when it is built (main thread) and releases
 * them when it is freed; an entry goes when no snapshot holds it. So a reload
 * that keeps a target keeps its health and its upstream's circuit. Workers
 * read and write the fields with atomics only (no lock on the request path);
 * the registry's mutex is taken only by acquire/release.
 *
 * Times are milliseconds on the monotonic clock every worker loop's uv_now()
 * reads; functions take `now` so that tests can run them on a fake clock. */
#ifndef GH_PROXY_UPSTATE_H
#define GH_PROXY_UPSTATE_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config/config.h"

typedef struct gh_target_state {
    struct gh_target_state *next;   /* registry list */
    int refs;                       /* snapshots holding it (registry mutex) */
    char *key;                      /* "host:port" */
    atomic_bool healthy;            /* active checks' verdict; true until a prober says otherwise */
    atomic_uint_fast64_t ejected_until;   /* passive checks: no traffic before this (ms) */
    atomic_uint_fast64_t window_start;    /* passive checks: start of the failure window (ms) */
    atomic_uint fails;              /* failures in that window */
    atomic_uint_fast64_t ejections; /* times passive checks ejected it (metrics) */
    atomic_uint inflight;           /* requests in flight to it, all workers */
    /* resolve_every: the address its name resolved to last (proxy/resolve.h).
     * A seqlock of atomic words: the main thread writes, workers copy it
     * without waiting and never see half an address. 0 = never set. */
    atomic_uint addr_seq;
    _Atomic uint64_t addr_words[4];       /* a sockaddr_in or sockaddr_in6 */
    atomic_uint addr_len;
} gh_target_state;

enum gh_circuit_st { GH_CIRCUIT_CLOSED = 0, GH_CIRCUIT_OPEN, GH_CIRCUIT_HALF_OPEN };

typedef struct gh_circuit {
    struct gh_circuit *next;
    int refs;
    char *key;                      /* "name\ntarget\ntarget..." */
    atomic_int state;               /* enum gh_circuit_st */
    atomic_uint_fast64_t opened_at; /* ms */
    atomic_uint_fast64_t window_start;
    atomic_uint requests, failures; /* in the current window */
    atomic_bool probing;            /* half-open: a probe is in flight */
    atomic_uint pending;            /* requests in flight to the upstream */
} gh_circuit;

/* ---- registry (main thread builds; any thread may release) ---- */
gh_target_state *gh_target_state_acquire(const char *address);
void gh_target_state_release(gh_target_state *t);
gh_circuit *gh_circuit_acquire(const gh_upstream_cfg *u);
void gh_circuit_release(gh_circuit *c);

/* ---- targets ---- */
/* Takes traffic: not ejected by passive checks and not failed by active ones.
 * Logs "back up" once when an ejection ran out. */
bool gh_target_up(gh_target_state *t, const gh_upstream_cfg *u, uint64_t now);
/* An attempt to t ended: failed per SPEC §12.7 or not. Counts passive
 * failures and ejects (logging once) when u's limit is reached. */
void gh_target_report(gh_target_state *t, const gh_upstream_cfg *u, bool failed, uint64_t now);

/* For the active health checker (proxy/health.h, main thread, off the
 * request path): publish a target's verdict to every worker, which read it
 * at their next pick. true when it changed (the checker logs the change,
 * with its reason); setting the same value again is free. */
bool gh_target_set_healthy(gh_target_state *t, bool healthy);
static inline bool gh_target_healthy(gh_target_state *t)
{
    return atomic_load_explicit(&t->healthy, memory_order_relaxed);
}

/* resolve_every: publish the target's address (main thread; len <= 32).
 * gh_target_addr copies it into *out: false when none was published, or
 * one is being written right now (then use the configuration's: it is
 * never more than one lookup behind). */
void gh_target_set_addr(gh_target_state *t, const struct sockaddr *sa, socklen_t len);
bool gh_target_addr(gh_target_state *t, struct sockaddr_storage *out, socklen_t *len);

/* ---- circuits ---- */
enum gh_admit { GH_ADMIT_NO = 0, GH_ADMIT_YES, GH_ADMIT_PROBE };
/* May a request go to the upstream now? (per request) NO: open, or
 * max_pending requests in flight. PROBE: the single half-open probe, whose
 * first outcome decides. YES and PROBE count one pending request until
 * gh_circuit_end. */
int gh_circuit_admit(gh_circuit *c, const gh_upstream_cfg *u, uint64_t now);
/* One attempt's outcome (per attempt): counted in the window when closed;
 * for the probe, closes (ok) or re-opens (failed) the circuit. */
void gh_circuit_report(gh_circuit *c, const gh_upstream_cfg *u, bool failed, bool probe, uint64_t now);
/* The request is over; probe: it was admitted as the probe and reported no
 * outcome (the client left): let another probe through. */
void gh_circuit_end(gh_circuit *c, bool probe);
static inline int gh_circuit_state(gh_circuit *c)
{
    return atomic_load_explicit(&c->state, memory_order_relaxed);
}

#endif
