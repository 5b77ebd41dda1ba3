/* h2_stream.c — HTTP/2 streams: one exchange each.
 *
 * In: nghttp2's stream callbacks fill the exchange's request head (pseudo-
 * headers checked as RFC 9113 §8.3 asks), queue it for dispatch, and hand
 * request body bytes to its consumer, buffering what it has not taken yet
 * in exactly as much memory and acknowledging (nghttp2_session_consume)
 * only what it took. Out: the gh_downstream_ops a producer answers through;
 * they never call nghttp2's send path but queue the work
 * (gh_h2c_schedule_flush); response data is handed to nghttp2 only as its
 * send window allows, and the producer is told to wait meanwhile. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http/h2_int.h"
#include "http/request.h"
#include "http/status.h"

static const gh_downstream_ops h2_ops;
static void deliver(h2_stream *s);
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

/* Tell producers whose data nghttp2 has taken that they may go on. */
void gh_h2s_notify(h2_conn *c)
{
    while (c->notify) {
        h2_stream *s = c->notify;
        c->notify = s->next_notify;
        s->notify_queued = false;
        gh_exchange *ex = s->ex;
        if (ex && !s->closed && s->producer_waits && s->data_len == 0) {
            s->producer_waits = false;
            gh_exchange_writable(ex);
        }
    }
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
    /* both numbers in one arena block, without printf (hot path) */
    char *num = gh_arena_alloc(&ex->arena, 40);
    if (!num)
        return GH_ERROR;
    size_t stl = gh_u64_dec(num, (uint64_t)(status > 0 ? status : 0));
    nv[0] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)num, 7, stl,
                          NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE };
    k++;
    if (clen >= 0 && status != 204 && status >= 200) {
        char *cl = num + 20;
        nv[k++] = (nghttp2_nv){ (uint8_t *)"content-length", (uint8_t *)cl, 14, gh_u64_dec(cl, (uint64_t)clen),
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
    gh_h2c_schedule_flush(c);
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
        gh_h2c_schedule_flush(s->c);
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

/* The body passed the exchange's bound: the consumer drops its work (the
 * upstream request); 413 if nothing was answered yet, else a reset. */
static void body_over(h2_stream *s)
{
    gh_exchange *ex = s->ex;
    ex->body_cb = NULL;
    if (ex->on_abort)
        ex->on_abort(ex);
    ex->on_abort = NULL;
    ex->on_writable = NULL;
    if (s->body_len > s->body_off)
        nghttp2_session_consume(s->c->ng, s->id, s->body_len - s->body_off);
    stream_free_body(s);
    if (!ex->head_sent && s->dispatched)
        gh_problem(ex, 413, "payload_too_large", ex->body_limit_detail, NULL, 0, NULL);
    else if (!s->dispatched)
        s->body_over = true;   /* answered at dispatch */
    else {
        nghttp2_submit_rst_stream(s->c->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        gh_h2c_schedule_flush(s->c);
    }
}

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
        if (gh_exchange_body_over(ex, n)) {   /* a bound lowered after the bytes came */
            body_over(s);
            return;
        }
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
        gh_h2c_schedule_flush(s->c);
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
    ex->log.tls = gh_transport_version(c->tp);
    ex->path_strict = c->info.path_strict;
    ex->uncounted = c->info.uncounted;
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

/* A frame received: a request head complete, or a body ended. */
void gh_h2s_frame_recv(h2_conn *c, const nghttp2_frame *f)
{
    nghttp2_session *ng = c->ng;
    h2_stream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!s)
        return;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        head_done(c, s, end);
        return;
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end) {
        s->end_recv = true;
        gh_deadline_cancel(&s->timer);
        if (s->dispatched)
            deliver(s);
    }
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    h2_stream *s = nghttp2_session_get_stream_user_data(ng, id);
    gh_exchange *ex = s ? s->ex : NULL;
    if (s && !s->closed && !s->end_recv && len)
        stream_arm(s, GH_TO_BODY);   /* the body moves */
    if (!ex || s->closed || ex->response_done) {
        nghttp2_session_consume(ng, id, len);   /* nobody reads it: keep the window open */
        return 0;
    }
    if (gh_exchange_body_over(ex, s->body_len + len)) {
        nghttp2_session_consume(ng, id, len);
        body_over(s);
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
void gh_h2s_end(h2_conn *c, h2_stream *s)
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
void gh_h2s_frame_sent(h2_conn *c, const nghttp2_frame *f)
{
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        h2_stream *s = nghttp2_session_get_stream_user_data(c->ng, f->hd.stream_id);
        if (s && !s->end_recv)
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    }
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
    h2_stream *s = nghttp2_session_get_stream_user_data(ng, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    gh_h2s_end(ud, s);
    return 0;
}

/* The stream side's nghttp2 callbacks (user data: the h2_conn). */
void gh_h2s_set_callbacks(nghttp2_session_callbacks *cb)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
}

/* ----------------------------------------------------------- dispatch -- */

void gh_h2s_dispatch_ready(h2_conn *c)
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
            gh_h2c_count_reset(c);   /* refused for the client's error, like a reset */
        if (s->too_big)
            gh_problem(ex, 431, "header_too_large", "request header fields too large", NULL, 0, NULL);
        else if (s->body_over)
            gh_problem(ex, 413, "payload_too_large", "request body exceeds max_body_bytes", NULL, 0, NULL);
        else if (s->bad)
            gh_problem(ex, 400, "bad_request", "malformed HTTP/2 request", NULL, 0, NULL);
        else
            c->info.handle(ex);
    }
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
        gh_h2c_schedule_flush(c);
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
        gh_h2c_schedule_flush(c);
    }
}
