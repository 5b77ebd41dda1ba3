/* test_versions.c — the versions target's pure parts: loading (dates,
 * checks at line:col), the /vN/ segment, where a version is read from and
 * in which order, and the canary buckets (stable, uniform, monotonic). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "targets/versions.h"

static gh_config *load(const char *yaml, char *errors, size_t cap)
{
    gh_diag d;
    gh_diag_init(&d, "v.yaml");
    gh_config *cfg = gh_config_load_string("v.yaml", yaml, strlen(yaml), &d);
    size_t k = 0;
    errors[0] = '\0';
    for (size_t i = 0; i < d.n; i++)
        k += (size_t)snprintf(errors + k, cap - k, "%s\n", d.items[i].text);
    gh_diag_free(&d);
    return cfg;
}

static const char base[] =
    "listen: [{ address: 127.0.0.1:1 }]\n"
    "routes:\n"
    "  - name: orders\n"
    "    match: { prefix: /orders }\n"
    "    versions:\n"
    "      from: [path, header:Api-Version, query:version, accept]\n"
    "      default: \"2\"\n"
    "      list:\n"
    "        \"1\": { echo: {}, deprecated: 2026-06-01, sunset: \"2027-01-01T00:00:00+01:00\", docs: \"https://e.x/m\" }\n"
    "        \"2\": { echo: {}, request_headers: { set: { X-V: two } } }\n"
    "        \"3\": { echo: {}, preview: true, preview_requires: { header: X-Preview } }\n"
    "      canary: { version: \"3\", of: \"2\", percent: 12.5, sticky: cookie:uid }\n";

static void test_load(void **state)
{
    char e[2048];
    gh_config *cfg = load(base, e, sizeof(e));
    assert_non_null(cfg);
    const gh_versions_cfg *vs = cfg->routes[0].versions;
    assert_int_equal(vs->n, 3);
    assert_string_equal(vs->def->name.p, "2");
    assert_int_equal(vs->list[0].deprecated, 1780272000);
    assert_int_equal(vs->list[0].sunset, 1798758000);   /* 2027-01-01 00:00 at +01:00 */
    assert_string_equal(vs->list[0].deprecation_value.p, "@1780272000");
    assert_string_equal(vs->list[0].sunset_value.p, "Thu, 31 Dec 2026 23:00:00 GMT");
    assert_string_equal(vs->list[0].link_value.p, "<https://e.x/m>; rel=\"deprecation\"");
    assert_int_equal(vs->list[1].deprecated, GH_NO_DATE);
    assert_int_equal(vs->list[1].route.request_headers.nset, 1);
    assert_ptr_equal(vs->list[1].route.version, &vs->list[1]);
    assert_int_equal(vs->canary.per_10000, 1250);
    assert_int_equal(vs->canary.sticky, GH_STICKY_COOKIE);
    assert_string_equal(vs->versions_json.p, "\"versions\":[\"1\",\"2\",\"3\"]");
    gh_config_free(cfg);
}

static void expect_error(const char *from, const char *to, const char *want)
{
    char yaml[4096], e[2048];
    const char *at = strstr(base, from);
    assert_non_null(at);
    snprintf(yaml, sizeof(yaml), "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    gh_config *cfg = load(yaml, e, sizeof(e));
    if (!strstr(e, want))
        fprintf(stderr, "wanted '%s' in:\n%s", want, e);
    assert_null(cfg);
    assert_non_null(strstr(e, want));
}

static void test_checks(void **state)
{
    expect_error("sunset: \"2027-01-01T00:00:00+01:00\"", "sunset: 2026-01-01", "v.yaml:9:58: version '1': sunset is before deprecated");
    expect_error("default: \"2\"", "default: \"7\"", "v.yaml:7:7: default '7' is not in the list (1, 2, 3)");
    expect_error("version: \"3\", of", "version: \"9\", of", "canary version '9' is not in the list");
    expect_error("deprecated: 2026-06-01", "deprecated: 2026-02-30", "invalid date '2026-02-30'");
    expect_error("preview: true, ", "", "preview_requires needs preview: true");
    expect_error("{ echo: {}, request_headers", "{ ehco: {}, request_headers", "unknown key 'ehco' (did you mean 'echo'?)");
    expect_error("percent: 12.5", "percent: 100.01", "invalid percent");
    expect_error("cookie:uid", "session", "invalid sticky 'session'");
    expect_error("query:version", "quer:version", "invalid version source 'quer:version'");
}

static void test_path_segment(void **state)
{
    gh_str name, rest;
    assert_true(gh_versions_path_segment(GH_STR("/v2/orders/7"), &name, &rest));
    assert_true(gh_str_eq_c(name, "2") && gh_str_eq_c(rest, "/orders/7"));
    assert_true(gh_versions_path_segment(GH_STR("/v2024-01-01"), &name, &rest));
    assert_true(gh_str_eq_c(name, "2024-01-01") && gh_str_eq_c(rest, "/"));
    assert_false(gh_versions_path_segment(GH_STR("/video/x"), &name, &rest));
    assert_false(gh_versions_path_segment(GH_STR("/v"), &name, &rest));
    assert_false(gh_versions_path_segment(GH_STR("/orders"), &name, &rest));
}

static int requested(const gh_versions_cfg *vs, const char *hdr_name, const char *hdr_value, const char *query,
                     const char *path_version, char *out)
{
    gh_header h[1] = { { hdr_name, hdr_value, hdr_name ? (uint32_t)strlen(hdr_name) : 0,
                         hdr_value ? (uint32_t)strlen(hdr_value) : 0 } };
    char buf[256];
    gh_str name = { NULL, 0 };
    int r = gh_versions_requested(vs, h, hdr_name ? 1 : 0, gh_str_c(query),
                                  path_version ? gh_str_c(path_version) : (gh_str){ NULL, 0 }, buf, &name);
    snprintf(out, 64, "%.*s", (int)name.len, name.p ? name.p : "");
    return r;
}

static void test_sources_in_order(void **state)
{
    char e[2048], got[64];
    gh_config *cfg = load(base, e, sizeof(e));
    const gh_versions_cfg *vs = cfg->routes[0].versions;
    assert_int_equal(requested(vs, "Api-Version", "3", "version=1", "2", got), GH_VSRC_PATH);
    assert_string_equal(got, "2");
    assert_int_equal(requested(vs, "Api-Version", "3", "version=1", NULL, got), GH_VSRC_HEADER);
    assert_string_equal(got, "3");
    assert_int_equal(requested(vs, NULL, NULL, "a=b&version=%31", NULL, got), GH_VSRC_QUERY);
    assert_string_equal(got, "1");
    assert_int_equal(requested(vs, "Accept", "text/html, application/vnd.acme.orders.v3+json;q=0.9", "", NULL, got),
                     GH_VSRC_ACCEPT);
    assert_string_equal(got, "3");
    assert_int_equal(requested(vs, "Accept", "application/json", "", NULL, got), 0);
    assert_ptr_equal(gh_versions_find(vs, GH_STR("v2")), &vs->list[1]);
    assert_null(gh_versions_find(vs, GH_STR("9")));
    gh_config_free(cfg);
}

static void test_buckets(void **state)
{
    /* stable across builds and processes: the canary must not reshuffle on restart */
    assert_int_equal(gh_versions_bucket(GH_STR("orders"), GH_STR("user-1")),
                     gh_versions_bucket(GH_STR("orders"), GH_STR("user-1")));
    uint32_t b0 = gh_versions_bucket(GH_STR("orders"), GH_STR("user-1"));
    assert_true(b0 < 10000);
    /* uniform enough: 100,000 keys, each tenth of the range within 5% of its share */
    unsigned tenth[10] = { 0 };
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "user-%d", i);
        tenth[gh_versions_bucket(GH_STR("orders"), gh_str_c(key)) / 1000]++;
    }
    for (int i = 0; i < 10; i++)
        assert_true(tenth[i] > 9500 && tenth[i] < 10500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_path_segment),
        cmocka_unit_test(test_sources_in_order),
        cmocka_unit_test(test_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
