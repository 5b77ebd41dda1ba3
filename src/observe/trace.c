#include "observe/trace.h"
#include <string.h>
#include <strings.h>

static bool lhex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static bool all_hex_not_zero(const char *p, int n)
{
    bool zero = true;
    for (int i = 0; i < n; i++) {
        if (!lhex(p[i]))
            return false;
        zero = zero && p[i] == '0';
    }
    return !zero;
}

bool gh_traceparent_parse(const char *v, size_t n, const char **ids)
{
    if (n < GH_TRACEPARENT_LEN || !lhex(v[0]) || !lhex(v[1]) || v[2] != '-')
        return false;
    bool v00 = v[0] == '0' && v[1] == '0';
    if ((v[0] == 'f' && v[1] == 'f') || (v00 && n != GH_TRACEPARENT_LEN))
        return false;
    /* a later version may add fields after the flags, behind a '-' */
    if (n > GH_TRACEPARENT_LEN && v[GH_TRACEPARENT_LEN] != '-')
        return false;
    if (v[35] != '-' || v[52] != '-' || !all_hex_not_zero(v + 3, 32) || !all_hex_not_zero(v + 36, 16) ||
        !lhex(v[53]) || !lhex(v[54]))
        return false;
    *ids = v + 3;
    return true;
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
}

/* key "=" value: key lcalpha/digit first, then lcalpha digit _ - * /, one
 * optional '@' (tenant@system); value printable ASCII without ',' and '=',
 * not ending in a space; each at most 256. */
static bool member_ok(const char *p, size_t n)
{
    const char *eq = memchr(p, '=', n);
    if (!eq)
        return false;
    size_t kl = (size_t)(eq - p), vl = n - kl - 1;
    if (kl == 0 || kl > 256 || vl == 0 || vl > 256 || !((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= '0' && p[0] <= '9')))
        return false;
    int at = 0;
    for (size_t i = 1; i < kl; i++)
        if (p[i] == '@' ? ++at > 1 || i + 1 == kl : !key_char(p[i]))
            return false;
    for (size_t i = kl + 1; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e || p[i] == ',' || p[i] == '=')
            return false;
    return p[n - 1] != ' ';
}

bool gh_tracestate_ok(const char *v, size_t n)
{
    if (n > GH_TRACESTATE_MAX)
        return false;
    int members = 0;
    size_t i = 0;
    while (i <= n) {
        size_t e = i;
        while (e < n && v[e] != ',')
            e++;
        size_t a = i, b = e;   /* the member without its OWS */
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b > a && (++members > GH_TRACESTATE_MEMBERS || !member_ok(v + a, b - a)))
            return false;
        i = e + 1;
    }
    return true;
}

/* Two hex digits per byte from one table: half the steps of a nibble loop. */
static const char hex_pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

static void put_hex(char *out, uint64_t v)
{
    for (int i = 14; i >= 0; i -= 2, v >>= 8)
        memcpy(out + i, hex_pairs + 2 * (v & 255), 2);
}

/* Several tracestate fields are one list (RFC 9110 §5.3): joined with ','. */
static gh_str join_state(gh_exchange *ex, const gh_header *first, size_t count)
{
    if (count == 1)
        return (gh_str){ first->value, first->value_len };
    size_t len = 0;
    for (size_t i = 0; i < ex->nheaders; i++)
        if (ex->headers[i].name_len == 10 && strncasecmp(ex->headers[i].name, "tracestate", 10) == 0)
            len += ex->headers[i].value_len + 1;
    if (len > GH_TRACESTATE_MAX + 1)
        return GH_STR_NULL;   /* too long: dropped */
    char *p = gh_arena_alloc(&ex->arena, len);
    if (!p)
        return GH_STR_NULL;
    size_t k = 0;
    for (size_t i = 0; i < ex->nheaders; i++)
        if (ex->headers[i].name_len == 10 && strncasecmp(ex->headers[i].name, "tracestate", 10) == 0) {
            if (k)
                p[k++] = ',';
            memcpy(p + k, ex->headers[i].value, ex->headers[i].value_len);
            k += ex->headers[i].value_len;
        }
    return (gh_str){ p, k };
}

void gh_trace_begin(gh_exchange *ex)
{
    if (ex->trace.set)
        return;
    ex->trace.set = true;
    const gh_header *tp = NULL, *ts = NULL;
    size_t ntp = 0, nts = 0;
    for (size_t i = 0; i < ex->nheaders; i++) {   /* one pass; most names fail on length or 't' */
        const gh_header *h = &ex->headers[i];
        if ((h->name_len != 10 && h->name_len != 11) || (h->name[0] | 0x20) != 't')
            continue;
        if (h->name_len == 11 && strncasecmp(h->name, "traceparent", 11) == 0)
            tp = ntp++ ? tp : h;
        else if (h->name_len == 10 && strncasecmp(h->name, "tracestate", 10) == 0)
            ts = nts++ ? ts : h;
    }
    char *out = ex->trace.parent;
    const char *ids;
    memcpy(out, "00-", 3);
    if (ntp == 1 && gh_traceparent_parse(tp->value, tp->value_len, &ids)) {
        memcpy(out + 3, ids, 52);   /* trace id and flags kept; parent-id replaced below */
        if (ts) {
            gh_str s = join_state(ex, ts, nts);
            if (s.p && s.len && gh_tracestate_ok(s.p, s.len))
                ex->trace.state = s;
        }
    } else {   /* absent, repeated or invalid: a new trace, sampled (the access log records every request) */
        put_hex(out + 3, gh_random(ex->env) | 1);   /* never all zero */
        put_hex(out + 19, gh_random(ex->env));
        memcpy(out + 52, "-01", 3);
    }
    out[35] = '-';
    put_hex(out + 36, gh_random(ex->env) | 1);
    out[55] = '\0';
}
