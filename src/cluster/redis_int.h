/* redis_int.h — the Redis client's inside, shared by redis.c (connections,
 * requests, timeouts), redis_cluster.c (slot map, redirections) and
 * redis_limit.c (the limiter scripts). Not for use outside src/cluster/. */
#ifndef GH_CLUSTER_REDIS_INT_H
#define GH_CLUSTER_REDIS_INT_H
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include "cluster/redis.h"
#include "core/arena.h"

#define GH_REDIS_SLOTS 16384
#define GH_REDIS_MAX_INFLIGHT 65536   /* per connection: beyond, answer at once */
#define GH_REDIS_MAX_RETRIES 2        /* MOVED, ASK, NOSCRIPT: re-sent at most this often */
#define GH_REDIS_BACKOFF_MIN_MS 100
#define GH_REDIS_BACKOFF_MAX_MS 5000

typedef struct gh_redis_tls_pipe gh_redis_tls_pipe;
struct gh_tls_client;

enum { GH_NODE_DOWN = 0, GH_NODE_RESOLVING, GH_NODE_CONNECTING, GH_NODE_UP };

typedef struct gh_redis_node {
    gh_redis *c;
    char *host;                   /* as configured or announced by the cluster */
    uint16_t port;
    char name[300];               /* host:port, for messages */
    redisAsyncContext *ac;        /* NULL while down */
    gh_redis_tls_pipe *tls;       /* redis.tls: the bridge of this connection (redis_tls.c) */
    int state;
    bool answered;                /* a reply came on this connection (it works, not just TCP) */
    bool was_up;                  /* for logging changes once */
    bool auth_failed;             /* logged once until a connection works again */
    uint64_t backoff_ms;
    uv_timer_t retry;
    uv_getaddrinfo_t gai;
    bool resolving;
    size_t inflight;              /* requests whose reply hiredis still owes */
    uint64_t last_reply_ms;       /* or when inflight became non-zero */
} gh_redis_node;

typedef struct gh_redis_req {
    struct gh_redis_req *next, *prev;   /* waiting list, or the free list (next) */
    gh_redis *c;
    uint64_t seq;
    uint64_t deadline;
    gh_redis_cb cb;
    gh_redis_limit_cb lcb;
    void *ctx;
    uint64_t limits[GH_REDIS_MAX_LIMITS];   /* lcb: for the verdict */
    size_t nlimits;
    bool waiting;                 /* the caller still expects its callback */
    bool in_redis;                /* hiredis holds a callback pointing here */
    int slot;                     /* -1: any node */
    int retries;
    char *cmd;                    /* formatted (RESP), kept for redirections */
    size_t cmdlen;
} gh_redis_req;

struct gh_redis {
    uv_loop_t *loop;
    gh_arena arena;               /* cfg copy, node names */
    gh_redis_cfg cfg;
    gh_redis_node **nodes;
    size_t nnodes, capnodes;
    uint16_t *slots;              /* cluster: node index + 1 per slot, 0 = unknown */
    bool slots_known;
    bool refreshing, refresh_again;
    gh_redis_req waiting;         /* sentinel: oldest first, so deadlines in order */
    gh_redis_req *free_reqs;
    uint64_t seq;
    uv_timer_t timer;             /* the oldest deadline, or the stall check */
    size_t refs;                  /* open handles and lookups: freed at 0 */
    bool freeing;
    char sha[2][41];              /* per enum gh_redis_algo */
    struct gh_tls_client *tls;    /* redis.tls (referenced); NULL = plaintext */
    int tls_lfd;                  /* the bridge's loopback listener */
    uint16_t tls_port;            /* its port; 0 = none */
    uv_poll_t tls_lpoll;
};

/* redis.c */
gh_redis_node *gh_redis_node_add(gh_redis *c, const char *host, size_t hostlen, uint16_t port);
gh_redis_node *gh_redis_node_find(gh_redis *c, const char *host, size_t hostlen, uint16_t port);
bool gh_redis_node_usable(const gh_redis_node *n);
/* Send a formatted command for req to n (it goes into hiredis's pipeline). */
bool gh_redis_node_send(gh_redis_node *n, gh_redis_req *req);
/* Queue an internal command (fn gets privdata n). */
bool gh_redis_node_internal(gh_redis_node *n, redisCallbackFn *fn, int argc, const char **argv,
                            const size_t *argvlen);
int gh_redis_submit(gh_redis *c, char *cmd, size_t len, int slot, gh_redis_req **out);
void gh_redis_answer(gh_redis_req *req, int status, const redisReply *r);

void gh_redis_unref(gh_redis *c);
/* The bridge of n is up (dial hiredis to it) or failed (why: for the log). */
void gh_redis_node_tls_ready(gh_redis_node *n);
void gh_redis_node_tls_failed(gh_redis_node *n, const char *why);

/* redis_tls.c: hiredis in clear <-> 127.0.0.1 listener <-> TLS to Redis */
int gh_redis_tls_listen(gh_redis *c);           /* 0 or -1 */
void gh_redis_tls_unlisten(gh_redis *c);
bool gh_redis_tls_start(gh_redis_node *n, const char *ip);   /* TCP + handshake to ip:n->port */
void gh_redis_tls_expect(gh_redis_node *n, int hiredis_fd);  /* the socket allowed in */
void gh_redis_tls_close(gh_redis_node *n);      /* NULL-safe on n->tls */

/* redis_cluster.c */
gh_redis_node *gh_redis_route(gh_redis *c, int slot);
void gh_redis_refresh_slots(gh_redis *c);
/* A MOVED/ASK error for req: re-sent (true) or to be answered as an error. */
bool gh_redis_redirect(gh_redis *c, gh_redis_req *req, const redisReply *r);

/* redis_limit.c */
void gh_redis_scripts_init(gh_redis *c);
void gh_redis_scripts_load(gh_redis_node *n);
bool gh_redis_is_noscript(const redisReply *r);
void gh_redis_verdict_answer(gh_redis_req *req, int status, const redisReply *r);

#endif
