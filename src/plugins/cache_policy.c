/* cache_policy.c — see cache_policy.h. */
#include "plugins/cache_policy.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/method.h"

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* delta-seconds, clamped; -1 when not digits */
static int64_t seconds(const char *p, size_t n)
{
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {   /* tolerated: max-age="60" */
        p++;
        n -= 2;
    }
    if (n == 0)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        if (v < 1000000000)
            v = v * 10 + (p[i] - '0');
    }
    return v;
}

void gh_cache_cc_parse(const char *v, size_t len, gh_cache_cc *cc)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',' && v[i] != '=')
            i++;
        size_t e = i;
        while (e > s && is_ows(v[e - 1]))
            e--;
        const char *arg = NULL;
        size_t alen = 0;
        if (i < len && v[i] == '=') {
            i++;
            while (i < len && is_ows(v[i]))
                i++;
            arg = v + i;
            if (i < len && v[i] == '"') {   /* a quoted argument may hold commas */
                size_t q = i + 1;
                while (q < len && v[q] != '"')
                    q++;
                i = q < len ? q + 1 : q;
            }
            while (i < len && v[i] != ',')
                i++;
            alen = (size_t)(v + i - arg);
            while (alen && is_ows(arg[alen - 1]))
                alen--;
        }
        const char *d = v + s;
        size_t dn = e - s;
#define IS(lit) (dn == sizeof(lit) - 1 && strncasecmp(d, lit, dn) == 0)
        if (IS("no-store"))
            cc->no_store = true;
        else if (IS("private"))
            cc->private_ = true;
        else if (IS("no-cache"))
            cc->no_cache = true;
        else if (IS("max-age") && arg)
            cc->max_age = seconds(arg, alen) < 0 ? 0 : seconds(arg, alen);   /* invalid: stale */
        else if (IS("s-maxage") && arg)
            cc->s_maxage = seconds(arg, alen) < 0 ? 0 : seconds(arg, alen);
#undef IS
    }
}

bool gh_cache_http_date(const char *v, size_t len, time_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char buf[32];
    if (len != 29)
        return false;
    memcpy(buf, v, len);
    buf[len] = '\0';
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (buf[3] != ',' || buf[4] != ' ' || buf[7] != ' ' || buf[11] != ' ' || buf[16] != ' ' || buf[19] != ':' ||
        buf[22] != ':' || strcmp(buf + 25, " GMT") != 0)
        return false;
    const char *m = NULL;
    for (int k = 0; k < 12 && !m; k++)
        if (memcmp(months + 3 * k, buf + 8, 3) == 0)
            m = months + 3 * k;
    if (!m)
        return false;
    int f[5] = { 0 };
    static const int at[5] = { 5, 12, 17, 20, 23 }, w[5] = { 2, 4, 2, 2, 2 };
    for (int k = 0; k < 5; k++)
        for (int j = 0; j < w[k]; j++) {
            char c = buf[at[k] + j];
            if (c < '0' || c > '9')
                return false;
            f[k] = f[k] * 10 + (c - '0');
        }
    struct tm tm = { .tm_mday = f[0], .tm_mon = (int)((m - months) / 3), .tm_year = f[1] - 1900,
                     .tm_hour = f[2], .tm_min = f[3], .tm_sec = f[4] };
    if (f[0] < 1 || f[0] > 31 || f[2] > 23 || f[3] > 59 || f[4] > 60)
        return false;
    *out = timegm(&tm);
    return true;
}

static bool name_is(const gh_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static bool status_cacheable(int s)
{
    switch (s) {
    case 200: case 203: case 204: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return true;
    default:
        return false;
    }
}

uint64_t gh_cache_lifetime_ms(int status, const gh_header *h, size_t n, uint64_t ttl_ms, time_t now)
{
    if (!status_cacheable(status))
        return 0;
    gh_cache_cc cc = { .max_age = -1, .s_maxage = -1 };
    const gh_header *expires = NULL;
    time_t date = now;
    for (size_t i = 0; i < n; i++) {
        if (name_is(&h[i], "cache-control"))
            gh_cache_cc_parse(h[i].value, h[i].value_len, &cc);
        else if (name_is(&h[i], "set-cookie"))
            return 0;   /* one client's cookie must not reach another */
        else if (name_is(&h[i], "vary") && memchr(h[i].value, '*', h[i].value_len))
            return 0;
        else if (name_is(&h[i], "expires"))
            expires = &h[i];
        else if (name_is(&h[i], "date"))
            gh_cache_http_date(h[i].value, h[i].value_len, &date);
    }
    if (cc.no_store || cc.private_ || cc.no_cache)
        return 0;
    int64_t fresh = cc.s_maxage >= 0 ? cc.s_maxage : cc.max_age;   /* a shared cache prefers s-maxage */
    uint64_t ms;
    if (fresh >= 0) {
        ms = (uint64_t)fresh * 1000;
    } else if (expires) {
        time_t t;
        if (!gh_cache_http_date(expires->value, expires->value_len, &t) || t <= date)
            return 0;   /* an invalid Expires means already expired (RFC 9111 §5.3) */
        ms = (uint64_t)(t - date) * 1000;
    } else {
        ms = ttl_ms;
    }
    return ms < ttl_ms ? ms : ttl_ms;
}

static bool put(gh_exchange *ex, char **o, char *end, const char *p, size_t n)
{
    (void)ex;
    if ((size_t)(end - *o) < n + 5)
        return false;
    uint32_t l = (uint32_t)n;
    memcpy(*o, &l, 4);
    memcpy(*o + 4, p, n);
    *o += 4 + n;
    return true;
}

static bool put_header(gh_exchange *ex, char **o, char *end, gh_str name)
{
    const gh_header *h = gh_exchange_header(ex, name.p, name.len);
    /* absent and empty differ: 0xff marks absent */
    if (!h)
        return put(ex, o, end, "\xff", 1);
    return put(ex, o, end, h->value, h->value_len);
}

bool gh_cache_key(gh_exchange *ex, gh_str route, const gh_cache_cfg *c, gh_str *key)
{
    size_t cap = 64 + route.len + ex->host.len + ex->path.len + ex->query.len;
    for (size_t i = 0; i < c->nvary; i++) {
        const gh_header *h = gh_exchange_header(ex, c->vary[i].p, c->vary[i].len);
        cap += 5 + (h ? h->value_len : 1);
    }
    for (size_t i = 0; i < c->nkey_headers; i++) {
        const gh_header *h = gh_exchange_header(ex, c->key_headers[i].p, c->key_headers[i].len);
        cap += 5 + (h ? h->value_len : 1);
    }
    char *buf = gh_arena_alloc(&ex->arena, cap);
    if (!buf)
        return false;
    char *o = buf, *end = buf + cap;
    bool ok = put(ex, &o, end, "GET", 3) && put(ex, &o, end, route.p, route.len) &&
              put(ex, &o, end, ex->host.p, ex->host.len) && put(ex, &o, end, ex->path.p, ex->path.len) &&
              put(ex, &o, end, ex->query.p, ex->query.len);
    for (size_t i = 0; ok && i < c->nvary; i++)
        ok = put_header(ex, &o, end, c->vary[i]);
    for (size_t i = 0; ok && i < c->nkey_headers; i++)
        ok = put_header(ex, &o, end, c->key_headers[i]);
    *key = (gh_str){ buf, (size_t)(o - buf) };
    return ok;
}

bool gh_cache_etag_match(const char *inm, size_t n, const char *etag, size_t elen)
{
    if (!etag || !elen)
        return false;
    if (elen > 2 && etag[0] == 'W' && etag[1] == '/') {
        etag += 2;
        elen -= 2;
    }
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows(inm[i]) || inm[i] == ','))
            i++;
        size_t s = i;
        while (i < n && inm[i] != ',')
            i++;
        size_t e = i;
        while (e > s && is_ows(inm[e - 1]))
            e--;
        const char *t = inm + s;
        size_t tn = e - s;
        if (tn == 1 && t[0] == '*')
            return true;
        if (tn > 2 && t[0] == 'W' && t[1] == '/') {
            t += 2;
            tn -= 2;
        }
        if (tn == elen && memcmp(t, etag, tn) == 0)
            return true;
    }
    return false;
}
