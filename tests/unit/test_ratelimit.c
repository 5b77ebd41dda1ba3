/* test_ratelimit.c — rate limits: the sliding window and token bucket
 * arithmetic with a fake clock, the local table's bound under 100,000 and
 * more distinct keys, and the plugin driven in-process (keys, headers, 429,
 * per-worker contexts kept across an unchanged reload, the after hook,
 * configuration errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "plugins/plugin.h"
#include "plugins/ratelimit_algo.h"
#include "plugins/ratelimit_store.h"

/* ------------------------------------------------------------ arithmetic */

static void test_sliding_window(void **state)
{
    gh_rl_limit l = { 10, 10000 };   /* 10 per 10s */
    gh_rl_step s;
    uint64_t w = 0;
    for (int i = 0; i < 10; i++) {
        w = gh_rl_sliding_take(w, 100, l, &s);
        assert_true(s.allowed);
        assert_int_equal(s.remaining, 9 - i);
    }
    assert_int_equal(s.reset_ms, 10900);   /* next window, once the previous one weighs 9 or less: 10*(W-t)/W <= 9 at t=11s */
    uint64_t before = w;
    w = gh_rl_sliding_take(w, 5000, l, &s);
    assert_false(s.allowed);
    assert_int_equal(w, before);           /* a refusal changes nothing */
    assert_int_equal(s.remaining, 0);
    assert_int_equal(s.reset_ms, 6000);
    /* t=15s: the previous window (10) weighs half: 5 more fit */
    for (int i = 0; i < 5; i++) {
        w = gh_rl_sliding_take(w, 15000, l, &s);
        assert_true(s.allowed);
    }
    w = gh_rl_sliding_take(w, 15000, l, &s);
    assert_false(s.allowed);
    assert_int_equal(s.reset_ms, 1000);    /* 10*(W-t)/W + 5 <= 9 at t=16s */
    /* two windows later everything is forgotten */
    w = gh_rl_sliding_take(w, 30000, l, &s);
    assert_true(s.allowed);
    assert_int_equal(s.remaining, 9);
    /* a refund gives back in the same window only */
    w = gh_rl_sliding_refund(w, 30001, l);
    gh_rl_sliding_take(w, 30002, l, &s);
    assert_int_equal(s.remaining, 9);
    /* another worker's clock a little behind: counted in the newer window, not a reset */
    w = gh_rl_sliding_take(0, 20000, l, &s);
    w = gh_rl_sliding_take(w, 19999, l, &s);
    assert_true(s.allowed);
    assert_int_equal(s.remaining, 8);
}

static void test_token_bucket(void **state)
{
    gh_rl_limit l = { 10, 10000 };   /* 10 at once, then one a second */
    gh_rl_step s;
    uint64_t w = 0;
    for (int i = 0; i < 10; i++) {
        w = gh_rl_bucket_take(w, 0, l, &s);
        assert_true(s.allowed);
        assert_int_equal(s.remaining, 9 - i);
    }
    assert_int_equal(s.reset_ms, 1000);
    w = gh_rl_bucket_take(w, 500, l, &s);
    assert_false(s.allowed);
    assert_int_equal(s.reset_ms, 500);
    w = gh_rl_bucket_take(w, 1000, l, &s);
    assert_true(s.allowed);
    assert_int_equal(s.remaining, 0);
    /* idle for a window: full again */
    w = gh_rl_bucket_take(w, 20000, l, &s);
    assert_true(s.allowed);
    assert_int_equal(s.remaining, 9);
    w = gh_rl_bucket_refund(w, 20000, l);
    gh_rl_bucket_take(w, 20000, l, &s);
    assert_int_equal(s.remaining, 9);
    /* 7 per second (an interval that is not a whole number of microseconds): still 7 at once */
    gh_rl_limit seven = { 7, 1000 };
    w = 0;
    int n = 0;
    for (int i = 0; i < 20; i++) {
        w = gh_rl_bucket_take(w, 0, seven, &s);
        n += s.allowed;
    }
    assert_int_equal(n, 7);
}

/* ---------------------------------------------------------- cluster store */

/* Without a Redis answer (here: no client at all), the floor and on_error
 * decide: allow serves under the local floor, deny says unavailable; the
 * floor refuses before Redis is asked. Each failure is counted. */
static void test_cluster_store_floor_and_on_error(void **state)
{
    gh_rl_store *st = gh_rl_cluster_store();
    assert_non_null(st);
    assert_true(st->async);
    gh_rl_policy p = { .algorithm = GH_RL_SLIDING_WINDOW, .n = 1, .limits = { { 3, 60000 } }, .idle_ms = 120000 };
    uint64_t now = 5000000, h = 0x1234567890abcdefULL, errors = gh_rl_cluster_errors();
    gh_rl_wait w = { 0 };
    gh_rl_verdict v;
    for (int i = 0; i < 3; i++) {   /* allow: served, the floor counting */
        assert_int_equal(st->take(st, &p, (gh_str){ NULL, 0 }, h, now, &v, &w), GH_OK);
        assert_true(v.allowed && v.counted && !v.unavailable);
        assert_int_equal(v.remaining, 2 - i);
    }
    assert_int_equal(gh_rl_cluster_errors(), errors + 3);
    assert_int_equal(st->take(st, &p, (gh_str){ NULL, 0 }, h, now, &v, &w), GH_OK);
    assert_false(v.allowed);   /* the floor: the limit holds per process without Redis */
    assert_false(v.unavailable);
    assert_int_equal(gh_rl_cluster_errors(), errors + 3);   /* refused before asking */
    p.deny_on_error = true;   /* deny: unavailable, while the floor still has room */
    assert_int_equal(st->take(st, &p, (gh_str){ NULL, 0 }, h + 2, now, &v, &w), GH_OK);
    assert_true(v.unavailable && !v.allowed);
    assert_int_equal(gh_rl_cluster_errors(), errors + 4);
}

/* ----------------------------------------------------------- local table */

static void test_table_is_bounded(void **state)
{
    gh_rl_store *st = gh_rl_local_store();
    assert_non_null(st);
    assert_int_equal(gh_rl_local_bytes(), 16u << 20);
    gh_rl_policy p = { .algorithm = GH_RL_SLIDING_WINDOW, .n = 1, .limits = { { 5, 60000 } }, .idle_ms = 120000 };
    uint64_t now = 1000000;
    gh_rl_verdict v;
    size_t counted = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ULL | 2;
        st->take(st, &p, (gh_str){ "k", 1 }, h, now, &v, NULL);
        counted += v.counted;
        assert_true(v.allowed);
    }
    assert_int_equal(counted, 100000);
    assert_int_equal(gh_rl_local_keys(now), 100000);
    /* the same key again is counted in its slot */
    uint64_t h0 = 0x9e3779b97f4a7c15ULL | 2;
    st->take(st, &p, (gh_str){ "k", 1 }, h0, now, &v, NULL);
    assert_int_equal(v.remaining, 3);
    /* a flood past the table's size: held keys stay, the excess passes uncounted */
    size_t uncounted = 0;
    for (uint64_t i = 100000; i < 400000; i++) {
        st->take(st, &p, (gh_str){ "k", 1 }, (i + 1) * 0x9e3779b97f4a7c15ULL | 2, now, &v, NULL);
        uncounted += !v.counted;
        assert_true(v.allowed);
    }
    assert_true(uncounted > 0);
    assert_true(gh_rl_local_keys(now) <= GH_RL_LOCAL_SLOTS);
    st->take(st, &p, (gh_str){ "k", 1 }, h0, now, &v, NULL);
    assert_int_equal(v.remaining, 2);   /* an established key kept its count */
    /* once idle keys expire, new keys take their slots over */
    now += p.idle_ms + 1;
    counted = 0;
    for (uint64_t i = 400000; i < 500000; i++) {
        st->take(st, &p, (gh_str){ "k", 1 }, (i + 1) * 0x9e3779b97f4a7c15ULL | 2, now, &v, NULL);
        counted += v.counted;
    }
    assert_int_equal(counted, 100000);
    assert_int_equal(gh_rl_local_keys(now), 100000);
}

/* -------------------------------------------------------------- plugin */

static gh_http_env env;
static uv_loop_t loop;
static int status;
static char headers[2048], body[1024];
static bool passed_chain;

static int rec_head(gh_exchange *ex, int st, const gh_header *h, size_t n, int64_t cl)
{
    status = st;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(headers + k, sizeof(headers) - k, "%.*s: %.*s\n", (int)h[i].name_len, h[i].name,
                              (int)h[i].value_len, h[i].value);
    return GH_OK;
}
static int rec_body(gh_exchange *ex, const char *p, size_t len)
{
    snprintf(body, sizeof(body), "%.*s", (int)len, p);
    return GH_OK;
}
static int rec_finish(gh_exchange *ex) { return GH_OK; }
static const gh_downstream_ops rec_ops = { .send_head = rec_head, .send_body = rec_body, .finish = rec_finish };

typedef struct world {
    gh_config *cfg;
    gh_consumers *consumers;
    gh_plugin_slots slots;
    void **ctx;
} world;

static gh_plugin_live *live;   /* this "worker's" contexts */

static world load(const char *yaml)
{
    gh_diag d;
    gh_diag_init(&d, "t.yaml");
    world w = { 0 };
    w.cfg = gh_config_load_string("t.yaml", yaml, strlen(yaml), &d);
    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "%s\n", d.items[i].text);
    assert_non_null(w.cfg);
    assert_true(gh_plugins_compile(w.cfg, &w.consumers, &w.slots, &d));
    gh_diag_free(&d);
    w.ctx = gh_plugin_contexts_adopt(&live, &w.slots, &loop);
    return w;
}

static void unload(world *w)
{
    gh_plugin_contexts_drop(&live, &w->slots, w->ctx);
    gh_plugins_release(w->cfg, w->consumers, &w->slots);
    gh_config_free(w->cfg);
}

static void passed(gh_plugin_run *run) { passed_chain = true; }

/* One request through route ri's chain, then the done path (after hooks). */
static void request(world *w, size_t ri, const char *client, const char *hdr)
{
    status = 0;
    headers[0] = body[0] = '\0';
    passed_chain = false;
    gh_exchange *ex = gh_exchange_new(&env);
    ex->down = &rec_ops;
    ex->method = gh_str_c("GET");
    ex->method_bit = GH_M_GET;
    ex->log.route = w->cfg->routes[ri].name;
    snprintf(ex->client, sizeof(ex->client), "%s", client);
    static gh_header h;
    static char copy[256];
    if (hdr) {
        snprintf(copy, sizeof(copy), "%s", hdr);
        char *colon = strchr(copy, ':');
        h = (gh_header){ copy, colon + 2, (uint32_t)(colon - copy), (uint32_t)strlen(colon + 2) };
        ex->headers = &h;
        ex->nheaders = 1;
    }
    gh_plugin_run *run = gh_arena_alloc(&ex->arena, sizeof(*run));
    memset(run, 0, sizeof(*run));
    run->ex = ex;
    run->chain = &w->cfg->routes[ri].chain;
    run->consumers = w->consumers;
    run->contexts = w->ctx;
    run->done = passed;
    gh_plugin_chain_start(run);
    if (passed_chain)   /* the target would answer */
        gh_exchange_send_head(ex, 200, NULL, 0, 0);
    if (ex->plugin_run)
        gh_plugin_after_response(ex->plugin_run);
    gh_exchange_free(ex);
}

static const char two_routes[] =
    "listen: [{ address: 127.0.0.1:1 }]\n"
    "consumers:\n"
    "  - { name: alice, api_keys: [alice-key-123456] }\n"
    "routes:\n"
    "  - name: a\n"
    "    match: { prefix: /a }\n"
    "    echo: {}\n"
    "    plugins:\n"
    "      key_auth: {}\n"
    "      rate_limit: { limits: [ { limit: 3, window: 1h }, { limit: 100, window: 1s } ] }\n"
    "  - name: b\n"
    "    match: { prefix: /b }\n"
    "    echo: {}\n"
    "    plugins: { rate_limit: { limit: 2, window: 1m, key: [ip, \"header:X-Tenant\"], algorithm: token_bucket } }\n";

static void test_plugin_headers_and_429(void **state)
{
    world w = load(two_routes);
    for (int i = 0; i < 3; i++) {
        request(&w, 0, "10.0.0.1", "X-API-Key: alice-key-123456");
        assert_int_equal(status, 200);
    }
    assert_non_null(strstr(headers, "RateLimit-Limit: 3\n"));
    assert_non_null(strstr(headers, "RateLimit-Remaining: 0\n"));
    assert_non_null(strstr(headers, "RateLimit-Policy: 3;w=3600, 100;w=1\n"));
    /* the consumer is the key: another address is the same client */
    request(&w, 0, "10.0.0.2", "X-API-Key: alice-key-123456");
    assert_int_equal(status, 429);
    assert_non_null(strstr(headers, "Retry-After: "));
    assert_non_null(strstr(body, "\"code\":\"rate_limited\""));
    assert_non_null(strstr(body, "limit of 3 per 1h reached for consumer alice"));

    /* key [ip, header]: each pair counts apart; a missing header falls back to the ip */
    request(&w, 1, "10.0.0.1", "X-Tenant: t1");
    request(&w, 1, "10.0.0.1", "X-Tenant: t1");
    assert_int_equal(status, 200);
    request(&w, 1, "10.0.0.1", "X-Tenant: t1");
    assert_int_equal(status, 429);
    assert_non_null(strstr(body, "for ip 10.0.0.1, header X-Tenant"));
    assert_null(strstr(body, "t1"));   /* a header's value is not echoed */
    request(&w, 1, "10.0.0.1", "X-Tenant: t2");
    assert_int_equal(status, 200);
    request(&w, 1, "10.0.0.9", "X-Tenant: t1");
    assert_int_equal(status, 200);
    unload(&w);
}

typedef struct rl_ctx_view {   /* rate_limit.c's context: the store, then its counters */
    void *store;
    uint64_t passed, limited;
} rl_ctx_view;

static void test_contexts_kept_across_unchanged_reload(void **state)
{
    world a = load(two_routes);
    assert_int_equal(a.slots.n, 2);
    request(&a, 1, "10.1.0.1", NULL);
    request(&a, 1, "10.1.0.1", NULL);
    request(&a, 1, "10.1.0.1", NULL);
    const rl_ctx_view *ctx = a.ctx[a.cfg->routes[1].plugins.p[GH_PLUGIN_RATE_LIMIT]->ctx_slot];
    assert_int_equal(ctx->passed, 2);    /* the after hook counted */
    assert_int_equal(ctx->limited, 1);

    /* the same file again: same contexts, same counts (the 4th is refused) */
    world b = load(two_routes);
    assert_ptr_equal(b.ctx[0], a.ctx[0]);
    assert_ptr_equal(b.ctx[1], a.ctx[1]);
    unload(&a);
    request(&b, 1, "10.1.0.1", NULL);
    assert_int_equal(status, 429);

    /* route b's limit changed: a new context and fresh counts; route a's kept */
    char changed[sizeof(two_routes) + 8];
    snprintf(changed, sizeof(changed), "%s", two_routes);
    char *p = strstr(changed, "limit: 2,");
    p[7] = '5';
    world c = load(changed);
    const gh_plugin_cfg *ca = c.cfg->routes[0].plugins.p[GH_PLUGIN_RATE_LIMIT];
    const gh_plugin_cfg *cb = c.cfg->routes[1].plugins.p[GH_PLUGIN_RATE_LIMIT];
    assert_ptr_equal(c.ctx[ca->ctx_slot], b.ctx[b.cfg->routes[0].plugins.p[GH_PLUGIN_RATE_LIMIT]->ctx_slot]);
    assert_ptr_not_equal(c.ctx[cb->ctx_slot], b.ctx[b.cfg->routes[1].plugins.p[GH_PLUGIN_RATE_LIMIT]->ctx_slot]);
    unload(&b);
    request(&c, 1, "10.1.0.1", NULL);
    assert_int_equal(status, 200);
    unload(&c);
    assert_null(live);   /* every context freed with its last snapshot */
}

static void test_dry_run_counts_nothing(void **state)
{
    world w = load(two_routes);
    void **ctx = w.ctx;
    w.ctx = NULL;   /* as in `explain`: no worker, no context */
    for (int i = 0; i < 5; i++) {
        request(&w, 1, "10.2.0.1", NULL);
        assert_true(passed_chain);
    }
    w.ctx = ctx;
    request(&w, 1, "10.2.0.1", NULL);
    assert_non_null(strstr(headers, "RateLimit-Remaining: 1\n"));
    unload(&w);
}

static char *errors_of(const char *yaml, char *out, size_t cap)
{
    gh_diag d;
    gh_diag_init(&d, "t.yaml");
    out[0] = '\0';
    gh_config *cfg = gh_config_load_string("t.yaml", yaml, strlen(yaml), &d);
    if (cfg)
        gh_config_free(cfg);
    size_t k = 0;
    for (size_t i = 0; i < d.n; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s\n", d.items[i].text);
    gh_diag_free(&d);
    return out;
}

#define ROUTE(rl) "listen: [{ address: 127.0.0.1:1 }]\nroutes:\n  - name: r\n    match: { prefix: / }\n    echo: {}\n" \
                  "    plugins:\n      rate_limit: " rl "\n"

static void test_config_errors(void **state)
{
    char e[2048];
    assert_string_equal(errors_of(ROUTE("{}"), e, sizeof(e)),
                        "t.yaml:7:7: rate_limit needs both limit and window (e.g. limit: 100, window: 1m)\n");
    assert_string_equal(errors_of(ROUTE("{ limit: 10, window: 1m, scope: cluster }"), e, sizeof(e)),
                        "t.yaml:7:51: rate_limit scope 'cluster' needs a top-level redis: section "
                        "(redis: { address: host:port })\n");
    /* with redis: (anywhere in the file) it loads */
    assert_string_equal(errors_of(ROUTE("{ limit: 10, window: 1m, scope: cluster }") "redis: { address: 127.0.0.1:1 }\n",
                                  e, sizeof(e)), "");
    assert_string_equal(errors_of(ROUTE("{ limit: 10, window: 1m, key: [consumer, cookie] }"), e, sizeof(e)),
                        "t.yaml:7:60: unknown rate_limit key 'cookie' (use consumer, ip, route or header:NAME)\n");
    assert_string_equal(errors_of(ROUTE("{ limit: 10, window: 500ms }"), e, sizeof(e)),
                        "t.yaml:7:40: a rate_limit window must be at least 1s\n");
    assert_string_equal(errors_of(ROUTE("{ limit: 0, window: 1m }"), e, sizeof(e)),
                        "t.yaml:7:28: expected an integer between 1 and 1000000, got 0\n");
    assert_string_equal(errors_of(ROUTE("{ limit: 1, window: 1m, limits: [] }"), e, sizeof(e)),
                        "t.yaml:7:43: rate_limit takes either limit and window, or limits: [...], not both\n");
    assert_string_equal(errors_of(ROUTE("{ limit: 1, window: 1m, algorithm: leaky }"), e, sizeof(e)),
                        "t.yaml:7:54: unknown rate_limit algorithm 'leaky' (use sliding_window or token_bucket)\n");
    assert_string_equal(errors_of(ROUTE("{ limits: [ { limit: 1, window: 1s }, { limit: 5, window: 1s } ] }"), e, sizeof(e)),
                        "t.yaml:7:77: rate_limit has two limits with the same window\n");
    assert_string_equal(errors_of(ROUTE("{ limit: 1, windw: 1m }"), e, sizeof(e)),
                        "t.yaml:7:7: rate_limit needs both limit and window (e.g. limit: 100, window: 1m)\n"
                        "t.yaml:7:31: unknown key 'windw' (did you mean 'window'?)\n");
}

int main(void)
{
    uv_loop_init(&loop);
    env.loop = &loop;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_table_is_bounded),
        cmocka_unit_test(test_cluster_store_floor_and_on_error),
        cmocka_unit_test(test_plugin_headers_and_429),
        cmocka_unit_test(test_contexts_kept_across_unchanged_reload),
        cmocka_unit_test(test_dry_run_counts_nothing),
        cmocka_unit_test(test_config_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    gh_exchange_cache_clear(&env);
    uv_loop_close(&loop);
    return rc;
}
