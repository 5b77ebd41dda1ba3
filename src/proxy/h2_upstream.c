/* h2_upstream.c — forwarding exchanges to `protocol: h2` upstreams, each as
 * one stream of a shared HTTP/2 session (h2_upstream_session.c).
 *
 * The per-exchange rules are forward.c's: connect / send / read timeouts and
 * the route deadline, retries while nothing reached the client, 502/504
 * problems, or an abort once the head went out. gRPC passes through:
 * `te: trailers` goes up, trailers come back through finish_trailers.
 *
 * Flow control is end to end, as in http/h2_conn.c: automatic
 * WINDOW_UPDATEs are off and response bytes are acknowledged only once the
 * client took them, so a stream buffers at most its window; request bytes
 * are taken from the client only as far as one bounded buffer allows, and
 * nghttp2 pulls them from there as the upstream's window opens.
 *
 * Exchange ops are called from inside nghttp2 callbacks; the stream object
 * the callbacks use is malloc'd, not in the exchange arena, so it survives
 * an exchange that ends there, and the session is never freed under them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "http/status.h"
#include "proxy/backoff.h"
#include "proxy/h2_upstream_int.h"
#include "proxy/headers.h"

typedef gh_h2up_sess sess;
typedef gh_h2up_stream h2s;
typedef gh_h2up_call h2x;

static void attempt(h2x *x);
static nghttp2_nv nv_of(gh_arena *a, const char *name, size_t nl, const char *value, size_t vl);

static uint64_t activity_ms(const h2x *x)
{
    return x->req_done ? x->up->read_timeout_ms : x->up->send_timeout_ms;
}

/* ------------------------------------------------------------ helpers -- */

/* Response bytes the client took (or nobody will): open the windows again. */
static void consume(h2s *st, size_t n)
{
    if (n && st->ss && !st->closed) {
        nghttp2_session_consume(st->ss->ng, st->id, n);
        gh_h2up_flush_soon(st->ss);
    }
}

/* The exchange lets go of its stream, which is reset if still open. */
static void release_stream(h2x *x, uint32_t code)
{
    h2s *st = x->st;
    if (!st)
        return;
    x->st = NULL;
    x->blocked = false;
    consume(st, st->rlen);
    st->rlen = st->inflight = 0;
    gh_buf_put(st->bufs, st->req);
    st->req = NULL;
    st->x = NULL;
    st->discard = true;
    if (!st->ss || st->closed) {
        gh_h2up_stream_free(st);
        return;
    }
    /* both ends done: nghttp2 closes it by itself */
    if (code != NGHTTP2_NO_ERROR || !x->req_done || !x->end_recv) {
        nghttp2_submit_rst_stream(st->ss->ng, NGHTTP2_FLAG_NONE, st->id,
                                  code == NGHTTP2_NO_ERROR ? NGHTTP2_CANCEL : code);
        gh_h2up_flush_soon(st->ss);
    }
}

static void end_target(h2x *x)
{
    gh_upcall_put(&x->call);
}

static void stop_backoff(h2x *x)
{
    gh_backoff_stop(&x->backoff);
}

/* The exchange is over for us: forget it before the codec may free it. */
static void detach(h2x *x)
{
    stop_backoff(x);
    gh_h2up_wait_remove(x);
    gh_upcall_end(&x->call);
    x->done = true;
    x->ex->consumer = NULL;
    x->ex->on_abort = NULL;
    x->ex->on_writable = NULL;
}

static void fail_client(h2x *x, int status, const char *code, const char *detail)
{
    gh_exchange *ex = x->ex;
    release_stream(x, NGHTTP2_CANCEL);
    detach(x);
    if (ex->head_sent) {
        ex->log.error = code;
        ex->down->abort(ex);
        return;
    }
    gh_problem(ex, status, code, detail, NULL, 0, NULL);
}

/* Everything arrived and the client took it: finish, with the trailers. */
static void complete(h2x *x)
{
    gh_exchange *ex = x->ex;
    if (x->st && x->st->ss)
        x->st->ss->served++;
    release_stream(x, NGHTTP2_NO_ERROR);
    detach(x);
    if (x->trailers && x->nh)
        ex->down->finish_trailers(ex, x->hdrs, x->nh);
    else
        ex->down->finish(ex);   /* may free the exchange (and x): last */
}

/* Hand buffered response data to the client until it pushes back. */
static void push(h2x *x)
{
    h2s *st = x->st;
    while (st && !x->blocked && st->rlen) {
        int rc = x->ex->down->send_body(x->ex, st->rbuf, st->rlen);
        if (rc == GH_AGAIN) {
            x->blocked = true;   /* rbuf[0..rlen) is the client's until on_writable */
            st->inflight = st->rlen;
            x->due_ms = 0;
            return;
        }
        if (rc != GH_OK) {   /* the client is gone; the codec tells us through on_abort */
            release_stream(x, NGHTTP2_CANCEL);
            end_target(x);
            x->done = true;
            return;
        }
        consume(st, st->rlen);
        st->rlen = 0;
    }
    if (st && !x->blocked && x->end_recv)
        complete(x);
}

/* ----------------------------------------------------- retries, fails -- */

/* The transport's failure kinds, as the call layer counts them. */
static int outcome_of(enum gh_h2up_fail kind)
{
    switch (kind) {
    case GH_H2F_CONNECT:
    case GH_H2F_TLS: return GH_OUT_CONNECT;
    case GH_H2F_CONNECT_TIMEOUT: return GH_OUT_CONNECT_TIMEOUT;
    case GH_H2F_REFUSED: return GH_OUT_REFUSED;
    case GH_H2F_TIMEOUT: return GH_OUT_TIMEOUT;
    default: return GH_OUT_RESET;
    }
}

static void on_backoff(void *data)
{
    h2x *x = data;
    stop_backoff(x);
    attempt(x);
}

/* The next try, after `retries.backoff` if one is configured. */
static void retry(h2x *x)
{
    uint64_t ms = x->up->retry_backoff_ms;
    if (!ms || !(x->backoff = gh_backoff_start(x->w->pw->loop, ms, on_backoff, x)))
        attempt(x);
}

void gh_h2up_fail(h2x *x, enum gh_h2up_fail kind, const char *why)
{
    gh_log_debug("upstream %s target %s: %s", x->up->name.p, x->up->targets[x->call.target].address.p, why);
    release_stream(x, NGHTTP2_CANCEL);
    gh_h2up_wait_remove(x);
    bool replayable = !x->ex->head_sent && !x->body_started && !x->head_done;
    /* a connection that had served requests died under us: stale */
    if (gh_upcall_failed(&x->call, outcome_of(kind), x->reused && kind == GH_H2F_LOST, replayable)) {
        retry(x);
        return;
    }
    if (kind == GH_H2F_TIMEOUT || kind == GH_H2F_CONNECT_TIMEOUT)
        fail_client(x, 504, "upstream_timeout", "the upstream did not answer in time");
    else if (kind == GH_H2F_CONNECT)
        fail_client(x, 502, "upstream_error", "the upstream refused the connection");
    else if (kind == GH_H2F_TLS)
        fail_client(x, 502, "upstream_error", "the TLS handshake with the upstream failed");
    else
        fail_client(x, 502, "upstream_error", "the upstream reset the connection or the stream");
}

void gh_h2up_expire(h2x *x, uint64_t now)
{
    if (x->deadline_ms && now + 1 >= x->deadline_ms)
        fail_client(x, 504, "upstream_timeout", "the route's timeout elapsed");
    else if (!x->head_done)
        gh_h2up_fail(x, GH_H2F_TIMEOUT, "timed out");
    else
        fail_client(x, 504, "upstream_timeout", "the upstream stopped sending");
}

/* -------------------------------------------------- request body side -- */

static size_t body_cb(gh_exchange *ex, const char *p, size_t len, bool last)
{
    h2x *x = ex->consumer;
    if (!x || x->done)
        return len;              /* answered or failed: discard */
    h2s *st = x->st;
    if (!st) {
        x->want_body = true;     /* between attempts: keep it for the next one */
        return 0;
    }
    if (st->closed || st->req_eof || x->req_done)
        return len;
    if (!st->req && !(st->req = gh_buf_get(st->bufs))) {
        x->want_body = true;
        return 0;
    }
    gh_buf *b = st->req;
    if (gh_buf_room(b) < len && b->start)
        gh_buf_compact(b);
    size_t n = len < gh_buf_room(b) ? len : gh_buf_room(b);
    memcpy(b->data + b->end, p, n);
    b->end += n;
    if (n)
        x->body_started = true;   /* taken from the client: it cannot be replayed */
    if (n < len)
        x->want_body = true;      /* asked again once DATA frames drained the buffer */
    else if (last)
        st->req_eof = true;
    if ((n || st->req_eof) && st->deferred && st->ss) {
        st->deferred = false;
        nghttp2_session_resume_data(st->ss->ng, st->id);
        gh_h2up_flush_soon(st->ss);
    }
    return n;
}

/* nghttp2 pulls DATA as the upstream's windows allow. */
static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    h2s *st = src->ptr;
    gh_buf *b = st->req;
    size_t avail = b ? gh_buf_len(b) : 0;
    size_t n = avail < length ? avail : length;
    if (n) {
        memcpy(buf, b->data + b->start, n);
        b->start += n;
        if (b->start == b->end)
            b->start = b->end = 0;
    }
    if (avail == n && st->req_eof && st->x) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

void gh_h2up_submit(h2x *x, sess *ss)
{
    gh_exchange *ex = x->ex;
    h2s *st = calloc(1, sizeof(*st));
    if (!st) {
        fail_client(x, 502, "upstream_error", "out of memory");
        return;
    }
    bool body = ex->body_kind != GH_BODY_NONE;
    nghttp2_data_provider dp = { .source.ptr = st, .read_callback = read_body };
    int32_t id = nghttp2_submit_request(ss->ng, NULL, x->nv, x->nnv, body ? &dp : NULL, st);
    if (id < 0) {
        free(st);
        ss->goaway = true;       /* stream ids exhausted (or worse): use a new session */
        gh_h2up_fail(x, GH_H2F_REFUSED, nghttp2_strerror(id));
        return;
    }
    st->id = id;
    st->bufs = x->w->pw->bufs;
    st->x = x;
    st->req_eof = gh_exchange_body_delivered(ex) && !x->body_started;   /* an empty body, delivered earlier */
    x->st = st;
    x->reused = ss->served > 0;
    gh_h2up_stream_link(ss, st);
    gh_h2up_set_due(x, x->up->send_timeout_ms);
    gh_h2up_flush_soon(ss);
    if (body) {
        x->want_body = false;
        gh_exchange_read_body(ex, body_cb);   /* may call body_cb at once */
    }
}

/* ---------------------------------------------------- response side ---- */

static h2x *stream_x(nghttp2_session *ng, int32_t id)
{
    h2s *st = nghttp2_session_get_stream_user_data(ng, id);
    return st ? st->x : NULL;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    h2x *x = stream_x(ng, f->hd.stream_id);
    if (x && f->hd.type == NGHTTP2_HEADERS) {
        x->trailers = x->head_done;
        x->hdrs = NULL;          /* a fresh list: the client may still hold the last one */
        x->nh = x->caph = x->hbytes = 0;
        x->status = 0;
    }
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    h2x *x = stream_x(ng, f->hd.stream_id);
    if (!x || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    x->hbytes += nl + vl + 32;
    if (x->hbytes > GH_H2UP_MAX_HEADER_BYTES)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* resets the stream: 502 */
    if (nl && name[0] == ':') {
        if (nl == 7 && memcmp(name, ":status", 7) == 0 && vl == 3)
            x->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        return 0;
    }
    gh_arena *a = &x->ex->arena;
    if (x->nh == x->caph) {
        size_t cap = x->caph ? x->caph * 2 : 16;
        gh_header *h = gh_arena_alloc(a, cap * sizeof(*h));
        if (!h)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if (x->nh)
            memcpy(h, x->hdrs, x->nh * sizeof(*h));
        x->hdrs = h;
        x->caph = cap;
    }
    gh_str n = gh_arena_str(a, (gh_str){ (const char *)name, nl });
    gh_str v = gh_arena_str(a, (gh_str){ (const char *)value, vl });
    if (!n.p || !v.p)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    x->hdrs[x->nh++] = (gh_header){ n.p, v.p, (uint32_t)nl, (uint32_t)vl };
    return 0;
}

static int64_t content_length(const h2x *x)
{
    for (size_t i = 0; i < x->nh; i++) {
        const gh_header *h = &x->hdrs[i];
        if (h->name_len != 14 || memcmp(h->name, "content-length", 14) != 0 || h->value_len == 0)
            continue;
        int64_t v = 0;
        for (uint32_t k = 0; k < h->value_len; k++) {
            if (h->value[k] < '0' || h->value[k] > '9' || v > (INT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (h->value[k] - '0');
        }
        return v;
    }
    return -1;
}

/* The response head: retry on a configured status, else pass it on. */
static void on_head(h2x *x, bool end)
{
    gh_exchange *ex = x->ex;
    int s = x->status;
    if (s < 200) {
        if (s == 101 || s < 100)
            fail_client(x, 502, "upstream_error", "malformed response status from the upstream");
        return;                  /* interim responses are not forwarded */
    }
    if (gh_upcall_head(&x->call, s, !x->body_started, x->req_done)) {
        release_stream(x, NGHTTP2_CANCEL);
        retry(x);
        return;
    }
    x->head_done = true;
    gh_exchange_upstream_answered(ex);
    int64_t clen = content_length(x);
    if (end && !ex->head_request && s != 304)
        clen = 0;
    size_t n;
    gh_header *out = gh_proxy_response_headers(ex, x->route, x->hdrs, x->nh, &n);
    if (!out || gh_exchange_send_head(ex, s, out, n, clen) == GH_ERROR) {
        release_stream(x, NGHTTP2_CANCEL);
        detach(x);
        return;
    }
    x->nh = 0;
    if (end) {
        x->end_recv = true;
        push(x);
    }
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type == NGHTTP2_GOAWAY) {
        sess *ss = ud;
        ss->goaway = true;   /* no new streams; nghttp2 refuses the unprocessed ones */
        if (!ss->streams)
            ss->dead = true;   /* nothing to finish: close when the handler unwinds */
        return 0;
    }
    h2x *x = stream_x(ng, f->hd.stream_id);
    if (!x || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
        return 0;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (!x->blocked)
        gh_h2up_set_due(x, activity_ms(x));
    if (f->hd.type == NGHTTP2_HEADERS && !x->head_done) {
        on_head(x, end);
    } else if (end) {            /* the last DATA, or the trailers */
        x->end_recv = true;
        push(x);
    }
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    h2s *st = nghttp2_session_get_stream_user_data(ng, id);
    h2x *x = st ? st->x : NULL;
    if (!x || st->discard) {
        nghttp2_session_consume(ng, id, len);   /* nobody reads it: keep the windows open */
        return 0;
    }
    if (!st->rbuf && !(st->rbuf = malloc(GH_H2UP_STREAM_WINDOW)))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (st->rlen + len > GH_H2UP_STREAM_WINDOW)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* beyond the window we gave */
    memcpy(st->rbuf + st->rlen, data, len);
    st->rlen += len;
    if (!x->blocked)
        push(x);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    h2s *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    h2x *x = st ? st->x : NULL;
    if (!x)
        return 0;
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        x->req_done = true;
        gh_buf_put(st->bufs, st->req);
        st->req = NULL;
    }
    if (!x->blocked && !x->head_done)
        gh_h2up_set_due(x, activity_ms(x));
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
    sess *ss = ud;
    h2s *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    gh_h2up_stream_unlink(ss, st);
    st->closed = true;
    h2x *x = st->x;
    if (!x) {
        gh_h2up_stream_free(st);
        return 0;
    }
    if (x->end_recv) {
        /* complete, the client still reading: the bytes stay with x */
        nghttp2_session_consume_connection(ng, st->rlen);
        st->ss = NULL;
        return 0;
    }
    if (x->head_done)
        fail_client(x, 502, "upstream_error", "the upstream reset the stream mid-response");
    else
        gh_h2up_fail(x, err == NGHTTP2_REFUSED_STREAM ? GH_H2F_REFUSED : GH_H2F_RESET,
                     "stream reset by the upstream");
    return 0;
}

void gh_h2up_set_callbacks(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}

/* ------------------------------------------------- client side events -- */

static void on_client_writable(gh_exchange *ex)
{
    h2x *x = ex->consumer;
    if (!x || x->done || !x->blocked || !x->st)
        return;
    h2s *st = x->st;
    x->blocked = false;
    consume(st, st->inflight);
    memmove(st->rbuf, st->rbuf + st->inflight, st->rlen - st->inflight);
    st->rlen -= st->inflight;
    st->inflight = 0;
    if (!x->end_recv)
        gh_h2up_set_due(x, x->up->read_timeout_ms);
    push(x);
}

static void on_client_abort(gh_exchange *ex)
{
    h2x *x = ex->consumer;
    if (!x)
        return;
    release_stream(x, NGHTTP2_CANCEL);
    detach(x);
}

/* ------------------------------------------------------------ attempts -- */

static void attempt(h2x *x)
{
    gh_exchange *ex = x->ex;
    int target = gh_upcall_get(&x->call);
    if (target < 0) {
        fail_client(x, 503, "upstream_unavailable", "every target of the upstream is down");
        return;
    }
    gh_exchange_upstream_try(ex);
    x->req_done = x->head_done = x->trailers = x->end_recv = x->blocked = false;
    x->nh = x->caph = x->hbytes = 0;
    x->hdrs = NULL;
    const gh_target_cfg *t = &x->up->targets[target];
    ex->log.target = t->address;
    if (gh_proxy_host_by_target(ex, x->route))   /* no Host from the client: the target's address */
        x->nv[2] = nv_of(&ex->arena, ":authority", 10, t->address.p, t->address.len);
    int err = 0;
    sess *ss = gh_h2up_pick(x, t, &err);
    if (!ss) {
        gh_h2up_fail(x, GH_H2F_CONNECT, err ? strerror(-err) : "connect failed");
        return;
    }
    if (ss->connected) {
        gh_h2up_submit(x, ss);
        return;
    }
    gh_h2up_wait(ss, x);
    gh_h2up_set_due(x, 0);   /* the route deadline; the session has the connect timeout */
}

static nghttp2_nv nv_of(gh_arena *a, const char *name, size_t nl, const char *value, size_t vl)
{
    char *lower = NULL;
    for (size_t i = 0; i < nl; i++)
        if (name[i] >= 'A' && name[i] <= 'Z') {   /* HTTP/2 field names are lower-case */
            if ((lower = gh_arena_alloc(a, nl)))
                for (size_t j = 0; j < nl; j++)
                    lower[j] = gh_lower(name[j]);
            break;
        }
    /* no NO_COPY flags: nghttp2 keeps its own copy, whatever happens to the exchange */
    return (nghttp2_nv){ (uint8_t *)(lower ? lower : name), (uint8_t *)value, nl, vl, NGHTTP2_NV_FLAG_NONE };
}

static bool build_request(h2x *x, gh_str path_q)
{
    gh_exchange *ex = x->ex;
    gh_arena *a = &ex->arena;
    size_t nf;
    gh_header *f = gh_proxy_request_fields(ex, x->route, true, &nf);
    x->nv = f ? gh_arena_alloc(a, (nf + 5) * sizeof(*x->nv)) : NULL;
    if (!x->nv)
        return false;
    gh_str auth = gh_proxy_host(ex, x->route, NULL);   /* empty: set per try (attempt) */
    const char *scheme = x->up->tls ? "https" : "http";
    size_t k = 0;
    x->nv[k++] = nv_of(a, ":method", 7, ex->method.p, ex->method.len);
    x->nv[k++] = nv_of(a, ":scheme", 7, scheme, strlen(scheme));
    x->nv[k++] = nv_of(a, ":authority", 10, auth.p, auth.len);   /* nv[2]: attempt() may set it */
    x->nv[k++] = nv_of(a, ":path", 5, path_q.p, path_q.len);
    for (size_t i = 0; i < nf; i++)
        x->nv[k++] = nv_of(a, f[i].name, f[i].name_len, f[i].value, f[i].value_len);
    if (ex->body_kind == GH_BODY_LENGTH) {
        char *cl = gh_arena_printf(a, "%llu", (unsigned long long)ex->content_length);
        if (!cl)
            return false;
        x->nv[k++] = nv_of(a, "content-length", 14, cl, strlen(cl));
    }
    x->nnv = k;
    return true;
}

void gh_h2up_start(gh_exchange *ex, const gh_proxy_ctx *ctx, const gh_route_cfg *route, gh_str path_q)
{
    h2x *x = gh_arena_zalloc(&ex->arena, sizeof(*x));
    if (x) {
        x->ex = ex;
        x->ctx = *ctx;
        x->route = route;
        x->up = route->upstream;
        x->w = gh_h2up_worker_get(ctx->pw, ex->env);
    }
    if (!x || !x->w || !build_request(x, path_q)) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    x->t0_ms = gh_h2up_now(x->w);
    gh_exchange_upstream_start(ex);
    if (route->timeout_ms)
        x->deadline_ms = x->t0_ms + route->timeout_ms;
    ex->log.upstream = x->up->name;
    ex->log.upstream_id = x->up->metric_id;
    const char *refused = gh_upcall_start(&x->call, ex, ctx, route);
    if (refused) {
        gh_problem(ex, 503, refused, "the upstream's circuit breaker is open", NULL, 0, NULL);
        return;
    }
    ex->consumer = x;
    ex->on_abort = on_client_abort;
    ex->on_writable = on_client_writable;
    ex->log.upstream = x->up->name;
    attempt(x);
}
