/* exchange.h — one request and its response, protocol-neutral.
 *
 * A codec (HTTP/1.1 now, HTTP/2 later) fills the request part and hands the
 * exchange to its listener's handler (routing, plugins, a target). Whatever produces
 * the response talks back only through ex->down (gh_downstream_ops), and
 * reads the request body through gh_exchange_read_body, so no stage above
 * this file branches on the protocol. The exchange owns an arena freed when
 * it ends and pins the configuration snapshot it started with. */
#ifndef GH_HTTP_EXCHANGE_H
#define GH_HTTP_EXCHANGE_H
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <uv.h>
#include "config/config.h"
#include "core/arena.h"
#include "core/bufpool.h"
#include "core/deadline.h"
#include "core/str.h"
#include "core/transport.h"
#include "http/h1_parse.h"

enum { GH_OK = 0, GH_AGAIN = 1, GH_ERROR = -1 };

typedef struct gh_exchange gh_exchange;
typedef struct gh_resp_filter gh_resp_filter;
/* What serves a listener's requests (the public dispatcher, the admin API). */
typedef void (*gh_handler)(gh_exchange *ex);

/* Work to run on the next loop turn, outside any callback (gh_env_defer). */
typedef struct gh_task {
    struct gh_task *next;
    void (*run)(struct gh_task *t);
    bool queued;
} gh_task;

/* Kinds of client-side timeouts (each a deadline list in the worker). */
enum { GH_TO_IDLE = 0, GH_TO_HEADER, GH_TO_BODY, GH_TO_SEND, GH_TO_COUNT };
typedef struct gh_http_env gh_http_env;

/* A client connection handed over after a protocol switch (101). */
typedef struct gh_takeover {
    int fd;
    gh_transport *tp;
    char *pending;                /* client bytes already read (malloc'd) */
    size_t npending;
    char *head;                   /* the 101 response head to send first (malloc'd) */
    size_t nhead;
} gh_takeover;

typedef struct gh_downstream_ops {
    /* Response head. hdrs are end-to-end headers only (the codec adds its
     * framing: Content-Length / Transfer-Encoding / Connection).
     * content_length < 0: unknown, the body streams. */
    int (*send_head)(gh_exchange *ex, int status, const gh_header *hdrs, size_t n,
                     int64_t content_length);
    /* Body bytes. GH_OK: taken, the caller may reuse its memory. GH_AGAIN:
     * the caller keeps p[0..len) alive and waits for ex->on_writable. */
    int (*send_body)(gh_exchange *ex, const char *p, size_t len);
    /* End of the response body (flushes; the exchange ends when written). */
    int (*finish)(gh_exchange *ex);
    /* The response cannot be completed (upstream died mid-body): close the
     * client connection so the truncation is visible. */
    void (*abort)(gh_exchange *ex);
    /* Request body flow control: deliver (again) what is buffered. */
    void (*resume_body)(gh_exchange *ex);
    /* finish() with trailer fields (gRPC's grpc-status). HTTP/1.1 drops them
     * (chunked trailers are not forwarded); HTTP/2 sends a trailing HEADERS. */
    int (*finish_trailers)(gh_exchange *ex, const gh_header *hdrs, size_t n);
    /* 101 Switching Protocols (WebSocket): end the exchange (logged, freed)
     * and hand the client connection over in *t, with the response head
     * (status line + hdrs + Connection: upgrade) still to be written.
     * GH_ERROR if the codec cannot (HTTP/2); then nothing changed. */
    int (*upgrade)(gh_exchange *ex, const gh_header *hdrs, size_t n, gh_takeover *t);
    /* Optional: send_body(p, len) and finish() in one write (a chunked
     * body's last chunk with its terminator). GH_AGAIN: the codec keeps
     * p[0..len) until the exchange ends, and ends it itself. NULL: the
     * caller sends, then finishes. */
    int (*send_last)(gh_exchange *ex, const char *p, size_t len);
} gh_downstream_ops;

/* Returns how many of the len bytes the consumer took; the codec keeps the
 * rest and delivers it again after gh_exchange_resume_body. `last`: these are
 * the final bytes of the body (len may be 0). */
typedef size_t (*gh_body_cb)(gh_exchange *ex, const char *p, size_t len, bool last);

struct gh_exchange {
    gh_arena arena;
    gh_http_env *env;
    const gh_downstream_ops *down;
    void *down_ctx;                 /* the codec's connection or stream */
    const gh_config *cfg;           /* pinned snapshot's configuration */
    void *pin;                      /* env's handle for the pinned snapshot */
    uint64_t start_ms;              /* cached clock at head completion */
    uint64_t start_ns;              /* precise, for duration_ms */

    /* ---- request (slices into the arena) ---- */
    gh_str method;
    uint32_t method_bit;            /* GH_M_* */
    gh_str target;                  /* raw request-target */
    gh_str path;                    /* normalized (set by the dispatcher) */
    gh_str raw_path;                /* path part of target, not normalized */
    gh_str query;                   /* after '?', raw; empty if none */
    gh_str host;                    /* Host / :authority without port, lower-case */
    gh_str authority;               /* Host as sent */
    gh_header *headers;
    size_t nheaders;
    int minor;                      /* HTTP/1.x minor; 2 for h2 */
    bool keep_alive;
    bool expect_continue;
    bool upgrade;                   /* Connection: upgrade + Upgrade (the intake keeps it for WebSocket only) */
    bool te_trailers;               /* the client's TE listed "trailers" (set by the intake) */
    bool tls;
    bool path_strict;
    bool uncounted;                 /* the listener's own requests stay out of the metrics (admin) */
    uint16_t local_port;
    char peer[48];                  /* TCP peer address, text (X-Forwarded-For gets this) */
    char client[48];                /* the client: the peer, or from X-Forwarded-For when
                                       the peer is a trusted proxy (set by the dispatcher) */
    uint16_t client_port;
    char request_id[40];
    uint8_t request_id_len;         /* strlen(request_id): read by the upstream head, the response and the log */
    struct {                        /* W3C trace context (observe/trace.c fills it once) */
        char parent[56];            /* the traceparent the upstream gets: 00-<trace-id>-<our span>-<flags> */
        gh_str state;               /* the client's tracestate, kept beside a valid traceparent */
        bool set;
    } trace;
    gh_str client_cert;             /* verified mTLS client subject (RFC 4514), else empty */
    struct gh_dry_run *dry_run;     /* explain/diff: the dispatcher records its decisions here
                                       and sends nothing (server/dry_run.h); NULL for clients */
    struct gh_upquota *upquota;     /* the client connection's bound on upstream
                                       connections held (http/upquota.h), or NULL */

    /* ---- request body ---- */
    int body_kind;                  /* enum gh_h1_body (NONE, LENGTH, CHUNKED) */
    uint64_t content_length;
    uint64_t body_received;         /* bytes delivered to the consumer */
    bool body_done;                 /* all of the body was delivered */
    gh_body_cb body_cb;             /* set by the consumer */
    uint64_t body_limit;            /* the codec refuses bytes past this (413 or, after the
                                       response head, a reset): limits.max_body_bytes,
                                       lowered by gh_exchange_limit_body */
    const char *body_limit_detail;  /* that 413's detail */
    struct gh_body_buf {            /* the whole body in memory (gh_exchange_buffer_body) */
        char *p;
        size_t len, cap, off;       /* off: replayed so far */
        bool ready, replayed;       /* all of it is here; its end was replayed */
        void (*done)(gh_exchange *ex);
        gh_task task;               /* runs done on the next loop turn, out of the codec */
    } body_buf;

    /* ---- response ---- */
    int status;
    bool head_sent;
    bool response_done;             /* finish() called */
    bool head_request;
    uint64_t bytes_out;

    /* ---- consumer (the target producing the response) ---- */
    void *consumer;
    void (*on_writable)(gh_exchange *ex);   /* downstream drained after GH_AGAIN */
    void (*on_abort)(gh_exchange *ex);      /* client went away: release resources */

    /* ---- set by plugins ---- */
    gh_header *resp_extra;          /* added to whatever response is sent (CORS, ...) */
    size_t nresp_extra, capresp_extra;
    uint64_t resp_extra_lens;       /* bit (name length & 63) of each: most names skip the merge */
    gh_str consumer_groups;         /* "admins,beta" for X-Consumer-Groups (X-Consumer: log.consumer) */
    void *plugin_run;               /* the chain, when a plugin that ran has an after-response
                                       hook (plugins/plugin.h); the done path calls them */
    gh_resp_filter *filter;         /* a response filter sits in ex->down (compress), or NULL */
    void *cache;                    /* the cache plugin's state for this exchange (plugins/cache.c) */

    /* ---- what the access log and metrics report ---- */
    struct {
        gh_str route, upstream, target, consumer, version, cache;
        uint32_t route_id, upstream_id; /* the metrics' ids (config metric_id); 0 = none */
        const char *error;          /* problem code, or NULL */
        int64_t upstream_us;        /* start to the upstream's response head; -1 = no upstream */
        uint64_t upstream_t0_ns;    /* (when the proxy started) */
        uint32_t attempts;          /* upstream tries, retries included */
        const char *tls;            /* negotiated version ("TLSv1.3"), NULL in clear text */
    } log;
};

/* Per-worker services the codecs and targets need; filled by server/. */
struct gh_http_env {
    gh_bufpool *bufs;               /* I/O buffers */
    uv_loop_t *loop;                /* the worker's loop (its cached clock) */
    bool draining;                  /* SIGTERM: finish, answer Connection: close */
    void *(*pin)(gh_http_env *env, const gh_config **cfg);   /* pin the current snapshot */
    void (*unpin)(gh_http_env *env, void *pin);
    void (*done)(gh_exchange *ex);                           /* access log + metrics */
    void (*conn_closed)(gh_http_env *env);                   /* a client connection ended */
    const gh_limits_cfg *limits;    /* of the current snapshot (for new requests) */
    gh_deadline_list timeouts[4];   /* GH_TO_*: the worker's tick expires them */
    struct gh_h1_worker *h1;        /* codec state of this worker */
    uint64_t rng[2];                /* xorshift128+ state for request ids */
    gh_exchange *free_exchanges;    /* recycled exchange objects */
    size_t nfree_exchanges;
    void *owner;                    /* the worker */
    struct gh_metrics_worker *metrics;   /* this worker's counters (observe/metrics.h); NULL when none */
    struct gh_redis *redis;         /* the worker's Redis client (cluster/redis.h); NULL without redis: */
};


/* Milliseconds, cached by the loop once per iteration: no syscall. */
static inline uint64_t gh_now_ms(const gh_http_env *env) { return uv_now(env->loop); }

/* A response filter (compress): it replaces ex->down with its own ops, so
 * every producer (proxy, respond, echo, problems) goes through it unaware,
 * and calls the codec's ops (next) itself. Producers keep their rule:
 * GH_AGAIN holds them until ex->on_writable. The codec tells the filter
 * first when it drained (gh_exchange_writable), so the filter's own
 * pending output goes out before the producer is woken. release runs when
 * the exchange is freed, however it ended (finished, aborted, client gone).
 * One filter per exchange. */
struct gh_resp_filter {
    const gh_downstream_ops *next;              /* the codec's ops, under the filter */
    void (*writable)(gh_exchange *ex);          /* the codec drained what it was given */
    void (*release)(gh_exchange *ex);           /* the exchange ends: free the filter's state */
};

/* Put f (its ops in ops) between the producers and the codec. */
static inline void gh_exchange_push_filter(gh_exchange *ex, gh_resp_filter *f, const gh_downstream_ops *ops)
{
    f->next = ex->down;
    ex->filter = f;
    ex->down = ops;
}

/* What a codec calls when it drained after GH_AGAIN: the filter, if any,
 * else the producer. Without a filter this is the one pointer test. */
static inline void gh_exchange_writable(gh_exchange *ex)
{
    if (ex->filter)
        ex->filter->writable(ex);
    else if (ex->on_writable)
        ex->on_writable(ex);
}

/* finish() or abort(): the response is over and its producer is forgotten
 * (no on_writable, on_abort or body callback reaches it any more). One
 * place for the rule every codec applies. */
static inline void gh_exchange_response_over(gh_exchange *ex)
{
    ex->response_done = true;
    ex->on_writable = NULL;
    ex->on_abort = NULL;
    ex->body_cb = NULL;
}

/* The proxy's marks for the access log: upstream work starts (once per
 * request), a try begins, the upstream's response head arrived. */
static inline void gh_exchange_upstream_start(gh_exchange *ex) { ex->log.upstream_t0_ns = uv_hrtime(); }
static inline void gh_exchange_upstream_try(gh_exchange *ex) { ex->log.attempts++; }
static inline void gh_exchange_upstream_answered(gh_exchange *ex)
{
    ex->log.upstream_us = (int64_t)((uv_hrtime() - ex->log.upstream_t0_ns) / 1000);
}

/* Run t->run on the next loop turn (once, however often it is queued). */
void gh_env_defer(gh_http_env *env, gh_task *t);
/* Forget a queued task (its owner is going away). */
void gh_env_undefer(gh_http_env *env, gh_task *t);

gh_exchange *gh_exchange_new(gh_http_env *env);
void gh_exchange_free(gh_exchange *ex);
void gh_exchange_cache_clear(gh_http_env *env);   /* free the recycled objects */

/* Request header lookup (case-insensitive name); NULL if absent. */
const gh_header *gh_exchange_header(const gh_exchange *ex, const char *name, size_t len);

/* Remove every request header of that name (case-insensitive). */
void gh_exchange_remove_header(gh_exchange *ex, const char *name, size_t len);
/* Append a request header (name and value must outlive the exchange: the
 * arena or the configuration). false when out of memory. */
bool gh_exchange_add_header(gh_exchange *ex, const char *name, size_t nl, const char *value, size_t vl);
/* Replace the value of a request header (the first copy; later ones are
 * removed), or append it. Same lifetime rule. */
bool gh_exchange_set_header(gh_exchange *ex, const char *name, size_t nl, const char *value, size_t vl);
/* A header every response of this exchange carries, whoever makes it (the
 * same lifetime rule). */
bool gh_exchange_add_response_header(gh_exchange *ex, const char *name, size_t nl, const char *value,
                                     size_t vl);
/* Several at once (same rule). */
bool gh_exchange_add_response_headers(gh_exchange *ex, const gh_header *h, size_t n);
/* The response head, with the headers added above: what every producer
 * calls instead of ex->down->send_head. */
int gh_exchange_send_head(gh_exchange *ex, int status, const gh_header *hdrs, size_t n, int64_t content_length);

/* Start delivering the request body to cb (sends 100 Continue if asked).
 * After gh_exchange_buffer_body the body comes from memory, framed as
 * Content-Length, whatever the client used. */
void gh_exchange_read_body(gh_exchange *ex, gh_body_cb cb);
void gh_exchange_replay_body(gh_exchange *ex);
static inline void gh_exchange_resume_body(gh_exchange *ex)
{
    if (ex->body_buf.ready)
        gh_exchange_replay_body(ex);
    else
        ex->down->resume_body(ex);
}

/* Bound the request body at limit bytes (never raises the bound): any
 * consumer's delivery stops there and the codec answers 413 with detail
 * (static or in the arena) when no response head was sent, else resets;
 * the consumer's on_abort drops what it started (an upstream request). */
void gh_exchange_limit_body(gh_exchange *ex, uint64_t limit, const char *detail);
/* The codecs' test: would `more` bytes pass the bound? */
static inline bool gh_exchange_body_over(const gh_exchange *ex, uint64_t more)
{
    return ex->body_received + more > ex->body_limit;
}
/* For plugins that need the whole body (validation, cache, aggregation):
 * read it into the arena, bounded by limit as above, then call done on a
 * later loop turn. Past the bound or on a body error done is never called
 * (the codec answers and calls on_abort). Later readers get it from memory. */
void gh_exchange_buffer_body(gh_exchange *ex, uint64_t limit, void (*done)(gh_exchange *ex));
/* Forget a pending done (the client left). */
void gh_exchange_buffer_cancel(gh_exchange *ex);
/* No more body will reach a consumer (none left, or all delivered). */
static inline bool gh_exchange_body_delivered(const gh_exchange *ex)
{
    return ex->body_done && (!ex->body_buf.ready || ex->body_buf.replayed);
}

/* Per-worker pseudo-random numbers (ids, sampling; not for secrets). */
uint64_t gh_random(gh_http_env *env);

/* A fresh 32-hex-digit id (or the client's well-formed X-Request-Id). */
void gh_exchange_set_request_id(gh_exchange *ex);
/* Sets the request id to s[0..n) (n < 40, already checked), with its length. */
static inline void gh_exchange_put_request_id(gh_exchange *ex, const char *s, size_t n)
{
    memcpy(ex->request_id, s, n);
    ex->request_id[n] = '\0';
    ex->request_id_len = (uint8_t)n;
}

#endif
