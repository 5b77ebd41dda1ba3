/* metrics_render.h — the Prometheus text exposition (format 0.0.4) of the
 * registry (observe/metrics.h), and the pieces the admin endpoint uses to
 * add the gauges it reads from the running configuration. */
#ifndef GH_OBSERVE_METRICS_RENDER_H
#define GH_OBSERVE_METRICS_RENDER_H
#include <stdbool.h>
#include <stddef.h>

/* A growing text buffer (malloc'd; free t->p). oom: a write failed. */
typedef struct gh_mtext {
    char *p;
    size_t len, cap;
    bool oom;
} gh_mtext;

void gh_mtext_printf(gh_mtext *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A label value, escaped (\\, \", \n). */
void gh_mtext_label(gh_mtext *t, const char *value);
/* "# HELP name help\n# TYPE name type\n" */
void gh_metrics_family(gh_mtext *t, const char *name, const char *type, const char *help);

/* Every family the registry keeps (requests, durations, rate limits,
 * cache, plugins, Redis errors, reloads). plugin_names: by plugin id
 * (GH_PLUGIN_COUNT of them; observe/ sits below plugins/). */
void gh_metrics_render(gh_mtext *t, const char *const *plugin_names);

#endif
