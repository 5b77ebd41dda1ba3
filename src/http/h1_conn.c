/* h1_conn.c — HTTP/1.1 client connections: parse, hand over, stream, reply.
 *
 * One request at a time per connection: pipelined requests wait in the read
 * buffer until the current response is written, so answers come in order.
 * Reads stop (poll mask) whenever the buffer is full or a consumer pauses
 * the body, which is all the backpressure the proxy needs. Everything that
 * tears a connection down from inside a callback is deferred to an idle
 * callback, so no stage is ever freed under its own feet. */
#include "http/h1_int.h"
#include "http/request.h"
#include "http/h2_conn.h"
#include "tls/tls.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "core/log.h"
#include "http/status.h"

static void conn_close(h1_conn *c);
static void on_poll(uv_poll_t *h, int status, int events);

/* ------------------------------------------------------------ poll mask -- */

void gh_h1c_set_events(h1_conn *c, int events)
{
    if (c->events == events || (c->flags & F_DEAD))
        return;
    c->events = (uint8_t)events;
    uv_poll_start(&c->poll, events, on_poll);
}

void gh_h1c_want_read(h1_conn *c, bool on)
{
    int ev = on ? (c->events | UV_READABLE) : (c->events & ~UV_READABLE);
    if (on)
        c->flags &= ~F_READ_OFF;
    else
        c->flags |= F_READ_OFF;
    gh_h1c_set_events(c, ev);
}

/* ----------------------------------------------------------- deadlines -- */

void gh_h1c_arm(h1_conn *c, int kind)
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
    while (w->tasks) {
        gh_task *t = w->tasks;
        w->tasks = t->next;
        t->queued = false;
        t->run(t);
    }
    while (w->close_queue) {
        h1_conn *c = w->close_queue;
        w->close_queue = c->next_close;
        conn_close(c);
    }
    if (!w->tasks && !w->close_queue)
        uv_idle_stop(idle);
}

void gh_env_defer(gh_http_env *env, gh_task *t)
{
    if (t->queued)
        return;
    gh_h1_worker *w = env->h1;
    t->queued = true;
    t->next = w->tasks;
    w->tasks = t;
    uv_idle_start(&w->closer, run_close_queue);
}

void gh_env_undefer(gh_http_env *env, gh_task *t)
{
    if (!t->queued)
        return;
    for (gh_task **pp = &env->h1->tasks; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    t->queued = false;
}

/* Close from inside a callback or an ops call: done on the next loop turn. */
void gh_h1c_defer_close(h1_conn *c)
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

/* ---------------------------------------------------- request heads ---- */

static gh_exchange *new_exchange(h1_conn *c)
{
    gh_exchange *ex = gh_exchange_new(c->env);
    if (!ex)
        return NULL;
    ex->pin = c->env->pin(c->env, &ex->cfg);
    ex->down = &gh_h1_ops;
    ex->down_ctx = c;
    ex->tls = c->tls;
    ex->log.tls = gh_transport_version(c->tp);
    ex->path_strict = c->path_strict;
    ex->uncounted = c->uncounted;
    ex->local_port = c->local_port;
    ex->minor = 1;
    gh_set_peer(ex, &c->peer.sa);
    if (c->tls) {
        char subject[512];
        if (gh_tls_peer_subject(c->tp, subject, sizeof(subject)))
            ex->client_cert = gh_arena_str(&ex->arena, gh_str_c(subject));
    }
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
        gh_h1c_defer_close(c);
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
        ex->host = gh_host_of(&ex->arena, ex->authority.p, ex->authority.len);
    }
#undef REBASE
    return true;
}

static void on_handed_off(uv_handle_t *h)
{
    free(h->data);
}

/* The client speaks HTTP/2: give the socket, the transport and the bytes
 * read so far to an HTTP/2 connection, and retire this one quietly. */
static void handoff_h2(h1_conn *c)
{
    gh_h1_listen_info info = { .handle = c->handle, .local_port = c->local_port, .path_strict = c->path_strict,
                               .tls = c->tls, .http2 = true, .uncounted = c->uncounted };
    gh_buf *in = c->in;
    c->in = NULL;
    c->flags |= F_DEAD;
    uv_poll_stop(&c->poll);
    gh_deadline_cancel(&c->timer);
    c->env->h1->nconns--;   /* the HTTP/2 connection counts itself */
    gh_h2_conn_start(c->poll.loop, c->env, c->fd, &c->peer.sa, &info, c->tp,
                     in ? in->data + in->start : NULL, in ? gh_buf_len(in) : 0);
    gh_buf_put(c->env->bufs, in);
    uv_close((uv_handle_t *)&c->poll, on_handed_off);
}

/* 101: the exchange ends here and the socket goes to a tunnel. */
int gh_h1c_upgrade(h1_conn *c, const gh_header *hdrs, size_t n, gh_takeover *t)
{
    gh_exchange *ex = c->ex;
    size_t cap = 64;
    for (size_t i = 0; i < n; i++)
        cap += hdrs[i].name_len + hdrs[i].value_len + 4;
    char *head = malloc(cap);
    gh_buf *in = c->in;
    size_t np = in ? gh_buf_len(in) : 0;
    char *pending = np ? malloc(np) : NULL;
    if (!head || (np && !pending)) {
        free(head);
        free(pending);
        return GH_ERROR;
    }
    size_t o = (size_t)snprintf(head, cap, "HTTP/1.1 101 Switching Protocols\r\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(head + o, cap - o, "%.*s: %.*s\r\n", (int)hdrs[i].name_len, hdrs[i].name,
                              (int)hdrs[i].value_len, hdrs[i].value);
    o += (size_t)snprintf(head + o, cap - o, "Connection: upgrade\r\n\r\n");
    if (np)
        memcpy(pending, in->data + in->start, np);
    *t = (gh_takeover){ .fd = c->fd, .tp = c->tp, .pending = pending, .npending = np, .head = head, .nhead = o };
    ex->status = 101;
    ex->head_sent = true;
    gh_exchange_response_over(ex);
    c->ex = NULL;
    c->act = NULL;
    if (c->env->done)
        c->env->done(ex);
    gh_exchange_free(ex);
    c->in = NULL;
    gh_buf_put(c->env->bufs, in);
    c->flags |= F_DEAD;
    uv_poll_stop(&c->poll);
    gh_deadline_cancel(&c->timer);
    c->env->h1->nconns--;   /* the tunnel counts itself */
    uv_close((uv_handle_t *)&c->poll, on_handed_off);
    return GH_OK;
}

/* On an http2 listener a connection may open with the prior-knowledge
 * preface: 1 = it does (hand over), 0 = it does not, -1 = too early to say. */
static int h2_preface(h1_conn *c, const char *p, size_t len)
{
    if (!c->http2 || c->requests)
        return 0;
    size_t n = len < GH_H2_PREFACE_LEN ? len : GH_H2_PREFACE_LEN;
    if (memcmp(p, GH_H2_PREFACE, n) != 0)
        return 0;
    return len >= GH_H2_PREFACE_LEN ? 1 : -1;
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
    int pre = h2_preface(c, p, len);
    if (pre > 0) {
        handoff_h2(c);
        return true;
    }
    if (pre < 0)
        return false;
    /* A head is parsed once its blank line is here, and also whenever a line
     * of an unfinished head ends: a request line without a version
     * (HTTP/0.9) or a bare LF is refused at once, not at header_timeout. */
    size_t from = c->head_scanned <= len ? c->head_scanned : 0;
    if (!gh_h1_head_complete(p, len, &scanned) && !memchr(p + from, '\n', len - from)) {
        c->head_scanned = (uint32_t)scanned;
        if (len > max_head) {
            reject(c, 431, "header_too_large", "request head exceeds max_header_bytes");
            return true;
        }
        if (c->state != ST_HEAD) {
            c->state = ST_HEAD;
            gh_h1c_arm(c, GH_TO_HEADER);   /* armed once per request: slowloris gets no extension */
        }
        return false;
    }
    c->head_scanned = 0;
    gh_h1_worker *w = c->env->h1;
    size_t max_headers = lim->max_headers < w->scratch_cap ? lim->max_headers : w->scratch_cap;
    gh_h1_message m;
    int r = gh_h1_parse_request(p, len, &m, w->scratch, max_headers, max_head);
    if (r == GH_H1_AGAIN) {
        /* fine so far (or only leading CRLFs before a blank line): keep
         * looking from here, under the same header deadline */
        c->head_scanned = (uint32_t)scanned;
        if (c->state != ST_HEAD) {
            c->state = ST_HEAD;
            gh_h1c_arm(c, GH_TO_HEADER);
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
        gh_h1c_defer_close(c);
        return true;
    }
    in->start += (size_t)r;
    c->requests++;
    ex->minor = m.minor;
    ex->keep_alive = m.keep_alive;
    ex->expect_continue = m.expect_continue;
    ex->upgrade = m.upgrade;
    ex->method_bit = gh_method_bit(ex->method.p, ex->method.len);
    ex->head_request = ex->method_bit == GH_M_HEAD;
    ex->body_kind = m.body;
    ex->content_length = m.content_length;
    ex->body_done = m.body == GH_BODY_NONE;
    c->act->body_left = m.body == GH_BODY_LENGTH ? m.content_length : 0;
    gh_chunked_init(&c->act->chunk);
    gh_split_target(ex);
    gh_exchange_set_request_id(ex);
    if (m.body == GH_BODY_LENGTH && m.content_length > lim->max_body_bytes) {
        c->flags |= F_CLOSE_AFTER;
        gh_problem(ex, 413, "payload_too_large", "request body exceeds max_body_bytes", NULL, 0, NULL);
        return true;
    }
    c->handle(ex);
    return true;
}

/* Run the connection forward as far as the buffered bytes allow. */
void gh_h1c_process(h1_conn *c)
{
    if (c->flags & F_IN_PROCESS)
        return;
    c->flags |= F_IN_PROCESS;
    while (!(c->flags & F_DEAD)) {
        if (c->ex) {
            if (!c->ex->body_done)
                gh_h1c_deliver_body(c);
            if (c->ex)
                break;
            continue;   /* finished meanwhile: next pipelined request */
        }
        if (!c->in || gh_buf_len(c->in) == 0) {
            if (c->flags & F_PEER_EOF) {
                gh_h1c_defer_close(c);
                break;
            }
            gh_buf_put(c->env->bufs, c->in);
            c->in = NULL;
            if (c->state != ST_IDLE || !gh_deadline_armed(&c->timer)) {
                c->state = ST_IDLE;
                gh_h1c_arm(c, GH_TO_IDLE);
            }
            break;
        }
        if (c->env->draining && c->state == ST_IDLE && c->requests > 0) {
            gh_h1c_defer_close(c);
            break;
        }
        if (!start_request(c))
            break;
    }
    c->flags &= ~F_IN_PROCESS;
    /* read again if we stopped for a full buffer that has drained */
    if (!(c->flags & F_DEAD) && (c->flags & F_READ_OFF) && !(c->flags & F_PEER_EOF) &&
        (!c->in || gh_buf_room(c->in) > 0) && (!c->ex || c->ex->body_done || c->ex->body_cb))
        gh_h1c_want_read(c, true);
}

void gh_h1c_exchange_complete(h1_conn *c)
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
        gh_h1c_defer_close(c);
        return;
    }
    gh_h1c_process(c);
}

/* --------------------------------------------------------------- reads -- */

static void on_eof(h1_conn *c)
{
    gh_exchange *ex = c->ex;
    if (ex && ex->body_done && !ex->response_done) {
        /* half-close after a full request: answer, then close */
        c->flags |= F_PEER_EOF | F_CLOSE_AFTER;
        gh_h1c_want_read(c, false);
        return;
    }
    if (ex && !ex->response_done)
        ex->log.error = ex->log.error ? ex->log.error : "client_closed";
    gh_h1c_defer_close(c);
}

static void on_readable(h1_conn *c)
{
    if (!c->in) {
        c->in = gh_buf_get(c->env->bufs);
        if (!c->in) {
            gh_h1c_defer_close(c);
            return;
        }
    }
    gh_buf *in = c->in;
    if (gh_buf_room(in) == 0) {
        gh_buf_compact(in);
        if (gh_buf_room(in) == 0) {
            gh_h1c_want_read(c, false);   /* full: resume when the consumer takes bytes */
            if (!c->ex)
                reject(c, 431, "header_too_large", "request head exceeds the buffer");
            return;
        }
    }
    ssize_t n = c->tp->ops->read(c->tp, c->fd, in->data + in->end, gh_buf_room(in));
    if (n == -EAGAIN) {
        if (gh_transport_wants(c->tp, false) == GH_WANT_WRITE)
            gh_h1c_set_events(c, c->events | UV_WRITABLE);   /* TLS: a read that must write first */
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
        gh_h1c_defer_close(c);
        return;
    }
    in->end += (size_t)n;
    if (c->ex && c->act)
        c->act->rx += (uint64_t)n;
    if (c->state == ST_IDLE && !c->ex)
        gh_deadline_cancel(&c->timer);
    if (c->ex && c->ex->body_done && gh_buf_room(in) == 0)
        gh_h1c_want_read(c, false);   /* pipelined bytes wait; no need to read on */
    gh_h1c_process(c);
}

/* Read until the transport has nothing buffered: TLS decrypts ahead, and
 * bytes inside it never make the socket readable again. */
static void read_all(h1_conn *c)
{
    for (int i = 0; i < 64; i++) {
        on_readable(c);
        if ((c->flags & (F_DEAD | F_READ_OFF)) || !gh_transport_pending(c->tp))
            return;
    }
}

/* TLS: finish the handshake, then pick the codec ALPN chose. The header
 * deadline armed at accept covers a handshake that never ends. */
static void handshake(h1_conn *c)
{
    int rc = gh_transport_handshake(c->tp, c->fd);
    if (rc == -EAGAIN) {
        gh_h1c_set_events(c, gh_transport_wants(c->tp, false));
        return;
    }
    if (rc < 0) {
        gh_log_debug("TLS handshake failed: %s", gh_tls_error(c->tp) ? gh_tls_error(c->tp) : "?");
        gh_h1c_defer_close(c);
        return;
    }
    c->state = ST_HEAD;
    gh_h1c_set_events(c, UV_READABLE);
    const char *alpn = gh_tls_alpn(c->tp);
    if (alpn && strcmp(alpn, "h2") == 0) {
        handoff_h2(c);
        return;
    }
    if (gh_transport_pending(c->tp))
        read_all(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    h1_conn *c = h->data;
    if (c->flags & F_DEAD)
        return;
    if (status < 0) {
        gh_h1c_defer_close(c);
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        handshake(c);
        return;
    }
    if (events & UV_WRITABLE) {
        gh_h1c_flush(c);
        /* a TLS read that waited for writability */
        if (!(events & UV_READABLE) && !(c->flags & F_DEAD) && (!c->act || c->act->wq_n == 0))
            events |= UV_READABLE;
    }
    if ((events & UV_READABLE) && !(c->flags & F_DEAD))
        read_all(c);
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
        gh_h1c_defer_close(c);
        return;
    case GH_TO_HEADER:
        if (c->state == ST_HANDSHAKE) {   /* nothing can be said over half a handshake */
            gh_h1c_defer_close(c);
            return;
        }
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
            gh_h1c_arm(c, GH_TO_BODY);
            return;
        }
        gh_h1c_body_error(c, 408, "request_timeout", "request body slower than min_body_rate");
        return;
    }
    default:   /* GH_TO_SEND: the client stopped reading */
        if (ex && ex->on_abort)
            ex->on_abort(ex);
        if (ex) {
            ex->on_abort = NULL;
            ex->log.error = "client_timeout";
        }
        gh_h1c_defer_close(c);
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
    c->handle = info->handle;
    c->local_port = info->local_port;
    c->path_strict = info->path_strict;
    c->uncounted = info->uncounted;
    c->tls = info->tls;
    c->http2 = info->http2;
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
    if (c->tp->ops->handshake) {
        c->state = ST_HANDSHAKE;
        gh_h1c_arm(c, GH_TO_HEADER);
        handshake(c);
        return 0;
    }
    gh_h1c_arm(c, GH_TO_IDLE);   /* a connection that never sends counts as idle */
    return 0;
}

void gh_h1_close_idle(gh_http_env *env)
{
    gh_deadline *d;
    /* every idle entry's handler closes it (HTTP/2 ones after a GOAWAY) */
    while ((d = gh_deadline_pop_due(&env->timeouts[GH_TO_IDLE], UINT64_MAX)) != NULL)
        d->fire(d);
    /* connections still in their TLS handshake have sent no request either */
    gh_deadline_list *hl = &env->timeouts[GH_TO_HEADER];
    for (gh_deadline *x = hl->head.next, *next; x != &hl->head; x = next) {
        next = x->next;
        if (x->fire != on_timeout)
            continue;
        h1_conn *c = (h1_conn *)((char *)x - offsetof(h1_conn, timer));
        if (c->state == ST_HANDSHAKE)
            gh_h1c_defer_close(c);
    }
    gh_h2_drain(env);
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
