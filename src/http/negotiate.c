/* negotiate.c — Accept-Encoding (RFC 9110 §12.5.3) and media-type
 * patterns, for the compress plugin. */
#include "http/negotiate.h"
#include <string.h>
#include <strings.h>

static bool ows(char c) { return c == ' ' || c == '\t'; }

static void trim(const char **p, const char **end)
{
    while (*p < *end && ows(**p))
        (*p)++;
    while (*end > *p && ows((*end)[-1]))
        (*end)--;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), as 0..1000;
 * -1 when malformed. */
static int qvalue(const char *p, const char *end)
{
    if (p == end || (*p != '0' && *p != '1'))
        return -1;
    int q = (*p++ - '0') * 1000;
    if (p == end)
        return q;
    if (*p++ != '.' || end - p > 3)
        return -1;
    for (int scale = 100; p < end; p++, scale /= 10) {
        if (*p < '0' || *p > '9')
            return -1;
        q += (*p - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* One element "coding *( OWS ; OWS param )": its name and q (1000 when
 * not given); false when it does not parse. */
static bool element(const char *p, const char *end, const char **name, size_t *nl, int *q)
{
    trim(&p, &end);
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *ne = semi ? semi : end;
    trim(&p, &ne);
    if (p == ne)
        return false;
    *name = p;
    *nl = (size_t)(ne - p);
    *q = 1000;
    while (semi) {
        const char *ps = semi + 1;
        semi = memchr(ps, ';', (size_t)(end - ps));
        const char *pe = semi ? semi : end;
        trim(&ps, &pe);
        if (pe - ps >= 2 && (ps[0] == 'q' || ps[0] == 'Q') && ps[1] == '=') {
            *q = qvalue(ps + 2, pe);
            if (*q < 0)
                return false;
        }
    }
    return true;
}

static bool name_is(const char *name, size_t nl, const char *s, size_t sl)
{
    return nl == sl && strncasecmp(name, s, sl) == 0;
}

int gh_accept_encoding_pick(const char *v, size_t n, bool present, const gh_str *codings, size_t ncodings)
{
    if (!present)
        return GH_CODING_IDENTITY;   /* no preference stated: send as is */
    enum { MAXC = 8 };
    int q[MAXC];
    int star = -1, identity = -1;
    if (ncodings > MAXC)
        ncodings = MAXC;
    for (size_t i = 0; i < ncodings; i++)
        q[i] = -1;
    const char *p = v, *end = v + n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *ee = comma ? comma : end;
        const char *name;
        size_t nl;
        int eq;
        if (element(p, ee, &name, &nl, &eq)) {
            if (name_is(name, nl, "*", 1))
                star = eq;
            else if (name_is(name, nl, "identity", 8))
                identity = eq;
            for (size_t i = 0; i < ncodings; i++)
                if (name_is(name, nl, codings[i].p, codings[i].len) ||
                    (name_is(codings[i].p, codings[i].len, "gzip", 4) && name_is(name, nl, "x-gzip", 6)))
                    q[i] = eq > q[i] ? eq : q[i];
        }
        p = comma ? comma + 1 : end;
    }
    int best = GH_CODING_IDENTITY, bestq = 0;
    for (size_t i = 0; i < ncodings; i++) {
        int qi = q[i] >= 0 ? q[i] : star >= 0 ? star : 0;
        if (qi > bestq) {
            bestq = qi;
            best = (int)i;
        }
    }
    if (identity < 0)
        identity = star >= 0 ? star : 0;   /* unnamed: rated as `*`, else the fallback that never competes */
    return best >= 0 && identity > bestq ? GH_CODING_IDENTITY : best;
}

bool gh_media_type_match(const char *v, size_t n, const gh_str *patterns, size_t npatterns)
{
    const char *end = v + n;
    const char *semi = memchr(v, ';', n);
    if (semi)
        end = semi;
    trim(&v, &end);
    size_t len = (size_t)(end - v);
    const char *slash = memchr(v, '/', len);
    if (!slash || slash == v || slash + 1 == end)
        return false;
    size_t major = (size_t)(slash - v);
    for (size_t i = 0; i < npatterns; i++) {
        gh_str pt = patterns[i];
        if (pt.len == 3 && memcmp(pt.p, "*/*", 3) == 0)
            return true;
        if (pt.len == major + 2 && pt.p[major] == '/' && pt.p[major + 1] == '*' && strncasecmp(pt.p, v, major) == 0)
            return true;
        if (pt.len == len && strncasecmp(pt.p, v, len) == 0)
            return true;
    }
    return false;
}
