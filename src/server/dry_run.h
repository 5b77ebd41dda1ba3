/* dry_run.h — the dispatcher's dry-run mode (DESIGN "One dispatcher"): a
 * request built in memory runs through gh_dispatch exactly as a client's
 * does (path normalization, routing, version and canary, the plugins, the
 * target's forwarded path), but where the target would run the dispatcher
 * records it instead: nothing is sent anywhere. Answers the gateway makes
 * itself on the way (400, 401, 404, 410...) are recorded as a client would
 * receive them. `explain` prints one record; `diff` compares two. */
#ifndef GH_SERVER_DRY_RUN_H
#define GH_SERVER_DRY_RUN_H
#include <stdbool.h>
#include "http/exchange.h"
#include "route/route.h"
#include "server/snapshot.h"
#include "targets/versions.h"

typedef struct gh_dry_request {
    const char *method;
    const char *url;              /* origin-form (/p?q) or absolute (http://host/p?q) */
    const gh_header *headers;     /* as a client would send them (Host among them) */
    size_t nheaders;
    const char *client;           /* the TCP peer; NULL = 127.0.0.1 */
    uint64_t seed;                /* a random canary's draws: 0 = fresh each run (explain);
                                   * fixed = the same draws on every snapshot (diff) */
} gh_dry_request;

typedef struct gh_dry_run {
    /* ---- filled by the dispatcher (server/dispatch.c) ---- */
    gh_str path;                  /* normalized, before a /vN/ segment is cut off */
    bool routed;                  /* a route matched: m is set */
    gh_route_match m;             /* the route (the versioned one) and its parameters */
    bool versioned;               /* pick is set (pick.v NULL: no version chosen) */
    gh_version_pick pick;         /* the version and why, the canary's decision */
    const gh_route_cfg *chain_of; /* the route whose plugins ran */
    bool reached;                 /* the chain passed: the target would run */
    const gh_route_cfg *target;   /* ... this route's target */
    gh_str forwarded;             /* path?query the upstream or echo would get */
    gh_str *calls;                /* aggregate: path?query each backend would get, in order */
    size_t ncalls;

    /* ---- the answer, when the gateway answered instead ---- */
    int status;                   /* 0 = none (the target was reached) */
    char allow[128];              /* Allow / WWW-Authenticate of that answer */
    char challenge[256];
    char body[2048];              /* its problem+json */

    /* ---- the request as the dispatcher saw it ---- */
    gh_exchange *ex;              /* kept until gh_dry_run_free: the slices above live in it */
    struct gh_dry_state *state;
} gh_dry_run;

/* Run rq through the dispatcher on snapshot s. false (with *err set) when
 * the request cannot be built; the record is then empty. */
bool gh_dry_run_request(gh_snapshot *s, const gh_dry_request *rq, gh_dry_run *rec, const char **err);
void gh_dry_run_free(gh_dry_run *rec);

#endif
