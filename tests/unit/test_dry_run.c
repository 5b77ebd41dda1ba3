/* test_dry_run.c — the dispatcher's dry-run mode (server/dry_run.h): a
 * request built in memory goes through gh_dispatch and the record says what
 * a client would get: the route and its parameters, the version and the
 * canary's decision (the same as gh_versions_bucket decides), the plugins'
 * answer, the target and the forwarded path, without running the target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "server/dry_run.h"

static const char yaml[] =
    "listen: [{ address: 127.0.0.1:1 }]\n"
    "consumers:\n"
    "  - { name: alice, api_keys: [alice-key-123456] }\n"
    "upstreams:\n"
    "  u1: { targets: [127.0.0.1:2] }\n"
    "  u2: { targets: [127.0.0.1:3] }\n"
    "routes:\n"
    "  - name: orders\n"
    "    match: { prefix: /orders }\n"
    "    rewrite: { strip_prefix: true, prefix: /internal }\n"
    "    versions:\n"
    "      from: [path, header:Api-Version]\n"
    "      default: \"1\"\n"
    "      list:\n"
    "        \"1\": { upstream: u1 }\n"
    "        \"2\": { upstream: u2 }\n"
    "      canary: { version: \"2\", of: \"1\", percent: 40, sticky: header:X-User-Id }\n"
    "  - name: user\n"
    "    match: { path: \"/users/{id}\", methods: [GET] }\n"
    "    plugins: { key_auth: {} }\n"
    "    echo: {}\n";

static gh_snapshot *snapshot(void)
{
    gh_diag d;
    gh_diag_init(&d, "t.yaml");
    gh_config *cfg = gh_config_load_string("t.yaml", yaml, strlen(yaml), &d);
    assert_non_null(cfg);
    gh_snapshot *s = gh_snapshot_build(cfg, 1, &d);
    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "%s\n", d.items[i].text);
    assert_non_null(s);
    gh_diag_free(&d);
    return s;
}

static void run(gh_snapshot *s, const char *method, const char *url, const char *hname, const char *hvalue,
                gh_dry_run *rec)
{
    gh_header h = { hname, hvalue, hname ? (uint32_t)strlen(hname) : 0, hvalue ? (uint32_t)strlen(hvalue) : 0 };
    gh_dry_request rq = { .method = method, .url = url, .headers = &h, .nheaders = hname ? 1 : 0 };
    const char *err = NULL;
    assert_true(gh_dry_run_request(s, &rq, rec, &err));
}

static void test_canary_decision_is_the_dispatchers(void **state)
{
    gh_snapshot *s = snapshot();
    int moved = 0;
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof(key), "u%d", i);
        gh_dry_run rec;
        run(s, "GET", "/orders/7?x=1", "X-User-Id", key, &rec);
        bool canary = gh_versions_bucket(GH_STR("orders"), gh_str_c(key)) < 4000;
        assert_true(rec.routed && rec.versioned && rec.reached);
        assert_int_equal(rec.status, 0);
        assert_true(rec.pick.canary_tried);
        assert_int_equal(rec.pick.by_canary, canary);
        assert_string_equal(rec.pick.v->name.p, canary ? "2" : "1");
        assert_string_equal(rec.pick.asked->name.p, "1");
        assert_int_equal(rec.pick.source, 0);
        assert_ptr_equal(rec.target, &rec.pick.v->route);
        assert_true(gh_str_eq_c(rec.forwarded, "/internal/7?x=1"));
        moved += canary;
        gh_dry_run_free(&rec);
    }
    assert_true(moved > 40 && moved < 120);
    gh_snapshot_unref(s);
}

static void test_path_version_and_errors(void **state)
{
    gh_snapshot *s = snapshot();
    gh_dry_run rec;
    run(s, "GET", "http://any.test/v2/orders/7", NULL, NULL, &rec);
    assert_true(gh_str_eq_c(rec.path, "/v2/orders/7"));
    assert_int_equal(rec.pick.source, GH_VSRC_PATH);
    assert_false(rec.pick.canary_tried);
    assert_true(gh_str_eq_c(rec.forwarded, "/internal/7"));
    gh_dry_run_free(&rec);

    run(s, "GET", "/v9/orders", NULL, NULL, &rec);
    assert_int_equal(rec.status, 400);
    assert_false(rec.reached);
    assert_null(rec.pick.v);
    assert_non_null(strstr(rec.body, "\"code\":\"version_unknown\""));
    gh_dry_run_free(&rec);

    run(s, "GET", "/a/../../x", NULL, NULL, &rec);
    assert_int_equal(rec.status, 400);
    assert_false(rec.routed);
    gh_dry_run_free(&rec);

    run(s, "DELETE", "/users/7", NULL, NULL, &rec);
    assert_int_equal(rec.status, 405);
    assert_non_null(strstr(rec.allow, "GET"));
    assert_false(rec.routed);
    gh_dry_run_free(&rec);
    gh_snapshot_unref(s);
}

static void test_plugins_run(void **state)
{
    gh_snapshot *s = snapshot();
    gh_dry_run rec;
    run(s, "GET", "/users/7", NULL, NULL, &rec);
    assert_int_equal(rec.status, 401);
    assert_false(rec.reached);
    assert_string_equal(rec.challenge, "Key realm=\"gatehouse\"");
    assert_ptr_equal(rec.chain_of, rec.m.route);
    gh_dry_run_free(&rec);

    run(s, "GET", "/users/7", "X-API-Key", "alice-key-123456", &rec);
    assert_true(rec.reached);
    assert_true(gh_str_eq_c(rec.ex->log.consumer, "alice"));
    assert_int_equal(rec.m.nparams, 1);
    assert_true(gh_str_eq_c(rec.m.params[0].value, "7"));
    assert_true(gh_str_eq_c(rec.forwarded, "/users/7"));
    gh_dry_run_free(&rec);
    gh_snapshot_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canary_decision_is_the_dispatchers),
        cmocka_unit_test(test_path_version_and_errors),
        cmocka_unit_test(test_plugins_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
