/* h1_conn.c — HTTP/1.1 client connections: parse, hand over, stream, reply.
 *
 * One request at a time per connection: pipelined requests wait in the read
 * buffer until the current response is written, so answers come in order.
 * Reads stop (poll mask) whenever the buffer is full or a consumer pauses
 * the body, which is all the backpressure the proxy needs. Everything that
 * tears a connection down from inside a callback is deferred to an idle
 * callback, so no stage is ever freed under its own feet. */
#include "http/h1_conn.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "core/log.h"
#include "http/status.h"

enum { ST_IDLE = 0, ST_HEAD, ST_ACTIVE };

enum {
    F_CLOSE_AFTER = 1u << 0,     /* close once the current response is written */
    F_PEER_EOF    = 1u << 1,     /* client half-closed after a complete request */
    F_DEAD        = 1u << 2,     /* queued for close; ignore events */
    F_IN_PROCESS  = 1u << 3,     /* process() on the stack: do not recurse */
    F_READ_OFF    = 1u << 4,     /* READABLE removed from the poll mask */
};

enum { RESP_LENGTH = 0, RESP_CHUNKED, RESP_CLOSE, RESP_NONE };

#define MAX_WQ 6

/* Per-exchange codec state: allocated in the exchange arena, so an idle
 * connection carries none of it. */
typedef struct h1_active {
    uint64_t body_left;          /* GH_BODY_LENGTH: bytes still expected */
    gh_chunked chunk;            /* GH_BODY_CHUNKED decoder */
    const char *span;            /* decoded chunk data not yet taken */
    size_t span_len;
    uint64_t rx_mark;            /* body bytes read when the rate window opened */
    uint64_t rx;                 /* body bytes read from the socket */
    char *head;                  /* serialized response head awaiting its first write */
    size_t head_len;
    int resp_mode;
    bool sent_continue;
    bool body_failed;            /* malformed/oversized body seen */
    char chunk_line[24];         /* "1a2b\r\n" in flight */
    struct iovec wq[MAX_WQ];     /* unwritten rest of a write */
    int wq_n;
} h1_active;

typedef struct h1_conn {
    uv_poll_t poll;
    gh_http_env *env;
    gh_transport *tp;
    gh_buf *in;
    gh_exchange *ex;
    h1_active *act;
    struct h1_conn *next_close;
    gh_deadline timer;
    union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } peer;
    uint32_t head_scanned;
    uint32_t requests;
    int fd;
    uint16_t local_port;
    uint8_t state, flags, events;
    bool path_strict, tls;
} h1_conn;

static const gh_downstream_ops h1_ops;
static void process(h1_conn *c);
static void conn_close(h1_conn *c);
static void exchange_complete(h1_conn *c);
static void deliver_body(h1_conn *c);
static void on_poll(uv_poll_t *h, int status, int events);

#define CONN(ex) ((h1_conn *)(ex)->down_ctx)

/* ------------------------------------------------------------ poll mask -- */

static void set_events(h1_conn *c, int events)
{
    if (c->events == events || (c->flags & F_DEAD))
        return;
    c->events = (uint8_t)events;
    uv_poll_start(&c->poll, events, on_poll);
}

static void want_read(h1_conn *c, bool on)
{
    int ev = on ? (c->events | UV_READABLE) : (c->events & ~UV_READABLE);
    if (on)
        c->flags &= ~F_READ_OFF;
    else
        c->flags |= F_READ_OFF;
    set_events(c, ev);
}

/* ----------------------------------------------------------- deadlines -- */

static void arm(h1_conn *c, int kind)
{
    const gh_limits_cfg *l = c->env->limits;
    uint64_t d;
    switch (kind) {
    case GH_TO_IDLE: d = l->idle_timeout_ms; break;
    case GH_TO_HEADER: d = l->header_timeout_ms; break;
    case GH_TO_BODY: d = l->body_timeout_ms; break;
    default: d = l->idle_timeout_ms; break;   /* GH_TO_SEND: a stalled client */
    }
    gh_deadline_arm(&c->env->timeouts[kind], &c->timer, gh_now_ms(c->env) + d, (unsigned char)kind);
}

/* ---------------------------------------------------------- teardown ---- */

static void on_closed(uv_handle_t *h)
{
    h1_conn *c = h->data;
    close(c->fd);
    free(c);
}

static void run_close_queue(uv_idle_t *idle)
{
    gh_h1_worker *w = idle->data;
    while (w->close_queue) {
        h1_conn *c = w->close_queue;
        w->close_queue = c->next_close;
        conn_close(c);
    }
    uv_idle_stop(idle);
}

/* Close from inside a callback or an ops call: done on the next loop turn. */
static void defer_close(h1_conn *c)
{
    if (c->flags & F_DEAD)
        return;
    c->flags |= F_DEAD;
    uv_poll_stop(&c->poll);
    gh_deadline_cancel(&c->timer);
    gh_h1_worker *w = c->env->h1;
    c->next_close = w->close_queue;
    w->close_queue = c;
    uv_idle_start(&w->closer, run_close_queue);
}

static void conn_close(h1_conn *c)
{
    gh_exchange *ex = c->ex;
    if (ex) {
        c->ex = NULL;
        if (ex->on_abort && !ex->response_done)
            ex->on_abort(ex);
        if (!ex->status)
            ex->status = 499;   /* client closed before a response (nginx's convention) */
        if (ex->env->done)
            ex->env->done(ex);
        gh_exchange_free(ex);
    }
    gh_deadline_cancel(&c->timer);
    gh_buf_put(c->env->bufs, c->in);
    c->in = NULL;
    if (c->tp && c->tp->ops->destroy)
        c->tp->ops->destroy(c->tp);
    c->env->h1->nconns--;
    if (c->env->conn_closed)
        c->env->conn_closed(c->env);
    uv_close((uv_handle_t *)&c->poll, on_closed);
}

/* -------------------------------------------------------------- writes -- */

static void flush(h1_conn *c);

/* Write iov now; keep what the socket does not take and wait for WRITABLE.
 * The caller keeps the bytes alive until the exchange's on_writable. */
static int conn_writev(h1_conn *c, struct iovec *iov, int n)
{
    h1_active *a = c->act;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    ssize_t w = c->tp->ops->writev(c->tp, c->fd, iov, n);
    if (w == (ssize_t)total)
        return GH_OK;
    if (w < 0 && w != -EAGAIN) {
        defer_close(c);
        return GH_ERROR;
    }
    size_t skip = w > 0 ? (size_t)w : 0;
    a->wq_n = 0;
    for (int i = 0; i < n; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        a->wq[a->wq_n].iov_base = (char *)iov[i].iov_base + skip;
        a->wq[a->wq_n].iov_len = iov[i].iov_len - skip;
        a->wq_n++;
        skip = 0;
    }
    set_events(c, c->events | UV_WRITABLE);
    arm(c, GH_TO_SEND);
    return GH_AGAIN;
}

static void flush(h1_conn *c)
{
    h1_active *a = c->act;
    if (!a || a->wq_n == 0) {
        set_events(c, c->events & ~UV_WRITABLE);
        return;
    }
    struct iovec iov[MAX_WQ];
    int n = a->wq_n;
    memcpy(iov, a->wq, sizeof(iov[0]) * (size_t)n);
    a->wq_n = 0;
    int rc = conn_writev(c, iov, n);
    if (rc != GH_OK)
        return;
    set_events(c, c->events & ~UV_WRITABLE);
    gh_deadline_cancel(&c->timer);
    gh_exchange *ex = c->ex;
    if (ex->response_done) {
        exchange_complete(c);
        return;
    }
    if (!ex->body_done && ex->body_cb)
        arm(c, GH_TO_BODY);
    if (ex->on_writable)
        ex->on_writable(ex);
}

/* -------------------------------------------------------- response ops -- */

static bool append(char **p, char *end, const char *s, size_t n)
{
    if ((size_t)(end - *p) < n)
        return false;
    memcpy(*p, s, n);
    *p += n;
    return true;
}

static int h1_send_head(gh_exchange *ex, int status, const gh_header *hdrs, size_t n,
                        int64_t content_length)
{
    h1_conn *c = CONN(ex);
    h1_active *a = c->act;
    if (c->flags & F_DEAD)
        return GH_ERROR;
    size_t cap = 128;
    for (size_t i = 0; i < n; i++)
        cap += hdrs[i].name_len + hdrs[i].value_len + 4;
    char *buf = gh_arena_alloc(&ex->arena, cap);
    if (!buf)
        return GH_ERROR;
    ex->status = status;
    ex->head_sent = true;

    bool no_body = status < 200 || status == 204 || status == 304;
    if (!ex->body_done || c->env->draining || (c->flags & F_PEER_EOF))
        c->flags |= F_CLOSE_AFTER;       /* unread request body, drain or half-close */
    if (!ex->keep_alive)
        c->flags |= F_CLOSE_AFTER;
    if (no_body || ex->head_request)
        a->resp_mode = RESP_NONE;
    else if (content_length >= 0)
        a->resp_mode = RESP_LENGTH;
    else if (ex->minor >= 1)
        a->resp_mode = RESP_CHUNKED;
    else {
        a->resp_mode = RESP_CLOSE;
        c->flags |= F_CLOSE_AFTER;
    }

    char *p = buf, *end = buf + cap;
    const char *reason = gh_status_reason(status);
    p += snprintf(p, (size_t)(end - p), "HTTP/1.1 %d %s\r\n", status, reason);
    for (size_t i = 0; i < n; i++) {
        append(&p, end, hdrs[i].name, hdrs[i].name_len);
        append(&p, end, ": ", 2);
        append(&p, end, hdrs[i].value, hdrs[i].value_len);
        append(&p, end, "\r\n", 2);
    }
    if (content_length >= 0 && status != 204 && status >= 200 && !(status == 304 && content_length == 0))
        p += snprintf(p, (size_t)(end - p), "Content-Length: %lld\r\n", (long long)content_length);
    else if (a->resp_mode == RESP_CHUNKED)
        append(&p, end, "Transfer-Encoding: chunked\r\n", 28);
    if (c->flags & F_CLOSE_AFTER)
        append(&p, end, "Connection: close\r\n", 19);
    else if (ex->minor == 0)
        append(&p, end, "Connection: keep-alive\r\n", 24);
    append(&p, end, "\r\n", 2);
    a->head = buf;
    a->head_len = (size_t)(p - buf);
    return GH_OK;
}

static int h1_send_body(gh_exchange *ex, const char *p, size_t len)
{
    h1_conn *c = CONN(ex);
    h1_active *a = c->act;
    if (c->flags & F_DEAD)
        return GH_ERROR;
    struct iovec iov[4];
    int n = 0;
    if (a->head) {
        iov[n++] = (struct iovec){ a->head, a->head_len };
        a->head = NULL;
    }
    if (a->resp_mode == RESP_NONE || len == 0) {
        if (n == 0)
            return GH_OK;
    } else if (a->resp_mode == RESP_CHUNKED) {
        int l = snprintf(a->chunk_line, sizeof(a->chunk_line), "%zx\r\n", len);
        iov[n++] = (struct iovec){ a->chunk_line, (size_t)l };
        iov[n++] = (struct iovec){ (void *)p, len };
        iov[n++] = (struct iovec){ "\r\n", 2 };
    } else {
        iov[n++] = (struct iovec){ (void *)p, len };
    }
    ex->bytes_out += len;
    return conn_writev(c, iov, n);
}

static int h1_finish(gh_exchange *ex)
{
    h1_conn *c = CONN(ex);
    h1_active *a = c->act;
    ex->response_done = true;
    ex->on_writable = NULL;
    ex->on_abort = NULL;
    ex->body_cb = NULL;
    if (c->flags & F_DEAD)
        return GH_ERROR;
    if (!ex->body_done)
        c->flags |= F_CLOSE_AFTER;
    struct iovec iov[2];
    int n = 0;
    if (a->head) {
        iov[n++] = (struct iovec){ a->head, a->head_len };
        a->head = NULL;
    }
    if (a->resp_mode == RESP_CHUNKED)
        iov[n++] = (struct iovec){ "0\r\n\r\n", 5 };
    if (a->wq_n)   /* an earlier write is still pending: flush() completes */
        return GH_AGAIN;
    int rc = n ? conn_writev(c, iov, n) : GH_OK;
    if (rc == GH_OK)
        exchange_complete(c);
    return rc;
}

static void h1_abort(gh_exchange *ex)
{
    h1_conn *c = CONN(ex);
    ex->response_done = true;
    ex->on_abort = NULL;
    ex->on_writable = NULL;
    ex->body_cb = NULL;
    if (!ex->log.error)
        ex->log.error = "upstream_error";
    defer_close(c);
}

static void h1_resume_body(gh_exchange *ex)
{
    h1_conn *c = CONN(ex);
    if (c->flags & F_DEAD)
        return;
    h1_active *a = c->act;
    if (ex->expect_continue && !a->sent_continue && !ex->body_done && !ex->head_sent &&
        (!c->in || gh_buf_len(c->in) == 0)) {
        a->sent_continue = true;
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t w = c->tp->ops->writev(c->tp, c->fd, &(struct iovec){ (void *)cont, sizeof(cont) - 1 }, 1);
        if (w != (ssize_t)sizeof(cont) - 1) {
            defer_close(c);
            return;
        }
    }
    if (!ex->body_done && !gh_deadline_armed(&c->timer)) {
        a->rx_mark = a->rx;
        arm(c, GH_TO_BODY);
    }
    /* the consumer may finish the exchange from inside deliver_body: no new
     * request may start until we are back out (see process()) */
    bool outer = !(c->flags & F_IN_PROCESS);
    c->flags |= F_IN_PROCESS;
    deliver_body(c);
    if (!outer)
        return;
    c->flags &= ~F_IN_PROCESS;
    if (c->flags & F_DEAD)
        return;
    if (!c->ex) {
        process(c);
        return;
    }
    if (!c->ex->body_done && (c->flags & F_READ_OFF) && !(c->flags & F_PEER_EOF))
        want_read(c, true);
}

static const gh_downstream_ops h1_ops = {
    .send_head = h1_send_head,
    .send_body = h1_send_body,
    .finish = h1_finish,
    .abort = h1_abort,
    .resume_body = h1_resume_body,
};

/* ------------------------------------------------------- request body --- */

static void body_error(h1_conn *c, int status, const char *code, const char *detail)
{
    gh_exchange *ex = c->ex;
    c->act->body_failed = true;
    c->flags |= F_CLOSE_AFTER;
    ex->body_cb = NULL;
    if (ex->head_sent) {
        if (ex->on_abort)
            ex->on_abort(ex);
        ex->on_abort = NULL;
        ex->log.error = code;
        defer_close(c);
        return;
    }
    if (ex->on_abort)
        ex->on_abort(ex);        /* the consumer drops what it started (e.g. the upstream request) */
    ex->on_abort = NULL;
    ex->on_writable = NULL;
    gh_problem(ex, status, code, detail, NULL, 0, NULL);
}

static bool over_limit(h1_conn *c, size_t more)
{
    return c->ex->body_received + more > c->env->limits->max_body_bytes;
}

/* Hand buffered body bytes to the consumer until it pauses or they run out. */
static void deliver_body(h1_conn *c)
{
    gh_exchange *ex = c->ex;
    h1_active *a = c->act;
    while (ex && ex->body_cb && !ex->body_done && !(c->flags & F_DEAD)) {
        gh_buf *in = c->in;
        size_t avail = in ? gh_buf_len(in) : 0;
        if (ex->body_kind == GH_BODY_NONE) {
            ex->body_done = true;
            ex->body_cb(ex, "", 0, true);
            break;
        }
        if (ex->body_kind == GH_BODY_LENGTH) {
            size_t n = avail < a->body_left ? avail : (size_t)a->body_left;
            bool last = n == a->body_left;
            if (n == 0 && !last)
                break;
            size_t took = ex->body_cb(ex, in ? in->data + in->start : "", n, last);
            if (c->ex != ex || (c->flags & F_DEAD))
                return;
            if (in)
                in->start += took;
            a->body_left -= took;
            ex->body_received += took;
            if (took == n && last) {
                ex->body_done = true;
                gh_deadline_cancel(&c->timer);
            }
            if (took < n || n == 0)
                break;
            continue;
        }
        /* chunked */
        if (!a->span_len) {
            if (avail == 0)
                break;
            size_t used = 0;
            const char *data = NULL;
            size_t dlen = 0;
            int rc = gh_chunked_decode(&a->chunk, in->data + in->start, avail, &used, &data, &dlen);
            in->start += used;
            if (rc == GH_CHUNKED_BAD) {
                body_error(c, 400, "bad_request", "malformed chunked request body");
                return;
            }
            if (dlen && over_limit(c, dlen)) {
                body_error(c, 413, "payload_too_large", "request body exceeds max_body_bytes");
                return;
            }
            a->span = data;
            a->span_len = dlen;
            if (rc == GH_CHUNKED_DONE && dlen == 0) {
                ex->body_done = true;
                gh_deadline_cancel(&c->timer);
                ex->body_cb(ex, "", 0, true);
                break;
            }
            if (dlen == 0)
                continue;
        }
        size_t took = ex->body_cb(ex, a->span, a->span_len, false);
        if (c->ex != ex || (c->flags & F_DEAD))
            return;
        a->span += took;
        a->span_len -= took;
        ex->body_received += took;
        if (a->span_len)
            break;
    }
    /* buffer fully consumed and nothing in flight: give it back */
    if (c->in && gh_buf_len(c->in) == 0 && !(c->ex && c->act && c->act->span_len)) {
        gh_buf_put(c->env->bufs, c->in);
        c->in = NULL;
    }
}

/* ---------------------------------------------------- request heads ---- */

static uint32_t method_bit(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0) return GH_M_GET;
        if (memcmp(m, "PUT", 3) == 0) return GH_M_PUT;
        break;
    case 4:
        if (memcmp(m, "HEAD", 4) == 0) return GH_M_HEAD;
        if (memcmp(m, "POST", 4) == 0) return GH_M_POST;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0) return GH_M_PATCH;
        if (memcmp(m, "TRACE", 5) == 0) return GH_M_TRACE;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0) return GH_M_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0) return GH_M_OPTIONS;
        if (memcmp(m, "CONNECT", 7) == 0) return GH_M_CONNECT;
        break;
    }
    return GH_M_OTHER;
}

/* Host without port, lower-cased, into the arena. */
static gh_str host_of(gh_arena *ar, const char *h, size_t n)
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

static void format_peer(h1_conn *c, gh_exchange *ex)
{
    if (c->peer.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &c->peer.v6.sin6_addr, ex->peer, sizeof(ex->peer));
        ex->client_port = ntohs(c->peer.v6.sin6_port);
        /* v4-mapped addresses read as plain IPv4 */
        if (strncmp(ex->peer, "::ffff:", 7) == 0 && strchr(ex->peer + 7, '.'))
            memmove(ex->peer, ex->peer + 7, strlen(ex->peer + 7) + 1);
    } else {
        inet_ntop(AF_INET, &c->peer.v4.sin_addr, ex->peer, sizeof(ex->peer));
        ex->client_port = ntohs(c->peer.v4.sin_port);
    }
    memcpy(ex->client, ex->peer, sizeof(ex->client));
}

static gh_exchange *new_exchange(h1_conn *c)
{
    gh_exchange *ex = gh_exchange_new(c->env);
    if (!ex)
        return NULL;
    ex->pin = c->env->pin(c->env, &ex->cfg);
    ex->down = &h1_ops;
    ex->down_ctx = c;
    ex->tls = c->tls;
    ex->path_strict = c->path_strict;
    ex->local_port = c->local_port;
    ex->minor = 1;
    format_peer(c, ex);
    c->act = gh_arena_zalloc(&ex->arena, sizeof(h1_active));
    c->ex = ex;
    c->state = ST_ACTIVE;
    gh_deadline_cancel(&c->timer);
    return ex;
}

/* A request that cannot be parsed: answer it and close. */
static void reject(h1_conn *c, int status, const char *code, const char *detail)
{
    gh_exchange *ex = new_exchange(c);
    if (!ex) {
        defer_close(c);
        return;
    }
    ex->body_done = true;
    ex->keep_alive = false;
    c->flags |= F_CLOSE_AFTER;
    if (c->in)
        c->in->start = c->in->end;   /* nothing after a bad head can be trusted */
    gh_exchange_set_request_id(ex);
    gh_problem(ex, status, code, detail, NULL, 0, NULL);
}

static const char *parse_error_detail(int e)
{
    switch (e) {
    case GH_H1E_METHOD: return "invalid method";
    case GH_H1E_TARGET: return "invalid request target";
    case GH_H1E_VERSION: return "unsupported HTTP version";
    case GH_H1E_LINE_END: return "lines must end with CRLF";
    case GH_H1E_HEADER_NAME: return "invalid header name";
    case GH_H1E_HEADER_VALUE: return "invalid character in a header value";
    case GH_H1E_OBS_FOLD: return "obsolete header line folding";
    case GH_H1E_CL_INVALID: return "invalid Content-Length";
    case GH_H1E_CL_DUPLICATE: return "several Content-Length headers";
    case GH_H1E_CL_AND_TE: return "both Content-Length and Transfer-Encoding";
    case GH_H1E_TE_INVALID: return "unsupported Transfer-Encoding";
    case GH_H1E_HOST_MISSING: return "missing Host header";
    case GH_H1E_HOST_DUPLICATE: return "several Host headers";
    case GH_H1E_HOST_INVALID: return "invalid Host header";
    case GH_H1E_TOO_MANY_HEADERS: return "too many header fields";
    case GH_H1E_HEAD_TOO_LARGE: return "request head too large";
    default: return "malformed request";
    }
}

/* Copy the head into the exchange arena (so the read buffer can be reused
 * for pipelined requests and bodies) and rebase every slice into the copy. */
static bool adopt_head(gh_exchange *ex, const char *buf, size_t len, const gh_h1_message *m)
{
    char *copy = gh_arena_alloc(&ex->arena, len + 1);
    gh_header *hs = gh_arena_alloc(&ex->arena, (m->nheaders ? m->nheaders : 1) * sizeof(*hs));
    if (!copy || !hs)
        return false;
    memcpy(copy, buf, len);
    copy[len] = '\0';
#define REBASE(ptr) (copy + ((ptr) - buf))
    ex->method = (gh_str){ REBASE(m->method), m->method_len };
    ex->target = (gh_str){ REBASE(m->target), m->target_len };
    for (size_t i = 0; i < m->nheaders; i++) {
        hs[i] = m->headers[i];
        hs[i].name = REBASE(m->headers[i].name);
        hs[i].value = REBASE(m->headers[i].value);
    }
    ex->headers = hs;
    ex->nheaders = m->nheaders;
    if (m->host) {
        ex->authority = (gh_str){ REBASE(m->host), m->host_len };
        ex->host = host_of(&ex->arena, ex->authority.p, ex->authority.len);
    }
#undef REBASE
    return true;
}

/* Split the request-target into path and query; absolute-form gives the host. */
static void split_target(gh_exchange *ex)
{
    const char *t = ex->target.p;
    size_t n = ex->target.len;
    if (n >= 7 && (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0)) {
        size_t skip = t[4] == ':' ? 7 : 8;
        const char *auth = t + skip;
        const char *slash = memchr(auth, '/', n - skip);
        size_t alen = slash ? (size_t)(slash - auth) : n - skip;
        /* RFC 9112 §3.2.2: absolute-form's authority replaces Host */
        ex->authority = (gh_str){ auth, alen };
        ex->host = host_of(&ex->arena, auth, alen);
        t = slash ? slash : "/";
        n = slash ? n - skip - alen : 1;
    }
    const char *q = memchr(t, '?', n);
    if (q) {
        ex->raw_path = (gh_str){ t, (size_t)(q - t) };
        ex->query = (gh_str){ q + 1, n - (size_t)(q - t) - 1 };
    } else {
        ex->raw_path = (gh_str){ t, n };
        ex->query = (gh_str){ "", 0 };
    }
}

/* Try to take one request head from the buffer. false: wait for more. */
static bool start_request(h1_conn *c)
{
    gh_buf *in = c->in;
    const gh_limits_cfg *lim = c->env->limits;
    const char *p = in->data + in->start;
    size_t len = gh_buf_len(in);
    size_t scanned = c->head_scanned;
    size_t max_head = lim->max_header_bytes;
    if (!gh_h1_head_complete(p, len, &scanned)) {
        c->head_scanned = (uint32_t)scanned;
        if (len > max_head) {
            reject(c, 431, "header_too_large", "request head exceeds max_header_bytes");
            return true;
        }
        if (c->state != ST_HEAD) {
            c->state = ST_HEAD;
            arm(c, GH_TO_HEADER);   /* armed once per request: slowloris gets no extension */
        }
        return false;
    }
    c->head_scanned = 0;
    gh_h1_worker *w = c->env->h1;
    size_t max_headers = lim->max_headers < w->scratch_cap ? lim->max_headers : w->scratch_cap;
    gh_h1_message m;
    int r = gh_h1_parse_request(p, len, &m, w->scratch, max_headers, max_head);
    if (r == GH_H1_AGAIN) {
        /* a blank line was seen, yet the head is incomplete (leading CRLFs):
         * keep looking from here, under the same header deadline */
        c->head_scanned = (uint32_t)scanned;
        if (c->state != ST_HEAD) {
            c->state = ST_HEAD;
            arm(c, GH_TO_HEADER);
        }
        return false;
    }
    if (r == GH_H1_TOO_BIG) {
        reject(c, 431, "header_too_large", parse_error_detail(m.error));
        return true;
    }
    if (r < 0) {
        reject(c, 400, "bad_request", parse_error_detail(m.error));
        return true;
    }
    gh_exchange *ex = new_exchange(c);
    if (!ex || !adopt_head(ex, p, (size_t)r, &m)) {
        defer_close(c);
        return true;
    }
    in->start += (size_t)r;
    c->requests++;
    ex->minor = m.minor;
    ex->keep_alive = m.keep_alive;
    ex->expect_continue = m.expect_continue;
    ex->upgrade = m.upgrade;
    ex->method_bit = method_bit(ex->method.p, ex->method.len);
    ex->head_request = ex->method_bit == GH_M_HEAD;
    ex->body_kind = m.body;
    ex->content_length = m.content_length;
    ex->body_done = m.body == GH_BODY_NONE;
    c->act->body_left = m.body == GH_BODY_LENGTH ? m.content_length : 0;
    gh_chunked_init(&c->act->chunk);
    split_target(ex);
    gh_exchange_set_request_id(ex);
    if (m.body == GH_BODY_LENGTH && m.content_length > lim->max_body_bytes) {
        c->flags |= F_CLOSE_AFTER;
        gh_problem(ex, 413, "payload_too_large", "request body exceeds max_body_bytes", NULL, 0, NULL);
        return true;
    }
    c->env->handle(ex);
    return true;
}

/* Run the connection forward as far as the buffered bytes allow. */
static void process(h1_conn *c)
{
    if (c->flags & F_IN_PROCESS)
        return;
    c->flags |= F_IN_PROCESS;
    while (!(c->flags & F_DEAD)) {
        if (c->ex) {
            if (!c->ex->body_done)
                deliver_body(c);
            if (c->ex)
                break;
            continue;   /* finished meanwhile: next pipelined request */
        }
        if (!c->in || gh_buf_len(c->in) == 0) {
            if (c->flags & F_PEER_EOF) {
                defer_close(c);
                break;
            }
            gh_buf_put(c->env->bufs, c->in);
            c->in = NULL;
            if (c->state != ST_IDLE || !gh_deadline_armed(&c->timer)) {
                c->state = ST_IDLE;
                arm(c, GH_TO_IDLE);
            }
            break;
        }
        if (c->env->draining && c->state == ST_IDLE && c->requests > 0) {
            defer_close(c);
            break;
        }
        if (!start_request(c))
            break;
    }
    c->flags &= ~F_IN_PROCESS;
    /* read again if we stopped for a full buffer that has drained */
    if (!(c->flags & F_DEAD) && (c->flags & F_READ_OFF) && !(c->flags & F_PEER_EOF) &&
        (!c->in || gh_buf_room(c->in) > 0) && (!c->ex || c->ex->body_done || c->ex->body_cb))
        want_read(c, true);
}

static void exchange_complete(h1_conn *c)
{
    gh_exchange *ex = c->ex;
    c->ex = NULL;
    c->act = NULL;
    c->state = ST_IDLE;
    gh_deadline_cancel(&c->timer);
    if (c->env->done)
        c->env->done(ex);
    gh_exchange_free(ex);
    if (c->flags & F_CLOSE_AFTER) {
        defer_close(c);
        return;
    }
    process(c);
}

/* --------------------------------------------------------------- reads -- */

static void on_eof(h1_conn *c)
{
    gh_exchange *ex = c->ex;
    if (ex && ex->body_done && !ex->response_done) {
        /* half-close after a full request: answer, then close */
        c->flags |= F_PEER_EOF | F_CLOSE_AFTER;
        want_read(c, false);
        return;
    }
    if (ex && !ex->response_done)
        ex->log.error = ex->log.error ? ex->log.error : "client_closed";
    defer_close(c);
}

static void on_readable(h1_conn *c)
{
    if (!c->in) {
        c->in = gh_buf_get(c->env->bufs);
        if (!c->in) {
            defer_close(c);
            return;
        }
    }
    gh_buf *in = c->in;
    if (gh_buf_room(in) == 0) {
        gh_buf_compact(in);
        if (gh_buf_room(in) == 0) {
            want_read(c, false);   /* full: resume when the consumer takes bytes */
            if (!c->ex)
                reject(c, 431, "header_too_large", "request head exceeds the buffer");
            return;
        }
    }
    ssize_t n = c->tp->ops->read(c->tp, c->fd, in->data + in->end, gh_buf_room(in));
    if (n == -EAGAIN) {
        if (gh_buf_len(in) == 0 && !(c->ex && c->act && c->act->span_len)) {
            gh_buf_put(c->env->bufs, in);
            c->in = NULL;
        }
        return;
    }
    if (n == 0) {
        on_eof(c);
        return;
    }
    if (n < 0) {
        if (c->ex && !c->ex->log.error)
            c->ex->log.error = "client_closed";
        defer_close(c);
        return;
    }
    in->end += (size_t)n;
    if (c->ex && c->act)
        c->act->rx += (uint64_t)n;
    if (c->state == ST_IDLE && !c->ex)
        gh_deadline_cancel(&c->timer);
    if (c->ex && c->ex->body_done && gh_buf_room(in) == 0)
        want_read(c, false);   /* pipelined bytes wait; no need to read on */
    process(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    h1_conn *c = h->data;
    if (c->flags & F_DEAD)
        return;
    if (status < 0) {
        defer_close(c);
        return;
    }
    if (events & UV_WRITABLE)
        flush(c);
    if ((events & UV_READABLE) && !(c->flags & F_DEAD))
        on_readable(c);
}

/* ------------------------------------------------------------ timeouts -- */

static void on_timeout(gh_deadline *d)
{
    h1_conn *c = (h1_conn *)((char *)d - offsetof(h1_conn, timer));
    if (c->flags & F_DEAD)
        return;
    gh_exchange *ex = c->ex;
    switch (d->list) {
    case GH_TO_IDLE:
        defer_close(c);
        return;
    case GH_TO_HEADER:
        gh_log_debug("client %s: request head not complete within header_timeout", "");
        reject(c, 408, "request_timeout", "request head not received within header_timeout");
        return;
    case GH_TO_BODY: {
        if (!ex || ex->body_done)
            return;
        const gh_limits_cfg *l = c->env->limits;
        uint64_t want = l->min_body_rate * l->body_timeout_ms / 1000;
        /* paused by us (consumer busy): not the client's fault */
        if ((c->flags & F_READ_OFF) || c->act->rx - c->act->rx_mark >= want) {
            c->act->rx_mark = c->act->rx;
            arm(c, GH_TO_BODY);
            return;
        }
        body_error(c, 408, "request_timeout", "request body slower than min_body_rate");
        return;
    }
    default:   /* GH_TO_SEND: the client stopped reading */
        if (ex && ex->on_abort)
            ex->on_abort(ex);
        if (ex) {
            ex->on_abort = NULL;
            ex->log.error = "client_timeout";
        }
        defer_close(c);
        return;
    }
}

/* ---------------------------------------------------------------- api --- */

int gh_h1_conn_start(uv_loop_t *loop, gh_http_env *env, int fd, const struct sockaddr *peer,
                     const gh_h1_listen_info *info, gh_transport *tp)
{
    h1_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    c->env = env;
    c->tp = tp ? tp : &gh_transport_plain;
    c->local_port = info->local_port;
    c->path_strict = info->path_strict;
    c->tls = info->tls;
    c->timer.fire = on_timeout;
    if (peer->sa_family == AF_INET6)
        memcpy(&c->peer.v6, peer, sizeof(c->peer.v6));
    else
        memcpy(&c->peer.v4, peer, sizeof(c->peer.v4));
    int rc = uv_poll_init_socket(loop, &c->poll, fd);
    if (rc < 0) {
        close(fd);
        free(c);
        return rc;
    }
    c->poll.data = c;
    c->events = UV_READABLE;
    uv_poll_start(&c->poll, UV_READABLE, on_poll);
    env->h1->nconns++;
    arm(c, GH_TO_IDLE);   /* a connection that never sends counts as idle */
    return 0;
}

void gh_h1_close_idle(gh_http_env *env)
{
    gh_deadline *d;
    while ((d = gh_deadline_pop_due(&env->timeouts[GH_TO_IDLE], UINT64_MAX)) != NULL) {
        h1_conn *c = (h1_conn *)((char *)d - offsetof(h1_conn, timer));
        defer_close(c);
    }
}

size_t gh_h1_conn_count(const gh_http_env *env)
{
    return env->h1->nconns;
}

void gh_h1_worker_init(gh_h1_worker *w, uv_loop_t *loop)
{
    memset(w, 0, sizeof(*w));
    uv_idle_init(loop, &w->closer);
    w->closer.data = w;
    w->scratch_cap = 1024;
    w->scratch = calloc(w->scratch_cap, sizeof(gh_header));
}

void gh_h1_worker_close(gh_h1_worker *w)
{
    free(w->scratch);
    w->scratch = NULL;
    uv_close((uv_handle_t *)&w->closer, NULL);
}
