/* test_plugins.c — the plugin chain driven in-process (no sockets): a
 * configuration loaded from YAML, compiled as a snapshot would, and
 * exchanges whose answers a fake downstream records. One group per plugin,
 * plus the chain's own rules (phase order, the first credential decides,
 * 401 with every challenge, WAIT and resume, route overrides). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include "plugins/consumers.h"
#include "plugins/plugin.h"

static gh_http_env env;
static uv_loop_t loop;

/* ---- a downstream that records the response ---- */
typedef struct answer {
    int status;
    char headers[2048];           /* "Name: value\n" each */
    char body[1024];
    bool passed;                  /* the chain reached its end (the target would run) */
} answer;

static answer ans;

static int rec_head(gh_exchange *ex, int status, const gh_header *h, size_t n, int64_t cl)
{
    ans.status = status;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(ans.headers + k, sizeof(ans.headers) - k, "%.*s: %.*s\n", (int)h[i].name_len,
                              h[i].name, (int)h[i].value_len, h[i].value);
    return GH_OK;
}
static int rec_body(gh_exchange *ex, const char *p, size_t len)
{
    snprintf(ans.body, sizeof(ans.body), "%.*s", (int)len, p);
    return GH_OK;
}
static int rec_finish(gh_exchange *ex) { return GH_OK; }
static const gh_downstream_ops rec_ops = { .send_head = rec_head, .send_body = rec_body, .finish = rec_finish };

/* ---- a configuration compiled as a snapshot would ---- */
typedef struct world {
    gh_config *cfg;
    gh_consumers *consumers;
    gh_plugin_slots slots;
} world;

static world load(const char *yaml)
{
    gh_diag d;
    gh_diag_init(&d, "t.yaml");
    world w = { 0 };
    w.cfg = gh_config_load_string("t.yaml", yaml, strlen(yaml), &d);
    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "%s\n", d.items[i].text);
    assert_non_null(w.cfg);
    assert_true(gh_plugins_compile(w.cfg, &w.consumers, &w.slots, &d));
    gh_diag_free(&d);
    return w;
}

static void unload(world *w)
{
    gh_plugins_release(w->cfg, w->consumers, &w->slots);
    gh_config_free(w->cfg);
}

/* Errors of a configuration that must not load (load or compile). */
static char *errors_of(const char *yaml, char *out, size_t cap)
{
    gh_diag d;
    gh_diag_init(&d, "t.yaml");
    out[0] = '\0';
    gh_config *cfg = gh_config_load_string("t.yaml", yaml, strlen(yaml), &d);
    gh_consumers *cs = NULL;
    if (cfg) {
        gh_plugin_slots sl;
        gh_plugins_compile(cfg, &cs, &sl, &d);
        gh_plugins_release(cfg, cs, &sl);
        gh_config_free(cfg);
    }
    size_t k = 0;
    for (size_t i = 0; i < d.n; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s\n", d.items[i].text);
    gh_diag_free(&d);
    return out;
}

static void passed(gh_plugin_run *run) { ans.passed = true; }

static uint64_t next_body;   /* run_chain: the request has a body of this many bytes */

/* Run route `ri`'s chain on a request "METHOD /path?query" with headers "A: b\n...". */
static gh_exchange *run_chain(world *w, size_t ri, const char *method, const char *query, const char *hdrs,
                              const char *client, const char *cert)
{
    memset(&ans, 0, sizeof(ans));
    gh_exchange *ex = gh_exchange_new(&env);
    ex->down = &rec_ops;
    if (next_body) {
        ex->body_kind = GH_BODY_LENGTH;
        ex->content_length = next_body;
        ex->body_done = false;
    }
    ex->method = gh_str_c(method);
    ex->method_bit = strcmp(method, "OPTIONS") == 0 ? GH_M_OPTIONS : strcmp(method, "POST") == 0 ? GH_M_POST : GH_M_GET;
    ex->query = gh_str_c(query);
    ex->log.route = w->cfg->routes[ri].name;
    snprintf(ex->client, sizeof(ex->client), "%s", client ? client : "127.0.0.1");
    gh_exchange_put_request_id(ex, "00000000000000000000000000000001", 32);
    if (cert)
        ex->client_cert = gh_str_c(cert);
    static gh_header hs[16];
    static char copy[1024];
    snprintf(copy, sizeof(copy), "%s", hdrs ? hdrs : "");
    size_t n = 0;
    for (char *line = strtok(copy, "\n"); line && n < 16; line = strtok(NULL, "\n")) {
        char *colon = strchr(line, ':');
        hs[n++] = (gh_header){ line, colon + 2, (uint32_t)(colon - line), (uint32_t)strlen(colon + 2) };
    }
    ex->headers = hs;
    ex->nheaders = n;
    gh_plugin_run *run = gh_arena_alloc(&ex->arena, sizeof(*run));
    memset(run, 0, sizeof(*run));
    run->ex = ex;
    run->chain = &w->cfg->routes[ri].chain;
    run->consumers = w->consumers;
    run->done = passed;
    gh_plugin_chain_start(run);
    while (!ans.passed && ans.status == 0 && uv_run(&loop, UV_RUN_ONCE))
        ;   /* a WAITing step (basic_auth's thread pool) */
    return ex;
}

static bool has_header(const char *name_value) { return strstr(ans.headers, name_value) != NULL; }

static const char *forwarded(gh_exchange *ex, const char *name)
{
    const gh_header *h = gh_exchange_header(ex, name, strlen(name));
    static char v[256];
    if (!h)
        return NULL;
    snprintf(v, sizeof(v), "%.*s", (int)h->value_len, h->value);
    return v;
}

/* ------------------------------------------------------------- tests */

static const char keyed[] =
    "listen: [{ address: 127.0.0.1:1 }]\n"
    "consumers:\n"
    "  - { name: alice, groups: [admins, beta], api_keys: [alice-key-123456] }\n"
    "  - { name: bob, groups: [banned], api_keys: [{ sha256: "
    "\"6c3e7bcd1d9ebd5b4cfcd9b0ef5fe2b4bb87a1ec3f4b5f1d5ff1e5b5b0d4a1c1\" }] }\n"
    "routes:\n"
    "  - name: k\n"
    "    match: { prefix: /k }\n"
    "    echo: {}\n"
    "    plugins: { key_auth: { query: api_key, header: X-API-Key, hide_credentials: true },\n"
    "               acl: { allow: [admins, banned], deny: [banned] } }\n";

static void test_key_auth(void **state)
{
    world w = load(keyed);
    gh_exchange *ex = run_chain(&w, 0, "GET", "", "X-API-Key: alice-key-123456", NULL, NULL);
    assert_true(ans.passed);
    assert_true(gh_str_eq_c(ex->log.consumer, "alice"));
    assert_true(gh_str_eq_c(ex->consumer_groups, "admins,beta"));
    assert_null(forwarded(ex, "X-API-Key"));   /* hide_credentials */
    gh_exchange_free(ex);

    ex = run_chain(&w, 0, "GET", "a=1&api_key=alice%2Dkey-123456&b=2", NULL, NULL, NULL);
    assert_true(ans.passed);
    assert_true(gh_str_eq_c(ex->query, "a=1&b=2"));
    gh_exchange_free(ex);

    ex = run_chain(&w, 0, "GET", "", "X-API-Key: alice-key-123457", NULL, NULL);
    assert_int_equal(ans.status, 401);
    assert_true(has_header("WWW-Authenticate: Key realm=\"gatehouse\""));
    assert_non_null(strstr(ans.body, "\"code\":\"unauthorized\""));
    assert_null(strstr(ans.body, "alice-key"));   /* the secret is never echoed */
    gh_exchange_free(ex);

    ex = run_chain(&w, 0, "GET", "", NULL, NULL, NULL);
    assert_int_equal(ans.status, 401);
    assert_non_null(strstr(ans.body, "no credentials"));
    gh_exchange_free(ex);
    unload(&w);
}

static void test_sha256_key_and_acl_deny_wins(void **state)
{
    world w = load(keyed);
    /* bob's key is stored as a digest only; which key it is does not matter
     * here: an unknown key is refused like any other */
    gh_exchange *ex = run_chain(&w, 0, "GET", "", "X-API-Key: not-bobs-key", NULL, NULL);
    assert_int_equal(ans.status, 401);
    gh_exchange_free(ex);
    unload(&w);

    /* a digest of a known key authenticates; then deny beats allow */
    uint8_t d[32];
    gh_sha256("bob-key-12345678", 16, d);
    char yaml[2048], hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    snprintf(yaml, sizeof(yaml),
             "listen: [{ address: 127.0.0.1:1 }]\n"
             "consumers:\n"
             "  - { name: bob, groups: [banned], api_keys: [{ sha256: \"%s\" }] }\n"
             "routes:\n"
             "  - { name: k, match: { prefix: /k }, echo: {},\n"
             "      plugins: { key_auth: {}, acl: { allow: [banned], deny: [banned] } } }\n", hex);
    w = load(yaml);
    ex = run_chain(&w, 0, "GET", "", "X-API-Key: bob-key-12345678", NULL, NULL);
    assert_int_equal(ans.status, 403);
    assert_non_null(strstr(ans.body, "\"code\":\"forbidden\""));
    assert_true(gh_str_eq_c(ex->log.consumer, "bob"));
    gh_exchange_free(ex);
    unload(&w);
}

static void test_ip_filter_and_override(void **state)
{
    world w = load("listen: [{ address: 127.0.0.1:1 }]\n"
                   "plugins: { ip_filter: { allow: [10.0.0.0/8, \"::1\"], deny: [10.9.0.0/16] } }\n"
                   "routes:\n"
                   "  - { name: a, match: { prefix: /a }, echo: {} }\n"
                   "  - { name: b, match: { prefix: /b }, echo: {}, plugins: { ip_filter: false } }\n");
    gh_exchange *ex = run_chain(&w, 0, "GET", "", NULL, "10.1.2.3", NULL);
    assert_true(ans.passed);
    gh_exchange_free(ex);
    ex = run_chain(&w, 0, "GET", "", NULL, "::1", NULL);
    assert_true(ans.passed);
    gh_exchange_free(ex);
    ex = run_chain(&w, 0, "GET", "", NULL, "10.9.1.1", NULL);
    assert_int_equal(ans.status, 403);
    gh_exchange_free(ex);
    ex = run_chain(&w, 0, "GET", "", NULL, "192.0.2.1", NULL);
    assert_int_equal(ans.status, 403);
    gh_exchange_free(ex);
    ex = run_chain(&w, 1, "GET", "", NULL, "192.0.2.1", NULL);   /* turned off on the route */
    assert_true(ans.passed);
    gh_exchange_free(ex);
    unload(&w);
}

static void test_mtls_auth(void **state)
{
    world w = load("listen:\n"
                   "  - address: 127.0.0.1:1\n"
                   "    tls: { certificates: [{ cert: /nonexistent.pem, key: /nonexistent.key }],"
                   " client_ca: /nonexistent-ca.pem }\n"
                   "consumers: [{ name: billing, mtls_subject: \"CN=billing,O=Example\" }]\n"
                   "routes: [{ name: m, match: { prefix: /m }, echo: {}, plugins: { mtls_auth: {} } }]\n");
    gh_exchange *ex = run_chain(&w, 0, "GET", "", NULL, NULL, "CN=billing,O=Example");
    assert_true(ans.passed);
    assert_true(gh_str_eq_c(ex->log.consumer, "billing"));
    gh_exchange_free(ex);
    ex = run_chain(&w, 0, "GET", "", NULL, NULL, "CN=other,O=Example");
    assert_int_equal(ans.status, 401);
    gh_exchange_free(ex);
    ex = run_chain(&w, 0, "GET", "", NULL, NULL, NULL);
    assert_int_equal(ans.status, 401);
    assert_true(has_header("WWW-Authenticate: ClientCertificate"));
    gh_exchange_free(ex);
    unload(&w);
}

static void test_basic_auth_waits_and_first_credential_decides(void **state)
{
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    const char *hash = crypt_r("s3cret", "$6$saltsaltsalt$", &cd);
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "listen: [{ address: 127.0.0.1:1 }]\n"
             "consumers:\n"
             "  - { name: carol, api_keys: [carol-key-123456], basic: { username: carol, password_hash: \"%s\" } }\n"
             "routes:\n"
             "  - { name: b, match: { prefix: /b }, echo: {},\n"
             "      plugins: { basic_auth: { realm: api, hide_credentials: true }, key_auth: {} } }\n", hash);
    world w = load(yaml);
    /* "carol:s3cret" */
    gh_exchange *ex = run_chain(&w, 0, "GET", "", "Authorization: Basic Y2Fyb2w6czNjcmV0", NULL, NULL);
    assert_true(ans.passed);
    assert_true(gh_str_eq_c(ex->log.consumer, "carol"));
    assert_null(forwarded(ex, "Authorization"));
    gh_exchange_free(ex);
    /* a wrong password: 401 after the thread pool answered */
    ex = run_chain(&w, 0, "GET", "", "Authorization: Basic Y2Fyb2w6d3Jvbmc=", NULL, NULL);
    assert_int_equal(ans.status, 401);
    assert_true(has_header("WWW-Authenticate: Basic realm=\"api\""));
    gh_exchange_free(ex);
    /* key_auth runs first and decides; basic is not consulted */
    ex = run_chain(&w, 0, "GET", "", "X-API-Key: carol-key-123456\nAuthorization: Basic Y2Fyb2w6d3Jvbmc=",
                   NULL, NULL);
    assert_true(ans.passed);
    gh_exchange_free(ex);
    /* nothing at all: one challenge per authenticator */
    ex = run_chain(&w, 0, "GET", "", NULL, NULL, NULL);
    assert_int_equal(ans.status, 401);
    assert_true(has_header("WWW-Authenticate: Key realm"));
    assert_true(has_header("WWW-Authenticate: Basic realm"));
    gh_exchange_free(ex);
    unload(&w);
}

static void test_cors_preflight_is_answered_before_auth(void **state)
{
    world w = load("listen: [{ address: 127.0.0.1:1 }]\n"
                   "consumers: [{ name: alice, api_keys: [alice-key-123456] }]\n"
                   "routes:\n"
                   "  - { name: c, match: { prefix: /c }, echo: {},\n"
                   "      plugins: { key_auth: {}, cors: { origins: [\"https://app.example.com\"] } } }\n");
    gh_exchange *ex = run_chain(&w, 0, "OPTIONS", "",
                                "Origin: https://app.example.com\nAccess-Control-Request-Method: GET", NULL, NULL);
    assert_int_equal(ans.status, 204);
    assert_true(has_header("Access-Control-Allow-Origin: https://app.example.com"));
    gh_exchange_free(ex);
    /* an actual request refused by key_auth still carries the CORS headers */
    ex = run_chain(&w, 0, "GET", "", "Origin: https://app.example.com", NULL, NULL);
    assert_int_equal(ans.status, 401);
    assert_true(has_header("Access-Control-Allow-Origin: https://app.example.com"));
    gh_exchange_free(ex);
    unload(&w);
}

/* The API key index: keys given as such (keyed SipHash tags) and as
 * { sha256: } (SHA-256 digests) are found in one snapshot; a near miss, a
 * prefix, an extension, a digest sent as the key and the empty key are not. */
static void test_key_index_finds_both_forms_and_nothing_else(void **state)
{
    world w = load("listen: [{ address: 127.0.0.1:1 }]\n"
                   "consumers:\n"
                   "  - { name: alice, api_keys: [alice-key-123456, alice-other-key-2] }\n"
                   "  - { name: bob, api_keys: [ { sha256: \"c5a5e5b0a5f0ab2c4b0c4a8b09e7a4b4ad10e1a0b4b4c63e7e2a1c3a4c2d6b11\" } ] }\n"
                   "  - { name: carol, api_keys: [carol-key-abcdef] }\n"
                   "routes: [{ name: r, match: { prefix: / }, echo: {} }]\n");
    const gh_consumers *cs = w.consumers;
    const gh_consumer_cfg *a = gh_consumers_by_key(cs, "alice-key-123456", 16);
    assert_non_null(a);
    assert_memory_equal(a->name.p, "alice", 5);
    assert_ptr_equal(gh_consumers_by_key(cs, "alice-other-key-2", 17), a);
    const gh_consumer_cfg *c = gh_consumers_by_key(cs, "carol-key-abcdef", 16);
    assert_non_null(c);
    assert_memory_equal(c->name.p, "carol", 5);
    assert_null(gh_consumers_by_key(cs, "alice-key-123457", 16));
    assert_null(gh_consumers_by_key(cs, "alice-key-12345", 15));
    assert_null(gh_consumers_by_key(cs, "alice-key-1234567", 17));
    assert_null(gh_consumers_by_key(cs, "", 0));
    unload(&w);

    /* a real digest: the key itself is found, its digest sent as a key is not */
    uint8_t d[32];
    char hex[65];
    gh_sha256("bob-secret-key-789", 18, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "listen: [{ address: 127.0.0.1:1 }]\n"
             "consumers:\n"
             "  - { name: alice, api_keys: [alice-key-123456] }\n"
             "  - { name: bob, api_keys: [ { sha256: \"%s\" } ] }\n"
             "routes: [{ name: r, match: { prefix: / }, echo: {} }]\n", hex);
    w = load(yaml);
    const gh_consumer_cfg *b = gh_consumers_by_key(w.consumers, "bob-secret-key-789", 18);
    assert_non_null(b);
    assert_memory_equal(b->name.p, "bob", 3);
    assert_null(gh_consumers_by_key(w.consumers, hex, 64));
    assert_non_null(gh_consumers_by_key(w.consumers, "alice-key-123456", 16));
    unload(&w);
}

/* One key given to two consumers is refused, in whichever forms it is given. */
static void test_key_given_twice_in_two_forms_is_refused(void **state)
{
    uint8_t d[32];
    char hex[65], yaml[1024], e[4096];
    gh_sha256("alice-key-123456", 16, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    snprintf(yaml, sizeof(yaml),
             "listen: [{ address: 127.0.0.1:1 }]\n"
             "consumers:\n"
             "  - { name: alice, api_keys: [alice-key-123456] }\n"
             "  - { name: bob, api_keys: [ { sha256: \"%s\" } ] }\n"
             "routes: [{ name: r, match: { prefix: / }, echo: {} }]\n", hex);
    errors_of(yaml, e, sizeof(e));
    assert_non_null(strstr(e, "this API key is already consumer 'alice''s"));
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "consumers:\n"
              "  - { name: alice, api_keys: [alice-key-123456] }\n"
              "  - { name: bob, api_keys: [alice-key-123456] }\n"
              "routes: [{ name: r, match: { prefix: / }, echo: {} }]\n", e, sizeof(e));
    assert_non_null(strstr(e, "this API key is already consumer 'alice''s"));
}

static void test_config_errors(void **state)
{
    char e[4096];
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "routes: [{ name: a, match: { prefix: /a }, echo: {}, plugins: { key_auht: {} } }]\n", e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:2:"));
    assert_non_null(strstr(e, "did you mean 'key_auth'"));
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "consumers:\n"
              "  - { name: a, api_keys: [same-key-123456] }\n"
              "  - { name: b, api_keys: [same-key-123456] }\n", e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:4:"));
    assert_non_null(strstr(e, "already consumer 'a'"));
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "consumers:\n"
              "  - { name: a, basic: { username: a, password_hash: hunter2 } }\n", e, sizeof(e));
    assert_non_null(strstr(e, "plaintext passwords are not accepted"));
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "plugins: { cors: { origins: [\"*\"], credentials: true } }\n", e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:2:36: cors: credentials: true cannot be used"));
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "plugins: { mtls_auth: {} }\n", e, sizeof(e));
    assert_non_null(strstr(e, "mtls_auth needs a listener with tls.client_ca"));
#define S32 "0123456789abcdef0123456789abcdef"
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "plugins: { jwt: { issuers: [{ issuer: x, secret: " S32 ", algorithms: [none] }] } }\n", e, sizeof(e));
    assert_non_null(strstr(e, "unknown algorithm 'none'"));
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "plugins: { jwt: { issuers: [{ issuer: x, secret: " S32 ", algorithms: [RS256] }] } }\n", e, sizeof(e));
    assert_non_null(strstr(e, "no key of this issuer can verify RS256"));
    /* RFC 7518 3.2, like short API keys: at the secret, with the minimum */
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "plugins: { jwt: { issuers: [{ issuer: x, secret: s }] } }\n", e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:2:50: the secret is 1 byte long; HS256 needs at least 32 bytes"));
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "plugins: { jwt: { issuers: [{ issuer: x, secret_base64: \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", "
              "algorithms: [HS256, HS384] }] } }\n", e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:2:57: the secret is 33 bytes long; HS384 needs at least 48 bytes"));
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "plugins: { jwt: { require: [exp, \"a b\"], issuers: [{ issuer: x, secret: " S32 " }] } }\n", e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:2:34: expected a claim name"));
#undef S32
    errors_of("listen: [{ address: 127.0.0.1:1 }]\n"
              "plugins: { ip_filter: { allow: [10.0.0.0/33] } }\n", e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:2:33: invalid address or network"));
}

/* request_validation (SPEC §5.4): every bad value at its line:col */
static void test_request_validation_config(void **state)
{
    char e[4096];
#define RV(x) "listen: [{ address: 127.0.0.1:1 }]\nplugins:\n  request_validation: " x "\n"
    errors_of(RV("{}"), e, sizeof(e));
    assert_string_equal(e, "t.yaml:3:3: request_validation checks nothing: set max_body, content_types, json, "
                           "required_headers or required_query\n");
    errors_of(RV("true"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:3: request_validation checks nothing"));
    errors_of(RV("{ max_body: 0 }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:35: expected a size greater than 0"));
    errors_of(RV("{ max_body: lots }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:35: expected a size like"));
    errors_of(RV("{ json: maybe }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:31: "));
    errors_of(RV("{ content_types: [application/json, \"text/html; charset=utf-8\"] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:59: request_validation content_types: 'text/html; charset=utf-8' has "
                              "parameters; list the bare media type"));
    errors_of(RV("{ content_types: [json] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:41: request_validation content_types: 'json' is not a media type"));
    errors_of(RV("{ content_types: [\"*/json\"] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:41: request_validation content_types: '*/json' is not a media type"));
    errors_of(RV("{ content_types: [text/plain, Text/Plain] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:53: request_validation content_types: 'text/plain' is listed twice"));
    errors_of(RV("{ content_types: [] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:40: request_validation content_types: list at least one media type"));
    errors_of(RV("{ required_headers: [X-Tenant, \"bad header\"] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:54: request_validation required_headers: 'bad header' is not a valid "
                              "header name"));
    errors_of(RV("{ required_headers: [x-a, X-A] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:49: request_validation required_headers: 'X-A' is listed twice"));
    errors_of(RV("{ required_query: [\"a=b\"] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:42: request_validation required_query: 'a=b' is not a query parameter name"));
    errors_of(RV("{ required_query: {} }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:41: expected a list"));
    errors_of(RV("{ max_bodyy: 1KiB }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:25: unknown key 'max_bodyy' (did you mean 'max_body'?)"));
#undef RV
}

/* cache (SPEC §7.3): every bad value at its line:col */
static void test_cache_config(void **state)
{
    char e[4096];
#define C(x) "listen: [{ address: 127.0.0.1:1 }]\nplugins:\n  cache: " x "\n"
    errors_of(C("{ ttl: 0s }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:17: expected a duration greater than 0"));
    errors_of(C("{ methods: [GET, POST] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:27: cache methods: 'POST' cannot be cached (use GET and/or HEAD)"));
    errors_of(C("{ methods: [] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:21: cache methods: list GET, HEAD or both"));
    errors_of(C("{ vary: [\"bad header\"] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:19: cache vary: 'bad header' is not a header name"));
    errors_of(C("{ key_headers: [X-A, x-a] }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:31: cache key_headers: 'x-a' is listed twice"));
    errors_of(C("{ store: disk }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:19: unknown cache store 'disk' (use memory or redis)"));
    errors_of(C("{ max_entry: 2MiB, size: 1MiB }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:23: cache max_entry (2097152 bytes) is larger than size (1048576 bytes)"));
    errors_of(C("{ collapse: sometimes }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:22: expected true or false"));
    errors_of(C("{ tll: 5s }"), e, sizeof(e));
    assert_non_null(strstr(e, "t.yaml:3:12: unknown key 'tll' (did you mean 'ttl'?)"));
    errors_of(C("{ ttl: 5s, vary: [Accept-Language], key_headers: [X-Tenant], store: memory }"), e, sizeof(e));
    assert_string_equal(e, "");
#undef C
}

static const char validated[] =
    "listen: [{ address: 127.0.0.1:1 }]\n"
    "routes:\n"
    "  - name: v\n"
    "    match: { prefix: /v }\n"
    "    echo: {}\n"
    "    plugins:\n"
    "      request_validation: { max_body: 1KiB, content_types: [application/json, \"text/*\"],\n"
    "                            required_headers: [X-Tenant], required_query: [page] }\n";

static void test_request_validation(void **state)
{
    world w = load(validated);
    gh_exchange *ex = run_chain(&w, 0, "GET", "x=1", "Accept: */*", NULL, NULL);
    assert_int_equal(ans.status, 400);
    assert_non_null(strstr(ans.body, "missing required header(s): X-Tenant; missing required query parameter(s): page"));
    gh_exchange_free(ex);
    ex = run_chain(&w, 0, "GET", "page=2", "x-tenant: a", NULL, NULL);   /* no body: no type to check */
    assert_true(ans.passed);
    assert_int_equal(ex->body_limit, 1024);   /* the bound every body consumer gets */
    gh_exchange_free(ex);

    /* a body: its media type, parameters ignored, case-insensitive, wildcards */
    static const struct { const char *ct; int status; } types[] = {
        { "Content-Type: application/json", 0 }, { "Content-Type: APPLICATION/Json ; charset=utf-8", 0 },
        { "Content-Type: text/csv", 0 },         { "Content-Type: application/xml", 415 },
        { "Content-Type: text", 415 },           { "X-None: 1", 415 },
    };
    next_body = 10;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char hdrs[128];
        snprintf(hdrs, sizeof(hdrs), "X-Tenant: a\n%s", types[i].ct);
        ex = run_chain(&w, 0, "POST", "page=1", hdrs, NULL, NULL);
        assert_int_equal(ans.status, types[i].status);
        assert_true(ans.passed == (types[i].status == 0));
        if (types[i].status)
            assert_non_null(strstr(ans.body, "\"unsupported_media_type\""));
        gh_exchange_free(ex);
    }
    /* over max_body by Content-Length: 413 at once */
    next_body = 1025;
    ex = run_chain(&w, 0, "POST", "page=1", "X-Tenant: a\nContent-Type: text/plain", NULL, NULL);
    assert_int_equal(ans.status, 413);
    assert_non_null(strstr(ans.body, "request body of 1025 bytes exceeds max_body (1024 bytes)"));
    gh_exchange_free(ex);
    next_body = 0;
    unload(&w);
}

int main(void)
{
    uv_loop_init(&loop);
    env.loop = &loop;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_auth),
        cmocka_unit_test(test_sha256_key_and_acl_deny_wins),
        cmocka_unit_test(test_ip_filter_and_override),
        cmocka_unit_test(test_mtls_auth),
        cmocka_unit_test(test_basic_auth_waits_and_first_credential_decides),
        cmocka_unit_test(test_cors_preflight_is_answered_before_auth),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_request_validation_config),
        cmocka_unit_test(test_cache_config),
        cmocka_unit_test(test_request_validation),
        cmocka_unit_test(test_key_index_finds_both_forms_and_nothing_else),
        cmocka_unit_test(test_key_given_twice_in_two_forms_is_refused),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    gh_exchange_cache_clear(&env);
    uv_loop_close(&loop);
    return r;
}
