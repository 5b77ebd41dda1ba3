/* stats.c — GET /api/stats: the registry summed per route, for the
 * dashboard and `gatehouse status` (one JSON document, compact). */
#include "admin/endpoints.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "admin/admin.h"
#include "observe/metrics.h"
#include "server/worker.h"

json_t *gh_admin_last_reload(void)
{
    gh_metrics_reloads r;
    gh_metrics_reloads_read(&r);
    if (!r.any)
        return json_null();
    char at[32];
    gh_admin_rfc3339(r.last_at, at);
    json_t *errors = json_array();
    for (size_t i = 0; i < r.nlast_errors; i++)
        json_array_append_new(errors, json_string(r.last_errors[i]));
    gh_metrics_reloads_free(&r);
    json_t *j = json_pack("{s:s, s:s, s:o}", "result", r.last_ok ? "ok" : "error", "at", at, "errors", errors);
    if (r.last_revision)
        json_object_set_new(j, "revision", json_integer((json_int_t)r.last_revision));
    return j;
}

static json_t *number_ms(uint64_t us)
{
    return us % 1000 ? json_real((double)us / 1000.0) : json_integer((json_int_t)(us / 1000));
}

static json_t *route_json(const char *name, const gh_metrics_route *r)
{
    json_t *lat = json_array();
    for (int b = 0; b <= GH_METRICS_NBOUNDS; b++)
        json_array_append_new(lat, json_integer((json_int_t)r->duration.b[b]));
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:o, s:o}", "route", name, "requests", (json_int_t)r->requests,
                     "client_errors", (json_int_t)r->client_errors, "errors", (json_int_t)r->errors,
                     "rate_limited", (json_int_t)r->rate_limited, "latency", lat, "latency_sum_ms",
                     number_ms(r->duration.sum_us));
}

static json_t *recent_errors(void)
{
    json_t *list = json_array();
    gh_metrics_error *e = malloc(GH_METRICS_RECENT * sizeof(*e));
    size_t n = e ? gh_metrics_recent_errors(e, GH_METRICS_RECENT) : 0;
    for (size_t i = 0; i < n; i++) {
        char t[32], when[40];
        gh_admin_rfc3339(e[i].time_ms / 1000, t);
        snprintf(when, sizeof(when), "%.19s.%03dZ", t, (int)(e[i].time_ms % 1000));
        json_array_append_new(list, json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "time", when, "status",
                                              e[i].status, "code", e[i].code, "route", e[i].route, "method",
                                              e[i].method, "path", e[i].path, "request_id", e[i].request_id));
    }
    free(e);
    return list;
}

void gh_admin_stats(gh_exchange *ex)
{
    gh_snapshot *s = gh_pin_snapshot(ex->pin);
    json_t *buckets = json_array();
    for (int b = 0; b < GH_METRICS_NBOUNDS; b++)
        json_array_append_new(buckets, number_ms(gh_metrics_bounds_us[b]));
    json_t *routes = json_array();
    gh_metrics_route total = { 0 }, r;
    size_t n = gh_router_count(s->router);
    for (size_t i = 0; i < n; i++) {
        const gh_route_cfg *rc = gh_router_at(s->router, i);
        if (rc->metric_id)
            gh_metrics_route_read(rc->metric_id, &r);
        else
            memset(&r, 0, sizeof(r));
        json_array_append_new(routes, route_json(rc->name.p, &r));
        total.requests += r.requests;
        total.client_errors += r.client_errors;
        total.errors += r.errors;
        total.rate_limited += r.rate_limited;
    }
    gh_metrics_route_read(0, &r);   /* matched no route */
    if (r.requests) {
        json_array_append_new(routes, route_json("", &r));
        total.requests += r.requests;
        total.client_errors += r.client_errors;
        total.errors += r.errors;
    }
    int64_t now = (int64_t)time(NULL);
    char t[32], loaded[32];
    gh_admin_rfc3339(now, t);
    gh_admin_rfc3339(s->loaded_at, loaded);
    json_t *j = json_pack("{s:s, s:I, s:o, s:{s:I, s:I, s:I, s:I}, s:o, s:{s:i}, s:{s:I, s:s, s:s, s:o}, s:o}",
                          "time", t, "uptime_seconds", (json_int_t)(now - gh_admin_started_at), "latency_buckets_ms",
                          buckets, "totals", "requests", (json_int_t)total.requests, "client_errors",
                          (json_int_t)total.client_errors, "errors", (json_int_t)total.errors, "rate_limited",
                          (json_int_t)total.rate_limited, "routes", routes, "connections", "open",
                          atomic_load(&gh_open_connections), "config", "generation", (json_int_t)s->generation,
                          "loaded_at", loaded, "source", s->cfg->file ? s->cfg->file : "embedded demo",
                          "last_reload", gh_admin_last_reload(), "recent_errors", recent_errors());
    if (j && s->cfg->revision)   /* the etcd revision in effect, for the dashboard */
        json_object_set_new(json_object_get(j, "config"), "revision", json_integer((json_int_t)s->cfg->revision));
    gh_admin_send_json(ex, 200, j);
}
