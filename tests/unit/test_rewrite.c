/* test_rewrite.c — gh_rewrite_path: strip_prefix, prefix, path templates (SPEC §4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "route/route.h"

static gh_route_cfg routes[8];

/* Builds a one-route table, matches `path`, and rewrites it. */
static const char *through_router(gh_route_cfg *rc, const char *path)
{
    static char out[256];
    gh_config cfg = { .routes = rc, .nroutes = 1 };
    gh_diag d;
    gh_diag_init(&d, "t.yaml");
    gh_router *r = gh_router_build(&cfg, &d);
    if (!r) {
        gh_diag_print(&d, stderr);
        fail_msg("build failed");
    }
    gh_route_request req = { .method = GH_STR("GET"), .host = GH_STR("h"), .path = gh_str_c(path) };
    gh_route_match m;
    const char *res = "404";
    if (gh_router_match(r, &req, &m) == GH_ROUTE_FOUND) {
        size_t n = gh_rewrite_path(&m, req.path, out, sizeof(out));
        assert_int_equal(n, strlen(out));
        res = out;
    }
    gh_router_free(r);
    gh_diag_free(&d);
    return res;
}

static gh_route_cfg *route(const char *kind, const char *pat)
{
    static size_t n;
    gh_route_cfg *rc = &routes[n++ % 8];
    memset(rc, 0, sizeof(*rc));
    rc->name = GH_STR("r");
    if (strcmp(kind, "prefix") == 0)
        rc->match.prefix = gh_str_c(pat);
    else if (strcmp(kind, "path") == 0)
        rc->match.path = gh_str_c(pat);
    else
        rc->match.regex = gh_str_c(pat);
    return rc;
}

static void test_strip_prefix(void **state)
{
    gh_route_cfg *rc = route("prefix", "/users");
    rc->rewrite.strip_prefix = true;
    assert_string_equal(through_router(rc, "/users/7"), "/7");
    assert_string_equal(through_router(rc, "/users"), "/");
    assert_string_equal(through_router(rc, "/users/"), "/");
    assert_string_equal(through_router(rc, "/users/7/a/"), "/7/a/");
    rc->rewrite.strip_prefix = false;
    assert_string_equal(through_router(rc, "/users/7"), "/users/7");       /* no rewrite: as is */
    rc = route("prefix", "/");
    rc->rewrite.strip_prefix = true;
    assert_string_equal(through_router(rc, "/x/y"), "/x/y");               /* "/" strips nothing */
    assert_string_equal(through_router(rc, "/"), "/");
}

static void test_strip_and_prefix(void **state)
{
    gh_route_cfg *rc = route("prefix", "/users");
    rc->rewrite.strip_prefix = true;
    rc->rewrite.prefix = GH_STR("/internal/users");
    assert_string_equal(through_router(rc, "/users/7"), "/internal/users/7");
    assert_string_equal(through_router(rc, "/users"), "/internal/users");   /* as nginx: kept as sent */
    assert_string_equal(through_router(rc, "/users/"), "/internal/users/");
    rc->rewrite.prefix = GH_STR("/internal/users/");
    assert_string_equal(through_router(rc, "/users/7"), "/internal/users/7");
    assert_string_equal(through_router(rc, "/users"), "/internal/users/");
    rc->rewrite.prefix = GH_STR("/");
    assert_string_equal(through_router(rc, "/users/7"), "/7");
    assert_string_equal(through_router(rc, "/users"), "/");
}

static void test_prefix_without_strip(void **state)
{
    gh_route_cfg *rc = route("prefix", "/users");
    rc->rewrite.prefix = GH_STR("/v1");
    assert_string_equal(through_router(rc, "/users/7"), "/v1/users/7");
    rc->rewrite.prefix = GH_STR("/v1/");
    assert_string_equal(through_router(rc, "/users"), "/v1/users");
}

static void test_exact_and_template_strip(void **state)
{
    gh_route_cfg *rc = route("path", "/health");
    rc->rewrite.strip_prefix = true;
    rc->rewrite.prefix = GH_STR("/status");
    assert_string_equal(through_router(rc, "/health"), "/status");
    rc = route("path", "/users/{id}");
    rc->rewrite.strip_prefix = true;
    assert_string_equal(through_router(rc, "/users/7"), "/7");          /* leading literal segments */
    rc = route("path", "/{tenant}/users");
    rc->rewrite.strip_prefix = true;
    assert_string_equal(through_router(rc, "/acme/users"), "/acme/users");
}

static void test_path_template(void **state)
{
    gh_route_cfg *rc = route("path", "/users/{id}/orders/{rest*}");
    rc->rewrite.path = GH_STR("/v2/u/{id}/o/{rest*}");
    assert_string_equal(through_router(rc, "/users/7/orders/a/b"), "/v2/u/7/o/a/b");
    assert_string_equal(through_router(rc, "/users/7/orders"), "/v2/u/7/o/");
    assert_string_equal(through_router(rc, "/users/7/orders/a/"), "/v2/u/7/o/a/");
    rc->rewrite.path = GH_STR("/x/{rest*}/end/{id}");                  /* an empty rest leaves no "//" */
    assert_string_equal(through_router(rc, "/users/7/orders"), "/x/end/7");
    rc->rewrite.path = GH_STR("/static");
    assert_string_equal(through_router(rc, "/users/7/orders/z"), "/static");
    rc->rewrite.strip_prefix = true;                                   /* path wins over strip/prefix */
    rc->rewrite.prefix = GH_STR("/ignored");
    assert_string_equal(through_router(rc, "/users/7/orders/z"), "/static");
}

static void test_regex_template(void **state)
{
    gh_route_cfg *rc = route("regex", "^/u/(?<id>[0-9]+)(?:/(?<tab>[a-z]+))?$");
    rc->rewrite.path = GH_STR("/users/{id}/{tab}");
    assert_string_equal(through_router(rc, "/u/42/posts"), "/users/42/posts");
    assert_string_equal(through_router(rc, "/u/42"), "/users/42/");     /* unset group: empty */
    rc->rewrite.path = GH_STR(""); rc->rewrite.strip_prefix = true;
    assert_string_equal(through_router(rc, "/u/42"), "/u/42");          /* regex: nothing to strip */
}

static void test_capacity(void **state)
{
    gh_route_cfg rc = { .name = GH_STR("r") };
    rc.rewrite.prefix = GH_STR("/internal");
    gh_route_match m = { .route = &rc };
    char out[16];
    assert_int_equal(gh_rewrite_path(&m, GH_STR("/abcde"), out, 16), 15);    /* "/internal/abcde" + NUL */
    assert_string_equal(out, "/internal/abcde");
    assert_int_equal(gh_rewrite_path(&m, GH_STR("/abcdef"), out, 16), (size_t)-1);
    assert_int_equal(gh_rewrite_path(&m, GH_STR("/a"), out, 0), (size_t)-1);
    rc.rewrite.prefix = GH_STR_NULL;
    rc.rewrite.path = GH_STR("/{a}-{b}");
    m.params[0] = (gh_param){ GH_STR("a"), GH_STR("x") };
    m.params[1] = (gh_param){ GH_STR("b"), GH_STR("0123456789ab") };
    m.nparams = 2;
    assert_int_equal(gh_rewrite_path(&m, GH_STR("/"), out, 16), 15);
    assert_string_equal(out, "/x-0123456789ab");
    m.params[0].value = GH_STR("xy");
    assert_int_equal(gh_rewrite_path(&m, GH_STR("/"), out, 16), (size_t)-1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strip_prefix),
        cmocka_unit_test(test_strip_and_prefix),
        cmocka_unit_test(test_prefix_without_strip),
        cmocka_unit_test(test_exact_and_template_strip),
        cmocka_unit_test(test_path_template),
        cmocka_unit_test(test_regex_template),
        cmocka_unit_test(test_capacity),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    gh_router_thread_done();
    return rc;
}
