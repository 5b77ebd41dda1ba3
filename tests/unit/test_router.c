/* test_router.c — route compilation, precedence, 405, ties and shadows (SPEC §4, §12.3, §12.4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "route/route.h"

/* ---- fixture: hand-built gh_route_cfg tables (the YAML loader is tested on its own) ---- */
#define FX_MAX 4096

static gh_route_cfg fx_routes[FX_MAX];
static gh_str fx_methods[FX_MAX][6];
static gh_kv fx_headers[FX_MAX][4];
static gh_kv fx_query[FX_MAX][4];
static size_t fx_n;

static void fx_reset(void)
{
    memset(fx_routes, 0, sizeof(fx_routes));
    fx_n = 0;
}

/* kind: "prefix", "path" or "regex"; host may be NULL. Line = 10 * (n + 1). */
static gh_route_cfg *fx_add(const char *name, const char *host, const char *kind, const char *pat)
{
    gh_route_cfg *r = &fx_routes[fx_n];
    memset(r, 0, sizeof(*r));
    r->name = gh_str_c(name);
    r->index = fx_n;
    r->mark = (gh_mark){ (unsigned)(10 * (fx_n + 1)), 5 };
    r->match.path_mark = (gh_mark){ (unsigned)(10 * (fx_n + 1) + 2), 7 };
    r->match.host_mark = (gh_mark){ (unsigned)(10 * (fx_n + 1) + 1), 7 };
    r->rewrite.mark = (gh_mark){ (unsigned)(10 * (fx_n + 1) + 5), 5 };
    if (host)
        r->match.host = gh_str_c(host);
    if (strcmp(kind, "prefix") == 0)
        r->match.prefix = gh_str_c(pat);
    else if (strcmp(kind, "path") == 0)
        r->match.path = gh_str_c(pat);
    else if (strcmp(kind, "regex") == 0)
        r->match.regex = gh_str_c(pat);
    r->target = GH_TARGET_ECHO;
    fx_n++;
    return r;
}

/* Like the loader: bits for known methods, GH_M_OTHER for others, every name listed. */
static void fx_method(gh_route_cfg *r, const char *m)
{
    size_t i = (size_t)(r - fx_routes);
    r->match.methods |= gh_method_bit(m, strlen(m));
    fx_methods[i][r->match.nmethods] = gh_str_c(m);
    r->match.method_names = fx_methods[i];
    r->match.nmethods++;
}

static void fx_header(gh_route_cfg *r, const char *name, const char *value)
{
    size_t i = (size_t)(r - fx_routes);
    fx_headers[i][r->match.nheaders] = (gh_kv){ .name = gh_str_c(name), .value = gh_str_c(value) };
    r->match.headers = fx_headers[i];
    r->match.nheaders++;
}

static void fx_query_cond(gh_route_cfg *r, const char *name, const char *value)
{
    size_t i = (size_t)(r - fx_routes);
    fx_query[i][r->match.nquery] = (gh_kv){ .name = gh_str_c(name), .value = gh_str_c(value) };
    r->match.query = fx_query[i];
    r->match.nquery++;
}

static gh_router *fx_build(gh_diag *d)
{
    static gh_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.routes = fx_routes;
    cfg.nroutes = fx_n;
    gh_diag_init(d, "gatehouse.yaml");
    return gh_router_build(&cfg, d);
}

/* One request; "Name: value" headers, NULL-terminated. */
static int fx_match(const gh_router *r, const char *method, const char *host, const char *path,
                    const char *query, const char *const *hdrs, gh_route_match *m)
{
    gh_header h[8];
    size_t nh = 0;
    for (; hdrs && hdrs[nh]; nh++) {
        const char *colon = strchr(hdrs[nh], ':');
        h[nh] = (gh_header){ .name = hdrs[nh], .name_len = (uint32_t)(colon - hdrs[nh]),
                             .value = colon + 2, .value_len = (uint32_t)strlen(colon + 2) };
    }
    gh_route_request req = {
        .method = gh_str_c(method), .host = gh_str_c(host ? host : ""), .path = gh_str_c(path),
        .query = gh_str_c(query ? query : ""), .headers = h, .nheaders = nh,
    };
    return gh_router_match(r, &req, m);
}

/* The name of the matched route, or "404" / "405". */
static const char *fx_who(const gh_router *r, const char *method, const char *host, const char *path,
                          const char *query, const char *const *hdrs)
{
    static gh_route_match m;
    static char name[64];
    int rc = fx_match(r, method, host, path, query, hdrs, &m);
    if (rc == GH_ROUTE_NONE)
        return "404";
    if (rc == GH_ROUTE_METHOD)
        return "405";
    snprintf(name, sizeof(name), "%.*s", (int)m.route->name.len, m.route->name.p);
    return name;
}


#define H(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define WHO(r, m, host, path) fx_who(r, m, host, path, NULL, NULL)

static void expect_clean(gh_router *r, gh_diag *d)
{
    if (!r || d->n) {
        gh_diag_print(d, stderr);
        fail_msg("expected a clean build");
    }
}

static bool diag_has(const gh_diag *d, bool warning, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->items[i].warning == warning && strstr(d->items[i].text, needle))
            return true;
    return false;
}

static void test_host_precedence(void **state)
{
    fx_reset();
    fx_add("any", NULL, "prefix", "/");
    fx_add("wild", "*.example.com", "prefix", "/");
    fx_add("wild-api", "*.api.example.com", "prefix", "/");
    fx_add("exact", "api.example.com", "prefix", "/");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    static const char *cases[][2] = {
        { "api.example.com", "exact" }, { "API.Example.COM:8443", "exact" }, { "api.example.com.", "exact" },
        { "api.example.com:80", "exact" }, { "x.api.example.com", "wild-api" },
        { "a.b.api.example.com", "wild-api" }, { "www.example.com", "wild" }, { "a.b.example.com", "wild" },
        { "WWW.EXAMPLE.COM:1", "wild" }, { "example.com", "any" }, { "example.com:80", "any" },
        { "xexample.com", "any" }, { "notexample.com", "any" }, { "", "any" }, { "[::1]:8080", "any" },
        { ".example.com", "any" }, { "api.example.org", "any" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (strcmp(WHO(r, "GET", cases[i][0], "/x"), cases[i][1]) != 0)
            fail_msg("host %s: got %s, want %s", cases[i][0], WHO(r, "GET", cases[i][0], "/x"), cases[i][1]);
    /* without a no-host route, the apex is not matched by the wildcard */
    gh_router_free(r);
    gh_diag_free(&d);
    fx_reset();
    fx_add("wild", "*.example.com", "prefix", "/");
    r = fx_build(&d);
    expect_clean(r, &d);
    assert_string_equal(WHO(r, "GET", "example.com", "/"), "404");
    assert_string_equal(WHO(r, "GET", "a.example.com", "/"), "wild");
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_host_beats_path(void **state)
{
    fx_reset();
    fx_add("exact-path", NULL, "path", "/users");
    fx_add("host-root", "api.example.com", "prefix", "/");
    fx_add("wild-regex", "*.example.com", "regex", "^/users$");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    assert_string_equal(WHO(r, "GET", "api.example.com", "/users"), "host-root");
    assert_string_equal(WHO(r, "GET", "w.example.com", "/users"), "wild-regex");
    assert_string_equal(WHO(r, "GET", "w.example.com", "/other"), "404");
    assert_string_equal(WHO(r, "GET", "other.org", "/users"), "exact-path");
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_path_precedence(void **state)
{
    fx_reset();
    fx_add("re", NULL, "regex", "^/deep/.*/end$");
    fx_add("p-users", NULL, "prefix", "/users");
    fx_add("p-admin", NULL, "prefix", "/users/admin");
    fx_add("t-any2", NULL, "path", "/{a}/{b}");
    fx_add("t-id", NULL, "path", "/users/{id}");
    fx_add("t-orders", NULL, "path", "/users/{id}/orders/{oid}");
    fx_add("exact-me", NULL, "path", "/users/me");
    fx_add("exact-root", NULL, "path", "/");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    static const char *cases[][2] = {
        { "/users/me", "exact-me" }, { "/users/7", "t-id" }, { "/users/admin", "t-id" },
        { "/users/7/orders/9", "t-orders" }, { "/users/7/orders", "p-users" }, { "/users/7/", "p-users" },
        { "/users", "p-users" }, { "/users/", "p-users" }, { "/users/admin/x", "p-admin" },
        { "/users/admin/", "p-admin" }, { "/users/adminx/y", "p-users" }, { "/usersx", "404" },
        { "/usersx/y", "t-any2" }, { "/", "exact-root" }, { "/a", "404" }, { "/deep/a/b/end", "re" },
        { "/deep/end", "t-any2" }, { "/deep/a/b/end/", "404" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (strcmp(WHO(r, "GET", "h", cases[i][0]), cases[i][1]) != 0)
            fail_msg("%s: got %s, want %s", cases[i][0], WHO(r, "GET", "h", cases[i][0]), cases[i][1]);
    gh_route_match m;
    assert_int_equal(fx_match(r, "GET", NULL, "/users/7/orders/9", NULL, NULL, &m), GH_ROUTE_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_true(gh_str_eq_c(m.params[0].name, "id") && gh_str_eq_c(m.params[0].value, "7"));
    assert_true(gh_str_eq_c(m.params[1].name, "oid") && gh_str_eq_c(m.params[1].value, "9"));
    assert_true(gh_str_eq_c(m.matched_prefix, "/users"));
    assert_int_equal(fx_match(r, "GET", NULL, "/users/admin/x", NULL, NULL, &m), GH_ROUTE_FOUND);
    assert_true(gh_str_eq_c(m.matched_prefix, "/users/admin"));
    /* a prefix route offers what follows the prefix as {rest} */
    assert_int_equal(m.nparams, 1);
    assert_true(gh_str_eq_c(m.params[0].name, "rest") && gh_str_eq_c(m.params[0].value, "x"));
    assert_int_equal(fx_match(r, "GET", NULL, "/users/", NULL, NULL, &m), GH_ROUTE_FOUND);
    assert_true(gh_str_eq_c(m.matched_prefix, "/users"));
    /* the table lists routes in precedence order, not file order */
    static const char *order[] = { "exact-root", "exact-me", "t-orders", "t-id", "t-any2",
                                   "p-admin", "p-users", "re" };
    assert_int_equal(gh_router_count(r), 8);
    for (size_t i = 0; i < 8; i++)
        assert_true(gh_str_eq_c(gh_router_at(r, i)->name, order[i]));
    assert_null(gh_router_at(r, 8));
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_rest_templates(void **state)
{
    fx_reset();
    fx_add("deep", NULL, "path", "/{rest*}");
    fx_add("files", NULL, "path", "/files/{rest*}");
    fx_add("file-id", NULL, "path", "/files/{id}");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    gh_route_match m;
    static const char *cases[][3] = {
        { "/files/a", "file-id", "a" }, { "/files/a/b", "files", "a/b" }, { "/files", "files", "" },
        { "/files/", "files", "" }, { "/files/a/", "files", "a/" }, { "/other/x", "deep", "other/x" },
        { "/", "deep", "" }, { "/filesx", "deep", "filesx" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(fx_match(r, "GET", NULL, cases[i][0], NULL, NULL, &m), GH_ROUTE_FOUND);
        if (!gh_str_eq_c(m.route->name, cases[i][1]) || m.nparams != 1 ||
            !gh_str_eq_c(m.params[0].value, cases[i][2]))
            fail_msg("%s: got %s with %zu params", cases[i][0], m.route->name.p, m.nparams);
    }
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_regex_params_and_file_order(void **state)
{
    fx_reset();
    fx_add("plain", NULL, "prefix", "/api");
    fx_add("re-id", NULL, "regex", "^/u/(?<id>[0-9]+)$");
    fx_add("re-name", NULL, "regex", "^/u/(?<name>[a-z]+)(?:/(?<tab>[a-z]+))?$");
    fx_add("re-any", NULL, "regex", "^/u/");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    gh_route_match m;
    assert_int_equal(fx_match(r, "GET", NULL, "/u/42", NULL, NULL, &m), GH_ROUTE_FOUND);
    assert_true(gh_str_eq_c(m.route->name, "re-id"));
    assert_int_equal(m.nparams, 1);
    assert_true(gh_str_eq_c(m.params[0].name, "id") && gh_str_eq_c(m.params[0].value, "42"));
    assert_int_equal(m.matched_prefix.len, 0);
    assert_int_equal(fx_match(r, "GET", NULL, "/u/bob", NULL, NULL, &m), GH_ROUTE_FOUND);
    assert_true(gh_str_eq_c(m.route->name, "re-name"));
    assert_int_equal(m.nparams, 1);                           /* unset groups are left out */
    assert_true(gh_str_eq_c(m.params[0].name, "name") && gh_str_eq_c(m.params[0].value, "bob"));
    assert_int_equal(fx_match(r, "GET", NULL, "/u/bob/posts", NULL, NULL, &m), GH_ROUTE_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_true(gh_str_eq_c(m.params[1].name, "tab") && gh_str_eq_c(m.params[1].value, "posts"));
    assert_string_equal(WHO(r, "GET", NULL, "/u/B0b"), "re-any");
    assert_string_equal(WHO(r, "GET", NULL, "/api/x"), "plain");
    assert_string_equal(WHO(r, "GET", NULL, "/v"), "404");
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_conditions_beat_none(void **state)
{
    fx_reset();
    fx_add("plain", NULL, "prefix", "/x");
    fx_method(fx_add("post", NULL, "prefix", "/x"), "POST");
    fx_add("ybase", NULL, "path", "/y");
    fx_query_cond(fx_add("beta", NULL, "path", "/y"), "beta", "1");
    fx_query_cond(fx_add("spaced", NULL, "path", "/y2"), "q", "a b");
    fx_add("tbase", NULL, "prefix", "/t");
    fx_header(fx_add("tenant", NULL, "prefix", "/t"), "X-Tenant", "acme");
    fx_method(fx_add("g", NULL, "prefix", "/m"), "GET");
    gh_route_cfg *gh = fx_add("gh", NULL, "prefix", "/m");
    fx_method(gh, "GET");
    fx_header(gh, "X-A", "1");
    gh_route_cfg *gs = fx_add("g-narrow", NULL, "prefix", "/n");      /* GET ⊂ GET, POST: more specific */
    fx_method(gs, "GET");
    gh_route_cfg *gw = fx_add("g-wide", NULL, "prefix", "/n");
    fx_method(gw, "GET");
    fx_method(gw, "POST");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    assert_string_equal(WHO(r, "GET", NULL, "/x/1"), "plain");
    assert_string_equal(WHO(r, "POST", NULL, "/x/1"), "post");
    assert_string_equal(WHO(r, "GET", NULL, "/y"), "ybase");
    assert_string_equal(fx_who(r, "GET", NULL, "/y", "beta=1", NULL), "beta");
    assert_string_equal(fx_who(r, "GET", NULL, "/y", "beta=2", NULL), "ybase");
    assert_string_equal(fx_who(r, "GET", NULL, "/y", "a=1&beta=1", NULL), "beta");
    assert_string_equal(fx_who(r, "GET", NULL, "/y", "beta=%31", NULL), "beta");
    assert_string_equal(fx_who(r, "GET", NULL, "/y", "b%65ta=1&x", NULL), "beta");
    assert_string_equal(fx_who(r, "GET", NULL, "/y", "beta=1&beta=2", NULL), "beta");
    assert_string_equal(fx_who(r, "GET", NULL, "/y", "beta=2&beta=1", NULL), "ybase");  /* first decides */
    assert_string_equal(fx_who(r, "GET", NULL, "/y", "beta", NULL), "ybase");
    assert_string_equal(fx_who(r, "GET", NULL, "/y", "betax=1", NULL), "ybase");
    assert_string_equal(fx_who(r, "GET", NULL, "/y2", "q=a+b", NULL), "spaced");
    assert_string_equal(fx_who(r, "GET", NULL, "/y2", "q=a%20b", NULL), "spaced");
    assert_string_equal(fx_who(r, "GET", NULL, "/t/1", NULL, H("x-tenant: acme")), "tenant");
    assert_string_equal(fx_who(r, "GET", NULL, "/t/1", NULL, H("X-Tenant: ACME")), "tbase");
    assert_string_equal(fx_who(r, "GET", NULL, "/t/1", NULL, H("X-Other: acme")), "tbase");
    assert_string_equal(fx_who(r, "GET", NULL, "/t/1", NULL, H("X-Tenant: other", "X-Tenant: acme")), "tbase");
    assert_string_equal(fx_who(r, "GET", NULL, "/m", NULL, H("X-A: 1")), "gh");
    assert_string_equal(fx_who(r, "HEAD", NULL, "/m", NULL, H("X-A: 1")), "gh");
    assert_string_equal(fx_who(r, "GET", NULL, "/m", NULL, H("X-A: 2")), "g");
    assert_string_equal(WHO(r, "GET", NULL, "/m"), "g");
    assert_string_equal(WHO(r, "GET", NULL, "/n"), "g-narrow");
    assert_string_equal(WHO(r, "POST", NULL, "/n"), "g-wide");
    gh_route_match m;
    assert_int_equal(fx_match(r, "POST", NULL, "/m", NULL, NULL, &m), GH_ROUTE_METHOD);
    assert_string_equal(m.allow_text, "GET, HEAD");
    assert_null(m.route);
    gh_router_free(r);
    gh_diag_free(&d);
}

/* CONNECT reaches only a route that lists it: a route without `methods`
 * answers it 405, and its Allow names every other method. */
static void test_connect_needs_listing(void **state)
{
    fx_reset();
    fx_add("any", NULL, "prefix", "/");
    fx_method(fx_add("tunnel", "tunnel.example", "prefix", "/"), "CONNECT");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    gh_route_match m;
    assert_int_equal(fx_match(r, "CONNECT", "named.example", "/", NULL, NULL, &m), GH_ROUTE_METHOD);
    assert_string_equal(m.allow_text, "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE");
    assert_string_equal(WHO(r, "CONNECT", "tunnel.example", "/"), "tunnel");
    assert_string_equal(WHO(r, "GET", "named.example", "/x"), "any");
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_method_not_allowed(void **state)
{
    fx_reset();
    gh_route_cfg *u = fx_add("users", NULL, "prefix", "/users");
    fx_method(u, "POST");
    fx_method(u, "GET");
    fx_method(fx_add("del", NULL, "path", "/users/1"), "DELETE");
    fx_method(fx_add("purge", NULL, "path", "/cache"), "PURGE");
    gh_route_cfg *h = fx_add("hdr", NULL, "prefix", "/h");
    fx_method(h, "GET");
    fx_header(h, "X", "1");
    fx_method(fx_add("head-only", NULL, "path", "/ho"), "HEAD");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    gh_route_match m;
    assert_int_equal(fx_match(r, "PUT", NULL, "/users/1", NULL, NULL, &m), GH_ROUTE_METHOD);
    assert_string_equal(m.allow_text, "GET, HEAD, POST, DELETE");
    assert_int_equal(m.allow, GH_M_GET | GH_M_HEAD | GH_M_POST | GH_M_DELETE);
    assert_int_equal(fx_match(r, "PUT", NULL, "/users", NULL, NULL, &m), GH_ROUTE_METHOD);
    assert_string_equal(m.allow_text, "GET, HEAD, POST");
    assert_string_equal(WHO(r, "HEAD", NULL, "/users"), "users");
    assert_string_equal(WHO(r, "GET", NULL, "/users/1"), "users");     /* a full match elsewhere wins */
    assert_string_equal(WHO(r, "DELETE", NULL, "/users/1"), "del");
    assert_string_equal(WHO(r, "GET", NULL, "/nothing"), "404");
    assert_int_equal(fx_match(r, "GET", NULL, "/cache", NULL, NULL, &m), GH_ROUTE_METHOD);
    assert_string_equal(m.allow_text, "PURGE");
    assert_true(m.allow & GH_M_OTHER);
    assert_string_equal(WHO(r, "PURGE", NULL, "/cache"), "purge");
    assert_string_equal(WHO(r, "purge", NULL, "/cache"), "405");       /* methods are case-sensitive */
    assert_int_equal(fx_match(r, "POST", NULL, "/h", NULL, H("X: 1"), &m), GH_ROUTE_METHOD);
    assert_string_equal(m.allow_text, "GET, HEAD");
    assert_string_equal(fx_who(r, "POST", NULL, "/h", NULL, H("X: 2")), "404");  /* headers must match for 405 */
    assert_string_equal(WHO(r, "HEAD", NULL, "/ho"), "head-only");
    assert_int_equal(fx_match(r, "GET", NULL, "/ho", NULL, NULL, &m), GH_ROUTE_METHOD);
    assert_string_equal(m.allow_text, "HEAD");
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_full_match_elsewhere_beats_405(void **state)
{
    fx_reset();
    fx_method(fx_add("getonly", "a.com", "path", "/a"), "GET");
    fx_method(fx_add("wild-get", "*.b.com", "prefix", "/"), "GET");
    fx_add("catch", NULL, "prefix", "/");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    assert_string_equal(WHO(r, "GET", "a.com", "/a"), "getonly");
    assert_string_equal(WHO(r, "POST", "a.com", "/a"), "catch");
    assert_string_equal(WHO(r, "POST", "x.b.com", "/q"), "catch");
    assert_string_equal(WHO(r, "GET", "x.b.com", "/q"), "wild-get");
    gh_router_free(r);
    gh_diag_free(&d);

    fx_reset();
    fx_method(fx_add("getonly", "a.com", "path", "/a"), "GET");
    fx_method(fx_add("post-elsewhere", NULL, "path", "/a"), "POST");
    r = fx_build(&d);
    expect_clean(r, &d);
    assert_string_equal(WHO(r, "POST", "a.com", "/a"), "post-elsewhere");
    gh_route_match m;
    assert_int_equal(fx_match(r, "PUT", "a.com:8080", "/a", NULL, NULL, &m), GH_ROUTE_METHOD);
    assert_string_equal(m.allow_text, "GET, HEAD, POST");
    gh_router_free(r);
    gh_diag_free(&d);
}

/* Builds the current fixture and expects exactly `errors` errors, the first containing `needle`. */
static void expect_errors(size_t errors, const char *needle)
{
    gh_diag d;
    gh_router *r = fx_build(&d);
    if (r || d.errors != errors || (needle && !diag_has(&d, false, needle))) {
        gh_diag_print(&d, stderr);
        fail_msg("want %zu error(s) with \"%s\"", errors, needle ? needle : "");
    }
    gh_diag_free(&d);
}

static void test_ties_are_errors(void **state)
{
    fx_reset();
    fx_add("a", NULL, "prefix", "/x");
    fx_add("b", NULL, "prefix", "/x/");
    expect_errors(1, "gatehouse.yaml:20:5: route 'b' ties with route 'a' (line 10)");

    fx_reset();
    fx_add("a", NULL, "path", "/u/{id}");
    fx_add("other", NULL, "path", "/v/{id}");
    fx_add("b", NULL, "path", "/u/{name}");
    expect_errors(1, "route 'b' ties with route 'a' (line 10)");

    fx_reset();
    fx_add("a", NULL, "path", "/{a}/x");
    fx_add("b", NULL, "path", "/x/{b}");
    expect_errors(1, "route 'b' ties with route 'a'");

    fx_reset();
    fx_method(fx_add("a", NULL, "prefix", "/p"), "GET");
    fx_header(fx_add("b", NULL, "prefix", "/p"), "X", "1");
    expect_errors(1, "route 'b' ties with route 'a'");

    fx_reset();
    fx_method(fx_add("a", "*.example.com", "path", "/p"), "GET");
    fx_method(fx_add("b", "*.EXAMPLE.com", "path", "/p"), "GET");
    expect_errors(1, "route 'b' ties with route 'a'");

    fx_reset();
    fx_add("a", "h.com", "path", "/p");
    fx_add("b", "h.com", "path", "/p");
    fx_add("c", "h.com", "path", "/p");
    expect_errors(2, "route 'c' ties with route 'b'");

    fx_reset();                                            /* every error at once */
    fx_add("a", NULL, "prefix", "/x");
    fx_add("b", NULL, "prefix", "/x");
    fx_add("c", NULL, "path", "/y");
    fx_add("d", NULL, "path", "/y");
    expect_errors(2, "route 'd' ties with route 'c' (line 30)");
}

static void test_not_ties(void **state)
{
    fx_reset();
    fx_method(fx_add("get", NULL, "prefix", "/a"), "GET");
    fx_method(fx_add("post", NULL, "prefix", "/a"), "POST");
    fx_header(fx_add("x1", NULL, "prefix", "/b"), "X", "1");
    fx_header(fx_add("x2", NULL, "prefix", "/b"), "x", "2");
    fx_add("h1", "one.com", "path", "/c");
    fx_add("h2", "two.com", "path", "/c");
    fx_add("wild", "*.one.com", "path", "/c");
    fx_add("id", NULL, "path", "/d/{id}");
    fx_add("id-rest", NULL, "path", "/d/{id}/{rest*}");
    fx_add("e-plain", NULL, "path", "/e");
    fx_query_cond(fx_add("e-q", NULL, "path", "/e"), "v", "1");
    fx_method(fx_add("g-get", NULL, "prefix", "/g"), "GET");
    fx_method(fx_add("g-head", NULL, "prefix", "/g"), "HEAD");   /* HEAD only: more specific */
    fx_add("re1", NULL, "regex", "^/r$");
    fx_add("re2", NULL, "regex", "^/r$");
    gh_diag d;
    gh_router *r = fx_build(&d);
    assert_non_null(r);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.warnings, 1);
    assert_true(diag_has(&d, true, "gatehouse.yaml:150:5: warning: route 're2' can never match: route 're1' (line 140)"));
    assert_string_equal(WHO(r, "GET", NULL, "/d/7"), "id");
    assert_string_equal(WHO(r, "GET", NULL, "/d/7/"), "id-rest");
    assert_string_equal(WHO(r, "GET", NULL, "/g"), "g-get");
    assert_string_equal(WHO(r, "HEAD", NULL, "/g"), "g-head");
    assert_string_equal(WHO(r, "GET", "x.one.com", "/c"), "wild");
    assert_string_equal(WHO(r, "GET", "one.com", "/c"), "h1");
    assert_string_equal(fx_who(r, "GET", NULL, "/b", NULL, H("X: 2")), "x2");
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_shadow_warnings(void **state)
{
    fx_reset();
    fx_add("root", NULL, "prefix", "/");
    fx_add("re", NULL, "regex", "^/z");
    fx_add("all", "h.com", "path", "/{rest*}");
    fx_add("static", "h.com", "prefix", "/static");
    fx_add("api", "v.com", "path", "/api/{v}/{rest*}");
    fx_add("users", "v.com", "prefix", "/api/v1/users");
    fx_add("api-root", "v.com", "prefix", "/api");                  /* not covered: "/api" itself */
    fx_method(fx_add("cond-root", "c.com", "prefix", "/"), "GET");   /* has a condition: covers nothing */
    fx_add("re-c", "c.com", "regex", "^/z");
    fx_add("re-h", "h.com", "regex", "^/z");
    gh_diag d;
    gh_router *r = fx_build(&d);
    assert_non_null(r);
    assert_int_equal(d.errors, 0);
    if (d.warnings != 4)
        gh_diag_print(&d, stderr);
    assert_int_equal(d.warnings, 4);
    assert_true(diag_has(&d, true, "route 're' can never match: route 'root' (line 10)"));
    assert_true(diag_has(&d, true, "route 'static' can never match: route 'all' (line 30)"));
    assert_true(diag_has(&d, true, "route 'users' can never match: route 'api' (line 50)"));
    assert_true(diag_has(&d, true, "route 're-h' can never match: route 'all' (line 30)"));
    assert_string_equal(WHO(r, "GET", "v.com", "/api"), "api-root");
    assert_string_equal(WHO(r, "POST", "c.com", "/z"), "re-c");
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_config_errors(void **state)
{
    fx_reset();
    fx_add("bad-re", NULL, "regex", "^/(?<id");
    fx_add("bad-tpl", NULL, "path", "/users/{id");
    fx_add("dup-param", NULL, "path", "/a/{x}/{x}");
    fx_add("rest-mid", NULL, "path", "/{rest*}/x");
    fx_add("port", "api.example.com:8080", "prefix", "/");
    fx_add("star", "a.*.com", "prefix", "/");
    gh_route_cfg *two = fx_add("two", NULL, "prefix", "/a");
    two->match.path = gh_str_c("/b");
    fx_add("climb", NULL, "prefix", "/a/../..");
    gh_diag d;
    gh_router *r = fx_build(&d);
    assert_null(r);
    if (d.errors != 8)
        gh_diag_print(&d, stderr);
    assert_int_equal(d.errors, 8);
    assert_true(diag_has(&d, false, "gatehouse.yaml:12:7: route 'bad-re': invalid regex at offset"));
    assert_true(diag_has(&d, false, "gatehouse.yaml:22:7: route 'bad-tpl': path template"));
    assert_true(diag_has(&d, false, "route 'dup-param': path template '/a/{x}/{x}': a parameter name appears twice"));
    assert_true(diag_has(&d, false, "route 'rest-mid'"));
    assert_true(diag_has(&d, false, "gatehouse.yaml:51:7: route 'port': host 'api.example.com:8080' carries a port"));
    assert_true(diag_has(&d, false, "route 'star'"));
    assert_true(diag_has(&d, false, "route 'two': match by one of"));
    assert_true(diag_has(&d, false, "route 'climb': path '/a/../..' climbs above '/'"));
    gh_diag_free(&d);

    fx_reset();
    fx_add("rw", NULL, "path", "/users/{id}")->rewrite.path = gh_str_c("/v2/{nope}");
    fx_add("rw-ok", NULL, "path", "/u/{id}/{rest*}")->rewrite.path = gh_str_c("/v2/{id}/{rest*}");
    fx_add("rw-re", NULL, "regex", "^/r/(?<n>.*)")->rewrite.path = gh_str_c("/x/{n}/{m}");
    fx_add("rw-prefix", NULL, "prefix", "/p")->rewrite.prefix = gh_str_c("internal");
    expect_errors(3, "gatehouse.yaml:15:5: route 'rw': rewrite.path uses {nope}, which the match does not capture");
}

static void test_config_paths_are_normalized(void **state)
{
    fx_reset();
    fx_add("a", NULL, "prefix", "/api//v1/");
    fx_add("b", NULL, "path", "/%7euser/./x");
    fx_add("any", NULL, "path", "/*");           /* "*" and other chars are literal */
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    assert_string_equal(WHO(r, "GET", NULL, "/api/v1"), "a");
    assert_string_equal(WHO(r, "GET", NULL, "/api/v1/x"), "a");
    assert_string_equal(WHO(r, "GET", NULL, "/~user/x"), "b");
    assert_string_equal(WHO(r, "GET", NULL, "/*"), "any");
    gh_route_match m;
    assert_int_equal(fx_match(r, "GET", NULL, "/api/v1/x", NULL, NULL, &m), GH_ROUTE_FOUND);
    assert_true(gh_str_eq_c(m.matched_prefix, "/api/v1"));
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_describe(void **state)
{
    char buf[256];
    fx_reset();
    gh_route_cfg *a = fx_add("a", "api.example.com", "path", "/users/{id}");
    fx_method(a, "GET");
    gh_router_describe(NULL, a, buf, sizeof(buf));
    assert_string_equal(buf, "host api.example.com (exact), path /users/{id} (template, 1 literal segment), methods GET, HEAD");
    gh_route_cfg *b = fx_add("b", NULL, "prefix", "/users");
    fx_header(b, "X-Key", "s3cret");
    fx_headers[1][0].secret = true;
    fx_query_cond(b, "beta", "1");
    gh_router_describe(NULL, b, buf, sizeof(buf));
    assert_string_equal(buf, "any host, prefix /users, headers X-Key: ***, query beta=1");
    gh_route_cfg *c = fx_add("c", "*.example.com", "regex", "^/u/(?<id>[0-9]+)$");
    fx_method(c, "POST");
    fx_method(c, "PURGE");
    gh_router_describe(NULL, c, buf, sizeof(buf));
    assert_string_equal(buf, "host *.example.com (wildcard), regex ^/u/(?<id>[0-9]+)$, methods POST, PURGE");
    gh_route_cfg *e = fx_add("e", NULL, "path", "/a/b/{c}/{d*}");
    gh_router_describe(NULL, e, buf, sizeof(buf));
    assert_string_equal(buf, "any host, path /a/b/{c}/{d*} (template, 2 literal segments)");
    gh_router_describe(NULL, e, buf, 10);                       /* truncates, stays terminated */
    assert_string_equal(buf, "any host,");
}

/* match.case_insensitive: exact, prefix, template and regex paths ignore
 * ASCII case; a case-sensitive route is the more specific of two. */
static void test_case_insensitive(void **state)
{
    fx_reset();
    fx_add("ci-exact", NULL, "path", "/Exact")->match.case_insensitive = true;
    fx_add("cs-exact", NULL, "path", "/exact");
    fx_add("ci-prefix", NULL, "prefix", "/Pre/Fix")->match.case_insensitive = true;
    fx_add("cs-prefix", NULL, "prefix", "/pre");
    fx_add("ci-tpl", NULL, "path", "/Items/{id}")->match.case_insensitive = true;
    fx_add("ci-re", NULL, "regex", "^/re/[a-z]+$")->match.case_insensitive = true;
    fx_add("cs", NULL, "path", "/cs");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    assert_string_equal(WHO(r, "GET", NULL, "/EXACT"), "ci-exact");
    assert_string_equal(WHO(r, "GET", NULL, "/exact"), "cs-exact");
    assert_string_equal(WHO(r, "GET", NULL, "/Exact"), "ci-exact");
    assert_string_equal(WHO(r, "GET", NULL, "/PRE/FIX/a"), "ci-prefix");
    assert_string_equal(WHO(r, "GET", NULL, "/pre/fix"), "ci-prefix");   /* longer prefix first */
    assert_string_equal(WHO(r, "GET", NULL, "/pre/x"), "cs-prefix");
    assert_string_equal(WHO(r, "GET", NULL, "/PRE/x"), "404");
    assert_string_equal(WHO(r, "GET", NULL, "/ITEMS/Ab"), "ci-tpl");
    assert_string_equal(WHO(r, "GET", NULL, "/RE/XyZ"), "ci-re");
    assert_string_equal(WHO(r, "GET", NULL, "/CS"), "404");
    gh_route_match m;
    assert_int_equal(fx_match(r, "GET", NULL, "/ITEMS/Ab", NULL, NULL, &m), GH_ROUTE_FOUND);
    assert_int_equal(m.nparams, 1);
    assert_true(gh_str_eq_c(m.params[0].value, "Ab"));          /* values keep their case */
    assert_int_equal(fx_match(r, "GET", NULL, "/PRE/FIX/a", NULL, NULL, &m), GH_ROUTE_FOUND);
    assert_true(gh_str_eq_c(m.matched_prefix, "/PRE/FIX"));     /* strip_prefix cuts what was sent */
    char buf[160];
    gh_router_describe(NULL, &fx_routes[2], buf, sizeof(buf));
    assert_string_equal(buf, "any host, prefix /Pre/Fix (case-insensitive)");
    gh_router_free(r);
    gh_diag_free(&d);

    /* "/A" and "/a", both case-insensitive, are one path: a tie */
    fx_reset();
    fx_add("one", NULL, "path", "/A")->match.case_insensitive = true;
    fx_add("two", NULL, "path", "/a")->match.case_insensitive = true;
    r = fx_build(&d);
    assert_null(r);
    assert_true(diag_has(&d, false, "ties with route 'one'"));
    gh_diag_free(&d);

    /* a case-sensitive template does not shadow a case-insensitive route */
    fx_reset();
    fx_add("all", NULL, "path", "/x/{rest*}");
    fx_add("ci", NULL, "prefix", "/x/y")->match.case_insensitive = true;
    r = fx_build(&d);
    expect_clean(r, &d);
    assert_string_equal(WHO(r, "GET", NULL, "/X/Y/z"), "ci");
    gh_router_free(r);
    gh_diag_free(&d);
}

static void test_many_routes(void **state)
{
    static char names[3000][24], hosts[1000][32], paths[3000][24];
    fx_reset();
    for (int i = 0; i < 1000; i++) {
        snprintf(names[i], sizeof(names[i]), "h%d", i);
        snprintf(hosts[i], sizeof(hosts[i]), "h%d.example.com", i);
        snprintf(paths[i], sizeof(paths[i]), "/p%d", i);
        fx_add(names[i], hosts[i], "path", paths[i]);
        snprintf(names[1000 + i], sizeof(names[0]), "e%d", i);
        snprintf(paths[1000 + i], sizeof(paths[0]), "/e/%d", i);
        fx_add(names[1000 + i], NULL, "path", paths[1000 + i]);
        snprintf(names[2000 + i], sizeof(names[0]), "pre%d", i);
        snprintf(paths[2000 + i], sizeof(paths[0]), "/pre/%d", i);
        fx_add(names[2000 + i], NULL, "prefix", paths[2000 + i]);
    }
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    char path[64];
    for (int i = 0; i < 1000; i++) {
        assert_string_equal(WHO(r, "GET", hosts[i], paths[i]), names[i]);
        assert_string_equal(WHO(r, "GET", hosts[i], paths[(i + 1) % 1000]), "404");
        assert_string_equal(WHO(r, "GET", NULL, paths[1000 + i]), names[1000 + i]);
        snprintf(path, sizeof(path), "/pre/%d/x/y", i);
        assert_string_equal(WHO(r, "GET", hosts[i], path), names[2000 + i]);
    }
    gh_router_free(r);
    gh_diag_free(&d);
}

/* Random normalized paths against a mixed table: whatever matches, params
 * and matched_prefix lie inside the request path (ASan watches the reads). */
static void test_random_paths(void **state)
{
    fx_reset();
    fx_add("t1", NULL, "path", "/a/{x}/{rest*}");
    fx_add("t2", NULL, "path", "/{x}/b/{y}");
    fx_add("t3", NULL, "path", "/{x}");
    fx_add("p1", NULL, "prefix", "/c/a");
    fx_add("p2", NULL, "prefix", "/b");
    fx_method(fx_add("e1", NULL, "path", "/a/b/"), "POST");
    fx_add("r1", NULL, "regex", "^/(?<first>[^/]*)/(?<second>.*)$");
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    static const char *atoms[] = { "a", "b", "", "c", "a", "bb" };
    unsigned seed = 7;
    char raw[64], path[64];
    for (int iter = 0; iter < 50000; iter++) {
        size_t len = 0;
        int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 5;
        for (int k = 0; k < parts; k++) {
            const char *a = atoms[((seed = seed * 1103515245u + 12345u) >> 16) % 6];
            raw[len++] = '/';
            memcpy(raw + len, a, strlen(a));
            len += strlen(a);
        }
        size_t n;
        assert_int_equal(gh_path_normalize(raw, len, path, &n, true), GH_PATH_OK);
        char *copy = malloc(n);                 /* exact size: any over-read is caught */
        memcpy(copy, path, n);
        gh_route_request req = { .method = GH_STR("GET"), .path = { copy, n } };
        gh_route_match m;
        int rc = gh_router_match(r, &req, &m);
        assert_true(rc == GH_ROUTE_FOUND || rc == GH_ROUTE_NONE || rc == GH_ROUTE_METHOD);
        for (size_t k = 0; rc == GH_ROUTE_FOUND && k < m.nparams; k++)
            assert_true(m.params[k].value.p >= copy && m.params[k].value.p + m.params[k].value.len <= copy + n);
        assert_true(m.matched_prefix.len <= n);
        free(copy);
    }
    gh_router_free(r);
    gh_diag_free(&d);
}

static gh_router *shared;

static void *worker(void *arg)
{
    char path[32];
    gh_route_match m;
    for (int i = 0; i < 3000; i++) {
        snprintf(path, sizeof(path), "/u/%d", i + (int)(intptr_t)arg * 10000);
        int rc = fx_match(shared, "GET", NULL, path, NULL, NULL, &m);
        if (rc != GH_ROUTE_FOUND || m.nparams != 1 || !gh_str_eq_c(m.params[0].value, path + 3))
            return (void *)1;
    }
    return NULL;                /* the match block is freed at thread exit */
}

static void test_regex_from_threads(void **state)
{
    fx_reset();
    fx_add("re", NULL, "regex", "^/u/(?<id>[0-9]+)$");
    gh_diag d;
    shared = fx_build(&d);
    expect_clean(shared, &d);
    pthread_t t[4];
    for (intptr_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(t[i], &res);
        assert_null(res);
    }
    gh_router_free(shared);
    gh_diag_free(&d);
}

static void test_empty_table(void **state)
{
    fx_reset();
    gh_diag d;
    gh_router *r = fx_build(&d);
    expect_clean(r, &d);
    assert_int_equal(gh_router_count(r), 0);
    assert_string_equal(WHO(r, "GET", "a.com", "/"), "404");
    gh_router_free(r);
    gh_diag_free(&d);
    gh_router_free(NULL);
}

static int teardown(void **state)
{
    gh_router_thread_done();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_precedence),
        cmocka_unit_test(test_host_beats_path),
        cmocka_unit_test(test_path_precedence),
        cmocka_unit_test(test_rest_templates),
        cmocka_unit_test(test_regex_params_and_file_order),
        cmocka_unit_test(test_conditions_beat_none),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_full_match_elsewhere_beats_405),
        cmocka_unit_test(test_ties_are_errors),
        cmocka_unit_test(test_not_ties),
        cmocka_unit_test(test_shadow_warnings),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_paths_are_normalized),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_many_routes),
        cmocka_unit_test(test_random_paths),
        cmocka_unit_test(test_regex_from_threads),
        cmocka_unit_test(test_empty_table),
        cmocka_unit_test(test_connect_needs_listing),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
