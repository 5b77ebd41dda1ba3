/* subreq.h — requests the gateway makes itself (DESIGN "Sub-request").
 *
 * A sub-request is a child exchange of a client's exchange (the parent):
 * its own arena, the parent's pinned snapshot, a method, a path+query,
 * header fields and optional body bytes. Its downstream is in memory: the
 * status, header fields and body (bounded by max_body) are collected
 * instead of written to a socket, and `done` is called on a later loop
 * turn. It runs either through gh_dispatch (router, plugin chain, target:
 * exactly as a client's request; batch items) or straight to a route's
 * upstream through the upstream-call layer (aggregation backends, whose
 * policy already ran on the parent). Both use the pooled connections of
 * the proxy: there is no second HTTP client.
 *
 * Ownership: the child copies all it takes from the parent at the start
 * (request fields, identity, request id, trace context) and pins the
 * parent's snapshot itself, so it depends on nothing of the parent
 * afterwards. Whoever holds the gh_subreq decides its lifetime: aggregate
 * and batch keep it in the parent's arena and cancel every running one
 * when the parent ends (its on_abort), so `done` can never reach a parent
 * that is gone; a collapsed cache fill is detached (below): the worker
 * holds it and it finishes after the client that started it left.
 * After `done` the results stay readable until gh_subreq_release.
 * Children are logged and counted like requests. */
#ifndef GH_SERVER_SUBREQ_H
#define GH_SERVER_SUBREQ_H
#include <stdbool.h>
#include <stddef.h>
#include "config/config.h"
#include "http/exchange.h"
#include "plugins/plugin.h"

typedef struct gh_subreq gh_subreq;
typedef void (*gh_subreq_done)(gh_subreq *sr);

typedef struct gh_subreq_spec {
    gh_str method;                /* "GET" */
    gh_str target;                /* path + "?query"; the path must start with '/' */
    const gh_header *headers;     /* copied into the child */
    size_t nheaders;
    gh_str body;                  /* copied; empty = no body */
    size_t max_body;              /* response body bound; over it: error "response_too_large" */
    const gh_route_cfg *route;    /* NULL: route it (gh_dispatch); else forward to route->upstream */
} gh_subreq_spec;

struct gh_subreq {
    /* ---- results, valid in done() until gh_subreq_release ---- */
    int status;                   /* 0 when no response head came */
    const gh_header *headers;     /* the response's (in the child's arena) */
    size_t nheaders;
    const char *body;             /* NUL-terminated */
    size_t body_len;
    const char *error;            /* NULL, "response_too_large" or "aborted" */
    const char *problem;          /* the gateway's problem code when it answered itself */
    /* ---- owner's ---- */
    void *ctx;
    gh_subreq_done done;
    /* ---- internal ---- */
    gh_exchange *parent, *child;  /* parent: for the caller; the child never reads it after the start */
    unsigned depth;               /* the child's gh_subreq_depth */
    size_t max_body, body_cap;
    char *buf;
    gh_str req_body;              /* the request body (child arena) and how much was delivered */
    size_t req_off;
    gh_task task;                 /* runs done on a later turn, outside the proxy's callbacks */
    bool running;                 /* started, done not called yet */
};

/* Create and start the child. false (nothing to cancel) when it could not
 * be created (out of memory, a target without '/'). done may come from a
 * later loop turn only, never from inside this call. */
bool gh_subreq_start(gh_subreq *sr, gh_exchange *parent, const gh_subreq_spec *spec, gh_subreq_done done,
                     void *ctx);
/* Stop a running sub-request (the parent ends): its upstream work is
 * dropped, its child freed; done is not called. No-op when not running. */
void gh_subreq_cancel(gh_subreq *sr);
/* After done: free the child and the results. */
void gh_subreq_release(gh_subreq *sr);
/* Is it still running (started, done not yet called)? */
static inline bool gh_subreq_running(const gh_subreq *sr) { return sr->running; }

/* Detached sub-requests (gh_plugin_run.detach): owned by the parent's
 * worker, not by any exchange, so they run to their end after the client
 * that started them left (a collapsed cache fill). done gets the answer
 * once, on a later turn of that worker's loop; the child is freed after
 * it returns. gh_subreq_detached_stop (the worker's loop ended) cancels
 * the ones still running, each done told status 0, "aborted". */
bool gh_subreq_detach(gh_exchange *parent, const gh_subreq_spec *spec, gh_detached_done done, void *ctx);
void gh_subreq_detached_stop(gh_http_env *env);

/* The parent's request fields a sub-request is sent: all as they stand
 * but those about its body, its encoding, a range or a condition (the
 * answer is read by the gateway, whole and identity). In ex's arena. */
gh_header *gh_subreq_fields(gh_exchange *ex, size_t *n);

/* Is ex a sub-request's child? */
bool gh_subreq_is_child(const gh_exchange *ex);
/* How many sub-requests deep ex is: 0 for a client's request. Targets that
 * make sub-requests bound it, so no configuration can loop (a batch item
 * may aggregate; an aggregate's backend cannot aggregate again). */
unsigned gh_subreq_depth(const gh_exchange *ex);

/* A response header of a finished sub-request (case-insensitive), or NULL. */
const gh_header *gh_subreq_header(const gh_subreq *sr, const char *name, size_t len);

#endif
