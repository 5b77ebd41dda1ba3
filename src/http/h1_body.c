/* h1_body.c — the HTTP/1.1 codec's byte streams: writing responses
 * (Content-Length, chunked or close-delimited, with partial writes kept as
 * iovecs over the producer's memory) and delivering request bodies to the
 * exchange's consumer (Content-Length or chunked, with flow control). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "core/log.h"
#include "http/h1_int.h"
#include "http/status.h"

/* -------------------------------------------------------------- writes -- */


/* Write iov now; keep what the socket does not take and wait for WRITABLE.
 * The caller keeps the bytes alive until the exchange's on_writable. */
int gh_h1c_writev(h1_conn *c, struct iovec *iov, int n)
{
    h1_active *a = c->act;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    ssize_t w = c->tp->ops->writev(c->tp, c->fd, iov, n);
    if (w == (ssize_t)total)
        return GH_OK;
    if ((w < 0 && w != -EAGAIN) || (w == 0 && total > 0)) {   /* 0 would wait forever */
        gh_h1c_defer_close(c);
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
    gh_h1c_set_events(c, c->events | UV_WRITABLE);
    gh_h1c_arm(c, GH_TO_SEND);
    return GH_AGAIN;
}

void gh_h1c_flush(h1_conn *c)
{
    h1_active *a = c->act;
    if (!a || a->wq_n == 0) {
        gh_h1c_set_events(c, c->events & ~UV_WRITABLE);
        return;
    }
    struct iovec iov[MAX_WQ];
    int n = a->wq_n;
    memcpy(iov, a->wq, sizeof(iov[0]) * (size_t)n);
    a->wq_n = 0;
    int rc = gh_h1c_writev(c, iov, n);
    if (rc != GH_OK)
        return;
    gh_h1c_set_events(c, c->events & ~UV_WRITABLE);
    gh_deadline_cancel(&c->timer);
    gh_exchange *ex = c->ex;
    if (ex->response_done) {
        gh_h1c_exchange_complete(c);
        return;
    }
    if (!ex->body_done && ex->body_cb)
        gh_h1c_arm(c, GH_TO_BODY);
    gh_exchange_writable(ex);
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
    if (end - p > 16 && status >= 100 && status <= 999) {   /* the caller sized buf for this */
        memcpy(p, "HTTP/1.1 ", 9);
        p += 9;
        p += gh_u64_dec(p, (uint64_t)status);
        *p++ = ' ';
    }
    append(&p, end, reason, strlen(reason));
    append(&p, end, "\r\n", 2);
    for (size_t i = 0; i < n; i++) {
        append(&p, end, hdrs[i].name, hdrs[i].name_len);
        append(&p, end, ": ", 2);
        append(&p, end, hdrs[i].value, hdrs[i].value_len);
        append(&p, end, "\r\n", 2);
    }
    if (content_length >= 0 && status != 204 && status >= 200 && !(status == 304 && content_length == 0))
    {
        char num[20];
        size_t nl = gh_u64_dec(num, (uint64_t)content_length);
        append(&p, end, "Content-Length: ", 16);
        append(&p, end, num, nl);
        append(&p, end, "\r\n", 2);
    }
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

/* The iovecs of len body bytes (framed as the response is) and, when
 * `last`, of the chunked terminator; the held head goes first. */
static int body_iov(gh_exchange *ex, h1_active *a, struct iovec *iov, const char *p, size_t len, bool last)
{
    int n = 0;
    if (a->head) {
        iov[n++] = (struct iovec){ a->head, a->head_len };
        a->head = NULL;
    }
    bool chunked = a->resp_mode == RESP_CHUNKED;
    if (a->resp_mode != RESP_NONE && len) {
        if (chunked) {
            int l = snprintf(a->chunk_line, sizeof(a->chunk_line), "%zx\r\n", len);
            iov[n++] = (struct iovec){ a->chunk_line, (size_t)l };
        }
        iov[n++] = (struct iovec){ (void *)p, len };
        if (chunked)
            iov[n++] = last ? (struct iovec){ "\r\n0\r\n\r\n", 7 } : (struct iovec){ "\r\n", 2 };
        ex->bytes_out += len;
    } else if (chunked && last) {
        iov[n++] = (struct iovec){ "0\r\n\r\n", 5 };
    }
    return n;
}

static int h1_send_body(gh_exchange *ex, const char *p, size_t len)
{
    h1_conn *c = CONN(ex);
    if (c->flags & F_DEAD)
        return GH_ERROR;
    struct iovec iov[4];
    int n = body_iov(ex, c->act, iov, p, len, false);
    return n ? gh_h1c_writev(c, iov, n) : GH_OK;
}

/* The last body bytes (maybe none) and the end, in one write. */
static int h1_send_last(gh_exchange *ex, const char *p, size_t len)
{
    h1_conn *c = CONN(ex);
    h1_active *a = c->act;
    gh_exchange_response_over(ex);
    if (c->flags & F_DEAD)
        return GH_ERROR;
    if (!ex->body_done)
        c->flags |= F_CLOSE_AFTER;
    if (a->wq_n)   /* an earlier write is still pending: flush() completes */
        return GH_AGAIN;
    struct iovec iov[4];
    int n = body_iov(ex, a, iov, p, len, true);
    int rc = n ? gh_h1c_writev(c, iov, n) : GH_OK;
    if (rc == GH_OK)
        gh_h1c_exchange_complete(c);
    return rc;
}

static int h1_finish(gh_exchange *ex) { return h1_send_last(ex, NULL, 0); }

static void h1_abort(gh_exchange *ex)
{
    h1_conn *c = CONN(ex);
    gh_exchange_response_over(ex);
    if (!ex->log.error)
        ex->log.error = "upstream_error";
    gh_h1c_defer_close(c);
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
            gh_h1c_defer_close(c);
            return;
        }
    }
    if (!ex->body_done && !gh_deadline_armed(&c->timer)) {
        a->rx_mark = a->rx;
        gh_h1c_arm(c, GH_TO_BODY);
    }
    /* the consumer may finish the exchange from inside deliver_body: no new
     * request may start until we are back out (see process()) */
    bool outer = !(c->flags & F_IN_PROCESS);
    c->flags |= F_IN_PROCESS;
    gh_h1c_deliver_body(c);
    if (!outer)
        return;
    c->flags &= ~F_IN_PROCESS;
    if (c->flags & F_DEAD)
        return;
    if (!c->ex) {
        gh_h1c_process(c);
        return;
    }
    if (!c->ex->body_done && (c->flags & F_READ_OFF) && !(c->flags & F_PEER_EOF))
        gh_h1c_want_read(c, true);
}

/* HTTP/1.1 responses go out with Content-Length or plain chunked framing:
 * trailer fields are dropped (RFC 9110 §6.5.1 lets a proxy discard them). */
static int h1_finish_trailers(gh_exchange *ex, const gh_header *hdrs, size_t n)
{
    return h1_finish(ex);
}

static int h1_upgrade(gh_exchange *ex, const gh_header *hdrs, size_t n, gh_takeover *t)
{
    h1_conn *c = CONN(ex);
    if (c->flags & F_DEAD || ex->head_sent)
        return GH_ERROR;
    return gh_h1c_upgrade(c, hdrs, n, t);
}

const gh_downstream_ops gh_h1_ops = {
    .send_head = h1_send_head,
    .send_body = h1_send_body,
    .finish = h1_finish,
    .send_last = h1_send_last,
    .abort = h1_abort,
    .resume_body = h1_resume_body,
    .finish_trailers = h1_finish_trailers,
    .upgrade = h1_upgrade,
};

/* ------------------------------------------------------- request body --- */

void gh_h1c_body_error(h1_conn *c, int status, const char *code, const char *detail)
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
        gh_h1c_defer_close(c);
        return;
    }
    if (ex->on_abort)
        ex->on_abort(ex);        /* the consumer drops what it started (e.g. the upstream request) */
    ex->on_abort = NULL;
    ex->on_writable = NULL;
    gh_problem(ex, status, code, detail, NULL, 0, NULL);
}

/* Hand buffered body bytes to the consumer until it pauses or they run out. */
void gh_h1c_deliver_body(h1_conn *c)
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
            if (gh_exchange_body_over(ex, n)) {   /* a bound lowered after the head */
                gh_h1c_body_error(c, 413, "payload_too_large", ex->body_limit_detail);
                return;
            }
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
            /* the decoder stops right after a data span: leave the span
             * itself unconsumed, at in->start, so compacting the buffer
             * moves it along instead of overwriting it */
            in->start += used - dlen;
            if (rc == GH_CHUNKED_BAD) {
                gh_h1c_body_error(c, 400, "bad_request", "malformed chunked request body");
                return;
            }
            if (dlen && gh_exchange_body_over(ex, dlen)) {
                gh_h1c_body_error(c, 413, "payload_too_large", ex->body_limit_detail);
                return;
            }
            (void)data;   /* == in->data + in->start */
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
        size_t took = ex->body_cb(ex, in->data + in->start, a->span_len, false);
        if (c->ex != ex || (c->flags & F_DEAD))
            return;
        in->start += took;
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
