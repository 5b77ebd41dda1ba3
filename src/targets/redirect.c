#include <string.h>
#include "http/status.h"
#include "proxy/headers.h"
#include "targets/targets.h"

/* `to` with {name} placeholders filled from the match's params. */
static gh_str fill(gh_exchange *ex, gh_str tmpl, const gh_route_match *m)
{
    size_t cap = tmpl.len + 1;
    for (size_t i = 0; i < m->nparams; i++)
        cap += m->params[i].value.len;
    char *out = gh_arena_alloc(&ex->arena, cap);
    size_t o = 0;
    for (size_t i = 0; out && i < tmpl.len; i++) {
        if (tmpl.p[i] == '{') {
            const char *close = memchr(tmpl.p + i, '}', tmpl.len - i);
            if (close) {
                gh_str name = { tmpl.p + i + 1, (size_t)(close - tmpl.p - i - 1) };
                if (name.len && name.p[name.len - 1] == '*')
                    name.len--;
                for (size_t k = 0; k < m->nparams; k++) {
                    if (gh_str_eq(m->params[k].name, name)) {
                        gh_str v = m->params[k].value;
                        /* {rest} after a '/' in the template: no doubled slash */
                        if (v.len && v.p[0] == '/' && o && out[o - 1] == '/') {
                            v.p++;
                            v.len--;
                        }
                        if (o + v.len < cap) {
                            memcpy(out + o, v.p, v.len);
                            o += v.len;
                        }
                        break;
                    }
                }
                i = (size_t)(close - tmpl.p);
                continue;
            }
        }
        if (o + 1 < cap)
            out[o++] = tmpl.p[i];
    }
    if (out)
        out[o] = '\0';
    return (gh_str){ out, o };
}

void gh_target_redirect(gh_exchange *ex, const gh_route_cfg *route, const gh_route_match *m)
{
    gh_str to = fill(ex, route->redirect.to, m);
    gh_header h[1] = { { "Location", to.p, 8, (uint32_t)to.len } };
    size_t n;
    gh_header *out = gh_apply_header_ops(ex, &route->response_headers, h, 1, &n);
    if (!to.p || !out) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    gh_respond(ex, route->redirect.status, out, n, NULL, 0);
}
