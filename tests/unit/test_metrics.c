/* test_metrics.c — the statistics registry (observe/metrics.c): sums over
 * workers, inclusive bucket bounds, ids kept by name across snapshots,
 * the bounded (method, status) table, the recent-errors ring and the
 * exposition text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "config/config.h"
#include "core/diag.h"
#include "core/method.h"
#include "observe/metrics.h"
#include "observe/metrics_render.h"

static gh_config *load(const char *yaml)
{
    gh_diag d;
    gh_diag_init(&d, "test.yaml");
    gh_config *cfg = gh_config_load_string("test.yaml", yaml, strlen(yaml), &d);
    assert_non_null(cfg);
    gh_diag_free(&d);
    return cfg;
}

#define ROUTES(extra)                                                                   \
    "listen: [ { address: 127.0.0.1:8080 } ]\n"                                        \
    "routes:\n"                                                                        \
    "  - { name: a, match: { prefix: /a }, respond: { status: 200 } }\n" extra          \
    "  - { name: b, match: { prefix: /b }, respond: { status: 200 } }\n"

/* An exchange of route id that took us microseconds. */
static void record(int worker, uint32_t route, uint32_t method_bit, int status, uint64_t us, const char *error)
{
    static gh_exchange ex;
    memset(&ex, 0, sizeof(ex));
    ex.method_bit = method_bit;
    ex.method = GH_STR("GET");
    ex.raw_path = GH_STR("/x");
    gh_exchange_put_request_id(&ex, "rid", 3);
    ex.status = status;
    ex.start_ns = 1000000000ull;
    ex.log.route_id = route;
    ex.log.route = GH_STR("a");
    ex.log.error = error;
    ex.log.upstream_us = -1;
    gh_metrics_exchange(gh_metrics_for_worker(worker), &ex, ex.start_ns + us * 1000);
}

static void test_registry(void **state)
{
    (void)state;
    gh_metrics_init(2);
    gh_config *c1 = load(ROUTES(""));
    gh_metrics_assign(c1);
    uint32_t a = c1->routes[0].metric_id, b = c1->routes[1].metric_id;
    assert_true(a > 0 && b > 0 && a != b);
    assert_string_equal(gh_metrics_route_name(a), "a");

    record(0, a, GH_M_GET, 200, 500, NULL);      /* le 0.0005: inclusive */
    record(1, a, GH_M_GET, 200, 501, NULL);      /* next bucket */
    record(1, a, GH_M_POST, 503, 20000000, "upstream_error");   /* +Inf */
    record(0, a, GH_M_OTHER, 429, 10, "rate_limited");
    record(0, 0, GH_M_GET, 404, 10, "no_route");

    gh_metrics_route r;
    gh_metrics_route_read(a, &r);
    assert_int_equal(r.requests, 4);
    assert_int_equal(r.client_errors, 1);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.rate_limited, 1);
    assert_int_equal(r.duration.b[0], 2);
    assert_int_equal(r.duration.b[1], 1);
    assert_int_equal(r.duration.b[GH_METRICS_NBOUNDS], 1);
    assert_int_equal(r.duration.count, 4);
    assert_int_equal(r.duration.sum_us, 500 + 501 + 20000000 + 10);
    assert_int_equal(r.ncodes, 3);
    gh_metrics_route_read(0, &r);
    assert_int_equal(r.requests, 1);

    /* a new snapshot keeping "a" keeps its id (and counts); a new name gets one */
    gh_config *c2 = load(ROUTES("  - { name: c, match: { prefix: /c }, respond: { status: 200 } }\n"));
    gh_metrics_assign(c2);
    assert_int_equal(c2->routes[0].metric_id, a);
    assert_int_equal(c2->routes[2].metric_id, b);
    assert_true(c2->routes[1].metric_id > b);
    assert_int_equal(gh_metrics_route_id("c"), c2->routes[1].metric_id);

    /* more distinct (method, status) pairs than slots: never a crash, the
     * histogram still counts every one */
    for (int s = 100; s < 100 + 2 * GH_METRICS_CODE_SLOTS; s++)
        record(0, b, GH_M_GET, s, 1, NULL);
    gh_metrics_route_read(b, &r);
    assert_int_equal(r.ncodes, GH_METRICS_CODE_SLOTS);
    assert_int_equal(r.duration.count, 2 * GH_METRICS_CODE_SLOTS);

    /* recent errors: 401/403/429/5xx with a code, newest first, bounded */
    gh_metrics_error e[GH_METRICS_RECENT];
    size_t n = gh_metrics_recent_errors(e, GH_METRICS_RECENT);
    assert_int_equal(n, 2);
    assert_int_equal(e[0].status, 429);
    assert_string_equal(e[1].code, "upstream_error");
    for (int i = 0; i < 2 * GH_METRICS_RECENT; i++)
        record(1, a, GH_M_GET, 502, 1, "upstream_error");
    assert_int_equal(gh_metrics_recent_errors(e, GH_METRICS_RECENT), GH_METRICS_RECENT);

    gh_text t = { 0 };
    const char *names[GH_PLUGIN_COUNT];
    for (int i = 0; i < GH_PLUGIN_COUNT; i++)
        names[i] = "p";
    gh_metrics_render(&t, names);
    assert_false(t.oom);
    assert_non_null(strstr(t.p, "# HELP gatehouse_requests_total "));
    assert_non_null(strstr(t.p, "# TYPE gatehouse_requests_total counter\n"));
    assert_non_null(strstr(t.p, "gatehouse_requests_total{route=\"a\",method=\"OTHER\",code=\"429\"} 1\n"));
    assert_non_null(strstr(t.p, "gatehouse_request_duration_seconds_bucket{route=\"a\",le=\"0.0005\"} 102\n"));
    assert_non_null(strstr(t.p, "gatehouse_request_duration_seconds_sum{route=\"\"} 0.000010\n"));
    free(t.p);
    gh_config_free(c1);
    gh_config_free(c2);
}

static void test_label_escaping(void **state)
{
    (void)state;
    gh_text t = { 0 };
    gh_metrics_label(&t, "a\"b\\c\nd");
    assert_string_equal(t.p, "a\\\"b\\\\c\\nd");
    free(t.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_label_escaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
