/* test_route_index.c — the indexed router (host map, hashed exact paths and
 * prefixes, template tree) gives exactly the linear precedence scan's answer:
 * random route tables and random requests, every field of the result
 * compared; and 10,000 routes look at as few candidates as 10. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "route/router_int.h"

#define MAXR 10000

static gh_route_cfg routes[MAXR];
static gh_str mnames[MAXR][3];
static gh_kv hdrs[MAXR][1];
static gh_kv qs[MAXR][1];
static char pool[1 << 21];
static size_t pool_n;
static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static const char *pick(const char *const *a, size_t n) { return a[rnd((uint32_t)n)]; }
#define PICK(a) pick(a, sizeof(a) / sizeof(a[0]))

static gh_str keep(const char *s)
{
    size_t n = strlen(s);
    assert_true(pool_n + n + 1 < sizeof(pool));
    char *p = memcpy(pool + pool_n, s, n + 1);
    pool_n += n + 1;
    return (gh_str){ p, n };
}

static const char *const segs[] = { "u", "v", "U", "1", "" };
static const char *const hosts[] = { "", "", "a.com", "*.a.com", "*.b.a.com", "x.b.a.com" };
static const char *const methods[] = { "GET", "POST", "DELETE", "PURGE" };

/* A random path of 1 to 3 segments; in a template, some become {pN} or a trailing {r*}. */
static void rand_path(char *buf, size_t cap, bool tpl)
{
    size_t n = 1 + rnd(3), len = 0;
    bool has_param = false;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char s[16];
        if (tpl && i == n - 1 && rnd(3) == 0)
            snprintf(s, sizeof(s), "{r*}");
        else if (tpl && rnd(2))
            snprintf(s, sizeof(s), "{p%zu}", i);
        else
            snprintf(s, sizeof(s), "%s", PICK(segs));
        if (s[0] == '{')
            has_param = true;
        else if (!s[0] && i + 1 < n)      /* no "//": the loader merges them anyway */
            snprintf(s, sizeof(s), "w");
        len += (size_t)snprintf(buf + len, cap - len, "/%s", s);
    }
    if (tpl && !has_param)
        snprintf(buf + len, cap - len, "/{last}");
}

static void rand_route(size_t i)
{
    gh_route_cfg *r = &routes[i];
    memset(r, 0, sizeof(*r));
    char name[16], path[128];
    snprintf(name, sizeof(name), "r%zu", i);
    r->name = keep(name);
    r->index = i;
    r->mark = (gh_mark){ (unsigned)i + 1, 1 };
    r->match.host = keep(PICK(hosts));
    switch (rnd(7)) {
    case 0: case 1:
        rand_path(path, sizeof(path), false);
        r->match.path = keep(path);
        break;
    case 2: case 3: case 4:
        rand_path(path, sizeof(path), true);
        r->match.path = keep(path);
        break;
    case 5:
        rand_path(path, sizeof(path), false);
        r->match.prefix = keep(rnd(4) ? path : "/");
        break;
    default:
        snprintf(path, sizeof(path), "^/%s(/.*)?$", PICK(segs));
        r->match.regex = keep(path);
    }
    r->match.case_insensitive = rnd(5) == 0;
    size_t nm = rnd(3);
    for (size_t k = 0; k < nm; k++) {
        const char *m = PICK(methods);
        mnames[i][r->match.nmethods++] = keep(m);
        r->match.methods |= gh_method_bit(m, strlen(m));
    }
    r->match.method_names = mnames[i];
    if (rnd(4) == 0) {
        hdrs[i][0] = (gh_kv){ .name = keep("X-T"), .value = keep(rnd(2) ? "a" : "b") };
        r->match.headers = hdrs[i];
        r->match.nheaders = 1;
    }
    if (rnd(6) == 0) {
        qs[i][0] = (gh_kv){ .name = keep("q"), .value = keep("1") };
        r->match.query = qs[i];
        r->match.nquery = 1;
    }
    r->target = GH_TARGET_ECHO;
}

static gh_router *build(size_t n, gh_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->routes = routes;
    cfg->nroutes = n;
    gh_diag d;
    gh_diag_init(&d, "t.yaml");
    gh_router *r = gh_router_build(cfg, &d);
    if (getenv("ROUTE_INDEX_DIAG"))
        gh_diag_print(&d, stderr);
    gh_diag_free(&d);
    return r;
}

static void same_answer(const gh_router *r, const gh_route_request *rq)
{
    gh_route_match a, b;
    int ra = gh_router_match(r, rq, &a), rb = gh_router_match_linear(r, rq, &b);
    if (ra != rb || a.route != b.route || a.allow != b.allow || strcmp(a.allow_text, b.allow_text) != 0 ||
        a.nparams != b.nparams || !gh_str_eq(a.matched_prefix, b.matched_prefix)) {
        fprintf(stderr, "%.*s %.*s %.*s: index %d %s [%s] / linear %d %s [%s]\n", (int)rq->method.len,
                rq->method.p, (int)rq->host.len, rq->host.p, (int)rq->path.len, rq->path.p, ra,
                a.route ? a.route->name.p : "-", a.allow_text, rb, b.route ? b.route->name.p : "-", b.allow_text);
        fail();
    }
    for (size_t i = 0; i < a.nparams; i++) {
        assert_true(gh_str_eq(a.params[i].name, b.params[i].name));
        assert_true(gh_str_eq(a.params[i].value, b.params[i].value));
    }
}

static void test_differential(void **state)
{
    static const char *const rhosts[] = { "", "a.com", "A.COM:8080", "q.a.com", "x.b.a.com", "y.b.a.com.",
                                          "b.a.com", "other" };
    static const char *const rmethods[] = { "GET", "HEAD", "POST", "DELETE", "PURGE", "PUT" };
    size_t built = 0, requests = 0;
    for (int table = 0; table < 600; table++) {
        pool_n = 0;
        size_t n = 1 + rnd(24);
        for (size_t i = 0; i < n; i++)
            rand_route(i);
        gh_config cfg;
        gh_router *r = build(n, &cfg);
        if (!r)
            continue;       /* a random tie: a configuration error, not a table */
        built++;
        for (int q = 0; q < 300; q++) {
            char path[128];
            rand_path(path, sizeof(path), false);
            if (rnd(6) == 0)
                strcat(path, "/");
            gh_header h = { "x-t", rnd(2) ? "a" : "b", 3, 1 };
            gh_route_request rq = {
                .method = gh_str_c(PICK(rmethods)), .host = gh_str_c(PICK(rhosts)), .path = gh_str_c(path),
                .query = gh_str_c(rnd(3) ? "" : "q=1"), .headers = &h, .nheaders = rnd(2),
            };
            same_answer(r, &rq);
            requests++;
        }
        gh_router_free(r);
    }
    gh_router_thread_done();
    fprintf(stderr, "differential: %zu tables, %zu requests, identical answers\n", built, requests);
    assert_true(built > 200);
}

/* n routes "/svcK/{id}" and "/svcK/{id}/items/{item}" plus "/{tenant}/svcK/x": how many
 * template routes the index hands to the full check for one request. */
static size_t candidates_for(size_t n, const char *path)
{
    pool_n = 0;
    for (size_t i = 0; i < n; i++) {
        gh_route_cfg *r = &routes[i];
        memset(r, 0, sizeof(*r));
        char name[32], p[64];
        snprintf(name, sizeof(name), "r%zu", i);
        if (i % 3 == 0)
            snprintf(p, sizeof(p), "/svc%zu/{id}", i);
        else if (i % 3 == 1)
            snprintf(p, sizeof(p), "/svc%zu/{id}/items/{item}", i);
        else
            snprintf(p, sizeof(p), "/{tenant}/svc%zu/x", i);
        r->name = keep(name);
        r->index = i;
        r->mark = (gh_mark){ (unsigned)i + 1, 1 };
        r->match.path = keep(p);
        r->target = GH_TARGET_ECHO;
    }
    gh_config cfg;
    gh_router *r = build(n, &cfg);
    assert_non_null(r);
    uint32_t cand[GH_TPL_CAND];
    size_t nc = gh_tpl_candidates(r, &r->groups[0], gh_str_c(path), cand, GH_TPL_CAND);
    gh_route_request rq = { .method = GH_STR("GET"), .path = gh_str_c(path), .query = GH_STR("") };
    gh_route_match m;
    assert_int_equal(gh_router_match(r, &rq, &m), GH_ROUTE_FOUND);
    gh_route_match l;
    assert_int_equal(gh_router_match_linear(r, &rq, &l), GH_ROUTE_FOUND);
    assert_ptr_equal(m.route, l.route);
    gh_router_free(r);
    return nc;
}

static void test_many_routes_few_candidates(void **state)
{
    assert_int_equal(candidates_for(10, "/svc3/42"), 1);
    assert_int_equal(candidates_for(MAXR, "/svc3/42"), 1);
    assert_int_equal(candidates_for(MAXR, "/svc9997/42/items/7"), 1);
    assert_int_equal(candidates_for(MAXR, "/acme/svc9998/x"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_many_routes_few_candidates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
