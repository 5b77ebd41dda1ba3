/* key_auth.c — API keys from a header and/or a query parameter (SPEC
 * §5.1). The key is looked up by a keyed tag of it (plugins/consumers.c),
 * so the time spent does not depend on whether, or how closely, it matches
 * a configured one. hide_credentials removes the key before forwarding. */
#include <stdio.h>
#include <string.h>
#include "http/request.h"
#include "plugins/plugin.h"

static const char challenge[] = "Key realm=\"gatehouse\"";

/* The value of query parameter `name`, percent-decoded into the arena;
 * item: the whole "name=value", to cut it out. */
static bool query_key(gh_exchange *ex, gh_str name, gh_str *value, gh_str *item)
{
    gh_str raw;
    if (!gh_query_param(ex->query, name, &raw, item))
        return false;
    char *v = gh_arena_alloc(&ex->arena, raw.len + 1);
    if (!v)
        return false;
    *value = (gh_str){ v, gh_query_decode(raw, v) };
    return true;
}

/* The query without any `name` parameter (hide_credentials: every copy). */
static void cut_query(gh_exchange *ex, gh_str name)
{
    char *q = gh_arena_alloc(&ex->arena, ex->query.len + 1);
    if (!q)
        return;
    size_t n = 0;
    const char *p = ex->query.p, *end = p + ex->query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        size_t nl = (size_t)((eq ? eq : item_end) - p);
        if (!(nl == name.len && memcmp(p, name.p, nl) == 0)) {
            if (n)
                q[n++] = '&';
            memcpy(q + n, p, (size_t)(item_end - p));
            n += (size_t)(item_end - p);
        }
        p = amp ? amp + 1 : end;
    }
    q[n] = '\0';
    ex->query = (gh_str){ q, n };
}

static int key_auth_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    const gh_key_auth_cfg *c = (const gh_key_auth_cfg *)conf;
    gh_exchange *ex = run->ex;
    const gh_header *h = c->header.len ? gh_exchange_header(ex, c->header.p, c->header.len) : NULL;
    gh_str key = { NULL, 0 }, item = { NULL, 0 };
    if (h)
        key = (gh_str){ h->value, h->value_len };
    else if (c->query.len && ex->query.len)
        query_key(ex, c->query, &key, &item);
    bool found = h || item.p;
    if (!run->authenticated) {
        if (!found) {
            gh_plugin_no_credential(run, challenge);
            return GH_PLUGIN_NEXT;
        }
        const gh_consumer_cfg *who = key.len ? gh_consumers_by_key(run->consumers, key.p, key.len) : NULL;
        if (!who)
            return gh_plugin_unauthorized(run, challenge, "invalid API key");
        gh_plugin_authenticated(run, who);
    }
    if (c->hide_credentials) {   /* every copy, wherever the key was read from */
        if (c->header.len)
            gh_exchange_remove_header(ex, c->header.p, c->header.len);
        if (c->query.len && ex->query.len)
            cut_query(ex, c->query);
    }
    return GH_PLUGIN_NEXT;
}

static void key_auth_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    const gh_key_auth_cfg *c = (const gh_key_auth_cfg *)conf;
    snprintf(buf, cap, "%s%.*s%s%s%.*s%s", c->header.len ? "header " : "", (int)c->header.len, c->header.p,
             c->header.len && c->query.len ? ", " : "", c->query.len ? "query " : "", (int)c->query.len,
             c->query.p, c->hide_credentials ? ", hidden" : "");
}

const gh_plugin_ops gh_key_auth_plugin = {
    .name = "key_auth", .request = key_auth_request, .describe = key_auth_describe,
};
