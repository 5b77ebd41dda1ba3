/* router.c — the compiled route table and request matching (SPEC §4, §12.3, §12.4).
 *
 * Build: every route is compiled (host class, path kind, template segments,
 * PCRE2 code, method set) and the table sorted by one total order:
 *   1. host: exact < wildcard (longer suffix first) < none;
 *   2. path: exact < template < prefix (longer first) < regex (file order);
 *      templates: more literal segments first, then without {rest*} before
 *      with, then more segments first;
 *   3. conditions (methods/headers/query) before none; among routes with
 *      conditions, more conditions first, then fewer methods — so a route
 *      whose conditions strictly imply another's (same path) always wins.
 * Routes equal in that order that can match one request are a tie (error);
 * that check, the shadowed-route warnings and the rewrite-template check
 * are in route_check.c, the types both files use in router_int.h.
 *
 * Match: the first route in that order matching fully. Candidates come from
 * an open-addressing hash table keyed by (kind, host group, string): exact
 * hosts, wildcard suffixes (tried at each '.' of the request host, longest
 * first), exact paths and prefixes (tried at each '/' of the path, longest
 * first). Templates and regexes are scanned per host group. No allocation,
 * no locks: the router is read-only after build and shared by workers. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/template.h"
#include "route/router_int.h"

/* The method's GH_M_* bit; 0 for an extension method. */
static uint32_t method_bit(gh_str m)
{
    uint32_t bit = gh_method_bit(m.p, m.len);
    return bit == GH_M_OTHER ? 0 : bit;
}

bool gh_rt_ext_has(const rt *t, gh_str m)
{
    for (size_t i = 0; i < t->next; i++)
        if (gh_str_eq(t->ext[i], m))
            return true;
    return false;
}

/* ---- hash table ---- */

static uint32_t hash_key(uint32_t kind, uint32_t grp, const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    h = (h ^ kind) * 16777619u;
    h = (h ^ grp) * 16777619u;
    bool icase = kind != K_EXACT && kind != K_PREFIX;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)(icase ? gh_lower(p[i]) : p[i])) * 16777619u;
    return h;
}

static const hent *ht_find(const gh_router *r, uint32_t kind, uint32_t grp, const char *p, size_t n)
{
    if (!r->ht)
        return NULL;
    uint32_t h = hash_key(kind, grp, p, n);
    for (size_t i = h & r->htmask;; i = (i + 1) & r->htmask) {
        const hent *e = &r->ht[i];
        if (!e->key.p)
            return NULL;
        if (e->hash == h && e->kind == kind && e->group == grp && e->key.len == n &&
            (kind != K_EXACT && kind != K_PREFIX ? strncasecmp(e->key.p, p, n) == 0
                                                 : memcmp(e->key.p, p, n) == 0))
            return e;
    }
}

static void ht_put(gh_router *r, uint32_t kind, uint32_t grp, gh_str key, size_t b, size_t e)
{
    uint32_t h = hash_key(kind, grp, key.p, key.len);
    size_t i = h & r->htmask;
    while (r->ht[i].key.p)
        i = (i + 1) & r->htmask;
    r->ht[i] = (hent){ .key = key, .hash = h, .kind = kind, .group = grp,
                       .begin = (uint32_t)b, .end = (uint32_t)e };
}

/* ---- thread-local PCRE2 match data ----
 * gh_router_match runs on several workers at once over one router, so the
 * ovector cannot live in the router. Each thread lazily creates one match
 * block (the only allocation, once per thread, or again if a newer router
 * has more capture groups) and reuses it; PCRE2 10.41+ also keeps its
 * backtracking frames there, so matching itself does not allocate. A
 * pthread key frees the block when the thread exits. */
static _Thread_local pcre2_match_data *tl_md;
static _Thread_local uint32_t tl_pairs;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t md_key;
static bool md_key_ok;

static void md_exit(void *md)
{
    pcre2_match_data_free(md);
    tl_md = NULL;
    tl_pairs = 0;
}

static void md_key_init(void) { md_key_ok = pthread_key_create(&md_key, md_exit) == 0; }

void gh_router_thread_done(void)
{
    if (tl_md)
        pcre2_match_data_free(tl_md);
    if (md_key_ok)
        pthread_setspecific(md_key, NULL);
    tl_md = NULL;
    tl_pairs = 0;
}

static pcre2_match_data *thread_md(uint32_t pairs)
{
    if (tl_md && tl_pairs >= pairs)
        return tl_md;
    gh_router_thread_done();
    pthread_once(&md_once, md_key_init);
    tl_md = pcre2_match_data_create(pairs < 16 ? 16 : pairs, NULL);
    tl_pairs = tl_md ? (pairs < 16 ? 16 : pairs) : 0;
    if (tl_md && md_key_ok)
        pthread_setspecific(md_key, tl_md);
    return tl_md;
}

/* ---- compiling one route ---- */

static gh_str lower_copy(gh_arena *a, const char *p, size_t n)
{
    char *s = gh_arena_strndup(a, p, n);
    for (size_t i = 0; s && i < n; i++)
        s[i] = gh_lower(s[i]);
    return (gh_str){ s, s ? n : 0 };
}

static bool compile_host(gh_arena *a, const gh_route_cfg *c, rt *t, gh_diag *d)
{
    gh_str h = c->match.host;
    if (h.len && h.p[h.len - 1] == '.')          /* "example.com." is "example.com" */
        h.len--;
    if (h.len == 0 || (h.len == 1 && h.p[0] == '*')) {
        t->host_kind = HOST_ANY;
        return true;
    }
    bool wild = h.len > 2 && h.p[0] == '*' && h.p[1] == '.';
    gh_str body = wild ? gh_str_from(h.p + 1, h.len - 1) : h;
    const char *colon = memchr(body.p, ':', body.len);
    if (memchr(body.p, '*', body.len) || (wild && body.len < 2)) {
        gh_diag_error(d, c->match.host_mark, "route '%.*s': host '%.*s': a wildcard is '*.' followed "
                      "by a domain, as in *.example.com", RNAME(c), (int)h.len, h.p);
        return false;
    }
    if (colon && body.p[0] != '[') {
        gh_diag_error(d, c->match.host_mark, "route '%.*s': host '%.*s' carries a port; hosts are "
                      "matched without the port", RNAME(c), (int)h.len, h.p);
        return false;
    }
    t->host_kind = wild ? HOST_WILD : HOST_EXACT;
    t->host = lower_copy(a, body.p, body.len);
    return true;
}

/* Config paths go through the same normalization as requests (non-strict,
 * so that whatever a user writes is kept), so "/a//b" or "/%7euser" in the
 * file still match what clients send. */
static bool normalize_cfg_path(gh_arena *a, const gh_route_cfg *c, gh_str in, gh_str *out, gh_diag *d)
{
    char *buf = gh_arena_alloc(a, in.len + 1);
    size_t n = 0;
    int rc = buf ? gh_path_normalize(in.p, in.len, buf, &n, false) : GH_PATH_BAD;
    if (rc != GH_PATH_OK) {
        gh_diag_error(d, c->match.path_mark, "route '%.*s': path '%.*s' %s", RNAME(c), (int)in.len, in.p,
                      rc == GH_PATH_CLIMB ? "climbs above '/'"
                                          : "must start with '/' and hold no spaces or control characters");
        return false;
    }
    *out = gh_str_from(buf, n);
    return true;
}

static bool compile_template(gh_arena *a, const gh_route_cfg *c, rt *t, gh_diag *d)
{
    gh_str p = t->path;
    size_t n = 1;
    for (size_t i = 1; i < p.len; i++)
        n += p.p[i] == '/';
    t->segs = gh_arena_zalloc(a, n * sizeof(seg));
    if (!t->segs)
        return false;
    bool lead = true;
    size_t nparams = 0;
    for (size_t i = 1, k = 0; k < n; k++) {
        const char *e = memchr(p.p + i, '/', p.len - i);
        size_t j = e ? (size_t)(e - p.p) : p.len;
        gh_str s = gh_str_from(p.p + i, j - i);
        seg *sg = &t->segs[k];
        const char *why = NULL;
        gh_str name;
        int kind = gh_tpl_segment(s, &name);
        if (kind != GH_TPL_LIT) {
            bool star = kind == GH_TPL_REST;
            if (kind == GH_TPL_BAD)
                why = "a parameter is a whole segment, {name} or {name*}";
            else if (star && k != n - 1)
                why = "{name*} must be the last segment";
            else if (++nparams > GH_MAX_PARAMS)
                why = "too many parameters";
            for (size_t q = 0; !why && q < k; q++)
                if (t->segs[q].kind != SEG_LIT && gh_str_eq(t->segs[q].text, name))
                    why = "a parameter name appears twice";
            sg->kind = star ? SEG_REST : SEG_PARAM;
            sg->text = name;
            t->rest = star;
            lead = false;
        } else {
            sg->kind = SEG_LIT;
            sg->text = s;
            t->nlit += s.len > 0;
            if (lead)
                t->lead_len = j;
        }
        if (why) {
            gh_diag_error(d, c->match.path_mark, "route '%.*s': path template '%.*s': %s",
                          RNAME(c), (int)p.len, p.p, why);
            return false;
        }
        i = j + 1;
    }
    t->nseg = n;
    return true;
}

static bool compile_regex(gh_arena *a, const gh_route_cfg *c, rt *t, uint32_t *max_pairs, gh_diag *d)
{
    int err;
    PCRE2_SIZE off;
    t->re = pcre2_compile((PCRE2_SPTR)t->path.p, t->path.len, t->icase ? PCRE2_CASELESS : 0, &err, &off, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        gh_diag_error(d, c->match.path_mark, "route '%.*s': invalid regex at offset %zu: %s",
                      RNAME(c), (size_t)off, (const char *)msg);
        return false;
    }
    (void)pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE);   /* without JIT the interpreter runs */
    uint32_t captures = 0, count = 0, size = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(t->re, PCRE2_INFO_CAPTURECOUNT, &captures);
    pcre2_pattern_info(t->re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(t->re, PCRE2_INFO_NAMEENTRYSIZE, &size);
    pcre2_pattern_info(t->re, PCRE2_INFO_NAMETABLE, &table);
    if (captures + 1 > *max_pairs)
        *max_pairs = captures + 1;
    if (count > GH_MAX_PARAMS) {
        gh_diag_error(d, c->match.path_mark, "route '%.*s': regex has %u named groups; at most %d",
                      RNAME(c), count, GH_MAX_PARAMS);
        return false;
    }
    t->names = gh_arena_zalloc(a, (count ? count : 1) * sizeof(re_name));
    for (uint32_t i = 0; t->names && i < count; i++) {
        PCRE2_SPTR e = table + (size_t)i * size;     /* 2-byte group number, then the name */
        t->names[i].group = ((uint32_t)e[0] << 8) | e[1];
        t->names[i].name = gh_str_c((const char *)e + 2);
    }
    t->nnames = count;
    return t->names != NULL;
}

static bool compile_route(gh_router *r, const gh_route_cfg *c, rt *t, gh_diag *d)
{
    gh_arena *a = &r->arena;
    t->cfg = c;
    t->icase = c->match.case_insensitive;
    bool ok = compile_host(a, c, t, d);
    int kinds = (c->match.prefix.len > 0) + (c->match.path.len > 0) + (c->match.regex.len > 0);
    if (kinds > 1) {
        gh_diag_error(d, c->match.path_mark, "route '%.*s': match by one of prefix, path or regex, "
                      "not several", RNAME(c));
        return false;
    }
    if (c->match.regex.len) {
        t->path_kind = PATH_REGEX;
        t->path = c->match.regex;
        ok = compile_regex(a, c, t, &r->max_pairs, d) && ok;
    } else if (c->match.path.len) {
        ok = normalize_cfg_path(a, c, c->match.path, &t->path, d) && ok;
        t->path_kind = memchr(c->match.path.p, '{', c->match.path.len) ? PATH_TPL : PATH_EXACT;
        if (ok && t->path_kind == PATH_TPL)
            ok = compile_template(a, c, t, d);
    } else {                                    /* no path condition: every path */
        gh_str p = c->match.prefix.len ? c->match.prefix : GH_STR("/");
        t->path_kind = PATH_PREFIX;
        ok = normalize_cfg_path(a, c, p, &t->path, d) && ok;
        while (t->path.len > 1 && t->path.p[t->path.len - 1] == '/')
            t->path.len--;
    }
    if (ok && t->icase && t->path_kind != PATH_REGEX)   /* one key for "/A" and "/a" (ties) */
        for (size_t i = 0; i < t->path.len; i++)
            ((char *)t->path.p)[i] = gh_lower(t->path.p[i]);
    /* Methods: from the bits and from the names (whichever the loader set). */
    t->mbits = c->match.methods & ~(uint32_t)GH_M_OTHER;
    t->ext = gh_arena_zalloc(a, (c->match.nmethods + 1) * sizeof(gh_str));
    if (!t->ext)
        return false;
    for (size_t i = 0; i < c->match.nmethods; i++) {
        gh_str m = c->match.method_names[i];
        uint32_t bit = method_bit(m);
        bool dup = false;
        for (size_t j = 0; j < t->next; j++)
            dup |= gh_str_eq(t->ext[j], m);
        if (bit)
            t->mbits |= bit;
        else if (!dup && m.len)
            t->ext[t->next++] = m;
    }
    if (t->mbits & GH_M_GET)        /* a route that serves GET serves HEAD (nginx, Kong) */
        t->mbits |= GH_M_HEAD;
    t->any_method = t->mbits == 0 && t->next == 0;
    t->mcount = (size_t)__builtin_popcount(t->mbits) + t->next;
    t->ncond = !t->any_method + c->match.nheaders + c->match.nquery;
    t->has_cond = t->ncond > 0;
    return ok;
}

/* ---- precedence ---- */

static int cmp_str(gh_str a, gh_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

#define CMP(x, y) do { if ((x) != (y)) return (x) < (y) ? -1 : 1; } while (0)

static int cmp_host(const rt *a, const rt *b)
{
    CMP(a->host_kind, b->host_kind);
    if (a->host_kind == HOST_WILD)
        CMP(b->host.len, a->host.len);          /* longer suffix first */
    return cmp_str(a->host, b->host);           /* only groups equal hosts together */
}

/* The path key: routes equal in it (and in host) are tie candidates. */
int gh_rt_cmp_path_key(const rt *a, const rt *b)
{
    CMP(a->path_kind, b->path_kind);
    switch (a->path_kind) {
    case PATH_EXACT:
        CMP(a->icase, b->icase);                /* a case-sensitive route is the more specific */
        return cmp_str(a->path, b->path);
    case PATH_TPL:
        CMP(b->nlit, a->nlit);
        CMP(a->rest, b->rest);
        CMP(b->nseg, a->nseg);
        CMP(a->icase, b->icase);
        return 0;
    case PATH_PREFIX:
        CMP(b->path.len, a->path.len);
        CMP(a->icase, b->icase);
        return cmp_str(a->path, b->path);
    default:
        CMP(a->pos, b->pos);                    /* regex: file order, never a tie */
        return 0;
    }
}

static int cmp_rt(const void *pa, const void *pb)
{
    const rt *a = pa, *b = pb;
    int c = cmp_host(a, b);
    if (!c)
        c = gh_rt_cmp_path_key(a, b);
    if (c)
        return c;
    CMP(b->has_cond, a->has_cond);
    CMP(b->ncond, a->ncond);
    CMP(a->mcount, b->mcount);
    if (a->path_kind == PATH_TPL && (c = cmp_str(a->path, b->path)))
        return c;
    CMP(a->pos, b->pos);
    return 0;
}

/* ---- build ---- */

static bool index_routes(gh_router *r)
{
    size_t cap = 16;
    while (cap < 2 * (r->n + r->n + 1))
        cap <<= 1;
    r->ht = gh_arena_zalloc(&r->arena, cap * sizeof(hent));
    r->groups = gh_arena_zalloc(&r->arena, (r->n + 1) * sizeof(group));
    if (!r->ht || !r->groups)
        return false;
    r->htmask = cap - 1;
    r->any_group = -1;
    for (size_t i = 0; i < r->n;) {
        const rt *h = &r->routes[i];
        uint32_t gid = (uint32_t)r->ngroups++;
        group *g = &r->groups[gid];
        size_t e = i;
        while (e < r->n && cmp_host(h, &r->routes[e]) == 0)
            e++;
        for (size_t k = i; k < e;) {
            const rt *t = &r->routes[k];
            size_t m = k + 1;
            if (t->path_kind == PATH_EXACT || t->path_kind == PATH_PREFIX) {
                while (m < e && r->routes[m].path_kind == t->path_kind && r->routes[m].icase == t->icase &&
                       gh_str_eq(r->routes[m].path, t->path))
                    m++;
                bool exact = t->path_kind == PATH_EXACT;
                ht_put(r, exact ? (t->icase ? K_IEXACT : K_EXACT) : (t->icase ? K_IPREFIX : K_PREFIX), gid,
                       t->path, k, m);
                *(exact ? (t->icase ? &g->iexact : &g->exact) : (t->icase ? &g->iprefix : &g->prefix)) = true;
            } else {
                while (m < e && r->routes[m].path_kind == t->path_kind)
                    m++;
                if (t->path_kind == PATH_TPL)
                    g->tpl_b = k, g->tpl_e = m;
                else
                    g->re_b = k, g->re_e = m;
            }
            k = m;
        }
        if (h->host_kind == HOST_ANY)
            r->any_group = gid;
        else
            ht_put(r, h->host_kind == HOST_EXACT ? K_HOST : K_WILD, 0, h->host, gid, gid + 1);
        r->has_wild |= h->host_kind == HOST_WILD;
        i = e;
    }
    return true;
}

gh_router *gh_router_build(const gh_config *cfg, gh_diag *diag)
{
    gh_diag local;
    gh_diag *d = diag;
    if (!d) {
        gh_diag_init(&local, NULL);
        d = &local;
    }
    size_t errors0 = d->errors;
    gh_router *r = calloc(1, sizeof(*r));
    if (!r)
        goto out;
    gh_arena_init(&r->arena, 16384);
    r->n = cfg->nroutes;
    r->routes = gh_arena_zalloc(&r->arena, (r->n + 1) * sizeof(rt));
    if (!r->routes)
        goto fail;
    bool ok = true;
    for (size_t i = 0; i < r->n; i++) {
        r->routes[i].pos = i;
        ok = compile_route(r, &cfg->routes[i], &r->routes[i], d) && ok;
    }
    if (!ok || d->errors != errors0)
        goto fail;
    qsort(r->routes, r->n, sizeof(rt), cmp_rt);
    if (!index_routes(r) || !gh_tpl_index_build(r))
        goto fail;
    for (size_t i = 0; i < r->n; i++)
        gh_rt_check_rewrite(&r->routes[i], d);
    for (size_t i = 0; i < r->n;) {
        size_t e = i;
        while (e < r->n && cmp_host(&r->routes[i], &r->routes[e]) == 0)
            e++;
        if (!gh_rt_analyze_group(r, i, e, d))
            goto fail;
        i = e;
    }
    if (d->errors == errors0)
        goto out;
fail:
    if (d->errors == errors0)
        gh_diag_error(d, (gh_mark){ 0, 0 }, "routes: out of memory");
    gh_router_free(r);
    r = NULL;
out:
    if (d == &local)
        gh_diag_free(&local);
    return r;
}

void gh_router_free(gh_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->routes && i < r->n; i++)
        if (r->routes[i].re)
            pcre2_code_free(r->routes[i].re);
    gh_arena_free(&r->arena);
    free(r);
}

size_t gh_router_count(const gh_router *r) { return r ? r->n : 0; }

const gh_route_cfg *gh_router_at(const gh_router *r, size_t i)
{
    return r && i < r->n ? r->routes[i].cfg : NULL;
}

/* ---- matching ---- */

typedef struct scan {
    const gh_router *r;
    const gh_route_request *req;
    gh_route_match *out;
    uint32_t mbit;                /* of the request method; 0 = extension method */
    uint32_t allow;               /* 405: methods of routes that matched all but the method */
    const rt *allow_ext[8];       /* 405: routes contributing extension methods */
    size_t nallow_ext;
} scan;

/* The first header of that name decides (names case-insensitive, values exact). */
static bool headers_ok(const gh_route_cfg *c, const gh_route_request *req)
{
    for (size_t i = 0; i < c->match.nheaders; i++) {
        const gh_kv *kv = &c->match.headers[i];
        size_t k = 0;
        while (k < req->nheaders &&
               !gh_str_ieq(gh_str_from(req->headers[k].name, req->headers[k].name_len), kv->name))
            k++;
        if (k == req->nheaders || !gh_str_eq(gh_str_from(req->headers[k].value, req->headers[k].value_len), kv->value))
            return false;
    }
    return true;
}

/* Compare a raw query component with a configured string after decoding
 * %XX and '+' (form encoding) on the fly. */
static bool dec_eq(const char *s, size_t n, gh_str want)
{
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ', i++;
        } else if (c == '%' && i + 2 < n && gh_hexval((unsigned char)s[i + 1]) >= 0 &&
                   gh_hexval((unsigned char)s[i + 2]) >= 0) {
            c = (unsigned char)(gh_hexval((unsigned char)s[i + 1]) << 4 | gh_hexval((unsigned char)s[i + 2]));
            i += 3;
        } else {
            i++;
        }
        if (k >= want.len || (unsigned char)want.p[k] != c)
            return false;
    }
    return k == want.len;
}

/* Each configured parameter must be present; its first occurrence decides. */
static bool query_ok(const gh_route_cfg *c, gh_str q)
{
    for (size_t i = 0; i < c->match.nquery; i++) {
        const gh_kv *kv = &c->match.query[i];
        bool ok = false, seen = false;
        for (size_t p = 0; p < q.len && !seen;) {
            const char *amp = memchr(q.p + p, '&', q.len - p);
            size_t e = amp ? (size_t)(amp - q.p) : q.len;
            const char *eq = memchr(q.p + p, '=', e - p);
            size_t ne = eq ? (size_t)(eq - q.p) : e;
            if (dec_eq(q.p + p, ne - p, kv->name)) {
                seen = true;
                ok = eq ? dec_eq(eq + 1, e - ne - 1, kv->value) : kv->value.len == 0;
            }
            p = e + 1;
        }
        if (!ok)
            return false;
    }
    return true;
}

/* A route without `methods` takes every method but CONNECT: CONNECT would
 * make the gateway a tunnel to anywhere, so only a route that lists it does. */
#define ANY_BUT_CONNECT ((uint32_t)((GH_M_CONNECT << 1) - 1) & ~(uint32_t)GH_M_CONNECT)

static bool method_ok(const scan *s, const rt *t)
{
    if (t->any_method)
        return s->mbit != GH_M_CONNECT;
    if (s->mbit)
        return (t->mbits & s->mbit) != 0;
    return gh_rt_ext_has(t, s->req->method);
}

/* 0: headers or query do not match; 1: all but the method; 2: everything. */
static int conds(const scan *s, const rt *t)
{
    if (!headers_ok(t->cfg, s->req) || !query_ok(t->cfg, s->req->query))
        return 0;
    return method_ok(s, t) ? 2 : 1;
}

static bool settle(scan *s, const rt *t, int c)
{
    if (c == 2) {
        s->out->route = t->cfg;
        return true;
    }
    s->allow |= t->any_method ? ANY_BUT_CONNECT : t->mbits;
    if (t->next && s->nallow_ext < sizeof(s->allow_ext) / sizeof(s->allow_ext[0]))
        s->allow_ext[s->nallow_ext++] = t;
    return false;
}

static bool tpl_match(const rt *t, gh_str path, gh_route_match *out)
{
    size_t i = 1, np = 0;
    bool more = path.len >= 1;    /* a segment (maybe empty) starts at i */
    for (size_t k = 0; k < t->nseg; k++) {
        const seg *sg = &t->segs[k];
        if (sg->kind == SEG_REST) {
            out->params[np++] = (gh_param){ sg->text, more ? gh_str_from(path.p + i, path.len - i)
                                                           : gh_str_from(path.p + path.len, 0) };
            more = false;
            break;
        }
        if (!more)
            return false;
        const char *e = memchr(path.p + i, '/', path.len - i);
        size_t j = e ? (size_t)(e - path.p) : path.len;
        gh_str v = gh_str_from(path.p + i, j - i);
        if (sg->kind == SEG_LIT ? !(t->icase ? gh_str_ieq(v, sg->text) : gh_str_eq(v, sg->text)) : v.len == 0)
            return false;
        if (sg->kind == SEG_PARAM)
            out->params[np++] = (gh_param){ sg->text, v };
        more = j < path.len;
        i = j + 1;
    }
    if (more)
        return false;
    out->nparams = np;
    out->matched_prefix = gh_str_from(path.p, t->lead_len);
    return true;
}

static bool re_match(const gh_router *r, const rt *t, gh_str path, gh_route_match *out)
{
    pcre2_match_data *md = thread_md(r->max_pairs);
    if (!md || pcre2_match(t->re, (PCRE2_SPTR)path.p, path.len, 0, 0, md, NULL) < 0)
        return false;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    uint32_t pairs = pcre2_get_ovector_count(md);
    size_t np = 0;
    for (size_t k = 0; k < t->nnames; k++) {
        uint32_t g = t->names[k].group;
        if (g < pairs && ov[2 * g] != PCRE2_UNSET)
            out->params[np++] = (gh_param){ t->names[k].name,
                                            gh_str_from(path.p + ov[2 * g], ov[2 * g + 1] - ov[2 * g]) };
    }
    out->nparams = np;
    out->matched_prefix = gh_str_from(path.p, 0);
    return true;
}

/* An exact or prefix route t whose path matched (matched: what it took). */
static bool try_one(scan *s, const rt *t, gh_str matched)
{
    int c = conds(s, t);
    if (!c)
        return false;
    s->out->nparams = 0;
    s->out->matched_prefix = matched;
    if (t->path_kind == PATH_PREFIX) {
        /* a prefix route offers what follows the prefix as {rest} */
        gh_str path = s->req->path;
        size_t at = matched.len < path.len && path.p[matched.len] == '/' ? matched.len + 1 : matched.len;
        if (matched.len == 1)
            at = 1;
        s->out->params[0] = (gh_param){ GH_STR("rest"), gh_str_from(path.p + at, path.len - at) };
        s->out->nparams = 1;
    }
    return settle(s, t, c);
}

static bool try_run(scan *s, const hent *e, gh_str matched)
{
    for (size_t i = e ? e->begin : 0; e && i < e->end; i++)
        if (try_one(s, &s->r->routes[i], matched))
            return true;
    return false;
}

static bool try_tpl(scan *s, const rt *t)
{
    int c = conds(s, t);
    return c && tpl_match(t, s->req->path, s->out) && settle(s, t, c);
}

static bool try_re(scan *s, const rt *t)
{
    int c = conds(s, t);
    return c && re_match(s->r, t, s->req->path, s->out) && settle(s, t, c);
}

/* Templates in precedence order: the tree's candidates, or all of them when
 * more shapes fit than the buffer holds. Always the tree, even for a few
 * templates: a scan is cheaper for some paths and dearer for others (the
 * plain "/" among them), and only the tree costs the same at any size. */
static bool try_templates(scan *s, const group *g)
{
    const gh_router *r = s->r;
    if (g->troot) {
        uint32_t cand[GH_TPL_CAND];
        size_t nc = gh_tpl_candidates(r, g, s->req->path, cand, GH_TPL_CAND);
        if (nc != (size_t)-1) {
            for (size_t i = 0; i < nc; i++)
                if (try_tpl(s, &r->routes[cand[i]]))
                    return true;
            return false;
        }
    }
    for (size_t i = g->tpl_b; i < g->tpl_e; i++)
        if (try_tpl(s, &r->routes[i]))
            return true;
    return false;
}

static bool try_group(scan *s, uint32_t gid)
{
    const gh_router *r = s->r;
    const group *g = &r->groups[gid];
    gh_str path = s->req->path;
    if (g->exact && try_run(s, ht_find(r, K_EXACT, gid, path.p, path.len), path))
        return true;
    if (g->iexact && try_run(s, ht_find(r, K_IEXACT, gid, path.p, path.len), path))
        return true;
    if (g->tpl_b < g->tpl_e && try_templates(s, g))
        return true;
    if (g->prefix || g->iprefix) {
        /* Candidates, longest first: the path (without a trailing '/'), then
         * up to each earlier '/', then "/" itself. */
        size_t k = path.len;
        while (k > 1 && path.p[k - 1] == '/')
            k--;
        for (;;) {
            size_t n = k > 1 ? k : 1;
            if (g->prefix && try_run(s, ht_find(r, K_PREFIX, gid, path.p, n), gh_str_from(path.p, n)))
                return true;
            if (g->iprefix && try_run(s, ht_find(r, K_IPREFIX, gid, path.p, n), gh_str_from(path.p, n)))
                return true;
            if (n == 1)
                break;
            while (k > 1 && path.p[k - 1] != '/')
                k--;
            if (k > 1)
                k--;                /* path[0..k) now ends just before that '/' */
        }
    }
    for (size_t i = g->re_b; i < g->re_e; i++)   /* a regex cannot be indexed: file order */
        if (try_re(s, &r->routes[i]))
            return true;
    return false;
}

static void append(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + len + 1 > cap)
        return;
    memcpy(buf + *n, s, len);
    *n += len;
    buf[*n] = '\0';
}

static void allow_text(scan *s)
{
    gh_route_match *out = s->out;
    size_t n = 0;
    out->allow_text[0] = '\0';
    for (size_t i = 0; i < GH_NMETHODS; i++) {
        if (!(s->allow & gh_methods[i].bit))
            continue;
        if (n)
            append(out->allow_text, sizeof(out->allow_text), &n, ", ", 2);
        append(out->allow_text, sizeof(out->allow_text), &n, gh_methods[i].name, gh_methods[i].len);
    }
    for (size_t i = 0; i < s->nallow_ext; i++) {
        for (size_t j = 0; j < s->allow_ext[i]->next; j++) {
            gh_str m = s->allow_ext[i]->ext[j];
            bool dup = false;
            for (size_t k = 0; k < i && !dup; k++)
                dup = gh_rt_ext_has(s->allow_ext[k], m);
            if (dup || n + m.len + 3 > sizeof(out->allow_text))
                continue;
            if (n)
                append(out->allow_text, sizeof(out->allow_text), &n, ", ", 2);
            append(out->allow_text, sizeof(out->allow_text), &n, m.p, m.len);
            out->allow |= GH_M_OTHER;
        }
    }
}

/* The request host without ":port" and without a trailing dot. */
static gh_str bare_host(gh_str h)
{
    if (h.len && h.p[0] == '[') {
        const char *e = memchr(h.p, ']', h.len);
        if (e)
            h.len = (size_t)(e - h.p) + 1;
    } else {
        const char *c = memchr(h.p, ':', h.len);
        if (c)
            h.len = (size_t)(c - h.p);
    }
    if (h.len && h.p[h.len - 1] == '.')
        h.len--;
    return h;
}

/* The start both matchers share; false: no route can match (404). */
static bool scan_init(scan *s, const gh_router *r, const gh_route_request *req, gh_route_match *out)
{
    out->route = NULL;
    out->nparams = 0;
    out->matched_prefix = gh_str_from(req->path.p, 0);
    out->allow = 0;
    out->allow_text[0] = '\0';
    *s = (scan){ .r = r, .req = req, .out = out, .mbit = method_bit(req->method) };
    return r && req->path.p && req->path.len;
}

/* No full match: 405 with what the path's routes allow, or 404. */
static int no_match(scan *s)
{
    gh_route_match *out = s->out;
    out->nparams = 0;
    out->matched_prefix = gh_str_from(s->req->path.p, 0);
    if (!s->allow && !s->nallow_ext)
        return GH_ROUTE_NONE;
    out->allow = s->allow;
    allow_text(s);
    return GH_ROUTE_METHOD;
}

int gh_router_match(const gh_router *r, const gh_route_request *req, gh_route_match *out)
{
    scan s;
    if (!scan_init(&s, r, req, out))
        return GH_ROUTE_NONE;
    gh_str host = bare_host(req->host.p ? req->host : gh_str_from("", 0));
    if (host.len) {
        const hent *e = ht_find(r, K_HOST, 0, host.p, host.len);
        if (e && try_group(&s, e->begin))
            return GH_ROUTE_FOUND;
        /* "*.example.com" needs at least one label before ".example.com";
         * scanning dots left to right tries the longest suffix first. */
        for (size_t i = 1; r->has_wild && i < host.len; i++) {
            if (host.p[i] != '.')
                continue;
            e = ht_find(r, K_WILD, 0, host.p + i, host.len - i);
            if (e && try_group(&s, e->begin))
                return GH_ROUTE_FOUND;
        }
    }
    if (r->any_group >= 0 && try_group(&s, (uint32_t)r->any_group))
        return GH_ROUTE_FOUND;
    return no_match(&s);
}

/* ---- the linear oracle: every route in precedence order, no index ---- */

static bool host_fits(const rt *t, gh_str host)
{
    if (t->host_kind == HOST_ANY)
        return true;
    if (t->host_kind == HOST_EXACT)
        return gh_str_ieq(host, t->host);
    return host.len > t->host.len &&
           strncasecmp(host.p + host.len - t->host.len, t->host.p, t->host.len) == 0;
}

/* A prefix takes the path (trailing '/' aside) when equal to it or to the
 * part before one of its '/'; "/" takes every path. */
static bool prefix_fits(const rt *t, gh_str path, gh_str *matched)
{
    size_t k = path.len, n = t->path.len;
    while (k > 1 && path.p[k - 1] == '/')
        k--;
    *matched = gh_str_from(path.p, n);
    if (n == 1)
        return true;
    if (n > k || (n < k && path.p[n] != '/'))
        return false;
    return t->icase ? strncasecmp(path.p, t->path.p, n) == 0 : memcmp(path.p, t->path.p, n) == 0;
}

int gh_router_match_linear(const gh_router *r, const gh_route_request *req, gh_route_match *out)
{
    scan s;
    if (!scan_init(&s, r, req, out))
        return GH_ROUTE_NONE;
    gh_str host = bare_host(req->host.p ? req->host : gh_str_from("", 0)), path = req->path, m;
    for (size_t i = 0; i < r->n; i++) {
        const rt *t = &r->routes[i];
        if (!host_fits(t, host))
            continue;
        bool hit = false;
        switch (t->path_kind) {
        case PATH_EXACT:
            hit = (t->icase ? gh_str_ieq(path, t->path) : gh_str_eq(path, t->path)) && try_one(&s, t, path);
            break;
        case PATH_PREFIX:
            hit = prefix_fits(t, path, &m) && try_one(&s, t, m);
            break;
        case PATH_TPL:
            hit = try_tpl(&s, t);
            break;
        default:
            hit = try_re(&s, t);
        }
        if (hit)
            return GH_ROUTE_FOUND;
    }
    return no_match(&s);
}

/* ---- describe ---- */

void gh_router_describe(const gh_config *cfg, const gh_route_cfg *c, char *buf, size_t cap)
{
    size_t n = 0;
    if (!cap)
        return;
    buf[0] = '\0';
#define PUT(...) do { if (n < cap) { int w_ = snprintf(buf + n, cap - n, __VA_ARGS__); \
                      if (w_ > 0) n += (size_t)w_; } } while (0)
    gh_str h = gh_config_show(cfg, c->match.host);
    if (h.len == 0)
        PUT("any host");
    else
        PUT("host %.*s (%s)", (int)h.len, h.p, c->match.host.p[0] == '*' ? "wildcard" : "exact");
    if (c->match.regex.len) {
        gh_str re = gh_config_show(cfg, c->match.regex);
        PUT(", regex %.*s", (int)re.len, re.p);
    } else if (c->match.path.len) {
        gh_str p = gh_config_show(cfg, c->match.path);
        size_t lits = 0, start = 1;
        bool tpl = memchr(p.p, '{', p.len) != NULL;
        for (size_t i = 1; i <= p.len; i++)
            if (i == p.len || p.p[i] == '/') {
                lits += i > start && p.p[start] != '{';
                start = i + 1;
            }
        if (tpl)
            PUT(", path %.*s (template, %zu literal segment%s)", (int)p.len, p.p, lits, lits == 1 ? "" : "s");
        else
            PUT(", path %.*s (exact)", (int)p.len, p.p);
    } else {
        gh_str p = c->match.prefix.len ? gh_config_show(cfg, c->match.prefix) : GH_STR("/");
        PUT(", prefix %.*s", (int)p.len, p.p);
    }
    if (c->match.case_insensitive)
        PUT(" (case-insensitive)");
    uint32_t bits = c->match.methods;
    for (size_t i = 0; i < c->match.nmethods; i++)
        bits |= method_bit(c->match.method_names[i]);
    if (bits & GH_M_GET)
        bits |= GH_M_HEAD;
    const char *sep = ", methods ";
    for (size_t i = 0; i < GH_NMETHODS; i++)
        if (bits & gh_methods[i].bit) {
            PUT("%s%s", sep, gh_methods[i].name);
            sep = ", ";
        }
    for (size_t i = 0; i < c->match.nmethods; i++)
        if (!method_bit(c->match.method_names[i])) {
            PUT("%s%.*s", sep, (int)c->match.method_names[i].len, c->match.method_names[i].p);
            sep = ", ";
        }
    /* Values from ${ENV} are secrets (SPEC §12.16). */
    for (size_t i = 0; i < c->match.nheaders; i++) {
        const gh_kv *kv = &c->match.headers[i];
        PUT("%s%.*s: %.*s", i ? ", " : ", headers ", (int)kv->name.len, kv->name.p,
            kv->secret ? 3 : (int)kv->value.len, kv->secret ? "***" : kv->value.p);
    }
    for (size_t i = 0; i < c->match.nquery; i++) {
        const gh_kv *kv = &c->match.query[i];
        PUT("%s%.*s=%.*s", i ? ", " : ", query ", (int)kv->name.len, kv->name.p,
            kv->secret ? 3 : (int)kv->value.len, kv->secret ? "***" : kv->value.p);
    }
#undef PUT
}
