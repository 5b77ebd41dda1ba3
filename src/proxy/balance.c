#include "proxy/balance.h"
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    int64_t *current;             /* smooth weighted round robin state */
    uint32_t *active;             /* in-flight requests per target (this worker) */
    uint64_t rng;                 /* random_two: xorshift64 state */
} slot;

struct gh_balancer {
    const gh_config *cfg;
    int nworkers;
    slot *slots;                  /* [worker * nupstreams + upstream] */
    void *mem;
    gh_upstream_rt *rt;           /* [nupstreams] */
};

/* FNV-1a, then splitmix64's finalizer: FNV alone clusters short keys */
uint64_t gh_balance_hash(const void *p, size_t n, uint64_t seed)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static int cmp_point(const void *a, const void *b)
{
    uint64_t x = ((const gh_ring_point *)a)->hash, y = ((const gh_ring_point *)b)->hash;
    return x < y ? -1 : x > y;
}

/* Consistent hashing (ketama-like): points per target in proportion to its
 * weight, placed by its address, so adding or removing a target moves only
 * the keys of its own points (about 1/N). */
#define RING_POINTS 160          /* per unit of weight */
#define RING_POINTS_MAX 16000    /* per target */
static bool build_ring(gh_upstream_rt *rt, const gh_upstream_cfg *u)
{
    size_t n = 0;
    for (size_t i = 0; i < u->ntargets; i++) {
        uint64_t p = (uint64_t)u->targets[i].weight * RING_POINTS;
        n += p > RING_POINTS_MAX ? RING_POINTS_MAX : p;
    }
    rt->ring = malloc((n ? n : 1) * sizeof(*rt->ring));
    if (!rt->ring)
        return false;
    for (size_t i = 0; i < u->ntargets; i++) {
        uint64_t p = (uint64_t)u->targets[i].weight * RING_POINTS;
        if (p > RING_POINTS_MAX)
            p = RING_POINTS_MAX;
        for (uint64_t k = 0; k < p; k++)
            rt->ring[rt->nring++] = (gh_ring_point){
                gh_balance_hash(u->targets[i].address.p, u->targets[i].address.len, k), (uint32_t)i };
    }
    qsort(rt->ring, rt->nring, sizeof(*rt->ring), cmp_point);
    return true;
}

static bool build_rt(gh_upstream_rt *rt, const gh_upstream_cfg *u)
{
    rt->checks = u->passive.failures || u->active.on;
    rt->ts = calloc(u->ntargets ? u->ntargets : 1, sizeof(*rt->ts));
    if (!rt->ts)
        return false;
    for (size_t i = 0; i < u->ntargets; i++)
        if (!(rt->ts[i] = gh_target_state_acquire(u->targets[i].address.p)))
            return false;
    if (u->circuit.on && !(rt->circuit = gh_circuit_acquire(u)))
        return false;
    return u->balance != GH_BALANCE_HASH || build_ring(rt, u);
}

gh_balancer *gh_balancer_new(const gh_config *cfg, int nworkers)
{
    size_t ntargets = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        ntargets += cfg->upstreams[i].ntargets;
    gh_balancer *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->cfg = cfg;
    b->nworkers = nworkers;
    size_t nslots = (size_t)nworkers * (cfg->nupstreams ? cfg->nupstreams : 1);
    b->slots = calloc(nslots, sizeof(slot));
    b->rt = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*b->rt));
    /* one block per worker, padded so workers never share a cache line */
    size_t per_worker = (ntargets * (sizeof(int64_t) + sizeof(uint32_t)) + 127) & ~(size_t)63;
    b->mem = calloc((size_t)nworkers, per_worker);
    if (!b->slots || !b->mem || !b->rt) {
        gh_balancer_free(b);
        return NULL;
    }
    for (size_t u = 0; u < cfg->nupstreams; u++)
        if (!build_rt(&b->rt[u], &cfg->upstreams[u])) {
            gh_balancer_free(b);
            return NULL;
        }
    for (int w = 0; w < nworkers; w++) {
        char *base = (char *)b->mem + (size_t)w * per_worker;
        int64_t *cur = (int64_t *)base;
        uint32_t *act = (uint32_t *)(base + ntargets * sizeof(int64_t));
        for (size_t u = 0; u < cfg->nupstreams; u++) {
            slot *s = &b->slots[(size_t)w * cfg->nupstreams + u];
            s->current = cur;
            s->active = act;
            s->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(w * 131 + (int)u + 1);
            cur += cfg->upstreams[u].ntargets;
            act += cfg->upstreams[u].ntargets;
        }
    }
    return b;
}

void gh_balancer_free(gh_balancer *b)
{
    if (!b)
        return;
    for (size_t u = 0; b->rt && u < b->cfg->nupstreams; u++) {
        gh_upstream_rt *rt = &b->rt[u];
        for (size_t i = 0; rt->ts && i < b->cfg->upstreams[u].ntargets; i++)
            gh_target_state_release(rt->ts[i]);
        free(rt->ts);
        gh_circuit_release(rt->circuit);
        free(rt->ring);
    }
    free(b->rt);
    free(b->slots);
    free(b->mem);
    free(b);
}

static int pick_rr(const gh_upstream_cfg *u, slot *s, uint64_t tried)
{
    /* nginx's smooth weighted round robin: even spread, exact ratios */
    int best = -1;
    int64_t total = 0;
    for (size_t i = 0; i < u->ntargets; i++) {
        if (i < 64 && (tried >> i) & 1)
            continue;
        s->current[i] += u->targets[i].weight;
        total += u->targets[i].weight;
        if (best < 0 || s->current[i] > s->current[best])
            best = (int)i;
    }
    if (best >= 0)
        s->current[best] -= total;
    return best;
}

/* active[a]/weight[a] < active[b]/weight[b], without division */
static bool less_loaded(const gh_upstream_cfg *u, const slot *s, size_t a, size_t b)
{
    return (uint64_t)s->active[a] * u->targets[b].weight < (uint64_t)s->active[b] * u->targets[a].weight;
}

static int pick_least(const gh_upstream_cfg *u, slot *s, uint64_t tried)
{
    int best = -1;
    for (size_t i = 0; i < u->ntargets; i++) {
        if (i < 64 && (tried >> i) & 1)
            continue;
        if (best < 0 || less_loaded(u, s, i, (size_t)best))
            best = (int)i;
    }
    if (best < 0)
        return -1;
    /* ties (sequential requests: all idle) go round robin, weighted as
     * pick_rr does, among the targets exactly as loaded as the best */
    int pick = -1;
    int64_t total = 0;
    for (size_t i = 0; i < u->ntargets; i++) {
        if ((i < 64 && (tried >> i) & 1) || less_loaded(u, s, (size_t)best, i))
            continue;
        s->current[i] += u->targets[i].weight;
        total += u->targets[i].weight;
        if (pick < 0 || s->current[i] > s->current[pick])
            pick = (int)i;
    }
    s->current[pick] -= total;
    return pick;
}

static bool skipped(uint64_t skip, size_t i) { return i < 64 && (skip >> i) & 1; }

/* Power of two choices: two distinct random candidates, the one with fewer
 * requests in flight (per weight, across all workers) wins. */
static int pick_random_two(const gh_upstream_cfg *u, const gh_upstream_rt *rt, slot *s, uint64_t skip)
{
    int cand[64], n = 0;
    for (size_t i = 0; i < u->ntargets && n < 64; i++)
        if (!skipped(skip, i))
            cand[n++] = (int)i;
    if (n <= 1)
        return n ? cand[0] : -1;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    int ia = (int)(s->rng % (uint64_t)n), ib = (int)((s->rng >> 32) % (uint64_t)(n - 1));
    if (ib >= ia)   /* ib: among the candidates other than ia */
        ib++;
    int a = cand[ia], b = cand[ib];
    uint64_t la = atomic_load_explicit(&rt->ts[a]->inflight, memory_order_relaxed);
    uint64_t lb = atomic_load_explicit(&rt->ts[b]->inflight, memory_order_relaxed);
    return lb * u->targets[a].weight < la * u->targets[b].weight ? b : a;
}

/* The first point at or after key, walking on past skipped targets. */
static int pick_hash(const gh_upstream_rt *rt, uint64_t skip, uint64_t key)
{
    size_t lo = 0, hi = rt->nring;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rt->ring[mid].hash < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < rt->nring; k++) {
        const gh_ring_point *p = &rt->ring[(lo + k) % rt->nring];
        if (!skipped(skip, p->target))
            return (int)p->target;
    }
    return -1;
}

int gh_balance_pick(gh_balancer *b, int worker, size_t upstream, uint64_t skip, const uint64_t *key)
{
    const gh_upstream_cfg *u = &b->cfg->upstreams[upstream];
    if (u->ntargets == 1)
        return skip & 1 ? -1 : 0;
    slot *s = &b->slots[(size_t)worker * b->cfg->nupstreams + upstream];
    switch (u->balance) {
    case GH_BALANCE_LEAST_CONN:
        return pick_least(u, s, skip);
    case GH_BALANCE_RANDOM_TWO:
        return pick_random_two(u, &b->rt[upstream], s, skip);
    case GH_BALANCE_HASH:
        if (key)
            return pick_hash(&b->rt[upstream], skip, *key);
        return pick_rr(u, s, skip);   /* no key in the request */
    default:
        return pick_rr(u, s, skip);
    }
}

gh_upstream_rt *gh_balance_upstream(gh_balancer *b, size_t upstream)
{
    return &b->rt[upstream];
}

void gh_balance_begin(gh_balancer *b, int worker, size_t upstream, int target)
{
    b->slots[(size_t)worker * b->cfg->nupstreams + upstream].active[target]++;
}

void gh_balance_end(gh_balancer *b, int worker, size_t upstream, int target)
{
    uint32_t *a = &b->slots[(size_t)worker * b->cfg->nupstreams + upstream].active[target];
    if (*a)
        (*a)--;
}
