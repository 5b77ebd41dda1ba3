/* batch.h — the `batch` target (SPEC §7.2): a POST body listing requests,
 * each run as a sub-request through the router and the whole plugin chain
 * (server/subreq.h), answered together in request order. */
#ifndef GH_TARGETS_BATCH_H
#define GH_TARGETS_BATCH_H
#include "config/config.h"
#include "http/exchange.h"

void gh_target_batch(gh_exchange *ex, const gh_route_cfg *route);

#endif
