/* config.c — GET /api/config: the running configuration document, secrets
 * masked (rendered once at load: config/document.c). */
#include <string.h>
#include "admin/endpoints.h"
#include "http/status.h"
#include "server/worker.h"

void gh_admin_config(gh_exchange *ex)
{
    gh_snapshot *s = gh_pin_snapshot(ex->pin);
    const char *doc = s->cfg->document;
    if (!doc) {
        gh_problem(ex, 500, "internal_error", "the configuration document is not available", NULL, 0, NULL);
        return;
    }
    static const gh_header ct = { "Content-Type", "application/json", 12, 16 };
    gh_respond(ex, 200, &ct, 1, doc, strlen(doc));   /* lives as long as the pinned snapshot */
}
