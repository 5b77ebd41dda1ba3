#include <string.h>
#include "http/status.h"
#include "proxy/headers.h"
#include "targets/targets.h"

/* The request body (if any) is not read: the codec closes the connection
 * after the answer when a body is left unread. */
void gh_target_respond(gh_exchange *ex, const gh_route_cfg *route)
{
    size_t nh = route->respond.nheaders;
    gh_header *h = gh_arena_alloc(&ex->arena, (nh + 1) * sizeof(*h));
    if (!h) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    bool has_type = false;
    for (size_t i = 0; i < nh; i++) {
        const gh_kv *kv = &route->respond.headers[i];
        h[i] = (gh_header){ kv->name.p, kv->value.p, (uint32_t)kv->name.len, (uint32_t)kv->value.len };
        if (gh_str_ieq_c(kv->name, "content-type"))
            has_type = true;
    }
    if (!has_type && route->respond.body.len)
        h[nh++] = (gh_header){ "Content-Type", "text/plain; charset=utf-8", 12, 25 };
    size_t n;
    gh_header *out = gh_apply_header_ops(ex, &route->response_headers, h, nh, &n);
    if (!out) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    gh_respond(ex, route->respond.status, out, n, route->respond.body.p, route->respond.body.len);
}
