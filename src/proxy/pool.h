/* pool.h — upstream connections and the per-worker keep-alive pools.
 *
 * A gh_upconn is one TCP connection to a target. Pools are keyed by the
 * target's address, not by configuration objects, so a reload that keeps a
 * target keeps its warm connections, and a removed target's connections
 * simply age out. An idle pooled connection keeps polling for readability:
 * any byte or EOF from an idle upstream means it is unusable, so it closes. */
#ifndef GH_PROXY_POOL_H
#define GH_PROXY_POOL_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>
#include "core/bufpool.h"
#include "core/transport.h"

typedef struct gh_upconn gh_upconn;
typedef struct gh_pool gh_pool;
typedef struct gh_proxy_worker gh_proxy_worker;

/* Events for the connection's owner (the forwarding state machine). */
typedef void (*gh_upconn_cb)(gh_upconn *uc, int events);   /* UV_READABLE|UV_WRITABLE, or <0 error */
typedef void (*gh_upconn_timer_cb)(gh_upconn *uc);

struct gh_upconn {
    uv_poll_t poll;
    uv_timer_t timer;
    gh_proxy_worker *pw;
    gh_pool *pool;
    gh_upconn *prev, *next;       /* pool's idle list */
    gh_buf *in;
    gh_transport *tp;             /* plain (shared) or TLS */
    void *owner;
    gh_upconn_cb on_event;
    gh_upconn_timer_cb on_timer;
    int fd;
    int events;
    int closing;                  /* handles still to close */
    bool connected;
    bool idle;
    uint32_t requests;            /* served on this connection */
};

struct gh_proxy_worker {
    uv_loop_t *loop;
    gh_bufpool *bufs;
    gh_pool **table;              /* open-addressing hash by address */
    size_t table_cap, npools;
    uint64_t idle_timeout_ms;     /* pooled connection lifetime when unused */
    size_t open_conns;
    struct gh_h2up_worker *h2up;  /* HTTP/2 upstream sessions (h2_upstream.c), made on first use */
};

gh_proxy_worker *gh_proxy_worker_new(uv_loop_t *loop, gh_bufpool *bufs);
void gh_proxy_worker_free(gh_proxy_worker *pw);   /* closes every pooled connection */

/* An idle connection to sa from the pool (its owner/callbacks to be set by
 * the caller), or NULL. */
gh_upconn *gh_pool_take(gh_proxy_worker *pw, const struct sockaddr *sa, socklen_t len);
/* The same, for connections that share more than the address: `tag`
 * identifies it (0 = plain TCP; TLS: a hash of the name verified, the CA,
 * the client certificate), so a connection is reused only by its kind. */
gh_upconn *gh_pool_take_tagged(gh_proxy_worker *pw, const struct sockaddr *sa, socklen_t len, uint64_t tag);
/* Start a non-blocking connect; the owner gets UV_WRITABLE when connected
 * (check gh_upconn_connect_result). NULL + *err on immediate failure. */
gh_upconn *gh_upconn_connect(gh_proxy_worker *pw, const struct sockaddr *sa, socklen_t len, int *err);
gh_upconn *gh_upconn_connect_tagged(gh_proxy_worker *pw, const struct sockaddr *sa, socklen_t len, uint64_t tag,
                                    int *err);
int gh_upconn_connect_result(gh_upconn *uc);      /* 0 or -errno (SO_ERROR) */
/* Return a healthy connection to its pool (keeps at most `keep` idle). */
void gh_upconn_release(gh_upconn *uc, uint32_t keep);
void gh_upconn_close(gh_upconn *uc);
/* Hand the socket and transport over (to a tunnel); the gh_upconn goes. */
void gh_upconn_detach(gh_upconn *uc, int *fd, gh_transport **tp);
void gh_upconn_events(gh_upconn *uc, int events);  /* poll mask */
/* Bytes on the connection (through its transport, plain or TLS): like
 * read(2)/writev(2) but returning -errno; -EAGAIN = wait for readiness. */
ssize_t gh_upconn_read(gh_upconn *uc, char *buf, size_t len);
ssize_t gh_upconn_writev(gh_upconn *uc, const struct iovec *iov, int n);
void gh_upconn_timer(gh_upconn *uc, uint64_t ms);  /* 0 = stop */

#endif
