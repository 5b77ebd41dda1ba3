/* forward.c — the proxy state machine for one exchange.
 *
 * connect (or take a pooled connection) → send head and stream the request
 * body → parse the response head → stream the response body → return the
 * connection to the pool. Bytes are never copied on the way through: body
 * data is written straight from the client's read buffer to the upstream
 * socket and from the upstream's read buffer to the client, and whichever
 * side is slower pauses the other (poll masks), so memory stays flat. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/log.h"
#include "http/status.h"
#include "http/upquota.h"
#include "proxy/h2_upstream.h"
#include "proxy/backoff.h"
#include "proxy/headers.h"
#include "proxy/proxy.h"
#include "proxy/tunnel.h"
#include "proxy/upcall.h"
#include "tls/tls.h"

enum { P_CONNECT = 1, P_TLS, P_SEND, P_WAIT, P_BODY, P_DONE };

#define MAX_RESP_HEADERS 128

typedef struct fwd {
    gh_exchange *ex;
    gh_proxy_ctx ctx;
    const gh_route_cfg *route;
    const gh_upstream_cfg *up;
    gh_upconn *uc;
    gh_upcall call;               /* target choice, retries, outcomes (proxy/upcall.h) */
    int phase;
    bool reused;                  /* uc came from the pool */
    uv_timer_t *backoff;          /* waiting `retries.backoff` before the next try, or for a slot */
    bool tls_failed;              /* the last failure was a TLS handshake */
    uint64_t deadline_ms;         /* route `timeout` (absolute), 0 = none */
    uint64_t sent_ms;             /* body requests: when the upstream last took request bytes */
    gh_upwait slot_wait;          /* in line for a slot of the client connection's quota */
    bool slot;                    /* holds a slot of ex->upquota */
    /* request side */
    char *head;
    size_t head_len, head_off;
    gh_str path_q;                /* for a head made per try (Host from the target) */
    bool host_by_target;
    int body_mode;                /* GH_FWD_* */
    char fbuf[96];                /* framing bytes owed before more data */
    size_t fpos, flen;
    uint64_t chunk_left;          /* data still owed for the announced chunk */
    bool final_queued;            /* the end of the body is written or in fbuf */
    bool body_started;            /* body bytes taken from the client: no retry */
    bool req_done;
    /* response side */
    bool head_done;
    bool keep_alive;
    bool client_blocked;
    int resp_body;
    uint64_t resp_left;
    gh_chunked chunk;
    const char *span;
    size_t span_len;
} fwd;

static void attempt(fwd *f);
static void retry(fwd *f);
static void stop_backoff(fwd *f);
static void process_response(fwd *f);
static void send_more(fwd *f);

static uint64_t now_ms(fwd *f) { return gh_now_ms(f->ex->env); }

static void arm(fwd *f, uint64_t ms)
{
    if (f->deadline_ms) {
        uint64_t now = now_ms(f);
        uint64_t left = f->deadline_ms > now ? f->deadline_ms - now : 1;
        if (left < ms)
            ms = left;
    }
    gh_upconn_timer(f->uc, ms ? ms : 1);
}

static void end_target(fwd *f)
{
    gh_upcall_put(&f->call);
}

/* The client connection's upstream slot (http/upquota.h) goes with the
 * upstream connection. */
static void give_slot(fwd *f)
{
    if (f->slot) {
        f->slot = false;
        gh_upquota_give(f->ex->upquota);
    }
}

static void drop_conn(fwd *f)
{
    if (f->uc) {
        gh_upconn_close(f->uc);
        f->uc = NULL;
    }
    give_slot(f);
    end_target(f);
}

/* The exchange is over for us: forget it before the codec may free it. */
static void detach(fwd *f)
{
    gh_upcall_end(&f->call);
    f->phase = P_DONE;
    f->ex->consumer = NULL;
    f->ex->on_abort = NULL;
    f->ex->on_writable = NULL;
}

static void fail_client(fwd *f, int status, const char *code, const char *detail)
{
    gh_exchange *ex = f->ex;
    drop_conn(f);
    detach(f);
    if (ex->head_sent) {
        ex->log.error = code;
        ex->down->abort(ex);
        return;
    }
    gh_problem(ex, status, code, detail, NULL, 0, NULL);
}

static void fail(fwd *f, int kind, int err)
{
    gh_log_debug("upstream %s target %s: %s (%s)", f->up->name.p, f->up->targets[f->call.target].address.p,
                 kind == GH_OUT_CONNECT ? "connect failed" : kind == GH_OUT_RESET ? "connection reset"
                                                                                : "timed out",
                 err ? strerror(-err) : "-");
    drop_conn(f);
    bool replayable = !f->ex->head_sent && !f->body_started && !f->head_done;
    if (gh_upcall_failed(&f->call, kind, f->reused && kind == GH_OUT_RESET, replayable)) {
        retry(f);
        return;
    }
    if (kind == GH_OUT_TIMEOUT || kind == GH_OUT_CONNECT_TIMEOUT)
        fail_client(f, 504, "upstream_timeout", "the upstream did not answer in time");
    else if (f->tls_failed)
        fail_client(f, 502, "upstream_error", "the TLS handshake with the upstream failed");
    else
        fail_client(f, 502, "upstream_error", "the upstream refused or reset the connection");
}

/* ------------------------------------------------------- request side -- */

/* Write the head rest, owed framing and up to len body bytes in one writev.
 * *taken: body bytes written. GH_OK when everything offered was written. */
static int out_write(fwd *f, const char *p, size_t len, bool last, size_t *taken)
{
    struct iovec iov[5];
    int kind[5];   /* 0 head, 1 framing kept if unwritten, 2 data, 3 tail framing */
    int n = 0;
    char line[24], tail[8];
    size_t data = 0, tail_len = 0;
    *taken = 0;
    if (f->head_off < f->head_len) {
        iov[n] = (struct iovec){ f->head + f->head_off, f->head_len - f->head_off };
        kind[n++] = 0;
    }
    if (f->fpos < f->flen) {
        iov[n] = (struct iovec){ f->fbuf + f->fpos, f->flen - f->fpos };
        kind[n++] = 1;
    }
    if (f->body_mode == GH_FWD_CHUNKED) {
        if (f->chunk_left == 0 && len > 0) {
            int l = snprintf(line, sizeof(line), "%zx\r\n", len);
            iov[n] = (struct iovec){ line, (size_t)l };
            kind[n++] = 1;
            f->chunk_left = len;
        }
        data = len < f->chunk_left ? len : (size_t)f->chunk_left;
        if (data) {
            iov[n] = (struct iovec){ (void *)p, data };
            kind[n++] = 2;
        }
        if (data && data == f->chunk_left) {
            memcpy(tail, "\r\n", 2);
            tail_len = 2;
        }
        if (last && data == len && !f->final_queued) {
            memcpy(tail + tail_len, "0\r\n\r\n", 5);
            tail_len += 5;
            f->final_queued = true;
        }
        if (tail_len) {
            iov[n] = (struct iovec){ tail, tail_len };
            kind[n++] = 3;
        }
    } else if (f->body_mode == GH_FWD_LENGTH) {
        data = len;
        if (data) {
            iov[n] = (struct iovec){ (void *)p, data };
            kind[n++] = 2;
        }
        if (last)
            f->final_queued = true;
    } else {
        f->final_queued = true;
    }
    if (n == 0)
        return GH_OK;
    ssize_t w = gh_upconn_writev(f->uc, iov, n);
    if (w < 0) {
        if (w != -EAGAIN) {
            errno = (int)-w;
            return GH_ERROR;
        }
        w = 0;
    }
    /* progress: the send timeout measures a stall from here (see send_stalled);
     * a request without a body is sent in one go, timed from begin_send */
    if (w > 0 && f->body_mode != GH_FWD_NO_BODY)
        f->sent_ms = now_ms(f);
    size_t left = (size_t)w;
    char keep[sizeof(f->fbuf)];
    size_t klen = 0;
    bool data_short = false;
    for (int i = 0; i < n; i++) {
        size_t wrote = left < iov[i].iov_len ? left : iov[i].iov_len;
        left -= wrote;
        switch (kind[i]) {
        case 0:
            f->head_off += wrote;
            break;
        case 2:
            *taken = wrote;
            if (f->body_mode == GH_FWD_CHUNKED)
                f->chunk_left -= wrote;
            data_short = wrote < iov[i].iov_len;
            break;
        default:
            /* framing after data that did not go out is regenerated later */
            if (kind[i] == 3 && data_short) {
                if (tail_len >= 5 && last)
                    f->final_queued = false;
                break;
            }
            if (wrote < iov[i].iov_len) {
                memcpy(keep + klen, (char *)iov[i].iov_base + wrote, iov[i].iov_len - wrote);
                klen += iov[i].iov_len - wrote;
            }
        }
    }
    memcpy(f->fbuf, keep, klen);
    f->fpos = 0;
    f->flen = klen;
    if (f->body_mode != GH_FWD_CHUNKED && data_short)
        f->final_queued = false;
    bool all = f->head_off == f->head_len && f->flen == 0 && !data_short;
    return all ? GH_OK : GH_AGAIN;
}

static void request_written(fwd *f)
{
    f->req_done = true;
    if (f->phase == P_SEND) {
        f->phase = P_WAIT;
        arm(f, f->up->read_timeout_ms);
    }
    gh_upconn_events(f->uc, UV_READABLE);
}

static size_t body_cb(gh_exchange *ex, const char *p, size_t len, bool last)
{
    fwd *f = ex->consumer;
    if (!f || f->phase == P_DONE || !f->uc || f->req_done)
        return len;   /* response already complete or failed: discard */
    size_t taken = 0;
    int rc = out_write(f, p, len, last, &taken);
    if (taken)
        f->body_started = true;
    if (rc == GH_ERROR) {
        fail(f, GH_OUT_RESET, -errno);
        return len;
    }
    if (rc == GH_AGAIN) {
        gh_upconn_events(f->uc, UV_READABLE | UV_WRITABLE);
        return taken;
    }
    if (last && taken == len && f->final_queued)
        request_written(f);
    return taken;
}

/* The upstream socket can take more: owed bytes first, then more body. */
static void send_more(fwd *f)
{
    size_t taken;
    int rc = out_write(f, NULL, 0, false, &taken);
    if (rc == GH_ERROR) {
        fail(f, GH_OUT_RESET, -errno);
        return;
    }
    if (rc == GH_AGAIN)
        return;
    gh_upconn_events(f->uc, UV_READABLE);
    if (f->body_mode == GH_FWD_NO_BODY || (f->final_queued && f->flen == 0)) {
        if (!f->req_done)
            request_written(f);
        return;
    }
    gh_exchange_resume_body(f->ex);
}

static void begin_send(fwd *f)
{
    f->phase = P_SEND;
    gh_upconn_events(f->uc, UV_READABLE);
    arm(f, f->up->send_timeout_ms);
    if (f->body_mode == GH_FWD_NO_BODY) {
        size_t taken;
        int rc = out_write(f, NULL, 0, true, &taken);
        if (rc == GH_ERROR)
            fail(f, GH_OUT_RESET, -errno);
        else if (rc == GH_AGAIN)
            gh_upconn_events(f->uc, UV_READABLE | UV_WRITABLE);
        else
            request_written(f);
        return;
    }
    gh_exchange_read_body(f->ex, body_cb);
    /* no body bytes buffered yet: send the head alone so the upstream can start */
    if (f->phase == P_SEND && f->uc && f->head_off == 0)
        send_more(f);
}

/* ------------------------------------------------------ response side -- */

static void complete(fwd *f)
{
    gh_exchange *ex = f->ex;
    gh_upconn *uc = f->uc;
    f->uc = NULL;
    give_slot(f);
    end_target(f);
    bool reusable = f->keep_alive && f->req_done && f->fpos == f->flen &&
                    (!uc->in || gh_buf_len(uc->in) == 0);
    gh_upconn_timer(uc, 0);
    if (reusable)
        gh_upconn_release(uc, f->up->keepalive);
    else
        gh_upconn_close(uc);
    detach(f);
    ex->down->finish(ex);   /* may free the exchange (and f): last */
}

static int64_t header_length(const gh_h1_message *m)
{
    for (size_t i = 0; i < m->nheaders; i++) {
        const gh_header *h = &m->headers[i];
        if (h->name_len == 14 && strncasecmp(h->name, "content-length", 14) == 0) {
            int64_t v = 0;
            for (uint32_t k = 0; k < h->value_len; k++) {
                if (h->value[k] < '0' || h->value[k] > '9' || v > (INT64_MAX - 9) / 10)
                    return -1;
                v = v * 10 + (h->value[k] - '0');
            }
            return v;
        }
    }
    return -1;
}

/* 101 to a request that asked for it (WebSocket): from now on the two
 * connections are one byte tunnel. */
static void switch_protocols(fwd *f, const gh_h1_message *m, size_t head_len)
{
    gh_exchange *ex = f->ex;
    const gh_header *up = NULL;
    for (size_t i = 0; i < m->nheaders; i++)
        if (m->headers[i].name_len == 7 && strncasecmp(m->headers[i].name, "upgrade", 7) == 0)
            up = &m->headers[i];
    if (!ex->upgrade || !up || !f->req_done) {
        fail_client(f, 502, "upstream_error", "unexpected protocol switch from the upstream");
        return;
    }
    size_t n;
    gh_header *hdrs = gh_proxy_response_headers(ex, f->route, m->headers, m->nheaders, &n);
    gh_header *all = hdrs ? gh_arena_alloc(&ex->arena, (n + 1) * sizeof(*all)) : NULL;
    if (!all) {
        fail_client(f, 502, "upstream_error", "out of memory");
        return;
    }
    memcpy(all, hdrs, n * sizeof(*all));
    all[n++] = (gh_header){ "Upgrade", up->value, 7, up->value_len };
    gh_exchange_upstream_answered(ex);
    uint64_t idle = ex->env->limits->idle_timeout_ms;
    gh_http_env *env = ex->env;
    gh_upconn *uc = f->uc;
    gh_buf *in = uc->in;
    in->start += head_len;
    size_t npend = gh_buf_len(in);
    char *pend = npend ? malloc(npend) : NULL;
    if (npend && !pend) {
        fail_client(f, 502, "upstream_error", "out of memory");
        return;
    }
    if (npend)
        memcpy(pend, in->data + in->start, npend);
    uv_loop_t *loop = uc->pw->loop;
    f->uc = NULL;
    end_target(f);
    detach(f);
    gh_takeover client;
    if (ex->down->upgrade(ex, all, n, &client) != GH_OK) {
        free(pend);
        gh_upconn_close(uc);
        gh_problem(ex, 502, "upstream_error", "this connection cannot switch protocols", NULL, 0, NULL);
        return;
    }
    /* ex and f are gone now */
    int fd;
    gh_transport *tp;
    gh_upconn_detach(uc, &fd, &tp);
    if (gh_tunnel_start(loop, env, &client, fd, tp, pend, npend, idle) < 0) {
        if (tp && tp->ops->destroy)
            tp->ops->destroy(tp);
        close(fd);
        if (client.tp && client.tp->ops->destroy)
            client.tp->ops->destroy(client.tp);
        close(client.fd);
        if (env->conn_closed)
            env->conn_closed(env);
    }
    free(pend);
}

static bool parse_head(fwd *f)
{
    gh_exchange *ex = f->ex;
    gh_buf *in = f->uc->in;
    gh_header hdrs[MAX_RESP_HEADERS];
    gh_h1_message m;
    for (;;) {
        int r = gh_h1_parse_response(in->data + in->start, gh_buf_len(in), &m, hdrs, MAX_RESP_HEADERS,
                                     in->cap - 1, ex->head_request);
        if (r == GH_H1_AGAIN) {
            if (gh_buf_room(in) == 0 && in->start == 0) {
                fail_client(f, 502, "upstream_error", "upstream response head too large");
                return false;
            }
            return false;
        }
        if (r < 0) {
            fail_client(f, 502, "upstream_error", "malformed or ambiguous upstream response");
            return false;
        }
        if (m.status >= 100 && m.status < 200) {
            if (m.status == 101) {
                switch_protocols(f, &m, (size_t)r);
                return false;
            }
            in->start += (size_t)r;   /* interim responses are not forwarded */
            continue;
        }
        /* the outcome; a retry on a configured status while the client has seen nothing */
        if (gh_upcall_head(&f->call, m.status, !f->body_started, f->req_done)) {
            drop_conn(f);
            retry(f);
            return false;
        }
        f->head_done = true;
        f->phase = P_BODY;
        f->keep_alive = m.keep_alive;
        f->resp_body = m.body;
        f->resp_left = m.content_length;
        gh_chunked_init(&f->chunk);
        gh_exchange_upstream_answered(ex);
        int64_t clen = m.body == GH_BODY_LENGTH ? (int64_t)m.content_length
                     : m.body == GH_BODY_NONE ? (ex->head_request || m.status == 304 ? header_length(&m) : 0)
                     : -1;
        size_t n;
        gh_header *out = gh_proxy_response_headers(ex, f->route, m.headers, m.nheaders, &n);
        in->start += (size_t)r;
        if (!out || gh_exchange_send_head(ex, m.status, out, n, clen) == GH_ERROR) {
            drop_conn(f);
            detach(f);
            return false;
        }
        if (m.body == GH_BODY_NONE) {
            complete(f);
            return false;
        }
        arm(f, f->up->read_timeout_ms);
        return true;
    }
}

/* Send one span to the client; false if we must wait (or stop). */
static bool send_span(fwd *f, const char *p, size_t n)
{
    int rc = f->ex->down->send_body(f->ex, p, n);
    if (rc == GH_OK)
        return true;
    if (rc == GH_AGAIN) {
        /* no more reads until the client drains; the poll stays as it is
         * and is stopped only if the upstream sends more meanwhile
         * (on_uc_event): a response read whole costs no epoll_ctl */
        f->client_blocked = true;
        gh_upconn_timer(f->uc, 0);
        return false;
    }
    drop_conn(f);   /* client gone; the codec reports it through on_abort */
    f->phase = P_DONE;
    return false;
}

static void process_response(fwd *f)
{
    if (f->phase == P_DONE || !f->uc || !f->uc->in)
        return;
    if (!f->head_done && !parse_head(f))
        return;
    gh_buf *in = f->uc->in;
    while (!f->client_blocked && f->phase == P_BODY) {
        size_t avail = gh_buf_len(in);
        if (f->resp_body == GH_BODY_LENGTH) {
            if (f->resp_left == 0) {
                complete(f);
                return;
            }
            size_t n = avail < f->resp_left ? avail : (size_t)f->resp_left;
            if (n == 0)
                break;
            in->start += n;
            f->resp_left -= n;
            if (!send_span(f, in->data + in->start - n, n))
                return;
        } else if (f->resp_body == GH_BODY_CHUNKED) {
            if (avail == 0)
                break;
            size_t used;
            const char *data;
            size_t dlen;
            int rc = gh_chunked_decode(&f->chunk, in->data + in->start, avail, &used, &data, &dlen);
            in->start += used;
            if (rc == GH_CHUNKED_BAD) {
                fail_client(f, 502, "upstream_error", "malformed chunked upstream response");
                return;
            }
            if (dlen && !send_span(f, data, dlen))
                return;
            if (rc == GH_CHUNKED_DONE) {
                complete(f);
                return;
            }
        } else {   /* until close */
            if (avail == 0)
                break;
            in->start += avail;
            if (!send_span(f, in->data + in->start - avail, avail))
                return;
        }
    }
    if (!f->client_blocked && gh_buf_len(in) == 0)
        in->start = in->end = 0;
}

static void read_response(fwd *f)
{
    gh_upconn *uc = f->uc;
    if (f->client_blocked)
        return;
    if (!uc->in) {
        uc->in = gh_buf_get(f->ctx.pw->bufs);
        if (!uc->in) {
            fail_client(f, 502, "upstream_error", "out of memory");
            return;
        }
    }
    gh_buf *in = uc->in;
    if (gh_buf_room(in) == 0)
        gh_buf_compact(in);
    ssize_t n = gh_upconn_read(uc, in->data + in->end, gh_buf_room(in));
    if (n == -EAGAIN)
        return;
    if (n <= 0) {
        int err = (int)n;
        if (!f->head_done) {
            if (gh_buf_len(in) > 0 && n == 0) {
                fail_client(f, 502, "upstream_error", "upstream closed inside the response head");
                return;
            }
            fail(f, GH_OUT_RESET, err);
        } else if (f->resp_body == GH_BODY_UNTIL_CLOSE && n == 0) {
            f->keep_alive = false;
            complete(f);
        } else {
            /* mid-body: the client must see a broken response, not a short one */
            fail_client(f, 502, "upstream_error", "upstream closed mid-response");
        }
        return;
    }
    in->end += (size_t)n;
    if (f->head_done)
        arm(f, f->up->read_timeout_ms);
    process_response(f);
    /* TLS decrypts ahead: bytes it holds will not make the socket readable */
    if (f->uc == uc && f->phase != P_DONE && !f->client_blocked && gh_transport_pending(uc->tp))
        read_response(f);
}

/* ----------------------------------------------------------------- TLS -- */

uint64_t gh_proxy_tls_tag(const gh_upstream_cfg *u)
{
    if (!u->tls)
        return 0;
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a over what makes a TLS connection differ */
    const gh_str parts[] = { u->tls->sni, u->tls->ca, u->tls->cert, u->tls->key, u->name };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        for (size_t k = 0; k < parts[i].len; k++)
            h = (h ^ (unsigned char)parts[i].p[k]) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return (h ^ (u->tls->verify ? 1 : 2)) | 1;   /* never 0 */
}

static void begin_send(fwd *f);

/* Drive the upstream TLS handshake; then the request goes out. */
static void tls_step(fwd *f)
{
    int rc = gh_transport_handshake(f->uc->tp, f->uc->fd);
    if (rc == -EAGAIN) {
        gh_upconn_events(f->uc, gh_transport_wants(f->uc->tp, false));
        return;
    }
    if (rc < 0) {
        const char *why = gh_tls_error(f->uc->tp);
        gh_log_warn("upstream %s target %s: TLS handshake failed: %s", f->up->name.p,
                    f->up->targets[f->call.target].address.p, why ? why : "?");
        f->tls_failed = true;
        fail(f, GH_OUT_CONNECT, -EPROTO);
        return;
    }
    begin_send(f);
}

/* ------------------------------------------------------------- events -- */

static void on_uc_event(gh_upconn *uc, int events)
{
    fwd *f = uc->owner;
    if (!f)
        return;
    if (events < 0) {
        /* libuv reports any EPOLLERR as UV_EBADF: the socket knows the real error */
        int so = gh_upconn_connect_result(uc);
        if (so < 0)
            events = so;
        if (f->head_done)
            fail_client(f, 502, "upstream_error", "upstream connection error");
        else
            fail(f, f->phase == P_CONNECT ? GH_OUT_CONNECT : GH_OUT_RESET, events);
        return;
    }
    if (f->phase == P_CONNECT) {
        if (!(events & UV_WRITABLE))
            return;
        int r = gh_upconn_connect_result(uc);
        if (r < 0) {
            fail(f, GH_OUT_CONNECT, r);
            return;
        }
        gh_tls_client *tls = f->ctx.tls ? f->ctx.tls[f->route->upstream_index] : NULL;
        if (tls) {
            const gh_target_cfg *t = &f->up->targets[f->call.target];
            uc->tp = gh_tls_connect(tls, uc->fd, t->host.p);
            if (!uc->tp) {
                uc->tp = &gh_transport_plain;
                fail(f, GH_OUT_CONNECT, -ENOMEM);
                return;
            }
            f->phase = P_TLS;
            tls_step(f);
            return;
        }
        begin_send(f);
        return;
    }
    if (f->phase == P_TLS) {
        tls_step(f);
        return;
    }
    if ((events & UV_READABLE) && f->client_blocked) {
        gh_upconn_events(uc, uc->events & ~UV_READABLE);   /* the client is slower: wait for it */
        events &= ~UV_READABLE;
    }
    if ((events & UV_WRITABLE) && !f->req_done)
        send_more(f);
    if ((events & UV_READABLE) && f->uc == uc && f->phase != P_DONE)
        read_response(f);
}

/* `timeouts.send` bounds a stall, not the whole upload: the timer armed by
 * begin_send is not moved on every write (a timer per write would cost more
 * than the write); when it fires, it looks at the last progress and waits
 * for the rest of the interval if there was some. */
static bool send_stalled(fwd *f)
{
    uint64_t idle = now_ms(f) - f->sent_ms, limit = f->up->send_timeout_ms;
    if (idle >= limit)
        return true;
    arm(f, limit - idle);
    return false;
}

static void on_uc_timer(gh_upconn *uc)
{
    fwd *f = uc->owner;
    if (!f)
        return;
    if (f->deadline_ms && now_ms(f) + 1 >= f->deadline_ms) {
        f->ex->log.error = "upstream_timeout";
        fail_client(f, 504, "upstream_timeout", "the route's timeout elapsed");
        return;
    }
    switch (f->phase) {
    case P_CONNECT:
    case P_TLS:
        fail(f, GH_OUT_CONNECT_TIMEOUT, -ETIMEDOUT);
        return;
    case P_SEND:
        if (!send_stalled(f))
            return;
        fail(f, GH_OUT_TIMEOUT, -ETIMEDOUT);
        return;
    case P_WAIT:
        fail(f, GH_OUT_TIMEOUT, -ETIMEDOUT);
        return;
    default:
        fail_client(f, 504, "upstream_timeout", "the upstream stopped sending");
        return;
    }
}

static void on_client_writable(gh_exchange *ex)
{
    fwd *f = ex->consumer;
    if (!f || f->phase == P_DONE || !f->uc)
        return;
    f->client_blocked = false;
    gh_upconn_events(f->uc, f->req_done ? UV_READABLE : (f->uc->events | UV_READABLE));
    arm(f, f->up->read_timeout_ms);
    process_response(f);
}

static void on_client_abort(gh_exchange *ex)
{
    fwd *f = ex->consumer;
    if (!f)
        return;
    stop_backoff(f);
    if (ex->upquota)
        gh_upquota_cancel(ex->upquota, &f->slot_wait);
    drop_conn(f);
    detach(f);
}

/* ------------------------------------------------------------- backoff -- */

static void stop_backoff(fwd *f)
{
    gh_backoff_stop(&f->backoff);
}

static void on_backoff(void *data)
{
    fwd *f = data;
    stop_backoff(f);
    attempt(f);
}

/* The next try, after `retries.backoff` if one is configured. */
static void retry(fwd *f)
{
    uint64_t ms = f->up->retry_backoff_ms;
    if (!ms || !(f->backoff = gh_backoff_start(f->ex->env->loop, ms, on_backoff, f)))
        attempt(f);
}

/* ------------------------------------------------------------ attempts -- */

static void on_slot(gh_upwait *w)
{
    fwd *f = (fwd *)((char *)w - offsetof(fwd, slot_wait));
    stop_backoff(f);
    f->slot = true;
    attempt(f);
}

/* No sibling let go of an upstream connection within the connect timeout
 * (they are long-lived): answer rather than wait for ever. */
static void on_slot_timeout(void *data)
{
    fwd *f = data;
    stop_backoff(f);
    gh_upquota_cancel(f->ex->upquota, &f->slot_wait);
    fail_client(f, 503, "upstream_unavailable",
                "every upstream connection this client connection may hold is busy");
}

static void attempt(fwd *f)
{
    gh_exchange *ex = f->ex;
    if (ex->upquota && !f->slot) {
        f->slot_wait.go = on_slot;
        if (!gh_upquota_take(ex->upquota, &f->slot_wait)) {
            /* a sibling stream lets go first, within the connect timeout */
            f->backoff = gh_backoff_start(ex->env->loop, f->up->connect_timeout_ms, on_slot_timeout, f);
            return;
        }
        f->slot = true;
    }
    int target = gh_upcall_get(&f->call);
    if (target < 0) {
        fail_client(f, 503, "upstream_unavailable", "every target of the upstream is down");
        return;
    }
    gh_exchange_upstream_try(ex);
    f->tls_failed = false;
    f->head_off = 0;
    f->fpos = f->flen = 0;
    f->chunk_left = 0;
    f->final_queued = false;
    f->req_done = false;
    const gh_target_cfg *t = &f->up->targets[f->call.target];
    ex->log.target = t->address;
    if (f->host_by_target &&   /* no Host from the client: this target's address, never none */
        !(f->head = gh_proxy_request_head(ex, f->route, f->path_q, f->body_mode, t, &f->head_len))) {
        fail_client(f, 500, "internal_error", "out of memory");
        return;
    }
    uint64_t tag = gh_proxy_tls_tag(f->up);
    struct sockaddr_storage ab;
    socklen_t alen;
    const struct sockaddr *sa = gh_upcall_addr(&f->call, &ab, &alen);
    f->uc = gh_pool_take_tagged(f->ctx.pw, sa, alen, tag);
    f->reused = f->uc != NULL;
    if (!f->uc) {
        int err = 0;
        f->uc = gh_upconn_connect_tagged(f->ctx.pw, sa, alen, tag, &err);
        if (!f->uc) {
            fail(f, GH_OUT_CONNECT, err);
            return;
        }
    }
    f->uc->owner = f;
    f->uc->on_event = on_uc_event;
    f->uc->on_timer = on_uc_timer;
    if (f->reused) {
        begin_send(f);
    } else {
        f->phase = P_CONNECT;
        arm(f, f->up->connect_timeout_ms);
    }
}

void gh_proxy_start(gh_exchange *ex, const gh_proxy_ctx *ctx, const gh_route_cfg *route, gh_str path_q)
{
    if (route->upstream->protocol == GH_PROTO_H2) { gh_h2up_start(ex, ctx, route, path_q); return; }
    fwd *f = gh_arena_zalloc(&ex->arena, sizeof(*f));
    if (!f) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    f->ex = ex;
    f->ctx = *ctx;
    f->route = route;
    f->up = route->upstream;
    gh_exchange_upstream_start(ex);
    if (route->timeout_ms)
        f->deadline_ms = gh_now_ms(ex->env) + route->timeout_ms;
    f->body_mode = ex->body_kind == GH_BODY_LENGTH ? GH_FWD_LENGTH
                 : ex->body_kind == GH_BODY_CHUNKED ? GH_FWD_CHUNKED : GH_FWD_NO_BODY;
    f->path_q = path_q;
    f->host_by_target = gh_proxy_host_by_target(ex, route);
    if (!f->host_by_target &&   /* else made per try, in attempt() */
        !(f->head = gh_proxy_request_head(ex, route, path_q, f->body_mode, NULL, &f->head_len))) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    ex->log.upstream = f->up->name;
    ex->log.upstream_id = f->up->metric_id;
    const char *refused = gh_upcall_start(&f->call, ex, ctx, route);
    if (refused) {
        gh_problem(ex, 503, refused, "the upstream's circuit breaker is open", NULL, 0, NULL);
        return;
    }
    ex->consumer = f;
    ex->on_abort = on_client_abort;
    ex->on_writable = on_client_writable;
    attempt(f);
}
