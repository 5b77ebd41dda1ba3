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
#include <jansson.h>
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
    gh_exchange_put_request_id(&ex, "abc", 3);
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

/* The word test says exactly whether any of 8 bytes needs care: every byte
 * at every position among clean fillers, and every pair of bytes. */
static void test_word_check_matches_the_table(void **state)
{
    (void)state;
    for (unsigned f = 0x20; f < 0x7f; f++) {
        if (gh_json_care[f])
            continue;
        for (unsigned b = 0; b < 256; b++)
            for (int i = 0; i < 8; i++) {
                unsigned char w8[8];
                memset(w8, (int)f, 8);
                w8[i] = (unsigned char)b;
                uint64_t w;
                memcpy(&w, w8, 8);
                assert_int_equal(gh_json_word_needs_care(w), gh_json_care[b] != 0);
            }
    }
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++)
            for (int i = 0; i < 8; i++)
                for (int j = i + 1; j < 8; j++) {
                    unsigned char w8[8] = "abcdefgh";
                    w8[i] = (unsigned char)a;
                    w8[j] = (unsigned char)b;
                    uint64_t w;
                    memcpy(&w, w8, 8);
                    if (gh_json_word_needs_care(w) != ((gh_json_care[a] | gh_json_care[b]) != 0))
                        fail_msg("bytes %02x at %d, %02x at %d", a, i, b, j);
                }
}

/* What a JSON parser reads back for s: s itself, each byte that is not
 * UTF-8 replaced by U+FFFD. */
static size_t expected(char *out, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0xc3 && i + 1 < n && (unsigned char)s[i + 1] == 0xa9) {
            out[o++] = s[i++];
            out[o++] = s[i];
        } else if (c >= 0x80) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

static void check_field(const char *l, const char *key, const char *s, size_t n)
{
    json_error_t err;
    json_t *j = json_loads(l, 0, &err);
    if (!j)
        fail_msg("not JSON (%s): %s", err.text, l);
    json_t *v = json_object_get(j, key);
    assert_true(json_is_string(v));
    static char want[8 * 16384];
    size_t wn = expected(want, s, n);
    assert_int_equal(json_string_length(v), wn);
    assert_memory_equal(json_string_value(v), want, wn);
    json_decref(j);
}

/* Header-derived and configuration strings of every short length, with a
 * byte that needs care (or a valid two-byte UTF-8 character) at every
 * position: each fast path (1-3 bytes, 4-7, words with an overlapping
 * last word) and the fall back to full escaping give the same JSON. */
static void test_fields_escaped_at_every_length(void **state)
{
    (void)state;
    static const char *specials[] = { "\"", "\\", "\n", "\x01", "\x1f", "\x7f", "\xff", "\x80", "\xc3\xa9", "z" };
    static gh_exchange ex;
    memset(&ex, 0, sizeof(ex));
    ex.start_ns = uv_hrtime();
    strcpy(ex.client, "2001:db8::1");
    gh_exchange_put_request_id(&ex, "0123456789abcdef0123456789abcdef", 32);
    ex.trace.set = true;
    strcpy(ex.trace.parent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    ex.method = GH_STR("GET");
    ex.status = 200;
    ex.log.upstream_us = -1;
    char v[64];
    gh_header ua = { "User-Agent", v, 10, 0 };
    ex.headers = &ua;
    ex.nheaders = 1;
    for (size_t len = 1; len <= 26; len++)
        for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++)
            for (size_t pos = 0; pos < len; pos++) {
                size_t sl = strlen(specials[k]);
                if (pos + sl > len)
                    continue;
                for (size_t i = 0; i < len; i++)
                    v[i] = (char)('A' + i);
                memcpy(v + pos, specials[k], sl);
                ua.value_len = (uint32_t)len;
                ex.path = gh_str_from(v, len);
                ex.log.route = gh_str_from(v, len);
                char *l = line_of(&ex);
                check_field(l, "user_agent", v, len);
                check_field(l, "path", v, len);
                check_field(l, "route", v, len);
                check_field(l, "request_id", ex.request_id, 32);
                check_field(l, "client", ex.client, strlen(ex.client));
            }
    /* an empty header value is "", an empty route null */
    ua.value_len = 0;
    ex.log.route = (gh_str){ 0 };
    char *l = line_of(&ex);
    assert_non_null(strstr(l, "\"user_agent\":\"\","));
    assert_non_null(strstr(l, "\"route\":null,"));
    /* a long value, every byte escaped to 6: the line grows its buffer */
    static char big[12000];
    memset(big, 0x01, sizeof(big));
    ex.path = gh_str_from(big, sizeof(big));
    ua.value = big;
    ua.value_len = sizeof(big);
    static char bigline[160 * 1024];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(gh_access_log_open(path), 0);
    gh_access_log al;
    gh_access_log_init(&al);
    gh_access_log_add(&al, &ex, uv_hrtime());
    gh_access_log_free(&al);
    gh_access_log_open("off");
    FILE *f = fopen(path, "r");
    size_t n = fread(bigline, 1, sizeof(bigline) - 1, f);
    fclose(f);
    unlink(path);
    strcpy(path, "/tmp/gh-access-log-XXXXXX");
    bigline[n] = 0;
    assert_true(n > 2 * 6 * sizeof(big));
    check_field(bigline, "path", big, sizeof(big));
    check_field(bigline, "user_agent", big, sizeof(big));
}

/* The User-Agent is found by name in any case, and only by that name:
 * near misses (an underscore, one letter off, one byte longer) are other
 * headers. */
static void test_user_agent_by_name_in_any_case(void **state)
{
    (void)state;
    static gh_exchange ex;
    memset(&ex, 0, sizeof(ex));
    ex.start_ns = uv_hrtime();
    strcpy(ex.client, "192.0.2.1");
    gh_exchange_put_request_id(&ex, "abc", 3);
    ex.trace.set = true;
    strcpy(ex.trace.parent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    gh_header h[] = {
        { "user_agent", "underscore", 10, 10 },
        { "user-agenu", "letter", 10, 6 },
        { "user-agents", "longer", 11, 6 },
        { "user-agen", "shorter", 9, 7 },
        { "uSeR-aGeNT", "this one", 10, 8 },
        { "user-agent", "second", 10, 6 },
    };
    ex.headers = h;
    ex.nheaders = 4;
    assert_non_null(strstr(line_of(&ex), "\"user_agent\":null,"));
    ex.nheaders = 6;
    assert_non_null(strstr(line_of(&ex), "\"user_agent\":\"this one\","));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_secret_params),
        cmocka_unit_test(test_json_escape_keeps_utf8_and_replaces_the_rest),
        cmocka_unit_test(test_word_check_matches_the_table),
        cmocka_unit_test(test_fields_escaped_at_every_length),
        cmocka_unit_test(test_user_agent_by_name_in_any_case),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
