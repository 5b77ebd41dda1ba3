/* h2_int.h — what the two halves of an HTTP/2 server connection share:
 * h2_conn.c (the session: nghttp2, the transport, flow control, the reset
 * budget, timeouts) and h2_stream.c (the streams: one exchange each, its
 * request head and body in, its response out). Not for other modules. */
#ifndef GH_HTTP_H2_INT_H
#define GH_HTTP_H2_INT_H
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include "http/exchange.h"
#include "http/h1_conn.h"
#include "http/upquota.h"

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

/* ---- the session (h2_conn.c) ---- */
/* Run the send path on the next loop turn (never from an exchange op's stack). */
void gh_h2c_schedule_flush(h2_conn *c);
/* A reset the client caused: spend from its budget (GOAWAY when spent). */
void gh_h2c_count_reset(h2_conn *c);

/* ---- the streams (h2_stream.c) ---- */
void gh_h2s_set_callbacks(nghttp2_session_callbacks *cb);
void gh_h2s_frame_recv(h2_conn *c, const nghttp2_frame *f);
void gh_h2s_frame_sent(h2_conn *c, const nghttp2_frame *f);
/* Hand streams whose heads completed in this read batch to the listener's handler. */
void gh_h2s_dispatch_ready(h2_conn *c);
/* Tell producers whose data nghttp2 has taken that they may go on. */
void gh_h2s_notify(h2_conn *c);
/* The stream is gone: end its exchange and free it. */
void gh_h2s_end(h2_conn *c, h2_stream *s);

#endif
