/* request.c — request facts every codec derives the same way (the host
 * without its port, path and query from the request-target, the peer; the
 * method's bit is core/method.c's), and lookups into a request: query parameters, cookies. */
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "http/request.h"

/* Host without port, lower-cased, into the arena. */
gh_str gh_host_of(gh_arena *ar, const char *h, size_t n)
{
    size_t end = n;
    if (n && h[0] == '[') {
        const char *rb = memchr(h, ']', n);
        end = rb ? (size_t)(rb - h) + 1 : n;
    } else {
        const char *colon = memchr(h, ':', n);
        if (colon)
            end = (size_t)(colon - h);
    }
    char *out = gh_arena_alloc(ar, end + 1);
    for (size_t i = 0; i < end; i++)
        out[i] = gh_lower(h[i]);
    out[end] = '\0';
    return (gh_str){ out, end };
}

/* Split the request-target into path and query; absolute-form gives the host. */
void gh_split_target(gh_exchange *ex)
{
    const char *t = ex->target.p;
    size_t n = ex->target.len, alen;
    size_t off = n && t[0] != '/' ? gh_h1_target_authority(t, n, &alen) : 0;
    if (off) {
        /* RFC 9112 §3.2.2: absolute-form's authority replaces Host */
        ex->authority = (gh_str){ t + off, alen };
        ex->host = gh_host_of(&ex->arena, t + off, alen);
        t += off + alen;
        n -= off + alen;
    }
    const char *q = memchr(t, '?', n);
    size_t pl = q ? (size_t)(q - t) : n;
    ex->raw_path = pl ? (gh_str){ t, pl } : (gh_str){ "/", 1 };   /* "http://a?x": path "/" */
    ex->query = q ? (gh_str){ q + 1, n - pl - 1 } : (gh_str){ "", 0 };
}


void gh_set_peer(gh_exchange *ex, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, ex->peer, sizeof(ex->peer));
        ex->client_port = ntohs(v6->sin6_port);
        if (strncmp(ex->peer, "::ffff:", 7) == 0 && strchr(ex->peer + 7, '.'))
            memmove(ex->peer, ex->peer + 7, strlen(ex->peer + 7) + 1);
    } else {   /* by hand: inet_ntop goes through sprintf, per request */
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        const uint8_t *b = (const uint8_t *)&v4->sin_addr;
        size_t n = 0;
        for (int i = 0; i < 4; i++) {
            n += gh_u64_dec(ex->peer + n, b[i]);
            ex->peer[n++] = i < 3 ? '.' : '\0';
        }
        ex->client_port = ntohs(v4->sin_port);
    }
    memcpy(ex->client, ex->peer, sizeof(ex->client));
}

bool gh_query_param(gh_str query, gh_str name, gh_str *value, gh_str *item)
{
    const char *p = query.p, *end = p + query.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        const char *name_end = eq ? eq : item_end;
        if ((size_t)(name_end - p) == name.len && memcmp(p, name.p, name.len) == 0) {
            *value = eq ? gh_str_from(eq + 1, (size_t)(item_end - eq - 1)) : gh_str_from(item_end, 0);
            if (item)
                *item = gh_str_from(p, (size_t)(item_end - p));
            return true;
        }
        p = amp ? amp + 1 : end;
    }
    return false;
}


size_t gh_query_decode(gh_str in, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        int hi, lo;
        if (in.p[i] == '%' && i + 2 < in.len && (hi = gh_hexval((unsigned char)in.p[i + 1])) >= 0 &&
            (lo = gh_hexval((unsigned char)in.p[i + 2])) >= 0) {
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = in.p[i] == '+' ? ' ' : in.p[i];
        }
    }
    return n;
}

bool gh_cookie(const gh_exchange *ex, gh_str name, gh_str *value)
{
    for (size_t i = 0; i < ex->nheaders; i++) {
        const gh_header *h = &ex->headers[i];
        if (h->name_len != 6 || strncasecmp(h->name, "cookie", 6) != 0)
            continue;
        const char *p = h->value, *end = p + h->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *pair_end = semi ? semi : end;
            const char *eq = memchr(p, '=', (size_t)(pair_end - p));
            if (eq && (size_t)(eq - p) == name.len && memcmp(p, name.p, name.len) == 0) {
                *value = gh_str_from(eq + 1, (size_t)(pair_end - eq - 1));
                return true;
            }
            p = pair_end;
        }
    }
    return false;
}
