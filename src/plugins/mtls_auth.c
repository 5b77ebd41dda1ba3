/* mtls_auth.c — the verified client certificate's subject (RFC 4514, from
 * the TLS handshake, never from a header) names a consumer (SPEC §5.1). */
#include <stdio.h>
#include "plugins/plugin.h"

static const char challenge[] = "ClientCertificate realm=\"gatehouse\"";

static int mtls_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    gh_exchange *ex = run->ex;
    if (run->authenticated)
        return GH_PLUGIN_NEXT;
    if (ex->client_cert.len == 0) {
        gh_plugin_no_credential(run, challenge);
        return GH_PLUGIN_NEXT;
    }
    const gh_consumer_cfg *c = gh_consumers_by_subject(run->consumers, ex->client_cert.p, ex->client_cert.len);
    if (!c) {
        char detail[320];
        snprintf(detail, sizeof(detail), "client certificate %.*s is not a consumer",
                 (int)(ex->client_cert.len > 256 ? 256 : ex->client_cert.len), ex->client_cert.p);
        return gh_plugin_unauthorized(run, challenge, detail);
    }
    gh_plugin_authenticated(run, c);
    return GH_PLUGIN_NEXT;
}

const gh_plugin_ops gh_mtls_auth_plugin = { .name = "mtls_auth", .request = mtls_request };
