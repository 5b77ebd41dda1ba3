/* h2_conn.c — HTTP/2 server connections on nghttp2.
 *
 * Bytes in: nghttp2_session_mem_recv; its callbacks build one exchange per
 * stream. Streams whose headers are complete are dispatched only after the
 * whole read batch was processed, so a HEADERS immediately followed by its
 * RST_STREAM (rapid reset) never reaches an upstream. Bytes out:
 * nghttp2_session_mem_send into one buffer, written with one call.
 *
 * Flow control is end to end: automatic WINDOW_UPDATEs are off and request
 * body bytes are acknowledged (nghttp2_session_consume) only when the
 * exchange's consumer takes them, so a slow upstream slows the client down
 * instead of filling memory; response data is handed to nghttp2 only as its
 * send window allows, and the producer is told to wait meanwhile.
 *
 * Exchange ops never call into nghttp2's send path: they queue the work and
 * a deferred flush runs it on the next loop turn, so no nghttp2 callback can
 * free a stream under a producer that is still on the stack. */
#include "http/h2_conn.h"
#include <arpa/inet.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/log.h"
#include "http/request.h"
#include "http/status.h"
#include "http/upquota.h"
#include "tls/tls.h"

#define MAX_STREAMS 100
/* Resets a client may cause (its own RST_STREAMs, and the streams we reset
 * or refuse because of its frames) before GOAWAY(ENHANCE_YOUR_CALM): a token
 * bucket, RESET_BURST deep, refilled at RESET_RATE per second. */
#define RESET_BURST 200
#define RESET_RATE 50
/* Upstream connections the streams of one client connection hold at once;
 * further streams wait for one of them (http/upquota.h). */
#define UPSTREAM_CONNS 32
/* What one connection can make us hold (docs/performance.md, "Memory per
 * connection"): request body bytes not yet taken by their consumers are
 * bounded by the receive windows (we acknowledge only what was taken) and
 * buffered in exactly as much memory; output is gathered up to OUT_CAP. */
#define STREAM_WINDOW 65535          /* request body buffered per stream, at most */
#define CONN_WINDOW (128 * 1024)     /* ... and per connection, all streams together */
#define OUT_CAP (64 * 1024)          /* output gathered before one write */

typedef struct h2_stream h2_stream;

typedef struct h2_conn {
    uv_poll_t poll;
    gh_http_env *env;
    gh_transport *tp;
    nghttp2_session *ng;
    gh_deadline timer;
    gh_task flush_task;
    struct h2_conn *prev, *next;     /* worker's list */
    h2_stream *ready, *ready_tail;   /* headers complete, to dispatch after the read */
    h2_stream *notify;               /* producers to tell that their data was taken */
    h2_stream *streams;              /* open streams (to end them when the connection goes) */
    char *out;                       /* gathered output not yet written */
    size_t out_len, out_off;
    union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } peer;
    gh_h1_listen_info info;
    char *client_cert;               /* verified mTLS subject, or NULL */
    size_t nstreams;                 /* streams holding an exchange */
    gh_upquota upq;                  /* upstream connections its streams hold */
    uint64_t reset_ms;               /* last refill of the reset budget */
    uint32_t reset_tokens;
    int fd;
    int events;
    bool dead, goaway, closing;
    bool calm;                       /* reset budget spent: GOAWAY(ENHANCE_YOUR_CALM) */
} h2_conn;

struct h2_stream {
    h2_conn *c;
    gh_deadline timer;               /* head or request body not arriving */
    gh_exchange *ex;
    int32_t id;
    h2_stream *next_ready, *next_notify;
    h2_stream *prev, *next;          /* the connection's open streams */
    /* request head */
    gh_header *hdrs;
    size_t nhdrs, caphdrs, hbytes;
    gh_str method, scheme, authority, path;
    bool regular_seen, bad, too_big, body_over;
    bool dispatched, end_recv, closed, notify_queued;
    /* request body not yet taken by the consumer */
    char *body;
    size_t body_off, body_len;
    bool last_delivered;
    /* response */
    nghttp2_nv *nv;
    size_t nnv;
    const char *data;                /* producer's bytes not yet given to nghttp2 */
    size_t data_len;
    nghttp2_nv *trailer_nv;
    size_t ntrailers;
    bool submitted, eof, deferred, producer_waits;
};

static const gh_downstream_ops h2_ops;
static void conn_close(h2_conn *c);
static void schedule_flush(h2_conn *c);
static void deliver(h2_stream *s);

/* ------------------------------------------------------------ helpers -- */

static void set_events(h2_conn *c, int ev);

static void on_closed(uv_handle_t *h)
{
    h2_conn *c = h->data;
    close(c->fd);
    free(c->out);
    free(c->client_cert);
    free(c);
}

/* A response that flow control holds back: the client's window is shut. */
static bool send_blocked(h2_conn *c)
{
    for (h2_stream *s = c->streams; s; s = s->next)
        if (s->data_len && (nghttp2_session_get_remote_window_size(c->ng) <= 0 ||
                            nghttp2_session_get_stream_remote_window_size(c->ng, s->id) <= 0))
            return true;
    return false;
}

static void arm_timeout(h2_conn *c)
{
    const gh_limits_cfg *l = c->env->limits;
    uint64_t now = gh_now_ms(c->env);
    if (c->out_len > c->out_off)
        gh_deadline_arm(&c->env->timeouts[GH_TO_SEND], &c->timer, now + l->idle_timeout_ms, GH_TO_SEND);
    else if (c->nstreams == 0)
        gh_deadline_arm(&c->env->timeouts[GH_TO_IDLE], &c->timer, now + l->idle_timeout_ms, GH_TO_IDLE);
    else if (send_blocked(c)) {
        /* a zero window that stays shut: armed once, not pushed on by PINGs */
        if (!gh_deadline_armed(&c->timer) || c->timer.list != GH_TO_SEND)
            gh_deadline_arm(&c->env->timeouts[GH_TO_SEND], &c->timer, now + l->idle_timeout_ms, GH_TO_SEND);
    } else
        gh_deadline_cancel(&c->timer);
}

static void on_stream_timeout(gh_deadline *d);

static void stream_arm(h2_stream *s, int kind)
{
    const gh_limits_cfg *l = s->c->env->limits;
    uint64_t ms = kind == GH_TO_HEADER ? l->header_timeout_ms : l->body_timeout_ms;
    s->timer.fire = on_stream_timeout;
    gh_deadline_arm(&s->c->env->timeouts[kind], &s->timer, gh_now_ms(s->c->env) + ms, (unsigned char)kind);
}

static void stream_free_body(h2_stream *s)
{
    free(s->body);
    s->body = NULL;
    s->body_len = s->body_off = 0;
}

/* A reset the client caused (its own, or ours because of its frames):
 * spend a token; with none left, GOAWAY(ENHANCE_YOUR_CALM) ends the
 * connection and nothing more of it is dispatched (MadeYouReset,
 * CVE-2025-8671, and rapid reset, CVE-2023-44487, by one rule). */
static void count_reset(h2_conn *c)
{
    uint64_t now = gh_now_ms(c->env);
    uint64_t add = (now - c->reset_ms) * RESET_RATE / 1000;
    if (add) {
        c->reset_tokens = add >= RESET_BURST - c->reset_tokens ? RESET_BURST : c->reset_tokens + (uint32_t)add;
        c->reset_ms += add * 1000 / RESET_RATE;
    }
    if (c->reset_tokens) {
        c->reset_tokens--;
        return;
    }
    if (c->calm)
        return;
    c->calm = c->goaway = true;
    gh_log_debug("http2: too many reset streams; GOAWAY(ENHANCE_YOUR_CALM)");
    nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
    schedule_flush(c);
}

/* Resize the stream's body buffer to exactly its unread bytes plus `more`
 * (unread bytes moved to the front): the memory held is the bytes held,
 * which the receive windows bound. false when out of memory. */
static bool keep_body(h2_stream *s, size_t more)
{
    size_t live = s->body_len - s->body_off;
    if (s->body_off)
        memmove(s->body, s->body + s->body_off, live);
    s->body_off = 0;
    s->body_len = live;
    if (live + more == 0) {
        stream_free_body(s);
        return true;
    }
    char *b = realloc(s->body, live + more);
    if (!b)
        return more == 0;   /* shrinking failed: the old block still holds it */
    s->body = b;
    return true;
}

/* ----------------------------------------------------------- flushing -- */

/* Write gathered output; true when all of it went. */
static bool write_out(h2_conn *c)
{
    while (c->out_off < c->out_len) {
        struct iovec iov = { c->out + c->out_off, c->out_len - c->out_off };
        ssize_t w = c->tp->ops->writev(c->tp, c->fd, &iov, 1);
        if (w == -EAGAIN) {
            set_events(c, c->events | gh_transport_wants(c->tp, true));
            return false;
        }
        if (w <= 0) {
            c->dead = true;
            return false;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    set_events(c, UV_READABLE);
    return true;
}

/* Tell producers whose data nghttp2 has taken that they may go on. */
static void run_notify(h2_conn *c)
{
    while (c->notify) {
        h2_stream *s = c->notify;
        c->notify = s->next_notify;
        s->notify_queued = false;
        gh_exchange *ex = s->ex;
        if (ex && !s->closed && s->producer_waits && s->data_len == 0) {
            s->producer_waits = false;
            if (ex->on_writable)
                ex->on_writable(ex);
        }
    }
}

/* Everything nghttp2 wants to send, gathered and written. Only called from
 * the top of a loop callback. */
static void flush(h2_conn *c)
{
    for (int rounds = 0; !c->dead && rounds < 64; rounds++) {
        if (!write_out(c))
            break;
        while (c->out_len < OUT_CAP) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->ng, &data);
            if (n < 0) {
                c->dead = true;
                break;
            }
            if (n == 0)
                break;
            if (c->out_len + (size_t)n > OUT_CAP) {
                /* a frame bigger than what is left: write what we have first */
                if (!write_out(c)) {
                    char *grow = realloc(c->out, c->out_len + (size_t)n);
                    if (!grow) {
                        c->dead = true;
                        break;
                    }
                    c->out = grow;
                }
            }
            if (c->out_len + (size_t)n > OUT_CAP && c->out_len == 0 && (size_t)n > OUT_CAP) {
                char *grow = realloc(c->out, (size_t)n);
                if (!grow) {
                    c->dead = true;
                    break;
                }
                c->out = grow;
            }
            memcpy(c->out + c->out_len, data, (size_t)n);
            c->out_len += (size_t)n;
        }
        if (c->out_len == 0)
            break;
    }
    if (!c->dead && c->out_len == 0 && !nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))
        c->dead = true;   /* GOAWAY exchanged and nothing left: done */
    run_notify(c);
    if (c->dead) {
        conn_close(c);
        return;
    }
    arm_timeout(c);
}

static void on_flush_task(gh_task *t)
{
    h2_conn *c = (h2_conn *)((char *)t - offsetof(h2_conn, flush_task));
    gh_upquota_run(&c->upq);   /* streams waiting for an upstream slot go first */
    flush(c);
}

static void on_quota_kick(gh_upquota *q)
{
    schedule_flush((h2_conn *)((char *)q - offsetof(h2_conn, upq)));
}

static void schedule_flush(h2_conn *c)
{
    if (!c->dead)
        gh_env_defer(c->env, &c->flush_task);
}

/* ---------------------------------------------------- exchange ops ---- */

#define STREAM(ex) ((h2_stream *)(ex)->down_ctx)

static bool hop_by_hop(const gh_header *h)
{
    static const char *const names[] = { "connection", "keep-alive", "proxy-connection",
                                         "transfer-encoding", "upgrade", "te" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (h->name_len == strlen(names[i]) && strncasecmp(h->name, names[i], h->name_len) == 0)
            return true;
    return false;
}

/* HTTP/2 field names are lower-case: copy them so into the arena. */
static nghttp2_nv *make_nv(gh_exchange *ex, const gh_header *h, size_t n, size_t extra, size_t *out_n)
{
    nghttp2_nv *nv = gh_arena_alloc(&ex->arena, (n + extra) * sizeof(*nv));
    if (!nv)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (hop_by_hop(&h[i]))
            continue;
        char *name = gh_arena_alloc(&ex->arena, h[i].name_len + 1);
        if (!name)
            return NULL;
        for (uint32_t j = 0; j < h[i].name_len; j++)
            name[j] = gh_lower(h[i].name[j]);
        /* the caller's values may live in a buffer it reuses (the proxy's
         * read buffer) before nghttp2 serializes the frame: copy them too */
        char *value = gh_arena_alloc(&ex->arena, h[i].value_len + 1);
        if (!value)
            return NULL;
        memcpy(value, h[i].value, h[i].value_len);
        nv[k++] = (nghttp2_nv){ (uint8_t *)name, (uint8_t *)value, h[i].name_len, h[i].value_len,
                                NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE };
    }
    *out_n = k;
    return nv;
}

static int h2_send_head(gh_exchange *ex, int status, const gh_header *hdrs, size_t n, int64_t clen)
{
    h2_stream *s = STREAM(ex);
    if (s->closed)
        return GH_ERROR;
    size_t k;
    nghttp2_nv *nv = make_nv(ex, hdrs, n, 2, &k);
    if (!nv)
        return GH_ERROR;
    /* :status first */
    memmove(nv + 1, nv, k * sizeof(*nv));
    char *st = gh_arena_printf(&ex->arena, "%d", status);
    nv[0] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)st, 7, strlen(st),
                          NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE };
    k++;
    if (clen >= 0 && status != 204 && status >= 200) {
        char *cl = gh_arena_printf(&ex->arena, "%lld", (long long)clen);
        nv[k++] = (nghttp2_nv){ (uint8_t *)"content-length", (uint8_t *)cl, 14, strlen(cl),
                                NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE };
    }
    s->nv = nv;
    s->nnv = k;
    ex->status = status;
    ex->head_sent = true;
    return GH_OK;
}

static void submit_trailers(nghttp2_session *ng, h2_stream *s, uint32_t *flags)
{
    if (s->trailer_nv && nghttp2_submit_trailer(ng, s->id, s->trailer_nv, s->ntrailers) == 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
}

/* nghttp2 asks for body bytes as the send window allows. */
static ssize_t read_data(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    h2_stream *s = src->ptr;
    h2_conn *c = s->c;
    size_t n = s->data_len < length ? s->data_len : length;
    if (n) {
        memcpy(buf, s->data, n);
        s->data += n;
        s->data_len -= n;
        if (s->data_len == 0 && s->producer_waits && !s->notify_queued) {
            s->notify_queued = true;
            s->next_notify = c->notify;
            c->notify = s;
        }
    } else if (!s->eof) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (s->data_len == 0 && s->eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->ntrailers)
            submit_trailers(ng, s, flags);
    }
    return (ssize_t)n;
}

/* Submit the response head (with a body source unless the stream ends
 * with the head), or wake a deferred body source. */
static int kick(h2_stream *s, bool body)
{
    h2_conn *c = s->c;
    if (!s->submitted) {
        s->submitted = true;
        nghttp2_data_provider dp = { .source.ptr = s, .read_callback = read_data };
        if (nghttp2_submit_response(c->ng, s->id, s->nv, s->nnv, body ? &dp : NULL) != 0)
            return GH_ERROR;
    } else if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(c->ng, s->id);
    }
    schedule_flush(c);
    return GH_OK;
}

static int h2_send_body(gh_exchange *ex, const char *p, size_t len)
{
    h2_stream *s = STREAM(ex);
    if (s->closed || !s->nv)
        return GH_ERROR;
    if (len == 0 || ex->head_request)
        return GH_OK;
    s->data = p;
    s->data_len = len;
    s->producer_waits = true;
    ex->bytes_out += len;
    if (kick(s, true) != GH_OK)
        return GH_ERROR;
    return GH_AGAIN;   /* on_writable once nghttp2 has taken it all */
}

static int finish_common(gh_exchange *ex)
{
    h2_stream *s = STREAM(ex);
    gh_exchange_response_over(ex);
    if (s->closed || !s->nv)
        return GH_ERROR;
    s->eof = true;
    /* no body was ever offered and no trailers: END_STREAM on the head */
    bool body = s->submitted || s->ntrailers;
    if (!s->submitted && ex->bytes_out == 0 && !s->ntrailers)
        body = false;
    if (kick(s, body) != GH_OK)
        return GH_ERROR;
    /* a body the client is still sending is stopped by on_frame_send once
     * the whole response is out (RST_STREAM now would discard it) */
    return GH_OK;
}

static int h2_finish(gh_exchange *ex)
{
    return finish_common(ex);
}

static int h2_finish_trailers(gh_exchange *ex, const gh_header *hdrs, size_t n)
{
    h2_stream *s = STREAM(ex);
    if (n) {
        size_t k;
        s->trailer_nv = make_nv(ex, hdrs, n, 0, &k);   /* copied now: hdrs may not outlive this call */
        if (s->trailer_nv && k)
            s->ntrailers = k;
    }
    return finish_common(ex);
}

static void h2_abort(gh_exchange *ex)
{
    h2_stream *s = STREAM(ex);
    gh_exchange_response_over(ex);
    if (!ex->log.error)
        ex->log.error = "upstream_error";
    if (!s->closed) {
        nghttp2_submit_rst_stream(s->c->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        schedule_flush(s->c);
    }
}

static void h2_resume_body(gh_exchange *ex)
{
    deliver(STREAM(ex));
}

/* RFC 8441 (WebSocket over HTTP/2) is not offered: no upgrade here. */
static int h2_upgrade(gh_exchange *ex, const gh_header *hdrs, size_t n, gh_takeover *t)
{
    return GH_ERROR;
}

static const gh_downstream_ops h2_ops = {
    .send_head = h2_send_head,
    .send_body = h2_send_body,
    .finish = h2_finish,
    .abort = h2_abort,
    .resume_body = h2_resume_body,
    .finish_trailers = h2_finish_trailers,
    .upgrade = h2_upgrade,
};

/* ------------------------------------------------------ request body --- */

/* Hand buffered body bytes (and the end) to the consumer; acknowledge what
 * it took so the client may send more. */
static void deliver(h2_stream *s)
{
    gh_exchange *ex = s->ex;
    if (!ex || s->closed || !ex->body_cb || ex->body_done)
        return;
    size_t took_total = 0;
    while (ex->body_cb && s->body_len > s->body_off) {
        size_t n = s->body_len - s->body_off;
        bool last = s->end_recv;
        size_t took = ex->body_cb(ex, s->body + s->body_off, n, last);
        if (s->ex != ex || s->closed)
            return;
        s->body_off += took;
        ex->body_received += took;
        took_total += took;
        if (took == n && last) {
            s->last_delivered = true;
            ex->body_done = true;
        }
        if (took < n)
            break;
    }
    if (s->body_off == s->body_len)
        stream_free_body(s);
    else if (took_total)
        keep_body(s, 0);   /* give back what was taken: hold only what is left */
    if (s->end_recv && !s->last_delivered && s->body_len == 0 && ex->body_cb) {
        s->last_delivered = true;
        ex->body_done = true;
        ex->body_cb(ex, "", 0, true);
    }
    if (took_total && !s->closed) {
        nghttp2_session_consume(s->c->ng, s->id, took_total);
        schedule_flush(s->c);
    }
}

/* ---------------------------------------------------- nghttp2 events --- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    h2_conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    gh_exchange *ex = gh_exchange_new(c->env);
    if (!ex)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    h2_stream *s = gh_arena_zalloc(&ex->arena, sizeof(*s));
    if (!s) {
        gh_exchange_free(ex);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    ex->pin = c->env->pin(c->env, &ex->cfg);
    ex->down = &h2_ops;
    ex->down_ctx = s;
    ex->minor = 2;
    ex->keep_alive = true;
    ex->tls = c->info.tls;
    ex->path_strict = c->info.path_strict;
    ex->local_port = c->info.local_port;
    ex->upquota = &c->upq;
    gh_set_peer(ex, &c->peer.sa);
    if (c->client_cert)
        ex->client_cert = gh_str_c(c->client_cert);   /* lives as long as the connection */
    s->c = c;
    s->ex = ex;
    s->id = f->hd.stream_id;
    nghttp2_session_set_stream_user_data(ng, s->id, s);
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    gh_deadline_cancel(&c->timer);
    stream_arm(s, GH_TO_HEADER);   /* the whole head within header_timeout */
    return 0;
}

static bool pseudo(h2_stream *s, gh_exchange *ex, const uint8_t *name, size_t nl, gh_str v)
{
    gh_str *slot = NULL;
    if (nl == 7 && memcmp(name, ":method", 7) == 0)
        slot = &s->method;
    else if (nl == 5 && memcmp(name, ":path", 5) == 0)
        slot = &s->path;
    else if (nl == 7 && memcmp(name, ":scheme", 7) == 0)
        slot = &s->scheme;
    else if (nl == 10 && memcmp(name, ":authority", 10) == 0)
        slot = &s->authority;
    if (!slot || slot->p || s->regular_seen)
        return false;
    *slot = gh_arena_str(&ex->arena, v);
    return true;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    h2_conn *c = ud;
    h2_stream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!s || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;   /* request trailers are not forwarded */
    gh_exchange *ex = s->ex;
    const gh_limits_cfg *l = c->env->limits;
    s->hbytes += nl + vl + 32;   /* RFC 9113's accounting of a field's size */
    if (s->too_big || s->hbytes > l->max_header_bytes || s->nhdrs >= l->max_headers) {
        s->too_big = true;
        return 0;
    }
    gh_str v = { (const char *)value, vl };
    if (nl && name[0] == ':') {
        if (!pseudo(s, ex, name, nl, v))
            s->bad = true;
        return 0;
    }
    s->regular_seen = true;
    if (nl == 6 && memcmp(name, "cookie", 6) == 0) {
        /* RFC 9113 §8.2.3: one cookie field, crumbs joined with "; " */
        for (size_t i = 0; i < s->nhdrs; i++) {
            gh_header *h = &s->hdrs[i];
            if (h->name_len == 6 && memcmp(h->name, "cookie", 6) == 0) {
                char *j = gh_arena_alloc(&ex->arena, h->value_len + 2 + vl + 1);
                if (!j)
                    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
                memcpy(j, h->value, h->value_len);
                memcpy(j + h->value_len, "; ", 2);
                memcpy(j + h->value_len + 2, value, vl);
                h->value = j;
                h->value_len += 2 + (uint32_t)vl;
                return 0;
            }
        }
    }
    if (s->nhdrs == s->caphdrs) {
        size_t cap = s->caphdrs ? s->caphdrs * 2 : 16;
        gh_header *h = gh_arena_alloc(&ex->arena, cap * sizeof(*h));
        if (!h)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if (s->nhdrs)
            memcpy(h, s->hdrs, s->nhdrs * sizeof(*h));
        s->hdrs = h;
        s->caphdrs = cap;
    }
    gh_str n = gh_arena_str(&ex->arena, (gh_str){ (const char *)name, nl });
    gh_str vv = gh_arena_str(&ex->arena, v);
    s->hdrs[s->nhdrs++] = (gh_header){ n.p, vv.p, (uint32_t)nl, (uint32_t)vl };
    return 0;
}

/* RFC 9113 §8.3.1: :scheme is http or https, and :path is origin-form (or
 * "*" for OPTIONS): an absolute or authority form would let the client name
 * a host the routing never saw. */
static bool pseudo_ok(const h2_stream *s)
{
    gh_str sc = s->scheme, p = s->path;
    bool scheme = (sc.len == 4 && strncasecmp(sc.p, "http", 4) == 0) ||
                  (sc.len == 5 && strncasecmp(sc.p, "https", 5) == 0);
    bool path = p.len && (p.p[0] == '/' || (p.len == 1 && p.p[0] == '*' && gh_str_eq_c(s->method, "OPTIONS")));
    return scheme && path;
}

/* The request head is complete: fill the exchange and queue the dispatch. */
static void head_done(h2_conn *c, h2_stream *s, bool end_stream)
{
    gh_exchange *ex = s->ex;
    ex->headers = s->hdrs;
    ex->nheaders = s->nhdrs;
    s->end_recv = end_stream;
    if (!s->method.p || !s->path.p || !s->scheme.p || !pseudo_ok(s))
        s->bad = true;   /* CONNECT (no :scheme, no :path) is not offered: malformed too */
    if (s->method.p) {
        ex->method = s->method;
        ex->method_bit = gh_method_bit(s->method.p, s->method.len);
        ex->head_request = ex->method_bit == GH_M_HEAD;
    }
    const gh_header *host = gh_exchange_header(ex, "host", 4);
    gh_str auth = s->authority.p ? s->authority : host ? (gh_str){ host->value, host->value_len } : GH_STR_NULL;
    if (auth.p && !gh_h1_valid_host(auth.p, auth.len))
        s->bad = true;   /* the rule HTTP/1.1's Host is held to */
    if (auth.p) {
        ex->authority = auth;
        ex->host = gh_host_of(&ex->arena, auth.p, auth.len);
    }
    if (s->path.p) {
        ex->target = s->path;
        gh_split_target(ex);
    }
    const gh_header *cl = gh_exchange_header(ex, "content-length", 14);
    if (end_stream) {
        ex->body_kind = GH_BODY_NONE;
        ex->body_done = true;
    } else if (cl) {
        ex->body_kind = GH_BODY_LENGTH;   /* nghttp2 checks it against the DATA received */
        uint64_t v = 0;
        for (uint32_t i = 0; i < cl->value_len; i++)
            v = v * 10 + (uint64_t)(cl->value[i] - '0');
        ex->content_length = v;
        if (v > c->env->limits->max_body_bytes)
            s->body_over = true;
    } else {
        ex->body_kind = GH_BODY_CHUNKED;  /* length unknown: framed per hop */
    }
    gh_exchange_set_request_id(ex);
    if (end_stream)
        gh_deadline_cancel(&s->timer);
    else
        stream_arm(s, GH_TO_BODY);
    s->next_ready = NULL;
    if (c->ready_tail)
        c->ready_tail->next_ready = s;
    else
        c->ready = s;
    c->ready_tail = s;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    h2_conn *c = ud;
    if (f->hd.type == NGHTTP2_RST_STREAM)
        count_reset(c);
    h2_stream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!s)
        return 0;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        head_done(c, s, end);
        return 0;
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end) {
        s->end_recv = true;
        gh_deadline_cancel(&s->timer);
        if (s->dispatched)
            deliver(s);
    }
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    h2_conn *c = ud;
    h2_stream *s = nghttp2_session_get_stream_user_data(ng, id);
    gh_exchange *ex = s ? s->ex : NULL;
    if (s && !s->closed && !s->end_recv && len)
        stream_arm(s, GH_TO_BODY);   /* the body moves */
    if (!ex || s->closed || ex->response_done) {
        nghttp2_session_consume(ng, id, len);   /* nobody reads it: keep the window open */
        return 0;
    }
    if (ex->body_received + s->body_len + len > c->env->limits->max_body_bytes) {
        ex->body_cb = NULL;
        if (ex->on_abort)
            ex->on_abort(ex);
        ex->on_abort = NULL;
        ex->on_writable = NULL;
        stream_free_body(s);
        nghttp2_session_consume(ng, id, len);
        if (!ex->head_sent && s->dispatched)
            gh_problem(ex, 413, "payload_too_large", "request body exceeds max_body_bytes", NULL, 0, NULL);
        else if (!s->dispatched)
            s->body_over = true;   /* answered at dispatch */
        else
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        return 0;
    }
    size_t off = 0;
    if (s->dispatched && ex->body_cb && s->body_len == 0) {
        off = ex->body_cb(ex, (const char *)data, len, false);
        if (s->ex != ex || s->closed)
            return 0;
        ex->body_received += off;
        if (off)
            nghttp2_session_consume(ng, id, off);
    }
    if (off < len) {
        size_t n = len - off;
        if (s->body_len - s->body_off + n > STREAM_WINDOW)   /* the window forbids this; be safe anyway */
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        size_t at = s->body_len - s->body_off;
        if (!keep_body(s, n))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        memcpy(s->body + at, data + off, n);
        s->body_len += n;
    }
    return 0;
}

/* The stream is gone (closed by nghttp2, or its connection went): end the
 * exchange — the consumer hears of it if it is still producing — and free. */
static void stream_end(h2_conn *c, h2_stream *s)
{
    s->closed = true;
    gh_deadline_cancel(&s->timer);
    gh_exchange *ex = s->ex;
    s->ex = NULL;
    stream_free_body(s);
    if (s->prev)
        s->prev->next = s->next;
    else if (c->streams == s)
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    for (h2_stream **pp = &c->ready; *pp; pp = &(*pp)->next_ready)
        if (*pp == s) {
            *pp = s->next_ready;
            break;
        }
    c->ready_tail = NULL;
    for (h2_stream *r = c->ready; r; r = r->next_ready)
        c->ready_tail = r;
    for (h2_stream **pp = &c->notify; *pp; pp = &(*pp)->next_notify)
        if (*pp == s) {
            *pp = s->next_notify;
            break;
        }
    if (!ex)
        return;
    if (!ex->response_done && ex->on_abort)
        ex->on_abort(ex);
    if (!ex->status)
        ex->status = 499;
    if (!ex->response_done && !ex->log.error)
        ex->log.error = "client_closed";
    if (s->dispatched && c->env->done)
        c->env->done(ex);
    gh_exchange_free(ex);   /* s lived in its arena */
    c->nstreams--;
}

/* RFC 9113 §8.1: after a complete response, a request body still coming
 * is stopped with RST_STREAM(NO_ERROR). */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    /* ours for the client's errors (PROTOCOL_ERROR on a malformed request or
     * DATA beyond content-length, FLOW_CONTROL_ERROR, REFUSED_STREAM, CANCEL
     * of a stalled or oversized body); not NO_ERROR (a complete answer) nor
     * INTERNAL_ERROR (the upstream failed) */
    if (f->hd.type == NGHTTP2_RST_STREAM && f->rst_stream.error_code != NGHTTP2_NO_ERROR &&
        f->rst_stream.error_code != NGHTTP2_INTERNAL_ERROR)
        count_reset(ud);
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        h2_stream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (s && !s->end_recv)
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
    h2_stream *s = nghttp2_session_get_stream_user_data(ng, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    stream_end(ud, s);
    return 0;
}

/* --------------------------------------------------------------- I/O ---- */

static void dispatch_ready(h2_conn *c)
{
    while (c->ready) {
        h2_stream *s = c->ready;
        c->ready = s->next_ready;
        if (!c->ready)
            c->ready_tail = NULL;
        if (s->closed || !s->ex || c->calm)
            continue;   /* after GOAWAY(ENHANCE_YOUR_CALM) nothing more is dispatched */
        s->dispatched = true;
        gh_exchange *ex = s->ex;
        if (s->too_big || s->body_over || s->bad)
            count_reset(c);   /* refused for the client's error, like a reset */
        if (s->too_big)
            gh_problem(ex, 431, "header_too_large", "request header fields too large", NULL, 0, NULL);
        else if (s->body_over)
            gh_problem(ex, 413, "payload_too_large", "request body exceeds max_body_bytes", NULL, 0, NULL);
        else if (s->bad)
            gh_problem(ex, 400, "bad_request", "malformed HTTP/2 request", NULL, 0, NULL);
        else
            c->env->handle(ex);
    }
}

static void on_readable(h2_conn *c)
{
    gh_buf *b = gh_buf_get(c->env->bufs);
    if (!b) {
        conn_close(c);
        return;
    }
    for (int i = 0; i < 16 && !c->dead; i++) {
        ssize_t n = c->tp->ops->read(c->tp, c->fd, b->data, b->cap);
        if (n == -EAGAIN) {
            int want = gh_transport_wants(c->tp, false);
            if (want != GH_WANT_READ)
                set_events(c, c->events | want);
            break;
        }
        if (n <= 0) {
            c->dead = true;
            break;
        }
        ssize_t r = nghttp2_session_mem_recv(c->ng, (const uint8_t *)b->data, (size_t)n);
        if (r < 0) {
            gh_log_debug("http2: closing connection: %s", nghttp2_strerror((int)r));
            /* nghttp2 has queued a GOAWAY where it could: try to send it */
            dispatch_ready(c);
            flush(c);
            if (!c->dead)
                conn_close(c);
            gh_buf_put(c->env->bufs, b);
            return;
        }
        dispatch_ready(c);
        if ((size_t)n < b->cap && !gh_transport_pending(c->tp))
            break;
    }
    gh_buf_put(c->env->bufs, b);
    flush(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    h2_conn *c = h->data;
    if (c->dead)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (events & UV_WRITABLE) {
        if (c->out_len > c->out_off || !(events & UV_READABLE))
            flush(c);
        if (c->dead)
            return;
    }
    if (events & UV_READABLE)
        on_readable(c);
}

static void set_events(h2_conn *c, int ev)
{
    if (c->events == ev)
        return;
    c->events = ev;
    uv_poll_start(&c->poll, ev, on_poll);
}

static void on_timeout(gh_deadline *d)
{
    h2_conn *c = (h2_conn *)((char *)d - offsetof(h2_conn, timer));
    if (c->dead)
        return;
    if (d->list == GH_TO_IDLE && !c->goaway) {
        /* idle: say goodbye properly, then close */
        c->goaway = true;
        nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
        flush(c);
        return;
    }
    conn_close(c);   /* a client that stopped reading, or a goodbye that never completed */
}

/* A head that never completes ends the connection (its HPACK state is
 * mid-block); a request body that stops is answered 408 (or reset). */
static void on_stream_timeout(gh_deadline *d)
{
    h2_stream *s = (h2_stream *)((char *)d - offsetof(h2_stream, timer));
    h2_conn *c = s->c;
    if (c->dead || s->closed)
        return;
    if (d->list == GH_TO_HEADER || !s->ex) {
        nghttp2_session_terminate_session(c->ng, NGHTTP2_PROTOCOL_ERROR);
        schedule_flush(c);
        return;
    }
    gh_exchange *ex = s->ex;
    if (s->body_len > s->body_off || ex->response_done) {
        /* we hold the client back (the consumer has not taken what we
         * buffered), or nobody waits for the body any more: not its fault */
        stream_arm(s, GH_TO_BODY);
        return;
    }
    if (!ex->response_done && ex->on_abort)
        ex->on_abort(ex);
    ex->on_abort = NULL;
    ex->on_writable = NULL;
    ex->body_cb = NULL;
    if (!ex->head_sent && s->dispatched) {
        gh_problem(ex, 408, "request_timeout", "request body not received in time", NULL, 0, NULL);
    } else {
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        schedule_flush(c);
    }
}

static void conn_close(h2_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->dead = true;
    /* streams still open: their exchanges learn it through on_stream_close */
    nghttp2_session *ng = c->ng;
    c->ng = NULL;
    gh_deadline_cancel(&c->timer);
    uv_poll_stop(&c->poll);
    /* nghttp2_session_del calls no stream callbacks: end our streams first */
    while (c->streams)
        stream_end(c, c->streams);
    if (ng)
        nghttp2_session_del(ng);
    c->ready = c->ready_tail = NULL;
    c->notify = NULL;
    gh_h1_worker *w = c->env->h1;
    if (c->prev)
        c->prev->next = c->next;
    else if (w->h2_conns == c)
        w->h2_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    if (c->env->conn_closed)
        c->env->conn_closed(c->env);
    if (c->flush_task.queued) {
        /* drop the pending flush: unlink it from the worker's task list */
        for (gh_task **pp = &w->tasks; *pp; pp = &(*pp)->next)
            if (*pp == &c->flush_task) {
                *pp = c->flush_task.next;
                break;
            }
        c->flush_task.queued = false;
    }
    if (c->tp && c->tp->ops->destroy)
        c->tp->ops->destroy(c->tp);
    c->tp = NULL;
    uv_close((uv_handle_t *)&c->poll, on_closed);
}

/* ------------------------------------------------------------------ api -- */

int gh_h2_conn_start(uv_loop_t *loop, gh_http_env *env, int fd, const struct sockaddr *peer,
                     const gh_h1_listen_info *info, gh_transport *tp, const char *pre, size_t prelen)
{
    h2_conn *c = calloc(1, sizeof(*c));
    char *out = malloc(OUT_CAP);
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    if (!c || !out || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0) {
        free(c);
        free(out);
        nghttp2_session_callbacks_del(cb);
        if (tp && tp->ops->destroy)
            tp->ops->destroy(tp);
        close(fd);
        return -ENOMEM;
    }
    c->out = out;
    c->env = env;
    c->fd = fd;
    c->tp = tp ? tp : &gh_transport_plain;
    c->info = *info;
    c->timer.fire = on_timeout;
    c->flush_task.run = on_flush_task;
    c->upq.max = UPSTREAM_CONNS;
    c->upq.kick = on_quota_kick;
    c->reset_tokens = RESET_BURST;
    c->reset_ms = gh_now_ms(env);
    if (peer->sa_family == AF_INET6)
        memcpy(&c->peer.v6, peer, sizeof(c->peer.v6));
    else
        memcpy(&c->peer.v4, peer, sizeof(c->peer.v4));
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    /* abuse limits (DESIGN: use nghttp2's, and bound streams ourselves) */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, 1000);        /* PING / SETTINGS floods */
    nghttp2_option_set_max_settings(opt, 32);
    /* resets (rapid reset, MadeYouReset) are counted by count_reset */
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    int rc = nghttp2_session_server_new2(&c->ng, cb, c, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rc != 0) {
        free(out);
        free(c);
        if (tp && tp->ops->destroy)
            tp->ops->destroy(tp);
        close(fd);
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)env->limits->max_header_bytes },
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
    };
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    rc = uv_poll_init_socket(loop, &c->poll, fd);
    if (rc < 0) {
        nghttp2_session_del(c->ng);
        free(out);
        free(c);
        if (tp && tp->ops->destroy)
            tp->ops->destroy(tp);
        close(fd);
        return rc;
    }
    c->poll.data = c;
    c->events = UV_READABLE;
    uv_poll_start(&c->poll, UV_READABLE, on_poll);
    gh_h1_worker *w = env->h1;
    c->next = w->h2_conns;
    if (w->h2_conns)
        w->h2_conns->prev = c;
    w->h2_conns = c;
    w->nconns++;
    if (env->draining)
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    if (c->info.tls) {
        char subject[512];
        if (gh_tls_peer_subject(c->tp, subject, sizeof(subject)))
            c->client_cert = strdup(subject);
    }
    if (prelen) {
        ssize_t r = nghttp2_session_mem_recv(c->ng, (const uint8_t *)pre, prelen);
        if (r < 0)
            c->dead = true;
        else
            dispatch_ready(c);
    }
    flush(c);
    /* TLS may already hold the client's first frames (sent with its Finished) */
    if (!c->closing && gh_transport_pending(c->tp))
        on_readable(c);
    return 0;
}

void gh_h2_drain(gh_http_env *env)
{
    for (h2_conn *c = env->h1->h2_conns; c; c = c->next) {
        if (c->dead || c->goaway)
            continue;
        c->goaway = true;
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->ng),
                              NGHTTP2_NO_ERROR, NULL, 0);
        schedule_flush(c);
    }
}
