/* test_negotiate.c — Accept-Encoding negotiation and media-type patterns
 * (http/negotiate.c), as the compress plugin uses them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "http/negotiate.h"

static const gh_str both[] = { { "br", 2 }, { "gzip", 4 } };
static const gh_str gz_first[] = { { "gzip", 4 }, { "br", 2 } };

static int pick(const char *ae, const gh_str *c)
{
    return gh_accept_encoding_pick(ae ? ae : "", ae ? strlen(ae) : 0, ae != NULL, c, 2);
}

static void test_server_order_among_equal_q(void **state)
{
    (void)state;
    assert_int_equal(pick("gzip, br", both), 0);
    assert_int_equal(pick("gzip, br", gz_first), 0);
    assert_int_equal(pick("br, gzip", gz_first), 0);
    assert_int_equal(pick("gzip", both), 1);
    assert_int_equal(pick("GZIP", both), 1);
    assert_int_equal(pick("x-gzip", both), 1);
    assert_int_equal(pick(" gzip ; q=1 ,deflate", both), 1);
}

static void test_client_q_wins(void **state)
{
    (void)state;
    assert_int_equal(pick("br;q=0.5, gzip;q=0.8", both), 1);
    assert_int_equal(pick("br;Q=0.9, gzip;q=0.8", both), 0);
    assert_int_equal(pick("br;q=0.001, gzip;q=0", both), 0);
    assert_int_equal(pick("br;q=1.000, gzip", both), 0);
}

static void test_refusals_and_identity(void **state)
{
    (void)state;
    assert_int_equal(pick(NULL, both), GH_CODING_IDENTITY);       /* no header: as is */
    assert_int_equal(pick("", both), GH_CODING_IDENTITY);
    assert_int_equal(pick("identity", both), GH_CODING_IDENTITY);
    assert_int_equal(pick("gzip;q=0, br;q=0", both), GH_CODING_IDENTITY);
    assert_int_equal(pick("deflate, zstd", both), GH_CODING_IDENTITY);
    assert_int_equal(pick("*;q=0", both), GH_CODING_IDENTITY);
    assert_int_equal(pick("gzip;q=0.5, identity", both), GH_CODING_IDENTITY);   /* identity rated higher */
    assert_int_equal(pick("gzip;q=0.5, identity;q=0.5", both), 1);             /* a tie: compress */
    assert_int_equal(pick("gzip;q=0.5, *;q=0", both), 1);                      /* identity refused by * */
}

static void test_star(void **state)
{
    (void)state;
    assert_int_equal(pick("*", both), 0);
    assert_int_equal(pick("br;q=0, *", both), 1);
    assert_int_equal(pick("gzip;q=0.9, *;q=0.1", both), 1);
}

static void test_malformed_elements_ignored(void **state)
{
    (void)state;
    assert_int_equal(pick("br;q=2, gzip", both), 1);
    assert_int_equal(pick("br;q=0.1234, gzip;q=0.1", both), 1);
    assert_int_equal(pick("br;q=, gzip;q=abc", both), GH_CODING_IDENTITY);
    assert_int_equal(pick(",,;q=1, gzip", both), 1);
    assert_int_equal(pick("brotli, gzipx, gz", both), GH_CODING_IDENTITY);
}

static bool match(const char *type, const char *pattern)
{
    gh_str p = { pattern, strlen(pattern) };
    return gh_media_type_match(type, strlen(type), &p, 1);
}

static void test_media_types(void **state)
{
    (void)state;
    assert_true(match("application/json", "application/json"));
    assert_true(match("Application/JSON; charset=utf-8", "application/json"));
    assert_true(match("text/html;charset=utf-8", "text/*"));
    assert_true(match(" text/csv ", "text/*"));
    assert_true(match("image/png", "*/*"));
    assert_false(match("application/jsonx", "application/json"));
    assert_false(match("application/json", "application/jso"));
    assert_false(match("textual/html", "text/*"));
    assert_false(match("text", "text/*"));
    assert_false(match("", "text/*"));
    assert_false(match("/json", "*/*"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_order_among_equal_q), cmocka_unit_test(test_client_q_wins),
        cmocka_unit_test(test_refusals_and_identity),      cmocka_unit_test(test_star),
        cmocka_unit_test(test_malformed_elements_ignored), cmocka_unit_test(test_media_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
