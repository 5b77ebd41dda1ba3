/* tpl_index.c — the template routes of each host group as a tree over path
 * segments, so matching a template costs what the request's path is long,
 * not what the route table is (issue "10,000 routes cost what 10 do").
 *
 * Each node stands for a run of leading segments; a literal segment is a
 * hash-table edge (parent, text), a {name} segment the node's one param
 * child, and a route sits at the node where its last fixed segment ends
 * (its `end` list, or its `rest` list for a trailing {name*}). The tree is a
 * filter only: the walk returns every route whose shape fits, in precedence
 * order, and router.c checks each one fully (tpl_match, conditions) exactly
 * as the linear scan did, so the winner and the 405 Allow set are the
 * linear order's. Built once per snapshot; read-only and allocation-free
 * while matching. */
#include "route/router_int.h"
#include <strings.h>

static uint32_t edge_hash(uint32_t parent, bool icase, const char *p, size_t n)
{
    uint32_t h = (2166136261u ^ parent) * 16777619u;
    h = (h ^ (uint32_t)icase) * 16777619u;
    if (icase)
        for (size_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)gh_lower(p[i])) * 16777619u;
    else
        for (size_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static uint32_t edge_find(const gh_router *r, uint32_t parent, bool icase, const char *p, size_t n)
{
    uint32_t h = edge_hash(parent, icase, p, n);
    for (size_t i = h & r->temask;; i = (i + 1) & r->temask) {
        const tedge *e = &r->tedges[i];
        if (!e->key.p)
            return 0;
        if (e->hash == h && e->parent == parent && e->icase == icase && e->key.len == n &&
            (icase ? strncasecmp(e->key.p, p, n) == 0 : memcmp(e->key.p, p, n) == 0))
            return e->child;
    }
}

static uint32_t new_node(gh_router *r)
{
    r->tnodes[r->ntnodes] = (tnode){ 0, 0, 0 };
    return (uint32_t)r->ntnodes++;
}

/* The child of parent for a literal segment, made if missing. */
static uint32_t lit_child(gh_router *r, uint32_t parent, bool icase, gh_str s)
{
    uint32_t c = edge_find(r, parent, icase, s.p, s.len);
    if (c)
        return c;
    c = new_node(r);
    uint32_t h = edge_hash(parent, icase, s.p, s.len);
    size_t i = h & r->temask;
    while (r->tedges[i].key.p)
        i = (i + 1) & r->temask;
    /* an empty segment ("/a/") still needs a non-NULL key */
    r->tedges[i] = (tedge){ .key = { s.p ? s.p : "", s.len }, .hash = h, .parent = parent, .child = c,
                            .icase = icase };
    return c;
}

bool gh_tpl_index_build(gh_router *r)
{
    size_t segs = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->routes[i].path_kind == PATH_TPL)
            segs += r->routes[i].nseg;
    if (!segs)
        return true;
    size_t cap = 16;
    while (cap < 2 * segs)
        cap <<= 1;
    r->tnodes = gh_arena_zalloc(&r->arena, (segs + r->ngroups + 1) * sizeof(tnode));
    r->tedges = gh_arena_zalloc(&r->arena, cap * sizeof(tedge));
    if (!r->tnodes || !r->tedges)
        return false;
    r->temask = cap - 1;
    r->ntnodes = 1;
    for (size_t gi = 0; gi < r->ngroups; gi++) {
        group *g = &r->groups[gi];
        if (g->tpl_b == g->tpl_e)
            continue;
        g->troot = new_node(r);
        /* last to first, each prepended: every list ends up ascending */
        for (size_t k = g->tpl_e; k-- > g->tpl_b;) {
            rt *t = &r->routes[k];
            uint32_t n = g->troot;
            r->has_itpl |= t->icase;
            for (size_t s = 0; s < t->nseg && t->segs[s].kind != SEG_REST; s++) {
                if (t->segs[s].kind == SEG_LIT) {
                    n = lit_child(r, n, t->icase, t->segs[s].text);
                } else {
                    if (!r->tnodes[n].param) {
                        uint32_t c = new_node(r);   /* may not move r->tnodes: preallocated */
                        r->tnodes[n].param = c;
                    }
                    n = r->tnodes[n].param;
                }
            }
            uint32_t *list = t->rest ? &r->tnodes[n].rest : &r->tnodes[n].end;
            t->tnext = *list;
            *list = (uint32_t)k + 1;
        }
    }
    return true;
}

static bool add_list(const gh_router *r, uint32_t x, uint32_t *out, size_t *n, size_t cap)
{
    for (; x; x = r->routes[x - 1].tnext) {
        if (*n == cap)
            return false;
        out[(*n)++] = x - 1;
    }
    return true;
}

size_t gh_tpl_candidates(const gh_router *r, const group *g, gh_str path, uint32_t *out, size_t cap)
{
    struct step { uint32_t node, at; bool more; } st[32];
    size_t sp = 0, n = 0;
    st[sp++] = (struct step){ g->troot, 1, path.len >= 1 };   /* as tpl_match walks segments */
    while (sp) {
        uint32_t node = st[sp - 1].node, at = st[sp - 1].at;
        bool more = st[sp - 1].more;
        sp--;
        const tnode *t = &r->tnodes[node];
        if (!add_list(r, t->rest, out, &n, cap))
            return (size_t)-1;
        if (!more) {
            if (!add_list(r, t->end, out, &n, cap))
                return (size_t)-1;
            continue;
        }
        const char *e = memchr(path.p + at, '/', path.len - at);
        uint32_t j = e ? (uint32_t)(e - path.p) : (uint32_t)path.len;
        uint32_t kids[3] = {
            edge_find(r, node, false, path.p + at, j - at),
            r->has_itpl ? edge_find(r, node, true, path.p + at, j - at) : 0,
            j > at ? t->param : 0,                     /* a {name} takes a non-empty segment */
        };
        for (size_t k = 0; k < 3; k++) {
            if (!kids[k])
                continue;
            if (sp == sizeof(st) / sizeof(st[0]))
                return (size_t)-1;
            st[sp++] = (struct step){ kids[k], j + 1, j < path.len };
        }
    }
    for (size_t i = 1; i < n; i++) {                  /* few candidates: insertion sort */
        uint32_t v = out[i];
        size_t k = i;
        for (; k && out[k - 1] > v; k--)
            out[k] = out[k - 1];
        out[k] = v;
    }
    return n;
}
