/* test_h1_parse.c — the strict HTTP/1.1 parser and the chunked decoder.
 *
 * Every input is copied to the end of a mapping followed by a PROT_NONE page
 * and parsed at every prefix length, so a read past `len` crashes and a
 * parser that answers differently on a partial head is caught: a prefix must
 * give GH_H1_AGAIN or the same answer as the whole input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http/h1_parse.h"

/* ---- guard page ---- */

enum { REGION = 1 << 20 };
static char *region;              /* REGION bytes, then an unreadable page */

static void guard_init(void)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    char *base = mmap(NULL, REGION + pg, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED || mprotect(base + REGION, pg, PROT_NONE) != 0) {
        perror("guard page");
        exit(1);
    }
    region = base;
}

/* Copy n bytes so that the last one sits right before the guard page. */
static const char *place(const char *in, size_t n)
{
    char *d = region + REGION - n;
    if (n)
        memcpy(d, in, n);
    return d;
}

/* ---- request / response helpers ---- */

enum { MAXH = 128 };
static gh_header hdrs[MAXH];
static gh_h1_message msg;

/* kind: 0 request, 1 response, 2 response to HEAD */
static int parse_any(int kind, const char *b, size_t n, size_t maxh, size_t maxb)
{
    if (kind == 0)
        return gh_h1_parse_request(b, n, &msg, hdrs, maxh, maxb);
    return gh_h1_parse_response(b, n, &msg, hdrs, maxh, maxb, kind == 2);
}

/* Parse every prefix, check each against the whole, and leave `msg` holding
 * the parse of the whole input. */
static int check(int kind, const char *in, size_t n, size_t maxh, size_t maxb)
{
    int full = parse_any(kind, place(in, n), n, maxh, maxb);
    int full_err = msg.error;
    if (full > 0)
        assert_int_equal(full_err, GH_H1E_NONE);
    else if (full != GH_H1_AGAIN)
        assert_int_not_equal(full_err, GH_H1E_NONE);
    for (size_t l = 0; l < n; l++) {
        int r = parse_any(kind, place(in, l), l, maxh, maxb);
        if (full > 0) {
            if (l < (size_t)full)
                assert_int_equal(r, GH_H1_AGAIN);
            else
                assert_int_equal(r, full);
        } else if (r != GH_H1_AGAIN) {
            if (r != full || msg.error != full_err)
                fail_msg("prefix %zu of %zu: %d/%d, whole: %d/%d", l, n, r, msg.error,
                         full, full_err);
        }
    }
    int again = parse_any(kind, place(in, n), n, maxh, maxb);
    assert_int_equal(again, full);
    return full;
}

#define REQ(lit) check(0, (lit), sizeof(lit) - 1, MAXH, 8192)
#define RESP(lit) check(1, (lit), sizeof(lit) - 1, MAXH, 8192)
#define RESP_HEAD(lit) check(2, (lit), sizeof(lit) - 1, MAXH, 8192)
#define BAD_REQ(lit, err) expect_bad(check(0, (lit), sizeof(lit) - 1, MAXH, 8192), (err), __LINE__)
#define BAD_RESP(lit, err) expect_bad(check(1, (lit), sizeof(lit) - 1, MAXH, 8192), (err), __LINE__)
#define OK_REQ(lit) assert_int_equal(REQ(lit), (int)sizeof(lit) - 1)

static void expect_bad(int r, int err, int line)
{
    if (r != GH_H1_BAD || msg.error != err)
        fail_msg("line %d: got %d error %d, want BAD error %d", line, r, msg.error, err);
}

static void assert_slice(const char *p, size_t n, const char *want)
{
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        fail_msg("got '%.*s', want '%s'", (int)n, p, want);
}

/* ---- valid requests ---- */

static void test_get(void **st)
{
    (void)st;
    static const char in[] =
        "GET /index.html?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n\r\n";
    assert_int_equal(REQ(in), sizeof(in) - 1);
    assert_slice(msg.method, msg.method_len, "GET");
    assert_slice(msg.target, msg.target_len, "/index.html?x=1&y=%20");
    assert_int_equal(msg.minor, 1);
    assert_int_equal(msg.nheaders, 2);
    assert_slice(msg.headers[1].name, msg.headers[1].name_len, "User-Agent");
    assert_slice(msg.headers[1].value, msg.headers[1].value_len, "t/1");
    assert_slice(msg.host, msg.host_len, "example.com");
    assert_int_equal(msg.body, GH_BODY_NONE);
    assert_true(msg.keep_alive);
    assert_false(msg.expect_continue);
    assert_false(msg.upgrade);
    assert_int_equal(msg.error, GH_H1E_NONE);
}

static void test_post_length(void **st)
{
    (void)st;
    static const char in[] = "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    assert_int_equal(REQ(in), sizeof(in) - 1 - 5);
    assert_int_equal(msg.body, GH_BODY_LENGTH);
    assert_int_equal(msg.content_length, 5);

    OK_REQ("POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n");
    assert_int_equal(msg.body, GH_BODY_NONE);
    OK_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n");
    assert_int_equal(msg.body, GH_BODY_LENGTH);
    assert_true(msg.content_length == UINT64_MAX);
    OK_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  007 \r\n\r\n");
    assert_int_equal(msg.content_length, 7);
}

static void test_chunked_request(void **st)
{
    (void)st;
    OK_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(msg.body, GH_BODY_CHUNKED);
    OK_REQ("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: \t CHUNKED \t\r\n\r\n");
    assert_int_equal(msg.body, GH_BODY_CHUNKED);
}

static void test_pipelined(void **st)
{
    (void)st;
    static const char in[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                             "POST /b HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nhi";
    const char *b = place(in, sizeof(in) - 1);
    int r1 = gh_h1_parse_request(b, sizeof(in) - 1, &msg, hdrs, MAXH, 8192);
    assert_int_equal(r1, 28);
    assert_slice(msg.target, msg.target_len, "/a");
    int r2 = gh_h1_parse_request(b + r1, sizeof(in) - 1 - (size_t)r1, &msg, hdrs, MAXH, 8192);
    assert_int_equal((size_t)r1 + (size_t)r2 + 2, sizeof(in) - 1);
    assert_slice(msg.method, msg.method_len, "POST");
    assert_int_equal(msg.content_length, 2);
}

static void test_target_forms(void **st)
{
    (void)st;
    OK_REQ("GET http://example.com:8080/x?y HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
    assert_slice(msg.target, msg.target_len, "http://example.com:8080/x?y");
    OK_REQ("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    OK_REQ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_slice(msg.target, msg.target_len, "*");
    OK_REQ("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    OK_REQ("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n");
    OK_REQ("get / HTTP/1.1\r\nHost: a\r\n\r\n");            /* a token; the router decides */
    OK_REQ("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n");
    BAD_REQ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("CONNECT example.com: HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
}

/* An absolute-form authority stands for Host, so it obeys Host's rule. */
static void test_absolute_authority(void **st)
{
    (void)st;
    OK_REQ("GET http://api.test/admin HTTP/1.1\r\nHost: api.test\r\n\r\n");
    OK_REQ("GET http://api.test HTTP/1.1\r\nHost: x\r\n\r\n");
    OK_REQ("GET http://api.test?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    OK_REQ("GET http://127.0.0.1:8080/ HTTP/1.1\r\nHost: x\r\n\r\n");
    OK_REQ("GET http://[::1]:8080/x HTTP/1.1\r\nHost: x\r\n\r\n");
    OK_REQ("GET http://a%41b/ HTTP/1.0\r\n\r\n");
    BAD_REQ("GET http://api.test@evil.example/admin HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http://a\"<x/ HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http://[::1/x HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http://[::1]x/ HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http://a:/ HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http://a:99999/ HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http://a:8x/ HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http://a#b/ HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET http://?x HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);

    size_t len = 99;
    assert_int_equal(gh_h1_target_authority("http://a.b:1/x?y", 16, &len), 7);
    assert_int_equal(len, 5);
    assert_int_equal(gh_h1_target_authority("HTTPS://a?y", 11, &len), 8);
    assert_int_equal(len, 1);
    assert_int_equal(gh_h1_target_authority("/http://a", 9, &len), 0);
    assert_int_equal(gh_h1_target_authority("http://", 7, &len), 0);
}

/* A head is judged line by line: what is wrong in its first lines is
 * reported before the blank line arrives (the connection answers at once). */
static void test_partial_head_judged(void **st)
{
    (void)st;
    static const char *bad[] = { "GET /\r\n", "GET /\n", "GET / HTTP/1.1\n",
                                 "GET / HTTP/1.1\r\nHost: a\n", "GET http://u@a/ HTTP/1.1\r\n" };
    static const int err[] = { GH_H1E_VERSION, GH_H1E_VERSION, GH_H1E_LINE_END, GH_H1E_LINE_END,
                               GH_H1E_TARGET };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]);
        assert_int_equal(gh_h1_parse_request(place(bad[i], n), n, &msg, hdrs, MAXH, 8192), GH_H1_BAD);
        assert_int_equal(msg.error, err[i]);
    }
    static const char ok[] = "GET / HTTP/1.1\r\nHost: a\r\n";
    assert_int_equal(gh_h1_parse_request(place(ok, sizeof ok - 1), sizeof ok - 1, &msg, hdrs, MAXH, 8192),
                     GH_H1_AGAIN);
}

static void test_http10(void **st)
{
    (void)st;
    OK_REQ("GET / HTTP/1.0\r\n\r\n");
    assert_int_equal(msg.minor, 0);
    assert_false(msg.keep_alive);
    assert_null(msg.host);
    OK_REQ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert_true(msg.keep_alive);
    OK_REQ("GET / HTTP/1.0\r\nExpect: 100-continue\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n");
    assert_false(msg.expect_continue);
    assert_false(msg.upgrade);
    BAD_REQ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", GH_H1E_TE_INVALID);
    BAD_REQ("GET / HTTP/1.0\r\nHost: a b\r\n\r\n", GH_H1E_HOST_INVALID);
}

static void test_keep_alive(void **st)
{
    (void)st;
    OK_REQ("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_false(msg.keep_alive);
    OK_REQ("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo ,\t CLOSE\r\n\r\n");
    assert_false(msg.keep_alive);
    OK_REQ("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n");
    assert_false(msg.keep_alive);
    OK_REQ("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, xclose\r\n\r\n");
    assert_true(msg.keep_alive);
    OK_REQ("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    assert_false(msg.keep_alive);
}

static void test_expect_upgrade(void **st)
{
    (void)st;
    OK_REQ("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
    assert_true(msg.expect_continue);
    OK_REQ("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-x\r\n\r\n");
    assert_false(msg.expect_continue);
    OK_REQ("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
           "Upgrade: websocket\r\n\r\n");
    assert_true(msg.upgrade);
    assert_true(msg.keep_alive);
    OK_REQ("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    assert_false(msg.upgrade);
    OK_REQ("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n");
    assert_false(msg.upgrade);
}

static void test_value_trimming(void **st)
{
    (void)st;
    OK_REQ("GET / HTTP/1.1\r\nHost:a\r\nX:  \t a \t b \t \r\nY:\r\nZ: \t \r\n"
           "O: \x80\xff\r\n\r\n");
    assert_int_equal(msg.nheaders, 5);
    assert_slice(msg.headers[0].value, msg.headers[0].value_len, "a");
    assert_slice(msg.headers[1].value, msg.headers[1].value_len, "a \t b");
    assert_int_equal(msg.headers[2].value_len, 0);
    assert_int_equal(msg.headers[3].value_len, 0);
    assert_slice(msg.headers[4].value, msg.headers[4].value_len, "\x80\xff");
}

static void test_leading_empty_lines(void **st)
{
    (void)st;
    static const char in[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(REQ(in), sizeof(in) - 1);
    assert_slice(msg.method, msg.method_len, "GET");
    BAD_REQ("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_LINE_END);
    BAD_REQ("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_LINE_END);
}

/* Build "GET / HTTP/1.1\r\nHost: a\r\n" + n-1 more headers. */
static size_t many_headers(char *out, size_t cap, int n, int value_len)
{
    size_t len = (size_t)snprintf(out, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "X-%d: %.*s\r\n", i, value_len,
                                "0123456789abcdefghijklmnopqrstuvwxyz");
    len += (size_t)snprintf(out + len, cap - len, "\r\n");
    return len;
}

static void test_many_headers(void **st)
{
    (void)st;
    static char in[8192];
    size_t n = many_headers(in, sizeof in, 100, 10);
    assert_int_equal(check(0, in, n, 100, 8192), (int)n);
    assert_int_equal(msg.nheaders, 100);
    assert_int_equal(check(0, in, n, 99, 8192), GH_H1_TOO_BIG);
    assert_int_equal(msg.error, GH_H1E_TOO_MANY_HEADERS);
    /* no room at all */
    assert_int_equal(gh_h1_parse_request(place(in, n), n, &msg, NULL, 0, 8192),
                     GH_H1_TOO_BIG);
    assert_int_equal(msg.error, GH_H1E_TOO_MANY_HEADERS);
}

static void test_head_too_large(void **st)
{
    (void)st;
    static char in[8192];
    size_t n = many_headers(in, sizeof in, 20, 30);
    assert_int_equal(check(0, in, n, MAXH, n), (int)n);          /* exactly fits */
    assert_int_equal(check(0, in, n, MAXH, n - 1), GH_H1_TOO_BIG);
    assert_int_equal(msg.error, GH_H1E_HEAD_TOO_LARGE);
    /* incomplete, but already over the limit */
    assert_int_equal(gh_h1_parse_request(place(in, 100), 100, &msg, hdrs, MAXH, 64),
                     GH_H1_TOO_BIG);
    assert_int_equal(msg.error, GH_H1E_HEAD_TOO_LARGE);
    /* incomplete and under: wait */
    assert_int_equal(gh_h1_parse_request(place(in, 60), 60, &msg, hdrs, MAXH, 64),
                     GH_H1_AGAIN);
}

/* An invalid byte is reported before the head is complete. */
static void test_early_errors(void **st)
{
    (void)st;
    static const char a[] = "GET / HTTP/1.1\r\nX: a\0";
    assert_int_equal(gh_h1_parse_request(place(a, sizeof a - 1), sizeof a - 1, &msg, hdrs,
                                         MAXH, 8192), GH_H1_BAD);
    assert_int_equal(msg.error, GH_H1E_HEADER_VALUE);
    static const char b[] = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n";
    assert_int_equal(gh_h1_parse_request(place(b, sizeof b - 1), sizeof b - 1, &msg, hdrs,
                                         MAXH, 8192), GH_H1_BAD);
    assert_int_equal(msg.error, GH_H1E_CL_DUPLICATE);
    static const char c[] = "G\x01";
    assert_int_equal(gh_h1_parse_request(place(c, 2), 2, &msg, hdrs, MAXH, 8192), GH_H1_BAD);
    assert_int_equal(msg.error, GH_H1E_METHOD);
}

/* ---- invalid requests (SPEC §8) ---- */

static void test_cl_te(void **st)
{
    (void)st;
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            GH_H1E_CL_AND_TE);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            GH_H1E_CL_AND_TE);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            GH_H1E_CL_DUPLICATE);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n",
            GH_H1E_CL_DUPLICATE);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", GH_H1E_CL_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", GH_H1E_CL_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", GH_H1E_CL_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", GH_H1E_CL_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", GH_H1E_CL_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", GH_H1E_CL_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
            GH_H1E_CL_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            GH_H1E_CL_INVALID);
}

static void test_te_invalid(void **st)
{
    (void)st;
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            GH_H1E_TE_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            GH_H1E_TE_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
            GH_H1E_TE_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n", GH_H1E_TE_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x\r\n\r\n",
            GH_H1E_TE_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            GH_H1E_TE_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n",
            GH_H1E_TE_INVALID);
    BAD_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", GH_H1E_TE_INVALID);
}

static void test_header_syntax(void **st)
{
    (void)st;
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", GH_H1E_OBS_FOLD);
    BAD_REQ("GET / HTTP/1.1\r\n\tX: a\r\nHost: a\r\n\r\n", GH_H1E_OBS_FOLD);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", GH_H1E_HEADER_VALUE);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n", GH_H1E_HEADER_VALUE);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", GH_H1E_HEADER_VALUE);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", GH_H1E_HEADER_VALUE);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1f\r\n\r\n", GH_H1E_HEADER_VALUE);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", GH_H1E_HEADER_VALUE);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX: \v\r\n\r\n", GH_H1E_HEADER_VALUE);
    BAD_REQ("GET / HTTP/1.1\nHost: a\r\n\r\n", GH_H1E_LINE_END);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", GH_H1E_LINE_END);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\n\n", GH_H1E_LINE_END);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\n\rX", GH_H1E_LINE_END);
    BAD_REQ("GET / HTTP/1.1\rHost: a\r\n\r\n", GH_H1E_LINE_END);
    BAD_REQ("GET / HTTP/1.1\r\nHost\n: a\r\n\r\n", GH_H1E_LINE_END);
    BAD_REQ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", GH_H1E_HEADER_NAME);
    BAD_REQ("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", GH_H1E_HEADER_NAME);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", GH_H1E_HEADER_NAME);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", GH_H1E_HEADER_NAME);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX(y): a\r\n\r\n", GH_H1E_HEADER_NAME);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: a\r\n\r\n", GH_H1E_HEADER_NAME);
    BAD_REQ("GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n", GH_H1E_HEADER_NAME);
}

/* Each byte at each position of a long value: the value scan goes eight
 * bytes at a time, so every lane of a word must be checked. */
static void test_value_bytes(void **st)
{
    (void)st;
    static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: ";
    char in[128];
    for (int c = 0; c < 256; c++) {
        for (size_t pos = 0; pos < 40; pos++) {
            size_t n = sizeof pre - 1;
            memcpy(in, pre, n);
            memset(in + n, 'v', 40);
            in[n + pos] = (char)c;
            memcpy(in + n + 40, "x\r\n\r\n", 5);
            n += 45;
            int r = gh_h1_parse_request(place(in, n), n, &msg, hdrs, MAXH, 8192);
            bool ok = c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
            int want = ok ? (int)n : GH_H1_BAD;
            int err = c == '\n' ? GH_H1E_LINE_END : GH_H1E_HEADER_VALUE;
            if (r != want || (!ok && msg.error != err))
                fail_msg("byte 0x%02x at %zu: %d/%d", c, pos, r, msg.error);
        }
    }
}

/* The same for the request-target (also scanned a word at a time). */
static void test_target_bytes(void **st)
{
    (void)st;
    char in[128];
    for (int c = 0; c < 256; c++) {
        for (size_t pos = 1; pos < 40; pos++) {
            size_t n = 4;
            memcpy(in, "GET ", 4);
            in[n] = '/';
            memset(in + n + 1, 't', 39);
            in[n + pos] = (char)c;
            n += 40;
            static const char tail[] = " HTTP/1.1\r\nHost: a\r\n\r\n";
            memcpy(in + n, tail, sizeof tail - 1);
            n += sizeof tail - 1;
            int r = gh_h1_parse_request(place(in, n), n, &msg, hdrs, MAXH, 8192);
            bool ok = c >= 0x21 && c <= 0x7e;
            int err = c == '\n' ? GH_H1E_VERSION : GH_H1E_TARGET;   /* "GET /t\n": HTTP/0.9 */
            if (r != (ok ? (int)n : GH_H1_BAD) || (!ok && msg.error != err))
                fail_msg("byte 0x%02x at %zu: %d/%d", c, pos, r, msg.error);
            if (ok)
                assert_int_equal(msg.target_len, 40);
        }
    }
}

static void test_request_line(void **st)
{
    (void)st;
    BAD_REQ("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_METHOD);
    BAD_REQ("GE\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_METHOD);
    BAD_REQ(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_METHOD);
    BAD_REQ("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_METHOD);
    BAD_REQ("GET\r\n\r\n", GH_H1E_METHOD);
    BAD_REQ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", GH_H1E_TARGET);
    BAD_REQ("GET /\r\n\r\n", GH_H1E_VERSION);         /* HTTP/0.9: no version */
    BAD_REQ("GET /\n\n", GH_H1E_VERSION);
    BAD_REQ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", GH_H1E_VERSION);
    BAD_REQ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", GH_H1E_VERSION);
    BAD_REQ("GET / HTTP/1.10\r\nHost: a\r\n\r\n", GH_H1E_VERSION);
    BAD_REQ("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", GH_H1E_VERSION);
    BAD_REQ("GET / http/1.1\r\nHost: a\r\n\r\n", GH_H1E_VERSION);
    BAD_REQ("GET / HTTP/0.9\r\nHost: a\r\n\r\n", GH_H1E_VERSION);
    BAD_REQ("GET / HTTP/1.1\r\rHost: a\r\n\r\n", GH_H1E_LINE_END);
}

static void test_host(void **st)
{
    (void)st;
    BAD_REQ("GET / HTTP/1.1\r\n\r\n", GH_H1E_HOST_MISSING);
    BAD_REQ("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", GH_H1E_HOST_MISSING);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", GH_H1E_HOST_DUPLICATE);
    BAD_REQ("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", GH_H1E_HOST_DUPLICATE);

    static const char *good[] = {
        "example.com", "EXAMPLE.com:80", "a", "1.2.3.4", "1.2.3.4:65535", "exa_mple-1.com",
        "%41bc", "[::1]", "[::1]:8080", "[2001:db8::7]", "[2001:db8:0:0:0:0:2:1]",
        "[::ffff:192.0.2.1]", "[1::]", "[v1.fe:x]", "xn--bcher-kva.example", "a.b.c.",
    };
    static const char *bad[] = {
        "", "a b", "user@host", "host:port", "host:", ":80", "host:65536", "host:123456",
        "host:+1", "[::1", "[::1]x", "[::1]:", "[12345::]", "[1:2:3:4:5:6:7:8:9]",
        "[1:2:3:4:5:6:7]", "[1:::2]", "[1::2::3]", "[:1::]", "[1:]", "[]", "[::1.2.3]",
        "[::01.2.3.4]", "[::256.1.1.1]", "[v.x]", "[v1.]", "%4", "%zz", "a/b", "a?b", "\"a\"",
        ("\x80" "a"),
    };
    char in[256];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
        if (check(0, in, (size_t)n, MAXH, 8192) != n)
            fail_msg("host '%s' refused (%d)", good[i], msg.error);
        assert_slice(msg.host, msg.host_len, good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad[i]);
        int r = check(0, in, (size_t)n, MAXH, 8192);
        if (r != GH_H1_BAD || msg.error != GH_H1E_HOST_INVALID)
            fail_msg("host '%s' gave %d/%d", bad[i], r, msg.error);
    }
}

/* ---- responses ---- */

static void test_responses(void **st)
{
    (void)st;
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!";
    assert_int_equal(RESP(ok), sizeof ok - 1 - 12);
    assert_int_equal(msg.status, 200);
    assert_slice(msg.reason, msg.reason_len, "OK");
    assert_int_equal(msg.body, GH_BODY_LENGTH);
    assert_int_equal(msg.content_length, 12);
    assert_true(msg.keep_alive);

    static const char ch[] = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(RESP(ch), sizeof ch - 1);
    assert_int_equal(msg.body, GH_BODY_CHUNKED);

    static const char nc[] = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
    assert_int_equal(RESP(nc), sizeof nc - 1);
    assert_int_equal(msg.body, GH_BODY_NONE);
    static const char nm[] = "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n";
    assert_int_equal(RESP(nm), sizeof nm - 1);
    assert_int_equal(msg.body, GH_BODY_NONE);
    static const char hd[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    assert_int_equal(RESP_HEAD(hd), sizeof hd - 1);
    assert_int_equal(msg.body, GH_BODY_NONE);
    assert_true(msg.keep_alive);
    static const char hdch[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(RESP_HEAD(hdch), sizeof hdch - 1);
    assert_int_equal(msg.body, GH_BODY_NONE);

    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    assert_int_equal(RESP(cont), sizeof cont - 1);
    assert_int_equal(msg.status, 100);
    assert_int_equal(msg.body, GH_BODY_NONE);
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n";
    assert_int_equal(RESP(sw), sizeof sw - 1);
    assert_int_equal(msg.body, GH_BODY_NONE);
    assert_true(msg.upgrade);

    static const char uc[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc";
    assert_int_equal(RESP(uc), sizeof uc - 1 - 3);
    assert_int_equal(msg.body, GH_BODY_UNTIL_CLOSE);
    assert_false(msg.keep_alive);

    static const char h10[] = "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n";
    assert_int_equal(RESP(h10), sizeof h10 - 1);
    assert_int_equal(msg.minor, 0);
    assert_false(msg.keep_alive);
    static const char h10k[] = "HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n";
    assert_int_equal(RESP(h10k), sizeof h10k - 1);
    assert_true(msg.keep_alive);
    static const char cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n";
    assert_int_equal(RESP(cl), sizeof cl - 1);
    assert_false(msg.keep_alive);
    static const char cl0[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(RESP(cl0), sizeof cl0 - 1);
    assert_int_equal(msg.body, GH_BODY_NONE);
    assert_true(msg.keep_alive);

    /* tolerated: empty reason, with or without its SP; obs-text reason */
    static const char e1[] = "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(RESP(e1), sizeof e1 - 1);
    assert_int_equal(msg.reason_len, 0);
    static const char e2[] = "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(RESP(e2), sizeof e2 - 1);
    assert_int_equal(msg.reason_len, 0);
    static const char e3[] = "HTTP/1.1 404 Nicht gefunden \xc3\xa4\r\n\r\n";
    assert_int_equal(RESP(e3), sizeof e3 - 1);
    assert_int_equal(msg.status, 404);
    static const char e4[] = "HTTP/1.1 999 X\r\n\r\n";
    assert_int_equal(RESP(e4), sizeof e4 - 1);
}

static void test_bad_responses(void **st)
{
    (void)st;
    BAD_RESP("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
             GH_H1E_CL_AND_TE);
    BAD_RESP("HTTP/1.1 204 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
             GH_H1E_CL_AND_TE);
    BAD_RESP("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
             GH_H1E_CL_DUPLICATE);
    BAD_RESP("HTTP/1.1 200 OK\r\nContent-Length: 5,5\r\n\r\n", GH_H1E_CL_INVALID);
    BAD_RESP("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", GH_H1E_TE_INVALID);
    BAD_RESP("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", GH_H1E_TE_INVALID);
    BAD_RESP("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", GH_H1E_TE_INVALID);
    assert_int_equal(RESP_HEAD("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), GH_H1_BAD);
    assert_int_equal(msg.error, GH_H1E_CL_INVALID);
    assert_int_equal(RESP_HEAD("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"), GH_H1_BAD);
    assert_int_equal(msg.error, GH_H1E_CL_AND_TE);

    BAD_RESP("HTTP/1.1 20 OK\r\n\r\n", GH_H1E_STATUS);
    BAD_RESP("HTTP/1.1 099 OK\r\n\r\n", GH_H1E_STATUS);
    BAD_RESP("HTTP/1.1 2000 OK\r\n\r\n", GH_H1E_STATUS);
    BAD_RESP("HTTP/1.1 20x OK\r\n\r\n", GH_H1E_STATUS);
    BAD_RESP("HTTP/1.1  200 OK\r\n\r\n", GH_H1E_STATUS);
    BAD_RESP("HTTP/1.1 200 O\x01K\r\n\r\n", GH_H1E_STATUS);
    BAD_RESP("HTTP/1.1 200 OK\n\r\n", GH_H1E_LINE_END);
    BAD_RESP("HTTP/1.1 200 OK\rX\r\n\r\n", GH_H1E_LINE_END);
    BAD_RESP("HTTP/1.1 200 OK\r\nX: a\n\r\n", GH_H1E_LINE_END);
    BAD_RESP("HTTP/2 200 OK\r\n\r\n", GH_H1E_VERSION);
    BAD_RESP("HTTP/1.2 200 OK\r\n\r\n", GH_H1E_VERSION);
    BAD_RESP("HTTP/1.11 200 OK\r\n\r\n", GH_H1E_VERSION);
    BAD_RESP("ICY 200 OK\r\n\r\n", GH_H1E_VERSION);
    BAD_RESP("\r\nHTTP/1.1 200 OK\r\n\r\n", GH_H1E_VERSION);
    BAD_RESP("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", GH_H1E_OBS_FOLD);
    BAD_RESP("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", GH_H1E_HEADER_NAME);
}

/* ---- head_complete and is_token ---- */

static void test_head_complete(void **st)
{
    (void)st;
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
    size_t n = sizeof in - 1, end = n - 4;
    /* split at every point: first call sees [0,i), the second all */
    for (size_t i = 0; i <= n; i++) {
        size_t scanned = 0;
        bool c1 = gh_h1_head_complete(place(in, i), i, &scanned);
        assert_int_equal(c1, i >= end);
        assert_true(scanned <= i);
        bool c2 = gh_h1_head_complete(place(in, n), n, &scanned);
        assert_true(c2);
        assert_true(gh_h1_head_complete(place(in, n), n, &scanned));   /* still found */
    }
    /* one byte at a time */
    size_t scanned = 0;
    for (size_t i = 0; i <= n; i++)
        assert_int_equal(gh_h1_head_complete(place(in, i), i, &scanned), i >= end);

    static const char lf[] = "GET / HTTP/1.1\nHost: a\n\n\r\n\n\r";
    scanned = 0;
    assert_false(gh_h1_head_complete(place(lf, sizeof lf - 1), sizeof lf - 1, &scanned));
    scanned = 0;
    assert_false(gh_h1_head_complete(place("", 0), 0, &scanned));
    scanned = 1000;                               /* buffer compacted: start over */
    assert_true(gh_h1_head_complete(place("\r\n\r\n", 4), 4, &scanned));
}

static void test_is_token(void **st)
{
    (void)st;
    assert_true(gh_h1_is_token("GET", 3));
    assert_true(gh_h1_is_token("!#$%&'*+-.^_`|~09azAZ", 21));
    assert_false(gh_h1_is_token("", 0));
    assert_false(gh_h1_is_token("a b", 3));
    assert_false(gh_h1_is_token("a:b", 3));
    assert_false(gh_h1_is_token("a\"", 2));
    assert_false(gh_h1_is_token("\x80", 1));
    assert_false(gh_h1_is_token("a\0", 2));
}

/* ---- chunked ---- */

enum { OUT_MAX = 1 << 16 };
static char out[OUT_MAX];
static size_t out_len;

/* Feed `in` in pieces ending at cuts[0..ncuts) (the last cut = n). Each call
 * sees the unconsumed bytes placed before the guard page. Returns the final
 * result; *used = bytes consumed in all. */
static int feed(const char *in, size_t n, const size_t *cuts, size_t ncuts, size_t *used)
{
    gh_chunked c;
    gh_chunked_init(&c);
    size_t start = 0;
    out_len = 0;
    for (size_t k = 0; k < ncuts; k++) {
        size_t avail = cuts[k] - start;
        for (;;) {
            const char *b = place(in + start, avail);
            size_t u = 99999, dl = 99999;
            const char *d = b;
            int r = gh_chunked_decode(&c, b, avail, &u, &d, &dl);
            assert_true(u <= avail);
            if (dl) {
                assert_true(d >= b && d + dl <= b + u);
                assert_true(out_len + dl <= OUT_MAX);
                memcpy(out + out_len, d, dl);
                out_len += dl;
            }
            start += u;
            avail -= u;
            if (r != GH_CHUNKED_MORE) {
                *used = start;
                return r;
            }
            if (avail == 0)
                break;
            assert_true(dl > 0);                  /* stopped early only after data */
        }
    }
    *used = start;
    return GH_CHUNKED_MORE;
}

static uint64_t rng = 88172645463325252u;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Decode whole, one byte at a time, split in two at every point and in
 * random pieces; all must agree. Returns the result; data in out/out_len. */
static int decode_all_ways(const char *in, size_t n, size_t *used)
{
    static size_t cuts[OUT_MAX];
    static char want[OUT_MAX];
    assert_true(n < OUT_MAX);
    size_t one = n;
    int want_r = feed(in, n, &one, 1, used);
    size_t want_used = *used, want_len = out_len;
    memcpy(want, out, out_len);

#define SAME(r) do { \
        assert_int_equal((r), want_r); assert_int_equal(*used, want_used); \
        assert_int_equal(out_len, want_len); assert_memory_equal(out, want, want_len); \
    } while (0)

    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    SAME(feed(in, n, cuts, n, used));
    /* every split point of small inputs, a sample of them for large ones */
    for (size_t j = 1; j < (n <= 2048 ? n : 200); j++) {
        size_t i = n <= 2048 ? j : 1 + next_rand() % (n - 1);
        size_t two[2] = { i, n };
        SAME(feed(in, n, two, 2, used));
    }
    for (int round = 0; round < 20; round++) {
        size_t k = 0, at = 0;
        while (at < n) {
            at += 1 + next_rand() % (round < 10 ? 4 : 64);
            cuts[k++] = at < n ? at : n;
        }
        SAME(feed(in, n, cuts, k, used));
    }
#undef SAME
    return want_r;
}

#define DECODE(lit, used) decode_all_ways((lit), sizeof(lit) - 1, (used))

static void test_chunked_valid(void **st)
{
    (void)st;
    size_t used;
    static const char a[] = "5\r\nhello\r\n0\r\n\r\n";
    assert_int_equal(DECODE(a, &used), GH_CHUNKED_DONE);
    assert_int_equal(used, sizeof a - 1);
    assert_slice(out, out_len, "hello");

    static const char b[] = "3;name=val\r\nabc\r\n4 ; a ;b=\"q\\\"x;\\\\\"\r\n\r\nde\r\n"
                            "A;x\t=\ty\r\n0123456789\r\n0005\r\n\r\n\r\r\n\r\n"
                            "000;last\r\nX-Sum: abc \t\r\nY:\r\nZ: \x80\r\n\r\nGET /";
    assert_int_equal(DECODE(b, &used), GH_CHUNKED_DONE);
    assert_int_equal(used, sizeof b - 1 - 5);
    assert_slice(out, out_len, "abc\r\nde0123456789\r\n\r\r\n");

    static const char c[] = "000000000000000A\r\n0123456789\r\n0\r\n\r\n";
    assert_int_equal(DECODE(c, &used), GH_CHUNKED_DONE);
    assert_int_equal(out_len, 10);

    /* the largest size is accepted (the caller enforces its body limit) */
    static const char d[] = "ffffffffffffffff\r\nabc";
    assert_int_equal(DECODE(d, &used), GH_CHUNKED_MORE);
    assert_int_equal(used, sizeof d - 1);

    /* DONE is sticky and consumes nothing more */
    gh_chunked ch;
    gh_chunked_init(&ch);
    const char *dp;
    size_t dl;
    assert_int_equal(gh_chunked_decode(&ch, "0\r\n\r\n", 5, &used, &dp, &dl), GH_CHUNKED_DONE);
    assert_int_equal(gh_chunked_decode(&ch, "1\r\n", 3, &used, &dp, &dl), GH_CHUNKED_DONE);
    assert_int_equal(used, 0);
    assert_int_equal(dl, 0);
    /* empty input */
    gh_chunked_init(&ch);
    assert_int_equal(gh_chunked_decode(&ch, "", 0, &used, &dp, &dl), GH_CHUNKED_MORE);
    assert_int_equal(used, 0);
}

static void test_chunked_invalid(void **st)
{
    (void)st;
    size_t used;
    static const char *bad[] = {
        "g\r\n", "5x\r\nhello\r\n", "0x5\r\nhello\r\n", " 5\r\nhello\r\n", "\t5\r\n",
        "+5\r\n", "-5\r\n", "\r\n", ";a\r\n", "5 \r\nhello\r\n", "5\t\r\n", "5;\r\n",
        "5;a=\r\n", "5;=b\r\n", "5; a = \r\n", "5;a b\r\n", "5;a=\"x\r\n", "5;a=\"x\"y\r\n",
        "5;a=\"\x01\"\r\n", "5;a=b c\r\n", "5;a\nhello\r\n", "5;a\r\rhello\r\n",
        "5\nhello\r\n", "5\r\rhello", "5\r\nhelloX\r\n", "5\r\nhello\n0\r\n\r\n",
        "5\r\nhello\r0\r\n\r\n", "5\r\nhello\r\n\r\n", "00000000000000001\r\n",
        "10000000000000000\r\n", "0\r\nX: a\r\n b\r\n\r\n", "0\r\n X: a\r\n\r\n",
        "0\r\nX a\r\n\r\n", "0\r\n: a\r\n\r\n", "0\r\nX : a\r\n\r\n", "0\r\nX: a\n\r\n",
        "0\r\nX: a\rb\r\n\r\n", "0\r\nX: \x01\r\n\r\n", "0\r\n\n", "0\r\n\r\r",
        "0\r\nX: a\r\n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int r = decode_all_ways(bad[i], strlen(bad[i]), &used);
        if (r != GH_CHUNKED_BAD)
            fail_msg("chunked #%zu '%s' gave %d", i, bad[i], r);
    }
    /* NUL in data is fine, in a size line or trailer it is not */
    static const char nul_data[] = "3\r\na\0b\r\n0\r\n\r\n";
    assert_int_equal(DECODE(nul_data, &used), GH_CHUNKED_DONE);
    assert_int_equal(out_len, 3);
    static const char nul_ext[] = "3;a\0\r\nabc\r\n";
    assert_int_equal(DECODE(nul_ext, &used), GH_CHUNKED_BAD);

    /* BAD is sticky */
    gh_chunked ch;
    gh_chunked_init(&ch);
    const char *dp;
    size_t dl;
    assert_int_equal(gh_chunked_decode(&ch, "x", 1, &used, &dp, &dl), GH_CHUNKED_BAD);
    assert_int_equal(gh_chunked_decode(&ch, "0\r\n\r\n", 5, &used, &dp, &dl), GH_CHUNKED_BAD);
}

static void test_chunked_limits(void **st)
{
    (void)st;
    static char in[40000];
    size_t used, n;
    /* a size line of 4096 bytes with its CRLF passes, one more does not */
    memcpy(in, "1;", 2);
    memset(in + 2, 'e', 4092);
    memcpy(in + 4094, "\r\nx\r\n0\r\n\r\n", 11);
    n = 4094 + 10;
    assert_int_equal(decode_all_ways(in, n, &used), GH_CHUNKED_DONE);
    memcpy(in, "1;", 2);
    memset(in + 2, 'e', 4093);
    memcpy(in + 4095, "\r\nx\r\n0\r\n\r\n", 11);
    assert_int_equal(decode_all_ways(in, n + 1, &used), GH_CHUNKED_BAD);
    /* an endless size line is refused before its end */
    memset(in, '0', 16);
    memset(in + 16, ' ', 8000);
    assert_int_equal(decode_all_ways(in, 8016, &used), GH_CHUNKED_BAD);
    memcpy(in, "1;", 2);
    memset(in + 2, 'e', 8000);
    assert_int_equal(decode_all_ways(in, 8002, &used), GH_CHUNKED_BAD);

    /* trailers: bounded in total */
    n = (size_t)sprintf(in, "0\r\n");
    while (n < 16000)
        n += (size_t)sprintf(in + n, "X-Trailer: %0100d\r\n", 7);
    memcpy(in + n, "\r\n", 2);
    assert_int_equal(decode_all_ways(in, n + 2, &used), GH_CHUNKED_DONE);
    while (n < 17000)
        n += (size_t)sprintf(in + n, "X-Trailer: %0100d\r\n", 7);
    memcpy(in + n, "\r\n", 2);
    assert_int_equal(decode_all_ways(in, n + 2, &used), GH_CHUNKED_BAD);
}

/* A random body of many chunks, data full of CR and LF, in random splits. */
static void test_chunked_random(void **st)
{
    (void)st;
    static char in[16384], want[16384];
    for (int round = 0; round < 8; round++) {
        size_t n = 0, wl = 0;
        while (n < sizeof in - 2048) {
            size_t sz = next_rand() % (round & 1 ? 300 : 20) + 1;
            n += (size_t)sprintf(in + n, round & 2 ? "%zX" : "%zx", sz);
            if (next_rand() % 3 == 0)
                n += (size_t)sprintf(in + n, ";ext=\"v%d\"", round);
            n += (size_t)sprintf(in + n, "\r\n");
            for (size_t i = 0; i < sz; i++) {
                static const char alphabet[] = "\r\n0123456789abcdef;\" \t";
                char ch = alphabet[next_rand() % (sizeof alphabet - 1)];
                in[n++] = ch;
                want[wl++] = ch;
            }
            n += (size_t)sprintf(in + n, "\r\n");
        }
        n += (size_t)sprintf(in + n, "0\r\nT: x\r\n\r\n");
        size_t used;
        assert_int_equal(decode_all_ways(in, n, &used), GH_CHUNKED_DONE);
        assert_int_equal(used, n);
        assert_int_equal(out_len, wl);
        assert_memory_equal(out, want, wl);
    }
}

int main(void)
{
    guard_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_post_length),
        cmocka_unit_test(test_chunked_request),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_target_forms),
        cmocka_unit_test(test_absolute_authority),
        cmocka_unit_test(test_partial_head_judged),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_expect_upgrade),
        cmocka_unit_test(test_value_trimming),
        cmocka_unit_test(test_leading_empty_lines),
        cmocka_unit_test(test_many_headers),
        cmocka_unit_test(test_head_too_large),
        cmocka_unit_test(test_early_errors),
        cmocka_unit_test(test_cl_te),
        cmocka_unit_test(test_te_invalid),
        cmocka_unit_test(test_header_syntax),
        cmocka_unit_test(test_value_bytes),
        cmocka_unit_test(test_target_bytes),
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_bad_responses),
        cmocka_unit_test(test_head_complete),
        cmocka_unit_test(test_is_token),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_invalid),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
