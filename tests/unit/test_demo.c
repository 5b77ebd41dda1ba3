/* test_demo.c — the embedded demo (SPEC §11): it loads clean, its port
 * overrides land where they should and nowhere else, and the banner prints
 * the addresses the configuration really listens on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "config/demo.h"

static gh_config *demo(gh_diag *d)
{
    gh_diag_init(d, "<demo>");
    return gh_demo_load(d);
}

static void test_default_loads_clean(void **state)
{
    unsetenv(GH_DEMO_LISTEN_ENV);
    unsetenv(GH_DEMO_ADMIN_ENV);
    gh_diag d;
    gh_config *cfg = demo(&d);
    if (!cfg || d.n)
        gh_diag_print(&d, stderr);
    assert_non_null(cfg);
    assert_int_equal(d.n, 0);   /* no warnings either: it is the example users copy */
    assert_string_equal(cfg->listens[0].address.p, "0.0.0.0:8080");
    assert_non_null(cfg->admin);
    assert_string_equal(cfg->admin->listen.address.p, "127.0.0.1:9901");
    assert_int_equal(cfg->admin->token.len, 0);   /* loopback: no token needed */
    assert_string_equal(cfg->log.access.p, "stdout");
    bool echo = false, hello = false, docs = false, index = false, limited = false;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const gh_route_cfg *r = &cfg->routes[i];
        if (r->target == GH_TARGET_ECHO && gh_str_eq_c(r->match.prefix, "/echo"))
            echo = true;
        if (r->target == GH_TARGET_RESPOND && gh_str_eq_c(r->match.path, "/hello"))
            hello = r->respond.status == 200 && gh_str_eq_c(r->respond.body, "hello from gatehouse\n");
        /* the demo points at nothing outside itself: /docs is its own page */
        if (r->target == GH_TARGET_RESPOND && gh_str_eq_c(r->match.path, "/docs"))
            docs = r->respond.status == 200 && r->respond.body.len > 0 &&
                   !memmem(r->respond.body.p, r->respond.body.len, "https://", 8);
        if (r->target == GH_TARGET_RESPOND && gh_str_eq_c(r->match.path, "/"))
            index = r->respond.body.len > 0 && r->respond.body.p[0] == '{';
        if (gh_str_eq_c(r->match.path, "/limited"))
            limited = r->target == GH_TARGET_RESPOND;
    }
    assert_true(echo && hello && docs && index && limited);
    gh_config_free(cfg);
    gh_diag_free(&d);
}

static void test_overrides_move_only_the_addresses(void **state)
{
    setenv(GH_DEMO_LISTEN_ENV, "127.0.0.1:18080", 1);
    setenv(GH_DEMO_ADMIN_ENV, "[::1]:19901", 1);
    gh_diag d;
    gh_config *cfg = demo(&d);
    assert_non_null(cfg);
    assert_string_equal(cfg->listens[0].address.p, "127.0.0.1:18080");
    assert_string_equal(cfg->admin->listen.address.p, "[::1]:19901");

    char *banner = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&banner, &len);
    gh_demo_banner(f, cfg);
    fclose(f);
    const char *first = strstr(banner, "Try:\n\n");
    assert_non_null(first);
    assert_true(strncmp(first + 6, "  dashboard ", 12) == 0);   /* the dashboard first */
    assert_non_null(strstr(banner, "http://[::1]:19901/\n"));
    assert_non_null(strstr(banner, "curl -i http://127.0.0.1:18080/hello\n"));
    assert_null(strstr(banner, ":8080/"));
    free(banner);
    gh_config_free(cfg);
    gh_diag_free(&d);
    unsetenv(GH_DEMO_LISTEN_ENV);
    unsetenv(GH_DEMO_ADMIN_ENV);
}

static void test_a_wildcard_is_reached_on_loopback(void **state)
{
    setenv(GH_DEMO_LISTEN_ENV, "[::]:18080", 1);
    gh_diag d;
    gh_config *cfg = demo(&d);
    assert_non_null(cfg);
    char *banner = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&banner, &len);
    gh_demo_banner(f, cfg);
    fclose(f);
    assert_non_null(strstr(banner, "curl -i http://[::1]:18080/hello\n"));
    free(banner);
    gh_config_free(cfg);
    gh_diag_free(&d);
    unsetenv(GH_DEMO_LISTEN_ENV);
}

static void test_a_bad_override_never_reaches_the_yaml(void **state)
{
    static const char *const bad[] = { "", "127.0.0.1:1\nroutes: []", "a b:1", "x:1 # y", "\"q\":1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv(GH_DEMO_ADMIN_ENV, bad[i], 1);
        gh_diag d;
        gh_diag_init(&d, "<demo>");
        assert_null(gh_demo_yaml(&d));
        assert_int_equal(d.errors, 1);
        char want[128];
        snprintf(want, sizeof(want), "GATEHOUSE_DEMO_ADMIN='%s' is not an address (HOST:PORT", bad[i]);
        assert_non_null(strstr(d.items[0].text, want));
        gh_diag_free(&d);
    }
    unsetenv(GH_DEMO_ADMIN_ENV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_loads_clean),
        cmocka_unit_test(test_overrides_move_only_the_addresses),
        cmocka_unit_test(test_a_wildcard_is_reached_on_loopback),
        cmocka_unit_test(test_a_bad_override_never_reaches_the_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
