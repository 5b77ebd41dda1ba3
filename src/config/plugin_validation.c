/* plugin_validation.c — configuration of the request_validation plugin (SPEC §5.4):
 *   request_validation: { max_body: 1MiB, content_types: [application/json], json: true,
 *                         required_headers: [X-Tenant], required_query: [page] }
 * Media types are kept lower-case without parameters; a wildcard is a
 * whole subtype (text/ followed by a star) or everything. */
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

enum { V_MAX_BODY, V_CONTENT_TYPES, V_JSON, V_HEADERS, V_QUERY, V_COUNT };
static const gh_key rv_keys[] = {
    [V_MAX_BODY] = GH_KEY_NUM("max_body", GH_V_SIZE, gh_request_validation_cfg, max_body, 1, 0),
    [V_CONTENT_TYPES] = GH_KEY_DEFER("content_types"),
    [V_JSON] = GH_KEY_VAL("json", GH_V_BOOL, gh_request_validation_cfg, json),
    [V_HEADERS] = GH_KEY_DEFER("required_headers"),
    [V_QUERY] = GH_KEY_DEFER("required_query"),
};
static const gh_section rv_section = GH_SECTION("request_validation", rv_keys);

/* "type/subtype" with RFC 9110 tokens; a star as subtype, or as both. */
static bool media_type_ok(gh_str s)
{
    const char *slash = memchr(s.p, '/', s.len);
    if (!slash)
        return false;
    gh_str type = { s.p, (size_t)(slash - s.p) }, sub = { slash + 1, s.len - type.len - 1 };
    bool any_sub = sub.len == 1 && sub.p[0] == '*';
    if (type.len == 1 && type.p[0] == '*')
        return any_sub;
    return gh_ld_is_token(type) && (any_sub || gh_ld_is_token(sub));
}

static bool listed_twice(gh_load *ld, const gh_str *items, size_t i, gh_mark at, const char *what)
{
    for (size_t k = 0; k < i; k++) {
        if (gh_str_ieq(items[k], items[i])) {
            gh_ld_error(ld, at, "request_validation %s: '%.*s' is listed twice", what, clip(items[i]), items[i].p);
            return true;
        }
    }
    return false;
}

static bool content_types(gh_load *ld, gh_request_validation_cfg *c, const gh_ynode *n)
{
    gh_mark *marks;
    if (!gh_ld_str_list(ld, n, &c->content_types, &c->ncontent_types, &marks))
        return false;
    if (c->ncontent_types == 0) {
        gh_ld_error(ld, n->mark, "request_validation content_types: list at least one media type");
        return false;
    }
    for (size_t i = 0; i < c->ncontent_types; i++) {
        gh_str *s = &c->content_types[i];
        if (memchr(s->p, ';', s->len)) {
            gh_ld_error(ld, marks[i], "request_validation content_types: '%.*s' has parameters; list the bare "
                        "media type (parameters are ignored when matching)", clip(*s), s->p);
            return false;
        }
        if (!media_type_ok(*s)) {
            gh_ld_error(ld, marks[i], "request_validation content_types: '%.*s' is not a media type "
                        "(use type/subtype, type/* or */*)", clip(*s), s->p);
            return false;
        }
        for (size_t k = 0; k < s->len; k++)
            ((char *)s->p)[k] = gh_lower(s->p[k]);
        if (listed_twice(ld, c->content_types, i, marks[i], "content_types"))
            return false;
    }
    return true;
}

static bool names(gh_load *ld, const gh_ynode *n, const char *what, bool header, gh_str **out, size_t *nout)
{
    gh_mark *marks;
    if (!gh_ld_str_list(ld, n, out, nout, &marks))
        return false;
    if (*nout == 0) {
        gh_ld_error(ld, n->mark, "request_validation %s: list at least one name", what);
        return false;
    }
    for (size_t i = 0; i < *nout; i++) {
        gh_str s = (*out)[i];
        if (header && !gh_ld_is_token(s)) {
            gh_ld_error(ld, marks[i], "request_validation %s: '%.*s' is not a valid header name", what, clip(s), s.p);
            return false;
        }
        if (!header && strpbrk(s.p, "&=#? ")) {   /* gh_ld_str copies are NUL-terminated */
            gh_ld_error(ld, marks[i], "request_validation %s: '%.*s' is not a query parameter name "
                        "(no '&', '=', '#', '?' or spaces)", what, clip(s), s.p);
            return false;
        }
        if (listed_twice(ld, *out, i, marks[i], what))
            return false;
    }
    return true;
}

bool gh_ld_request_validation(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_request_validation_cfg *c = (gh_request_validation_cfg *)conf;
    const gh_ypair *seen[V_COUNT] = { 0 };
    if (v && !gh_ld_apply(ld, &rv_section, v, c, seen))
        return false;
    bool ok = true;
    if (seen[V_CONTENT_TYPES])
        ok &= content_types(ld, c, seen[V_CONTENT_TYPES]->value);
    if (seen[V_HEADERS])
        ok &= names(ld, seen[V_HEADERS]->value, "required_headers", true, &c->required_headers,
                    &c->nrequired_headers);
    if (seen[V_QUERY])
        ok &= names(ld, seen[V_QUERY]->value, "required_query", false, &c->required_query, &c->nrequired_query);
    bool any = false;
    for (int i = 0; i < V_COUNT; i++)
        any |= seen[i] != NULL;
    if (ok && !any) {
        gh_ld_error(ld, conf->mark, "request_validation checks nothing: set max_body, content_types, json, "
                    "required_headers or required_query");
        return false;
    }
    return ok;
}
