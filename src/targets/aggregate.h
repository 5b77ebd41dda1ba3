/* aggregate.h — the `aggregate` target (SPEC §7.1): one answer built from
 * several upstream calls made in parallel as sub-requests (server/subreq.h). */
#ifndef GH_TARGETS_AGGREGATE_H
#define GH_TARGETS_AGGREGATE_H
#include "config/config.h"
#include "http/exchange.h"
#include "route/route.h"

void gh_target_aggregate(gh_exchange *ex, const gh_route_cfg *route, const gh_route_match *m);

/* Backend b's path+query for this request: {name} from the match's
 * parameters, else from the request's query parameter of that name (else
 * empty); values percent-encoded (a {rest*} parameter keeps its '/').
 * In ex's arena; {NULL, 0} when out of memory. Dry runs print it too. */
gh_str gh_aggregate_path(gh_exchange *ex, const gh_backend_cfg *b, const gh_route_match *m);

#endif
