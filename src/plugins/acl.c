/* acl.c — allow/deny by consumer group (SPEC §5.2), after authentication.
 * A deny group wins; with an allow list, a consumer in none of its groups
 * (or a request without a consumer) is refused with 403. */
#include <stdio.h>
#include "plugins/plugin.h"

static bool member(const gh_consumer_cfg *c, const gh_str *groups, size_t n)
{
    for (size_t i = 0; c && i < c->ngroups; i++)
        for (size_t k = 0; k < n; k++)
            if (gh_str_eq(c->groups[i], groups[k]))
                return true;
    return false;
}

static int acl_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    const gh_acl_cfg *c = (const gh_acl_cfg *)conf;
    const gh_consumer_cfg *who = run->consumer;
    if (member(who, c->deny, c->ndeny) || (c->nallow && !member(who, c->allow, c->nallow))) {
        char detail[160];
        if (who)
            snprintf(detail, sizeof(detail), "consumer %.*s is not allowed here", (int)(who->name.len > 64 ? 64 : who->name.len),
                     who->name.p);
        else
            snprintf(detail, sizeof(detail), "this route is for identified consumers only");
        return gh_plugin_forbidden(run, detail);
    }
    return GH_PLUGIN_NEXT;
}

static void list(char *buf, size_t cap, size_t *n, const char *what, const gh_str *g, size_t ng)
{
    for (size_t i = 0; i < ng && *n + 1 < cap; i++) {
        int w = snprintf(buf + *n, cap - *n, "%s%s%.*s", *n ? (i ? "," : "; ") : "", i ? "" : what,
                         (int)g[i].len, g[i].p);
        if (w > 0)
            *n += (size_t)w < cap - *n ? (size_t)w : cap - *n - 1;
    }
}

static void acl_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    const gh_acl_cfg *c = (const gh_acl_cfg *)conf;
    size_t n = 0;
    buf[0] = '\0';
    list(buf, cap, &n, "allow ", c->allow, c->nallow);
    list(buf, cap, &n, "deny ", c->deny, c->ndeny);
}

const gh_plugin_ops gh_acl_plugin = { .name = "acl", .request = acl_request, .describe = acl_describe };
