/* cors.c — cross-origin resource sharing (SPEC §5.2, §12 item 25).
 *
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 * answered here and never reaches the upstream: 204 with the Access-Control
 * headers when the origin, the method and the requested headers are all
 * allowed, else 403 `forbidden`. An actual request from an allowed origin
 * goes on with Access-Control-Allow-Origin & co. attached to whatever
 * response it ends up with (proxied, or a 401 from a later plugin); from an
 * unlisted origin it goes on without CORS headers, and the browser keeps
 * the answer from the page.
 *
 * Origins: "*" (any, never the opaque "null"), exact ("https://app.example.com",
 * compared without regard to case), or a pattern whose host starts with
 * "*." (https, host "*.example.com"): any subdomain at any depth with the
 * same scheme and port, never the bare domain nor "https://evilexample.com". Nothing here allocates except the
 * rare joined Access-Control-Request-Headers sent on several lines. */
#include <stdio.h>
#include <string.h>
#include "http/status.h"
#include "plugins/plugin.h"

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* o against a pattern "SCHEME:" "//" "*.REST": o is "SCHEME://" + labels
 * + ".REST" (REST includes the port, if any). */
static bool wildcard_match(gh_str pat, gh_str o)
{
    const char *sep = memmem(pat.p, pat.len, "://*.", 5);
    if (!sep)
        return false;
    size_t scheme = (size_t)(sep - pat.p) + 3;             /* "https://" */
    gh_str rest = gh_str_from(sep + 4, pat.len - scheme - 1); /* ".example.com[:port]" */
    if (o.len <= scheme + rest.len || strncasecmp(o.p, pat.p, scheme) != 0)
        return false;
    const char *tail = o.p + o.len - rest.len;
    if (strncasecmp(tail, rest.p, rest.len) != 0)
        return false;
    /* the subdomain part: non-empty labels of host characters */
    const char *p = o.p + scheme;
    bool label_start = true;
    for (; p < tail; p++) {
        if (*p == '.') {
            if (label_start)
                return false;
            label_start = true;
        } else if (host_char(*p)) {
            label_start = false;
        } else {
            return false;   /* ':', '/', '@' ...: not a subdomain */
        }
    }
    return !label_start;
}

/* The configured origin that admits o, or NULL. */
static const gh_str *origin_allowed(const gh_cors_cfg *c, gh_str o)
{
    if (o.len == 0 || gh_str_eq_c(o, "null"))
        return NULL;   /* sandboxed documents, file: URLs: never by "*" or a pattern */
    for (size_t i = 0; i < c->norigins; i++) {
        gh_str pat = c->origins[i];
        bool pattern = memmem(pat.p, pat.len, "://*.", 5) != NULL;
        if (gh_str_eq_c(pat, "*") || (pattern ? wildcard_match(pat, o) : gh_str_ieq(pat, o)))
            return &c->origins[i];
    }
    return NULL;
}

/* "*" answers "*" only without credentials (the config refuses the mix). */
static bool star_answer(const gh_cors_cfg *c, const gh_str *matched)
{
    return !c->credentials && gh_str_eq_c(*matched, "*");
}

static bool has_name(const gh_str *names, size_t n, const char *s, size_t len, bool icase)
{
    gh_str x = gh_str_from(s, len);
    for (size_t i = 0; i < n; i++)
        if (gh_str_eq_c(names[i], "*") || (icase ? gh_str_ieq(names[i], x) : gh_str_eq(names[i], x)))
            return true;
    return false;
}

static bool ows(char ch) { return ch == ' ' || ch == '\t'; }

/* Every name of a comma list is a configured header (lower-case). On
 * failure *bad is the first name refused. */
static bool headers_allowed(const gh_cors_cfg *c, gh_str list, gh_str *bad)
{
    if (list.len == 0)
        return true;   /* none asked (list.p may be NULL) */
    const char *p = list.p, *end = list.p + list.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *s = p;
        while (s < e && ows(*s))
            s++;
        const char *t = e;
        while (t > s && ows(t[-1]))
            t--;
        if (t > s && !has_name(c->header_names, c->nheaders, s, (size_t)(t - s), true)) {
            *bad = gh_str_from(s, (size_t)(t - s));
            return false;
        }
        p = comma ? comma + 1 : end;
    }
    return true;
}

/* Access-Control-Request-Headers, joined when sent on several lines. */
static gh_str requested_headers(gh_exchange *ex)
{
    static const char name[] = "access-control-request-headers";
    gh_str out = GH_STR_NULL;
    size_t lines = 0;
    for (size_t i = 0; i < ex->nheaders; i++) {
        const gh_header *h = &ex->headers[i];
        if (h->name_len != sizeof(name) - 1 || strncasecmp(h->name, name, sizeof(name) - 1) != 0 ||
            h->value_len == 0)
            continue;
        if (lines++ == 0) {
            out = gh_str_from(h->value, h->value_len);
        } else {
            char *j = gh_arena_printf(&ex->arena, "%.*s, %.*s", (int)out.len, out.p, (int)h->value_len, h->value);
            if (j)
                out = gh_str_c(j);
        }
    }
    return out;
}

#define HDR(n, v, vl) ((gh_header){ (n), (v), (uint32_t)(sizeof(n) - 1), (uint32_t)(vl) })

static int preflight(gh_plugin_run *run, const gh_cors_cfg *c, gh_str origin, const gh_header *acrm)
{
    gh_exchange *ex = run->ex;
    char detail[160];
    const gh_str *matched = origin_allowed(c, origin);
    if (!matched) {
        snprintf(detail, sizeof(detail), "origin %.*s is not allowed (CORS preflight)",
                 (int)(origin.len > 100 ? 100 : origin.len), origin.p);
        return gh_plugin_forbidden(run, detail);
    }
    gh_str method = gh_str_from(acrm->value, acrm->value_len);
    if (method.len == 0 || !has_name(c->method_names, c->nmethods, method.p, method.len, false)) {
        snprintf(detail, sizeof(detail), "method %.*s is not allowed (CORS preflight)",
                 (int)(method.len > 32 ? 32 : method.len), method.p);
        return gh_plugin_forbidden(run, detail);
    }
    gh_str asked = requested_headers(ex), bad;
    bool echo_headers = c->nheaders == 0 || has_name(c->header_names, c->nheaders, "*", 1, false);
    if (c->nheaders && !headers_allowed(c, asked, &bad)) {
        snprintf(detail, sizeof(detail), "header %.*s is not allowed (CORS preflight)",
                 (int)(bad.len > 64 ? 64 : bad.len), bad.p);
        return gh_plugin_forbidden(run, detail);
    }

    gh_header h[7];
    size_t n = 0;
    if (star_answer(c, matched))
        h[n++] = HDR("Access-Control-Allow-Origin", "*", 1);
    else
        h[n++] = HDR("Access-Control-Allow-Origin", origin.p, origin.len);
    /* methods: "*" configured answers with the one asked for, which also
     * works with credentials (where a "*" would be taken literally) */
    if (has_name(c->method_names, c->nmethods, "*", 1, false))
        h[n++] = HDR("Access-Control-Allow-Methods", method.p, method.len);
    else
        h[n++] = HDR("Access-Control-Allow-Methods", c->methods.p, c->methods.len);
    if (echo_headers) {
        if (asked.len)
            h[n++] = HDR("Access-Control-Allow-Headers", asked.p, asked.len);
    } else {
        h[n++] = HDR("Access-Control-Allow-Headers", c->headers.p, c->headers.len);
    }
    if (c->max_age_s > 0) {
        char *age = gh_arena_printf(&ex->arena, "%llu", (unsigned long long)c->max_age_s);
        if (age)
            h[n++] = HDR("Access-Control-Max-Age", age, strlen(age));
    }
    if (c->credentials)
        h[n++] = HDR("Access-Control-Allow-Credentials", "true", 4);
    static const char vary[] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
    h[n++] = HDR("Vary", vary, sizeof(vary) - 1);
    gh_respond(ex, 204, h, n, NULL, 0);
    return GH_PLUGIN_DONE;
}

static int cors_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    const gh_cors_cfg *c = (const gh_cors_cfg *)conf;
    gh_exchange *ex = run->ex;
    const gh_header *oh = gh_exchange_header(ex, "origin", 6);
    if (!oh)
        return GH_PLUGIN_NEXT;
    gh_str origin = gh_str_from(oh->value, oh->value_len);
    if (ex->method_bit == GH_M_OPTIONS) {
        const gh_header *acrm = gh_exchange_header(ex, "access-control-request-method", 29);
        if (acrm)
            return preflight(run, c, origin, acrm);
    }
    /* an actual request */
    const gh_str *matched = origin_allowed(c, origin);
    if (!matched)
        return GH_PLUGIN_NEXT;   /* SPEC §12.25: passed on without CORS headers */
    if (star_answer(c, matched)) {
        gh_exchange_add_response_header(ex, "Access-Control-Allow-Origin", 27, "*", 1);
    } else {
        gh_exchange_add_response_header(ex, "Access-Control-Allow-Origin", 27, origin.p, origin.len);
        gh_exchange_add_response_header(ex, "Vary", 4, "Origin", 6);
    }
    if (c->credentials)
        gh_exchange_add_response_header(ex, "Access-Control-Allow-Credentials", 32, "true", 4);
    if (c->expose_headers.len)
        gh_exchange_add_response_header(ex, "Access-Control-Expose-Headers", 29, c->expose_headers.p,
                                        c->expose_headers.len);
    return GH_PLUGIN_NEXT;
}

static void cors_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    const gh_cors_cfg *c = (const gh_cors_cfg *)conf;
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->norigins && n + 1 < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%.*s", i ? ", " : "origins ", (int)c->origins[i].len,
                         c->origins[i].p);
        if (w < 0)
            return;
        n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
    }
    if (c->credentials && n + 1 < cap)
        snprintf(buf + n, cap - n, "; credentials");
}

const gh_plugin_ops gh_cors_plugin = {
    .name = "cors", .request = cors_request, .describe = cors_describe,
};
