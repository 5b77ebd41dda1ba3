/* test_callers.c — the API lifecycle counters: per consumer over the last
 * 24 hours (hourly buckets on a fake clock), "(anonymous)", the bounded
 * table with its "(other)" entry, sums across threads, order; and the
 * /api/config document's masking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "observe/callers.h"

#define S(lit) gh_str_from(lit, sizeof(lit) - 1)
static const int64_t T0 = 1796000000;   /* a fixed "now" */

static void counts_per_consumer_sorted_and_anonymous(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        gh_callers_count(S("r1"), S("1"), S("alice"), T0 + i);
    gh_callers_count(S("r1"), S("1"), S(""), T0 + 5);
    gh_callers_count(S("r1"), S("1"), S("bob"), T0 + 1);
    gh_callers_count(S("r1"), S("1"), S("bob"), T0 + 9);
    gh_callers_count(S("r1"), S("2"), S("carol"), T0);   /* another version: apart */
    gh_caller_sum out[8];
    size_t n = gh_callers_read(S("r1"), S("1"), T0 + 10, out, 8);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].consumer, "alice");
    assert_int_equal(out[0].requests_24h, 3);
    assert_int_equal(out[0].last_seen, T0 + 2);
    assert_string_equal(out[1].consumer, "bob");   /* 2, before "(anonymous)" with 1 */
    assert_int_equal(out[1].last_seen, T0 + 9);
    assert_string_equal(out[2].consumer, "(anonymous)");
    assert_int_equal(gh_callers_read(S("r1"), S("2"), T0, out, 8), 1);
    assert_int_equal(gh_callers_read(S("nope"), S("1"), T0, out, 8), 0);
}

static void last_24_hours_only(void **state)
{
    (void)state;
    gh_callers_count(S("r2"), S("1"), S("old"), T0);
    gh_callers_count(S("r2"), S("1"), S("old"), T0 + 3600 * 23);
    gh_caller_sum out[4];
    assert_int_equal(gh_callers_read(S("r2"), S("1"), T0 + 3600 * 23, out, 4), 1);
    assert_int_equal(out[0].requests_24h, 2);
    assert_int_equal(gh_callers_read(S("r2"), S("1"), T0 + 3600 * 24, out, 4), 1);
    assert_int_equal(out[0].requests_24h, 1);   /* the first hour went out of the window */
    /* a bucket reused 24 hours later starts again from 0 */
    gh_callers_count(S("r2"), S("1"), S("old"), T0 + 3600 * 48);
    assert_int_equal(gh_callers_read(S("r2"), S("1"), T0 + 3600 * 48, out, 4), 1);
    assert_int_equal(out[0].requests_24h, 1);
    assert_int_equal(gh_callers_read(S("r2"), S("1"), T0 + 3600 * 80, out, 4), 0);
}

static void bounded_with_other(void **state)
{
    (void)state;
    char name[32];
    for (int i = 0; i < GH_CALLERS_MAX + 5; i++) {
        snprintf(name, sizeof(name), "c%02d", i);
        gh_callers_count(S("r3"), S("1"), gh_str_c(name), T0);
    }
    gh_caller_sum out[GH_CALLERS_MAX + 1];
    size_t n = gh_callers_read(S("r3"), S("1"), T0, out, GH_CALLERS_MAX + 1);
    assert_int_equal(n, GH_CALLERS_MAX + 1);
    uint64_t total = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        total += out[i].requests_24h;
        if (strcmp(out[i].consumer, "(other)") == 0)
            other = out[i].requests_24h;
    }
    assert_int_equal(total, GH_CALLERS_MAX + 5);
    assert_int_equal(other, 5);
    assert_string_equal(out[0].consumer, "(other)");   /* the biggest count comes first */
    /* a reader with less room folds the rest into "(other)" too */
    gh_caller_sum few[4];
    n = gh_callers_read(S("r3"), S("1"), T0, few, 4);
    assert_int_equal(n, 4);
    total = 0;
    for (size_t i = 0; i < n; i++)
        total += few[i].requests_24h;
    assert_int_equal(total, GH_CALLERS_MAX + 5);
}

static void *count_in_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        gh_callers_count(S("r4"), S("1"), S("alice"), T0);
    return NULL;
}

static void threads_summed(void **state)
{
    (void)state;
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, count_in_thread, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    gh_caller_sum out[4];
    assert_int_equal(gh_callers_read(S("r4"), S("1"), T0, out, 4), 1);
    assert_int_equal(out[0].requests_24h, 300);
}

typedef struct seen {
    char lines[16][96];
    size_t n;
} seen;

static void collect(void *arg, const char *route, const char *version, const char *consumer, uint64_t total)
{
    seen *s = arg;
    if (strcmp(route, "r4") == 0 || strcmp(route, "r1") == 0)
        snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s/%s/%s=%llu", route, version, consumer,
                 (unsigned long long)total);
}

/* the counter since start: every worker's summed, once per label set,
 * outside the 24-hour window too */
static void totals_for_metrics(void **state)
{
    (void)state;
    seen s = { .n = 0 };
    assert_true(gh_callers_totals(collect, &s));
    assert_int_equal(s.n, 5);
    assert_string_equal(s.lines[0], "r1/1/(anonymous)=1");
    assert_string_equal(s.lines[1], "r1/1/alice=3");
    assert_string_equal(s.lines[2], "r1/1/bob=2");
    assert_string_equal(s.lines[3], "r1/2/carol=1");
    assert_string_equal(s.lines[4], "r4/1/alice=300");
}

static void config_document_masks_secrets(void **state)
{
    (void)state;
    setenv("TEST_CALLERS_SECRET", "from-env-secret", 1);
    static const char yaml[] =
        "listen: [{ address: 127.0.0.1:1 }]\n"
        "admin: { address: 127.0.0.1:2, token: tok-literal }\n"
        "consumers:\n"
        "  - { name: a, api_keys: [k-literal] }\n"
        "routes:\n"
        "  - name: r\n"
        "    match: { prefix: / }\n"
        "    respond: { status: 200, body: \"${TEST_CALLERS_SECRET}\", headers: { X-Cost: \"$${notenv}\" } }\n";
    gh_diag d;
    gh_diag_init(&d, "c.yaml");
    gh_config *cfg = gh_config_load_string("c.yaml", yaml, strlen(yaml), &d);
    gh_diag_free(&d);
    assert_non_null(cfg);
    assert_non_null(cfg->document);
    assert_null(strstr(cfg->document, "tok-literal"));
    assert_null(strstr(cfg->document, "k-literal"));
    assert_null(strstr(cfg->document, "from-env-secret"));
    assert_non_null(strstr(cfg->document, "\"token\":\"***\""));
    assert_non_null(strstr(cfg->document, "\"body\":\"***\""));
    assert_non_null(strstr(cfg->document, "\"X-Cost\":\"${notenv}\""));   /* an escaped "${" is no secret */
    assert_non_null(strstr(cfg->document, "\"status\":200"));
    gh_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_per_consumer_sorted_and_anonymous),
        cmocka_unit_test(last_24_hours_only),
        cmocka_unit_test(bounded_with_other),
        cmocka_unit_test(threads_summed),
        cmocka_unit_test(totals_for_metrics),
        cmocka_unit_test(config_document_masks_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
