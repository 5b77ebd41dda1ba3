/* versions.h — the `versions` target (SPEC §6): which version of a route
 * serves a request. The dispatcher asks three questions:
 *   1. before routing: does the path start with a version segment (/v2/...)?
 *   2. after routing:  which version (from, default, sunset, preview header,
 *      canary) — errors are answered here;
 *   3. after the version's plugins: the canary by consumer and the preview
 *      group, which need the identity the plugins established.
 * The chosen version's route (gh_version_cfg.route) then runs like any
 * route. */
#ifndef GH_TARGETS_VERSIONS_H
#define GH_TARGETS_VERSIONS_H
#include <stdbool.h>
#include "config/config.h"
#include "http/exchange.h"

/* "/v2/orders/7" -> name "2", rest "/orders/7" ("/v2" -> rest "/"). The
 * name must start with a digit (so /video is not a version). */
bool gh_versions_path_segment(gh_str path, gh_str *name, gh_str *rest);
/* Is name one of the route's versions, or would it be answered
 * version_unknown (digits first)? Decides whether /vN/... belongs to it. */
bool gh_versions_claims_path(const gh_route_cfg *route);

/* The version the request names: the first source of `from` that has one
 * (enum gh_version_source), or 0. buf (query.len + 1 bytes) holds a
 * decoded query value. Pure: explain uses it too. */
int gh_versions_requested(const gh_versions_cfg *vs, const gh_header *h, size_t nh, gh_str query,
                          gh_str path_version, char *buf, gh_str *out);
/* The version called name ("v2" finds "2" too), or NULL. */
const gh_version_cfg *gh_versions_find(const gh_versions_cfg *vs, gh_str name);

typedef struct gh_version_pick {
    const gh_version_cfg *v;      /* the version to serve */
    const gh_version_cfg *asked;  /* the version asked for (or the default), before the canary */
    int source;                   /* where it was asked (enum gh_version_source), 0 = the default */
    bool canary_tried;            /* asked is the canary's `of`: its share was applied */
    bool by_canary;               /* the canary moved the request here */
    bool decide_later;            /* canary with sticky: consumer: after the plugins */
    bool announce_later;          /* Api-Version & co. wait for gh_versions_confirm */
} gh_version_pick;

/* Step 2. false: the exchange was answered (400, 404, 410). path_version:
 * the name from the path segment, if the dispatcher found one. */
bool gh_versions_pick(gh_exchange *ex, const gh_route_cfg *route, gh_str path_version, gh_version_pick *pick);
/* Step 3. false: answered (404 for a preview the caller may not see). */
bool gh_versions_confirm(gh_exchange *ex, const gh_route_cfg *route, gh_version_pick *pick);

/* A version's lifecycle at now, as the admin API names it: "sunset" once
 * its sunset passed, "deprecated" once its deprecation date passed or
 * while a sunset is scheduled, "preview", else "active". */
const char *gh_versions_state(const gh_version_cfg *v, int64_t now);

/* The canary's bucket of a sticky key: 0..9999, stable across processes. */
uint32_t gh_versions_bucket(gh_str route, gh_str key);

#endif
