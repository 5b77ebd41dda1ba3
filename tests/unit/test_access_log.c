/* test_access_log.c — the access-log line (observe/access_log.c): every
 * field, milliseconds by integer arithmetic, credentials masked in the
 * query, strings escaped to valid JSON whatever the bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "config/config.h"
#include "core/diag.h"
#include "http/status.h"
#include "observe/access_log.h"

static char path[] = "/tmp/gh-access-log-XXXXXX";

static gh_config *load(const char *yaml)
{
    gh_diag d;
    gh_diag_init(&d, "test.yaml");
    gh_config *cfg = gh_config_load_string("test.yaml", yaml, strlen(yaml), &d);
    assert_non_null(cfg);
    gh_diag_free(&d);
    return cfg;
}

/* One line for ex, as written. */
static char *line_of(gh_exchange *ex)
{
    static char buf[8192];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(gh_access_log_open(path), 0);
    gh_access_log al;
    gh_access_log_init(&al);
    gh_access_log_add(&al, ex, uv_hrtime());
    gh_access_log_free(&al);   /* flushes */
    gh_access_log_open("off");
    FILE *f = fopen(path, "r");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    unlink(path);
    strcpy(path, "/tmp/gh-access-log-XXXXXX");
    buf[n] = 0;
    return buf;
}

static void test_fields(void **state)
{
    (void)state;
    gh_config *cfg = load("listen: [ { address: 127.0.0.1:8080 } ]\n"
                          "routes:\n  - { name: r, match: { prefix: / }, echo: {}, plugins: { key_auth: { query: cred } } }\n");
    static gh_exchange ex;
    memset(&ex, 0, sizeof(ex));
    ex.cfg = cfg;
    ex.start_ns = uv_hrtime();
    strcpy(ex.client, "192.0.2.1");
    strcpy(ex.request_id, "abc");
    /* the trace the upstream was sent (observe/trace.c) */
    strcpy(ex.trace.parent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    ex.trace.set = true;
    ex.method = GH_STR("GET");
    ex.host = GH_STR("api.test");
    ex.path = GH_STR("/p\"q");
    ex.query = GH_STR("a=1&CRED=s3&token=t&x");
    ex.minor = 2;
    gh_header ua = { "User-Agent", "a\xff\x01", 10, 3 };
    ex.headers = &ua;
    ex.nheaders = 1;
    ex.status = 200;
    ex.bytes_out = 12345678901ull;
    ex.log.route = GH_STR("r");
    ex.log.tls = "TLSv1.3";
    ex.log.attempts = 2;
    ex.log.upstream_us = 1005;
    ex.log.error = "upstream_error";
    char *l = line_of(&ex);
    assert_non_null(strstr(l, "\"request_id\":\"abc\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
                              "\"client\":\"192.0.2.1\",\"method\":\"GET\",\"host\":\"api.test\",\"path\":\"/p\\\"q\","
                              "\"query\":\"a=1&CRED=***&token=***&x\",\"protocol\":\"HTTP/2\",\"tls\":\"TLSv1.3\","
                              "\"user_agent\":\"a\\ufffd\\u0001\",\"status\":200,\"bytes_in\":0,"
                              "\"bytes_out\":12345678901,\"duration_ms\":"));
    assert_non_null(strstr(l, ",\"route\":\"r\",\"consumer\":null,\"version\":null,\"upstream\":null,\"target\":null,"
                              "\"attempts\":2,\"upstream_ms\":1.005,\"cache\":null,\"error\":\"upstream_error\"}\n"));
    assert_true(strncmp(l, "{\"ts\":\"", 7) == 0 && l[30] == 'Z' && l[26] == '.');
    /* HTTP/1.0, no query, no upstream */
    ex.minor = 0;
    ex.query = (gh_str){ 0 };
    ex.log.upstream_us = -1;
    ex.log.attempts = 0;
    ex.log.tls = NULL;
    l = line_of(&ex);
    assert_non_null(strstr(l, "\"query\":null,\"protocol\":\"HTTP/1.0\",\"tls\":null,"));
    assert_non_null(strstr(l, "\"attempts\":0,\"upstream_ms\":null,"));
    ex.log.upstream_us = 0;
    assert_non_null(strstr(line_of(&ex), "\"upstream_ms\":0.000,"));
    ex.log.upstream_us = 120034;
    assert_non_null(strstr(line_of(&ex), "\"upstream_ms\":120.034,"));
    /* no upstream was called: the log starts the trace */
    static gh_http_env env;
    env.rng[0] = 1;
    env.rng[1] = 2;
    ex.env = &env;
    ex.trace.set = false;
    l = strstr(line_of(&ex), "\"trace_id\":\"");
    assert_non_null(l);
    assert_int_equal(strspn(l + 12, "0123456789abcdef"), 32);
    assert_memory_not_equal(l + 12, "4bf92f3577b34da6a3ce929d0e0e4736", 32);
    gh_config_free(cfg);
}

static void test_secret_params(void **state)
{
    (void)state;
    gh_config *cfg = load("listen: [ { address: 127.0.0.1:8080 } ]\n"
                          "routes:\n  - { name: r, match: { prefix: / }, echo: {}, plugins: { key_auth: { query: my_key } } }\n");
    assert_true(gh_config_is_secret_param(cfg, GH_STR("my_key")));
    assert_true(gh_config_is_secret_param(cfg, GH_STR("MY_KEY")));
    assert_true(gh_config_is_secret_param(NULL, GH_STR("access_token")));
    assert_true(gh_config_is_secret_param(NULL, GH_STR("Signature")));
    assert_false(gh_config_is_secret_param(NULL, GH_STR("my_key")));
    assert_false(gh_config_is_secret_param(cfg, GH_STR("page")));
    assert_false(gh_config_is_secret_param(cfg, GH_STR("keys")));
    gh_config_free(cfg);
}

static void test_json_escape_keeps_utf8_and_replaces_the_rest(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } rows[] = {
        { "plain", "plain" },
        { "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" },   /* é € 😀 */
        { "\xc0\xaf", "\\ufffd\\ufffd" },              /* overlong '/' */
        { "\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd" },   /* a surrogate */
        { "\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd" },   /* past U+10FFFF */
        { "\xe2\x82", "\\ufffd\\ufffd" },              /* cut short */
        { "\"\\\n\x7f", "\\\"\\\\\\n\\u007f" },
        /* 8 bytes at a time: each kind of byte that needs care, in and across words */
        { "abcdefgh\"ijklmnop", "abcdefgh\\\"ijklmnop" },
        { "abcdefghijklmno\\p", "abcdefghijklmno\\\\p" },
        { "abcdefghijklm\x01nopqr", "abcdefghijklm\\u0001nopqr" },
        { "abcdefghij\x7fklmnop", "abcdefghij\\u007fklmnop" },
        { "abcdefgh\xc3\xa9ijklmnopqrstu", "abcdefgh\xc3\xa9ijklmnopqrstu" },
        { "0123456789abcdef0123456789ABCDEF", "0123456789abcdef0123456789ABCDEF" },
        { " !#$%&'()*+,-./[]^_`{|}~", " !#$%&'()*+,-./[]^_`{|}~" },
    };
    char out[64];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t n = gh_json_escape(out, sizeof(out), rows[i].in, strlen(rows[i].in));
        assert_true(n != (size_t)-1);
        out[n] = 0;
        assert_string_equal(out, rows[i].out);
    }
    assert_int_equal(gh_json_escape(out, 5, "\xff", 1), (size_t)-1);
    assert_int_equal(gh_json_escape(out, 9, "0123456789", 10), (size_t)-1);   /* the fast path checks room too */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_secret_params),
        cmocka_unit_test(test_json_escape_keeps_utf8_and_replaces_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
