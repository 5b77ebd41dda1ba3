/* test_proxy_headers.c — what crosses the proxy (SPEC §8): the request
 * intake (hop-by-hop, identity and underscore rules), the request head sent
 * upstream and the response headers passed back, built in-process from an
 * exchange without sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "config/plugin_cfg.h"
#include "http/exchange.h"
#include "proxy/headers.h"
#include "server/intake.h"

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
    ex->upgrade = m.upgrade;
    ex->local_port = 8080;
    ex->content_length = m.content_length;
    strcpy(ex->peer, "192.0.2.7");
    strcpy(ex->client, "192.0.2.7");
    gh_exchange_put_request_id(ex, "0123456789abcdef0123456789abcdef", 32);
    return ex;
}

/* An intake for a configuration with a global jwt forwarding X-User-Id and
 * a route's jwt forwarding X-Tenant. */
static gh_intake *make_intake(int underscores)
{
    static gh_claim_header global_claims[] = { { GH_STR("X-User-Id"), GH_STR("sub") } };
    static gh_claim_header route_claims[] = { { GH_STR("X-Tenant"), GH_STR("tenant") } };
    static gh_jwt_cfg global_jwt, route_jwt;
    static gh_route_cfg route;
    static gh_config cfg;
    global_jwt = (gh_jwt_cfg){ .base = { .id = GH_PLUGIN_JWT, .enabled = true },
                               .forward_claims = global_claims, .nforward_claims = 1 };
    route_jwt = (gh_jwt_cfg){ .base = { .id = GH_PLUGIN_JWT, .enabled = true },
                              .forward_claims = route_claims, .nforward_claims = 1 };
    memset(&route, 0, sizeof(route));
    route.plugins.p[GH_PLUGIN_JWT] = &route_jwt.base;
    memset(&cfg, 0, sizeof(cfg));
    cfg.plugins.p[GH_PLUGIN_JWT] = &global_jwt.base;
    cfg.routes = &route;
    cfg.nroutes = 1;
    cfg.limits.underscores_in_headers = underscores;
    gh_intake *in = gh_intake_build(&cfg);
    assert_non_null(in);
    return in;
}

static void take_in(gh_exchange *ex, int underscores)
{
    gh_intake *in = make_intake(underscores);
    gh_str bad;
    assert_int_equal(gh_intake_run(ex, in, &bad), GH_INTAKE_OK);
    gh_intake_free(in);
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
    take_in(ex, GH_UNDERSCORES_DROP);
    gh_route_cfg route;
    memset(&route, 0, sizeof(route));
    gh_kv set[1] = { { .name = GH_STR("X-Env"), .value = GH_STR("prod") } };
    gh_str remove[1] = { GH_STR("Accept") };
    route.request_headers = (gh_header_ops){ .set = set, .nset = 1, .remove = remove, .nremove = 1 };
    size_t len;
    char *h = gh_proxy_request_head(ex, &route, GH_STR("/x/a?b=1"), GH_FWD_NO_BODY, NULL, &len);
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
    take_in(ex, GH_UNDERSCORES_DROP);
    char *h = gh_proxy_request_head(ex, &route, GH_STR("/"), GH_FWD_LENGTH, NULL, &len);
    assert_true(has_line(h, len, "Content-Length: 12"));
    const char *tp = memmem(h, len, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-", 49);
    assert_non_null(tp);
    assert_memory_not_equal(tp + 49, "00f067aa0ba902b7", 16);   /* our own span */
    h = gh_proxy_request_head(ex, &route, GH_STR("/"), GH_FWD_CHUNKED, NULL, &len);
    assert_true(has_line(h, len, "Transfer-Encoding: chunked"));
    assert_false(has_name(h, len, "Content-Length"));
    gh_exchange_free(ex);
}


/* A 17th (or 40th) name in Connection goes like the first: no cap. */
static void test_connection_tokens_have_no_cap(void **state)
{
    char head[8192];
    size_t n = (size_t)snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(head + n, sizeof(head) - n, "X-H%d: v\r\n", i);
    n += (size_t)snprintf(head + n, sizeof(head) - n, "Connection: keep-alive");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(head + n, sizeof(head) - n, ", X-H%d", i);
    n += (size_t)snprintf(head + n, sizeof(head) - n, "\r\nConnection: X-Late\r\n");
    for (int i = 20; i < 40; i++)
        n += (size_t)snprintf(head + n, sizeof(head) - n, "X-H%d: v\r\n", i);
    snprintf(head + n, sizeof(head) - n, "X-Late: 1\r\nX-Kept: 1\r\n\r\n");
    gh_exchange *ex = make_exchange(head);
    take_in(ex, GH_UNDERSCORES_DROP);
    assert_int_equal(ex->nheaders, 2);   /* Host and X-Kept */
    assert_non_null(gh_exchange_header(ex, "x-kept", 6));
    assert_non_null(gh_exchange_header(ex, "host", 4));
    gh_exchange_free(ex);
}

/* Names only the gateway may say, whatever their case or '_' / '-'. */
static void test_identity_names_stripped(void **state)
{
    gh_exchange *ex = make_exchange(
        "GET / HTTP/1.1\r\nHost: h\r\nX-User-Id: alice\r\nx_user_id: alice\r\nX-TENANT: acme\r\n"
        "X-Consumer: admin\r\nX_Consumer: admin\r\nX-Consumer-Groups: admins\r\n"
        "X-Client-Cert-Subject: CN=admin\r\nX-Client_Cert-Subject: CN=admin\r\nX-User: kept\r\n\r\n");
    take_in(ex, GH_UNDERSCORES_ALLOW);   /* even where underscores are allowed */
    assert_int_equal(ex->nheaders, 2);
    assert_non_null(gh_exchange_header(ex, "x-user", 6));
    gh_exchange_free(ex);
}

static void test_underscore_policy(void **state)
{
    const char *req = "GET / HTTP/1.1\r\nHost: h\r\nX_Custom: 1\r\nX-Fine: 1\r\n\r\n";
    gh_exchange *ex = make_exchange(req);
    take_in(ex, GH_UNDERSCORES_DROP);
    assert_null(gh_exchange_header(ex, "x_custom", 8));
    assert_non_null(gh_exchange_header(ex, "x-fine", 6));
    gh_exchange_free(ex);

    ex = make_exchange(req);
    take_in(ex, GH_UNDERSCORES_ALLOW);
    assert_non_null(gh_exchange_header(ex, "x_custom", 8));
    gh_exchange_free(ex);

    ex = make_exchange(req);
    gh_intake *in = make_intake(GH_UNDERSCORES_REJECT);
    gh_str bad = { 0 };
    assert_int_equal(gh_intake_run(ex, in, &bad), GH_INTAKE_UNDERSCORE);
    assert_true(gh_str_eq_c(bad, "X_Custom"));
    gh_intake_free(in);
    gh_exchange_free(ex);
}

/* What the gateway and plugins add after the intake cannot be removed by
 * the client's Connection header. */
static void test_gateway_fields_survive_connection(void **state)
{
    gh_exchange *ex = make_exchange(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: X-User-Id, Api-Version, X-Consumer, X-Forwarded-For\r\n\r\n");
    take_in(ex, GH_UNDERSCORES_DROP);
    assert_true(gh_exchange_add_header(ex, "X-User-Id", 9, "bob", 3));
    assert_true(gh_exchange_set_header(ex, "Api-Version", 11, "2", 1));
    ex->log.consumer = GH_STR("bob");
    gh_route_cfg route;
    memset(&route, 0, sizeof(route));
    size_t len;
    char *h = gh_proxy_request_head(ex, &route, GH_STR("/"), GH_FWD_NO_BODY, NULL, &len);
    assert_true(has_line(h, len, "X-User-Id: bob"));
    assert_true(has_line(h, len, "Api-Version: 2"));
    assert_true(has_line(h, len, "X-Consumer: bob"));
    assert_true(has_line(h, len, "X-Forwarded-For: 192.0.2.7"));
    assert_false(has_name(h, len, "Connection"));
    gh_exchange_free(ex);
}

/* Only WebSocket becomes a tunnel; h2c is a plain request without its
 * upgrade fields; TE: trailers is remembered for HTTP/2 upstreams. */
static void test_upgrade_and_te(void **state)
{
    gh_exchange *ex = make_exchange(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nTE: gzip, trailers;q=1\r\n\r\n");
    assert_true(ex->upgrade);
    take_in(ex, GH_UNDERSCORES_DROP);
    assert_false(ex->upgrade);
    assert_true(ex->te_trailers);
    gh_route_cfg route;
    memset(&route, 0, sizeof(route));
    size_t len;
    char *h = gh_proxy_request_head(ex, &route, GH_STR("/"), GH_FWD_NO_BODY, NULL, &len);
    assert_false(has_name(h, len, "Upgrade"));
    assert_false(has_name(h, len, "HTTP2-Settings"));
    assert_false(has_name(h, len, "Connection"));
    assert_false(has_name(h, len, "TE"));   /* HTTP/1.1 upstream: SPEC §12.22 */
    size_t nf;
    gh_header *f = gh_proxy_request_fields(ex, &route, true, &nf);
    bool te = false;
    for (size_t i = 0; i < nf; i++)
        te |= f[i].name_len == 2 && memcmp(f[i].name, "te", 2) == 0 && f[i].value_len == 8;
    assert_true(te);
    gh_exchange_free(ex);

    ex = make_exchange("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: WebSocket\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    take_in(ex, GH_UNDERSCORES_DROP);
    assert_true(ex->upgrade);
    h = gh_proxy_request_head(ex, &route, GH_STR("/ws"), GH_FWD_NO_BODY, NULL, &len);
    assert_true(has_line(h, len, "Connection: upgrade"));
    assert_true(has_line(h, len, "Upgrade: websocket"));
    assert_true(has_line(h, len, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="));
    gh_exchange_free(ex);
}

/* HTTP/1.0 without Host: the route's exact host, else the target's address. */
static void test_host_never_missing(void **state)
{
    gh_exchange *ex = make_exchange("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n");
    take_in(ex, GH_UNDERSCORES_DROP);
    gh_route_cfg route;
    memset(&route, 0, sizeof(route));
    gh_target_cfg t;
    memset(&t, 0, sizeof(t));
    t.address = GH_STR("10.0.0.7:9001");
    assert_true(gh_proxy_host_by_target(ex, &route));
    size_t len;
    char *h = gh_proxy_request_head(ex, &route, GH_STR("/"), GH_FWD_NO_BODY, &t, &len);
    assert_true(has_line(h, len, "Host: 10.0.0.7:9001"));
    route.match.host = GH_STR("*.example.com");   /* a wildcard names no host */
    assert_true(gh_str_eq_c(gh_proxy_host(ex, &route, &t), "10.0.0.7:9001"));
    route.match.host = GH_STR("api.example.com");
    assert_false(gh_proxy_host_by_target(ex, &route));
    h = gh_proxy_request_head(ex, &route, GH_STR("/"), GH_FWD_NO_BODY, NULL, &len);
    assert_true(has_line(h, len, "Host: api.example.com"));
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

/* The upstream's Connection header is honoured the same way, uncapped. */
static void test_response_connection_tokens_have_no_cap(void **state)
{
    gh_exchange *ex = make_exchange("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    char names[20][8], conn[256];
    gh_header up[22];
    size_t c = (size_t)snprintf(conn, sizeof(conn), "close");
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "X-R%02d", i);
        up[i] = (gh_header){ names[i], "v", 5, 1 };
        c += (size_t)snprintf(conn + c, sizeof(conn) - c, ",X-R%02d", i);
    }
    up[20] = (gh_header){ "Connection", conn, 10, (uint32_t)c };
    up[21] = (gh_header){ "Date", "Sun, 06 Nov 1994 08:49:37 GMT", 4, 29 };
    gh_route_cfg route;
    memset(&route, 0, sizeof(route));
    size_t n;
    gh_header *out = gh_proxy_response_headers(ex, &route, up, 22, &n);
    assert_int_equal(n, 2);   /* Date and X-Request-Id */
    assert_memory_equal(out[0].name, "Date", 4);
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
        cmocka_unit_test(test_connection_tokens_have_no_cap),
        cmocka_unit_test(test_identity_names_stripped),
        cmocka_unit_test(test_underscore_policy),
        cmocka_unit_test(test_gateway_fields_survive_connection),
        cmocka_unit_test(test_upgrade_and_te),
        cmocka_unit_test(test_host_never_missing),
        cmocka_unit_test(test_response_headers_filtered),
        cmocka_unit_test(test_response_connection_tokens_have_no_cap),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    gh_exchange_cache_clear(&env);
    uv_loop_close(&loop);
    return rc;
}
