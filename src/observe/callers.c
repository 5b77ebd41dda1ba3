/* callers.c — per-worker tables of who calls which version (callers.h).
 * Single writer per table (its thread); readers on other threads load the
 * counters with relaxed atomics and see entries only once published with
 * release stores, so nobody waits. */
#include "observe/callers.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdio.h>

#define HOURS 24
#define NAME_MAX_LEN 63

typedef struct caller {
    char name[NAME_MAX_LEN + 1];
    atomic_uint_fast32_t count[HOURS];   /* requests in hour stamp[i] */
    atomic_int_fast64_t stamp[HOURS];    /* the hour (Unix seconds / 3600) count[i] holds */
    atomic_int_fast64_t last_seen;
    atomic_uint_fast64_t total;          /* since start: a Prometheus counter */
} caller;

typedef struct pair {
    char route[NAME_MAX_LEN + 1], version[NAME_MAX_LEN + 1];
    atomic_size_t n;                     /* named callers published */
    caller named[GH_CALLERS_MAX];
    caller other;                        /* beyond GH_CALLERS_MAX */
} pair;

typedef struct table {
    struct table *next;                  /* every thread's table (readers walk it) */
    _Atomic(pair *) pairs[GH_CALLERS_PAIRS];   /* open addressing by name hash */
} table;

static _Atomic(table *) tables;
static _Thread_local table *mine;

void gh_callers_count_now(gh_str route, gh_str version, gh_str consumer)
{
    gh_callers_count(route, version, consumer, (int64_t)time(NULL));
}

static const gh_str anonymous = { "(anonymous)", 11 };

static bool same(const char *stored, gh_str s)
{
    size_t n = s.len > NAME_MAX_LEN ? NAME_MAX_LEN : s.len;
    return strncmp(stored, s.p, n) == 0 && stored[n] == '\0';
}

static void copy_name(char *dst, gh_str s)
{
    size_t n = s.len > NAME_MAX_LEN ? NAME_MAX_LEN : s.len;
    memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static size_t hash(gh_str a, gh_str b)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < a.len && i < NAME_MAX_LEN; i++)
        h = (h ^ (uint8_t)a.p[i]) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (size_t i = 0; i < b.len && i < NAME_MAX_LEN; i++)
        h = (h ^ (uint8_t)b.p[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

static table *my_table(void)
{
    if (mine)
        return mine;
    table *t = calloc(1, sizeof(*t));   /* once per thread */
    if (!t)
        return NULL;
    t->next = atomic_load(&tables);
    while (!atomic_compare_exchange_weak(&tables, &t->next, t))
        ;
    return mine = t;
}

/* The pair's slot in t; created (once, warm-up) when create. */
static pair *find_pair(table *t, gh_str route, gh_str version, bool create)
{
    size_t h = hash(route, version);
    for (size_t i = 0; i < GH_CALLERS_PAIRS; i++) {
        _Atomic(pair *) *slot = &t->pairs[(h + i) % GH_CALLERS_PAIRS];
        pair *p = atomic_load_explicit(slot, memory_order_acquire);
        if (!p) {
            if (!create)
                return NULL;
            p = calloc(1, sizeof(*p));
            if (!p)
                return NULL;
            copy_name(p->route, route);
            copy_name(p->version, version);
            strcpy(p->other.name, "(other)");
            atomic_store_explicit(slot, p, memory_order_release);
            return p;
        }
        if (same(p->route, route) && same(p->version, version))
            return p;
    }
    return NULL;   /* table full: not counted (bounded memory) */
}

static void bump(caller *c, int64_t now)
{
    int64_t hour = now / 3600;
    size_t i = (size_t)(hour % HOURS);
    if (atomic_load_explicit(&c->stamp[i], memory_order_relaxed) != hour) {
        atomic_store_explicit(&c->count[i], 0, memory_order_relaxed);
        atomic_store_explicit(&c->stamp[i], hour, memory_order_relaxed);
    }
    atomic_store_explicit(&c->count[i], atomic_load_explicit(&c->count[i], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&c->last_seen, now, memory_order_relaxed);
    atomic_store_explicit(&c->total, atomic_load_explicit(&c->total, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void gh_callers_count(gh_str route, gh_str version, gh_str consumer, int64_t now)
{
    table *t = my_table();
    pair *p = t ? find_pair(t, route, version, true) : NULL;
    if (!p)
        return;
    gh_str who = consumer.len ? consumer : anonymous;
    size_t n = atomic_load_explicit(&p->n, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        if (same(p->named[i].name, who)) {
            bump(&p->named[i], now);
            return;
        }
    }
    if (n == GH_CALLERS_MAX) {
        bump(&p->other, now);
        return;
    }
    copy_name(p->named[n].name, who);
    bump(&p->named[n], now);
    atomic_store_explicit(&p->n, n + 1, memory_order_release);
}

/* ---------------------------------------------------------------- read -- */

static uint64_t last_24h(const caller *c, int64_t now)
{
    int64_t hour = now / 3600;
    uint64_t sum = 0;
    for (size_t i = 0; i < HOURS; i++) {
        int64_t s = atomic_load_explicit(&c->stamp[i], memory_order_relaxed);
        if (s > hour - HOURS && s <= hour)
            sum += atomic_load_explicit(&c->count[i], memory_order_relaxed);
    }
    return sum;
}

/* Adds a worker's count for name to the sum: named entries up to cap - 1,
 * the rest into *other. */
static void add(gh_caller_sum *out, size_t *n, size_t cap, gh_caller_sum *other, const char *name,
                uint64_t count, int64_t seen)
{
    if (!count)
        return;   /* nothing in the last 24 hours */
    gh_caller_sum *c = NULL;
    for (size_t i = 0; i < *n && !c; i++)
        if (strcmp(out[i].consumer, name) == 0)
            c = &out[i];
    if (!c && strcmp(name, "(other)") != 0 && *n + 1 < cap) {
        c = &out[(*n)++];
        memset(c, 0, sizeof(*c));
        snprintf(c->consumer, sizeof(c->consumer), "%s", name);
    }
    if (!c)
        c = other;
    c->requests_24h += count;
    if (seen > c->last_seen)
        c->last_seen = seen;
}

static int by_count(const void *a, const void *b)
{
    const gh_caller_sum *x = a, *y = b;
    if (x->requests_24h != y->requests_24h)
        return x->requests_24h < y->requests_24h ? 1 : -1;
    return strcmp(x->consumer, y->consumer);
}

size_t gh_callers_read(gh_str route, gh_str version, int64_t now, gh_caller_sum *out, size_t cap)
{
    size_t n = 0;
    gh_caller_sum other = { "(other)", 0, 0 };
    if (cap < 2)
        return 0;
    for (table *t = atomic_load(&tables); t; t = t->next) {
        pair *p = find_pair(t, route, version, false);
        if (!p)
            continue;
        size_t k = atomic_load_explicit(&p->n, memory_order_acquire);
        for (size_t i = 0; i < k; i++)
            add(out, &n, cap, &other, p->named[i].name, last_24h(&p->named[i], now),
                atomic_load_explicit(&p->named[i].last_seen, memory_order_relaxed));
        add(out, &n, cap, &other, "(other)", last_24h(&p->other, now),
            atomic_load_explicit(&p->other.last_seen, memory_order_relaxed));
    }
    if (other.requests_24h)
        out[n++] = other;
    qsort(out, n, sizeof(*out), by_count);
    return n;
}

/* ------------------------------------------------------------- totals -- */

typedef struct row {
    const char *route, *version, *consumer;
    uint64_t total;
} row;

static int by_names(const void *a, const void *b)
{
    const row *x = a, *y = b;
    int c = strcmp(x->route, y->route);
    if (!c)
        c = strcmp(x->version, y->version);
    return c ? c : strcmp(x->consumer, y->consumer);
}

static bool push(row **rows, size_t *n, size_t *cap, const pair *p, const caller *c)
{
    uint64_t total = atomic_load_explicit(&c->total, memory_order_relaxed);
    if (!total)
        return true;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        row *nr = realloc(*rows, nc * sizeof(*nr));
        if (!nr)
            return false;
        *rows = nr;
        *cap = nc;
    }
    (*rows)[(*n)++] = (row){ p->route, p->version, c->name, total };
    return true;
}

bool gh_callers_totals(void (*each)(void *arg, const char *route, const char *version, const char *consumer,
                                    uint64_t total),
                       void *arg)
{
    row *rows = NULL;
    size_t n = 0, cap = 0;
    bool ok = true;
    for (table *t = atomic_load(&tables); t && ok; t = t->next) {
        for (size_t i = 0; i < GH_CALLERS_PAIRS && ok; i++) {
            pair *p = atomic_load_explicit(&t->pairs[i], memory_order_acquire);
            if (!p)
                continue;
            size_t k = atomic_load_explicit(&p->n, memory_order_acquire);
            for (size_t j = 0; j < k && ok; j++)
                ok = push(&rows, &n, &cap, p, &p->named[j]);
            ok = ok && push(&rows, &n, &cap, p, &p->other);
        }
    }
    if (ok) {
        if (n)   /* qsort(NULL, 0) is undefined */
            qsort(rows, n, sizeof(*rows), by_names);
        for (size_t i = 0; i < n;) {   /* one call per label set: the workers' counts summed */
            size_t j = i + 1;
            uint64_t sum = rows[i].total;
            for (; j < n && by_names(&rows[i], &rows[j]) == 0; j++)
                sum += rows[j].total;
            each(arg, rows[i].route, rows[i].version, rows[i].consumer, sum);
            i = j;
        }
    }
    free(rows);
    return ok;
}
