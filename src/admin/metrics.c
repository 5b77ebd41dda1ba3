/* metrics.c — GET /metrics: the registry's families plus the gauges read
 * from the running configuration at scrape time (Prometheus text 0.0.4). */
#include "version.h"
#include "admin/endpoints.h"
#include <stdlib.h>
#include <string.h>
#include "http/status.h"
#include "observe/callers.h"
#include "observe/metrics.h"
#include "observe/metrics_render.h"
#include "plugins/plugin.h"
#include "server/worker.h"

static void upstream_gauges(gh_text *t, gh_snapshot *s, uint64_t now)
{
    const gh_config *cfg = s->cfg;
    gh_metrics_family(t, "gatehouse_upstream_target_up", "gauge",
                      "1 when the target takes traffic (not ejected, not failed by health checks).");
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        const gh_upstream_cfg *up = &cfg->upstreams[u];
        gh_upstream_rt *rt = gh_balance_upstream(s->balancer, u);
        for (size_t i = 0; rt && i < up->ntargets; i++) {
            gh_text_printf(t, "gatehouse_upstream_target_up{upstream=\"");
            gh_metrics_label(t, up->name.p);
            gh_text_printf(t, "\",target=\"");
            gh_metrics_label(t, up->targets[i].address.p);
            gh_text_printf(t, "\"} %d\n", gh_target_up(rt->ts[i], up, now) ? 1 : 0);
        }
    }
    gh_metrics_family(t, "gatehouse_upstream_ejections_total", "counter",
                      "Times passive health checks ejected the target.");
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        const gh_upstream_cfg *up = &cfg->upstreams[u];
        gh_upstream_rt *rt = gh_balance_upstream(s->balancer, u);
        for (size_t i = 0; rt && i < up->ntargets; i++) {
            gh_text_printf(t, "gatehouse_upstream_ejections_total{upstream=\"");
            gh_metrics_label(t, up->name.p);
            gh_text_printf(t, "\",target=\"");
            gh_metrics_label(t, up->targets[i].address.p);
            gh_text_printf(t, "\"} %llu\n", (unsigned long long)atomic_load(&rt->ts[i]->ejections));
        }
    }
    gh_metrics_family(t, "gatehouse_circuit_state", "gauge",
                      "Circuit breaker state by upstream: 0 closed, 1 open, 2 half-open.");
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        gh_upstream_rt *rt = gh_balance_upstream(s->balancer, u);
        if (!rt || !rt->circuit)
            continue;   /* no circuit_breaker configured */
        gh_text_printf(t, "gatehouse_circuit_state{upstream=\"");
        gh_metrics_label(t, cfg->upstreams[u].name.p);
        gh_text_printf(t, "\"} %d\n", gh_circuit_state(rt->circuit));
    }
}

static void version_sample(void *arg, const char *route, const char *version, const char *consumer, uint64_t total)
{
    gh_text *t = arg;
    gh_text_printf(t, "gatehouse_version_requests_total{route=\"");
    gh_metrics_label(t, route);
    gh_text_printf(t, "\",version=\"");
    gh_metrics_label(t, version);
    gh_text_printf(t, "\",consumer=\"");
    gh_metrics_label(t, consumer);
    gh_text_printf(t, "\"} %llu\n", (unsigned long long)total);
}

void gh_admin_metrics(gh_exchange *ex)
{
    gh_snapshot *s = gh_pin_snapshot(ex->pin);
    gh_text t = { 0 };
    const char *names[GH_PLUGIN_COUNT];
    for (int i = 0; i < GH_PLUGIN_COUNT; i++)
        names[i] = gh_plugin_registry[i]->name;
    gh_metrics_render(&t, names);
    upstream_gauges(&t, s, gh_now_ms(ex->env));
    gh_metrics_family(&t, "gatehouse_version_requests_total", "counter",
                      "Requests served by a version of a versioned route, by consumer (API lifecycle).");
    if (!gh_callers_totals(version_sample, &t))
        t.oom = true;
    gh_metrics_family(&t, "gatehouse_connections", "gauge", "Client connections by state.");
    gh_text_printf(&t, "gatehouse_connections{state=\"open\"} %d\n", atomic_load(&gh_open_connections));
    gh_metrics_family(&t, "gatehouse_config_revision", "gauge",
                      "etcd revision of the configuration in use (the reload generation for a file).");
    gh_text_printf(&t, "gatehouse_config_revision %llu\n",
                   (unsigned long long)(s->cfg->revision ? (uint64_t)s->cfg->revision : s->generation));
    gh_metrics_family(&t, "gatehouse_info", "gauge", "The running gatehouse: always 1.");
    gh_text_printf(&t, "gatehouse_info{version=\"");
    gh_metrics_label(&t, GH_VERSION);
    gh_text_printf(&t, "\"} 1\n");
    char *body = t.oom ? NULL : gh_arena_strndup(&ex->arena, t.p, t.len);
    free(t.p);
    if (!body) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    static const gh_header ct = { "Content-Type", "text/plain; version=0.0.4; charset=utf-8", 12, 40 };
    gh_respond(ex, 200, &ct, 1, body, t.len);
}
