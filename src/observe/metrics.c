/* metrics.c — the per-worker statistics registry (observe/metrics.h). */
#include "observe/metrics.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include "core/method.h"

#define RLX memory_order_relaxed
#define CHUNK 64                          /* ids per lazily allocated block */
#define ROUTE_CHUNKS (GH_METRICS_MAX_ROUTES / CHUNK)
#define UP_CHUNKS (GH_METRICS_MAX_UPSTREAMS / CHUNK)

const uint32_t gh_metrics_bounds_us[GH_METRICS_NBOUNDS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
const char *const gh_metrics_cache_names[GH_MCACHE_N] = { "hit", "miss", "stale", "bypass", "other" };

/* Only the owning worker writes: a plain load and store, atomic so that a
 * reader on another thread sees whole values (no locked instruction). */
typedef _Atomic uint64_t counter;
static inline void inc(counter *c, uint64_t by)
{
    atomic_store_explicit(c, atomic_load_explicit(c, RLX) + by, RLX);
}
static inline uint64_t get(counter *c) { return atomic_load_explicit(c, RLX); }

typedef struct hist {
    counter b[GH_METRICS_NBOUNDS + 1];
    counter sum_us;
} hist;

typedef struct mroute {
    _Atomic uint32_t key[GH_METRICS_CODE_SLOTS];   /* (method << 10 | status) + 1; 0 = free */
    counter n[GH_METRICS_CODE_SLOTS];
    hist duration;
    counter rate_limited;
    counter cache[GH_MCACHE_N];
} mroute;

/* A recent error, written by its worker under a sequence number (odd while
 * it is being written), so that a reader skips an entry it caught mid-way. */
typedef struct recent {
    atomic_uint seq;
    gh_metrics_error e;
} recent;

struct gh_metrics_worker {
    _Atomic(mroute *) routes[ROUTE_CHUNKS];
    _Atomic(hist *) ups[UP_CHUNKS];
    hist plugins[GH_PLUGIN_COUNT];
    recent ring[GH_METRICS_RECENT];
    unsigned ring_next;
};

static gh_metrics_worker **workers;
static int nworkers;

/* names: written by the main thread, published by the count (release) */
static char *route_names[GH_METRICS_MAX_ROUTES];
static atomic_uint nroute_names;
static char *up_names[GH_METRICS_MAX_UPSTREAMS];
static atomic_uint nup_names;
/* name -> id for intern (the loader's side only): open addressing over
 * twice as many slots as names, so interning 10,000 routes stays linear. */
_Static_assert((GH_METRICS_MAX_ROUTES & (GH_METRICS_MAX_ROUTES - 1)) == 0, "a power of two");
_Static_assert((GH_METRICS_MAX_UPSTREAMS & (GH_METRICS_MAX_UPSTREAMS - 1)) == 0, "a power of two");
static uint32_t route_slot[2 * GH_METRICS_MAX_ROUTES];
static uint32_t up_slot[2 * GH_METRICS_MAX_UPSTREAMS];

static atomic_uint_fast64_t redis_errors;

static uv_mutex_t reload_lock;
static gh_metrics_reloads last_reload;

static void *zalloc_aligned(size_t size)
{
    size = (size + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, size);   /* no cache line shared with another worker's block */
    if (p)
        memset(p, 0, size);
    return p;
}

void gh_metrics_init(int n)
{
    if (workers || n <= 0)
        return;
    uv_mutex_init(&reload_lock);
    workers = calloc((size_t)n, sizeof(*workers));
    if (!workers)
        return;
    for (int i = 0; i < n; i++)
        workers[i] = zalloc_aligned(sizeof(gh_metrics_worker));
    nworkers = n;
    route_names[0] = "";
    up_names[0] = "";
    atomic_store(&nroute_names, 1);
    atomic_store(&nup_names, 1);
}

bool gh_metrics_enabled(void) { return nworkers > 0; }

gh_metrics_worker *gh_metrics_for_worker(int id)
{
    return id >= 0 && id < nworkers ? workers[id] : NULL;
}

static uint32_t intern(char **names, uint32_t *slot, atomic_uint *count, unsigned max, gh_str name)
{
    if (name.len == 0)
        return 0;
    size_t mask = 2 * (size_t)max - 1, h = (size_t)gh_str_hash(name) & mask;
    for (; slot[h]; h = (h + 1) & mask) {   /* at most max - 1 names: an empty slot is always found */
        const char *have = names[slot[h]];
        if (strlen(have) == name.len && memcmp(have, name.p, name.len) == 0)
            return slot[h];
    }
    unsigned n = atomic_load(count);
    if (n >= max)
        return 0;
    names[n] = strndup(name.p, name.len);
    if (!names[n])
        return 0;
    slot[h] = n;
    atomic_store_explicit(count, n + 1, memory_order_release);
    return n;
}

/* Every worker gets the block of id before any request can carry it. */
static bool ensure_chunk(uint32_t id, bool route)
{
    size_t c = id / CHUNK;
    for (int w = 0; w < nworkers; w++) {
        if (!workers[w])
            return false;
        if (route) {
            if (!atomic_load(&workers[w]->routes[c])) {
                mroute *m = zalloc_aligned(CHUNK * sizeof(mroute));
                if (!m)
                    return false;
                atomic_store_explicit(&workers[w]->routes[c], m, memory_order_release);
            }
        } else if (!atomic_load(&workers[w]->ups[c])) {
            hist *h = zalloc_aligned(CHUNK * sizeof(hist));
            if (!h)
                return false;
            atomic_store_explicit(&workers[w]->ups[c], h, memory_order_release);
        }
    }
    return true;
}

void gh_metrics_assign(gh_config *cfg)
{
    if (!nworkers)
        return;
    ensure_chunk(0, true);   /* "": requests that matched no route */
    for (size_t i = 0; i < cfg->nroutes; i++) {
        uint32_t id = intern(route_names, route_slot, &nroute_names, GH_METRICS_MAX_ROUTES, cfg->routes[i].name);
        cfg->routes[i].metric_id = ensure_chunk(id, true) ? id : 0;
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        uint32_t id = intern(up_names, up_slot, &nup_names, GH_METRICS_MAX_UPSTREAMS, cfg->upstreams[i].name);
        cfg->upstreams[i].metric_id = ensure_chunk(id, false) ? id : 0;
    }
}

/* ------------------------------------------------------------ recording -- */

static inline unsigned bucket(uint64_t us)
{
    unsigned i = 0;
    while (i < GH_METRICS_NBOUNDS && us > gh_metrics_bounds_us[i])
        i++;
    return i;
}

static inline void observe(hist *h, uint64_t us)
{
    inc(&h->b[bucket(us)], 1);
    inc(&h->sum_us, us);
}

static unsigned method_index(uint32_t bit)
{
    return bit && bit < (1u << (GH_METRICS_NMETHODS - 1)) ? (unsigned)__builtin_ctz(bit) : GH_METRICS_NMETHODS - 1;
}

static void count_code(mroute *r, uint32_t key)
{
    /* open addressing from a hash of the key; the slot's key is written
     * once, by this worker, before its count */
    unsigned i = (key * 2654435761u) >> 26;
    for (unsigned k = 0; k < GH_METRICS_CODE_SLOTS; k++, i = (i + 1) & (GH_METRICS_CODE_SLOTS - 1)) {
        uint32_t have = atomic_load_explicit(&r->key[i], RLX);
        if (have == key) {
            inc(&r->n[i], 1);
            return;
        }
        if (have == 0) {
            atomic_store_explicit(&r->key[i], key, memory_order_release);
            inc(&r->n[i], 1);
            return;
        }
    }
    /* all slots taken by other pairs: the request is not counted by code */
}

static int cache_index(gh_str c)
{
    for (int i = 0; i < GH_MCACHE_OTHER; i++)
        if (gh_str_eq(c, gh_str_c(gh_metrics_cache_names[i])))
            return i;
    return GH_MCACHE_OTHER;
}

/* s cut to cap - 1 bytes, NUL-terminated (no printf on the request path:
 * a flood of 429s writes here for each one). */
static void copy(char *dst, size_t cap, gh_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static void note_error(gh_metrics_worker *m, const gh_exchange *ex)
{
    recent *r = &m->ring[m->ring_next];
    m->ring_next = (m->ring_next + 1) % GH_METRICS_RECENT;
    unsigned seq = atomic_load_explicit(&r->seq, RLX);
    atomic_store_explicit(&r->seq, seq + 1, RLX);
    atomic_thread_fence(memory_order_release);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    gh_metrics_error *e = &r->e;
    e->time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    e->order_ns = uv_hrtime();
    e->status = ex->status;
    copy(e->code, sizeof(e->code), gh_str_c(ex->log.error));
    copy(e->route, sizeof(e->route), ex->log.route);
    copy(e->method, sizeof(e->method), ex->method);
    copy(e->path, sizeof(e->path), ex->raw_path);
    copy(e->request_id, sizeof(e->request_id), gh_str_c(ex->request_id));
    atomic_store_explicit(&r->seq, seq + 2, memory_order_release);
}

void gh_metrics_exchange(gh_metrics_worker *m, const gh_exchange *ex, uint64_t now_ns)
{
    if (!m)
        return;
    uint32_t id = ex->log.route_id;
    mroute *chunk = atomic_load_explicit(&m->routes[id / CHUNK], memory_order_acquire);
    if (chunk) {
        mroute *r = &chunk[id % CHUNK];
        unsigned status = ex->status > 0 && ex->status < 1000 ? (unsigned)ex->status : 0;
        count_code(r, (method_index(ex->method_bit) << 10 | status) + 1);
        observe(&r->duration, (now_ns - ex->start_ns) / 1000);
        if (status == 429 && ex->log.error && strcmp(ex->log.error, "rate_limited") == 0)
            inc(&r->rate_limited, 1);
        if (ex->log.cache.len)
            inc(&r->cache[cache_index(ex->log.cache)], 1);
    }
    if (ex->log.upstream_id && ex->log.upstream_us >= 0) {
        hist *u = atomic_load_explicit(&m->ups[ex->log.upstream_id / CHUNK], memory_order_acquire);
        if (u)
            observe(&u[ex->log.upstream_id % CHUNK], (uint64_t)ex->log.upstream_us);
    }
    int s = ex->status;
    if (ex->log.error && (s >= 500 || s == 429 || s == 401 || s == 403))
        note_error(m, ex);
}

void gh_metrics_plugin(gh_metrics_worker *m, int plugin, uint64_t ns)
{
    if (m && plugin >= 0 && plugin < GH_PLUGIN_COUNT)
        observe(&m->plugins[plugin], ns / 1000);
}

void gh_metrics_redis_error(void) { atomic_fetch_add_explicit(&redis_errors, 1, RLX); }
uint64_t gh_metrics_redis_errors(void) { return atomic_load_explicit(&redis_errors, RLX); }

void gh_metrics_reload(bool ok, int64_t revision, const char *const *errors, size_t n)
{
    if (!nworkers)
        return;
    char **copy = n ? calloc(n, sizeof(*copy)) : NULL;
    size_t k = 0;
    for (size_t i = 0; copy && i < n; i++)
        if ((copy[k] = strdup(errors[i])))
            k++;
    uv_mutex_lock(&reload_lock);
    gh_metrics_reloads old = last_reload;
    if (ok)
        last_reload.ok++;
    else
        last_reload.error++;
    last_reload.any = true;
    last_reload.last_ok = ok;
    last_reload.last_at = (int64_t)time(NULL);
    last_reload.last_revision = revision;
    last_reload.last_errors = copy;
    last_reload.nlast_errors = k;
    uv_mutex_unlock(&reload_lock);
    old.ok = old.error = 0;
    gh_metrics_reloads_free(&old);
}

/* -------------------------------------------------------------- reading -- */

uint32_t gh_metrics_route_count(void) { return atomic_load_explicit(&nroute_names, memory_order_acquire); }
const char *gh_metrics_route_name(uint32_t id) { return id < gh_metrics_route_count() ? route_names[id] : ""; }
uint32_t gh_metrics_upstream_count(void) { return atomic_load_explicit(&nup_names, memory_order_acquire); }
const char *gh_metrics_upstream_name(uint32_t id) { return id < gh_metrics_upstream_count() ? up_names[id] : ""; }

uint32_t gh_metrics_route_id(const char *name)
{
    uint32_t n = gh_metrics_route_count();
    for (uint32_t i = 1; i < n; i++)
        if (strcmp(route_names[i], name) == 0)
            return i;
    return 0;
}

static void add_hist(gh_metrics_hist *out, hist *h)
{
    for (int b = 0; b <= GH_METRICS_NBOUNDS; b++) {
        uint64_t v = get(&h->b[b]);
        out->b[b] += v;
        out->count += v;
    }
    out->sum_us += get(&h->sum_us);
}

void gh_metrics_route_read(uint32_t id, gh_metrics_route *out)
{
    memset(out, 0, sizeof(*out));
    for (int w = 0; w < nworkers && id < GH_METRICS_MAX_ROUTES; w++) {
        mroute *chunk = atomic_load_explicit(&workers[w]->routes[id / CHUNK], memory_order_acquire);
        if (!chunk)
            continue;
        mroute *r = &chunk[id % CHUNK];
        add_hist(&out->duration, &r->duration);
        out->rate_limited += get(&r->rate_limited);
        for (int c = 0; c < GH_MCACHE_N; c++)
            out->cache[c] += get(&r->cache[c]);
        for (int i = 0; i < GH_METRICS_CODE_SLOTS; i++) {
            uint32_t key = atomic_load_explicit(&r->key[i], memory_order_acquire);
            if (!key)
                continue;
            uint64_t n = get(&r->n[i]);
            uint16_t method = (uint16_t)((key - 1) >> 10), status = (uint16_t)((key - 1) & 1023);
            size_t k = 0;
            while (k < out->ncodes && !(out->codes[k].method == method && out->codes[k].status == status))
                k++;
            if (k == out->ncodes) {
                out->codes[k].method = method;
                out->codes[k].status = status;
                out->codes[k].n = 0;
                out->ncodes++;
            }
            out->codes[k].n += n;
            out->requests += n;
            if (status >= 400 && status < 500)
                out->client_errors += n;
            else if (status >= 500)
                out->errors += n;
        }
    }
}

void gh_metrics_upstream_read(uint32_t id, gh_metrics_hist *out)
{
    memset(out, 0, sizeof(*out));
    for (int w = 0; w < nworkers && id < GH_METRICS_MAX_UPSTREAMS; w++) {
        hist *chunk = atomic_load_explicit(&workers[w]->ups[id / CHUNK], memory_order_acquire);
        if (chunk)
            add_hist(out, &chunk[id % CHUNK]);
    }
}

void gh_metrics_plugin_read(int plugin, gh_metrics_hist *out)
{
    memset(out, 0, sizeof(*out));
    for (int w = 0; w < nworkers && plugin >= 0 && plugin < GH_PLUGIN_COUNT; w++)
        add_hist(out, &workers[w]->plugins[plugin]);
}

void gh_metrics_reloads_read(gh_metrics_reloads *out)
{
    memset(out, 0, sizeof(*out));
    if (!nworkers)
        return;
    uv_mutex_lock(&reload_lock);
    *out = last_reload;
    out->last_errors = NULL;
    out->nlast_errors = 0;
    if (last_reload.nlast_errors && (out->last_errors = calloc(last_reload.nlast_errors, sizeof(char *)))) {
        for (size_t i = 0; i < last_reload.nlast_errors; i++)
            if ((out->last_errors[out->nlast_errors] = strdup(last_reload.last_errors[i])))
                out->nlast_errors++;
    }
    uv_mutex_unlock(&reload_lock);
}

void gh_metrics_reloads_free(gh_metrics_reloads *r)
{
    for (size_t i = 0; i < r->nlast_errors; i++)
        free(r->last_errors[i]);
    free(r->last_errors);
    r->last_errors = NULL;
    r->nlast_errors = 0;
}

static int newest_first(const void *a, const void *b)
{
    const gh_metrics_error *x = a, *y = b;
    return x->order_ns < y->order_ns ? 1 : x->order_ns > y->order_ns ? -1 : 0;
}

size_t gh_metrics_recent_errors(gh_metrics_error *out, size_t cap)
{
    size_t total = (size_t)nworkers * GH_METRICS_RECENT, n = 0;
    gh_metrics_error *all = total ? malloc(total * sizeof(*all)) : NULL;
    if (!all)
        return 0;
    for (int w = 0; w < nworkers; w++) {
        for (int i = 0; i < GH_METRICS_RECENT; i++) {
            recent *r = &workers[w]->ring[i];
            unsigned s1 = atomic_load_explicit(&r->seq, memory_order_acquire);
            if (s1 == 0 || (s1 & 1))
                continue;   /* never written, or being written now */
            memcpy(&all[n], &r->e, sizeof(r->e));
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&r->seq, RLX) != s1)
                continue;
            all[n].code[sizeof(all[n].code) - 1] = all[n].route[sizeof(all[n].route) - 1] = '\0';
            all[n].method[sizeof(all[n].method) - 1] = all[n].path[sizeof(all[n].path) - 1] = '\0';
            all[n].request_id[sizeof(all[n].request_id) - 1] = '\0';
            n++;
        }
    }
    qsort(all, n, sizeof(*all), newest_first);
    if (n > cap)
        n = cap;
    memcpy(out, all, n * sizeof(*out));
    free(all);
    return n;
}

const char *gh_metrics_method_name(unsigned m)
{
    return m < GH_NMETHODS ? gh_methods[m].name : "OTHER";
}
