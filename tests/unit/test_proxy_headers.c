/* test_proxy_headers.c — what crosses the proxy (SPEC §8): the request head
 * sent upstream and the response headers passed back, built in-process
 * from an exchange without sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "http/exchange.h"
#include "proxy/headers.h"

static gh_http_env env;
static uv_loop_t loop;

static gh_exchange *make_exchange(const char *head)
{
    static gh_header hdrs[64];
    gh_h1_message m;
    int r = gh_h1_parse_request(head, strlen(head), &m, hdrs, 64, 65536);
    assert_true(r > 0);
    gh_exchange *ex = gh_exchange_new(&env);
    ex->method = (gh_str){ m.method, m.method_len };
    ex->method_bit = GH_M_GET;
    ex->target = (gh_str){ m.target, m.target_len };
    ex->headers = m.headers;
    ex->nheaders = m.nheaders;
    ex->authority = (gh_str){ m.host, m.host_len };
    ex->local_port = 8080;
    ex->content_length = m.content_length;
    strcpy(ex->peer, "192.0.2.7");
    strcpy(ex->client, "192.0.2.7");
    strcpy(ex->request_id, "0123456789abcdef0123456789abcdef");
    return ex;
}

static bool has_line(const char *head, size_t len, const char *line)
{
    char want[512];
    snprintf(want, sizeof(want), "\r\n%s\r\n", line);
    return memmem(head, len, want, strlen(want)) != NULL;
}

static bool has_name(const char *head, size_t len, const char *name)
{
    char want[128];
    snprintf(want, sizeof(want), "\r\n%s:", name);
    return memmem(head, len, want, strlen(want)) != NULL;
}

static void test_hop_by_hop_removed_and_forwarded_headers_added(void **state)
{
    gh_exchange *ex = make_exchange(
        "GET /a?b=1 HTTP/1.1\r\nHost: api.example.com\r\nConnection: keep-alive, X-Secret\r\n"
        "X-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n"
        "Proxy-Authorization: Basic x\r\nX-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 198.51.100.2\r\n"
        "X-Forwarded-Proto: https\r\nX-Request-Id: evil\r\nAccept: */*\r\n\r\n");
    gh_route_cfg route;
    memset(&route, 0, sizeof(route));
    gh_kv set[1] = { { .name = GH_STR("X-Env"), .value = GH_STR("prod") } };
    gh_str remove[1] = { GH_STR("Accept") };
    route.request_headers = (gh_header_ops){ .set = set, .nset = 1, .remove = remove, .nremove = 1 };
    size_t len;
    char *h = gh_proxy_request_head(ex, &route, GH_STR("/x/a?b=1"), GH_FWD_NO_BODY, &len);
    assert_non_null(h);
    assert_memory_equal(h, "GET /x/a?b=1 HTTP/1.1\r\n", 23);
    assert_true(has_line(h, len, "Host: api.example.com"));
    const char *gone[] = { "Connection", "X-Secret", "Keep-Alive", "TE", "Trailer", "Upgrade",
                           "Proxy-Authorization", "Accept" };
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        if (has_name(h, len, gone[i]))
            fail_msg("%s was forwarded", gone[i]);
    assert_true(has_line(h, len, "X-Forwarded-For: 198.51.100.1, 198.51.100.2, 192.0.2.7"));
    assert_true(has_line(h, len, "X-Forwarded-Proto: http"));
    assert_true(has_line(h, len, "X-Forwarded-Host: api.example.com"));
    assert_true(has_line(h, len, "X-Forwarded-Port: 8080"));
    assert_true(has_line(h, len, "X-Request-Id: 0123456789abcdef0123456789abcdef"));
    assert_true(has_line(h, len, "X-Env: prod"));
    assert_false(has_line(h, len, "X-Request-Id: evil"));
    assert_true(len >= 4 && memcmp(h + len - 4, "\r\n\r\n", 4) == 0);
    gh_exchange_free(ex);
}

static void test_body_framing_and_traceparent(void **state)
{
    gh_exchange *ex = make_exchange(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n"
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n");
    gh_route_cfg route;
    memset(&route, 0, sizeof(route));
    size_t len;
    char *h = gh_proxy_request_head(ex, &route, GH_STR("/"), GH_FWD_LENGTH, &len);
    assert_true(has_line(h, len, "Content-Length: 12"));
    const char *tp = memmem(h, len, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-", 49);
    assert_non_null(tp);
    assert_memory_not_equal(tp + 49, "00f067aa0ba902b7", 16);   /* our own span */
    h = gh_proxy_request_head(ex, &route, GH_STR("/"), GH_FWD_CHUNKED, &len);
    assert_true(has_line(h, len, "Transfer-Encoding: chunked"));
    assert_false(has_name(h, len, "Content-Length"));
    gh_exchange_free(ex);
}

static void test_response_headers_filtered(void **state)
{
    gh_exchange *ex = make_exchange("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    gh_header up[] = {
        { "Content-Type", "text/plain", 12, 10 }, { "Connection", "close, X-Hop", 10, 12 },
        { "X-Hop", "1", 5, 1 }, { "Transfer-Encoding", "chunked", 17, 7 }, { "Content-Length", "5", 14, 1 },
        { "Keep-Alive", "timeout=5", 10, 9 }, { "Server", "upstream", 6, 8 }, { "X-Request-Id", "u", 12, 1 },
    };
    gh_route_cfg route;
    memset(&route, 0, sizeof(route));
    gh_str remove[1] = { GH_STR("server") };
    gh_kv set[1] = { { .name = GH_STR("Cache-Control"), .value = GH_STR("no-store") } };
    route.response_headers = (gh_header_ops){ .set = set, .nset = 1, .remove = remove, .nremove = 1 };
    size_t n;
    gh_header *out = gh_proxy_response_headers(ex, &route, up, sizeof(up) / sizeof(up[0]), &n);
    assert_int_equal(n, 4);
    assert_memory_equal(out[0].name, "Content-Type", 12);
    assert_memory_equal(out[1].name, "Cache-Control", 13);
    assert_memory_equal(out[2].name, "X-Request-Id", 12);
    assert_memory_equal(out[2].value, ex->request_id, 32);
    assert_memory_equal(out[3].name, "Date", 4);   /* the upstream sent none: we add it */
    gh_exchange_free(ex);
}

int main(void)
{
    env.rng[0] = 1;
    env.rng[1] = 2;
    uv_loop_init(&loop);
    env.loop = &loop;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hop_by_hop_removed_and_forwarded_headers_added),
        cmocka_unit_test(test_body_framing_and_traceparent),
        cmocka_unit_test(test_response_headers_filtered),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    gh_exchange_cache_clear(&env);
    uv_loop_close(&loop);
    return rc;
}
