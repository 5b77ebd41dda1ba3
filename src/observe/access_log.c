#include "observe/access_log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "http/request.h"
#include "http/status.h"
#include "observe/trace.h"

#define FLUSH_AT (48 * 1024)

static atomic_int log_fd = -1;          /* -1 = off */
static char log_target[4096];

static int open_target(const char *t)
{
    if (strcmp(t, "off") == 0)
        return -1;
    if (strcmp(t, "stdout") == 0)
        return 1;
    if (strcmp(t, "stderr") == 0)
        return 2;
    int fd = open(t, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno - 1000 : fd;
}

int gh_access_log_open(const char *target)
{
    int fd = open_target(target);
    if (fd < -1)
        return fd + 1000;
    snprintf(log_target, sizeof(log_target), "%s", target);
    int old = atomic_exchange(&log_fd, fd);
    /* A worker that loaded the old fd just before the swap may see EBADF and
     * drop one batch; reopen is rare (logrotate) and that is acceptable. */
    if (old > 2)
        close(old);
    return 0;
}

int gh_access_log_reopen(void)
{
    if (!log_target[0])
        return 0;
    return gh_access_log_open(log_target);
}

bool gh_access_log_enabled(void)
{
    return atomic_load_explicit(&log_fd, memory_order_relaxed) >= 0;
}

void gh_access_log_init(gh_access_log *al)
{
    al->cap = 64 * 1024;
    al->buf = malloc(al->cap);
    al->len = 0;
    al->ts_sec = -1;
    al->off_at_ns = 0;
}

void gh_access_log_free(gh_access_log *al)
{
    gh_access_log_flush(al);
    free(al->buf);
    al->buf = NULL;
}

/* The line is written by hand into room reserved up front: no printf, no
 * bounds check per field. Every string from a request or the
 * configuration is tested a word at a time and, if any byte needs care,
 * escaped by gh_json_escape (at most 6 bytes per byte). */

#define LIT(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) + sizeof(s) - 1)

static const char digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Count the digits, then write them backwards two at a time from a table. */
static inline __attribute__((always_inline)) char *put_u64(char *o, uint64_t v)
{
    size_t n = 1;
    for (uint64_t p = 10; n < 20 && v >= p; p *= 10)
        n++;
    char *t = o + n;
    while (v >= 100) {
        t -= 2;
        memcpy(t, digit_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10)
        memcpy(t - 2, digit_pairs + 2 * v, 2);
    else
        t[-1] = (char)('0' + v);
    return o + n;
}

static char *put_2(char *o, unsigned v)
{
    memcpy(o, digit_pairs + 2 * v, 2);
    return o + 2;
}

/* microseconds as milliseconds with 3 decimals: 1234 -> 1.234 */
static inline __attribute__((always_inline)) char *put_ms(char *o, uint64_t us)
{
    o = put_u64(o, us / 1000);
    unsigned f = (unsigned)(us % 1000);
    *o++ = '.';
    *o++ = (char)('0' + f / 100);
    return put_2(o, f % 100);
}

static inline bool clean8(const unsigned char *p, char *o)
{
    uint64_t w;
    memcpy(&w, p, 8);
    memcpy(o, &w, 8);
    return !gh_json_word_needs_care(w);
}

static inline bool clean4(const unsigned char *p, char *o)
{
    uint32_t w;
    memcpy(&w, p, 4);
    memcpy(o, &w, 4);
    return !gh_json_word_needs_care(w | 0x2020202000000000ull);   /* pad with spaces */
}

/* Most fields are short and need no escaping: copy them a word at a time
 * while testing the words (the last one overlapping), with no call and no
 * per-byte loop; only a string with a byte that needs care goes through
 * gh_json_escape, which rewrites it from the start. Inlined: most fields
 * are null or a few bytes, where a call would cost as much as the copy. */
static inline __attribute__((always_inline)) char *put_str(char *o, const char *s, size_t n)
{
    if (!s)
        return LIT(o, "null");
    const unsigned char *u = (const unsigned char *)s;
    *o++ = '"';
    bool clean = true;
    if (n >= 8) {
        for (size_t k = 0; k + 8 < n; k += 8)
            clean &= clean8(u + k, o + k);
        clean &= clean8(u + n - 8, o + n - 8);
    } else if (n >= 4) {
        clean = clean4(u, o);
        clean &= clean4(u + n - 4, o + n - 4);
    } else if (n) {   /* 1-3 bytes: the first, middle and last are all of them */
        unsigned char a = u[0], b = u[n / 2], c = u[n - 1];
        clean = !(gh_json_care[a] | gh_json_care[b] | gh_json_care[c]);
        o[0] = (char)a;
        o[n / 2] = (char)b;
        o[n - 1] = (char)c;
    }
    o += clean ? n : gh_json_escape(o, n * 6, s, n);
    *o++ = '"';
    return o;
}

static inline __attribute__((always_inline)) char *put_gstr(char *o, gh_str s) { return put_str(o, s.len ? s.p : NULL, s.len); }

/* The raw query with the values of credential parameters (see
 * gh_config_is_secret_param) replaced by ***. */
static char *put_query(char *o, const gh_config *cfg, gh_str q)
{
    if (!q.len)
        return LIT(o, "null");
    *o++ = '"';
    const char *p = q.p, *end = q.p + q.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        gh_str name = gh_str_from(p, (size_t)((eq ? eq : item_end) - p));
        char dec[64];
        if (eq && name.len <= sizeof(dec) && (memchr(name.p, '%', name.len) || memchr(name.p, '+', name.len)))
            name = gh_str_from(dec, gh_query_decode(name, dec));   /* api%5Fkey is api_key */
        if (eq && gh_config_is_secret_param(cfg, name)) {
            o += gh_json_escape(o, (size_t)(eq + 1 - p) * 6, p, (size_t)(eq + 1 - p));
            o = LIT(o, "***");
        } else {
            o += gh_json_escape(o, (size_t)(item_end - p) * 6, p, (size_t)(item_end - p));
        }
        if (amp)
            *o++ = '&';
        p = amp ? amp + 1 : end;
    }
    *o++ = '"';
    return o;
}

/* Wall-clock time from the exchange's end (monotonic, already read for
 * the duration and the metrics) plus an offset re-read once a second: one
 * clock read per second instead of one per line. A step of the wall clock
 * shows up within a second. */
static struct timespec wall_time(gh_access_log *al, uint64_t now_ns)
{
    if (al->off_at_ns == 0 || now_ns - al->off_at_ns >= 1000000000u) {
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        al->wall_off_ns = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec - (int64_t)now_ns;
        al->off_at_ns = now_ns ? now_ns : 1;
    }
    int64_t w = (int64_t)now_ns + al->wall_off_ns;
    return (struct timespec){ .tv_sec = (time_t)(w / 1000000000), .tv_nsec = (long)(w % 1000000000) };
}

/* "2026-12-07T10:56:37.", rebuilt once a second */
static char *put_ts(gh_access_log *al, char *o, uint64_t now_ns)
{
    struct timespec ts = wall_time(al, now_ns);
    if (ts.tv_sec != al->ts_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char *t = al->ts_text;
        t = put_u64(t, (uint64_t)(tm.tm_year + 1900) % 10000);
        *t++ = '-';
        t = put_2(t, (unsigned)tm.tm_mon + 1);
        *t++ = '-';
        t = put_2(t, (unsigned)tm.tm_mday);
        *t++ = 'T';
        t = put_2(t, (unsigned)tm.tm_hour);
        *t++ = ':';
        t = put_2(t, (unsigned)tm.tm_min);
        *t++ = ':';
        t = put_2(t, (unsigned)tm.tm_sec);
        *t++ = '.';
        al->ts_len = (size_t)(t - al->ts_text);
        al->ts_sec = ts.tv_sec;
    }
    memcpy(o, al->ts_text, sizeof(al->ts_text));   /* fixed size: no call */
    o += al->ts_len;
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    *o++ = (char)('0' + ms / 100);
    o = put_2(o, ms % 100);
    *o++ = 'Z';
    return o;
}

/* A string that is safe by construction (our request ids, an IP address
 * from inet_ntop/inet_pton): copied, not escaped. The whole array is
 * copied (a fixed size, no call; the line's room allows for it), then the
 * end is placed after the string. */
#define PUT_SAFE(o, arr, n) (*(o) = '"', memcpy((o) + 1, (arr), sizeof(arr)), (o)[(n) + 1] = '"', (o) + (n) + 2)

/* The status is always 3 digits (100-599, or 0 if none was sent). */
static char *put_status(char *o, int s)
{
    if (s < 100 || s > 999)
        return put_u64(o, (uint64_t)(s > 0 ? s : 0));
    *o = (char)('0' + s / 100);
    return put_2(o + 1, (unsigned)s % 100);
}

/* "User-Agent" in any case, as two loads: OR 0x20 lower-cases the letters
 * and keeps '-' (0x0d, the only other byte it could come from, is no token
 * byte, so no header name holds it). No call, unlike a strncasecmp. */
static inline bool is_user_agent(const char *name, size_t len)
{
    if (len != 10)
        return false;
    uint64_t a;
    uint16_t b;
    memcpy(&a, name, 8);
    memcpy(&b, name + 8, 2);
    uint64_t want_a;
    uint16_t want_b;
    memcpy(&want_a, "user-age", 8);
    memcpy(&want_b, "nt", 2);
    return (a | 0x2020202020202020ull) == want_a && (uint16_t)(b | 0x2020) == want_b;
}

static const gh_header *user_agent(const gh_exchange *ex)
{
    for (size_t i = 0; i < ex->nheaders; i++)
        if (is_user_agent(ex->headers[i].name, ex->headers[i].name_len))
            return &ex->headers[i];
    return NULL;
}

void gh_access_log_add(gh_access_log *al, gh_exchange *ex, uint64_t now_ns)
{
    if (!al->buf || !gh_access_log_enabled())
        return;
    gh_trace_begin(ex);
    const gh_header *ua = user_agent(ex);
    gh_str path = ex->path.len ? ex->path : ex->raw_path;
    size_t clen = strlen(ex->client), rlen = ex->request_id_len;
    size_t elen = ex->log.error ? strlen(ex->log.error) : 0, tlen = ex->log.tls ? strlen(ex->log.tls) : 0;
    /* fixed text, trace id, numbers and the two safe arrays under 576 + 96
     * bytes; each string at most 6x */
    size_t need = 576 + 96 + 6 * (clen + rlen + elen + tlen + ex->method.len + ex->host.len + path.len + ex->query.len
                             + (ua ? ua->value_len : 0) + ex->log.route.len + ex->log.consumer.len
                             + ex->log.version.len + ex->log.upstream.len + ex->log.target.len + ex->log.cache.len);
    if (al->cap - al->len < need) {
        gh_access_log_flush(al);
        if (al->cap < need) {   /* a huge line (long URL, header): grow once, rarely */
            char *b = realloc(al->buf, need);
            if (!b)
                return;
            al->buf = b;
            al->cap = need;
        }
    }
    uint64_t dur_us = (now_ns - ex->start_ns) / 1000;
    char *o = al->buf + al->len;
    o = LIT(o, "{\"ts\":\"");
    o = put_ts(al, o, now_ns);
    o = LIT(o, "\",\"request_id\":");
    o = PUT_SAFE(o, ex->request_id, rlen);   /* [0-9A-Za-z._-] only */
    o = LIT(o, ",\"trace_id\":\"");
    memcpy(o, gh_trace_id(ex), GH_TRACE_ID_LEN);   /* hex digits: nothing to escape */
    o = LIT(o + GH_TRACE_ID_LEN, "\"");
    o = LIT(o, ",\"client\":");
    o = PUT_SAFE(o, ex->client, clen);        /* an IP address */
    o = LIT(o, ",\"method\":");
    o = put_gstr(o, ex->method);
    o = LIT(o, ",\"host\":");
    o = put_gstr(o, ex->host);
    o = LIT(o, ",\"path\":");
    o = put_gstr(o, path);
    o = LIT(o, ",\"query\":");
    o = put_query(o, ex->cfg, ex->query);
    o = LIT(o, ",\"protocol\":\"");
    o = ex->minor == 2 ? LIT(o, "HTTP/2") : ex->minor == 0 ? LIT(o, "HTTP/1.0") : LIT(o, "HTTP/1.1");
    o = LIT(o, "\",\"tls\":");
    o = put_str(o, ex->log.tls, tlen);
    o = LIT(o, ",\"user_agent\":");
    o = put_str(o, ua ? ua->value : NULL, ua ? ua->value_len : 0);
    o = LIT(o, ",\"status\":");
    o = put_status(o, ex->status);
    o = LIT(o, ",\"bytes_in\":");
    o = put_u64(o, ex->body_received);
    o = LIT(o, ",\"bytes_out\":");
    o = put_u64(o, ex->bytes_out);
    o = LIT(o, ",\"duration_ms\":");
    o = put_ms(o, dur_us);
    o = LIT(o, ",\"route\":");
    o = put_gstr(o, ex->log.route);
    o = LIT(o, ",\"consumer\":");
    o = put_gstr(o, ex->log.consumer);
    o = LIT(o, ",\"version\":");
    o = put_gstr(o, ex->log.version);
    o = LIT(o, ",\"upstream\":");
    o = put_gstr(o, ex->log.upstream);
    o = LIT(o, ",\"target\":");
    o = put_gstr(o, ex->log.target);
    o = LIT(o, ",\"attempts\":");
    o = put_u64(o, ex->log.attempts);
    o = LIT(o, ",\"upstream_ms\":");
    o = ex->log.upstream_us >= 0 ? put_ms(o, (uint64_t)ex->log.upstream_us) : LIT(o, "null");
    o = LIT(o, ",\"cache\":");
    o = put_gstr(o, ex->log.cache);
    o = LIT(o, ",\"error\":");
    o = put_str(o, ex->log.error, elen);
    o = LIT(o, "}\n");
    al->len = (size_t)(o - al->buf);
    if (al->len >= FLUSH_AT)
        gh_access_log_flush(al);
}

void gh_access_log_flush(gh_access_log *al)
{
    if (!al->len)
        return;
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    size_t off = 0;
    while (fd >= 0 && off < al->len) {
        ssize_t w = write(fd, al->buf + off, al->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    al->len = 0;
}
