/* h1_parse.c — strict, zero-copy HTTP/1.1 head parser (RFC 9112, SPEC §8).
 *
 * One forward pass over buf[0..min(len, max_bytes)); every read is bounds
 * checked against that end, so nothing past `len` is ever touched. Framing
 * headers are judged as soon as their line is complete, so a smuggling
 * attempt is refused before the rest of the head arrives; the rules that need
 * the whole head (missing Host, body kind) run at the blank line.
 *
 * Choices the header leaves open:
 * - "Content-Length: 5, 5" is GH_H1E_CL_INVALID (a list is not 1*DIGIT);
 *   a second Content-Length line is GH_H1E_CL_DUPLICATE.
 * - Transfer-Encoding must be exactly one "chunked", for requests and for
 *   responses alike: a gateway that drops the hop-by-hop TE header cannot
 *   pass on any other transfer coding intact. TE in an HTTP/1.0 message is
 *   refused too (RFC 9112 §6.1: its framing cannot be trusted).
 * - Request-line: a line end (CRLF or LF) right after the target, as in
 *   HTTP/0.9, is GH_H1E_VERSION; anything else but SP is GH_H1E_TARGET; if the
 *   part after the target does not start with "HTTP/" (case-insensitively)
 *   the target probably held a space, so that is GH_H1E_TARGET as well;
 *   otherwise a wrong version is GH_H1E_VERSION.
 * - A CR inside a header name is GH_H1E_HEADER_NAME; a bare LF anywhere is
 *   GH_H1E_LINE_END; a CR not followed by LF in a value is
 *   GH_H1E_HEADER_VALUE, elsewhere GH_H1E_LINE_END.
 * - Host must be uri-host [":" port] with 1-5 port digits <= 65535; an empty
 *   host or an empty port is GH_H1E_HOST_INVALID. It is validated on
 *   HTTP/1.0 too when present. An absolute-form target's authority obeys
 *   the same rule (else GH_H1E_TARGET): no userinfo, nothing unbracketed
 *   beyond reg-name characters.
 * - max_bytes is clamped to INT_MAX (the return type); 0 means no head fits.
 * - Responses do not skip leading empty lines (RFC 9112 §2.2 only asks that
 *   of servers reading requests). */
#include "http/h1_parse.h"

#include <limits.h>
#include <string.h>

#include "http/h1_chars.h"


typedef const unsigned char uchar;

static inline unsigned lower(unsigned c) { return c - 'A' < 26u ? c + 32 : c; }

/* Case-insensitive compare of s[0..n) with a lower-case literal; ASCII only,
 * independent of the locale (strncasecmp is not). */
static bool ieq(uchar *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

bool gh_h1_is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(gh_h1_cls[(unsigned char)s[i]] & C_TOKEN))
            return false;
    return true;
}

bool gh_h1_head_complete(const char *buf, size_t len, size_t *scanned)
{
    /* Back up 3 bytes so a terminator split across reads is still seen; a
     * smaller len than before means the caller compacted: start over. */
    size_t from = *scanned <= len ? *scanned : 0;
    from = from >= 3 ? from - 3 : 0;
    if (len - from >= 4) {
        const char *hit = memmem(buf + from, len - from, "\r\n\r\n", 4);
        if (hit) {
            *scanned = (size_t)(hit - buf) + 3;   /* a repeat call finds it again */
            return true;
        }
    }
    *scanned = len;
    return false;
}

/* ---- host validation (RFC 3986 uri-host, RFC 9110 Host) ---- */

static bool valid_ipv4(uchar *s, size_t n)
{
    size_t i = 0;
    for (int octet = 0; octet < 4; octet++) {
        if (octet > 0) {
            if (i >= n || s[i] != '.')
                return false;
            i++;
        }
        size_t st = i;
        unsigned v = 0;
        while (i < n && i - st < 3 && (unsigned)(s[i] - '0') < 10u)
            v = v * 10 + (s[i++] - '0');
        size_t d = i - st;
        if (d == 0 || v > 255 || (d > 1 && s[st] == '0'))   /* dec-octet: no leading 0 */
            return false;
    }
    return i == n;
}

static bool valid_ipv6(uchar *s, size_t n)
{
    size_t i = 0;
    int groups = 0;
    bool gap = false;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        gap = true;
        i = 2;
    } else if (n == 0 || s[0] == ':') {
        return false;
    }
    while (i < n) {
        size_t st = i;
        while (i < n && i - st < 5 && (gh_h1_cls[s[i]] & C_HEX))
            i++;
        if (i < n && s[i] == '.') {               /* trailing IPv4 takes two groups */
            if (!valid_ipv4(s + st, n - st))
                return false;
            groups += 2;
            break;
        }
        if (i == st || i - st > 4)
            return false;
        groups++;
        if (i == n)
            break;
        if (s[i] != ':' || ++i == n)
            return false;                          /* a lone trailing ':' */
        if (s[i] == ':') {
            if (gap)
                return false;
            gap = true;
            i++;
        }
    }
    return gap ? groups <= 7 : groups == 8;
}

/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
static bool valid_ipvfuture(uchar *s, size_t n)
{
    size_t i = 1;
    if (n < 4 || lower(s[0]) != 'v')
        return false;
    while (i < n && (gh_h1_cls[s[i]] & C_HEX))
        i++;
    if (i == 1 || i >= n - 1 || s[i] != '.')
        return false;
    for (i++; i < n; i++)
        if (!(gh_h1_cls[s[i]] & C_REG) && s[i] != ':')
            return false;
    return true;
}

static bool valid_host(uchar *s, size_t n);

bool gh_h1_valid_host(const char *s, size_t n)
{
    return valid_host((uchar *)s, n);
}

static bool valid_host(uchar *s, size_t n)
{
    size_t i = 0;
    if (n > 0 && s[0] == '[') {
        uchar *close = memchr(s, ']', n);
        if (!close)
            return false;
        size_t in = (size_t)(close - s) - 1;
        if (!valid_ipv6(s + 1, in) && !valid_ipvfuture(s + 1, in))
            return false;
        i = in + 2;
    } else {
        /* reg-name (IPv4address is a subset of its syntax) */
        while (i < n && s[i] != ':') {
            if (gh_h1_cls[s[i]] & C_REG) {
                i++;
            } else if (s[i] == '%' && n - i >= 3 && (gh_h1_cls[s[i + 1]] & C_HEX) &&
                       (gh_h1_cls[s[i + 2]] & C_HEX)) {
                i += 3;
            } else {
                return false;
            }
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (s[i] != ':')
        return false;
    size_t st = ++i;
    unsigned port = 0;
    while (i < n && i - st < 5 && (unsigned)(s[i] - '0') < 10u)
        port = port * 10 + (s[i++] - '0');
    return i == n && i > st && port <= 65535;
}

/* ---- framing state accumulated header by header ---- */

typedef struct framing {
    bool request;
    int ncl, nte, nhost;
    uint64_t cl;
    bool conn_close, conn_keep_alive, conn_upgrade, has_upgrade, expect;
} framing;

#define FAIL(err) do { m->error = (err); return GH_H1_BAD; } while (0)

/* Connection = #connection-option: scan the comma list for the three
 * options that matter; anything else is left to the hop-by-hop filter. */
static void scan_connection(framing *f, uchar *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t st = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > st && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        size_t l = e - st;
        if (l == 5 && ieq(v + st, "close", 5))
            f->conn_close = true;
        else if (l == 10 && ieq(v + st, "keep-alive", 10))
            f->conn_keep_alive = true;
        else if (l == 7 && ieq(v + st, "upgrade", 7))
            f->conn_upgrade = true;
    }
}

/* Judge one complete header line. Names are recognized by length and first
 * letter before the full compare, so most headers cost two comparisons. */
static int on_header(gh_h1_message *m, framing *f, uchar *name, size_t nl,
                     uchar *v, size_t vl)
{
    switch (nl) {
    case 4:
        if (f->request && lower(name[0]) == 'h' && ieq(name, "host", 4)) {
            if (++f->nhost > 1)
                FAIL(GH_H1E_HOST_DUPLICATE);
            if (!valid_host(v, vl))
                FAIL(GH_H1E_HOST_INVALID);
            m->host = (const char *)v;
            m->host_len = (uint32_t)vl;
        }
        break;
    case 6:
        if (lower(name[0]) == 'e' && ieq(name, "expect", 6) && vl == 12 &&
            ieq(v, "100-continue", 12))
            f->expect = true;
        break;
    case 7:
        if (lower(name[0]) == 'u' && ieq(name, "upgrade", 7))
            f->has_upgrade = true;
        break;
    case 10:
        if (lower(name[0]) == 'c' && ieq(name, "connection", 10))
            scan_connection(f, v, vl);
        break;
    case 14:
        if (lower(name[0]) == 'c' && ieq(name, "content-length", 14)) {
            if (++f->ncl > 1)
                FAIL(GH_H1E_CL_DUPLICATE);
            if (f->nte)
                FAIL(GH_H1E_CL_AND_TE);
            if (vl == 0)
                FAIL(GH_H1E_CL_INVALID);
            uint64_t x = 0;
            for (size_t i = 0; i < vl; i++) {
                unsigned d = (unsigned)(v[i] - '0');
                if (d > 9 || x > (UINT64_MAX - d) / 10)
                    FAIL(GH_H1E_CL_INVALID);
                x = x * 10 + d;
            }
            f->cl = x;
        }
        break;
    case 17:
        if (lower(name[0]) == 't' && ieq(name, "transfer-encoding", 17)) {
            if (f->ncl)
                FAIL(GH_H1E_CL_AND_TE);
            if (++f->nte > 1 || m->minor == 0 || vl != 7 || !ieq(v, "chunked", 7))
                FAIL(GH_H1E_TE_INVALID);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Word-at-a-time checks (the classic "has a byte less than n" trick, exact
 * as a yes/no answer for n <= 0x80; bytes with the top bit are cleared by ~w).
 * has_ctl: a byte < 0x20 or 0x7F. has_nonvchar: a byte outside 0x21-0x7E. */
static const uint64_t ONES = 0x0101010101010101u, HIGHS = 0x8080808080808080u;

static inline bool has_ctl(uint64_t w)
{
    uint64_t del = w ^ (ONES * 0x7F);
    return (((w - ONES * 0x20) & ~w) | ((del - ONES) & ~del)) & HIGHS;
}

static inline bool has_nonvchar(uint64_t w)
{
    uint64_t del = w ^ (ONES * 0x7F);
    return (((w - ONES * 0x21) & ~w) | ((del - ONES) & ~del) | w) & HIGHS;
}

static inline uint64_t load8(uchar *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* The hot loop: most bytes of a head are field values. Eight bytes at a time
 * while none is a control byte, then the table for the word that held one
 * (an HTAB is valid there, so the scan may go on). */
static inline uchar *skip_value(uchar *p, uchar *end)
{
    for (;;) {
        while (end - p >= 8 && !has_ctl(load8(p)))
            p += 8;
        uchar *stop = end - p > 8 ? p + 8 : end;
        while (p < stop && (gh_h1_cls[*p] & C_VALUE))
            p++;
        if (p < stop || p == end)
            return p;
    }
}

/* Header lines up to and including the blank line, starting at *pp. */
static int parse_fields(gh_h1_message *m, framing *f, uchar **pp, uchar *end,
                        size_t max_headers)
{
    uchar *p = *pp;
    for (;;) {
        if (p == end)
            return GH_H1_AGAIN;
        if (*p == '\r') {
            if (p + 1 == end)
                return GH_H1_AGAIN;
            if (p[1] != '\n')
                FAIL(GH_H1E_LINE_END);
            *pp = p + 2;
            return 0;
        }
        if (*p == '\n')
            FAIL(GH_H1E_LINE_END);
        if (*p == ' ' || *p == '\t')
            FAIL(GH_H1E_OBS_FOLD);
        if (m->nheaders == max_headers) {
            m->error = GH_H1E_TOO_MANY_HEADERS;
            return GH_H1_TOO_BIG;
        }

        uchar *name = p;
        while (p < end && (gh_h1_cls[*p] & C_TOKEN))
            p++;
        if (p == end)
            return GH_H1_AGAIN;
        if (*p != ':' || p == name)
            FAIL(*p == '\n' ? GH_H1E_LINE_END : GH_H1E_HEADER_NAME);
        size_t nl = (size_t)(p - name);

        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        uchar *v = p;
        p = skip_value(p, end);
        if (p == end)
            return GH_H1_AGAIN;
        if (*p == '\n')
            FAIL(GH_H1E_LINE_END);
        if (*p != '\r')
            FAIL(GH_H1E_HEADER_VALUE);
        if (p + 1 == end)
            return GH_H1_AGAIN;
        if (p[1] != '\n')
            FAIL(GH_H1E_HEADER_VALUE);
        uchar *ve = p;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        p += 2;

        gh_header *h = &m->headers[m->nheaders++];
        h->name = (const char *)name;
        h->name_len = (uint32_t)nl;
        h->value = (const char *)v;
        h->value_len = (uint32_t)(ve - v);
        int r = on_header(m, f, name, nl, v, (size_t)(ve - v));
        if (r)
            return r;
    }
}

static void reset(gh_h1_message *m, gh_header *headers)
{
    *m = (gh_h1_message){ .headers = headers };
}

/* Bytes the parser may look at: a head longer than max_bytes is refused, so
 * there is no need to scan beyond it. */
static size_t limit_of(size_t max_bytes)
{
    return max_bytes > (size_t)INT_MAX ? (size_t)INT_MAX : max_bytes;
}

static int finish(int r, gh_h1_message *m, size_t len, size_t lim)
{
    if (r == GH_H1_AGAIN && len > lim) {
        m->error = GH_H1E_HEAD_TOO_LARGE;
        return GH_H1_TOO_BIG;
    }
    return r;
}

size_t gh_h1_target_authority(const char *target, size_t n, size_t *len)
{
    uchar *t = (uchar *)target;
    size_t off = n > 7 && ieq(t, "http://", 7) ? 7 : n > 8 && ieq(t, "https://", 8) ? 8 : 0;
    size_t i = off;
    while (off && i < n && t[i] != '/' && t[i] != '?')
        i++;
    *len = i - off;
    return off;
}

/* Check the request-target's form against the method (RFC 9112 §3.2). */
static bool valid_target(uchar *meth, size_t ml, uchar *t, size_t tl)
{
    bool connect = ml == 7 && memcmp(meth, "CONNECT", 7) == 0;
    if (connect) {                                 /* authority-form, port required */
        uchar *colon = NULL;
        for (size_t i = tl; i > 0; i--)
            if (t[i - 1] == ':') { colon = t + i - 1; break; }
            else if (t[i - 1] == ']') break;
        return colon && colon + 1 < t + tl && valid_host(t, tl);
    }
    if (t[0] == '/')
        return true;
    if (tl == 1 && t[0] == '*')
        return ml == 7 && memcmp(meth, "OPTIONS", 7) == 0;
    /* absolute-form: its authority stands for Host (RFC 9112 §3.2.2), so it
     * obeys Host's rule; userinfo ("user@host") is refused with the rest */
    size_t al, off = gh_h1_target_authority((const char *)t, tl, &al);
    return off && valid_host(t + off, al);
}

static int parse_request(gh_h1_message *m, framing *f, uchar *buf, uchar *end,
                         size_t max_headers)
{
    uchar *p = buf;
    /* RFC 9112 §2.2: ignore empty lines before the request-line. */
    while (p < end && (*p == '\r' || *p == '\n')) {
        if (*p == '\n')
            FAIL(GH_H1E_LINE_END);
        if (p + 1 == end)
            return GH_H1_AGAIN;
        if (p[1] != '\n')
            FAIL(GH_H1E_LINE_END);
        p += 2;
    }

    uchar *s = p;
    while (p < end && (gh_h1_cls[*p] & C_TOKEN))
        p++;
    if (p == end)
        return GH_H1_AGAIN;
    if (*p != ' ' || p == s)
        FAIL(GH_H1E_METHOD);
    m->method = (const char *)s;
    m->method_len = (uint32_t)(p - s);

    s = ++p;
    while (end - p >= 8 && !has_nonvchar(load8(p)))
        p += 8;
    while (p < end && (gh_h1_cls[*p] & C_TARGET))
        p++;
    if (p == end)
        return GH_H1_AGAIN;
    if (p > s && *p == '\r' && p + 1 == end)
        return GH_H1_AGAIN;
    if (p > s && (*p == '\n' || (*p == '\r' && p[1] == '\n')))
        FAIL(GH_H1E_VERSION);                      /* "GET /" alone: HTTP/0.9 */
    if (*p != ' ' || p == s)
        FAIL(GH_H1E_TARGET);
    m->target = (const char *)s;
    m->target_len = (uint32_t)(p - s);
    if (!valid_target((uchar *)m->method, m->method_len, s, m->target_len))
        FAIL(GH_H1E_TARGET);

    static const char ver[] = "HTTP/1.";
    p++;
    for (int i = 0; i < 7; i++, p++) {
        if (p == end)
            return GH_H1_AGAIN;
        if (*p != (unsigned char)ver[i])
            FAIL(i < 5 && lower(*p) != lower((unsigned char)ver[i]) ? GH_H1E_TARGET
                                                                  : GH_H1E_VERSION);
    }
    if (p == end)
        return GH_H1_AGAIN;
    if (*p != '0' && *p != '1')
        FAIL(GH_H1E_VERSION);
    m->minor = *p++ - '0';
    if (p == end)
        return GH_H1_AGAIN;
    if (*p != '\r')
        FAIL(*p == '\n' ? GH_H1E_LINE_END : GH_H1E_VERSION);
    if (++p == end)
        return GH_H1_AGAIN;
    if (*p++ != '\n')
        FAIL(GH_H1E_LINE_END);

    int r = parse_fields(m, f, &p, end, max_headers);
    if (r)
        return r;

    bool v11 = m->minor == 1;
    if (v11 && f->nhost == 0)
        FAIL(GH_H1E_HOST_MISSING);
    m->body = f->nte ? GH_BODY_CHUNKED : f->ncl && f->cl ? GH_BODY_LENGTH : GH_BODY_NONE;
    m->content_length = m->body == GH_BODY_LENGTH ? f->cl : 0;
    m->keep_alive = !f->conn_close && (v11 || f->conn_keep_alive);
    m->upgrade = v11 && f->conn_upgrade && f->has_upgrade;   /* 1.0: MUST ignore */
    m->expect_continue = v11 && f->expect;
    return (int)(p - buf);
}

int gh_h1_parse_request(const char *buf, size_t len, gh_h1_message *m,
                        gh_header *headers, size_t max_headers, size_t max_bytes)
{
    reset(m, headers);
    size_t lim = limit_of(max_bytes);
    uchar *b = (uchar *)buf;
    framing f = { .request = true };
    int r = parse_request(m, &f, b, b + (len < lim ? len : lim), max_headers);
    return finish(r, m, len, lim);
}

static int parse_response(gh_h1_message *m, framing *f, uchar *buf, uchar *end,
                          size_t max_headers, bool head_request)
{
    static const char ver[] = "HTTP/1.";
    uchar *p = buf;
    for (int i = 0; i < 7; i++, p++) {
        if (p == end)
            return GH_H1_AGAIN;
        if (*p != (unsigned char)ver[i])
            FAIL(*p == '\n' ? GH_H1E_LINE_END : GH_H1E_VERSION);
    }
    if (p == end)
        return GH_H1_AGAIN;
    if (*p != '0' && *p != '1')
        FAIL(GH_H1E_VERSION);
    m->minor = *p++ - '0';
    if (p == end)
        return GH_H1_AGAIN;
    if (*p != ' ')
        FAIL((unsigned)(*p - '0') < 10u ? GH_H1E_VERSION : GH_H1E_STATUS);
    p++;

    int status = 0;
    for (int i = 0; i < 3; i++, p++) {
        if (p == end)
            return GH_H1_AGAIN;
        unsigned d = (unsigned)(*p - '0');
        if (d > 9 || (i == 0 && d == 0))
            FAIL(GH_H1E_STATUS);
        status = status * 10 + (int)d;
    }
    m->status = status;
    if (p == end)
        return GH_H1_AGAIN;
    /* "HTTP/1.1 200\r\n" (no SP) is tolerated; the reason may be empty. */
    if (*p == ' ') {
        uchar *s = ++p;
        while (p < end && (gh_h1_cls[*p] & C_VALUE))
            p++;
        if (p == end)
            return GH_H1_AGAIN;
        m->reason = (const char *)s;
        m->reason_len = (uint32_t)(p - s);
    } else {
        m->reason = (const char *)p;
    }
    if (*p != '\r')
        FAIL(*p == '\n' ? GH_H1E_LINE_END : GH_H1E_STATUS);
    if (++p == end)
        return GH_H1_AGAIN;
    if (*p++ != '\n')
        FAIL(GH_H1E_LINE_END);

    int r = parse_fields(m, f, &p, end, max_headers);
    if (r)
        return r;

    bool v11 = m->minor == 1;
    if (head_request || status < 200 || status == 204 || status == 304)
        m->body = GH_BODY_NONE;            /* framing headers validated above, not used */
    else if (f->nte)
        m->body = GH_BODY_CHUNKED;
    else if (f->ncl)
        m->body = f->cl ? GH_BODY_LENGTH : GH_BODY_NONE;
    else
        m->body = GH_BODY_UNTIL_CLOSE;
    m->content_length = m->body == GH_BODY_LENGTH ? f->cl : 0;
    m->keep_alive = m->body != GH_BODY_UNTIL_CLOSE && !f->conn_close &&
                    (v11 || f->conn_keep_alive);
    m->upgrade = f->conn_upgrade && f->has_upgrade;
    return (int)(p - buf);
}

int gh_h1_parse_response(const char *buf, size_t len, gh_h1_message *m,
                         gh_header *headers, size_t max_headers, size_t max_bytes,
                         bool head_request)
{
    reset(m, headers);
    size_t lim = limit_of(max_bytes);
    uchar *b = (uchar *)buf;
    framing f = { .request = false };
    int r = parse_response(m, &f, b, b + (len < lim ? len : lim), max_headers,
                           head_request);
    return finish(r, m, len, lim);
}
