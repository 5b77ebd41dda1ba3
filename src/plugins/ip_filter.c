/* ip_filter.c — allow/deny by client address (SPEC §5.2), the address
 * after trusted_proxies (ex->client). Deny wins; with an allow list, an
 * address outside it is refused. */
#include <stdio.h>
#include "plugins/plugin.h"

static int ip_filter_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    const gh_ip_filter_cfg *c = (const gh_ip_filter_cfg *)conf;
    const char *client = run->ex->client;
    if ((c->ndeny && gh_cidr_list_contains(c->deny, c->ndeny, client)) ||
        (c->nallow && !gh_cidr_list_contains(c->allow, c->nallow, client))) {
        char detail[96];
        snprintf(detail, sizeof(detail), "address %s is not allowed here", client);
        return gh_plugin_forbidden(run, detail);
    }
    return GH_PLUGIN_NEXT;
}

static void ip_filter_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    const gh_ip_filter_cfg *c = (const gh_ip_filter_cfg *)conf;
    snprintf(buf, cap, "%zu allowed, %zu denied networks", c->nallow, c->ndeny);
}

const gh_plugin_ops gh_ip_filter_plugin = {
    .name = "ip_filter", .request = ip_filter_request, .describe = ip_filter_describe,
};
