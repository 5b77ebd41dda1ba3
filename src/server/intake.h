/* intake.h — the request's header fields as the gateway takes them in.
 *
 * One pass, run by the dispatcher once per request before routing and
 * plugins, over what the client sent: hop-by-hop fields and every field the
 * client's Connection headers name go (RFC 9110 §7.6.1), the names the
 * gateway uses to assert identity go (X-Consumer*, X-Client-Cert-Subject and
 * every jwt forward_claims name of the configuration, with '_' taken as
 * '-'), and names with '_' follow limits.underscores_in_headers. What the
 * gateway and its plugins add afterwards is therefore never removed nor
 * impersonated by anything the client wrote. */
#ifndef GH_SERVER_INTAKE_H
#define GH_SERVER_INTAKE_H
#include "config/config.h"
#include "http/exchange.h"

/* Compiled once per configuration snapshot: the identity names and the
 * underscore policy. */
typedef struct gh_intake gh_intake;

gh_intake *gh_intake_build(const gh_config *cfg);   /* NULL when out of memory */
void gh_intake_free(gh_intake *in);

enum gh_intake_result { GH_INTAKE_OK = 0, GH_INTAKE_UNDERSCORE, GH_INTAKE_NOMEM };

/* Filter ex->headers in place; sets ex->te_trailers, and keeps ex->upgrade
 * only for a WebSocket upgrade. GH_INTAKE_UNDERSCORE (policy `reject`):
 * *bad is the offending field name. */
int gh_intake_run(gh_exchange *ex, const gh_intake *in, gh_str *bad);

#endif
