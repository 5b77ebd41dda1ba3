#include "proxy/balance.h"
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    int64_t *current;             /* smooth weighted round robin state */
    uint32_t *active;             /* in-flight requests per target (this worker) */
} slot;

struct gh_balancer {
    const gh_config *cfg;
    int nworkers;
    slot *slots;                  /* [worker * nupstreams + upstream] */
    void *mem;
};

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
    /* one block per worker, padded so workers never share a cache line */
    size_t per_worker = (ntargets * (sizeof(int64_t) + sizeof(uint32_t)) + 127) & ~(size_t)63;
    b->mem = calloc((size_t)nworkers, per_worker);
    if (!b->slots || !b->mem) {
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

int gh_balance_pick(gh_balancer *b, int worker, size_t upstream, uint64_t tried)
{
    const gh_upstream_cfg *u = &b->cfg->upstreams[upstream];
    if (u->ntargets == 0)
        return -1;
    if (u->ntargets == 1)
        return 0;
    slot *s = &b->slots[(size_t)worker * b->cfg->nupstreams + upstream];
    int t = u->balance == GH_BALANCE_LEAST_CONN ? pick_least(u, s, tried) : pick_rr(u, s, tried);
    if (t < 0)   /* every target tried: start over */
        t = u->balance == GH_BALANCE_LEAST_CONN ? pick_least(u, s, 0) : pick_rr(u, s, 0);
    return t;
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
