/* metrics.c — GET /metrics: the registry's families plus the gauges read
 * from the running configuration at scrape time (Prometheus text 0.0.4). */
#include "version.h"
#include "admin/endpoints.h"
#include <stdlib.h>
#include <string.h>
#include "http/status.h"
#include "observe/metrics.h"
#include "observe/metrics_render.h"
#include "plugins/plugin.h"
#include "server/worker.h"

static void upstream_gauges(gh_mtext *t, gh_snapshot *s, uint64_t now)
{
    const gh_config *cfg = s->cfg;
    gh_metrics_family(t, "gatehouse_upstream_target_up", "gauge",
                      "1 when the target takes traffic (not ejected, not failed by health checks).");
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        const gh_upstream_cfg *up = &cfg->upstreams[u];
        gh_upstream_rt *rt = gh_balance_upstream(s->balancer, u);
        for (size_t i = 0; rt && i < up->ntargets; i++) {
            gh_mtext_printf(t, "gatehouse_upstream_target_up{upstream=\"");
            gh_mtext_label(t, up->name.p);
            gh_mtext_printf(t, "\",target=\"");
            gh_mtext_label(t, up->targets[i].address.p);
            gh_mtext_printf(t, "\"} %d\n", gh_target_up(rt->ts[i], up, now) ? 1 : 0);
        }
    }
    gh_metrics_family(t, "gatehouse_upstream_ejections_total", "counter",
                      "Times passive health checks ejected the target.");
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        const gh_upstream_cfg *up = &cfg->upstreams[u];
        gh_upstream_rt *rt = gh_balance_upstream(s->balancer, u);
        for (size_t i = 0; rt && i < up->ntargets; i++) {
            gh_mtext_printf(t, "gatehouse_upstream_ejections_total{upstream=\"");
            gh_mtext_label(t, up->name.p);
            gh_mtext_printf(t, "\",target=\"");
            gh_mtext_label(t, up->targets[i].address.p);
            gh_mtext_printf(t, "\"} %llu\n", (unsigned long long)atomic_load(&rt->ts[i]->ejections));
        }
    }
    gh_metrics_family(t, "gatehouse_circuit_state", "gauge",
                      "Circuit breaker state by upstream: 0 closed, 1 open, 2 half-open.");
    for (size_t u = 0; u < cfg->nupstreams; u++) {
        gh_upstream_rt *rt = gh_balance_upstream(s->balancer, u);
        if (!rt || !rt->circuit)
            continue;   /* no circuit_breaker configured */
        gh_mtext_printf(t, "gatehouse_circuit_state{upstream=\"");
        gh_mtext_label(t, cfg->upstreams[u].name.p);
        gh_mtext_printf(t, "\"} %d\n", gh_circuit_state(rt->circuit));
    }
}

void gh_admin_metrics(gh_exchange *ex)
{
    gh_snapshot *s = gh_pin_snapshot(ex->pin);
    gh_mtext t = { 0 };
    const char *names[GH_PLUGIN_COUNT];
    for (int i = 0; i < GH_PLUGIN_COUNT; i++)
        names[i] = gh_plugin_registry[i]->name;
    gh_metrics_render(&t, names);
    upstream_gauges(&t, s, gh_now_ms(ex->env));
    gh_metrics_family(&t, "gatehouse_connections", "gauge", "Client connections by state.");
    gh_mtext_printf(&t, "gatehouse_connections{state=\"open\"} %d\n", atomic_load(&gh_open_connections));
    gh_metrics_family(&t, "gatehouse_config_revision", "gauge", "etcd revision of the configuration in use (the reload generation for a file).");
    gh_mtext_printf(&t, "gatehouse_config_revision %llu\n",
                    (unsigned long long)(s->cfg->revision ? (uint64_t)s->cfg->revision : s->generation));
    gh_metrics_family(&t, "gatehouse_info", "gauge", "The running gatehouse: always 1.");
    gh_mtext_printf(&t, "gatehouse_info{version=\"");
    gh_mtext_label(&t, GH_VERSION);
    gh_mtext_printf(&t, "\"} 1\n");
    char *body = t.oom ? NULL : gh_arena_strndup(&ex->arena, t.p, t.len);
    free(t.p);
    if (!body) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    static const gh_header ct = { "Content-Type", "text/plain; version=0.0.4; charset=utf-8", 12, 40 };
    gh_respond(ex, 200, &ct, 1, body, t.len);
}
