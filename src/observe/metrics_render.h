/* metrics_render.h — the Prometheus text exposition (format 0.0.4) of the
 * registry (observe/metrics.h), and the pieces the admin endpoint uses to
 * add the gauges it reads from the running configuration. */
#ifndef GH_OBSERVE_METRICS_RENDER_H
#define GH_OBSERVE_METRICS_RENDER_H
#include <stdbool.h>
#include <stddef.h>
#include "core/text.h"

/* A label value, escaped (\\, \", \n). */
void gh_metrics_label(gh_text *t, const char *value);
/* "# HELP name help\n# TYPE name type\n" */
void gh_metrics_family(gh_text *t, const char *name, const char *type, const char *help);

/* Every family the registry keeps (requests, durations, rate limits,
 * cache, plugins, Redis errors, reloads). plugin_names: by plugin id
 * (GH_PLUGIN_COUNT of them; observe/ sits below plugins/). */
void gh_metrics_render(gh_text *t, const char *const *plugin_names);

#endif
