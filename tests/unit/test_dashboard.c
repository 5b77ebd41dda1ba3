/* test_dashboard.c — the embedded dashboard (admin/dashboard.c): every file
 * is in the table under its URL with a type and a strong ETag, and
 * If-None-Match is compared as RFC 9110 says (lists, W/, "*"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "admin/dashboard.h"

static bool inm(const char *value, const char *etag)
{
    return gh_dashboard_etag_matches(value, strlen(value), etag);
}

static void test_table(void **state)
{
    (void)state;
    const gh_dashboard_asset *index = gh_dashboard_find("/", 1);
    assert_non_null(index);
    assert_string_equal(index->content_type, "text/html; charset=utf-8");
    assert_non_null(memmem(index->data, index->len, "/dashboard/app.js", 17));
    const gh_dashboard_asset *js = gh_dashboard_find("/dashboard/app.js", 17);
    assert_non_null(js);
    assert_string_equal(js->content_type, "text/javascript; charset=utf-8");
    assert_non_null(gh_dashboard_find("/dashboard/style.css", 20));
    assert_null(gh_dashboard_find("/dashboard/", 11));
    assert_null(gh_dashboard_find("/dashboard/app.j", 16));
    assert_null(gh_dashboard_find("/index.html", 11));
    for (unsigned i = 0; i < gh_dashboard_nassets; i++) {
        const gh_dashboard_asset *a = &gh_dashboard_assets[i];
        assert_true(a->len > 0);
        assert_int_equal(a->data[a->len], 0);
        assert_int_equal(strlen(a->etag), 34);             /* "32 hex digits" */
        assert_true(a->etag[0] == '"' && a->etag[33] == '"');
        for (unsigned j = 0; j < i; j++)
            assert_string_not_equal(a->etag, gh_dashboard_assets[j].etag);
    }
}

static void test_if_none_match(void **state)
{
    (void)state;
    const char *e = "\"0123456789abcdef0123456789abcdef\"";
    assert_true(inm("\"0123456789abcdef0123456789abcdef\"", e));
    assert_true(inm("W/\"0123456789abcdef0123456789abcdef\"", e));
    assert_true(inm("\"x\", \"0123456789abcdef0123456789abcdef\"", e));
    assert_true(inm(" \"x\" ,W/\"0123456789abcdef0123456789abcdef\" ", e));
    assert_true(inm("*", e));
    assert_false(inm("", e));
    assert_false(inm("\"x\"", e));
    assert_false(inm("0123456789abcdef0123456789abcdef", e));            /* unquoted */
    assert_false(inm("\"0123456789abcdef0123456789abcdef", e));          /* cut */
    assert_false(inm("\"0123456789abcdef0123456789abcdef\"x", e));
    assert_false(inm("W/", e));
    assert_false(inm("**", e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_if_none_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
