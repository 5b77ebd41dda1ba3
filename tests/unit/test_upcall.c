/* test_upcall.c — the upstream-call layer's rules (proxy/upcall.c), the
 * shared per-target / per-circuit state (proxy/upstate.c) on a fake clock,
 * and the balancers that hang off them (proxy/balance.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "config/config.h"
#include "core/diag.h"
#include "proxy/balance.h"
#include "proxy/upcall.h"
#include "proxy/upstate.h"

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

#define CFG(upstream_body) \
    "listen: [ { address: 127.0.0.1:8080 } ]\n" \
    "upstreams:\n  u:\n" upstream_body \
    "routes:\n  - { name: r, match: { prefix: / }, upstream: u }\n"

static void test_outcome_classification(void **state)
{
    (void)state;
    gh_config *cfg = load(CFG("    targets: [ \"127.0.0.1:1\" ]\n"));
    const gh_upstream_cfg *u = &cfg->upstreams[0];
    /* default failure_statuses: 500, 502, 503, 504 */
    int fails[] = { 500, 502, 503, 504 }, oks[] = { 200, 204, 301, 404, 429, 501, 505 };
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(gh_upcall_status_outcome(u, fails[i]), GH_OUT_STATUS);
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(gh_upcall_status_outcome(u, oks[i]), GH_OUT_OK);
    assert_false(gh_upcall_is_failure(u, GH_OUT_OK));
    int bad[] = { GH_OUT_CONNECT, GH_OUT_CONNECT_TIMEOUT, GH_OUT_REFUSED, GH_OUT_RESET, GH_OUT_TIMEOUT,
                  GH_OUT_STATUS };
    for (size_t i = 0; i < 6; i++)
        assert_true(gh_upcall_is_failure(u, bad[i]));
    gh_config_free(cfg);
    cfg = load(CFG("    targets: [ \"127.0.0.1:1\" ]\n    failure_statuses: [ 429, 503 ]\n"));
    u = &cfg->upstreams[0];
    assert_int_equal(gh_upcall_status_outcome(u, 429), GH_OUT_STATUS);
    assert_int_equal(gh_upcall_status_outcome(u, 503), GH_OUT_STATUS);
    assert_int_equal(gh_upcall_status_outcome(u, 500), GH_OUT_OK);
    gh_config_free(cfg);
}

static void test_retry_decisions(void **state)
{
    (void)state;
    gh_config *cfg = load(CFG("    targets: [ \"127.0.0.1:1\", \"127.0.0.1:2\" ]\n"
                              "    retries: { attempts: 1, on: [ connect_error, reset, timeout, 503 ] }\n"));
    const gh_upstream_cfg *u = &cfg->upstreams[0];
    /* connect errors: nothing sent, any method */
    assert_true(gh_upcall_may_retry(u, GH_M_POST, 1, GH_OUT_CONNECT, 0, true));
    assert_true(gh_upcall_may_retry(u, GH_M_POST, 1, GH_OUT_CONNECT_TIMEOUT, 0, true));
    /* sent: idempotent only */
    assert_true(gh_upcall_may_retry(u, GH_M_GET, 1, GH_OUT_RESET, 0, true));
    assert_false(gh_upcall_may_retry(u, GH_M_POST, 1, GH_OUT_RESET, 0, true));
    assert_true(gh_upcall_may_retry(u, GH_M_GET, 1, GH_OUT_TIMEOUT, 0, true));
    assert_false(gh_upcall_may_retry(u, GH_M_PATCH, 1, GH_OUT_TIMEOUT, 0, true));
    /* nothing once the client saw something or the body was consumed */
    assert_false(gh_upcall_may_retry(u, GH_M_GET, 1, GH_OUT_TIMEOUT, 0, false));
    /* attempts: 1 extra try */
    assert_false(gh_upcall_may_retry(u, GH_M_GET, 2, GH_OUT_RESET, 0, true));
    /* statuses: only those listed */
    assert_true(gh_upcall_may_retry(u, GH_M_GET, 1, GH_OUT_STATUS, 503, true));
    assert_false(gh_upcall_may_retry(u, GH_M_GET, 1, GH_OUT_STATUS, 502, true));
    assert_false(gh_upcall_may_retry(u, GH_M_GET, 1, GH_OUT_OK, 200, true));
    gh_config_free(cfg);
    /* timeout not listed: no retry on a timeout */
    cfg = load(CFG("    targets: [ \"127.0.0.1:1\" ]\n    retries: { on: [ reset ] }\n"));
    assert_false(gh_upcall_may_retry(&cfg->upstreams[0], GH_M_GET, 1, GH_OUT_TIMEOUT, 0, true));
    assert_false(gh_upcall_may_retry(&cfg->upstreams[0], GH_M_GET, 1, GH_OUT_CONNECT, 0, true));
    gh_config_free(cfg);
}

static void test_passive_ejection_fake_clock(void **state)
{
    (void)state;
    gh_config *cfg = load(CFG("    targets: [ \"127.0.0.1:7001\" ]\n"
                              "    health_check: { passive: { failures: 3, within: 10s, eject_for: 30s } }\n"));
    const gh_upstream_cfg *u = &cfg->upstreams[0];
    gh_target_state *t = gh_target_state_acquire("127.0.0.1:7001");
    uint64_t now = 1000000;
    gh_target_report(t, u, true, now);
    gh_target_report(t, u, true, now + 100);
    gh_target_report(t, u, false, now + 200);   /* successes do not hide failures */
    assert_true(gh_target_up(t, u, now + 300));
    /* the window moved on: the old failures no longer count */
    gh_target_report(t, u, true, now + 20000);
    gh_target_report(t, u, true, now + 20001);
    assert_true(gh_target_up(t, u, now + 20002));
    gh_target_report(t, u, true, now + 20003);   /* third within 10s: out */
    assert_false(gh_target_up(t, u, now + 20004));
    assert_false(gh_target_up(t, u, now + 20003 + 29999));
    assert_true(gh_target_up(t, u, now + 20003 + 30000));   /* back by itself */
    /* the registry keeps it while held: a second holder sees the same state */
    gh_target_state *t2 = gh_target_state_acquire("127.0.0.1:7001");
    assert_ptr_equal(t, t2);
    gh_target_state_release(t2);
    /* active checks' verdict */
    assert_true(gh_target_set_healthy(t, false));
    assert_false(gh_target_set_healthy(t, false));   /* no change: nothing to log */
    assert_false(gh_target_up(t, u, now + 100000));
    assert_true(gh_target_set_healthy(t, true));
    assert_true(gh_target_up(t, u, now + 100000));
    gh_target_state_release(t);
    gh_config_free(cfg);
}

static void test_circuit_state_machine(void **state)
{
    (void)state;
    gh_config *cfg = load(CFG("    targets: [ \"127.0.0.1:1\" ]\n"
                              "    circuit_breaker: { failure_ratio: 0.5, min_requests: 4, window: 10s,"
                              " open_for: 30s, max_pending: 3 }\n"));
    const gh_upstream_cfg *u = &cfg->upstreams[0];
    gh_circuit *c = gh_circuit_acquire(u);
    uint64_t now = 5000000;
    /* 1 failure in 3: under min_requests, then under the ratio */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gh_circuit_admit(c, u, now), GH_ADMIT_YES);
        gh_circuit_report(c, u, i == 0, false, now);
        gh_circuit_end(c, false);
    }
    assert_int_equal(gh_circuit_state(c), GH_CIRCUIT_CLOSED);
    /* 2 of 4: ratio 0.5 reached with min_requests */
    assert_int_equal(gh_circuit_admit(c, u, now), GH_ADMIT_YES);
    gh_circuit_report(c, u, true, false, now);
    gh_circuit_end(c, false);
    assert_int_equal(gh_circuit_state(c), GH_CIRCUIT_OPEN);
    assert_int_equal(gh_circuit_admit(c, u, now + 29999), GH_ADMIT_NO);
    /* open_for passed: one probe at a time */
    assert_int_equal(gh_circuit_admit(c, u, now + 30000), GH_ADMIT_PROBE);
    assert_int_equal(gh_circuit_state(c), GH_CIRCUIT_HALF_OPEN);
    assert_int_equal(gh_circuit_admit(c, u, now + 30001), GH_ADMIT_NO);
    gh_circuit_report(c, u, true, true, now + 30002);   /* bad probe: open again */
    gh_circuit_end(c, false);
    assert_int_equal(gh_circuit_state(c), GH_CIRCUIT_OPEN);
    assert_int_equal(gh_circuit_admit(c, u, now + 30002 + 29999), GH_ADMIT_NO);
    assert_int_equal(gh_circuit_admit(c, u, now + 60002), GH_ADMIT_PROBE);
    /* a probe whose client left: another probe may go */
    gh_circuit_end(c, true);
    assert_int_equal(gh_circuit_admit(c, u, now + 60003), GH_ADMIT_PROBE);
    gh_circuit_report(c, u, false, true, now + 60004);   /* good probe: closed */
    gh_circuit_end(c, false);
    assert_int_equal(gh_circuit_state(c), GH_CIRCUIT_CLOSED);
    /* the window starts afresh: one failure does not reopen it */
    assert_int_equal(gh_circuit_admit(c, u, now + 60005), GH_ADMIT_YES);
    gh_circuit_report(c, u, true, false, now + 60005);
    gh_circuit_end(c, false);
    assert_int_equal(gh_circuit_state(c), GH_CIRCUIT_CLOSED);
    /* max_pending: the 4th request in flight is refused */
    for (int i = 0; i < 3; i++)
        assert_int_equal(gh_circuit_admit(c, u, now + 60006), GH_ADMIT_YES);
    assert_int_equal(gh_circuit_admit(c, u, now + 60006), GH_ADMIT_NO);
    gh_circuit_end(c, false);
    assert_int_equal(gh_circuit_admit(c, u, now + 60006), GH_ADMIT_YES);
    for (int i = 0; i < 3; i++)
        gh_circuit_end(c, false);
    /* same upstream, same targets (a reload): the same circuit */
    gh_circuit *c2 = gh_circuit_acquire(u);
    assert_ptr_equal(c, c2);
    gh_circuit_release(c2);
    gh_circuit_release(c);
    gh_config_free(cfg);
}

/* Which target each of n keys goes to. */
static void map_keys(const char *yaml, int *out, int n)
{
    gh_config *cfg = load(yaml);
    gh_balancer *b = gh_balancer_new(cfg, 1);
    assert_non_null(b);
    for (int i = 0; i < n; i++) {
        char k[32];
        int len = snprintf(k, sizeof(k), "user-%d", i);
        uint64_t key = gh_balance_hash(k, (size_t)len, 0);
        int t = gh_balance_pick(b, 0, 0, 0, &key);
        /* by port: the target's identity whatever its index */
        out[i] = cfg->upstreams[0].targets[t].port;
        assert_int_equal(gh_balance_pick(b, 0, 0, 0, &key), t);   /* stable */
    }
    gh_balancer_free(b);
    gh_config_free(cfg);
}

#define HASH_CFG(targets) CFG("    balance: hash\n    hash_on: header:X-User\n    targets: " targets "\n")

static void test_hash_ring_remaps_about_1_over_n(void **state)
{
    (void)state;
    enum { N = 20000 };
    static int four[N], five[N], three[N];
    map_keys(HASH_CFG("[ \"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\", \"127.0.0.1:4\" ]"), four, N);
    map_keys(HASH_CFG("[ \"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\", \"127.0.0.1:4\", \"127.0.0.1:5\" ]"),
             five, N);
    map_keys(HASH_CFG("[ \"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:4\" ]"), three, N);
    int moved = 0, share[6] = { 0 };
    for (int i = 0; i < N; i++) {
        share[four[i]]++;
        if (four[i] != five[i]) {
            moved++;
            assert_int_equal(five[i], 5);   /* only to the new target */
        }
    }
    double f = (double)moved / N;   /* ideal 1/5 */
    assert_true(f > 0.14 && f < 0.26);
    for (int t = 1; t <= 4; t++)   /* even spread: ideal 1/4 each */
        assert_true(share[t] > N / 4 * 0.75 && share[t] < N / 4 * 1.25);
    /* removing target 3: only its keys move */
    moved = 0;
    for (int i = 0; i < N; i++)
        if (four[i] != three[i]) {
            moved++;
            assert_int_equal(four[i], 3);
        }
    f = (double)moved / N;   /* ideal 1/4 */
    assert_true(f > 0.18 && f < 0.32);
}

static void test_hash_respects_weights_and_skips(void **state)
{
    (void)state;
    gh_config *cfg = load(HASH_CFG("[ { address: \"127.0.0.1:1\", weight: 3 }, \"127.0.0.1:2\" ]"));
    gh_balancer *b = gh_balancer_new(cfg, 1);
    int seen[2] = { 0 };
    for (int i = 0; i < 8000; i++) {
        uint64_t key = gh_balance_hash(&i, sizeof(i), 7);
        int t = gh_balance_pick(b, 0, 0, 0, &key);
        seen[t]++;
        /* target t skipped (down or tried): the next on the ring */
        assert_int_equal(gh_balance_pick(b, 0, 0, 1ull << t, &key), 1 - t);
    }
    assert_true(seen[0] > 5200 && seen[0] < 6800);   /* ideal 6000 */
    /* no key: round robin */
    int a = gh_balance_pick(b, 0, 0, 0, NULL), c = gh_balance_pick(b, 0, 0, 0, NULL);
    assert_true(a == 0 || c == 0);
    gh_balancer_free(b);
    gh_config_free(cfg);
}

static void test_random_two_prefers_less_in_flight(void **state)
{
    (void)state;
    gh_config *cfg = load(CFG("    balance: random_two\n"
                              "    targets: [ \"127.0.0.1:9101\", \"127.0.0.1:9102\" ]\n"));
    gh_balancer *b = gh_balancer_new(cfg, 1);
    gh_upstream_rt *rt = gh_balance_upstream(b, 0);
    atomic_store(&rt->ts[0]->inflight, 5);
    for (int i = 0; i < 20; i++)   /* two targets: both always drawn, the idle one wins */
        assert_int_equal(gh_balance_pick(b, 0, 0, 0, NULL), 1);
    assert_int_equal(gh_balance_pick(b, 0, 0, 2, NULL), 0);   /* 1 skipped */
    assert_int_equal(gh_balance_pick(b, 0, 0, 3, NULL), -1);
    atomic_store(&rt->ts[0]->inflight, 0);
    gh_balancer_free(b);
    gh_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_classification),
        cmocka_unit_test(test_retry_decisions),
        cmocka_unit_test(test_passive_ejection_fake_clock),
        cmocka_unit_test(test_circuit_state_machine),
        cmocka_unit_test(test_hash_ring_remaps_about_1_over_n),
        cmocka_unit_test(test_hash_respects_weights_and_skips),
        cmocka_unit_test(test_random_two_prefers_less_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
