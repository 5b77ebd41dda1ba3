/* test_health.c — active health checks (proxy/health.c): the counting of
 * successes and failures in a row, `expect` as a status set, and a checker
 * on a real loop against a loopback server: a failing target goes down after
 * unhealthy_after checks, a reload keeps the counters, a removed target's
 * probe goes; resolve_every's rules and the published address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>
#include "config/config.h"
#include "core/diag.h"
#include "proxy/health.h"
#include "proxy/resolve.h"
#include "proxy/upstate.h"

static gh_config *load(const char *yaml)
{
    gh_diag d;
    gh_diag_init(&d, "test.yaml");
    gh_config *cfg = gh_config_load_string("test.yaml", yaml, strlen(yaml), &d);
    if (!cfg)
        gh_diag_print(&d, stderr);
    assert_non_null(cfg);
    gh_diag_free(&d);
    return cfg;
}

static void test_counting_and_transitions(void **state)
{
    (void)state;
    gh_health_counts c = { 0, 0 };
    bool h = true;   /* targets start healthy */
    /* unhealthy_after 3: two failures are not enough, a success starts over */
    h = gh_health_judge(&c, h, false, 2, 3);
    h = gh_health_judge(&c, h, false, 2, 3);
    assert_true(h);
    h = gh_health_judge(&c, h, true, 2, 3);
    assert_true(h);
    assert_int_equal(c.failed, 0);
    h = gh_health_judge(&c, h, false, 2, 3);
    h = gh_health_judge(&c, h, false, 2, 3);
    assert_true(h);
    h = gh_health_judge(&c, h, false, 2, 3);
    assert_false(h);
    assert_int_equal(c.failed, 3);
    /* more failures: still down, counted */
    h = gh_health_judge(&c, h, false, 2, 3);
    assert_false(h);
    /* healthy_after 2: one success is not enough, a failure starts over */
    h = gh_health_judge(&c, h, true, 2, 3);
    assert_false(h);
    h = gh_health_judge(&c, h, false, 2, 3);
    assert_int_equal(c.ok, 0);
    h = gh_health_judge(&c, h, true, 2, 3);
    assert_false(h);
    h = gh_health_judge(&c, h, true, 2, 3);
    assert_true(h);
    /* thresholds of 1: every check decides */
    h = gh_health_judge(&c, h, false, 1, 1);
    assert_false(h);
    h = gh_health_judge(&c, h, true, 1, 1);
    assert_true(h);
    /* the counters saturate instead of wrapping */
    c.ok = UINT32_MAX;
    h = gh_health_judge(&c, h, true, 1, 1);
    assert_int_equal(c.ok, UINT32_MAX);
}

static void test_expect_set(void **state)
{
    (void)state;
    gh_config *cfg = load("listen: [ { address: 127.0.0.1:8080 } ]\n"
                          "upstreams:\n"
                          "  u: { targets: [ \"127.0.0.1:1\" ], health_check: { active: { expect: [200-299, 503] } } }\n"
                          "  d: { targets: [ \"127.0.0.1:2\" ], health_check: { active: {} } }\n"
                          "routes:\n  - { name: r, match: { prefix: / }, upstream: u }\n"
                          "  - { name: s, match: { prefix: /d }, upstream: d }\n");
    uint64_t set[10];
    gh_health_expect_set(&cfg->upstreams[0], set);
    int in[] = { 200, 204, 299, 503 }, out[] = { 100, 199, 300, 302, 500, 502, 504, -1, 700 };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        assert_true(gh_health_expected(set, in[i]));
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        assert_false(gh_health_expected(set, out[i]));
    gh_health_expect_set(&cfg->upstreams[1], set);   /* default: 200-399 */
    assert_true(gh_health_expected(set, 200) && gh_health_expected(set, 302) && gh_health_expected(set, 399));
    assert_false(gh_health_expected(set, 199) || gh_health_expected(set, 400));
    gh_config_free(cfg);
}

/* ---- a checker on a real loop ---- */

typedef struct server {
    uv_tcp_t tcp;
    int port;
    int status;                   /* what every check gets */
    int checks;                   /* requests answered */
} server;

typedef struct client {
    uv_tcp_t tcp;
    server *s;
    uv_write_t w;
    char out[128];
} client;

static void on_client_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    static char buf[4096];
    (void)n;
    *b = uv_buf_init(buf, sizeof(buf));
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    client *c = w->data;
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    client *c = st->data;
    if (n < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_client_closed);
        return;
    }
    if (n == 0 || !memmem(b->base, (size_t)n, "\r\n\r\n", 4))
        return;   /* the whole request fits in one read on loopback */
    uv_read_stop(st);
    c->s->checks++;
    int len = snprintf(c->out, sizeof(c->out), "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", c->s->status);
    uv_buf_t wb = uv_buf_init(c->out, (unsigned)len);
    c->w.data = c;
    uv_write(&c->w, st, &wb, 1, on_written);
}

static void on_conn(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    client *c = calloc(1, sizeof(*c));
    c->s = l->data;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void server_start(uv_loop_t *loop, server *s, int status)
{
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    memset(s, 0, sizeof(*s));
    s->status = status;
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    assert_int_equal(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->tcp, 16, on_conn), 0);
    int len = sizeof(sa);
    uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&sa, &len);
    s->port = ntohs(sa.sin_port);
}

static gh_config *config_for(int port, const char *path, int unhealthy_after)
{
    char y[1024];
    snprintf(y, sizeof(y),
             "listen: [ { address: 127.0.0.1:8080 } ]\n"
             "upstreams:\n  u:\n    targets: [ \"127.0.0.1:%d\" ]\n"
             "    health_check: { active: { path: %s, interval: 10ms, healthy_after: 2, unhealthy_after: %d } }\n"
             "routes:\n  - { name: r, match: { prefix: / }, upstream: u }\n",
             port, path, unhealthy_after);
    return load(y);
}

/* Run the loop until the server has answered n checks. */
static void run_until_checks(uv_loop_t *loop, server *s, int n)
{
    while (s->checks < n)
        uv_run(loop, UV_RUN_ONCE);
}

static void test_checker_counts_across_reloads(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    server s;
    server_start(&loop, &s, 503);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", s.port);
    gh_target_state *t = gh_target_state_acquire(addr);   /* as the snapshot would */
    gh_health *h = gh_health_new(&loop);
    gh_config *cfg = config_for(s.port, "/health", 3);
    gh_health_apply(h, cfg, NULL);
    gh_config_free(cfg);   /* the checker keeps nothing of it */
    run_until_checks(&loop, &s, 2);
    assert_true(gh_target_healthy(t));   /* two failures of three */
    /* a reload that keeps the target (another path) keeps the two failures */
    cfg = config_for(s.port, "/ready", 3);
    gh_health_apply(h, cfg, NULL);
    gh_config_free(cfg);
    while (gh_target_healthy(t))
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(s.checks <= 4);   /* the third failure decided (a fourth may be on its way) */
    /* it passes again: healthy after two passes */
    s.status = 204;
    while (!gh_target_healthy(t))
        uv_run(&loop, UV_RUN_ONCE);
    /* down again, then checks removed from the configuration: back in rotation */
    s.status = 500;
    while (gh_target_healthy(t))
        uv_run(&loop, UV_RUN_ONCE);
    cfg = load("listen: [ { address: 127.0.0.1:8080 } ]\n"
               "upstreams:\n  u: { targets: [ \"127.0.0.1:1\" ] }\n"
               "routes:\n  - { name: r, match: { prefix: / }, upstream: u }\n");
    gh_health_apply(h, cfg, NULL);
    gh_config_free(cfg);
    assert_true(gh_target_healthy(t));
    gh_health_free(h);
    gh_target_state_release(t);
    uv_close((uv_handle_t *)&s.tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);   /* everything closes: nothing keeps the loop alive */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_unreachable_target_goes_down(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    server s;
    server_start(&loop, &s, 200);
    int port = s.port;
    uv_close((uv_handle_t *)&s.tcp, NULL);   /* nothing listens there any more */
    uv_run(&loop, UV_RUN_DEFAULT);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    gh_target_state *t = gh_target_state_acquire(addr);
    gh_health *h = gh_health_new(&loop);
    gh_config *cfg = config_for(port, "/health", 2);
    gh_health_apply(h, cfg, NULL);
    gh_config_free(cfg);
    while (gh_target_healthy(t))
        uv_run(&loop, UV_RUN_ONCE);
    gh_health_free(h);
    gh_target_state_release(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_resolve_rules_and_published_address(void **state)
{
    (void)state;
    assert_true(gh_resolve_is_name("users.internal"));
    assert_false(gh_resolve_is_name("127.0.0.1"));
    assert_false(gh_resolve_is_name("::1"));
    assert_false(gh_resolve_is_name("localhost"));   /* the loader pins it to 127.0.0.1 */
    /* an answer of three: the current address is kept while it is in it */
    struct sockaddr_in in[3];
    struct addrinfo ai[3];
    memset(in, 0, sizeof(in));
    memset(ai, 0, sizeof(ai));
    for (int i = 0; i < 3; i++) {
        in[i].sin_family = AF_INET;
        in[i].sin_port = htons(80);
        in[i].sin_addr.s_addr = htonl(0x0a000001 + (uint32_t)i);
        ai[i].ai_family = AF_INET;
        ai[i].ai_addr = (struct sockaddr *)&in[i];
        ai[i].ai_addrlen = sizeof(in[i]);
        ai[i].ai_next = i < 2 ? &ai[i + 1] : NULL;
    }
    assert_ptr_equal(gh_resolve_choose(ai, NULL, 0), &ai[0]);
    assert_ptr_equal(gh_resolve_choose(ai, (struct sockaddr *)&in[2], sizeof(in[2])), &ai[2]);
    struct sockaddr_in gone = in[0];
    gone.sin_addr.s_addr = htonl(0x0a0000ff);
    assert_ptr_equal(gh_resolve_choose(&ai[1], (struct sockaddr *)&gone, sizeof(gone)), &ai[1]);
    /* published to the state; nothing published: the configuration's */
    gh_target_state *t = gh_target_state_acquire("users.internal:80");
    struct sockaddr_storage out;
    socklen_t len = 0;
    assert_false(gh_target_addr(t, &out, &len));
    gh_target_set_addr(t, (struct sockaddr *)&in[1], sizeof(in[1]));
    assert_true(gh_target_addr(t, &out, &len));
    assert_int_equal(len, sizeof(in[1]));
    assert_memory_equal(&out, &in[1], sizeof(in[1]));
    struct sockaddr_in6 v6;
    memset(&v6, 0, sizeof(v6));
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(443);
    v6.sin6_addr.s6_addr[15] = 1;
    gh_target_set_addr(t, (struct sockaddr *)&v6, sizeof(v6));
    assert_true(gh_target_addr(t, &out, &len));
    assert_int_equal(len, sizeof(v6));
    assert_memory_equal(&out, &v6, sizeof(v6));
    gh_target_state_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counting_and_transitions),
        cmocka_unit_test(test_expect_set),
        cmocka_unit_test(test_checker_counts_across_reloads),
        cmocka_unit_test(test_unreachable_target_goes_down),
        cmocka_unit_test(test_resolve_rules_and_published_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
