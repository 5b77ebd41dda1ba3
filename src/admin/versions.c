/* versions.c — GET /api/versions: every versioned route, its versions with
 * their lifecycle (state, dates, docs) and who called each in the last 24
 * hours (observe/callers.h), so a deprecated version's remaining callers
 * are known before its sunset. */
#include <time.h>
#include "admin/endpoints.h"
#include "observe/callers.h"
#include "server/worker.h"
#include "targets/versions.h"

static json_t *date_or_null(int64_t t)
{
    char buf[32];
    if (t == GH_NO_DATE)
        return json_null();
    gh_admin_rfc3339(t, buf);
    return json_string(buf);
}

static json_t *version_json(const gh_config *cfg, const gh_route_cfg *r, const gh_version_cfg *v, int64_t now)
{
    gh_caller_sum callers[GH_CALLERS_MAX + 1];
    size_t n = gh_callers_read(r->name, v->name, now, callers, GH_CALLERS_MAX + 1);
    json_t *list = json_array();
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char seen[32];
        gh_admin_rfc3339(callers[i].last_seen, seen);
        total += callers[i].requests_24h;
        json_array_append_new(list, json_pack("{s:s, s:I, s:s}", "consumer", callers[i].consumer, "requests_24h",
                                              (json_int_t)callers[i].requests_24h, "last_seen", seen));
    }
    json_t *days = json_null();
    if (v->sunset != GH_NO_DATE)   /* whole days left, rounded up; 0 once retired */
        days = json_integer(v->sunset > now ? (json_int_t)((v->sunset - now + 86399) / 86400) : 0);
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:o}", "name", v->name.p, "state",
                     gh_versions_state(v, now), "deprecated", date_or_null(v->deprecated), "sunset",
                     date_or_null(v->sunset), "days_to_sunset", days, "docs",
                     v->docs.len ? json_string(gh_config_show(cfg, v->docs).p) : json_null(), "requests_24h",
                     (json_int_t)total, "callers", list);
}

void gh_admin_versions(gh_exchange *ex)
{
    gh_snapshot *s = gh_pin_snapshot(ex->pin);   /* the one this request holds */
    const gh_config *cfg = s->cfg;
    int64_t now = (int64_t)time(NULL);
    json_t *routes = json_array();
    size_t n = gh_router_count(s->router);
    for (size_t i = 0; i < n; i++) {   /* in precedence order, like /api/routes */
        const gh_route_cfg *r = gh_router_at(s->router, i);
        if (r->target != GH_TARGET_VERSIONS || !r->versions)
            continue;
        const gh_versions_cfg *vs = r->versions;
        json_t *versions = json_array();
        for (size_t k = 0; k < vs->n; k++)
            json_array_append_new(versions, version_json(cfg, r, &vs->list[k], now));
        json_array_append_new(routes, json_pack("{s:s, s:o, s:o}", "route", gh_config_show(cfg, r->name).p,
                                                "default", vs->def ? json_string(vs->def->name.p) : json_null(),
                                                "versions", versions));
    }
    gh_admin_send_json(ex, 200, json_pack("{s:o}", "routes", routes));
}
