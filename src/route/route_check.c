/* route_check.c — configuration-time analysis of the compiled route table
 * (SPEC §4): ties between routes (errors), routes shadowed by an
 * earlier one (warnings), and rewrite.path templates that use names the
 * match does not capture (errors). Runs once per gh_router_build, after the
 * table is sorted; never on the request path. */
#include <stdlib.h>
#include "core/template.h"
#include "route/router_int.h"

/* ---- overlap analysis (ties and shadows) ----
 * Ties (errors) between two routes of one host group with an equal path
 * key (same exact path; same prefix; templates with equal literal count,
 * {rest*} and segment count whose segments are pairwise compatible) when
 *   - neither has conditions, or
 *   - both have conditions that one request can meet together (methods
 *     intersect, HEAD counting as part of GET; no header or query name with
 *     different values) and neither's conditions strictly imply the other's.
 * Regex routes never tie (file order decides).
 * Shadows (warnings), only where certain: a route without conditions that
 * takes precedence in the same host group and accepts every path the other
 * does: prefix "/" over any regex; a {rest*} template over a prefix or
 * template whose leading segments it accepts ("/{rest*}" over everything);
 * a regex over a later regex with the identical pattern. Routes in other
 * host groups never shadow (a more specific host is tried first). */

/* icase: either side's literals ignore case */
static bool seg_compatible(const seg *x, const seg *y, bool icase)
{
    if (x->kind == SEG_LIT && y->kind == SEG_LIT)
        return icase ? gh_str_ieq(x->text, y->text) : gh_str_eq(x->text, y->text);
    const seg *lit = x->kind == SEG_LIT ? x : y->kind == SEG_LIT ? y : NULL;
    return !lit || lit->text.len > 0;           /* a parameter takes any non-empty segment */
}

static bool paths_overlap(const rt *a, const rt *b)
{
    if (a->path_kind != PATH_TPL)
        return gh_str_eq(a->path, b->path);
    for (size_t i = 0; i < a->nseg; i++)        /* same key: same count, {rest*} both or neither */
        if (a->segs[i].kind != SEG_REST && b->segs[i].kind != SEG_REST &&
            !seg_compatible(&a->segs[i], &b->segs[i], a->icase || b->icase))
            return false;
    return true;
}

static const gh_kv *kv_find(const gh_kv *kv, size_t n, gh_str name, bool icase)
{
    for (size_t i = 0; i < n; i++)
        if (icase ? gh_str_ieq(kv[i].name, name) : gh_str_eq(kv[i].name, name))
            return &kv[i];
    return NULL;
}

/* Can one request satisfy the conditions of both? Headers and query
 * parameters are judged on their first occurrence, so different values
 * for one name are disjoint. */
static bool conds_overlap(const rt *a, const rt *b)
{
    const gh_route_cfg *x = a->cfg, *y = b->cfg;
    if (!a->any_method && !b->any_method && !(a->mbits & b->mbits)) {
        bool common = false;
        for (size_t i = 0; i < a->next && !common; i++)
            common = gh_rt_ext_has(b, a->ext[i]);
        if (!common)
            return false;
    }
    for (size_t i = 0; i < x->match.nheaders; i++) {
        const gh_kv *o = kv_find(y->match.headers, y->match.nheaders, x->match.headers[i].name, true);
        if (o && !gh_str_eq(o->value, x->match.headers[i].value))
            return false;
    }
    for (size_t i = 0; i < x->match.nquery; i++) {
        const gh_kv *o = kv_find(y->match.query, y->match.nquery, x->match.query[i].name, false);
        if (o && !gh_str_eq(o->value, x->match.query[i].value))
            return false;
    }
    return true;
}

static bool kv_subset(const gh_kv *s, size_t ns, const gh_kv *of, size_t nof, bool icase)
{
    for (size_t i = 0; i < ns; i++) {
        const gh_kv *o = kv_find(of, nof, s[i].name, icase);
        if (!o || !gh_str_eq(o->value, s[i].value))
            return false;
    }
    return true;
}

/* Does every request meeting a's conditions meet b's? */
static bool conds_imply(const rt *a, const rt *b)
{
    if (!b->any_method) {
        if (a->any_method || (a->mbits & ~b->mbits))
            return false;
        for (size_t i = 0; i < a->next; i++)
            if (!gh_rt_ext_has(b, a->ext[i]))
                return false;
    }
    const gh_route_cfg *x = a->cfg, *y = b->cfg;
    return kv_subset(y->match.headers, y->match.nheaders, x->match.headers, x->match.nheaders, true) &&
           kv_subset(y->match.query, y->match.nquery, x->match.query, x->match.nquery, false);
}

static bool is_tie(const rt *a, const rt *b)
{
    if (a->has_cond != b->has_cond || !paths_overlap(a, b))
        return false;                           /* rule 3 orders them, or disjoint paths */
    if (!a->has_cond)
        return true;
    if (!conds_overlap(a, b))
        return false;
    bool ab = conds_imply(a, b), ba = conds_imply(b, a);
    return ab == ba;                            /* equal, or neither more specific */
}

/* Is every request b's path accepts also accepted by a's? Only the cases
 * that are certain (a precedes b in the same host group). */
static bool path_covers(const rt *a, const rt *b)
{
    bool takes_all = (a->path_kind == PATH_PREFIX && a->path.len == 1) ||
                     (a->path_kind == PATH_TPL && a->rest && a->nseg == 1);
    if (b->icase && !a->icase && !takes_all)
        return false;                           /* b also takes the paths in other cases */
    if (a->path_kind == PATH_PREFIX)
        return a->path.len == 1 && b->path_kind == PATH_REGEX;      /* prefix "/" */
    if (a->path_kind == PATH_REGEX)
        return b->path_kind == PATH_REGEX && gh_str_eq(a->path, b->path);
    if (a->path_kind != PATH_TPL || !a->rest)
        return false;
    size_t fixed = a->nseg - 1;
    if (b->path_kind == PATH_REGEX)
        return fixed == 0;                      /* "/{rest*}" takes every path */
    if (b->path_kind == PATH_PREFIX) {
        size_t i = 1;
        for (size_t k = 0; k < fixed; k++) {    /* each fixed segment takes the prefix's segment */
            if (i >= b->path.len)
                return false;
            const char *e = memchr(b->path.p + i, '/', b->path.len - i);
            size_t j = e ? (size_t)(e - b->path.p) : b->path.len;
            seg s = { gh_str_from(b->path.p + i, j - i), SEG_LIT };
            if (!seg_compatible(&a->segs[k], &s, a->icase))
                return false;
            i = j + 1;
        }
        return true;
    }
    /* A later template is never covered by one: it would need as many
     * literal segments in the same places, i.e. the same key (a tie). */
    return false;
}

static bool can_cover(const rt *t)
{
    return !t->has_cond && ((t->path_kind == PATH_PREFIX && t->path.len == 1) ||
                            (t->path_kind == PATH_TPL && t->rest) || t->path_kind == PATH_REGEX);
}

/* Ties: routes with an equal sort key are adjacent, so only those are
 * compared. Shadows: only routes that can cover others (no conditions and
 * prefix "/", a {rest*} template or a regex) are kept as candidates. */
bool gh_rt_analyze_group(const gh_router *r, size_t b, size_t e, gh_diag *d)
{
    const rt **cov = malloc((e - b) * sizeof(*cov));
    size_t ncov = 0;
    if (!cov)
        return false;
    for (size_t j = b; j < e; j++) {
        const rt *y = &r->routes[j];
        bool reported = false;
        for (size_t i = j; y->path_kind != PATH_REGEX && i-- > b && !reported;) {
            const rt *x = &r->routes[i];
            if (gh_rt_cmp_path_key(x, y) != 0)
                break;
            if (is_tie(x, y)) {
                const rt *first = x->pos < y->pos ? x : y, *second = x->pos < y->pos ? y : x;
                gh_diag_error(d, second->cfg->mark, "route '%.*s' ties with route '%.*s' (line %u): both "
                              "match the same requests with equal precedence; make one more specific",
                              RNAME(second->cfg), RNAME(first->cfg), first->cfg->mark.line);
                reported = true;
            }
        }
        for (size_t k = 0; k < ncov && !reported; k++) {
            if (path_covers(cov[k], y)) {
                gh_diag_warn(d, y->cfg->mark, "route '%.*s' can never match: route '%.*s' (line %u) "
                             "takes precedence and matches all its requests", RNAME(y->cfg),
                             RNAME(cov[k]->cfg), cov[k]->cfg->mark.line);
                reported = true;
            }
        }
        if (can_cover(y))
            cov[ncov++] = y;
    }
    free(cov);
    return true;
}

/* ---- rewrite template ---- */

/* rewrite.path may only use names the match captures (rewrite.c fills them). */
void gh_rt_check_rewrite(const rt *t, gh_diag *d)
{
    const gh_route_cfg *c = t->cfg;
    gh_str p = c->rewrite.path;
    if (p.len && p.p[0] != '/')
        gh_diag_error(d, c->rewrite.mark, "route '%.*s': rewrite.path must start with '/'", RNAME(c));
    if (c->rewrite.prefix.len && c->rewrite.prefix.p[0] != '/')
        gh_diag_error(d, c->rewrite.mark, "route '%.*s': rewrite.prefix must start with '/'", RNAME(c));
    gh_tpl_ph ph;
    for (size_t i = 0; gh_tpl_next(p, i, &ph); i = ph.end) {
        gh_str name = ph.name;
        bool found = false;
        for (size_t k = 0; k < t->nseg && !found; k++)
            found = t->segs[k].kind != SEG_LIT && gh_str_eq(t->segs[k].text, name);
        for (size_t k = 0; k < t->nnames && !found; k++)
            found = gh_str_eq(t->names[k].name, name);
        if (!ph.closed || !found) {
            gh_diag_error(d, c->rewrite.mark, "route '%.*s': rewrite.path uses {%.*s}, which the "
                          "match does not capture", RNAME(c), (int)name.len, name.p);
            return;
        }
    }
}
