/* describe.c — a route's target in words, for `gatehouse routes` and the
 * admin API's /api/routes (one wording for both). */
#include <stdio.h>
#include "route/route.h"

const char *gh_route_target_describe(const gh_config *cfg, const gh_route_cfg *r, char *buf, size_t cap)
{
    switch (r->target) {
    case GH_TARGET_UPSTREAM: snprintf(buf, cap, "upstream %s", gh_config_show(cfg, r->upstream_name).p); break;
    case GH_TARGET_RESPOND: snprintf(buf, cap, "respond %d", r->respond.status); break;
    case GH_TARGET_ECHO: snprintf(buf, cap, "echo"); break;
    case GH_TARGET_REDIRECT:
        snprintf(buf, cap, "redirect %d %s", r->redirect.status, gh_config_show(cfg, r->redirect.to).p);
        break;
    case GH_TARGET_VERSIONS: {
        const gh_versions_cfg *vs = r->versions;
        int n = snprintf(buf, cap, "versions %s (default %s", vs->names.p, vs->def ? vs->def->name.p : "none");
        if (vs->canary.to && n > 0 && (size_t)n < cap)
            snprintf(buf + n, cap - (size_t)n, "; canary %u.%02u%% of %s to %s)", vs->canary.per_10000 / 100,
                     vs->canary.per_10000 % 100, vs->canary.of->name.p, vs->canary.to->name.p);
        else if (n > 0 && (size_t)n < cap)
            snprintf(buf + n, cap - (size_t)n, ")");
        break;
    }
    default: snprintf(buf, cap, "?"); break;
    }
    return buf;
}
