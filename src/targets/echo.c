#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "http/json_body.h"
#include "http/status.h"
#include "proxy/headers.h"
#include "targets/targets.h"

/* echo answers SPEC §12.10's JSON: the request as it would be forwarded.
 * The headers are taken from the very request head the proxy would send
 * (built by the same code, then parsed back), so echo cannot drift from
 * what upstreams really receive. The body is read and counted, not kept. */

typedef struct echo_state {
    const gh_route_cfg *route;
    gh_str path_q;
    uint64_t size;
} echo_state;

static json_t *jstr(gh_str s)
{
    return s.len || s.p ? json_stringn(s.p ? s.p : "", s.len) : json_null();
}

static void answer(gh_exchange *ex, echo_state *st)
{
    size_t head_len;
    char *head = gh_proxy_request_head(ex, st->route, st->path_q,
                                       ex->body_kind == GH_BODY_NONE ? 0 : 1, NULL, &head_len);
    json_t *hdrs = json_object();
    if (head) {
        gh_header arr[256];
        gh_h1_message m;
        if (gh_h1_parse_request(head, head_len, &m, arr, 256, head_len + 1) > 0) {
            for (size_t i = 0; i < m.nheaders; i++) {
                char name[256];
                size_t nl = m.headers[i].name_len < sizeof(name) - 1 ? m.headers[i].name_len : sizeof(name) - 1;
                for (size_t k = 0; k < nl; k++)
                    name[k] = gh_lower(m.headers[i].name[k]);
                name[nl] = '\0';
                if (strcmp(name, "content-length") == 0 || strcmp(name, "transfer-encoding") == 0)
                    continue;   /* framing, not content */
                json_object_set_new(hdrs, name, json_stringn(m.headers[i].value, m.headers[i].value_len));
            }
        }
    }
    const char *q = memchr(st->path_q.p, '?', st->path_q.len);
    gh_str path = { st->path_q.p, q ? (size_t)(q - st->path_q.p) : st->path_q.len };
    json_t *o = json_object();
    json_object_set_new(o, "method", jstr(ex->method));
    json_object_set_new(o, "path", jstr(path));
    json_object_set_new(o, "query", json_stringn(ex->query.p ? ex->query.p : "", ex->query.len));
    json_object_set_new(o, "headers", hdrs);
    json_object_set_new(o, "body_size", json_integer((json_int_t)st->size));
    json_object_set_new(o, "client", json_string(ex->client));
    json_object_set_new(o, "route", jstr(st->route->name));
    json_object_set_new(o, "consumer", ex->log.consumer.len ? jstr(ex->log.consumer) : json_null());
    json_object_set_new(o, "version", ex->log.version.len ? jstr(ex->log.version) : json_null());
    size_t len;
    char *body = gh_json_in_arena(ex, o, JSON_COMPACT, 1, &len);
    if (!body) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    body[len++] = '\n';
    gh_header h[1] = { { "Content-Type", "application/json", 12, 16 } };
    size_t n;
    gh_header *out = gh_apply_header_ops(ex, &st->route->response_headers, h, 1, &n);
    if (!out) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    gh_respond(ex, 200, out, n, body, len);
}

static size_t on_body(gh_exchange *ex, const char *p, size_t len, bool last)
{
    (void)p;
    echo_state *st = ex->consumer;
    st->size += len;
    if (last) {
        ex->body_cb = NULL;
        answer(ex, st);
    }
    return len;
}

void gh_target_echo(gh_exchange *ex, const gh_route_cfg *route, gh_str path_q)
{
    echo_state *st = gh_arena_zalloc(&ex->arena, sizeof(*st));
    if (!st || !path_q.p) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    st->route = route;
    st->path_q = path_q;
    ex->consumer = st;
    if (ex->body_kind == GH_BODY_NONE) {
        answer(ex, st);
        return;
    }
    gh_exchange_read_body(ex, on_body);
}
