/* h1_conn.h — the HTTP/1.1 server side of a client connection.
 * Reads and parses requests (strict, pipelined in order), turns each into a
 * gh_exchange for the listener's handler, streams request bodies to the exchange's
 * consumer and writes responses (Content-Length, chunked or close-delimited).
 * Enforces the client-side limits and timeouts of SPEC §2 `limits`. */
#ifndef GH_HTTP_H1_CONN_H
#define GH_HTTP_H1_CONN_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>
#include "core/transport.h"
#include "http/exchange.h"

typedef struct gh_h1_listen_info {
    gh_handler handle;            /* what serves this listener: the dispatcher or the admin API */
    uint16_t local_port;
    bool path_strict;
    bool tls;
    bool http2;                   /* h2c prior knowledge (plaintext) or ALPN h2 (TLS) */
    bool uncounted;               /* its requests stay out of the metrics (the admin listener) */
} gh_h1_listen_info;

/* Take over an accepted, non-blocking socket. 0, or -errno (fd closed). */
int gh_h1_conn_start(uv_loop_t *loop, gh_http_env *env, int fd, const struct sockaddr *peer,
                     const gh_h1_listen_info *info, gh_transport *tp);

/* Drain: close every idle connection of this worker now (HTTP/1.1 and
 * HTTP/2, which also get GOAWAY); active ones close after their current
 * response (which says Connection: close). */
void gh_h1_close_idle(gh_http_env *env);

/* Connections of this worker still open. */
size_t gh_h1_conn_count(const gh_http_env *env);

/* Per-worker state the codec keeps inside env->codec (set up by the worker). */
typedef struct gh_h1_worker {
    uv_idle_t closer;             /* runs deferred closes and tasks outside callbacks */
    struct h1_conn *close_queue;
    gh_task *tasks;               /* gh_env_defer */
    struct h2_conn *h2_conns;     /* HTTP/2 connections (drain sends them GOAWAY) */
    struct gh_tunnel *tunnels;    /* WebSocket tunnels (proxy/tunnel.c; drain closes them) */
    size_t nconns;                /* client connections, both codecs */
    gh_header *scratch;           /* header array for parsing */
    size_t scratch_cap;
} gh_h1_worker;

void gh_h1_worker_init(gh_h1_worker *w, uv_loop_t *loop);
void gh_h1_worker_close(gh_h1_worker *w);

#endif
