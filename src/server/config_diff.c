/* config_diff.c — `gatehouse diff` (see config_diff.h). Routes are paired
 * by name and compared facet by facet in the words `routes` prints; the
 * requests are samples derived from each route's match, answered by the
 * real dispatcher in dry-run mode (DESIGN "One dispatcher") on both
 * snapshots. A random canary draws from the same seed on both sides, so an
 * unchanged canary places a sample alike and the output is repeatable. */
#include "server/config_diff.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "plugins/plugin.h"
#include "proxy/describe.h"
#include "route/route.h"
#include "server/dry_run.h"

#define SHOW(cfg, s) gh_config_show((cfg), (s)).p
#define MAX_SAMPLE_HEADERS 8

/* ---- routes ---- */

enum { F_MATCH, F_TARGET, F_ANSWER, F_REWRITE, F_HEADERS, F_TIMEOUT, F_PLUGINS, F_VERSIONS, NFACETS };
static const char *const facet_name[NFACETS] = { "match", "target", "answer", "rewrite", "headers", "timeout",
                                                 "plugins", "versions" };

typedef char facets[NFACETS][2048];

/* Append s at buf[n], truncating at cap; returns the new length. */
static size_t put(char *buf, size_t cap, size_t n, const char *s)
{
    size_t len = strlen(s);
    if (n + 1 >= cap)
        return n;
    if (len > cap - 1 - n)
        len = cap - 1 - n;
    memcpy(buf + n, s, len);
    buf[n + len] = '\0';
    return n + len;
}

static void target_text(const gh_config *cfg, const gh_route_cfg *r, char *buf, size_t cap)
{
    char t[512], u[1024];
    gh_route_target_describe(cfg, r, t, sizeof(t));
    if (r->target == GH_TARGET_UPSTREAM && r->upstream)
        snprintf(buf, cap, "%s (%s)", t, gh_upstream_describe(cfg, r->upstream, u, sizeof(u)));
    else
        snprintf(buf, cap, "%s", t);
}

/* "Name: value, ..." then "-Name, ..." for removals; ${ENV} values as "***". */
static size_t kv_text(const gh_config *cfg, const gh_kv *kv, size_t n, const gh_str *rm, size_t nrm, char *buf,
                      size_t cap, size_t at)
{
    for (size_t i = 0; i < n; i++) {
        at = put(buf, cap, at, at ? ", " : "");
        at = put(buf, cap, at, kv[i].name.p);
        at = put(buf, cap, at, ": ");
        at = put(buf, cap, at, kv[i].secret ? "***" : kv[i].value.p);
    }
    for (size_t i = 0; i < nrm; i++) {
        at = put(buf, cap, put(buf, cap, at, at ? ", -" : "-"), rm[i].p);
    }
    return at;
}

static void describe_route(const gh_config *cfg, const gh_route_cfg *r, facets f)
{
    gh_router_describe(cfg, r, f[F_MATCH], sizeof(f[F_MATCH]));
    target_text(cfg, r, f[F_TARGET], sizeof(f[F_TARGET]));
    /* what a respond target answers: its body (shown up to 60 bytes) and headers */
    f[F_ANSWER][0] = '\0';
    if (r->target == GH_TARGET_RESPOND) {
        gh_str b = gh_config_show(cfg, r->respond.body);
        snprintf(f[F_ANSWER], sizeof(f[F_ANSWER]), "body \"%.*s\"%s (%zu bytes)",
                                    b.len > 60 ? 60 : (int)b.len, b.p, b.len > 60 ? "..." : "", b.len);
        if (r->respond.nheaders)
            kv_text(cfg, r->respond.headers, r->respond.nheaders, NULL, 0, f[F_ANSWER], sizeof(f[F_ANSWER]),
                    put(f[F_ANSWER], sizeof(f[F_ANSWER]), strlen(f[F_ANSWER]), ", headers "));
    }
    size_t n = kv_text(cfg, r->request_headers.set, r->request_headers.nset, r->request_headers.remove,
                       r->request_headers.nremove, f[F_HEADERS], sizeof(f[F_HEADERS]),
                       put(f[F_HEADERS], sizeof(f[F_HEADERS]), 0, "request: "));
    n = put(f[F_HEADERS], sizeof(f[F_HEADERS]), n, "; response: ");
    kv_text(cfg, r->response_headers.set, r->response_headers.nset, r->response_headers.remove,
            r->response_headers.nremove, f[F_HEADERS], sizeof(f[F_HEADERS]), n);
    if (r->timeout_ms)
        snprintf(f[F_TIMEOUT], sizeof(f[F_TIMEOUT]), "%llu ms", (unsigned long long)r->timeout_ms);
    else
        snprintf(f[F_TIMEOUT], sizeof(f[F_TIMEOUT]), "the upstream's");
    snprintf(f[F_REWRITE], sizeof(f[F_REWRITE]), "%s%s%s%s%s", r->rewrite.strip_prefix ? "strip_prefix" : "",
             r->rewrite.prefix.len ? " prefix " : "", r->rewrite.prefix.len ? SHOW(cfg, r->rewrite.prefix) : "",
             r->rewrite.path.len ? " path " : "", r->rewrite.path.len ? SHOW(cfg, r->rewrite.path) : "");
    if (!f[F_REWRITE][0])
        snprintf(f[F_REWRITE], sizeof(f[F_REWRITE]), "none");
    gh_plugins_describe(cfg, &r->chain, f[F_PLUGINS], sizeof(f[F_PLUGINS]));
    n = 0;
    f[F_VERSIONS][0] = '\0';
    for (size_t i = 0; r->versions && i < r->versions->n; i++) {
        const gh_version_cfg *v = &r->versions->list[i];
        char line[1024], t[1024], pl[1024];
        gh_version_describe(cfg, v, line, sizeof(line));
        target_text(cfg, &v->route, t, sizeof(t));
        gh_plugins_describe(cfg, &v->route.chain, pl, sizeof(pl));
        n = put(f[F_VERSIONS], sizeof(f[F_VERSIONS]), n, i ? "; " : "");
        n = put(f[F_VERSIONS], sizeof(f[F_VERSIONS]), n, line);
        if (v->route.target == GH_TARGET_UPSTREAM && v->route.upstream) {   /* the upstream's settings too */
            const char *paren = strchr(t, '(');
            n = put(f[F_VERSIONS], sizeof(f[F_VERSIONS]), n, " ");
            n = put(f[F_VERSIONS], sizeof(f[F_VERSIONS]), n, paren ? paren : "");
        }
        n = put(f[F_VERSIONS], sizeof(f[F_VERSIONS]), n, ", plugins: ");
        n = put(f[F_VERSIONS], sizeof(f[F_VERSIONS]), n, pl);
    }
    if (!r->versions)
        snprintf(f[F_VERSIONS], sizeof(f[F_VERSIONS]), "none");
}

static int by_name(const void *a, const void *b)
{
    const gh_route_cfg *x = *(const gh_route_cfg *const *)a, *y = *(const gh_route_cfg *const *)b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = memcmp(x->name.p, y->name.p, n);
    return c ? c : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

static const gh_route_cfg **sorted_routes(const gh_config *cfg)
{
    const gh_route_cfg **v = malloc((cfg->nroutes + 1) * sizeof(*v));
    for (size_t i = 0; v && i < cfg->nroutes; i++)
        v[i] = &cfg->routes[i];
    if (v)
        qsort(v, cfg->nroutes, sizeof(*v), by_name);
    return v;
}

/* Returns the number of routes added, removed or changed; -1: no memory. */
static long diff_routes(const gh_config *a, const gh_config *b, FILE *out)
{
    const gh_route_cfg **ra = sorted_routes(a), **rb = sorted_routes(b);
    facets *fa = malloc(sizeof(facets)), *fb = malloc(sizeof(facets));
    long changed = -1;
    if (!ra || !rb || !fa || !fb)
        goto out;
    /* two passes: the counts first (the header line), then the lines */
    size_t n[4] = { 0 };   /* added, removed, changed, unchanged */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            fprintf(out, "routes: %zu added, %zu removed, %zu changed, %zu unchanged\n", n[0], n[1], n[2], n[3]);
        size_t i = 0, j = 0;
        while (i < a->nroutes || j < b->nroutes) {
            int c = i == a->nroutes ? 1 : j == b->nroutes ? -1 : by_name(&ra[i], &rb[j]);
            if (c < 0 || c > 0) {
                const gh_config *cfg = c < 0 ? a : b;
                const gh_route_cfg *r = c < 0 ? ra[i++] : rb[j++];
                if (pass == 0) {
                    n[c < 0 ? 1 : 0]++;
                    continue;
                }
                describe_route(cfg, r, *fa);
                fprintf(out, "  %c %s: %s -> %s\n", c < 0 ? '-' : '+', SHOW(cfg, r->name), (*fa)[F_MATCH],
                        (*fa)[F_TARGET]);
                continue;
            }
            const gh_route_cfg *x = ra[i++], *y = rb[j++];
            describe_route(a, x, *fa);
            describe_route(b, y, *fb);
            bool same = true;
            for (int k = 0; k < NFACETS; k++)
                same &= strcmp((*fa)[k], (*fb)[k]) == 0;
            if (pass == 0) {
                n[same ? 3 : 2]++;
                continue;
            }
            if (same)
                continue;
            fprintf(out, "  ~ %s\n", SHOW(b, y->name));
            for (int k = 0; k < NFACETS; k++)
                if (strcmp((*fa)[k], (*fb)[k]) != 0)
                    fprintf(out, "      %-9s %s\n      %-9s => %s\n", facet_name[k], (*fa)[k], "", (*fb)[k]);
        }
    }
    changed = (long)(n[0] + n[1] + n[2]);
out:
    free(ra);
    free(rb);
    free(fa);
    free(fb);
    return changed;
}

/* ---- sample requests ---- */

/* "URL\nMETHOD\nName: value\n..." in one allocation: sorts by URL then
 * method, and two samples are the same request when their texts are equal. */
typedef struct sample {
    char *text;
    bool secret;                  /* holds a ${ENV} value: printed without its conditions */
} sample;

/* A sample taken apart again, for running and printing. */
typedef struct sample_req {
    char buf[2048];
    const char *url, *method;
    const char *hdr[MAX_SAMPLE_HEADERS + 1];
    size_t nhdr;
} sample_req;

static void sample_split(const sample *s, sample_req *r)
{
    snprintf(r->buf, sizeof(r->buf), "%s", s->text);
    char *p = r->buf, *nl;
    r->url = p;
    r->method = "";
    r->nhdr = 0;
    for (int field = 0; (nl = strchr(p, '\n')); field++) {
        *nl = '\0';
        p = nl + 1;
        if (field == 0)
            r->method = p;
        else if (r->nhdr < MAX_SAMPLE_HEADERS + 1)
            r->hdr[r->nhdr++] = p;
    }
}

typedef struct samples {
    sample *v;
    size_t n, cap;
    bool oom;
} samples;

/* A path with every {name} filled by "1" and {name*} by "x/y". */
static void fill_template(gh_str p, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < p.len && n + 1 < cap;) {
        if (p.p[i] == '{') {
            const char *e = memchr(p.p + i, '}', p.len - i);
            if (e) {
                const char *v = e > p.p + i + 1 && e[-1] == '*' ? "x/y" : "1";
                n = put(out, cap, n, v);
                i = (size_t)(e - p.p) + 1;
                continue;
            }
        }
        out[n++] = p.p[i++];
        out[n] = '\0';
    }
    out[n < cap ? n : cap - 1] = '\0';
}

static void add(samples *ss, const char *method, const char *host, const char *path, const char *query,
                char hdr[][256], size_t nhdr, bool secret)
{
    if (ss->oom)
        return;
    if (ss->n == ss->cap) {
        size_t cap = ss->cap ? 2 * ss->cap : 64;
        sample *v = realloc(ss->v, cap * sizeof(*v));
        if (!v) {
            ss->oom = true;
            return;
        }
        ss->v = v, ss->cap = cap;
    }
    char text[2048];
    size_t n = (size_t)snprintf(text, sizeof(text), "%s%s%s%s%s\n%s", host ? "http://" : "", host ? host : "", path,
                                query[0] ? "?" : "", query, method);
    for (size_t i = 0; i < nhdr && n < sizeof(text); i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "\n%s", hdr[i]);
    char *t = strdup(text);
    if (!t) {
        ss->oom = true;
        return;
    }
    ss->v[ss->n++] = (sample){ t, secret };
}

/* Each route's samples: its paths x its methods, with its host and its
 * header and query conditions; a versioned route's also ask for each
 * version by header or query, where the route takes them from there. */
static void route_samples(const gh_route_cfg *r, samples *ss)
{
    if (r->match.regex.len)
        return;                   /* a regex names no path to try */
    char host[300], paths[2][512], query[512] = "", hdr[MAX_SAMPLE_HEADERS][256];
    size_t npaths = 1, nhdr = 0, nq = 0;
    gh_str h = r->match.host;
    if (h.len && h.p[0] == '*')
        snprintf(host, sizeof(host), "sample%s", h.p + 1);
    else
        snprintf(host, sizeof(host), "%s", h.len ? h.p : "");
    if (r->match.path.len) {
        fill_template(r->match.path, paths[0], sizeof(paths[0]));
    } else {
        gh_str p = r->match.prefix.len ? r->match.prefix : GH_STR("/");
        snprintf(paths[0], sizeof(paths[0]), "%.*s", (int)p.len, p.p);
        snprintf(paths[1], sizeof(paths[1]), "%.*s/x", p.len == 1 ? 0 : (int)p.len, p.p);
        npaths = 2;
    }
    bool secret = false;          /* a value from ${ENV}: sent, never printed */
    for (size_t i = 0; i < r->match.nheaders && nhdr < MAX_SAMPLE_HEADERS; i++) {
        snprintf(hdr[nhdr++], sizeof(hdr[0]), "%s: %s", r->match.headers[i].name.p, r->match.headers[i].value.p);
        secret |= r->match.headers[i].secret;
    }
    for (size_t i = 0; i < r->match.nquery; i++) {
        nq = put(query, sizeof(query), nq, nq ? "&" : "");
        nq = put(query, sizeof(query), nq, r->match.query[i].name.p);
        nq = put(query, sizeof(query), nq, "=");
        nq = put(query, sizeof(query), nq, r->match.query[i].value.p);
        secret |= r->match.query[i].secret;
    }
    size_t nm = r->match.nmethods ? r->match.nmethods : 1;
    for (size_t m = 0; m < nm && m < 4; m++) {
        const char *method = r->match.nmethods ? r->match.method_names[m].p : "GET";
        for (size_t p = 0; p < npaths; p++) {
            add(ss, method, host[0] ? host : NULL, paths[p], query, hdr, nhdr, secret);
            const gh_versions_cfg *vs = r->versions;
            for (size_t f = 0; vs && f < vs->nfrom; f++) {
                for (size_t v = 0; v < vs->n; v++) {
                    char q2[600], h2[MAX_SAMPLE_HEADERS + 1][256];
                    memcpy(h2, hdr, nhdr * sizeof(hdr[0]));
                    if (vs->from[f].kind == GH_VSRC_HEADER) {
                        snprintf(h2[nhdr], sizeof(h2[0]), "%s: %s", vs->from[f].name.p, vs->list[v].name.p);
                        add(ss, method, host[0] ? host : NULL, paths[p], query, h2, nhdr + 1, secret);
                    } else if (vs->from[f].kind == GH_VSRC_QUERY) {
                        snprintf(q2, sizeof(q2), "%s%s%s=%s", query, query[0] ? "&" : "", vs->from[f].name.p,
                                 vs->list[v].name.p);
                        add(ss, method, host[0] ? host : NULL, paths[p], q2, hdr, nhdr, secret);
                    }
                }
            }
        }
    }
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const sample *)a)->text, ((const sample *)b)->text);
}

/* What the dispatcher does with s on snapshot snap, in one line. */
static void outcome(gh_snapshot *snap, const sample_req *s, char *buf, size_t cap)
{
    gh_header hs[MAX_SAMPLE_HEADERS + 1];
    for (size_t i = 0; i < s->nhdr; i++) {
        const char *colon = strchr(s->hdr[i], ':');
        hs[i] = (gh_header){ s->hdr[i], colon + 2, (uint32_t)(colon - s->hdr[i]), (uint32_t)strlen(colon + 2) };
    }
    gh_dry_request rq = { .method = s->method, .url = s->url, .headers = hs, .nheaders = s->nhdr,
                          .seed = 0x5eed };
    gh_dry_run d;
    const char *err = NULL;
    if (!gh_dry_run_request(snap, &rq, &d, &err)) {
        snprintf(buf, cap, "not a request: %s", err);
        gh_dry_run_free(&d);
        return;
    }
    const gh_config *cfg = snap->cfg;
    size_t n = 0;
    char t[1024];
    if (d.routed)
        n = put(buf, cap, 0, "route "), n = put(buf, cap, n, SHOW(cfg, d.m.route->name));
    else
        buf[0] = '\0';
    const gh_version_cfg *v = d.versioned ? d.pick.v : NULL;
    if (v)
        n = put(buf, cap, put(buf, cap, n, ", version "), v->name.p);
    if (v && d.pick.by_canary)
        n = put(buf, cap, put(buf, cap, n, " (canary; asked for "), d.pick.asked->name.p), n = put(buf, cap, n, ")");
    if (!d.reached) {
        json_t *j = json_loads(d.body, 0, NULL);
        const char *code = j ? json_string_value(json_object_get(j, "code")) : NULL;
        snprintf(t, sizeof(t), "%s%d %s", n ? ": " : "", d.status, code ? code : "");
        json_decref(j);
        put(buf, cap, n, t);
    } else {
        target_text(cfg, d.target, t, sizeof(t));
        n = put(buf, cap, put(buf, cap, n, " -> "), t);
        if (d.forwarded.p) {
            snprintf(t, sizeof(t), ", forwarded %.*s", (int)d.forwarded.len, d.forwarded.p);
            put(buf, cap, n, t);
        }
    }
    gh_dry_run_free(&d);
}

/* Returns the number of samples answered differently; -1: no memory. */
static long diff_samples(gh_snapshot *a, gh_snapshot *b, FILE *out)
{
    samples ss = { 0 };
    for (size_t i = 0; i < a->cfg->nroutes; i++)
        route_samples(&a->cfg->routes[i], &ss);
    for (size_t i = 0; i < b->cfg->nroutes; i++)
        route_samples(&b->cfg->routes[i], &ss);
    long differ = -1;
    char *before = malloc(4096), *after = malloc(4096), *lines = NULL;
    sample_req *rq = malloc(sizeof(*rq));
    size_t lines_len = 0;
    FILE *mem = before && after && rq && !ss.oom ? open_memstream(&lines, &lines_len) : NULL;
    if (!mem)
        goto out;
    if (ss.n)
        qsort(ss.v, ss.n, sizeof(*ss.v), by_key);
    size_t uniq = 0;
    for (size_t i = 0; i < ss.n; i++) {
        if (uniq && strcmp(ss.v[uniq - 1].text, ss.v[i].text) == 0) {
            ss.v[uniq - 1].secret |= ss.v[i].secret;
            free(ss.v[i].text);
        } else {
            ss.v[uniq++] = ss.v[i];
        }
    }
    ss.n = uniq;
    differ = 0;
    for (size_t i = 0; i < uniq; i++) {
        sample_split(&ss.v[i], rq);
        outcome(a, rq, before, 4096);
        outcome(b, rq, after, 4096);
        if (strcmp(before, after) == 0)
            continue;
        differ++;
        if (ss.v[i].secret) {
            const char *q = strchr(rq->url, '?');
            fprintf(mem, "  %s %.*s (with its route's conditions, values from ${ENV} not shown)", rq->method,
                    q ? (int)(q - rq->url) : (int)strlen(rq->url), rq->url);
        } else {
            fprintf(mem, "  %s %s", rq->method, rq->url);
            for (size_t k = 0; k < rq->nhdr; k++)
                fprintf(mem, " [%s]", rq->hdr[k]);
        }
        fprintf(mem, "\n      before: %s\n      after:  %s\n", before, after);
    }
    fclose(mem);
    fprintf(out, "requests: %ld of %zu sample%s answered differently\n", differ, uniq, uniq == 1 ? "" : "s");
    fputs(lines ? lines : "", out);
out:
    for (size_t i = 0; i < ss.n; i++)
        free(ss.v[i].text);
    free(lines);
    free(before);
    free(after);
    free(rq);
    free(ss.v);
    return differ;
}

int gh_config_diff(gh_snapshot *old, gh_snapshot *neu, FILE *out)
{
    long r = diff_routes(old->cfg, neu->cfg, out);
    long s = r < 0 ? -1 : diff_samples(old, neu, out);
    if (r < 0 || s < 0)
        return -1;
    return r || s ? 1 : 0;
}
