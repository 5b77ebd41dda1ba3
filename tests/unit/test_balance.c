/* test_balance.c — choosing a target (proxy/balance.c): least_conn ties go
 * round robin (weighted), loaded targets are avoided, tried ones skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "config/config.h"
#include "core/diag.h"
#include "proxy/balance.h"

static gh_config *load(const char *yaml)
{
    gh_diag d;
    gh_diag_init(&d, "test.yaml");
    gh_config *cfg = gh_config_load_string("test.yaml", yaml, strlen(yaml), &d);
    if (!cfg)
        gh_diag_print(&d, stderr);
    assert_non_null(cfg);
    gh_diag_free(&d);
    return cfg;
}

#define UPSTREAM(targets) \
    "listen: [ { address: 127.0.0.1:8080 } ]\n" \
    "upstreams:\n  u:\n    balance: least_conn\n    targets: " targets "\n" \
    "routes:\n  - { name: r, match: { prefix: / }, upstream: u }\n"

/* Sequential requests (each ends before the next starts): every target is
 * idle at each pick, so the tie decides everything. */
static void test_least_conn_ties_go_round_robin(void **state)
{
    (void)state;
    gh_config *cfg = load(UPSTREAM("[ \"127.0.0.1:1\", \"127.0.0.1:2\" ]"));
    gh_balancer *b = gh_balancer_new(cfg, 1);
    int seen[2] = { 0 }, prev = -1;
    for (int i = 0; i < 10; i++) {
        int t = gh_balance_pick(b, 0, 0, 0, NULL);
        assert_true(t == 0 || t == 1);
        assert_int_not_equal(t, prev);   /* alternates */
        prev = t;
        seen[t]++;
        gh_balance_begin(b, 0, 0, t);
        gh_balance_end(b, 0, 0, t);
    }
    assert_int_equal(seen[0], 5);
    assert_int_equal(seen[1], 5);
    gh_balancer_free(b);
    gh_config_free(cfg);
}

static void test_least_conn_ties_respect_weights(void **state)
{
    (void)state;
    gh_config *cfg = load(UPSTREAM("[ { address: \"127.0.0.1:1\", weight: 3 }, \"127.0.0.1:2\" ]"));
    gh_balancer *b = gh_balancer_new(cfg, 1);
    int seen[2] = { 0 };
    for (int i = 0; i < 40; i++) {
        int t = gh_balance_pick(b, 0, 0, 0, NULL);
        seen[t]++;
        gh_balance_begin(b, 0, 0, t);
        gh_balance_end(b, 0, 0, t);
    }
    assert_int_equal(seen[0], 30);
    assert_int_equal(seen[1], 10);
    gh_balancer_free(b);
    gh_config_free(cfg);
}

static void test_least_conn_prefers_the_less_loaded(void **state)
{
    (void)state;
    gh_config *cfg = load(UPSTREAM("[ \"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\" ]"));
    gh_balancer *b = gh_balancer_new(cfg, 1);
    gh_balance_begin(b, 0, 0, 0);
    gh_balance_begin(b, 0, 0, 2);
    for (int i = 0; i < 5; i++)   /* 1 is idle: always 1 */
        assert_int_equal(gh_balance_pick(b, 0, 0, 0, NULL), 1);
    /* 1 tried (a retry): the others tie at one request each, and alternate */
    int a = gh_balance_pick(b, 0, 0, 1u << 1, NULL), c = gh_balance_pick(b, 0, 0, 1u << 1, NULL);
    assert_true((a == 0 && c == 2) || (a == 2 && c == 0));
    /* every target skipped: none (the call layer starts over) */
    assert_int_equal(gh_balance_pick(b, 0, 0, 7, NULL), -1);
    gh_balancer_free(b);
    gh_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_least_conn_ties_go_round_robin),
        cmocka_unit_test(test_least_conn_ties_respect_weights),
        cmocka_unit_test(test_least_conn_prefers_the_less_loaded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
