/* fuzz_h1.c — libFuzzer harness for the HTTP/1.1 parser and chunked decoder.
 *
 * The input is taken as raw bytes (so the corpus holds plain HTTP messages);
 * limits and split points are derived from a hash of it. Beyond "no crash",
 * it traps on broken invariants: results in range, every slice inside the
 * buffer, a prefix of a head never judged differently from the whole, and
 * the chunked decoder giving the same data however the input is split.
 * Every buffer handed to the code under test is an exact-size heap copy so
 * ASan sees any read past `len`. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1_parse.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

enum { MAXH = 64 };

static uint64_t rng;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char *dup_exact(const uint8_t *d, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p);
    if (n)
        memcpy(p, d, n);
    return p;
}

static bool inside(const char *p, size_t n, const char *b, size_t len)
{
    uintptr_t x = (uintptr_t)p, lo = (uintptr_t)b;
    return x >= lo && x + n <= lo + len;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* kind: 0 request, 1 response, 2 response to HEAD */
static int parse(int kind, const char *b, size_t n, gh_h1_message *m, gh_header *h,
                 size_t maxh, size_t maxb)
{
    if (kind == 0)
        return gh_h1_parse_request(b, n, m, h, maxh, maxb);
    return gh_h1_parse_response(b, n, m, h, maxh, maxb, kind == 2);
}

static void check_result(int kind, int r, const gh_h1_message *m, const char *b, size_t len,
                         size_t maxh, size_t maxb)
{
    CHECK(r == GH_H1_AGAIN || r == GH_H1_BAD || r == GH_H1_TOO_BIG || r > 0);
    if (r == GH_H1_AGAIN)
        CHECK(len <= maxb);                        /* over the limit is TOO_BIG */
    if (r == GH_H1_BAD)
        CHECK(m->error > GH_H1E_NONE && m->error < GH_H1E_TOO_MANY_HEADERS);
    if (r == GH_H1_TOO_BIG)
        CHECK(m->error == GH_H1E_TOO_MANY_HEADERS || m->error == GH_H1E_HEAD_TOO_LARGE);
    CHECK(m->nheaders <= maxh);
    if (r <= 0)
        return;

    size_t hl = (size_t)r;
    CHECK(hl <= len && hl <= maxb && hl >= 4);
    CHECK(m->error == GH_H1E_NONE);
    CHECK(memcmp(b + hl - 4, "\r\n\r\n", 4) == 0);
    size_t scanned = 0;
    CHECK(gh_h1_head_complete(b, hl, &scanned));
    for (size_t i = 0; i < m->nheaders; i++) {
        const gh_header *h = &m->headers[i];
        CHECK(inside(h->name, h->name_len, b, hl) && inside(h->value, h->value_len, b, hl));
        CHECK(gh_h1_is_token(h->name, h->name_len));
        if (h->value_len) {
            CHECK(!is_ows(h->value[0]) && !is_ows(h->value[h->value_len - 1]));
            CHECK(!memchr(h->value, '\r', h->value_len) && !memchr(h->value, '\n', h->value_len));
            CHECK(!memchr(h->value, '\0', h->value_len));
        }
    }
    CHECK(m->minor == 0 || m->minor == 1);
    CHECK(m->body >= GH_BODY_NONE && m->body <= GH_BODY_UNTIL_CLOSE);
    CHECK((m->body == GH_BODY_LENGTH) == (m->content_length > 0));
    if (kind == 0) {
        CHECK(inside(m->method, m->method_len, b, hl) && gh_h1_is_token(m->method, m->method_len));
        CHECK(inside(m->target, m->target_len, b, hl) && m->target_len > 0);
        CHECK(m->body != GH_BODY_UNTIL_CLOSE);
        if (m->minor == 1)
            CHECK(m->host != NULL);
        if (m->host)
            CHECK(inside(m->host, m->host_len, b, hl) && m->host_len > 0);
        if (m->body == GH_BODY_CHUNKED)
            CHECK(m->minor == 1);
    } else {
        CHECK(m->status >= 100 && m->status <= 999);
        CHECK(inside(m->reason, m->reason_len, b, hl));
        if (m->body == GH_BODY_UNTIL_CLOSE)
            CHECK(!m->keep_alive);
        if (kind == 2 || m->status < 200 || m->status == 204 || m->status == 304)
            CHECK(m->body == GH_BODY_NONE);
    }
}

/* Parse the whole input, then a few prefixes, which must answer AGAIN or
 * exactly what the whole did (and after a complete head, the same length). */
static int parse_checked(int kind, const uint8_t *d, size_t n, size_t maxh, size_t maxb)
{
    static gh_header h[MAXH];
    gh_h1_message m;
    char *b = dup_exact(d, n);
    int r = parse(kind, b, n, &m, h, maxh, maxb);
    check_result(kind, r, &m, b, n, maxh, maxb);
    int err = m.error;
    free(b);

    size_t cuts[3] = { n ? next_rand() % n : 0, r > 0 ? (size_t)r - 1 : n / 2,
                       r > 0 ? (size_t)r : n };
    for (int i = 0; i < 3; i++) {
        size_t l = cuts[i] <= n ? cuts[i] : n;
        char *p = dup_exact(d, l);
        int rp = parse(kind, p, l, &m, h, maxh, maxb);
        check_result(kind, rp, &m, p, l, maxh, maxb);
        if (r > 0)
            CHECK(l < (size_t)r ? rp == GH_H1_AGAIN : rp == r);
        else if (rp != GH_H1_AGAIN)
            CHECK(rp == r && m.error == err);
        free(p);
    }
    return r;
}

/* Decode d[0..n) delivered in pieces (random sizes when `split`), always
 * passing the unconsumed bytes as one exact-size buffer. The data goes to
 * out; returns the final result and sets *used. */
static int chunked_feed(const uint8_t *d, size_t n, bool split, uint8_t *out, size_t *out_len,
                        size_t *used)
{
    gh_chunked c;
    gh_chunked_init(&c);
    size_t start = 0, delivered = 0;
    *out_len = 0;
    int r = GH_CHUNKED_MORE;
    while (delivered < n) {
        size_t piece = split ? 1 + next_rand() % (next_rand() % 2 ? 3 : 64) : n;
        delivered = delivered + piece < n ? delivered + piece : n;
        for (;;) {
            size_t avail = delivered - start;
            char *b = dup_exact(d + start, avail);
            size_t u = (size_t)-1, dl = (size_t)-1;
            const char *dp = NULL;
            r = gh_chunked_decode(&c, b, avail, &u, &dp, &dl);
            CHECK(r == GH_CHUNKED_MORE || r == GH_CHUNKED_DONE || r == GH_CHUNKED_BAD);
            CHECK(u <= avail && dl <= u);
            if (dl) {
                CHECK(r == GH_CHUNKED_MORE && inside(dp, dl, b, u));
                memcpy(out + *out_len, dp, dl);
                *out_len += dl;
            }
            free(b);
            start += u;
            if (r != GH_CHUNKED_MORE) {
                /* final states are sticky and consume nothing */
                size_t u2 = 1, dl2 = 1;
                const char *dp2;
                CHECK(gh_chunked_decode(&c, "0\r\n\r\n", 5, &u2, &dp2, &dl2) == r);
                CHECK(u2 == 0 && dl2 == 0);
                *used = start;
                return r;
            }
            if (start == delivered)
                break;
            CHECK(dl > 0);                         /* stops early only after data */
        }
    }
    *used = start;
    return r;
}

static void chunked_checked(const uint8_t *d, size_t n)
{
    uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
    CHECK(a && b);
    size_t la, lb, ua, ub;
    int ra = chunked_feed(d, n, false, a, &la, &ua);
    int rb = chunked_feed(d, n, true, b, &lb, &ub);
    CHECK(ra == rb && ua == ub && la == lb && memcmp(a, b, la) == 0);
    CHECK(la <= ua && ua <= n);
    if (ra == GH_CHUNKED_DONE)
        CHECK(ua >= 5);                            /* at least "0\r\n\r\n" */
    free(a);
    free(b);
}

/* Incremental head_complete must agree with a search of the whole prefix. */
static void head_complete_checked(const uint8_t *d, size_t n)
{
    size_t scanned = 0, at = 0;
    char *b = dup_exact(d, n);
    const char *hit = n >= 4 ? memmem(b, n, "\r\n\r\n", 4) : NULL;
    size_t first = hit ? (size_t)(hit - b) + 4 : (size_t)-1;
    while (at < n) {
        at += 1 + next_rand() % 16;
        if (at > n)
            at = n;
        CHECK(gh_h1_head_complete(b, at, &scanned) == (at >= first));
        CHECK(scanned <= at);
    }
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = 14695981039346656037u;            /* FNV-1a: knobs from the input */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211u;
    rng = h | 1;

    size_t tight_h = h % 8, tight_b = size ? 1 + (h >> 8) % (size + 8) : 1;
    int r = parse_checked(0, data, size, MAXH, 1 << 20);
    parse_checked(0, data, size, tight_h, tight_b);
    parse_checked(1, data, size, MAXH, 1 << 20);
    parse_checked(2, data, size, MAXH, 1 << 20);
    parse_checked(1, data, size, tight_h, tight_b);

    chunked_checked(data, size);
    if (r > 0)                                     /* the body after a request head */
        chunked_checked(data + r, size - (size_t)r);
    head_complete_checked(data, size);
    return 0;
}
