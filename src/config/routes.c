/* routes.c — the `routes:` section (SPEC §4): match, the target, rewrite,
 * header edits and the timeout of each route, and the checks between them
 * (one target, strip_prefix only with a prefix, rewrite parameters that the
 * match provides, upstreams that exist). Regexes are stored as written; the
 * router compiles them. */
#include <stdio.h>
#include <string.h>
#include "config/schema.h"
#include "config/units.h"
#include "core/template.h"

#define MAX_PARAMS 16   /* GH_MAX_PARAMS of route/route.h: what a match can carry */

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

static bool before(gh_mark a, gh_mark b) { return a.line < b.line || (a.line == b.line && a.col < b.col); }

/* ------------------------------------------------------------ templates */

typedef struct params {
    gh_str name[MAX_PARAMS];
    size_t n;
} params;

static bool path_chars_ok(gh_str t)
{
    for (size_t i = 0; i < t.len; i++) {
        unsigned char c = (unsigned char)t.p[i];
        if (c <= ' ' || c == 0x7f || c == '?' || c == '#' || c == '\\')
            return false;
    }
    return true;
}

/* Why a path template is wrong, or NULL. match: a match.path template
 * ({name} whole segments, {rest*} last, names unique, normalized);
 * otherwise a rewrite template ({name} anywhere). Names go to ps. */
static const char *template_error(gh_str t, bool match, params *ps, char *buf, size_t cap)
{
    ps->n = 0;
    if (t.len == 0 || t.p[0] != '/')
        return "it must start with '/'";
    if (!path_chars_ok(t))
        return "spaces, control characters, '\\', '?' and '#' are not allowed";
    int depth = 0;
    for (size_t i = 0; i < t.len; i++) {
        if (t.p[i] == '{' && depth++ > 0)
            return "unbalanced braces";
        if (t.p[i] == '}' && --depth < 0)
            return "unbalanced braces";
    }
    if (depth)
        return "unbalanced braces";
    size_t i = 1;
    while (i <= t.len) {
        size_t end = i;
        while (end < t.len && t.p[end] != '/')
            end++;
        gh_str seg = gh_str_from(t.p + i, end - i);
        bool last = end >= t.len;
        if (match && !memchr(seg.p, '{', seg.len)) {
            if ((seg.len == 0 && !last) || gh_str_eq_c(seg, ".") || gh_str_eq_c(seg, ".."))
                return "'//', '.' and '..' segments never match a normalized path";
        }
        gh_tpl_ph ph;
        for (size_t j = 0; gh_tpl_next(seg, j, &ph); j = ph.end) {
            if (!ph.closed)
                return "a parameter name cannot contain '/'";   /* balanced, across segments */
            gh_str inner = gh_str_from(seg.p + ph.at + 1, ph.end - ph.at - 2);
            gh_str name = ph.name;
            if (!gh_ident(name)) {
                snprintf(buf, cap, "invalid parameter name '{%.*s}'", clip(inner), inner.p);
                return buf;
            }
            if (match && (ph.at != 0 || ph.end != seg.len))
                return "a parameter must be a whole segment";
            if (match && ph.star && !last) {
                snprintf(buf, cap, "'{%.*s}' must be the last segment", clip(inner), inner.p);
                return buf;
            }
            for (size_t k = 0; match && k < ps->n; k++) {
                if (gh_str_eq(ps->name[k], name)) {
                    snprintf(buf, cap, "parameter '%.*s' appears twice", clip(name), name.p);
                    return buf;
                }
            }
            if (ps->n == MAX_PARAMS)
                return "too many parameters (at most 16)";
            ps->name[ps->n++] = name;
        }
        i = end + 1;
    }
    return NULL;
}

/* what: "path template" or "prefix", for the message */
static bool check_template(gh_load *ld, const gh_ynode *at, gh_str t, bool match, params *ps,
                           const char *what)
{
    char buf[160];
    const char *why = template_error(t, match, ps, buf, sizeof(buf));
    if (why)
        gh_ld_error(ld, at->mark, "invalid %s '%.*s': %s", what, clip(t), t.p, why);
    return !why;
}

bool gh_ld_path_template(gh_load *ld, const gh_ynode *at, gh_str t, const char *what)
{
    params ps;
    return check_template(ld, at, t, false, &ps, what);
}

/* ---------------------------------------------------------------- match */

static bool set_match_headers(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_route_cfg *r = obj;
    return gh_ld_kv_map(ld, kv->value, true, &r->match.headers, &r->match.nheaders);
}

static bool set_match_query(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_route_cfg *r = obj;
    return gh_ld_kv_map(ld, kv->value, false, &r->match.query, &r->match.nquery);
}

static bool set_methods(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_route_cfg *r = obj;
    const gh_ynode *list = kv->value;
    if (list->kind != GH_Y_SEQ || list->n == 0) {
        gh_ld_error(ld, kv->value->mark, "expected a non-empty list of methods");
        return false;
    }
    r->match.method_names = gh_ld_array(ld, list->n, sizeof(gh_str));
    for (size_t i = 0; i < list->n; i++) {
        gh_str t;
        if (!gh_ld_text(ld, list->items[i], "expected a method name", &t, NULL))
            continue;
        if (!gh_ld_is_token(t)) {
            gh_ld_error(ld, list->items[i]->mark, "invalid method '%.*s'", clip(t), t.p);
            continue;
        }
        gh_str m = gh_ld_copy(ld, t);
        for (size_t j = 0; j < m.len; j++)
            ((char *)m.p)[j] = (char)(m.p[j] >= 'a' && m.p[j] <= 'z' ? m.p[j] - 32 : m.p[j]);
        bool dup = false;
        for (size_t j = 0; j < r->match.nmethods && !dup; j++)
            dup = gh_str_eq(r->match.method_names[j], m);
        if (dup) {
            gh_ld_error(ld, list->items[i]->mark, "duplicate method '%s'", m.p);
            continue;
        }
        r->match.methods |= gh_method_bit(m.p, m.len);
        r->match.method_names[r->match.nmethods++] = m;
    }
    return true;
}

enum { M_HOST, M_PREFIX, M_PATH, M_REGEX, M_METHODS, M_HEADERS, M_QUERY, M_CASE, M_COUNT };
static const gh_key match_keys[] = {
    [M_HOST] = GH_KEY_DEFER("host"),
    [M_PREFIX] = GH_KEY_DEFER("prefix"),
    [M_PATH] = GH_KEY_DEFER("path"),
    [M_REGEX] = GH_KEY_DEFER("regex"),
    [M_METHODS] = GH_KEY_FN("methods", GH_Y_SEQ, set_methods),
    [M_HEADERS] = GH_KEY_FN("headers", GH_Y_MAP, set_match_headers),
    [M_QUERY] = GH_KEY_FN("query", GH_Y_MAP, set_match_query),
    [M_CASE] = GH_KEY_VAL("case_insensitive", GH_V_BOOL, gh_route_cfg, match.case_insensitive),
};
static const gh_section match_section = GH_SECTION("match", match_keys);

static bool host_ok(gh_str h)
{
    if (h.len > 2 && h.p[0] == '*' && h.p[1] == '.')
        h = gh_str_from(h.p + 2, h.len - 2);
    if (h.len == 0 || h.len > 253 || h.p[0] == '.' || h.p[h.len - 1] == '.')
        return false;
    for (size_t i = 0; i < h.len; i++) {
        char c = h.p[i];
        if (c == '.' && h.p[i - 1] == '.')
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static void load_host(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv)
{
    gh_str h;
    if (!gh_ld_str(ld, kv->value, &h, NULL))
        return;
    for (size_t i = 0; i < h.len; i++)
        ((char *)h.p)[i] = gh_lower(h.p[i]);
    if (!host_ok(h)) {
        const char *star = memchr(h.p, '*', h.len);
        if (star && !(star == h.p && h.len > 1 && h.p[1] == '.' && !memchr(h.p + 1, '*', h.len - 1)))
            gh_ld_error(ld, kv->value->mark,
                        "invalid host '%.*s': a wildcard is only allowed as a leading '*.'", clip(h), h.p);
        else
            gh_ld_error(ld, kv->value->mark,
                        "invalid host '%.*s' (use a name like api.example.com or *.example.com)",
                        clip(h), h.p);
        return;
    }
    r->match.host = h;
    r->match.host_mark = kv->key->mark;
}

static void load_prefix(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv)
{
    gh_str p;
    params ps;
    if (!gh_ld_str(ld, kv->value, &p, NULL))
        return;
    while (p.len > 1 && p.p[p.len - 1] == '/')
        p.len--;   /* "/users/" matches like "/users" */
    ((char *)p.p)[p.len] = '\0';
    if (memchr(p.p, '{', p.len) || memchr(p.p, '}', p.len)) {
        gh_ld_error(ld, kv->value->mark, "invalid prefix '%.*s': parameters need match.path", clip(p), p.p);
        return;
    }
    if (!check_template(ld, kv->value, p, true, &ps, "prefix"))
        return;
    r->match.prefix = p;
}

/* Fills r->match; ps gets the parameters of match.path. Returns which of
 * M_PREFIX, M_PATH, M_REGEX the route matches on, -1 when none. */
static int load_match(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv, params *ps)
{
    const gh_ypair *seen[M_COUNT] = { 0 };
    r->match.mark = kv->key->mark;
    if (!gh_ld_apply(ld, &match_section, kv->value, r, seen))
        return -1;
    if (seen[M_HOST])
        load_host(ld, r, seen[M_HOST]);
    const gh_ypair *which = NULL;
    for (int k = M_PREFIX; k <= M_REGEX; k++) {
        if (!seen[k])
            continue;
        if (which) {
            /* report the later one in the file */
            const gh_ypair *second = before(seen[k]->key->mark, which->key->mark) ? which : seen[k];
            gh_ld_error(ld, second->key->mark, "match takes only one of prefix, path or regex");
            if (second == which)
                which = seen[k];
            continue;
        }
        which = seen[k];
    }
    if (!which) {
        gh_ld_error(ld, kv->key->mark, "match needs one of prefix, path or regex");
        return -1;
    }
    r->match.path_mark = which->key->mark;
    if (which == seen[M_PREFIX]) {
        load_prefix(ld, r, which);
        return M_PREFIX;
    }
    if (which == seen[M_PATH]) {
        gh_str p;
        if (gh_ld_str(ld, which->value, &p, NULL) &&
            check_template(ld, which->value, p, true, ps, "path template"))
            r->match.path = p;
        return M_PATH;
    }
    gh_str re;
    if (gh_ld_str(ld, which->value, &re, NULL)) {
        if (re.len == 0)
            gh_ld_error(ld, which->value->mark, "expected a regular expression");
        r->match.regex = re;
    }
    return M_REGEX;
}

/* -------------------------------------------------------------- targets */

static bool set_respond_headers(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_route_cfg *r = obj;
    return gh_ld_kv_map(ld, kv->value, true, &r->respond.headers, &r->respond.nheaders);
}

static const gh_key respond_keys[] = {
    GH_KEY_NUM("status", GH_V_INT, gh_route_cfg, respond.status, 100, 599),
    GH_KEY_FN("headers", GH_Y_MAP, set_respond_headers),
    GH_KEY_VAL("body", GH_V_STR, gh_route_cfg, respond.body),
};
static const gh_section respond_section = GH_SECTION("respond", respond_keys);

static bool set_redirect_status(gh_load *ld, void *obj, const gh_ypair *kv)
{
    static const char msg[] = "expected one of 301, 302, 303, 307, 308";
    gh_str t;
    uint64_t v;
    if (!gh_ld_text(ld, kv->value, msg, &t, NULL))
        return false;
    if (!gh_parse_uint(t, &v) || !(v == 301 || v == 302 || v == 303 || v == 307 || v == 308)) {
        gh_ld_error(ld, kv->value->mark, "%s", msg);
        return false;
    }
    ((gh_route_cfg *)obj)->redirect.status = (int)v;
    return true;
}

enum { RD_TO, RD_STATUS };
static const gh_key redirect_keys[] = {
    [RD_TO] = GH_KEY_VAL("to", GH_V_STR, gh_route_cfg, redirect.to),
    [RD_STATUS] = GH_KEY_FN("status", 0, set_redirect_status),
};
static const gh_section redirect_section = GH_SECTION("redirect", redirect_keys);
static const gh_section echo_section = { "echo", NULL, 0 };

/* -------------------------------------------------------- header edits */

static bool set_ops_set(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_header_ops *ops = obj;
    return gh_ld_kv_map(ld, kv->value, true, &ops->set, &ops->nset);
}

static bool set_ops_remove(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_header_ops *ops = obj;
    const gh_ynode *list = kv->value;
    if (list->kind != GH_Y_SEQ)
        return true;
    ops->remove = gh_ld_array(ld, list->n, sizeof(gh_str));
    for (size_t i = 0; i < list->n; i++) {
        gh_str name;
        if (!gh_ld_str(ld, list->items[i], &name, NULL))
            continue;
        if (!gh_ld_is_token(name)) {
            gh_ld_error(ld, list->items[i]->mark, "invalid header name '%.*s'", clip(name), name.p);
            continue;
        }
        ops->remove[ops->nremove++] = name;
    }
    return true;
}

static const gh_key header_ops_keys[] = {
    GH_KEY_FN("set", GH_Y_MAP, set_ops_set),
    GH_KEY_FN("remove", GH_Y_SEQ, set_ops_remove),
};
static const gh_section header_ops_section = GH_SECTION("headers", header_ops_keys);

static bool set_request_headers(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_apply(ld, &header_ops_section, kv->value, &((gh_route_cfg *)obj)->request_headers, NULL);
}

static bool set_response_headers(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_apply(ld, &header_ops_section, kv->value, &((gh_route_cfg *)obj)->response_headers, NULL);
}

/* Every {name} in text must be something the match provides: match.path's
 * parameters, {rest} for a prefix route (what follows the prefix); a
 * regex's named groups are checked by the router. with_host: {host}, the
 * request's host, is offered too (redirects). */
static bool check_params_used(gh_load *ld, gh_mark at, gh_str text, int kind, const params *mp,
                              const char *what, bool with_host)
{
    gh_tpl_ph ph;
    for (size_t i = 0; gh_tpl_next(text, i, &ph) && ph.closed; i = ph.end) {
        gh_str n = ph.name;
        bool found = kind == M_REGEX || kind == -1 || (with_host && gh_str_eq_c(n, "host"));
        if (kind == M_PREFIX)
            found |= gh_str_eq_c(n, "rest");
        for (size_t j = 0; !found && j < mp->n; j++)
            found = gh_str_eq(mp->name[j], n);
        if (!found) {
            if (kind == M_PREFIX)
                gh_ld_error(ld, at, "%s uses '{%.*s}', but a prefix route only provides {rest}%s", what,
                            clip(n), n.p, with_host ? " and {host}" : "");
            else
                gh_ld_error(ld, at, "%s uses '{%.*s}', which match.path does not define", what, clip(n), n.p);
            return false;
        }
    }
    return true;
}

/* -------------------------------------------------------------- rewrite */

enum { W_STRIP, W_PREFIX, W_PATH, W_COUNT };
static const gh_key rewrite_keys[] = {
    [W_STRIP] = GH_KEY_VAL("strip_prefix", GH_V_BOOL, gh_route_cfg, rewrite.strip_prefix),
    [W_PREFIX] = GH_KEY_DEFER("prefix"),
    [W_PATH] = GH_KEY_DEFER("path"),
};
static const gh_section rewrite_section = GH_SECTION("rewrite", rewrite_keys);

/* kind: what the route matches on (M_PREFIX...), mp: match.path's params. */
static void load_rewrite(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv, int kind, const params *mp)
{
    const gh_ypair *seen[W_COUNT] = { 0 };
    r->rewrite.mark = kv->key->mark;
    if (!gh_ld_apply(ld, &rewrite_section, kv->value, r, seen))
        return;
    if (seen[W_STRIP] && r->rewrite.strip_prefix && kind != M_PREFIX && kind != -1)
        gh_ld_error(ld, seen[W_STRIP]->key->mark, "strip_prefix needs match.prefix");
    if (seen[W_PREFIX]) {
        gh_str p;
        if (gh_ld_str(ld, seen[W_PREFIX]->value, &p, NULL)) {
            while (p.len > 1 && p.p[p.len - 1] == '/')
                p.len--;   /* joined with the rest of the path, which starts with '/' */
            ((char *)p.p)[p.len] = '\0';
            if (p.len == 0 || p.p[0] != '/' || !path_chars_ok(p))
                gh_ld_error(ld, seen[W_PREFIX]->value->mark,
                            "invalid rewrite prefix '%.*s': it must be a path starting with '/'",
                            clip(p), p.p);
            else
                r->rewrite.prefix = p;
        }
    }
    if (!seen[W_PATH])
        return;
    const gh_ynode *v = seen[W_PATH]->value;
    params rp;
    gh_str p;
    if (seen[W_PREFIX] || r->rewrite.strip_prefix) {
        gh_ld_error(ld, seen[W_PATH]->key->mark, "rewrite takes either path, or strip_prefix and prefix");
        return;
    }
    if (!gh_ld_str(ld, v, &p, NULL) || !check_template(ld, v, p, false, &rp, "path template"))
        return;
    r->rewrite.path = p;
    check_params_used(ld, v->mark, p, kind, mp, "rewrite path", false);
}

/* ---------------------------------------------------------------- route */

static bool set_plugins(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_plugin_set(ld, kv->value, &((gh_route_cfg *)obj)->plugins);
}

enum {
    R_NAME, R_MATCH,
    R_UPSTREAM, R_RESPOND, R_ECHO, R_REDIRECT, R_VERSIONS, R_AGGREGATE, R_BATCH,   /* targets */
    R_REWRITE, R_REQUEST_HEADERS, R_RESPONSE_HEADERS, R_TIMEOUT, R_PLUGINS, R_COUNT
};
static const gh_key route_keys[] = {
    [R_NAME] = GH_KEY_DEFER("name"),
    [R_MATCH] = GH_KEY_DEFER("match"),
    [R_UPSTREAM] = GH_KEY_DEFER("upstream"),
    [R_RESPOND] = GH_KEY_DEFER("respond"),
    [R_ECHO] = GH_KEY_DEFER("echo"),
    [R_REDIRECT] = GH_KEY_DEFER("redirect"),
    [R_VERSIONS] = GH_KEY_DEFER("versions"),
    [R_AGGREGATE] = GH_KEY_DEFER("aggregate"),
    [R_BATCH] = GH_KEY_DEFER("batch"),
    [R_REWRITE] = GH_KEY_DEFER("rewrite"),
    [R_REQUEST_HEADERS] = GH_KEY_FN("request_headers", GH_Y_MAP, set_request_headers),
    [R_RESPONSE_HEADERS] = GH_KEY_FN("response_headers", GH_Y_MAP, set_response_headers),
    [R_TIMEOUT] = GH_KEY_VAL("timeout", GH_V_DURATION, gh_route_cfg, timeout_ms),
    [R_PLUGINS] = GH_KEY_FN("plugins", GH_Y_MAP, set_plugins),
};
static const gh_section route_section = GH_SECTION("route", route_keys);

static void load_target(gh_load *ld, gh_route_cfg *r, const gh_ypair **seen, int kind, const params *mp)
{
    int first = -1;
    for (int k = R_UPSTREAM; k <= R_BATCH; k++)
        if (seen[k] && (first < 0 || before(seen[k]->key->mark, seen[first]->key->mark)))
            first = k;
    if (first < 0) {
        gh_ld_error(ld, r->mark, "route needs a target: one of upstream, respond, echo, redirect");
        return;
    }
    for (int k = R_UPSTREAM; k <= R_BATCH; k++)
        if (seen[k] && k != first)
            gh_ld_error(ld, seen[k]->key->mark,
                        "route has more than one target ('%s' and '%s'): use exactly one",
                        route_keys[first].name, route_keys[k].name);
    const gh_ypair *kv = seen[first];
    const gh_ypair *rd[2] = { 0 };
    r->target_mark = kv->key->mark;
    switch (first) {
    case R_UPSTREAM:
        r->target = GH_TARGET_UPSTREAM;
        if (gh_ld_str(ld, kv->value, &r->upstream_name, NULL) && r->upstream_name.len == 0)
            gh_ld_error(ld, kv->value->mark, "expected an upstream name");
        return;
    case R_RESPOND:
        r->target = GH_TARGET_RESPOND;
        r->respond.status = 200;
        gh_ld_apply(ld, &respond_section, kv->value, r, NULL);
        return;
    case R_ECHO:
        r->target = GH_TARGET_ECHO;
        gh_ld_apply(ld, &echo_section, kv->value, r, NULL);
        return;
    case R_REDIRECT:
        r->target = GH_TARGET_REDIRECT;
        r->redirect.status = 302;
        if (!gh_ld_apply(ld, &redirect_section, kv->value, r, rd))
            return;
        if (!rd[RD_TO])
            gh_ld_error(ld, kv->key->mark, "redirect needs 'to'");
        else if (r->redirect.to.p && r->redirect.to.len == 0)
            gh_ld_error(ld, rd[RD_TO]->value->mark, "expected a URL or a path");
        else
            check_params_used(ld, rd[RD_TO]->value->mark, r->redirect.to, kind, mp, "redirect", true);
        return;
    case R_VERSIONS:
        r->target = GH_TARGET_VERSIONS;   /* loaded last, over the finished route (load_route) */
        return;
    case R_AGGREGATE:
        r->target = GH_TARGET_AGGREGATE;
        gh_ld_aggregate(ld, r, kv);
        return;
    case R_BATCH:
        r->target = GH_TARGET_BATCH;
        gh_ld_batch(ld, r, kv);
        return;
    default:
        return;
    }
}

/* ------------------------------------------------------------ versions */

typedef struct match_ctx {
    int kind;
    const params *mp;
} match_ctx;

enum { V_UPSTREAM, V_RESPOND, V_ECHO, V_REWRITE, V_REQUEST_HEADERS, V_RESPONSE_HEADERS, V_PLUGINS,
       V_LIFE, V_COUNT = V_LIFE + GH_VERSION_LIFE_KEYS };
static const gh_key version_keys[] = {
    [V_UPSTREAM] = GH_KEY_DEFER("upstream"),
    [V_RESPOND] = GH_KEY_DEFER("respond"),
    [V_ECHO] = GH_KEY_DEFER("echo"),
    [V_REWRITE] = GH_KEY_DEFER("rewrite"),
    [V_REQUEST_HEADERS] = GH_KEY_DEFER("request_headers"),
    [V_RESPONSE_HEADERS] = GH_KEY_DEFER("response_headers"),
    [V_PLUGINS] = GH_KEY_DEFER("plugins"),
    [V_LIFE + 0] = GH_KEY_DEFER("deprecated"),
    [V_LIFE + 1] = GH_KEY_DEFER("sunset"),
    [V_LIFE + 2] = GH_KEY_DEFER("docs"),
    [V_LIFE + 3] = GH_KEY_DEFER("preview"),
    [V_LIFE + 4] = GH_KEY_DEFER("preview_requires"),
};
static const gh_section version_section = GH_SECTION("version", version_keys);

/* ops over base: base's sets not named again, then ops' own; removes of both. */
static void merge_ops(gh_load *ld, gh_header_ops *out, const gh_header_ops *base, const gh_header_ops *ops)
{
    gh_kv *set = gh_ld_array(ld, base->nset + ops->nset + 1, sizeof(gh_kv));
    gh_str *rm = gh_ld_array(ld, base->nremove + ops->nremove + 1, sizeof(gh_str));
    size_t ns = 0, nr = 0;
    for (size_t i = 0; i < base->nset; i++) {
        bool again = false;
        for (size_t j = 0; j < ops->nset && !again; j++)
            again = gh_str_ieq(base->set[i].name, ops->set[j].name);
        if (!again)
            set[ns++] = base->set[i];
    }
    for (size_t j = 0; j < ops->nset; j++)
        set[ns++] = ops->set[j];
    for (size_t i = 0; i < base->nremove; i++)
        rm[nr++] = base->remove[i];
    for (size_t j = 0; j < ops->nremove; j++)
        rm[nr++] = ops->remove[j];
    *out = (gh_header_ops){ set, ns, rm, nr };
}

bool gh_ld_version_route(gh_load *ld, const gh_route_cfg *r, gh_version_cfg *v, const gh_ynode *map,
                         const gh_ypair **life, const void *match)
{
    const match_ctx *mc = match;
    const gh_ypair *seen[V_COUNT] = { 0 };
    gh_route_cfg *vr = &v->route;
    *vr = *r;
    vr->target = 0;
    vr->versions = NULL;
    vr->version = v;
    vr->upstream_name = (gh_str){ NULL, 0 };
    vr->upstream = NULL;
    if (!gh_ld_apply(ld, &version_section, map, vr, seen))
        return false;
    for (int k = 0; k < GH_VERSION_LIFE_KEYS; k++)
        life[k] = seen[V_LIFE + k];
    /* the same target rules as a route's, among the targets a version may have */
    const gh_ypair *tseen[R_COUNT] = { 0 };
    tseen[R_UPSTREAM] = seen[V_UPSTREAM];
    tseen[R_RESPOND] = seen[V_RESPOND];
    tseen[R_ECHO] = seen[V_ECHO];
    if (!seen[V_UPSTREAM] && !seen[V_RESPOND] && !seen[V_ECHO]) {
        gh_ld_error(ld, map->mark, "version '%.*s' needs a target: upstream, respond or echo", clip(v->name),
                    v->name.p);
        return false;
    }
    load_target(ld, vr, tseen, mc->kind, mc->mp);
    if (seen[V_REWRITE]) {
        vr->rewrite.strip_prefix = false;
        vr->rewrite.prefix = vr->rewrite.path = (gh_str){ NULL, 0 };
        load_rewrite(ld, vr, seen[V_REWRITE], mc->kind, mc->mp);
    }
    gh_header_ops ops;
    if (seen[V_REQUEST_HEADERS]) {
        memset(&ops, 0, sizeof(ops));
        gh_ld_apply(ld, &header_ops_section, seen[V_REQUEST_HEADERS]->value, &ops, NULL);
        merge_ops(ld, &vr->request_headers, &r->request_headers, &ops);
    }
    if (seen[V_RESPONSE_HEADERS]) {
        memset(&ops, 0, sizeof(ops));
        gh_ld_apply(ld, &header_ops_section, seen[V_RESPONSE_HEADERS]->value, &ops, NULL);
        merge_ops(ld, &vr->response_headers, &r->response_headers, &ops);
    }
    if (seen[V_PLUGINS]) {
        gh_plugin_set own = { .on = 0 };
        gh_ld_plugin_set(ld, seen[V_PLUGINS]->value, &own);
        gh_plugin_set_merge(&r->plugins, &own, &vr->plugins);
    }
    return true;
}

/* The names of the routes loaded so far: where each is, and a hash set
 * of them (route index + 1 per slot), so that the duplicate check costs
 * the same with 10,000 routes as with 10. */
typedef struct route_names {
    gh_mark *marks;
    uint32_t *slot;
    size_t mask;
} route_names;

static void load_route(gh_load *ld, gh_route_cfg *r, const gh_ynode *item, route_names *names)
{
    const gh_ypair *seen[R_COUNT] = { 0 };
    r->mark = item->mark;
    if (!gh_ld_apply(ld, &route_section, item, r, seen))
        return;
    if (!seen[R_NAME]) {
        gh_ld_error(ld, item->mark, "route needs a name");
    } else if (gh_ld_str(ld, seen[R_NAME]->value, &r->name, NULL)) {
        const gh_ynode *v = seen[R_NAME]->value;
        names->marks[r->index] = v->mark;
        if (r->name.len == 0)
            gh_ld_error(ld, v->mark, "expected a route name");
        size_t h = r->name.len ? (size_t)gh_str_hash(r->name) & names->mask : 0;
        for (; r->name.len; h = (h + 1) & names->mask) {
            uint32_t i = names->slot[h];
            if (!i) {
                names->slot[h] = (uint32_t)r->index + 1;
                break;
            }
            if (gh_str_eq(ld->cfg->routes[i - 1].name, r->name)) {
                gh_ld_error(ld, v->mark, "duplicate route name '%.*s' (first at line %u)", clip(r->name),
                            r->name.p, names->marks[i - 1].line);
                break;
            }
        }
    }
    params mp = { .n = 0 };
    int kind = -1;
    if (!seen[R_MATCH])
        gh_ld_error(ld, item->mark, "route needs a match");
    else
        kind = load_match(ld, r, seen[R_MATCH], &mp);
    load_target(ld, r, seen, kind, &mp);
    if (seen[R_REWRITE])
        load_rewrite(ld, r, seen[R_REWRITE], kind, &mp);
    if (r->target == GH_TARGET_VERSIONS) {
        match_ctx mc = { kind, &mp };
        gh_ld_versions(ld, r, seen[R_VERSIONS], &mc);
    }
}

bool gh_ld_routes(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    const gh_ynode *list = kv->value;
    if (list->kind != GH_Y_SEQ || list->n == 0)
        return true;
    cfg->routes = gh_ld_array(ld, list->n, sizeof(*cfg->routes));
    route_names names = { .marks = gh_ld_array(ld, list->n, sizeof(gh_mark)), .mask = 15 };
    while (names.mask < 2 * list->n)
        names.mask = names.mask * 2 + 1;
    names.slot = gh_ld_tmp(ld, (names.mask + 1) * sizeof(uint32_t));
    memset(names.slot, 0, (names.mask + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < list->n; i++) {
        gh_route_cfg *r = &cfg->routes[i];
        r->index = i;
        cfg->nroutes = i + 1;
        load_route(ld, r, list->items[i], &names);
    }
    return true;
}

static void resolve_upstream(gh_load *ld, gh_route_cfg *r)
{
    gh_config *cfg = ld->cfg;
    if (r->target != GH_TARGET_UPSTREAM || r->upstream_name.len == 0)
        return;
    r->upstream = gh_config_upstream(cfg, r->upstream_name);
    if (r->upstream)
        r->upstream_index = (size_t)(r->upstream - cfg->upstreams);
    else
        gh_ld_error(ld, r->target_mark, "upstream '%.*s' is not defined", clip(r->upstream_name),
                    r->upstream_name.p);
}

void gh_ld_routes_resolve(gh_load *ld)
{
    gh_config *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        gh_route_cfg *r = &cfg->routes[i];
        for (size_t k = 0; r->versions && k < r->versions->n; k++)
            resolve_upstream(ld, &r->versions->list[k].route);
        for (size_t k = 0; r->aggregate && k < r->aggregate->n; k++)
            resolve_upstream(ld, &r->aggregate->backends[k].route);
        resolve_upstream(ld, r);
    }
}
