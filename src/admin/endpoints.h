/* endpoints.h — what the admin API's endpoint files share: each endpoint
 * lives in its own file under admin/ and is listed once in admin.c's table. */
#ifndef GH_ADMIN_ENDPOINTS_H
#define GH_ADMIN_ENDPOINTS_H
#include <jansson.h>
#include <stdint.h>
#include "http/exchange.h"

/* Sends j (taking it) as an application/json response body. */
void gh_admin_send_json(gh_exchange *ex, int status, json_t *j);
/* Unix seconds as RFC 3339 ("2026-12-07T10:56:37Z"). */
void gh_admin_rfc3339(int64_t t, char out[32]);

/* The endpoints that live in their own files. */
void gh_admin_upstreams(gh_exchange *ex);   /* GET /api/upstreams */
void gh_admin_versions(gh_exchange *ex);    /* GET /api/versions */
void gh_admin_config(gh_exchange *ex);      /* GET /api/config */
void gh_admin_metrics(gh_exchange *ex);     /* GET /metrics */
void gh_admin_stats(gh_exchange *ex);       /* GET /api/stats */
void gh_admin_cache_purge(gh_exchange *ex); /* DELETE /api/cache */
/* The last reload's result ({"result","at","errors"}), or JSON null. */
json_t *gh_admin_last_reload(void);

#endif
