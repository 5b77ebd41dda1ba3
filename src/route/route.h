/* route.h — path normalization, the compiled route table, and rewrite (SPEC §4).
 *
 * gh_router_build compiles a configuration's routes into an immutable table
 * ordered by precedence (never by file order), reporting ties as errors and
 * unreachable routes as warnings. gh_router_match is read-only and
 * allocation-free: workers share one router per configuration snapshot. */
#ifndef GH_ROUTE_ROUTE_H
#define GH_ROUTE_ROUTE_H
#include <stdbool.h>
#include <stddef.h>
#include "config/config.h"
#include "core/diag.h"
#include "core/str.h"
#include "http/h1_parse.h"

/* ---- path normalization ---- */
enum {
    GH_PATH_OK = 0,
    GH_PATH_BAD = -1,            /* forbidden encoding/char (strict mode): 400 */
    GH_PATH_CLIMB = -2,          /* climbs above "/": 400 in every mode */
};
/* Normalize the path part of a request target (no query) into out, which
 * must hold at least len + 1 bytes (normalization never grows a path).
 * Percent-decodes unreserved characters, removes dot-segments, merges
 * repeated slashes; in strict mode refuses %2F %5C %00, raw backslash,
 * ';' (raw or %3B), a segment ending in '.', %20 or %09, invalid/overlong
 * UTF-8 in percent-encoded bytes; non-strict cuts ";params" and trailing
 * dots/spaces off each segment instead. Result always starts with '/'. */
int gh_path_normalize(const char *in, size_t len, char *out, size_t *out_len, bool strict);

/* ---- routing ---- */
#define GH_MAX_PARAMS 16

typedef struct gh_param {
    gh_str name, value;          /* value points into the request path */
} gh_param;

typedef struct gh_route_request {
    gh_str method;
    gh_str host;                 /* Host without port; any case */
    gh_str path;                 /* normalized */
    gh_str query;                /* without '?', raw */
    const gh_header *headers;
    size_t nheaders;
} gh_route_request;

enum { GH_ROUTE_FOUND = 0, GH_ROUTE_NONE = 1, GH_ROUTE_METHOD = 2 };

typedef struct gh_route_match {
    const gh_route_cfg *route;
    gh_param params[GH_MAX_PARAMS];
    size_t nparams;
    gh_str matched_prefix;       /* the part of the path the prefix matched (strip_prefix) */
    uint32_t allow;              /* GH_ROUTE_METHOD: GH_M_* bits of the routes that matched the path */
    char allow_text[128];        /* GH_ROUTE_METHOD: "GET, HEAD, POST" for the Allow header */
} gh_route_match;

typedef struct gh_router gh_router;

gh_router *gh_router_build(const gh_config *cfg, gh_diag *diag);   /* NULL on error */
void gh_router_free(gh_router *r);
int gh_router_match(const gh_router *r, const gh_route_request *req, gh_route_match *out);
/* Regex routes keep one PCRE2 match block per thread, created on the
 * thread's first regex match and freed when the thread exits; this frees it
 * earlier (optional: for leak checkers on the main thread, tests). */
void gh_router_thread_done(void);

/* Routes in precedence order (for `gatehouse routes` and explain). */
size_t gh_router_count(const gh_router *r);
const gh_route_cfg *gh_router_at(const gh_router *r, size_t i);

/* Human description of why a route matched, for `explain` ("host api.example.com
 * (exact), prefix /users, methods GET|POST"). Writes into buf; values that
 * came from ${ENV} are shown as "***". */
void gh_router_describe(const gh_config *cfg, const gh_route_cfg *route, char *buf, size_t cap);

/* The route's target in words ("upstream users", "respond 200", "versions
 * 1, 2 (default 2)"); ${ENV} values as "***". Returns buf. */
const char *gh_route_target_describe(const gh_config *cfg, const gh_route_cfg *r, char *buf, size_t cap);
/* "version 2: upstream b, deprecated 2025-01-01T00:00:00Z (past), preview
 * for group beta" (without its plugins). Returns buf. */
const char *gh_version_describe(const gh_config *cfg, const gh_version_cfg *v, char *buf, size_t cap);
/* ", deprecated 2025-01-01T00:00:00Z (past)" for a date (Unix seconds), ""
 * for GH_NO_DATE; returns the length written. */
size_t gh_date_describe(char *buf, size_t cap, const char *what, int64_t t);

/* ---- rewrite ---- */
/* The path to forward for a matched route: strip_prefix, prefix, or a path
 * template filled from params (SPEC §4). Writes into out (cap bytes) with a
 * terminating NUL; returns the length, or (size_t)-1 if length + 1 > cap. */
size_t gh_rewrite_path(const gh_route_match *m, gh_str path, char *out, size_t cap);

#endif
