/* test_config.c — the configuration loader: values, defaults, and the exact
 * "FILE:LINE:COL: message" of each kind of mistake (SPEC §2-§4, §12.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>
#include <cmocka.h>
#include "config/config.h"
#include "config/schema.h"
#include "config/units.h"
#include "core/log.h"

/* ---- helpers ---- */

static gh_config *load(const char *yaml, gh_diag *d)
{
    gh_diag_init(d, "test.yaml");
    return gh_config_load_string("test.yaml", yaml, strlen(yaml), d);
}

/* Every message of a load that must fail, one per line. */
static char errors_buf[8192];
static const char *errors_of(const char *yaml)
{
    gh_diag d;
    gh_config *cfg = load(yaml, &d);
    assert_null(cfg);
    assert_true(d.errors > 0);
    errors_buf[0] = '\0';
    for (size_t i = 0; i < d.n; i++) {
        strncat(errors_buf, d.items[i].text, sizeof(errors_buf) - strlen(errors_buf) - 2);
        if (i + 1 < d.n)
            strcat(errors_buf, "\n");
    }
    gh_diag_free(&d);
    return errors_buf;
}

static gh_config *load_ok(const char *yaml, gh_diag *d)
{
    gh_config *cfg = load(yaml, d);
    if (!cfg)
        gh_diag_print(d, stderr);
    assert_non_null(cfg);
    assert_int_equal(d->errors, 0);
    return cfg;
}

#define LISTEN "listen:\n  - address: 127.0.0.1:8080\n"

/* ---- valid configurations ---- */

static const char full_yaml[] =
    "listen:\n"
    "  - address: 0.0.0.0:8080\n"
    "    http2: true\n"
    "  - address: \"[::1]:8081\"\n"
    "    path_strict: false\n"
    "workers: 4\n"
    "limits:\n"
    "  header_timeout: 5s\n"
    "  min_body_rate: 2KiB\n"
    "  max_body_bytes: 1MB\n"
    "  max_headers: 50\n"
    "trusted_proxies: [10.0.0.0/8, \"::1\", 192.168.1.77/24]\n"
    "log: { level: debug, access: /var/log/gh.log }\n"
    "drain_timeout: 1m\n"
    "upstreams:\n"
    "  users:\n"
    "    targets:\n"
    "      - { address: 127.0.0.1:9001, weight: 2 }\n"
    "      - 127.0.0.1:9002\n"
    "      - localhost:9003\n"
    "    balance: least_conn\n"
    "    keepalive: 16\n"
    "    protocol: http1\n"
    "    timeouts: { connect: 250ms, read: 2h }\n"
    "    retries: { attempts: 3, on: [timeout, 500], backoff: 25ms }\n"
    "  orders:\n"
    "    targets: [\"[::1]:9100\"]\n"
    "routes:\n"
    "  - name: users\n"
    "    match:\n"
    "      host: API.Example.com\n"
    "      prefix: /users/\n"
    "      methods: [get, POST, PURGE]\n"
    "      headers: { X-Tenant: acme }\n"
    "      query: { beta: \"1\" }\n"
    "    upstream: users\n"
    "    rewrite: { strip_prefix: true, prefix: /internal/users }\n"
    "    request_headers: { set: { X-Env: prod }, remove: [Cookie] }\n"
    "    response_headers: { set: { Cache-Control: no-store }, remove: [Server] }\n"
    "    timeout: 10s\n"
    "  - name: user\n"
    "    match: { host: \"*.example.com\", path: \"/u/{id}/files/{rest*}\" }\n"
    "    upstream: orders\n"
    "    rewrite: { path: \"/v2/users/{id}/{rest}\" }\n"
    "  - name: hello\n"
    "    match: { regex: \"^/h(?<x>i)$\" }\n"
    "    respond: { status: 201, headers: { Content-Type: text/plain }, body: \"hi\\n\" }\n"
    "  - name: echo\n"
    "    match: { prefix: / }\n"
    "    echo:\n"
    "  - name: docs\n"
    "    match: { path: /docs }\n"
    "    redirect: { to: \"https://example.com/\", status: 308 }\n";

static void test_full_config(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(full_yaml, &d);
    assert_string_equal(cfg->file, "test.yaml");

    assert_int_equal(cfg->nlistens, 2);
    assert_string_equal(cfg->listens[0].address.p, "0.0.0.0:8080");
    assert_true(cfg->listens[0].http2);
    assert_true(cfg->listens[0].path_strict);
    assert_int_equal(cfg->listens[0].sa.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&cfg->listens[0].sa)->sin_port), 8080);
    assert_int_equal(cfg->listens[0].mark.line, 2);
    assert_int_equal(cfg->listens[1].sa.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&cfg->listens[1].sa)->sin6_port), 8081);
    assert_false(cfg->listens[1].http2);
    assert_false(cfg->listens[1].path_strict);

    assert_int_equal(cfg->workers, 4);
    assert_int_equal(cfg->limits.header_timeout_ms, 5000);
    assert_int_equal(cfg->limits.body_timeout_ms, 10000);          /* default */
    assert_int_equal(cfg->limits.min_body_rate, 2048);
    assert_int_equal(cfg->limits.max_body_bytes, 1000000);
    assert_int_equal(cfg->limits.max_headers, 50);
    assert_int_equal(cfg->limits.max_header_bytes, 16384);         /* default */
    assert_int_equal(cfg->limits.max_connections, 100000);         /* default */

    assert_int_equal(cfg->ntrusted_proxies, 3);
    assert_int_equal(cfg->trusted_proxies[0].family, AF_INET);
    assert_int_equal(cfg->trusted_proxies[0].bits, 8);
    assert_int_equal(cfg->trusted_proxies[1].family, AF_INET6);
    assert_int_equal(cfg->trusted_proxies[1].bits, 128);
    assert_int_equal(cfg->trusted_proxies[2].bits, 24);
    assert_int_equal(cfg->trusted_proxies[2].addr[3], 0);          /* host bits zeroed */
    assert_int_equal(cfg->trusted_proxies[2].addr[2], 1);

    assert_int_equal(cfg->log.level, GH_LOG_DEBUG);
    assert_string_equal(cfg->log.access.p, "/var/log/gh.log");
    assert_string_equal(cfg->log.errors.p, "stderr");
    assert_int_equal(cfg->drain_timeout_ms, 60000);

    assert_int_equal(cfg->nupstreams, 2);
    const gh_upstream_cfg *u = gh_config_upstream(cfg, GH_STR("users"));
    assert_ptr_equal(u, &cfg->upstreams[0]);
    assert_int_equal(u->ntargets, 3);
    assert_int_equal(u->targets[0].weight, 2);
    assert_int_equal(u->targets[0].port, 9001);
    assert_string_equal(u->targets[0].host.p, "127.0.0.1");
    assert_int_equal(u->targets[1].weight, 1);
    assert_string_equal(u->targets[1].address.p, "127.0.0.1:9002");
    assert_string_equal(u->targets[2].host.p, "localhost");
    assert_int_equal(u->targets[2].sa.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&u->targets[2].sa)->sin_port), 9003);
    assert_int_equal(u->balance, GH_BALANCE_LEAST_CONN);
    assert_int_equal(u->keepalive, 16);
    assert_int_equal(u->connect_timeout_ms, 250);
    assert_int_equal(u->send_timeout_ms, 30000);
    assert_int_equal(u->read_timeout_ms, 2 * 3600 * 1000);
    assert_int_equal(u->retry_attempts, 3);
    assert_int_equal(u->retry_on, GH_RETRY_TIMEOUT | GH_RETRY_500);
    assert_int_equal(u->retry_backoff_ms, 25);
    const gh_upstream_cfg *o = gh_config_upstream(cfg, GH_STR("orders"));
    assert_non_null(o);
    assert_string_equal(o->targets[0].host.p, "::1");
    assert_int_equal(o->keepalive, 128);
    assert_int_equal(o->retry_attempts, 1);
    assert_int_equal(o->retry_on, GH_RETRY_CONNECT_ERROR | GH_RETRY_RESET | GH_RETRY_502 | GH_RETRY_503 | GH_RETRY_504);
    assert_null(gh_config_upstream(cfg, GH_STR("nope")));

    assert_int_equal(cfg->nroutes, 5);
    const gh_route_cfg *r = &cfg->routes[0];
    assert_string_equal(r->name.p, "users");
    assert_int_equal(r->index, 0);
    assert_string_equal(r->match.host.p, "api.example.com");
    assert_string_equal(r->match.prefix.p, "/users");
    assert_int_equal(r->match.methods, GH_M_GET | GH_M_POST | GH_M_OTHER);
    assert_int_equal(r->match.nmethods, 3);
    assert_string_equal(r->match.method_names[0].p, "GET");
    assert_string_equal(r->match.method_names[2].p, "PURGE");
    assert_int_equal(r->match.nheaders, 1);
    assert_string_equal(r->match.headers[0].name.p, "X-Tenant");
    assert_string_equal(r->match.headers[0].value.p, "acme");
    assert_false(r->match.headers[0].secret);
    assert_int_equal(r->match.nquery, 1);
    assert_string_equal(r->match.query[0].value.p, "1");
    assert_int_equal(r->match.path_mark.line, 32);
    assert_int_equal(r->match.path_mark.col, 7);
    assert_int_equal(r->target, GH_TARGET_UPSTREAM);
    assert_ptr_equal(r->upstream, u);
    assert_int_equal(r->upstream_index, 0);
    assert_int_equal(r->target_mark.line, 36);
    assert_int_equal(r->target_mark.col, 5);
    assert_true(r->rewrite.strip_prefix);
    assert_string_equal(r->rewrite.prefix.p, "/internal/users");
    assert_int_equal(r->request_headers.nset, 1);
    assert_string_equal(r->request_headers.set[0].name.p, "X-Env");
    assert_int_equal(r->request_headers.nremove, 1);
    assert_string_equal(r->request_headers.remove[0].p, "Cookie");
    assert_string_equal(r->response_headers.set[0].value.p, "no-store");
    assert_string_equal(r->response_headers.remove[0].p, "Server");
    assert_int_equal(r->timeout_ms, 10000);

    r = &cfg->routes[1];
    assert_string_equal(r->match.host.p, "*.example.com");
    assert_string_equal(r->match.path.p, "/u/{id}/files/{rest*}");
    assert_ptr_equal(r->upstream, o);
    assert_int_equal(r->upstream_index, 1);
    assert_string_equal(r->rewrite.path.p, "/v2/users/{id}/{rest}");
    assert_int_equal(r->timeout_ms, 0);

    r = &cfg->routes[2];
    assert_string_equal(r->match.regex.p, "^/h(?<x>i)$");
    assert_int_equal(r->target, GH_TARGET_RESPOND);
    assert_int_equal(r->respond.status, 201);
    assert_string_equal(r->respond.body.p, "hi\n");
    assert_int_equal(r->respond.nheaders, 1);
    assert_string_equal(r->respond.headers[0].value.p, "text/plain");

    r = &cfg->routes[3];
    assert_int_equal(r->target, GH_TARGET_ECHO);
    assert_string_equal(r->match.prefix.p, "/");
    assert_int_equal(r->match.methods, 0);

    r = &cfg->routes[4];
    assert_int_equal(r->target, GH_TARGET_REDIRECT);
    assert_string_equal(r->redirect.to.p, "https://example.com/");
    assert_int_equal(r->redirect.status, 308);

    gh_config_free(cfg);
    gh_diag_free(&d);
}

static void test_defaults(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(LISTEN "routes:\n  - name: r\n    match: { prefix: /x }\n    redirect: { to: /y }\n"
                             "  - name: s\n    match: { path: /s }\n    respond: {}\n", &d);
    assert_int_equal(cfg->workers, 0);
    assert_int_equal(cfg->limits.header_timeout_ms, 10000);
    assert_int_equal(cfg->limits.body_timeout_ms, 10000);
    assert_int_equal(cfg->limits.min_body_rate, 1024);
    assert_int_equal(cfg->limits.idle_timeout_ms, 60000);
    assert_int_equal(cfg->limits.max_header_bytes, 16 * 1024);
    assert_int_equal(cfg->limits.max_headers, 100);
    assert_int_equal(cfg->limits.max_body_bytes, 10 * 1024 * 1024);
    assert_int_equal(cfg->limits.max_connections, 100000);
    assert_int_equal(cfg->log.level, GH_LOG_INFO);
    assert_string_equal(cfg->log.access.p, "stdout");
    assert_string_equal(cfg->log.errors.p, "stderr");
    assert_int_equal(cfg->drain_timeout_ms, 30000);
    assert_int_equal(cfg->ntrusted_proxies, 0);
    assert_true(cfg->listens[0].path_strict);
    assert_false(cfg->listens[0].http2);
    assert_int_equal(cfg->routes[0].redirect.status, 302);
    assert_int_equal(cfg->routes[1].respond.status, 200);
    assert_int_equal(cfg->routes[1].respond.body.len, 0);
    gh_config_free(cfg);
    gh_diag_free(&d);
}

static void test_workers(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(LISTEN "workers: auto\n", &d);
    assert_int_equal(cfg->workers, 0);
    gh_config_free(cfg);
    gh_diag_free(&d);
    assert_string_equal(errors_of(LISTEN "workers: 0\n"),
                        "test.yaml:3:10: expected auto or an integer between 1 and 256, got 0");
    assert_string_equal(errors_of(LISTEN "workers: many\n"),
                        "test.yaml:3:10: expected auto or an integer between 1 and 256, got \"many\"");
}

static void test_load_file(void **state)
{
    char path[] = "/tmp/gh_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = LISTEN "workers: 2\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    gh_diag d;
    gh_diag_init(&d, path);
    gh_config *cfg = gh_config_load_file(path, &d);
    assert_non_null(cfg);
    assert_string_equal(cfg->file, path);
    assert_int_equal(cfg->workers, 2);
    gh_config_free(cfg);
    unlink(path);
    cfg = gh_config_load_file(path, &d);
    assert_null(cfg);
    assert_int_equal(d.errors, 1);
    char want[128];
    snprintf(want, sizeof(want), "gatehouse: cannot open %s: No such file or directory", path);
    assert_string_equal(gh_diag_first_error(&d), want);
    gh_diag_free(&d);
}

/* ---- ${ENV} ---- */

static void test_env_interpolation(void **state)
{
    setenv("GH_T_TOKEN", "s3cret", 1);
    setenv("GH_T_PORT", "8099", 1);
    setenv("GH_T_BACKEND", "127.0.0.1", 1);
    gh_diag d;
    gh_config *cfg = load_ok("listen:\n  - address: \"127.0.0.1:${GH_T_PORT}\"\n"
                             "upstreams:\n  u: { targets: [\"${GH_T_BACKEND}:${GH_T_PORT}\"] }\n"
                             "routes:\n"
                             "  - name: r\n"
                             "    match: { prefix: /r }\n"
                             "    upstream: u\n"
                             "    request_headers:\n"
                             "      set: { Authorization: \"Bearer ${GH_T_TOKEN}\", X-Plain: plain, X-Cost: \"$$5 $${HOME}\" }\n",
                             &d);
    assert_string_equal(cfg->listens[0].address.p, "127.0.0.1:8099");
    assert_int_equal(cfg->upstreams[0].targets[0].port, 8099);
    const gh_header_ops *h = &cfg->routes[0].request_headers;
    assert_int_equal(h->nset, 3);
    assert_string_equal(h->set[0].value.p, "Bearer s3cret");
    assert_true(h->set[0].secret);
    assert_string_equal(h->set[1].value.p, "plain");
    assert_false(h->set[1].secret);
    assert_string_equal(h->set[2].value.p, "$$5 ${HOME}");   /* "$${" is a literal "${" */
    assert_false(h->set[2].secret);
    /* SPEC §12.16: what came from ${ENV} is masked by whatever prints the configuration */
    assert_true(gh_config_is_secret(cfg, h->set[0].value.p));
    assert_true(gh_config_is_secret(cfg, cfg->listens[0].address.p));
    assert_false(gh_config_is_secret(cfg, h->set[1].value.p));
    assert_string_equal(gh_config_show(cfg, h->set[0].value).p, "***");
    assert_string_equal(gh_config_show(cfg, h->set[1].value).p, "plain");
    gh_config_free(cfg);
    gh_diag_free(&d);
    unsetenv("GH_T_TOKEN");
    unsetenv("GH_T_PORT");
    unsetenv("GH_T_BACKEND");
}

static void test_env_unset(void **state)
{
    unsetenv("GH_T_MISSING");
    assert_string_equal(errors_of(LISTEN "routes:\n  - name: r\n    match: { prefix: /r }\n"
                                         "    respond: { body: \"key ${GH_T_MISSING}\" }\n"),
                        "test.yaml:6:22: environment variable GH_T_MISSING is not set");
    assert_string_equal(errors_of(LISTEN "log: { access: \"${1BAD}\" }\n"),
                        "test.yaml:3:16: invalid environment reference in '${1BAD}' (use ${NAME})");
    assert_string_equal(errors_of(LISTEN "log: { access: \"${OPEN\" }\n"),
                        "test.yaml:3:16: invalid environment reference in '${OPEN' (use ${NAME})");
}

/* ---- unknown keys and kinds ---- */

static void test_unknown_key_hint(void **state)
{
    assert_string_equal(errors_of(LISTEN "upstreem: {}\n"),
                        "test.yaml:3:1: unknown key 'upstreem' (did you mean 'upstreams'?)");
    assert_string_equal(errors_of(LISTEN "frobnicate: 1\n"), "test.yaml:3:1: unknown key 'frobnicate'");
    assert_string_equal(errors_of(LISTEN "\"a\\nb\\e\": 1\n"), "test.yaml:3:1: unknown key 'a?b?'");
    assert_string_equal(errors_of(LISTEN "limits:\n  max_body: 1MiB\n"),
                        "test.yaml:4:3: unknown key 'max_body' (did you mean 'max_body_bytes'?)");
    assert_string_equal(errors_of(LISTEN "routes:\n  - name: r\n    match: { prefix: /r, methds: [GET] }\n    echo: {}\n"),
                        "test.yaml:5:26: unknown key 'methds' (did you mean 'methods'?)");
    assert_string_equal(errors_of(LISTEN "routes:\n  - name: r\n    match: { prefix: /r }\n    upstreams: u\n"),
                        "test.yaml:4:5: route needs a target: one of upstream, respond, echo, redirect\n"
                        "test.yaml:6:5: unknown key 'upstreams' (did you mean 'upstream'?)");
}

static void test_aggregate_and_batch_keys(void **state)
{
#define AGG LISTEN "upstreams:\n  u: { targets: [127.0.0.1:1] }\nroutes:\n  - name: a\n    match: { path: \"/a/{id}\" }\n    aggregate:\n"
    gh_diag d;
    gh_config *cfg = load_ok(AGG "      timeout: 800ms\n      backends:\n"
                                 "        - { key: p, upstream: u, path: \"/p/{id}?q={q}\", timeout: 2s, select: [x] }\n"
                                 "        - { key: r, path: /local, optional: true, timeout: 100ms }\n", &d);
    const gh_aggregate_cfg *a = cfg->routes[0].aggregate;
    assert_int_equal(cfg->routes[0].target, GH_TARGET_AGGREGATE);
    assert_int_equal(a->n, 2);
    assert_int_equal(a->timeout_ms, 800);
    assert_ptr_equal(a->backends[0].route.upstream, &cfg->upstreams[0]);
    assert_int_equal(a->backends[0].route.timeout_ms, 800);   /* within the aggregate's */
    assert_int_equal(a->backends[0].nselect, 1);
    assert_null(a->backends[1].route.upstream);               /* routed by the gateway */
    assert_int_equal(a->backends[1].route.timeout_ms, 100);
    assert_true(a->backends[1].optional);
    gh_config_free(cfg);
    gh_diag_free(&d);
    assert_string_equal(errors_of(AGG "      backends:\n        - { key: p, upstream: u, path: /p }\n"
                                      "        - { key: p, upstream: nope, path: p }\n"),
                        "test.yaml:11:18: duplicate backend key 'p'\n"
                        "test.yaml:11:21: upstream 'nope' is not defined\n"
                        "test.yaml:11:43: invalid backend path 'p': it must start with '/'");
    assert_string_equal(errors_of(AGG "      backends:\n        - { upstream: u }\n"),
                        "test.yaml:10:11: aggregate backend needs a key\n"
                        "test.yaml:10:11: aggregate backend needs a path");
    assert_string_equal(errors_of(AGG "      backends: []\n"),
                        "test.yaml:9:17: aggregate needs backends: a non-empty list of { key, upstream, path }");
    assert_string_equal(errors_of(LISTEN "routes:\n  - name: b\n    match: { path: /b }\n    batch: { max_requests: 0 }\n"),
                        "test.yaml:6:28: expected an integer between 1 and 1000, got 0");
#undef AGG
}

static void test_not_yet_supported_keys(void **state)
{
    assert_string_equal(errors_of(LISTEN "upstreams:\n  u:\n    targets: [127.0.0.1:1]\n    protocol: h3\n"),
                        "test.yaml:6:15: invalid protocol 'h3' (use http1 or h2)");
    assert_string_equal(errors_of(LISTEN "routes:\n  - name: v\n    match: { prefix: /v }\n    aggregate: {}\n"),
                        "test.yaml:6:5: aggregate needs backends: a non-empty list of { key, upstream, path }");
    assert_string_equal(errors_of("listen:\n  - address: 127.0.0.1:8443\n    tls: {}\n"),
                        "test.yaml:3:5: tls needs certificates (a list of { cert: FILE, key: FILE })");
}

/* admin: its own listener; a non-loopback one needs a token (SPEC §12.15). */
static void test_admin_keys(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(LISTEN "admin: { address: 127.0.0.1:9901 }\n", &d);
    assert_non_null(cfg->admin);
    assert_string_equal(cfg->admin->listen.address.p, "127.0.0.1:9901");
    assert_int_equal(cfg->admin->token.len, 0);
    gh_config_free(cfg);
    gh_diag_free(&d);
    cfg = load_ok(LISTEN "admin: { address: 0.0.0.0:9901, token: abc }\n", &d);
    assert_string_equal(cfg->admin->token.p, "abc");
    gh_config_free(cfg);
    gh_diag_free(&d);
    assert_string_equal(errors_of(LISTEN "admin: { address: 0.0.0.0:9901 }\n"),
                        "test.yaml:3:19: admin address '0.0.0.0:9901' is not loopback: set admin.token");
    assert_string_equal(errors_of(LISTEN "admin: { token: abc }\n"),
                        "test.yaml:3:8: admin needs an address (admin: { address: 127.0.0.1:9901 })");
    assert_string_equal(errors_of(LISTEN "admin: { address: 127.0.0.1:9901, tokn: x }\n"),
                        "test.yaml:3:35: unknown key 'tokn' (did you mean 'token'?)");
    assert_string_equal(errors_of("admin: { address: 127.0.0.1:8080 }\n" LISTEN),
                        "test.yaml:1:19: admin address '127.0.0.1:8080' is also a listen address (line 3)");
}

/* Issue 10: balancers, health checks, circuit breaker, failure statuses. */
static void test_upstream_traffic_keys(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(LISTEN "upstreams:\n  u:\n    targets: [127.0.0.1:1, 127.0.0.1:2]\n"
                                    "    balance: hash\n    hash_on: cookie:sid\n"
                                    "    health_check:\n"
                                    "      active: { path: /ready, interval: 2s, timeout: 500ms, healthy_after: 1,"
                                    " unhealthy_after: 4, expect: [200-299, 404] }\n"
                                    "      passive: { failures: 3 }\n"
                                    "    circuit_breaker: { failure_ratio: 0.25, min_requests: 10, open_for: 5s }\n"
                                    "    failure_statuses: [502, 503]\n"
                                    "    retries: { on: [timeout] }\n"
                                    "    resolve_every: 30s\n"
                                    "  v:\n    targets: [127.0.0.1:3]\n    balance: random_two\n", &d);
    const gh_upstream_cfg *u = &cfg->upstreams[0];
    assert_int_equal(u->balance, GH_BALANCE_HASH);
    assert_int_equal(u->hash_on, GH_HASH_COOKIE);
    assert_string_equal(u->hash_name.p, "sid");
    assert_true(u->active.on);
    assert_string_equal(u->active.path.p, "/ready");
    assert_int_equal(u->active.interval_ms, 2000);
    assert_int_equal(u->active.timeout_ms, 500);
    assert_int_equal(u->active.healthy_after, 1);
    assert_int_equal(u->active.unhealthy_after, 4);
    assert_int_equal(u->active.nexpect, 2);
    assert_int_equal(u->active.expect[0].lo, 200);
    assert_int_equal(u->active.expect[0].hi, 299);
    assert_int_equal(u->active.expect[1].lo, 404);
    assert_int_equal(u->active.expect[1].hi, 404);
    assert_int_equal(u->passive.failures, 3);
    assert_int_equal(u->passive.within_ms, 10000);   /* defaults for the rest */
    assert_int_equal(u->passive.eject_for_ms, 30000);
    assert_true(u->circuit.on);
    assert_true(u->circuit.failure_ratio == 0.25);
    assert_int_equal(u->circuit.min_requests, 10);
    assert_int_equal(u->circuit.window_ms, 10000);
    assert_int_equal(u->circuit.open_for_ms, 5000);
    assert_int_equal(u->circuit.max_pending, 1024);
    assert_true(gh_upstream_failure_status(u, 502));
    assert_false(gh_upstream_failure_status(u, 500));
    assert_int_equal(u->retry_on, GH_RETRY_TIMEOUT);
    assert_int_equal(u->resolve_every_ms, 30000);
    const gh_upstream_cfg *v = &cfg->upstreams[1];
    assert_int_equal(v->balance, GH_BALANCE_RANDOM_TWO);
    assert_false(v->active.on);
    assert_int_equal(v->passive.failures, 0);   /* off unless configured (SPEC §12.6) */
    assert_false(v->circuit.on);
    assert_true(gh_upstream_failure_status(v, 500) && gh_upstream_failure_status(v, 504));
    gh_config_free(cfg);
    gh_diag_free(&d);

#define UP LISTEN "upstreams:\n  u:\n    targets: [127.0.0.1:1]\n"
    assert_string_equal(errors_of(UP "    balance: hash\n"), "test.yaml:6:14: balance: hash needs hash_on");
    assert_string_equal(errors_of(UP "    hash_on: ip\n"), "test.yaml:6:5: hash_on needs balance: hash");
    assert_string_equal(errors_of(UP "    protocol: h2\n    health_check: { active: {} }\n"),
                        "test.yaml:7:5: health_check.active speaks HTTP/1.1 and is not available with protocol: h2 "
                        "(use passive checks)");
    assert_string_equal(errors_of(UP "    balance: hash\n    hash_on: \"header:\"\n"),
                        "test.yaml:7:14: invalid hash_on 'header:' (use header:NAME, cookie:NAME, ip, path or consumer)");
    assert_string_equal(errors_of(UP "    balance: fastest\n"),
                        "test.yaml:6:14: invalid balance 'fastest' (use round_robin, least_conn, random_two or hash)");
    assert_string_equal(errors_of(UP "    health_check: { passive: { failures: 0 } }\n"),
                        "test.yaml:6:42: expected an integer between 1 and 1000000, got 0");
    assert_string_equal(errors_of(UP "    health_check: { active: { expect: [200-99] } }\n"),
                        "test.yaml:6:40: invalid status '200-99' (use 100-599, or a range like 200-399)");
    assert_string_equal(errors_of(UP "    health_check: { active: { path: health } }\n"),
                        "test.yaml:6:37: health check path must start with '/'");
    assert_string_equal(errors_of(UP "    health_check: { pasive: {} }\n"),
                        "test.yaml:6:21: unknown key 'pasive' (did you mean 'passive'?)");
    assert_string_equal(errors_of(UP "    circuit_breaker: { failure_ratio: 1.5 }\n"),
                        "test.yaml:6:39: invalid failure_ratio '1.5' (use a number above 0, at most 1)");
    assert_string_equal(errors_of(UP "    failure_statuses: [500, 700]\n"),
                        "test.yaml:6:29: invalid status '700' (use 100-599)");
    assert_string_equal(errors_of(UP "    resolve_every: soon\n"),
                        "test.yaml:6:20: expected a duration like 250ms, 5s, 1m or 2h, got \"soon\"");
#undef UP
}

static void test_redis(void **state)
{
    gh_diag d;
    setenv("GH_T_REDIS_PW", "pw-from-env", 1);
    gh_config *cfg = load_ok(LISTEN "redis:\n  address: localhost:6379\n  username: gh\n"
                                    "  password: ${GH_T_REDIS_PW}\n  timeout: 20ms\n  on_error: deny\n", &d);
    const gh_redis_cfg *r = cfg->redis;
    assert_non_null(r);
    assert_false(r->cluster);
    assert_int_equal(r->nnodes, 1);
    assert_string_equal(r->nodes[0].host.p, "127.0.0.1");
    assert_int_equal(r->nodes[0].port, 6379);
    assert_string_equal(r->password.p, "pw-from-env");
    assert_string_equal(gh_config_show(cfg, r->password).p, "***");
    assert_int_equal(r->timeout_ms, 20);
    assert_int_equal(r->on_error, GH_REDIS_ON_ERROR_DENY);
    gh_config *same = load_ok(LISTEN "redis:\n  address: 127.0.0.1:6379\n  username: gh\n"
                                     "  password: pw-from-env\n  timeout: 20ms\n", &d);
    assert_true(gh_redis_cfg_equal(r, same->redis));   /* on_error needs no new connection */
    assert_string_equal(gh_config_show(same, same->redis->password).p, "***");   /* written out: still secret */
    gh_config_free(same);
    gh_config_free(cfg);
    cfg = load_ok(LISTEN "redis:\n  cluster: [\"10.0.0.1:7000\", \"redis-2.internal:7001\"]\n", &d);
    assert_true(cfg->redis->cluster);
    assert_int_equal(cfg->redis->nnodes, 2);
    assert_string_equal(cfg->redis->nodes[1].host.p, "redis-2.internal");
    assert_int_equal(cfg->redis->timeout_ms, 50);
    assert_int_equal(cfg->redis->on_error, GH_REDIS_ON_ERROR_ALLOW);
    gh_config_free(cfg);
    /* tls: the same keys (and parser) as an upstream's */
    gh_diag td;
    const char *with_tls = LISTEN "redis:\n  address: 127.0.0.1:6379\n  tls: { sni: redis.internal, verify: false }\n";
    cfg = load(with_tls, &td);
    assert_non_null(cfg);
    assert_non_null(cfg->redis->tls);
    assert_string_equal(cfg->redis->tls->sni.p, "redis.internal");
    assert_false(cfg->redis->tls->verify);
    gh_config_free(cfg);
    gh_diag_free(&td);
    assert_string_equal(errors_of(LISTEN "redis:\n  address: 127.0.0.1:6379\n  tls: { cert: c.pem }\n"),
                        "test.yaml:5:10: cert needs key (a client certificate takes both)");
    assert_string_equal(errors_of(LISTEN "redis:\n  address: 127.0.0.1:6379\n  cluster: [127.0.0.1:7000]\n"),
                        "test.yaml:5:3: redis takes either address (one server) or cluster (Redis Cluster seeds), "
                        "not both");
    assert_string_equal(errors_of(LISTEN "redis:\n  timeout: 1s\n"),
                        "test.yaml:3:1: redis needs address: host:port or cluster: [host:port, ...]");
    assert_string_equal(errors_of(LISTEN "redis:\n  address: 127.0.0.1\n  on_error: maybe\n  adress: x\n"),
                        "test.yaml:4:12: invalid address '127.0.0.1' (use host:port or [v6]:port)\n"
                        "test.yaml:5:13: invalid on_error 'maybe' (use allow or deny)\n"
                        "test.yaml:6:3: unknown key 'adress' (did you mean 'address'?)");
    assert_string_equal(errors_of(LISTEN "redis:\n  cluster: []\n"), "test.yaml:4:12: expected a list of host:port seeds, got []");
    assert_string_equal(errors_of(LISTEN "redis:\n  address: 127.0.0.1:1\n  username: u\n"),
                        "test.yaml:5:3: redis.username needs a password");
}

static void test_wrong_kinds(void **state)
{
    assert_string_equal(errors_of("listen: 127.0.0.1:80\n"), "test.yaml:1:9: expected a list, got \"127.0.0.1:80\"");
    assert_string_equal(errors_of(LISTEN "limits: [1, 2]\n"), "test.yaml:3:9: expected a mapping, got [1, 2]");
    assert_string_equal(errors_of("listen:\n  - address: 127.0.0.1:80\n    http2: yes\n"),
                        "test.yaml:3:12: expected true or false, got \"yes\"");
    assert_string_equal(errors_of(LISTEN "routes:\n  - name: [a]\n    match: { prefix: /r }\n    echo: {}\n"),
                        "test.yaml:4:11: expected a string, got [\"a\"]");
    assert_string_equal(errors_of(LISTEN "upstreams:\n  u:\n    targets: [127.0.0.1:1]\n    keepalive: -1\n"),
                        "test.yaml:6:16: expected an integer between 0 and 100000, got -1");
    assert_string_equal(errors_of(LISTEN "limits:\n  max_headers:\n"),
                        "test.yaml:4:3: expected an integer between 1 and 10000, got nothing");
    assert_string_equal(errors_of(LISTEN "routes:\n  - name: r\n    match: { prefix: /r }\n    respond: { status: 99 }\n"),
                        "test.yaml:6:24: expected an integer between 100 and 599, got 99");
    assert_string_equal(errors_of(LISTEN "routes:\n  - name: r\n    match: { prefix: /r }\n    echo: true\n"),
                        "test.yaml:6:11: expected a mapping, got true");
    assert_string_equal(errors_of(LISTEN "routes:\n  - just a string\n"), "test.yaml:4:5: expected a mapping, got \"just a string\"");
}

/* A wrong value is named as written, whatever its shape (issue 9, item 20). */
static void test_wrong_value_is_named(void **state)
{
    assert_string_equal(errors_of(LISTEN "limits: { header_timeout: fast }\n"),
                        "test.yaml:3:27: expected a duration like 250ms, 5s, 1m or 2h, got \"fast\"");
    assert_string_equal(errors_of(LISTEN "limits: { max_headers: [1, 2] }\n"),
                        "test.yaml:3:24: expected an integer between 1 and 10000, got [1, 2]");
    assert_string_equal(errors_of(LISTEN "limits: { max_headers: { a: 1, b: [x] } }\n"),
                        "test.yaml:3:24: expected an integer between 1 and 10000, got { \"a\": 1, \"b\": [\"x\"] }");
    assert_string_equal(errors_of(LISTEN "limits: { max_body_bytes: \"say \\\"hi\\\"\" }\n"),
                        "test.yaml:3:27: expected a size like 512, 16KiB, 10MiB or 1GiB, got \"say \\\"hi\\\"\"");
    /* long values are cut, not the message */
    const char *e = errors_of(LISTEN "limits: { max_headers: [aaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbb, "
                                     "cccccccccccccccccccc, dddddddddddddddddddd, eeeeeeeeeeeeeeeeeeee] }\n");
    assert_non_null(strstr(e, "expected an integer between 1 and 10000, got [\"aaaa"));
    assert_non_null(strstr(e, "...") );
    assert_true(strlen(e) < 200);
}

/* An unknown plugin lists the known ones, with the hint when one is close. */
static void test_unknown_plugin_lists_the_known_ones(void **state)
{
    static const char known[] = "known plugins: ip_filter, cors, key_auth, jwt, basic_auth, mtls_auth, acl";
    const char *e = errors_of(LISTEN "plugins: { key_aut: {} }\n");
    assert_non_null(strstr(e, "test.yaml:3:12: unknown plugin 'key_aut' (did you mean 'key_auth'?); "));
    assert_non_null(strstr(e, known));
    e = errors_of(LISTEN "plugins: { frobnicate: {} }\n");
    assert_non_null(strstr(e, "test.yaml:3:12: unknown plugin 'frobnicate'; "));
    assert_non_null(strstr(e, known));
}

/* What has no position says so, without a made-up 0:0. */
static void test_diag_without_position(void **state)
{
    gh_diag d;
    gh_diag_init(&d, "x.yaml");
    gh_diag_error(&d, (gh_mark){ 0, 0 }, "out of memory");
    gh_diag_error(&d, (gh_mark){ 2, 3 }, "bad");
    gh_diag_fail(&d, "cannot open %s: %s", "x.yaml", "Permission denied");
    assert_string_equal(d.items[0].text, "x.yaml: out of memory");
    assert_string_equal(d.items[1].text, "x.yaml:2:3: bad");
    assert_string_equal(d.items[2].text, "gatehouse: cannot open x.yaml: Permission denied");
    assert_int_equal(d.errors, 3);
    gh_diag_free(&d);
    /* a directory opens but cannot be read */
    gh_diag_init(&d, "/");
    assert_null(gh_config_load_file("/", &d));
    assert_string_equal(gh_diag_first_error(&d), "gatehouse: cannot read /: Is a directory");
    gh_diag_free(&d);
}

static void test_bad_units(void **state)
{
    assert_string_equal(errors_of(LISTEN "limits:\n  header_timeout: 5x\n  idle_timeout: 5\n  max_body_bytes: 10MB!\n"),
                        "test.yaml:4:19: expected a duration like 250ms, 5s, 1m or 2h, got \"5x\"\n"
                        "test.yaml:5:17: expected a duration like 250ms, 5s, 1m or 2h, got 5\n"
                        "test.yaml:6:19: expected a size like 512, 16KiB, 10MiB or 1GiB, got \"10MB!\"");
    assert_string_equal(errors_of(LISTEN "drain_timeout: 99999999999999999999h\n"),
                        "test.yaml:3:16: expected a duration like 250ms, 5s, 1m or 2h, got \"99999999999999999999h\"");
    assert_string_equal(errors_of(LISTEN "limits: { header_timeout: 0 }\n"),
                        "test.yaml:3:27: expected a duration greater than 0");
}

/* limits.underscores_in_headers: drop (default), allow, reject. */
static void test_underscores_in_headers(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(LISTEN, &d);
    assert_int_equal(cfg->limits.underscores_in_headers, GH_UNDERSCORES_DROP);
    gh_config_free(cfg);
    gh_diag_free(&d);
    cfg = load_ok(LISTEN "limits: { underscores_in_headers: reject }\n", &d);
    assert_int_equal(cfg->limits.underscores_in_headers, GH_UNDERSCORES_REJECT);
    gh_config_free(cfg);
    gh_diag_free(&d);
    assert_string_equal(errors_of(LISTEN "limits:\n  underscores_in_headers: keep\n"),
                        "test.yaml:4:27: invalid underscores_in_headers 'keep' (use drop, allow or reject)");
    assert_string_equal(errors_of(LISTEN "limits:\n  underscores_in_headers: [drop]\n"),
                        "test.yaml:4:27: expected drop, allow or reject, got [\"drop\"]");
}

static void test_units(void **state)
{
    uint64_t v;
    assert_true(gh_parse_duration_ms(GH_STR("250ms"), &v) && v == 250);
    assert_true(gh_parse_duration_ms(GH_STR("5s"), &v) && v == 5000);
    assert_true(gh_parse_duration_ms(GH_STR("1m"), &v) && v == 60000);
    assert_true(gh_parse_duration_ms(GH_STR("2h"), &v) && v == 7200000);
    assert_true(gh_parse_duration_ms(GH_STR("0"), &v) && v == 0);
    assert_false(gh_parse_duration_ms(GH_STR("5"), &v));
    assert_false(gh_parse_duration_ms(GH_STR(""), &v));
    assert_false(gh_parse_duration_ms(GH_STR("s"), &v));
    assert_false(gh_parse_duration_ms(GH_STR("1.5s"), &v));
    assert_false(gh_parse_duration_ms(GH_STR("-1s"), &v));
    assert_false(gh_parse_duration_ms(GH_STR("5 s"), &v));
    assert_false(gh_parse_duration_ms(GH_STR("18446744073709551615h"), &v));
    assert_true(gh_parse_duration_ms(GH_STR("18446744073709551615ms"), &v) && v == UINT64_MAX);
    assert_false(gh_parse_duration_ms(GH_STR("18446744073709551616ms"), &v));
    assert_true(gh_parse_size(GH_STR("512"), &v) && v == 512);
    assert_true(gh_parse_size(GH_STR("16KiB"), &v) && v == 16384);
    assert_true(gh_parse_size(GH_STR("10MiB"), &v) && v == 10485760);
    assert_true(gh_parse_size(GH_STR("1GiB"), &v) && v == 1073741824);
    assert_true(gh_parse_size(GH_STR("2KB"), &v) && v == 2000);
    assert_true(gh_parse_size(GH_STR("3MB"), &v) && v == 3000000);
    assert_true(gh_parse_size(GH_STR("1GB"), &v) && v == 1000000000);
    assert_false(gh_parse_size(GH_STR("1kib"), &v));
    assert_false(gh_parse_size(GH_STR("1TiB"), &v));
    assert_false(gh_parse_size(GH_STR("17179869184GiB"), &v));
    assert_true(gh_parse_uint(GH_STR("42"), &v) && v == 42);
    assert_false(gh_parse_uint(GH_STR("4 2"), &v));
    assert_false(gh_parse_uint(GH_STR("0x10"), &v));
}

static void test_suggest(void **state)
{
    static const char *const names[] = { "listen", "upstreams", "routes", "trusted_proxies" };
    assert_string_equal(gh_ld_suggest(GH_STR("upstreem"), names, 4), "upstreams");
    assert_string_equal(gh_ld_suggest(GH_STR("route"), names, 4), "routes");
    assert_string_equal(gh_ld_suggest(GH_STR("Listen"), names, 4), "listen");
    assert_string_equal(gh_ld_suggest(GH_STR("trusted"), names, 4), "trusted_proxies");
    assert_null(gh_ld_suggest(GH_STR("banana"), names, 4));
}

/* ---- YAML itself ---- */

static void test_yaml_errors(void **state)
{
    assert_string_equal(errors_of(LISTEN "routes: [\n"),
                        "test.yaml:4:1: invalid YAML: flow sequence without a closing bracket");
    assert_string_equal(errors_of("listen:\n  - address: \"127.0.0.1:80\n"),
                        "test.yaml:2:15: invalid YAML: double-quoted scalar without closing quote");
    assert_string_equal(errors_of(""), "test.yaml:1:1: empty configuration");
    assert_string_equal(errors_of("# nothing here\n"), "test.yaml:1:1: empty configuration");
    assert_string_equal(errors_of("- a\n- b\n"), "test.yaml:1:1: expected a mapping, got [\"a\", \"b\"]");
    assert_string_equal(errors_of(LISTEN "workers: 2\nworkers: 3\n"),
                        "test.yaml:4:1: duplicate key 'workers' (first at line 3)");
    assert_string_equal(errors_of(LISTEN "---\nworkers: 3\n"), "test.yaml:3:1: only one YAML document is allowed");
    assert_string_equal(errors_of(LISTEN "workers: *nope\n"), "test.yaml:3:10: unknown alias '*nope'");
    /* invalid UTF-8 is refused before libfyaml sees it (it can hang on it) */
    assert_string_equal(errors_of("%a\xa9\n"), "test.yaml:1:3: invalid YAML: the file is not valid UTF-8");
    assert_string_equal(errors_of(LISTEN "log: { access: \"caf\xc3\xa9\xed\xa0\x80\" }\n"),
                        "test.yaml:3:21: invalid YAML: the file is not valid UTF-8");
    /* a tab before a block indicator crashes libfyaml 0.7.12 inside an
     * explicit key (the fuzzer's finds): tabs are refused outside quotes */
    assert_string_equal(errors_of(LISTEN "? a:\t- b\n"),
                        "test.yaml:3:5: invalid YAML: a tab is not allowed here (indent and separate with spaces; a tab may appear inside quotes, as \\t)");
    assert_string_equal(errors_of("lis*en:\n?  l-xamsten:\t?  l-st 0en 0en:"),
                        "test.yaml:2:14: invalid YAML: a tab is not allowed here (indent and separate with spaces; a tab may appear inside quotes, as \\t)");
    assert_string_equal(errors_of(LISTEN "? l-xam sten \t? l-st: 1\n"),
                        "test.yaml:3:14: invalid YAML: a tab is not allowed here (indent and separate with spaces; a tab may appear inside quotes, as \\t)");
    /* a tab inside a quoted scalar or a comment places nothing */
    {
        gh_diag ok;
        gh_config *c = load_ok(LISTEN "log: { access: \"/tmp/a:\t- b\" }\nworkers: 2 # x:\t- y\n", &ok);
        gh_config_free(c);
        gh_diag_free(&ok);
    }
    /* so is a NUL byte (libfyaml 0.7.12 crashes on some) and any other control character */
    static const char nul[] = "listen: [{ address: 127.0.0.1:80 }]\n? a: \t\0b\n";
    gh_diag d;
    gh_diag_init(&d, "test.yaml");
    assert_null(gh_config_load_string("test.yaml", nul, sizeof(nul) - 1, &d));
    assert_string_equal(gh_diag_first_error(&d), "test.yaml:2:7: invalid YAML: control character U+0000 is not allowed");
    gh_diag_free(&d);
    assert_string_equal(errors_of(LISTEN "log: { access: \"a\x1b[31m\" }\n"),
                        "test.yaml:3:18: invalid YAML: control character U+001B is not allowed");
}

static void test_yaml_aliases(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(LISTEN "upstreams:\n"
                             "  a: { targets: &t [127.0.0.1:1, 127.0.0.1:2] }\n"
                             "  b: { targets: *t, keepalive: 1 }\n", &d);
    assert_int_equal(cfg->upstreams[1].ntargets, 2);
    assert_int_equal(cfg->upstreams[1].targets[1].port, 2);
    gh_config_free(cfg);
    gh_diag_free(&d);
}

static void test_yaml_single_quoted(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(LISTEN "routes:\n"
                             "  - name: 'it''s'\n    match: { prefix: /a }\n    respond: { body: '' }\n"
                             "  - name: b\n    match: { prefix: /b }\n"
                             "    respond:\n      body: 'one\n        two  \n\n        three '\n", &d);
    assert_string_equal(cfg->routes[0].name.p, "it's");
    assert_string_equal(cfg->routes[0].respond.body.p, "");   /* libfyaml 0.7.12 leaked on this */
    assert_string_equal(cfg->routes[1].respond.body.p, "one two\nthree ");
    gh_config_free(cfg);
    gh_diag_free(&d);
}

/* ---- listen ---- */

static void test_listen_errors(void **state)
{
    assert_string_equal(errors_of("workers: 1\n"),
                        "test.yaml:1:1: at least one listen address is required (listen: [{ address: 0.0.0.0:8080 }])");
    assert_string_equal(errors_of("listen: []\n"), "test.yaml:1:1: at least one listen address is required");
    assert_string_equal(errors_of("listen:\n  - address: 127.0.0.1\n"),
                        "test.yaml:2:14: invalid address '127.0.0.1' (use host:port or [v6]:port)");
    assert_string_equal(errors_of("listen:\n  - address: 127.0.0.1:0\n  - address: 127.0.0.1:65536\n"),
                        "test.yaml:2:14: invalid port in '127.0.0.1:0' (use 1-65535)\n"
                        "test.yaml:3:14: invalid port in '127.0.0.1:65536' (use 1-65535)");
    assert_string_equal(errors_of("listen:\n  - address: ::1:80\n"),
                        "test.yaml:2:14: invalid address '::1:80' (an IPv6 address needs brackets: [::1]:8080)");
    assert_string_equal(errors_of("listen:\n  - address: example.com:80\n"),
                        "test.yaml:2:14: invalid host 'example.com' (use an IP address or localhost)");
    assert_string_equal(errors_of("listen:\n  - address: 127.0.0.1:80\n  - address: 127.0.0.1:80\n"),
                        "test.yaml:3:14: duplicate listen address '127.0.0.1:80' (also at line 2)");
    assert_string_equal(errors_of("listen:\n  - http2: true\n"), "test.yaml:2:5: listen entry needs an address");

    gh_diag d;
    gh_config *cfg = load_ok("listen:\n  - address: localhost:8080\n  - address: \"[::]:8080\"\n", &d);
    assert_int_equal(cfg->listens[0].sa.ss_family, AF_INET);
    assert_int_equal(cfg->listens[1].sa.ss_family, AF_INET6);
    gh_config_free(cfg);
    gh_diag_free(&d);
}

static void test_trusted_proxies(void **state)
{
    assert_string_equal(errors_of(LISTEN "trusted_proxies: [10.0.0.0/8, 300.0.0.1, 10.0.0.0/33, \"::1/129\", x]\n"),
                        "test.yaml:3:31: invalid address or CIDR '300.0.0.1'\n"
                        "test.yaml:3:42: invalid address or CIDR '10.0.0.0/33'\n"
                        "test.yaml:3:55: invalid address or CIDR '::1/129'\n"
                        "test.yaml:3:66: invalid address or CIDR 'x'");
    gh_diag d;
    gh_config *cfg = load_ok(LISTEN "trusted_proxies: [\"2001:db8::ff/32\", 172.16.5.4/12]\n", &d);
    assert_int_equal(cfg->trusted_proxies[0].bits, 32);
    assert_int_equal(cfg->trusted_proxies[0].addr[4], 0);
    assert_int_equal(cfg->trusted_proxies[0].addr[15], 0);
    assert_int_equal(cfg->trusted_proxies[1].addr[1], 16);   /* 172.16.0.0 */
    assert_int_equal(cfg->trusted_proxies[1].addr[2], 0);
    gh_config_free(cfg);
    gh_diag_free(&d);
}

/* ---- upstreams ---- */

static void test_upstream_errors(void **state)
{
    assert_string_equal(errors_of(LISTEN "upstreams:\n  u: {}\n  v: { targets: [] }\n"),
                        "test.yaml:4:3: upstream 'u' needs targets\n"
                        "test.yaml:5:8: targets must not be empty");
    assert_string_equal(errors_of(LISTEN "upstreams:\n  u:\n    targets:\n      - { weight: 2 }\n"
                                         "      - { address: 127.0.0.1:1, weight: 1001 }\n      - nope\n"),
                        "test.yaml:6:9: target needs an address\n"
                        "test.yaml:7:41: expected an integer between 1 and 1000, got 1001\n"
                        "test.yaml:8:9: invalid address 'nope' (use host:port or [v6]:port)");
    assert_string_equal(errors_of(LISTEN "upstreams:\n  u:\n    targets: [no-such-host.invalid:80]\n"),
                        "test.yaml:5:15: cannot resolve 'no-such-host.invalid': Name or service not known");
    assert_string_equal(errors_of(LISTEN "upstreams:\n  u:\n    targets: [127.0.0.1:1]\n    balance: fastest\n"
                                         "    retries: { attempts: 11, on: [reset, 501] }\n"
                                         "    timeouts: { connect: 0 }\n"),
                        "test.yaml:6:14: invalid balance 'fastest' (use round_robin, least_conn, random_two or hash)\n"
                        "test.yaml:7:26: expected an integer between 0 and 10, got 11\n"
                        "test.yaml:7:42: invalid retry condition '501' (use connect_error, reset, timeout, 500, 502, 503, 504)\n"
                        "test.yaml:8:26: expected a duration greater than 0");
}

/* ---- routes ---- */

#define ROUTE_HEAD LISTEN "upstreams:\n  u: { targets: [127.0.0.1:9000] }\nroutes:\n"

/* Many routes: the names go through a hash set; every duplicate is still
 * found, pointing at the first. */
static void test_duplicate_route_names_among_many(void **state)
{
    enum { N = 3000 };
    size_t cap = N * 64 + 256, len = 0;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    len += (size_t)snprintf(yaml, cap, "%s", ROUTE_HEAD);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "  - { name: r%d, match: { prefix: /p%d }, echo: {} }\n", i, i);
    snprintf(yaml + len, cap - len, "  - { name: r1234, match: { prefix: /dup }, echo: {} }\n");
    char want[128];
    snprintf(want, sizeof(want), "test.yaml:%d:13: duplicate route name 'r1234' (first at line %d)", 6 + N, 6 + 1234);
    assert_string_equal(errors_of(yaml), want);
    free(yaml);
}

static void test_undefined_upstream(void **state)
{
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /r }\n    upstream: users\n"),
                        "test.yaml:8:5: upstream 'users' is not defined");
    /* defined after the routes: still found */
    gh_diag d;
    gh_config *cfg = load_ok(LISTEN "routes:\n  - name: r\n    match: { prefix: /r }\n    upstream: late\n"
                             "upstreams:\n  late: { targets: [127.0.0.1:1] }\n", &d);
    assert_ptr_equal(cfg->routes[0].upstream, &cfg->upstreams[0]);
    gh_config_free(cfg);
    gh_diag_free(&d);
}

static void test_duplicate_route_names(void **state)
{
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: a\n    match: { prefix: /a }\n    echo: {}\n"
                                             "  - name: b\n    match: { prefix: /b }\n    echo: {}\n"
                                             "  - name: a\n    match: { prefix: /c }\n    echo: {}\n"),
                        "test.yaml:12:11: duplicate route name 'a' (first at line 6)");
}

static void test_targets(void **state)
{
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /r }\n    upstream: u\n"
                                             "    respond: { body: x }\n"),
                        "test.yaml:9:5: route has more than one target ('upstream' and 'respond'): use exactly one");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /r }\n"),
                        "test.yaml:6:5: route needs a target: one of upstream, respond, echo, redirect");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /r }\n    redirect: { status: 301 }\n"),
                        "test.yaml:8:5: redirect needs 'to'");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /r }\n"
                                             "    redirect: { to: /x, status: 304 }\n"),
                        "test.yaml:8:33: expected one of 301, 302, 303, 307, 308");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /r }\n    echo: { verbose: true }\n"),
                        "test.yaml:8:13: unknown key 'verbose'");
    assert_string_equal(errors_of(ROUTE_HEAD "  - match: { prefix: /r }\n    echo: {}\n"),
                        "test.yaml:6:5: route needs a name");
}

static void test_match_errors(void **state)
{
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { methods: [GET] }\n    echo: {}\n"),
                        "test.yaml:7:5: match needs one of prefix, path or regex");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    echo: {}\n"), "test.yaml:6:5: route needs a match");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /a, path: /b }\n    echo: {}\n"),
                        "test.yaml:7:26: match takes only one of prefix, path or regex");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: users }\n    echo: {}\n"),
                        "test.yaml:7:22: invalid prefix 'users': it must start with '/'");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /a, host: \"api.*.com\" }\n    echo: {}\n"),
                        "test.yaml:7:32: invalid host 'api.*.com': a wildcard is only allowed as a leading '*.'");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /a, host: \"api.com:80\" }\n    echo: {}\n"),
                        "test.yaml:7:32: invalid host 'api.com:80' (use a name like api.example.com or *.example.com)");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /a, methods: [GET, \"B@D\", get] }\n"
                                             "    echo: {}\n"),
                        "test.yaml:7:41: invalid method 'B@D'\n"
                        "test.yaml:7:48: duplicate method 'GET'");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /a, headers: { \"X Y\": 1 } }\n"
                                             "    echo: {}\n"),
                        "test.yaml:7:37: invalid header name 'X Y'");
}

static void test_path_templates(void **state)
{
    static const struct { const char *path, *error; } cases[] = {
        { "/a/x{id}", "a parameter must be a whole segment" },
        { "/a/{id}x", "a parameter must be a whole segment" },
        { "/a/{id", "unbalanced braces" },
        { "/a/id}", "unbalanced braces" },
        { "/a/{{id}}", "unbalanced braces" },
        { "/a/{}", "invalid parameter name '{}'" },
        { "/a/{x/y}", "a parameter name cannot contain '/'" },
        { "/a/{1x}", "invalid parameter name '{1x}'" },
        { "/{rest*}/b", "'{rest*}' must be the last segment" },
        { "/{id}/{id}", "parameter 'id' appears twice" },
        { "a/{id}", "it must start with '/'" },
        { "/a//b", "'//', '.' and '..' segments never match a normalized path" },
        { "/a/../b", "'//', '.' and '..' segments never match a normalized path" },
        { "/a b", "spaces, control characters, '\\', '?' and '#' are not allowed" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512], want[256];
        snprintf(yaml, sizeof(yaml), ROUTE_HEAD "  - name: r\n    match:\n      path: \"%s\"\n    echo: {}\n",
                 cases[i].path);
        snprintf(want, sizeof(want), "test.yaml:8:13: invalid path template '%s': %s", cases[i].path, cases[i].error);
        assert_string_equal(errors_of(yaml), want);
    }
    gh_diag d;
    gh_config *cfg = load_ok(ROUTE_HEAD "  - name: r\n    match: { path: \"/users/{id}/{rest*}\" }\n    echo: {}\n"
                             "  - name: s\n    match: { path: \"/users/\" }\n    echo: {}\n", &d);
    assert_string_equal(cfg->routes[0].match.path.p, "/users/{id}/{rest*}");
    assert_string_equal(cfg->routes[1].match.path.p, "/users/");   /* exact: trailing slash kept */
    gh_config_free(cfg);
    gh_diag_free(&d);
}

static void test_rewrite(void **state)
{
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { path: /a }\n    upstream: u\n"
                                             "    rewrite: { strip_prefix: true }\n"),
                        "test.yaml:9:16: strip_prefix needs match.prefix");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { regex: \"^/a\" }\n    upstream: u\n"
                                             "    rewrite:\n      strip_prefix: true\n"),
                        "test.yaml:10:7: strip_prefix needs match.prefix");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { path: \"/u/{id}\" }\n    upstream: u\n"
                                             "    rewrite: { path: \"/v2/{uid}\" }\n"),
                        "test.yaml:9:22: rewrite path uses '{uid}', which match.path does not define");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /u }\n    upstream: u\n"
                                             "    rewrite: { path: \"/v2/{id}\" }\n"),
                        "test.yaml:9:22: rewrite path uses '{id}', but a prefix route only provides {rest}");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { path: \"/u/{id}\" }\n"
                                             "    redirect: { to: \"https://example.com/{uid}\" }\n"),
                        "test.yaml:8:21: redirect uses '{uid}', which match.path does not define");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /u }\n    upstream: u\n"
                                             "    rewrite: { prefix: internal }\n"),
                        "test.yaml:9:24: invalid rewrite prefix 'internal': it must be a path starting with '/'");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /u }\n    upstream: u\n"
                                             "    rewrite: { strip_prefix: true, path: /x }\n"),
                        "test.yaml:9:36: rewrite takes either path, or strip_prefix and prefix");
    gh_diag d;
    gh_config *cfg = load_ok(ROUTE_HEAD "  - name: r\n    match: { regex: \"^/u/(?<id>[0-9]+)$\" }\n    upstream: u\n"
                             "    rewrite: { path: \"/users/{id}\" }\n", &d);
    assert_string_equal(cfg->routes[0].rewrite.path.p, "/users/{id}");
    assert_int_equal(cfg->routes[0].rewrite.mark.line, 9);
    gh_config_free(cfg);
    gh_diag_free(&d);
    cfg = load_ok(ROUTE_HEAD "  - name: r\n    match: { prefix: /old }\n    upstream: u\n"
                  "    rewrite: { path: \"/new/{rest}\" }\n"
                  "  - name: s\n    match: { prefix: /docs }\n    redirect: { to: \"https://example.com/{rest}\" }\n", &d);
    assert_string_equal(cfg->routes[0].rewrite.path.p, "/new/{rest}");
    assert_string_equal(cfg->routes[1].redirect.to.p, "https://example.com/{rest}");
    gh_config_free(cfg);
    gh_diag_free(&d);
}

/* {host} (the request's host) in redirect.to on every kind of route; never in rewrite.path. */
static void test_redirect_host(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(ROUTE_HEAD "  - name: r\n    match: { prefix: /old }\n"
                             "    redirect: { to: \"https://{host}/{rest}\", status: 308 }\n"
                             "  - name: s\n    match: { path: \"/u/{id}\" }\n"
                             "    redirect: { to: \"https://{host}/users/{id}\" }\n", &d);
    assert_string_equal(cfg->routes[0].redirect.to.p, "https://{host}/{rest}");
    gh_config_free(cfg);
    gh_diag_free(&d);
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /u }\n"
                                             "    redirect: { to: \"https://{hots}/{rest}\" }\n"),
                        "test.yaml:8:21: redirect uses '{hots}', but a prefix route only provides {rest} and {host}");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /u }\n    upstream: u\n"
                                             "    rewrite: { path: \"/{host}/{rest}\" }\n"),
                        "test.yaml:9:22: rewrite path uses '{host}', but a prefix route only provides {rest}");
}

static void test_case_insensitive(void **state)
{
    gh_diag d;
    gh_config *cfg = load_ok(ROUTE_HEAD "  - name: r\n    match: { prefix: /Private, case_insensitive: true }\n"
                             "    upstream: u\n  - name: s\n    match: { prefix: /s }\n    upstream: u\n", &d);
    assert_true(cfg->routes[0].match.case_insensitive);
    assert_false(cfg->routes[1].match.case_insensitive);
    gh_config_free(cfg);
    gh_diag_free(&d);
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /p, case_insensitive: maybe }\n"
                                             "    upstream: u\n"),
                        "test.yaml:7:44: expected true or false, got \"maybe\"");
}

static void test_header_values(void **state)
{
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /r }\n"
                                             "    respond: { headers: { X-A: \"a\\r\\nB: c\" } }\n"),
                        "test.yaml:8:32: invalid header value: CR and LF are not allowed");
    assert_string_equal(errors_of(ROUTE_HEAD "  - name: r\n    match: { prefix: /r }\n    upstream: u\n"
                                             "    response_headers: { set: { X-A: 1, x-a: 2 } }\n"),
                        "test.yaml:9:40: duplicate header 'x-a'");
}

static void test_all_errors_in_file_order(void **state)
{
    const char *e = errors_of("listen:\n  - address: 127.0.0.1:80\n"
                              "routes:\n  - name: r\n    match: { prefix: /r }\n    upstream: nope\n"
                              "workers: 1000\n"
                              "upstreams:\n  u: { targets: [bad] }\n");
    assert_string_equal(e, "test.yaml:6:5: upstream 'nope' is not defined\n"
                           "test.yaml:7:10: expected auto or an integer between 1 and 256, got 1000\n"
                           "test.yaml:9:18: invalid address 'bad' (use host:port or [v6]:port)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_workers),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_env_interpolation),
        cmocka_unit_test(test_env_unset),
        cmocka_unit_test(test_unknown_key_hint),
        cmocka_unit_test(test_not_yet_supported_keys),
        cmocka_unit_test(test_aggregate_and_batch_keys),
        cmocka_unit_test(test_admin_keys),
        cmocka_unit_test(test_redis),
        cmocka_unit_test(test_wrong_kinds),
        cmocka_unit_test(test_bad_units),
        cmocka_unit_test(test_wrong_value_is_named),
        cmocka_unit_test(test_unknown_plugin_lists_the_known_ones),
        cmocka_unit_test(test_diag_without_position),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_underscores_in_headers),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_yaml_aliases),
        cmocka_unit_test(test_yaml_single_quoted),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_upstream_errors),
        cmocka_unit_test(test_undefined_upstream),
        cmocka_unit_test(test_duplicate_route_names),
        cmocka_unit_test(test_duplicate_route_names_among_many),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_match_errors),
        cmocka_unit_test(test_path_templates),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_redirect_host),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_header_values),
        cmocka_unit_test(test_all_errors_in_file_order),
        cmocka_unit_test(test_upstream_traffic_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
