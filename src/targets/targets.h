/* targets.h — targets that answer locally (SPEC §4): a fixed response, an
 * echo of the request as it would be forwarded, a redirect. */
#ifndef GH_TARGETS_TARGETS_H
#define GH_TARGETS_TARGETS_H
#include "config/config.h"
#include "http/exchange.h"
#include "route/route.h"

void gh_target_respond(gh_exchange *ex, const gh_route_cfg *route);
void gh_target_echo(gh_exchange *ex, const gh_route_cfg *route, gh_str path_q);
void gh_target_redirect(gh_exchange *ex, const gh_route_cfg *route, const gh_route_match *m);

#endif
