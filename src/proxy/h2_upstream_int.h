/* h2_upstream_int.h — what the two halves of the HTTP/2 upstream share:
 * h2_upstream.c (each exchange as one stream: request, response, retries)
 * and h2_upstream_session.c (the connections under them: a per-worker table
 * by target address, connect, reads and writes, timers). Private to them. */
#ifndef GH_PROXY_H2_UPSTREAM_INT_H
#define GH_PROXY_H2_UPSTREAM_INT_H
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include "proxy/h2_upstream.h"
#include "proxy/upcall.h"

#define GH_H2UP_STREAM_WINDOW 65535          /* = the most response data a stream buffers */
#define GH_H2UP_MAX_HEADER_BYTES (64 << 10)  /* response head or trailers */
#define GH_H2UP_BUCKETS 64

/* Why an attempt failed. TLS: handshake or ALPN (a connect error);
 * REFUSED: the upstream did not process the stream (safe to retry); LOST:
 * the whole connection died. */
enum gh_h2up_fail { GH_H2F_CONNECT, GH_H2F_TLS, GH_H2F_CONNECT_TIMEOUT, GH_H2F_REFUSED, GH_H2F_RESET,
                    GH_H2F_LOST, GH_H2F_TIMEOUT };

typedef struct gh_h2up_sess gh_h2up_sess;
typedef struct gh_h2up_stream gh_h2up_stream;
typedef struct gh_h2up_call gh_h2up_call;

struct gh_h2up_worker {
    gh_proxy_worker *pw;
    gh_http_env *env;                /* the worker's: deferred tasks */
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    gh_h2up_sess *buckets[GH_H2UP_BUCKETS];
};

struct gh_h2up_sess {                /* one HTTP/2 connection to a target */
    gh_h2up_worker *w;
    gh_h2up_sess *next;              /* bucket chain */
    gh_upconn *uc;
    nghttp2_session *ng;
    gh_task flush_task;
    struct sockaddr_storage sa;
    socklen_t salen;
    uint64_t tag;                    /* TLS identity (gh_proxy_tls_tag), 0 = plaintext */
    gh_h2up_stream *streams;         /* submitted, not closed */
    gh_h2up_call *waiting;           /* exchanges waiting for the connection */
    size_t nstreams, nwaiting;
    uint64_t served;                 /* streams completed: the connection is known good */
    char *out;                       /* gathered output not yet written */
    size_t out_len, out_off, out_cap;
    uint64_t connect_due, idle_due, timer_at;
    int busy;                        /* inside one of its handlers: freeing waits */
    int rd_want;
    bool tcp_up, connected, goaway, dead, reread, tls_failed;
};

struct gh_h2up_stream {              /* malloc'd: it may outlive its exchange */
    gh_h2up_sess *ss;                /* NULL once the session is gone */
    gh_bufpool *bufs;
    gh_h2up_call *x;                 /* NULL once the exchange is done with it */
    gh_h2up_stream *prev, *next;
    int32_t id;
    gh_buf *req;                     /* request body bytes waiting for DATA frames */
    char *rbuf;                      /* response data not yet acknowledged */
    size_t rlen, inflight;           /* rbuf[0..inflight) is lent to the client */
    bool req_eof, deferred, discard, closed;
};

struct gh_h2up_call {                /* per exchange, in its arena */
    gh_exchange *ex;
    gh_proxy_ctx ctx;
    gh_h2up_worker *w;
    const gh_route_cfg *route;
    const gh_upstream_cfg *up;
    gh_h2up_stream *st;              /* the current attempt's stream */
    gh_h2up_sess *wss;               /* or the session it waits for */
    gh_h2up_call *wprev, *wnext;
    nghttp2_nv *nv;
    size_t nnv;
    gh_header *hdrs;                 /* response head, then trailers */
    size_t nh, caph, hbytes;
    int status;
    gh_upcall call;                  /* target choice, retries, outcomes (proxy/upcall.h) */
    uv_timer_t *backoff;
    uint64_t t0_ms, deadline_ms, due_ms;
    bool reused, body_started, want_body;
    bool req_done, head_done, trailers, end_recv, blocked, done;
};

/* ---- sessions (h2_upstream_session.c) ---- */
gh_h2up_worker *gh_h2up_worker_get(gh_proxy_worker *pw, gh_http_env *env);
/* A session with room for one more stream to t (maybe a new, connecting one). */
gh_h2up_sess *gh_h2up_pick(gh_h2up_call *x, const gh_target_cfg *t, int *err);
void gh_h2up_wait(gh_h2up_sess *ss, gh_h2up_call *x);      /* until connected */
void gh_h2up_wait_remove(gh_h2up_call *x);
void gh_h2up_stream_link(gh_h2up_sess *ss, gh_h2up_stream *st);
void gh_h2up_stream_unlink(gh_h2up_sess *ss, gh_h2up_stream *st);
void gh_h2up_stream_free(gh_h2up_stream *st);
void gh_h2up_flush_soon(gh_h2up_sess *ss);                  /* NULL ok */
/* x's next deadline: ms of inactivity from now (0: none), capped by the route's. */
void gh_h2up_set_due(gh_h2up_call *x, uint64_t ms);
static inline uint64_t gh_h2up_now(const gh_h2up_worker *w) { return uv_now(w->pw->loop); }

/* ---- exchanges (h2_upstream.c) ---- */
void gh_h2up_set_callbacks(nghttp2_session_callbacks *cbs);
void gh_h2up_submit(gh_h2up_call *x, gh_h2up_sess *ss);     /* open x's stream */
void gh_h2up_fail(gh_h2up_call *x, enum gh_h2up_fail kind, const char *why);   /* retry or answer */
void gh_h2up_expire(gh_h2up_call *x, uint64_t now);         /* its due time passed */

#endif
