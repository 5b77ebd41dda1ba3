/* test_trace.c — W3C Trace Context: traceparent parsing (each rule of
 * version 00, higher versions), tracestate limits, and what the gateway
 * sends upstream (continued, started, tracestate kept or dropped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "http/exchange.h"
#include "observe/trace.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

static bool parses(const char *v)
{
    const char *ids = NULL;
    bool ok = gh_traceparent_parse(v, strlen(v), &ids);
    if (ok)
        assert_ptr_equal(ids, v + 3);
    return ok;
}

static void test_traceparent_valid(void **state)
{
    (void)state;
    assert_true(parses("00-" TID "-" PID "-01"));
    assert_true(parses("00-" TID "-" PID "-00"));
    assert_true(parses("00-" TID "-" PID "-03"));    /* other flag bits are kept, not judged */
}

static void test_traceparent_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "garbage",
        "00-" TID "-" PID "-1",                                     /* short */
        "00-" TID "-" PID "-011",                                   /* version 00 is exactly 55 */
        "00-" TID "-" PID "-01-extra",                              /* no fields after 00's flags */
        "ff-" TID "-" PID "-01",                                    /* version ff is invalid */
        "00-00000000000000000000000000000000-" PID "-01",           /* all-zero trace-id */
        "00-" TID "-0000000000000000-01",                           /* all-zero parent-id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01",           /* uppercase */
        "00-" TID "-00F067AA0BA902B7-01",
        "00-" TID "-" PID "-0A",
        "0A-" TID "-" PID "-01",
        "00_" TID "-" PID "-01",                                    /* separators */
        "00-" TID "_" PID "-01",
        "00-" TID "-" PID "_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-" PID "-01",           /* not hex */
        "00-" TID "-" PID "-0g",
        "00-" TID "-" PID " -01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parses(bad[i]))
            fail_msg("accepted %s", bad[i]);
}

static void test_traceparent_higher_version(void **state)
{
    (void)state;
    assert_true(parses("01-" TID "-" PID "-01"));
    assert_true(parses("cc-" TID "-" PID "-01-what-the-future-will-be-like"));
    assert_false(parses("cc-" TID "-" PID "-01what"));      /* a later field comes after a '-' */
    assert_false(parses("cc-" TID "-0000000000000000-01-x"));
    assert_false(parses("CC-" TID "-" PID "-01"));
}

static void test_tracestate(void **state)
{
    (void)state;
    const char *good[] = { "congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
                           "rojo=1 , congo=2", "a=1,,b=2", "tenant@system=x", "k_-*/9=v w", "0a=1" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!gh_tracestate_ok(good[i], strlen(good[i])))
            fail_msg("refused %s", good[i]);
    const char *bad[] = { "novalue", "=v", "Upper=1", "k=", "k=a,b=", "k=v=w", "a@b@c=1", "k@=1",
                          "k=v\x01", "_k=1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (gh_tracestate_ok(bad[i], strlen(bad[i])))
            fail_msg("accepted %s", bad[i]);

    char buf[1024];
    size_t n = 0;
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sk%d=v", i ? "," : "", i);
    assert_true(gh_tracestate_ok(buf, n));                 /* 32 members */
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",k32=v");
    assert_false(gh_tracestate_ok(buf, n));                /* 33 */

    memset(buf, 'v', sizeof(buf));
    memcpy(buf, "k=", 2);
    assert_true(gh_tracestate_ok(buf, 258));                /* value of 256 */
    assert_false(gh_tracestate_ok(buf, 259));
    n = 0;
    for (int i = 0; i < 3; i++)   /* 3 members of 202 bytes and 2 commas: 608 */
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%c=%0200d", i ? "," : "", 'a' + i, 0);
    assert_false(gh_tracestate_ok(buf, n));                /* over 512 bytes */
    assert_true(gh_tracestate_ok(buf, 405));               /* the first two */
}

/* ---- what an exchange sends upstream ---- */

static gh_http_env env;
static uv_loop_t loop;

static gh_exchange *exchange_with(gh_header *h, size_t n)
{
    gh_exchange *ex = gh_exchange_new(&env);
    ex->headers = h;
    ex->nheaders = n;
    return ex;
}

#define H(n, v) { n, v, sizeof(n) - 1, sizeof(v) - 1 }

static void test_continued(void **state)
{
    (void)state;
    gh_header h[] = { H("Accept", "*/*"), H("TraceState", "rojo=1"), H("Traceparent", "00-" TID "-" PID "-03"),
                      H("tracestate", "congo=2") };
    gh_exchange *ex = exchange_with(h, 4);
    gh_trace_begin(ex);
    const char *tp = ex->trace.parent;
    assert_int_equal(strlen(tp), 55);
    assert_memory_equal(tp, "00-" TID "-", 36);
    assert_memory_not_equal(tp + 36, PID, 16);
    assert_string_equal(tp + 52, "-03");
    assert_memory_equal(gh_trace_id(ex), TID, 32);
    assert_int_equal(ex->trace.state.len, strlen("rojo=1,congo=2"));
    assert_memory_equal(ex->trace.state.p, "rojo=1,congo=2", ex->trace.state.len);
    char first[56];
    memcpy(first, tp, 56);
    gh_trace_begin(ex);   /* once per exchange: retries send the same span */
    assert_memory_equal(first, ex->trace.parent, 56);
    gh_exchange_free(ex);
}

static void test_higher_version_sent_as_00(void **state)
{
    (void)state;
    gh_header h[] = { H("traceparent", "01-" TID "-" PID "-01-later") };
    gh_exchange *ex = exchange_with(h, 1);
    gh_trace_begin(ex);
    assert_memory_equal(ex->trace.parent, "00-" TID "-", 36);
    assert_string_equal(ex->trace.parent + 52, "-01");
    gh_exchange_free(ex);
}

static void assert_started(gh_header *h, size_t n)
{
    gh_exchange *ex = exchange_with(h, n);
    gh_trace_begin(ex);
    const char *tp = ex->trace.parent;
    const char *ids;
    assert_true(gh_traceparent_parse(tp, strlen(tp), &ids));
    assert_memory_not_equal(tp + 3, TID, 32);
    assert_string_equal(tp + 52, "-01");
    assert_int_equal(ex->trace.state.len, 0);              /* dropped with the traceparent */
    gh_exchange_free(ex);
}

static void test_started(void **state)
{
    (void)state;
    assert_started(NULL, 0);
    gh_header bad[] = { H("tracestate", "rojo=1"), H("traceparent", "00-" TID "-" PID "-01x") };
    assert_started(bad, 2);
    gh_header upper[] = { H("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01"), H("tracestate", "a=1") };
    assert_started(upper, 2);
    gh_header twice[] = { H("traceparent", "00-" TID "-" PID "-01"), H("traceparent", "00-" TID "-" PID "-01") };
    assert_started(twice, 2);
}

static void test_tracestate_dropped_over_limits(void **state)
{
    (void)state;
    static char big[600];
    memset(big, 'v', sizeof(big));
    memcpy(big, "k=", 2);
    gh_header h[] = { H("traceparent", "00-" TID "-" PID "-01"), { "tracestate", big, 10, 300 },
                      { "tracestate", big, 10, 250 } };
    gh_exchange *ex = exchange_with(h, 3);
    gh_trace_begin(ex);
    assert_memory_equal(gh_trace_id(ex), TID, 32);          /* the trace continues */
    assert_int_equal(ex->trace.state.len, 0);
    gh_exchange_free(ex);
}

static int setup(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    env.loop = &loop;
    env.rng[0] = 0x9e3779b97f4a7c15ull;
    env.rng[1] = 0xbf58476d1ce4e5b9ull;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_exchange_cache_clear(&env);
    uv_loop_close(&loop);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_valid),
        cmocka_unit_test(test_traceparent_invalid),
        cmocka_unit_test(test_traceparent_higher_version),
        cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_continued),
        cmocka_unit_test(test_higher_version_sent_as_00),
        cmocka_unit_test(test_started),
        cmocka_unit_test(test_tracestate_dropped_over_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
