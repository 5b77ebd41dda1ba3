/* cache.c — the response cache (SPEC §7.3, §12.19).
 *
 * The request step decides BYPASS (a method not cached, Authorization
 * without shared_auth), HIT or MISS, and wraps the chain's continuation
 * (run->done) instead of answering at once: the later plugins (compress)
 * still set up their response filters, then a HIT is served from the entry
 * through ex->down (so compress encodes it per client) and a MISS goes to
 * the target with a tee on top of ex->down that copies the identity
 * response into a new entry as it streams to the client. The store keeps
 * the identity body: one entry serves every Accept-Encoding.
 *
 * With collapse, the MISS that leads a flight does not fill through its own
 * response: the fill is a detached sub-request (gh_plugin_run.detach), owned
 * by the flight rather than by the leader's exchange, and the leader waits
 * for it like every other request of the flight. Its answer becomes one
 * entry that every waiter is served from, stored or not, so a client that
 * leaves cancels nothing for the others. Where a route cannot detach
 * (versioned routes, targets other than an upstream) the leader tees.
 *
 * A HIT takes a reference on the immutable entry and sends its body from
 * the entry's memory (no copy, no upstream-call layer); the reference goes
 * in the after-response hook, when the codec is done with the bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/method.h"
#include "plugins/cache_flight.h"
#include "plugins/cache_policy.h"
#include "plugins/cache_redis.h"
#include "plugins/cache_store.h"
#include "plugins/plugin.h"

typedef struct cache_x {
    const gh_cache_cfg *conf;
    gh_cache_store *store;
    gh_cache_wake *wake;            /* this worker's, with collapse */
    gh_str key;
    uint64_t hash;
    gh_cache_waiter waiter;         /* collapse: waiting for another request's fill */
    gh_cache_flight *flight;        /* collapse: others wait for this fill (teed) */
    bool led;                       /* collapse: this request started the detached fill */
    gh_cache_redis_get rget;        /* store: redis, the lookup under way */
    gh_cache_entry *entry;          /* HIT: the entry served (a reference) */
    void (*done)(gh_plugin_run *run);   /* the chain's own continuation */
    void *done_ctx;
    /* MISS on GET: the fill */
    const gh_downstream_ops *next;  /* under the tee */
    bool filling;
    bool keep;                      /* the response may be stored (else only shared) */
    int status;
    uint64_t lifetime_ms;
    uint32_t age0;
    gh_header *hdrs;                /* in the arena, until the entry copies them */
    size_t nhdrs;
    char *body;                     /* malloc'd, grown up to max_entry */
    size_t len, cap;
    int64_t clen;                   /* the response's Content-Length, -1 when it streams */
} cache_x;

static const gh_str result_hit = { "hit", 3 }, result_miss = { "miss", 4 }, result_bypass = { "bypass", 6 };

static void mark(gh_exchange *ex, gh_str result, const char *header)
{
    ex->log.cache = result;
    gh_exchange_add_response_header(ex, "Gatehouse-Cache", 15, header, strlen(header));
}

/* ------------------------------------------------------------------ HIT -- */

static bool hdr_is(const gh_header *h, const char *name, size_t n)
{
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* The validators of the request against the entry: true = 304. An
 * If-None-Match decides alone (RFC 9110 §13.2.2). */
static bool not_modified(gh_exchange *ex, const gh_cache_entry *e)
{
    const gh_header *inm = gh_exchange_header(ex, "if-none-match", 13);
    if (inm)
        return gh_cache_etag_match(inm->value, inm->value_len, e->etag.p, e->etag.len);
    const gh_header *ims = gh_exchange_header(ex, "if-modified-since", 17);
    time_t t;
    return ims && e->last_modified && gh_cache_http_date(ims->value, ims->value_len, &t) && e->last_modified <= t;
}

static void serve_hit(gh_plugin_run *run)
{
    gh_exchange *ex = run->ex;
    cache_x *x = ex->cache;
    const gh_cache_entry *e = x->entry;
    uint64_t now = gh_now_ms(ex->env);
    now = now > e->stored_ms ? now : e->stored_ms;   /* another worker's loop clock may be a little ahead */
    char *age = gh_arena_alloc(&ex->arena, 24);
    size_t alen = age ? gh_u64_dec(age, e->age0 + (now - e->stored_ms) / 1000) : 0;
    gh_header *h = gh_arena_alloc(&ex->arena, (e->nhdrs + 1) * sizeof(*h));
    if (!h || !age) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    bool nm = not_modified(ex, e);
    size_t n = 0;
    for (size_t i = 0; i < e->nhdrs; i++) {
        /* a 304 carries the validators and caching headers, not the representation's */
        if (nm && (hdr_is(&e->hdrs[i], "content-type", 12) || hdr_is(&e->hdrs[i], "content-language", 16)))
            continue;
        h[n++] = e->hdrs[i];
    }
    h[n++] = (gh_header){ "Age", age, 3, (uint32_t)alen };
    if (nm)
        gh_respond(ex, 304, h, n, NULL, 0);
    else
        gh_respond(ex, e->status, h, n, e->body, e->body_len);
}

/* ----------------------------------------------------------------- fill -- */

/* The fill stops: nothing is stored; waiters for it collapse again when
 * the leader went (retry), else each goes on alone (it cannot be shared). */
static void fill_drop(cache_x *x, bool retry)
{
    x->filling = false;
    free(x->body);
    x->body = NULL;
    if (x->flight)
        gh_cache_flight_done(x->store, x->flight, NULL, false, retry);
    x->flight = NULL;
}

/* Headers the entry does not keep: per-response ones made again on each
 * HIT, and the ones every response of the exchange gets (CORS, ...; ex
 * NULL: a detached fill's, which has none). */
static bool kept(const gh_exchange *ex, const gh_header *h)
{
    if (hdr_is(h, "date", 4) || hdr_is(h, "age", 3) || hdr_is(h, "x-request-id", 12) ||
        hdr_is(h, "gatehouse-cache", 15))
        return false;
    for (size_t i = 0; ex && i < ex->nresp_extra; i++)
        if (hdr_is(h, ex->resp_extra[i].name, ex->resp_extra[i].name_len))
            return false;
    return true;
}

/* An Age field's delta-seconds; junk counts as 0. */
static uint32_t age_of(const gh_header *h)
{
    uint32_t age = 0;
    for (size_t k = 0; k < h->value_len && k < 9; k++)
        age = h->value[k] >= '0' && h->value[k] <= '9' ? age * 10 + (uint32_t)(h->value[k] - '0') : 0;
    return age;
}

static const gh_downstream_ops tee_ops;
static void fill_keep(gh_exchange *ex, cache_x *x);

/* A filter under us may step aside at the head (compress does when it
 * does not encode, putting its own next back in ex->down): stay on top. */
static void stay_on_top(gh_exchange *ex, cache_x *x)
{
    if (ex->down != &tee_ops) {
        x->next = ex->down;
        ex->down = &tee_ops;
    }
}

static int tee_send_head(gh_exchange *ex, int status, const gh_header *hdrs, size_t n, int64_t clen)
{
    cache_x *x = ex->cache;
    const gh_cache_cfg *c = x->conf;
    x->lifetime_ms = gh_cache_lifetime_ms(status, hdrs, n, c->ttl_ms, time(NULL));
    x->keep = x->lifetime_ms > 0;
    /* not storable, but waiters share it (an error too) */
    if ((!x->keep && !x->flight) || (clen >= 0 && (uint64_t)clen > c->max_entry))
        fill_drop(x, false);
    if (x->filling && (x->hdrs = gh_arena_alloc(&ex->arena, (n ? n : 1) * sizeof(*hdrs)))) {
        x->status = status;
        for (size_t i = 0; i < n; i++) {
            if (hdr_is(&hdrs[i], "age", 3))
                x->age0 = age_of(&hdrs[i]);
            if (!kept(ex, &hdrs[i]))
                continue;
            /* the producer's head may live in a buffer its body reuses */
            char *t = gh_arena_alloc(&ex->arena, hdrs[i].name_len + hdrs[i].value_len + 1);
            if (!t) {
                x->filling = false;
                break;
            }
            memcpy(t, hdrs[i].name, hdrs[i].name_len);
            memcpy(t + hdrs[i].name_len, hdrs[i].value, hdrs[i].value_len);
            x->hdrs[x->nhdrs++] = (gh_header){ t, t + hdrs[i].name_len, hdrs[i].name_len, hdrs[i].value_len };
        }
    } else if (x->filling) {
        fill_drop(x, false);
    }
    x->clen = clen;
    if (x->filling && clen == 0)
        fill_keep(ex, x);   /* complete already: see tee_send_body */
    const gh_downstream_ops *next = x->next;
    int rc = next->send_head(ex, status, hdrs, n, clen);
    stay_on_top(ex, x);
    return rc;
}

static int tee_send_body(gh_exchange *ex, const char *p, size_t len)
{
    cache_x *x = ex->cache;
    if (x->filling && len) {
        if (x->len + len > x->conf->max_entry) {
            fill_drop(x, false);   /* past max_entry: served, not kept */
        } else {
            if (x->len + len > x->cap) {
                size_t cap = x->cap ? x->cap * 2 : 16384;
                while (cap < x->len + len)
                    cap *= 2;
                char *b = realloc(x->body, cap);
                if (!b) {
                    fill_drop(x, false);
                    return x->next->send_body(ex, p, len);
                }
                x->body = b;
                x->cap = cap;
            }
            memcpy(x->body + x->len, p, len);
            x->len += len;
            /* With a Content-Length the client has the whole answer once these
             * bytes are written, and may ask again (on another worker) before
             * finish() runs: the fill ends first, so that request finds the
             * entry or no flight, never this one's fill still open. */
            if (x->clen >= 0 && x->len == (uint64_t)x->clen)
                fill_keep(ex, x);
        }
    }
    return x->next->send_body(ex, p, len);
}

/* The whole response went by: it becomes an entry. */
static void fill_keep(gh_exchange *ex, cache_x *x)
{
    x->filling = false;
    if (x->body && x->cap > x->len) {   /* `size` counts what the entry holds: no growth slack */
        char *b = realloc(x->body, x->len ? x->len : 1);
        x->body = b ? b : x->body;
    }
    const gh_str route = ex->log.route;
    gh_cache_entry *e = gh_cache_entry_new(x->key, route, ex->path, x->status, x->hdrs, x->nhdrs, x->body, x->len);
    x->body = NULL;
    gh_cache_flight *f = x->flight;
    x->flight = NULL;
    if (!e) {
        if (f)
            gh_cache_flight_done(x->store, f, NULL, false, false);
        return;
    }
    e->stored_ms = gh_now_ms(ex->env);
    e->expires_ms = e->stored_ms + x->lifetime_ms;
    bool redis = x->conf->store == GH_CACHE_REDIS;
    if (redis && x->keep)
        gh_cache_redis_store(ex->env->redis, e, x->lifetime_ms);
    if (f)
        gh_cache_flight_done(x->store, f, e, x->keep && !redis, false);
    else if (redis || !x->keep)
        gh_cache_entry_unref(e);
    else
        gh_cache_insert(x->store, e);
}

static int tee_finish(gh_exchange *ex)
{
    cache_x *x = ex->cache;
    if (x->filling)
        fill_keep(ex, x);
    return x->next->finish(ex);
}

static int tee_finish_trailers(gh_exchange *ex, const gh_header *h, size_t n)
{
    cache_x *x = ex->cache;
    fill_drop(x, false);   /* trailers are not kept: such a response is not stored */
    return x->next->finish_trailers(ex, h, n);
}

static void tee_abort(gh_exchange *ex)
{
    cache_x *x = ex->cache;
    fill_drop(x, true);   /* a truncated body is never an entry */
    x->next->abort(ex);
}

static void tee_resume_body(gh_exchange *ex) { ((cache_x *)ex->cache)->next->resume_body(ex); }

static int tee_upgrade(gh_exchange *ex, const gh_header *h, size_t n, gh_takeover *t)
{
    cache_x *x = ex->cache;
    fill_drop(x, false);
    ex->down = x->next;
    return x->next->upgrade(ex, h, n, t);
}

static const gh_downstream_ops tee_ops = {
    .send_head = tee_send_head,
    .send_body = tee_send_body,
    .finish = tee_finish,
    .abort = tee_abort,
    .resume_body = tee_resume_body,
    .finish_trailers = tee_finish_trailers,
    .upgrade = tee_upgrade,
};

/* The chain passed (compress's filter, if any, is in ex->down): the tee
 * goes on top, then the target runs. */
static void start_fill(gh_plugin_run *run)
{
    gh_exchange *ex = run->ex;
    cache_x *x = ex->cache;
    x->next = ex->down;
    x->filling = true;
    ex->down = &tee_ops;
    run->done = x->done;
    run->done_ctx = x->done_ctx;
    run->done(run);
}

/* -------------------------------------------------------- detached fill -- */

/* A collapsed fill: the flight's, not an exchange's (malloc'd, with copies
 * of the key, route and path; freed when the answer went to the flight). */
typedef struct cache_fill {
    const gh_cache_cfg *conf;       /* the pinned snapshot's: the child holds the pin */
    gh_cache_store *store;
    gh_cache_flight *flight;
    gh_str key, route, path;
} cache_fill;

/* The entry the fill's answer makes, with *lifetime (0: share, do not keep). */
static gh_cache_entry *answer_entry(const cache_fill *f, const gh_detached_answer *a, uint64_t *lifetime)
{
    *lifetime = gh_cache_lifetime_ms(a->status, a->headers, a->nheaders, f->conf->ttl_ms, time(NULL));
    gh_header *hs = malloc((a->nheaders ? a->nheaders : 1) * sizeof(*hs));
    char *body = malloc(a->body_len ? a->body_len : 1);
    if (!hs || !body) {
        free(hs);
        free(body);
        return NULL;
    }
    uint32_t age0 = 0;
    size_t n = 0;
    for (size_t i = 0; i < a->nheaders; i++) {
        if (hdr_is(&a->headers[i], "age", 3))
            age0 = age_of(&a->headers[i]);
        if (kept(NULL, &a->headers[i]))
            hs[n++] = a->headers[i];
    }
    memcpy(body, a->body, a->body_len);   /* once per fill: the waiters share the entry */
    gh_cache_entry *e = gh_cache_entry_new(f->key, f->route, f->path, a->status, hs, n, body, a->body_len);
    free(hs);
    if (e) {
        e->stored_ms = gh_now_ms(a->env);
        e->expires_ms = e->stored_ms + *lifetime;
        e->age0 = age0;
    }
    return e;
}

/* A marker that sends the key's misses upstream on their own for ttl. */
static gh_cache_entry *pass_marker(const cache_fill *f, const gh_detached_answer *a)
{
    gh_cache_entry *e = gh_cache_entry_new(f->key, f->route, f->path, 0, NULL, 0, NULL, 0);
    if (e) {
        e->pass = true;
        e->stored_ms = gh_now_ms(a->env);
        e->expires_ms = e->stored_ms + f->conf->ttl_ms;
    }
    return e;
}

/* The fill answered (on the leader's worker): every waiter gets it, an
 * error too; it is kept when storable. No answer (cut short, the worker
 * stopping): each waiter goes upstream alone. Over max_entry: the same,
 * and a pass marker keeps later misses of the key from collapsing into
 * another fill that would be cut again. */
static void detached_done(void *ctx, const gh_detached_answer *a)
{
    cache_fill *f = ctx;
    uint64_t lifetime = 0;
    bool big = a->error && strcmp(a->error, "response_too_large") == 0;
    gh_cache_entry *e = a->status && !a->error ? answer_entry(f, a, &lifetime) : NULL;
    if (big && (e = pass_marker(f, a)))
        lifetime = f->conf->ttl_ms;
    bool redis = f->conf->store == GH_CACHE_REDIS;
    if (e && redis && lifetime && !e->pass)
        gh_cache_redis_store(a->env->redis, e, lifetime);
    gh_cache_flight_done(f->store, f->flight, e, e && lifetime && (!redis || e->pass), false);
    free(f);
}

/* Lead the flight with a detached fill and wait for it like the others;
 * false (nothing changed) when the route cannot detach. */
static bool detach_fill(gh_plugin_run *run, cache_x *x, gh_cache_flight *lead)
{
    gh_exchange *ex = run->ex;
    if (!run->detach)
        return false;
    gh_str route = ex->log.route;
    cache_fill *f = malloc(sizeof(*f) + x->key.len + route.len + ex->path.len + 1);
    if (!f)
        return false;
    char *p = (char *)(f + 1);
    *f = (cache_fill){ .conf = x->conf, .store = x->store, .flight = lead };
    f->key = (gh_str){ memcpy(p, x->key.p, x->key.len), x->key.len };
    p += x->key.len;
    f->route = (gh_str){ route.len ? memcpy(p, route.p, route.len) : p, route.len };
    p += route.len;
    f->path = (gh_str){ ex->path.len ? memcpy(p, ex->path.p, ex->path.len) : p, ex->path.len };
    gh_cache_flight_join(x->store, lead, &x->waiter);   /* answered on a later turn at the earliest */
    if (!run->detach(run, x->conf->max_entry, detached_done, f)) {
        gh_cache_waiter_cancel(x->store, &x->waiter);
        free(f);
        return false;
    }
    x->led = true;
    return true;
}

/* --------------------------------------------------------------- plugin -- */

/* HIT, MISS (leading a fill, or alone), or wait for the fill under way. */
static int decide(gh_plugin_run *run, cache_x *x)
{
    gh_exchange *ex = run->ex;
    bool get = ex->method_bit == GH_M_GET;   /* a HEAD has no body to keep or share */
    gh_cache_waiter *w = x->wake && get ? &x->waiter : NULL;
    gh_cache_flight *lead = NULL;
    int r = gh_cache_decide(x->store, x->hash, x->key, gh_now_ms(ex->env), w, &x->entry, &lead);
    if (r == GH_CACHE_JOINED)
        return GH_PLUGIN_WAIT;
    if (r == GH_CACHE_HIT) {
        mark(ex, result_hit, "HIT");
        run->done = serve_hit;
        return GH_PLUGIN_NEXT;
    }
    if (r == GH_CACHE_LEAD && detach_fill(run, x, lead))
        return GH_PLUGIN_WAIT;
    x->flight = lead;
    mark(ex, result_miss, "MISS");
    if (get)
        run->done = start_fill;
    return GH_PLUGIN_NEXT;
}

/* The fill this request waited for ended (on this worker's loop). */
static void waited(gh_cache_waiter *w)
{
    gh_plugin_run *run = w->data;
    cache_x *x = run->ex->cache;
    if (w->entry) {
        x->entry = w->entry;   /* the fill's answer, whatever it was */
        w->entry = NULL;
        if (x->led)
            mark(run->ex, result_miss, "MISS");   /* its own fill: served from the entry */
        else
            mark(run->ex, result_hit, "HIT");
        run->done = serve_hit;
    } else if (!w->retry) {
        x->led = false;
        mark(run->ex, result_miss, "MISS");   /* it could not be shared: alone, no fill */
    } else if (decide(run, x) == GH_PLUGIN_WAIT) {
        return;   /* the leader left: another one leads now */
    }
    gh_plugin_resume(run, GH_PLUGIN_NEXT);
}

static void wait_cancel(gh_plugin_run *run)
{
    cache_x *x = run->ex->cache;
    gh_cache_waiter_cancel(x->store, &x->waiter);
}

/* store: redis answered (any failure is a MISS, never an error). */
static void redis_answered(void *ctx, gh_cache_entry *e)
{
    gh_plugin_run *run = ctx;
    cache_x *x = run->ex->cache;
    if (e) {
        x->entry = e;
        mark(run->ex, result_hit, "HIT");
        run->done = serve_hit;
    } else if (decide(run, x) == GH_PLUGIN_WAIT) {
        run->cancel = wait_cancel;   /* another request of this process fills it */
        return;
    }
    gh_plugin_resume(run, GH_PLUGIN_NEXT);
}

static void redis_cancel(gh_plugin_run *run)
{
    cache_x *x = run->ex->cache;
    gh_redis_cancel(x->rget.h);
}

static int cache_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    gh_exchange *ex = run->ex;
    const gh_cache_cfg *c = (const gh_cache_cfg *)conf;
    if (ex->dry_run || !conf->rt)
        return GH_PLUGIN_NEXT;   /* explain records the route, sends nothing */
    /* credentials: Authorization, or any the authentication plugins took
     * (an API key in a header or the query, a client certificate): one
     * consumer's answer must not reach another */
    bool credentials = gh_exchange_header(ex, "authorization", 13) || ex->log.consumer.len;
    if (!(ex->method_bit & c->methods) || (!c->shared_auth && credentials)) {
        mark(ex, result_bypass, "BYPASS");
        return GH_PLUGIN_NEXT;
    }
    cache_x *x = gh_arena_zalloc(&ex->arena, sizeof(*x));
    if (!x || !gh_cache_key(ex, ex->log.route, c, &x->key))
        return GH_PLUGIN_NEXT;
    x->conf = c;
    x->store = conf->rt;
    x->wake = c->collapse ? gh_plugin_context(run, conf) : NULL;
    x->hash = gh_cache_hash(x->key);
    x->waiter.wake = x->wake;
    x->waiter.data = run;
    x->done = run->done;
    x->done_ctx = run->done_ctx;
    ex->cache = x;
    if (c->store == GH_CACHE_REDIS) {
        x->rget = (gh_cache_redis_get){ .cb = redis_answered, .ctx = run, .key = x->key,
                                     .route = ex->log.route, .path = ex->path, .now_ms = gh_now_ms(ex->env) };
        if (gh_cache_redis_lookup(ex->env->redis, &x->rget)) {
            run->cancel = redis_cancel;
            return GH_PLUGIN_WAIT;
        }   /* not connected: a MISS */
    }
    int r = decide(run, x);
    if (r == GH_PLUGIN_WAIT)
        run->cancel = wait_cancel;
    return r;
}

static void cache_after(gh_plugin_run *run, const gh_plugin_cfg *conf, void *ctx)
{
    (void)conf;
    (void)ctx;
    cache_x *x = run->ex->cache;
    if (!x)
        return;
    gh_cache_entry_unref(x->entry);
    x->entry = NULL;
    fill_drop(x, true);   /* the client left before the fill ended */
}

static void *cache_context_new(const gh_plugin_cfg *conf, uv_loop_t *loop)
{
    const gh_cache_cfg *c = (const gh_cache_cfg *)conf;
    return c->collapse && conf->rt ? gh_cache_wake_new(conf->rt, loop, waited) : NULL;
}

static void cache_context_free(void *ctx) { gh_cache_wake_free(ctx); }

static bool cache_compile(gh_plugin_cfg *conf, const gh_plugin_build *b)
{
    const gh_cache_cfg *c = (const gh_cache_cfg *)conf;
    conf->rt = gh_cache_store_get(conf->state_key, c->size);
    return conf->rt != NULL;
}

static void cache_release(gh_plugin_cfg *conf)
{
    gh_cache_store_put(conf->rt);
    conf->rt = NULL;
}

static void cache_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    (void)cfg;
    const gh_cache_cfg *c = (const gh_cache_cfg *)conf;
    snprintf(buf, cap, "ttl %llums, store %s, size %llu bytes, max entry %llu bytes%s%s",
             (unsigned long long)c->ttl_ms, c->store == GH_CACHE_REDIS ? "redis" : "memory",
             (unsigned long long)c->size, (unsigned long long)c->max_entry, c->collapse ? ", collapse" : "",
             c->shared_auth ? ", shared_auth" : "");
}

const gh_plugin_ops gh_cache_plugin = {
    .name = "cache", .compile = cache_compile, .release = cache_release, .request = cache_request,
    .describe = cache_describe, .after = cache_after,
    .context_new = cache_context_new, .context_free = cache_context_free,
};
