/* redirect.c — the `redirect` target (SPEC §4): `to` with its {name}
 * placeholders filled from the match, and {host} from the request.
 *
 * A relative Location never starts with "//" or "/\": browsers read both
 * (and a leading "\") as a link to another site, and a {rest} such as
 * "\evil.com" (path_strict: false keeps backslashes) would otherwise turn
 * "/{rest}" into an open redirect. Such a run of slashes collapses to one. */
#include <string.h>
#include "core/template.h"
#include "http/h1_parse.h"
#include "http/status.h"
#include "proxy/headers.h"
#include "targets/targets.h"

/* The value of placeholder `name`: a match parameter, else {host}: the
 * request's host (without port, lower-case), which the codec validated as
 * a Host; checked again here because an absolute-form target's authority
 * may not have been. 0: found, 1: unknown name (filled with nothing),
 * -1: {host} without a valid host. */
static int value_of(gh_exchange *ex, const gh_route_match *m, gh_str name, gh_str *v)
{
    for (size_t k = 0; k < m->nparams; k++)
        if (gh_str_eq(m->params[k].name, name)) {
            *v = m->params[k].value;
            return 0;
        }
    if (!gh_str_eq_c(name, "host"))
        return 1;
    *v = ex->host;
    return ex->host.len && gh_h1_valid_host(ex->host.p, ex->host.len) ? 0 : -1;
}

/* Does u start with a URI scheme ("https:", RFC 3986 §3.1)? Else it is relative. */
static bool has_scheme(gh_str u)
{
    size_t i = 0;
    while (i < u.len && ((u.p[i] >= 'a' && u.p[i] <= 'z') || (u.p[i] >= 'A' && u.p[i] <= 'Z') ||
                         (i > 0 && ((u.p[i] >= '0' && u.p[i] <= '9') || u.p[i] == '+' || u.p[i] == '-' ||
                                    u.p[i] == '.'))))
        i++;
    return i > 0 && i < u.len && u.p[i] == ':';
}

/* `to` filled in; *bad_host when it uses {host} and the request has none valid. */
static gh_str fill(gh_exchange *ex, gh_str tmpl, const gh_route_match *m, bool *bad_host)
{
    size_t cap = tmpl.len + ex->host.len + 2;
    for (size_t i = 0; i < m->nparams; i++)
        cap += m->params[i].value.len;
    char *out = gh_arena_alloc(&ex->arena, cap);
    if (!out)
        return (gh_str){ NULL, 0 };
    size_t o = 0, i = 0;
    gh_tpl_ph ph;
    for (; gh_tpl_next(tmpl, i, &ph) && ph.closed; i = ph.end) {
        memcpy(out + o, tmpl.p + i, ph.at - i);
        o += ph.at - i;
        gh_str v;
        int rc = value_of(ex, m, ph.name, &v);
        if (rc < 0)
            *bad_host = true;
        if (rc != 0)
            continue;
        /* {rest} after a '/' in the template: no doubled slash */
        if (v.len && v.p[0] == '/' && o && out[o - 1] == '/') {
            v.p++;
            v.len--;
        }
        memcpy(out + o, v.p, v.len);
        o += v.len;
    }
    memcpy(out + o, tmpl.p + i, tmpl.len - i);
    o += tmpl.len - i;
    gh_str to = { out, o };
    if (!has_scheme(to) && o && (out[0] == '/' || out[0] == '\\')) {
        size_t k = 1;
        while (k < o && (out[k] == '/' || out[k] == '\\'))
            k++;
        out[k - 1] = '/';
        to = (gh_str){ out + k - 1, o - k + 1 };
    }
    out[o] = '\0';
    return to;
}

void gh_target_redirect(gh_exchange *ex, const gh_route_cfg *route, const gh_route_match *m)
{
    bool bad_host = false;
    gh_str to = fill(ex, route->redirect.to, m, &bad_host);
    if (bad_host) {
        gh_problem(ex, 400, "bad_request", "this redirect needs the request's host, and it has none valid",
                   NULL, 0, NULL);
        return;
    }
    gh_header h[1] = { { "Location", to.p, 8, (uint32_t)to.len } };
    size_t n;
    gh_header *out = to.p ? gh_apply_header_ops(ex, &route->response_headers, h, 1, &n) : NULL;
    if (!out) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    gh_respond(ex, route->redirect.status, out, n, NULL, 0);
}
