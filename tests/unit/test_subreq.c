/* test_subreq.c — the sub-request seam (server/subreq.h): a child exchange
 * run through gh_dispatch with an in-memory downstream collects status,
 * headers and body, hands its request body to the target, bounds the
 * response body, reports on a later loop turn only, and can be cancelled
 * without its done ever running; the parent's snapshot pin is taken and
 * given back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http/h1_conn.h"
#include "server/subreq.h"
#include "server/worker.h"

static const char yaml[] =
    "listen: [{ address: 127.0.0.1:1 }]\n"
    "routes:\n"
    "  - name: hello\n"
    "    match: { path: /hello }\n"
    "    respond: { status: 201, headers: { Content-Type: text/plain, X-Mark: yes }, body: \"hello there\" }\n"
    "  - name: echo\n"
    "    match: { prefix: /echo }\n"
    "    echo: {}\n";

typedef struct fixture {
    uv_loop_t loop;
    gh_h1_worker h1;
    gh_http_env env;
    gh_worker *w;
    gh_pin pin;
    gh_snapshot *snap;
    gh_exchange *parent;
    int logged;
} fixture;

static fixture F;

static void unpin(gh_http_env *env, void *pin) { ((gh_pin *)pin)->inflight--; }
static void logged(gh_exchange *ex) { F.logged++; }

static int setup(void **state)
{
    memset(&F, 0, sizeof(F));
    gh_diag d;
    gh_diag_init(&d, "t.yaml");
    gh_config *cfg = gh_config_load_string("t.yaml", yaml, strlen(yaml), &d);
    assert_non_null(cfg);
    F.snap = gh_snapshot_build(cfg, 1, &d);
    assert_non_null(F.snap);
    gh_diag_free(&d);
    uv_loop_init(&F.loop);
    gh_h1_worker_init(&F.h1, &F.loop);
    F.w = calloc(1, sizeof(*F.w));
    F.env.loop = &F.loop;
    F.env.h1 = &F.h1;
    F.env.unpin = unpin;
    F.env.done = logged;
    F.env.limits = &F.snap->cfg->limits;
    F.env.owner = F.w;
    F.env.rng[0] = 1;
    F.env.rng[1] = 2;
    F.pin.snap = F.snap;
    F.pin.inflight = 1;   /* the parent's */
    F.parent = gh_exchange_new(&F.env);
    F.parent->pin = &F.pin;
    F.parent->cfg = F.snap->cfg;
    F.parent->host = GH_STR("example.com");
    F.parent->authority = GH_STR("example.com");
    snprintf(F.parent->peer, sizeof(F.parent->peer), "10.0.0.7");
    snprintf(F.parent->client, sizeof(F.parent->client), "10.0.0.7");
    gh_exchange_put_request_id(F.parent, "parent-id", 9);
    return 0;
}

static int teardown(void **state)
{
    gh_exchange_free(F.parent);
    assert_int_equal(F.pin.inflight, 0);   /* every child gave its pin back */
    gh_exchange_cache_clear(&F.env);
    gh_h1_worker_close(&F.h1);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    uv_loop_close(&F.loop);
    free(F.w);
    gh_snapshot_unref(F.snap);
    return 0;
}

typedef struct seen {
    int calls, status;
    char body[512];
    char mark[16];
    const char *error;
} seen;

static void done(gh_subreq *sr)
{
    seen *s = sr->ctx;
    s->calls++;
    s->status = sr->status;
    s->error = sr->error;
    snprintf(s->body, sizeof(s->body), "%.*s", (int)sr->body_len, sr->body);
    const gh_header *h = gh_subreq_header(sr, "x-mark", 6);
    snprintf(s->mark, sizeof(s->mark), "%.*s", h ? (int)h->value_len : 0, h ? h->value : "");
    gh_subreq_release(sr);
}

static void run_loop(void)
{
    while (uv_run(&F.loop, UV_RUN_NOWAIT))
        ;
}

static void test_routed_child_collects_the_answer_on_a_later_turn(void **state)
{
    gh_subreq sr;
    seen s = { 0 };
    gh_subreq_spec spec = { .method = GH_STR("GET"), .target = GH_STR("/hello?x=1"), .max_body = 1024 };
    assert_true(gh_subreq_start(&sr, F.parent, &spec, done, &s));
    assert_int_equal(s.calls, 0);          /* never from inside start */
    assert_int_equal(F.pin.inflight, 2);   /* the parent's snapshot, pinned again */
    run_loop();
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 201);
    assert_string_equal(s.body, "hello there");
    assert_string_equal(s.mark, "yes");
    assert_null(s.error);
    assert_int_equal(F.logged, 1);         /* logged like a request */
    assert_int_equal(F.pin.inflight, 1);
}

static void test_request_body_and_identity_reach_the_target(void **state)
{
    gh_subreq sr;
    seen s = { 0 };
    gh_header h[1] = { { "X-Thing", "42", 7, 2 } };
    gh_subreq_spec spec = { .method = GH_STR("POST"), .target = GH_STR("/echo/a"), .headers = h, .nheaders = 1,
                            .body = GH_STR("0123456789"), .max_body = 4096 };
    assert_true(gh_subreq_start(&sr, F.parent, &spec, done, &s));
    run_loop();
    assert_int_equal(s.status, 200);
    assert_non_null(strstr(s.body, "\"body_size\":10"));
    assert_non_null(strstr(s.body, "\"x-thing\":\"42\""));
    assert_non_null(strstr(s.body, "\"x-request-id\":\"parent-id\""));
    assert_non_null(strstr(s.body, "\"method\":\"POST\""));
}

static void test_no_route_is_the_gateways_problem(void **state)
{
    gh_subreq sr;
    seen s = { 0 };
    gh_subreq_spec spec = { .method = GH_STR("GET"), .target = GH_STR("/nowhere"), .max_body = 4096 };
    assert_true(gh_subreq_start(&sr, F.parent, &spec, done, &s));
    run_loop();
    assert_int_equal(s.status, 404);
    assert_non_null(strstr(s.body, "no_route"));
}

static void test_response_over_max_body_is_an_error(void **state)
{
    gh_subreq sr;
    seen s = { 0 };
    gh_subreq_spec spec = { .method = GH_STR("GET"), .target = GH_STR("/hello"), .max_body = 5 };
    assert_true(gh_subreq_start(&sr, F.parent, &spec, done, &s));
    run_loop();
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.error, "response_too_large");
    assert_int_equal(F.pin.inflight, 1);
}

static void test_cancelled_child_never_reports(void **state)
{
    gh_subreq sr[3];
    seen s = { 0 };
    gh_subreq_spec spec = { .method = GH_STR("GET"), .target = GH_STR("/hello"), .max_body = 1024 };
    for (int i = 0; i < 3; i++)
        assert_true(gh_subreq_start(&sr[i], F.parent, &spec, done, &s));
    assert_true(gh_subreq_running(&sr[0]));
    for (int i = 0; i < 3; i++)
        gh_subreq_cancel(&sr[i]);
    gh_subreq_cancel(&sr[0]);   /* twice: a no-op */
    assert_false(gh_subreq_running(&sr[0]));
    run_loop();
    assert_int_equal(s.calls, 0);
    assert_int_equal(F.pin.inflight, 1);
}

static void test_target_must_be_a_path(void **state)
{
    gh_subreq sr;
    seen s = { 0 };
    gh_subreq_spec spec = { .method = GH_STR("GET"), .target = GH_STR("hello"), .max_body = 1024 };
    assert_false(gh_subreq_start(&sr, F.parent, &spec, done, &s));
    assert_false(gh_subreq_running(&sr));
    assert_int_equal(F.pin.inflight, 1);
}

/* A cache fill shared by several clients keeps its gh_subreq in its own
 * memory: the child needs nothing of the parent once started. */
static void test_child_outlives_its_parent(void **state)
{
    gh_exchange *p = gh_exchange_new(&F.env);
    F.pin.inflight++;
    p->pin = &F.pin;
    p->cfg = F.snap->cfg;
    char *host = gh_arena_strndup(&p->arena, "short.lived", 11);
    p->host = p->authority = (gh_str){ host, 11 };
    gh_exchange_put_request_id(p, "gone-id", 7);
    gh_subreq *sr = calloc(1, sizeof(*sr));
    seen s = { 0 };
    gh_subreq_spec spec = { .method = GH_STR("GET"), .target = GH_STR("/echo/x"), .max_body = 4096 };
    assert_true(gh_subreq_start(sr, p, &spec, done, &s));
    memset(host, 'X', 11);   /* the parent's memory is reused... */
    gh_exchange_free(p);     /* ...and the parent ends (its pin given back) */
    run_loop();
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 200);
    assert_non_null(strstr(s.body, "\"x-request-id\":\"gone-id\""));
    assert_non_null(strstr(s.body, "short.lived"));
    free(sr);
}

static void detached_seen(void *ctx, const gh_detached_answer *a)
{
    seen *s = ctx;
    s->calls++;
    s->status = a->status;
    s->error = a->error;
    snprintf(s->body, sizeof(s->body), "%.*s", (int)a->body_len, a->body);
}

static gh_exchange *short_parent(void)
{
    gh_exchange *p = gh_exchange_new(&F.env);
    F.pin.inflight++;
    p->pin = &F.pin;
    p->cfg = F.snap->cfg;
    p->host = p->authority = GH_STR("example.com");
    return p;
}

/* A detached one belongs to the worker: the parent ends at once, the
 * answer still comes (once, later), and the child is freed after it. */
static void test_detached_runs_after_its_parent_ended(void **state)
{
    gh_exchange *p = short_parent();
    seen s = { 0 };
    gh_subreq_spec spec = { .method = GH_STR("GET"), .target = GH_STR("/hello"), .max_body = 1024 };
    assert_true(gh_subreq_detach(p, &spec, detached_seen, &s));
    gh_exchange_free(p);
    assert_non_null(F.w->detached);
    assert_int_equal(s.calls, 0);
    run_loop();
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 201);
    assert_string_equal(s.body, "hello there");
    assert_null(s.error);
    assert_null(F.w->detached);
    assert_int_equal(F.pin.inflight, 1);
}

/* The worker stops first: each running one is told "aborted", once. */
static void test_detached_stopped_with_the_worker(void **state)
{
    gh_exchange *p = short_parent();
    seen s = { 0 };
    gh_subreq_spec spec = { .method = GH_STR("GET"), .target = GH_STR("/hello"), .max_body = 1024 };
    assert_true(gh_subreq_detach(p, &spec, detached_seen, &s));
    assert_true(gh_subreq_detach(p, &spec, detached_seen, &s));
    gh_exchange_free(p);
    gh_subreq_detached_stop(&F.env);
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.status, 0);
    assert_string_equal(s.error, "aborted");
    run_loop();
    assert_int_equal(s.calls, 2);
    assert_null(F.w->detached);
    assert_int_equal(F.pin.inflight, 1);
}

static void test_fields_leave_out_body_encoding_and_conditions(void **state)
{
    gh_header h[4] = { { "Accept", "*/*", 6, 3 }, { "If-None-Match", "\"x\"", 13, 3 },
                       { "Accept-Encoding", "gzip", 15, 4 }, { "X-Tenant", "t", 8, 1 } };
    F.parent->headers = h;
    F.parent->nheaders = 4;
    size_t n = 0;
    gh_header *out = gh_subreq_fields(F.parent, &n);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].name, "Accept");
    assert_string_equal(out[1].name, "X-Tenant");
    F.parent->nheaders = 0;
}

static void test_depth_counts_nested_children(void **state)
{
    assert_int_equal(gh_subreq_depth(F.parent), 0);
    assert_false(gh_subreq_is_child(F.parent));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routed_child_collects_the_answer_on_a_later_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_body_and_identity_reach_the_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_route_is_the_gateways_problem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_over_max_body_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_child_never_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_must_be_a_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_child_outlives_its_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detached_runs_after_its_parent_ended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detached_stopped_with_the_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fields_leave_out_body_encoding_and_conditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_counts_nested_children, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
