#include "http/hop.h"
#include <strings.h>

static bool is(const char *name, size_t len, const char *lit, size_t litlen)
{
    return len == litlen && strncasecmp(name, lit, len) == 0;
}

int gh_hop_kind(const char *name, size_t len)
{
    /* by length and first letter first: most fields cost two comparisons */
    switch (len) {
    case 2:
        return is(name, len, "te", 2) ? GH_HOP_TE : GH_HOP_NO;
    case 7:
        if ((name[0] | 0x20) == 'u')
            return is(name, len, "upgrade", 7) ? GH_HOP_UPGRADE : GH_HOP_NO;
        if ((name[0] | 0x20) == 't')
            return is(name, len, "trailer", 7) ? GH_HOP_YES : GH_HOP_NO;
        break;
    case 10:
        if ((name[0] | 0x20) == 'c')
            return is(name, len, "connection", 10) ? GH_HOP_CONNECTION : GH_HOP_NO;
        if ((name[0] | 0x20) == 'k')
            return is(name, len, "keep-alive", 10) ? GH_HOP_YES : GH_HOP_NO;
        break;
    case 14:
        if ((name[0] | 0x20) == 'c')
            return is(name, len, "content-length", 14) ? GH_HOP_YES : GH_HOP_NO;
        if ((name[0] | 0x20) == 'h')
            return is(name, len, "http2-settings", 14) ? GH_HOP_YES : GH_HOP_NO;
        break;
    case 17:
        if ((name[0] | 0x20) == 't' && is(name, len, "transfer-encoding", 17))
            return GH_HOP_YES;
        break;
    default:
        break;
    }
    return len > 6 && (name[0] | 0x20) == 'p' && strncasecmp(name, "proxy-", 6) == 0 ? GH_HOP_YES : GH_HOP_NO;
}

static bool sep(char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

size_t gh_hop_strip_named(gh_header *h, size_t n, const gh_str *conn, size_t nconn)
{
    uint64_t lens = 0;   /* name lengths present: a token of another length names nothing here */
    for (size_t i = 0; i < n; i++)
        lens |= 1ull << (h[i].name_len & 63);
    for (size_t c = 0; c < nconn && n; c++) {
        const char *p = conn[c].p, *end = p + conn[c].len;
        while (p < end) {
            while (p < end && sep(*p))
                p++;
            const char *s = p;
            while (p < end && !sep(*p))
                p++;
            size_t tl = (size_t)(p - s);
            if (!tl || !(lens >> (tl & 63) & 1))
                continue;
            size_t w = 0;
            for (size_t i = 0; i < n; i++)
                if (!is(h[i].name, h[i].name_len, s, tl))
                    h[w++] = h[i];
            n = w;
        }
    }
    return n;
}

bool gh_hop_te_trailers(const char *v, size_t n)
{
    const char *p = v, *end = v + n;
    while (p < end) {
        while (p < end && sep(*p))
            p++;
        const char *s = p;
        while (p < end && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        if (is(s, (size_t)(p - s), "trailers", 8))
            return true;
        while (p < end && *p != ',')
            p++;
    }
    return false;
}

bool gh_hop_upgrade_websocket(const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return is(v, n, "websocket", 9);
}
