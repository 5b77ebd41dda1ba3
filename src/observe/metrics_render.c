/* metrics_render.c — the registry as Prometheus text (format 0.0.4). */
#include "observe/metrics_render.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "observe/metrics.h"

void gh_metrics_label(gh_text *t, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            gh_text_printf(t, "\\%c", *v);
        else if (*v == '\n')
            gh_text_printf(t, "\\n");
        else
            gh_text_printf(t, "%c", *v);
    }
}

void gh_metrics_family(gh_text *t, const char *name, const char *type, const char *help)
{
    gh_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name_bucket{label="value",le=...} cumulative, then _sum (seconds) and _count. */
static void histogram(gh_text *t, const char *name, const char *label, const char *value, const gh_metrics_hist *h)
{
    uint64_t cum = 0;
    for (int b = 0; b <= GH_METRICS_NBOUNDS; b++) {
        cum += h->b[b];
        gh_text_printf(t, "%s_bucket{%s=\"", name, label);
        gh_metrics_label(t, value);
        if (b < GH_METRICS_NBOUNDS)
            gh_text_printf(t, "\",le=\"%g\"} %llu\n", gh_metrics_bounds_us[b] / 1e6, (unsigned long long)cum);
        else
            gh_text_printf(t, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    gh_text_printf(t, "%s_sum{%s=\"", name, label);
    gh_metrics_label(t, value);
    gh_text_printf(t, "\"} %llu.%06llu\n", (unsigned long long)(h->sum_us / 1000000),
                    (unsigned long long)(h->sum_us % 1000000));
    gh_text_printf(t, "%s_count{%s=\"", name, label);
    gh_metrics_label(t, value);
    gh_text_printf(t, "\"} %llu\n", (unsigned long long)h->count);
}

/* "name{route=\"r\"" then the caller closes the braces. */
static void route_sample(gh_text *t, const char *name, const char *route)
{
    gh_text_printf(t, "%s{route=\"", name);
    gh_metrics_label(t, route);
    gh_text_printf(t, "\"");
}

void gh_metrics_render(gh_text *t, const char *const *plugin_names)
{
    uint32_t nr = gh_metrics_route_count();
    gh_metrics_route *rs = calloc(nr ? nr : 1, sizeof(*rs));
    if (!rs) {
        t->oom = true;
        return;
    }
    for (uint32_t i = 0; i < nr; i++)
        gh_metrics_route_read(i, &rs[i]);

    gh_metrics_family(t, "gatehouse_requests_total", "counter",
                      "Requests answered on the public listeners, by route, method and HTTP status.");
    for (uint32_t i = 0; i < nr; i++) {
        for (size_t k = 0; k < rs[i].ncodes; k++) {
            route_sample(t, "gatehouse_requests_total", gh_metrics_route_name(i));
            gh_text_printf(t, ",method=\"%s\",code=\"%u\"} %llu\n", gh_metrics_method_name(rs[i].codes[k].method),
                            rs[i].codes[k].status, (unsigned long long)rs[i].codes[k].n);
        }
    }
    gh_metrics_family(t, "gatehouse_request_duration_seconds", "histogram",
                      "Time from the request head received to the response end, by route.");
    for (uint32_t i = 0; i < nr; i++)
        if (i > 0 || rs[i].requests)
            histogram(t, "gatehouse_request_duration_seconds", "route", gh_metrics_route_name(i), &rs[i].duration);
    gh_metrics_family(t, "gatehouse_rate_limited_total", "counter", "Requests refused with 429 rate_limited, by route.");
    for (uint32_t i = 1; i < nr; i++) {
        route_sample(t, "gatehouse_rate_limited_total", gh_metrics_route_name(i));
        gh_text_printf(t, "} %llu\n", (unsigned long long)rs[i].rate_limited);
    }
    gh_metrics_family(t, "gatehouse_cache_total", "counter", "Responses by cache result, by route.");
    for (uint32_t i = 0; i < nr; i++) {
        for (int c = 0; c < GH_MCACHE_N; c++) {
            if (!rs[i].cache[c])
                continue;
            route_sample(t, "gatehouse_cache_total", gh_metrics_route_name(i));
            gh_text_printf(t, ",result=\"%s\"} %llu\n", gh_metrics_cache_names[c], (unsigned long long)rs[i].cache[c]);
        }
    }
    free(rs);

    gh_metrics_family(t, "gatehouse_upstream_duration_seconds", "histogram",
                      "Time from the upstream call's start to the upstream's response head, by upstream.");
    uint32_t nu = gh_metrics_upstream_count();
    for (uint32_t i = 1; i < nu; i++) {
        gh_metrics_hist h;
        gh_metrics_upstream_read(i, &h);
        histogram(t, "gatehouse_upstream_duration_seconds", "upstream", gh_metrics_upstream_name(i), &h);
    }
    gh_metrics_family(t, "gatehouse_plugin_duration_seconds", "histogram", "Time each plugin step took, by plugin.");
    for (int p = 0; p < GH_PLUGIN_COUNT; p++) {
        gh_metrics_hist h;
        gh_metrics_plugin_read(p, &h);
        if (h.count)
            histogram(t, "gatehouse_plugin_duration_seconds", "plugin", plugin_names[p], &h);
    }
    gh_metrics_family(t, "gatehouse_redis_errors_total", "counter",
                      "Redis failures: lost or refused connections and timed-out commands.");
    gh_text_printf(t, "gatehouse_redis_errors_total %llu\n", (unsigned long long)gh_metrics_redis_errors());
    gh_metrics_reloads r;
    gh_metrics_reloads_read(&r);
    gh_metrics_family(t, "gatehouse_config_reloads_total", "counter", "Configuration reloads, by result.");
    gh_text_printf(t, "gatehouse_config_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)r.ok);
    gh_text_printf(t, "gatehouse_config_reloads_total{result=\"error\"} %llu\n", (unsigned long long)r.error);
    gh_metrics_reloads_free(&r);
}
