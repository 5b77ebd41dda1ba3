/* rewrite.c — the path forwarded for a matched route (SPEC §4 rewrite).
 *
 * rewrite.path set: the template is filled from the match params ({name},
 * {rest*}; for regex routes the named groups); an unknown name yields
 * nothing (gh_router_build refuses such templates). Repeated slashes that
 * an empty {rest*} leaves ("/a/{rest*}/b") are merged.
 *
 * Otherwise: with strip_prefix, the matched prefix is removed (for exact
 * paths the whole path, for templates their leading literal segments, for
 * regexes nothing); then rewrite.prefix, if set, replaces it. Like nginx's
 * `location /users { proxy_pass http://up/internal/users; }`, what follows
 * the prefix is kept as sent, trailing slash included:
 *   /users -> /internal/users, /users/ -> /internal/users/, /users/7 -> /internal/users/7
 * and without rewrite.prefix an empty rest becomes "/" (/users -> /).
 * Without strip_prefix, rewrite.prefix is prepended to the whole path
 * (prefix "/v1" + "/users/7" -> "/v1/users/7"), never doubling a '/'.
 *
 * The result always starts with '/', is NUL-terminated, and needs len + 1
 * bytes of cap; the query string is the caller's business. */
#include "core/template.h"
#include "route/route.h"

typedef struct wbuf {
    char *p;
    size_t n, cap;
    bool over;
} wbuf;

static void put(wbuf *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/' && w->n && w->p[w->n - 1] == '/')
            continue;                   /* never "//" */
        if (w->n + 1 >= w->cap) {
            w->over = true;
            return;
        }
        w->p[w->n++] = s[i];
    }
}

static const gh_param *param(const gh_route_match *m, gh_str name)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (gh_str_eq(m->params[i].name, name))
            return &m->params[i];
    return NULL;
}

static void fill_template(wbuf *w, const gh_route_match *m, gh_str t)
{
    if (!t.len || t.p[0] != '/')
        put(w, "/", 1);
    gh_tpl_ph ph;
    size_t i = 0;
    for (; !w->over && gh_tpl_next(t, i, &ph); i = ph.end) {
        put(w, t.p + i, ph.at - i);
        const gh_param *p = param(m, ph.name);
        if (p)
            put(w, p->value.p, p->value.len);
    }
    if (i < t.len)
        put(w, t.p + i, t.len - i);
}

size_t gh_rewrite_path(const gh_route_match *m, gh_str path, char *out, size_t cap)
{
    const gh_route_cfg *c = m->route;
    wbuf w = { out, 0, cap, cap == 0 };
    if (c && c->rewrite.path.len) {
        fill_template(&w, m, c->rewrite.path);
    } else {
        gh_str rest = path;
        gh_str mp = m->matched_prefix;
        /* A matched prefix of "/" strips nothing: every path keeps its '/'. */
        if (c && c->rewrite.strip_prefix && mp.len > 1 && gh_str_starts(path, mp))
            rest = gh_str_from(path.p + mp.len, path.len - mp.len);
        gh_str pre = c ? c->rewrite.prefix : GH_STR_NULL;
        if (pre.len) {
            if (pre.p[0] != '/')
                put(&w, "/", 1);
            put(&w, pre.p, pre.len);
            if (rest.len && rest.p[0] != '/')
                put(&w, "/", 1);
        } else if (!rest.len || rest.p[0] != '/') {
            put(&w, "/", 1);
        }
        put(&w, rest.p, rest.len);
    }
    if (w.over)
        return (size_t)-1;
    out[w.n] = '\0';
    return w.n;
}
