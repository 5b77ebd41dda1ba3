#include "proxy/headers.h"
#include "http/hop.h"
#include "http/status.h"
#include "observe/trace.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool name_is(const gh_header *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

static bool in_list(const gh_str *names, size_t n, const gh_header *h)
{
    for (size_t i = 0; i < n; i++)
        if (h->name_len == names[i].len && strncasecmp(h->name, names[i].p, names[i].len) == 0)
            return true;
    return false;
}

static bool in_kv(const gh_kv *kv, size_t n, const gh_header *h)
{
    for (size_t i = 0; i < n; i++)
        if (h->name_len == kv[i].name.len && strncasecmp(h->name, kv[i].name.p, kv[i].name.len) == 0)
            return true;
    return false;
}

#define PUT(s, n) do { memcpy(p, (s), (n)); p += (n); } while (0)
#define PUTS(lit) PUT(lit, sizeof(lit) - 1)

static char *put_header(char *p, const char *name, size_t nl, const char *value, size_t vl)
{
    PUT(name, nl);
    PUTS(": ");
    PUT(value, vl);
    PUTS("\r\n");
    return p;
}

gh_str gh_proxy_host(const gh_exchange *ex, const gh_route_cfg *route, const gh_target_cfg *t)
{
    if (ex->authority.len)
        return ex->authority;
    if (gh_proxy_host_is_route(ex, route))
        return route->match.host;
    return t ? t->address : GH_STR_NULL;
}

/* The HTTP/1.1 head: request line, Host, the same fields an HTTP/2
 * upstream gets, then the upgrade (WebSocket) and the body's framing. */
char *gh_proxy_request_head(gh_exchange *ex, const gh_route_cfg *route, gh_str path_q,
                            int body, const gh_target_cfg *t, size_t *len)
{
    size_t nf;
    gh_header *f = gh_proxy_request_fields(ex, route, false, &nf);
    if (!f)
        return NULL;
    gh_str host = gh_proxy_host(ex, route, t);
    size_t cap = ex->method.len + path_q.len + host.len + 128 + (ex->upgrade ? 48 : 0);
    for (size_t i = 0; i < nf; i++)
        cap += f[i].name_len + f[i].value_len + 4;
    char *buf = gh_arena_alloc(&ex->arena, cap);
    if (!buf)
        return NULL;
    char *p = buf;
    PUT(ex->method.p, ex->method.len);
    PUTS(" ");
    PUT(path_q.p, path_q.len);
    PUTS(" HTTP/1.1\r\n");
    if (host.len)
        p = put_header(p, "Host", 4, host.p, host.len);
    for (size_t i = 0; i < nf; i++)
        p = put_header(p, f[i].name, f[i].name_len, f[i].value, f[i].value_len);
    if (ex->upgrade)   /* a WebSocket upgrade, the only one the intake lets through */
        PUTS("Connection: upgrade\r\nUpgrade: websocket\r\n");
    if (body == GH_FWD_LENGTH)
    {
        PUTS("Content-Length: ");
        p += gh_u64_dec(p, ex->content_length);
        PUTS("\r\n");
    }
    else if (body == GH_FWD_CHUNKED)
        PUTS("Transfer-Encoding: chunked\r\n");
    PUTS("\r\n");
    *len = (size_t)(p - buf);
    return buf;
}

gh_header *gh_apply_header_ops(gh_exchange *ex, const gh_header_ops *ops,
                               const gh_header *h, size_t nh, size_t *n)
{
    gh_header *out = gh_arena_alloc(&ex->arena, (nh + ops->nset + 1) * sizeof(*out));
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < nh; i++) {
        if (ops->nremove && in_list(ops->remove, ops->nremove, &h[i]))
            continue;
        if (ops->nset && in_kv(ops->set, ops->nset, &h[i]))
            continue;
        out[k++] = h[i];
    }
    for (size_t i = 0; i < ops->nset; i++)
        out[k++] = (gh_header){ ops->set[i].name.p, ops->set[i].value.p,
                                (uint32_t)ops->set[i].name.len, (uint32_t)ops->set[i].value.len };
    *n = k;
    return out;
}

gh_header *gh_proxy_response_headers(gh_exchange *ex, const gh_route_cfg *route,
                                     const gh_header *h, size_t nh, size_t *n)
{
    const gh_header_ops *ops = &route->response_headers;
    gh_header *out = gh_arena_alloc(&ex->arena, (nh + ops->nset + 3) * sizeof(*out));
    if (!out)
        return NULL;
    gh_str *conn = NULL;   /* the upstream's Connection values, when it sent any */
    size_t k = 0, nconn = 0;
    bool dated = false;
    for (size_t i = 0; i < nh; i++) {
        int hop = gh_hop_kind(h[i].name, h[i].name_len);
        if (hop == GH_HOP_CONNECTION && (conn || (conn = gh_arena_alloc(&ex->arena, nh * sizeof(*conn)))))
            conn[nconn++] = (gh_str){ h[i].value, h[i].value_len };
        if (hop || name_is(&h[i], "x-request-id", 12))
            continue;
        dated = dated || name_is(&h[i], "date", 4);
        if (ops->nremove && in_list(ops->remove, ops->nremove, &h[i]))
            continue;
        if (ops->nset && in_kv(ops->set, ops->nset, &h[i]))
            continue;
        out[k++] = h[i];
    }
    if (nconn)   /* every field they name, however many */
        k = gh_hop_strip_named(out, k, conn, nconn);
    for (size_t i = 0; i < ops->nset; i++)
        out[k++] = (gh_header){ ops->set[i].name.p, ops->set[i].value.p,
                                (uint32_t)ops->set[i].name.len, (uint32_t)ops->set[i].value.len };
    out[k++] = (gh_header){ "X-Request-Id", ex->request_id, 12, ex->request_id_len };
    if (!dated) {   /* RFC 9110 §6.6.1: a forwarded response without Date gets one */
        char *d = gh_arena_strndup(&ex->arena, gh_http_date(), 29);
        if (d)
            out[k++] = (gh_header){ "Date", d, 4, 29 };
    }
    *n = k;
    return out;
}

/* Fields the gateway writes itself: the client's copy is replaced (or, for
 * X-Forwarded-For and the trace context, continued). */
enum { F_KEEP = 0, F_REPLACED, F_XFF, F_TRACE };

static int gateway_field(const gh_header *h)
{
    switch (h->name_len) {
    case 4: return name_is(h, "host", 4) ? F_REPLACED : F_KEEP;
    case 10: return name_is(h, "tracestate", 10) ? F_TRACE : F_KEEP;
    case 11: return name_is(h, "traceparent", 11) ? F_TRACE : F_KEEP;
    case 12: return name_is(h, "x-request-id", 12) ? F_REPLACED : F_KEEP;
    case 15: return name_is(h, "x-forwarded-for", 15) ? F_XFF : F_KEEP;
    case 16: return name_is(h, "x-forwarded-host", 16) || name_is(h, "x-forwarded-port", 16) ? F_REPLACED : F_KEEP;
    case 17: return name_is(h, "x-forwarded-proto", 17) ? F_REPLACED : F_KEEP;
    default: return F_KEEP;
    }
}

gh_header *gh_proxy_request_fields(gh_exchange *ex, const gh_route_cfg *route, bool keep_te, size_t *n)
{
    const gh_header_ops *ops = &route->request_headers;
    gh_header *out = gh_arena_alloc(&ex->arena, (ex->nheaders + ops->nset + 12) * sizeof(*out));
    size_t xff_cap = strlen(ex->peer) + 1;
    for (size_t i = 0; i < ex->nheaders; i++)
        if (name_is(&ex->headers[i], "x-forwarded-for", 15))
            xff_cap += ex->headers[i].value_len + 2;
    char *xff = gh_arena_alloc(&ex->arena, xff_cap);
    char *port = gh_arena_alloc(&ex->arena, 6);
    size_t port_len = port ? gh_u64_dec(port, ex->local_port) : 0;
    if (!out || !xff || !port)
        return NULL;
    size_t k = 0, xl = 0;
    /* ex->headers went through the intake (server/intake.c): hop-by-hop and
     * identity fields of the client are gone already, and nothing a client
     * sent can remove what plugins added since */
    for (size_t i = 0; i < ex->nheaders; i++) {
        const gh_header *h = &ex->headers[i];
        switch (gateway_field(h)) {
        case F_REPLACED:
            continue;
        case F_TRACE:   /* observe/trace.c read them */
            continue;
        case F_XFF:
            if (h->value_len) {
                memcpy(xff + xl, h->value, h->value_len);
                memcpy(xff + xl + h->value_len, ", ", 2);
                xl += h->value_len + 2;
            }
            continue;
        default:
            break;
        }
        if (ops->nremove && in_list(ops->remove, ops->nremove, h))
            continue;
        if (ops->nset && in_kv(ops->set, ops->nset, h))
            continue;
        out[k++] = *h;
    }
    gh_header te_h = { "te", "trailers", 2, 8 };
    if (ex->te_trailers && keep_te && !(ops->nremove && in_list(ops->remove, ops->nremove, &te_h)))
        out[k++] = te_h;   /* only toward HTTP/2 (SPEC §12.22) */
    memcpy(xff + xl, ex->peer, strlen(ex->peer));
    xl += strlen(ex->peer);
    out[k++] = (gh_header){ "X-Forwarded-For", xff, 15, (uint32_t)xl };
    out[k++] = ex->tls ? (gh_header){ "X-Forwarded-Proto", "https", 17, 5 }
                       : (gh_header){ "X-Forwarded-Proto", "http", 17, 4 };
    if (ex->authority.len)
        out[k++] = (gh_header){ "X-Forwarded-Host", ex->authority.p, 16, (uint32_t)ex->authority.len };
    out[k++] = (gh_header){ "X-Forwarded-Port", port, 16, (uint32_t)port_len };
    out[k++] = (gh_header){ "X-Request-Id", ex->request_id, 12, ex->request_id_len };
    if (ex->client_cert.len)
        out[k++] = (gh_header){ "X-Client-Cert-Subject", ex->client_cert.p, 21, (uint32_t)ex->client_cert.len };
    if (ex->log.consumer.len)
        out[k++] = (gh_header){ "X-Consumer", ex->log.consumer.p, 10, (uint32_t)ex->log.consumer.len };
    if (ex->consumer_groups.len)
        out[k++] = (gh_header){ "X-Consumer-Groups", ex->consumer_groups.p, 17,
                                (uint32_t)ex->consumer_groups.len };
    gh_trace_begin(ex);
    out[k++] = (gh_header){ "traceparent", ex->trace.parent, 11, GH_TRACEPARENT_LEN };
    if (ex->trace.state.len)
        out[k++] = (gh_header){ "tracestate", ex->trace.state.p, 10, (uint32_t)ex->trace.state.len };
    for (size_t i = 0; i < ops->nset; i++)
        out[k++] = (gh_header){ ops->set[i].name.p, ops->set[i].value.p,
                                (uint32_t)ops->set[i].name.len, (uint32_t)ops->set[i].value.len };
    *n = k;
    return out;
}
