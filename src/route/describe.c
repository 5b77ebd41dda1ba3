/* describe.c — a route's target and a version in words, for `gatehouse
 * routes`, `diff` and the admin API's /api/routes (one wording for all). */
#include <stdio.h>
#include <time.h>
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
    case GH_TARGET_AGGREGATE: {
        const gh_aggregate_cfg *a = r->aggregate;
        int n = snprintf(buf, cap, "aggregate of %zu backends (timeout %llums, max_body %llu):", a->n,
                         (unsigned long long)a->timeout_ms, (unsigned long long)a->max_body);
        for (size_t i = 0; i < a->n && n > 0 && (size_t)n < cap; i++) {
            const gh_backend_cfg *b = &a->backends[i];
            n += snprintf(buf + n, cap - (size_t)n, "%s %s (%s%s%s%s)", i ? "," : "", b->key.p,
                          b->route.upstream ? gh_config_show(cfg, b->route.upstream_name).p : "",
                          b->route.upstream ? " " : "", b->path.p, b->optional ? ", optional" : "");
        }
        break;
    }
    case GH_TARGET_BATCH:
        snprintf(buf, cap, "batch (max_requests %u, concurrency %u, max_body %llu)", r->batch->max_requests,
                 r->batch->concurrency, (unsigned long long)r->batch->max_body);
        break;
    default: snprintf(buf, cap, "?"); break;
    }
    return buf;
}

size_t gh_date_describe(char *buf, size_t cap, const char *what, int64_t t)
{
    if (cap)
        buf[0] = '\0';
    if (t == GH_NO_DATE || !cap)
        return 0;
    time_t tt = (time_t)t;
    struct tm tm;
    char d[32];
    gmtime_r(&tt, &tm);
    strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = snprintf(buf, cap, ", %s %s%s", what, d, t <= (int64_t)time(NULL) ? " (past)" : "");
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

const char *gh_version_describe(const gh_config *cfg, const gh_version_cfg *v, char *buf, size_t cap)
{
    char target[512];
    int w = snprintf(buf, cap, "version %s: %s", v->name.p,
                     gh_route_target_describe(cfg, &v->route, target, sizeof(target)));
    size_t n = w < 0 ? 0 : (size_t)w < cap ? (size_t)w : cap - 1;
    n += gh_date_describe(buf + n, cap - n, "deprecated", v->deprecated);
    n += gh_date_describe(buf + n, cap - n, "sunset", v->sunset);
    if (v->preview && n < cap)
        snprintf(buf + n, cap - n, ", preview%s%s%s%s", v->preview_group.len ? " for group " : "",
                 v->preview_group.len ? v->preview_group.p : "", v->preview_header.len ? " with header " : "",
                 v->preview_header.len ? v->preview_header.p : "");
    return buf;
}
