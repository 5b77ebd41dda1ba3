#include "server/intake.h"
#include <stdlib.h>
#include <string.h>
#include "http/hop.h"

struct gh_intake {
    int underscores;     /* enum gh_underscores */
    uint64_t lens;       /* bit (len & 63) of every identity name's length */
    size_t n;
    gh_str *names;       /* lower-case, '_' written '-' */
};

/* a[0..n) is b (lower-case, '-') ignoring case, with '_' taken as '-' (a CGI
 * or WSGI upstream sees X_User_Id and X-User-Id as one HTTP_X_USER_ID). */
static bool same_name(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = gh_lower(a[i]);
        if ((c == '_' ? '-' : c) != b[i])
            return false;
    }
    return true;
}

static bool known(const gh_intake *in, gh_str s)
{
    for (size_t i = 0; i < in->n; i++)
        if (in->names[i].len == s.len && same_name(s.p, in->names[i].p, s.len))
            return true;
    return false;
}

/* Adds a name (count only when in->names is NULL); buf advances. */
static void add(gh_intake *in, gh_str s, char **buf, size_t *count, size_t *bytes)
{
    if (!in->names) {
        (*count)++;
        *bytes += s.len + 1;
        return;
    }
    if (known(in, s))
        return;
    char *p = *buf;
    for (size_t i = 0; i < s.len; i++)
        p[i] = s.p[i] == '_' ? '-' : gh_lower(s.p[i]);
    p[s.len] = '\0';
    in->names[in->n++] = (gh_str){ p, s.len };
    in->lens |= 1ull << (s.len & 63);
    *buf += s.len + 1;
}

static void add_claims(gh_intake *in, const gh_plugin_set *set, char **buf, size_t *count, size_t *bytes)
{
    /* a disabled jwt (`jwt: false`) is a zeroed gh_jwt_cfg: no claims */
    const gh_jwt_cfg *j = (const gh_jwt_cfg *)set->p[GH_PLUGIN_JWT];
    for (size_t i = 0; j && i < j->nforward_claims; i++)
        add(in, j->forward_claims[i].header, buf, count, bytes);
}

/* Every name the gateway asserts identity with, from anywhere in the
 * configuration: a header a route without jwt would otherwise pass on. */
static void collect(gh_intake *in, const gh_config *cfg, char **buf, size_t *count, size_t *bytes)
{
    add(in, GH_STR("X-Client-Cert-Subject"), buf, count, bytes);
    add_claims(in, &cfg->plugins, buf, count, bytes);
    for (size_t r = 0; r < cfg->nroutes; r++) {
        const gh_route_cfg *rt = &cfg->routes[r];
        add_claims(in, &rt->plugins, buf, count, bytes);
        for (size_t v = 0; rt->versions && v < rt->versions->n; v++)
            add_claims(in, &rt->versions->list[v].route.plugins, buf, count, bytes);
    }
}

gh_intake *gh_intake_build(const gh_config *cfg)
{
    gh_intake sizing = { 0 };
    size_t count = 0, bytes = 0;
    collect(&sizing, cfg, NULL, &count, &bytes);
    gh_intake *in = calloc(1, sizeof(*in) + count * sizeof(gh_str) + bytes);
    if (!in)
        return NULL;
    in->underscores = cfg->limits.underscores_in_headers;
    in->names = (gh_str *)(in + 1);
    char *buf = (char *)(in->names + count);
    collect(in, cfg, &buf, &count, &bytes);
    return in;
}

void gh_intake_free(gh_intake *in)
{
    free(in);
}

/* X-Consumer* (the consumer and its groups) or a configured identity name. */
static bool identity(const gh_intake *in, const char *name, size_t nl)
{
    if (nl >= 10 && (name[0] | 0x20) == 'x' && same_name(name, "x-consumer", 10))
        return true;
    if (!(in->lens >> (nl & 63) & 1))
        return false;
    return known(in, (gh_str){ name, nl });
}

int gh_intake_run(gh_exchange *ex, const gh_intake *in, gh_str *bad)
{
    gh_header *h = ex->headers;
    size_t n = ex->nheaders, w = 0;
    gh_str *conn = NULL;   /* Connection values, kept only when there are any */
    size_t nconn = 0;
    bool websocket = false;
    for (size_t i = 0; i < n; i++) {
        const char *name = h[i].name;
        size_t nl = h[i].name_len;
        if (in->underscores != GH_UNDERSCORES_ALLOW && memchr(name, '_', nl)) {
            if (in->underscores == GH_UNDERSCORES_REJECT) {
                *bad = (gh_str){ name, nl };
                return GH_INTAKE_UNDERSCORE;
            }
            continue;
        }
        switch (gh_hop_kind(name, nl)) {
        case GH_HOP_NO:
            if (!identity(in, name, nl))
                h[w++] = h[i];
            continue;
        case GH_HOP_CONNECTION:
            if (!conn && !(conn = gh_arena_alloc(&ex->arena, n * sizeof(*conn))))
                return GH_INTAKE_NOMEM;
            conn[nconn++] = (gh_str){ h[i].value, h[i].value_len };
            continue;
        case GH_HOP_TE:   /* gRPC needs "te: trailers" toward HTTP/2 upstreams (SPEC §12.22) */
            ex->te_trailers = ex->te_trailers || gh_hop_te_trailers(h[i].value, h[i].value_len);
            continue;
        case GH_HOP_UPGRADE:
            websocket = websocket || gh_hop_upgrade_websocket(h[i].value, h[i].value_len);
            continue;
        default:
            continue;
        }
    }
    if (nconn)
        w = gh_hop_strip_named(h, w, conn, nconn);
    ex->nheaders = w;
    /* only WebSocket becomes a tunnel: h2c (or anything else) is served as
     * a plain request, its Upgrade and HTTP2-Settings gone */
    ex->upgrade = ex->upgrade && websocket;
    return GH_INTAKE_OK;
}
