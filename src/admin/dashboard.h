/* dashboard.h — the live dashboard's files, embedded at build time
 * (scripts/embed-assets.sh generates the table from src/admin/dashboard/). */
#ifndef GH_ADMIN_DASHBOARD_H
#define GH_ADMIN_DASHBOARD_H
#include <stdbool.h>
#include <stddef.h>
#include "http/exchange.h"

typedef struct gh_dashboard_asset {
    const char *path;             /* "/" or "/dashboard/NAME" */
    const char *content_type;
    const char *etag;             /* strong, quoted: a hash of the bytes */
    const unsigned char *data;
    size_t len;
} gh_dashboard_asset;

extern const gh_dashboard_asset gh_dashboard_assets[];
extern const unsigned gh_dashboard_nassets;

/* The asset served at path, or NULL. */
const gh_dashboard_asset *gh_dashboard_find(const char *path, size_t len);

/* Whether an If-None-Match value names etag (weak comparison, RFC 9110
 * §13.1.2; "*" matches). */
bool gh_dashboard_etag_matches(const char *inm, size_t len, const char *etag);

/* GET/HEAD / and /dashboard/...: the asset with its ETag (304 when the
 * client has it), no-cache, and a CSP that allows only the admin origin. */
void gh_admin_dashboard(gh_exchange *ex);

#endif
