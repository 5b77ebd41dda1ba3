/* dashboard.c — serves the embedded dashboard (docs/operations.md,
 * "Dashboard"). The page only talks to its own origin: the CSP forbids
 * anything else, inline script included. */
#include "admin/dashboard.h"
#include <stdbool.h>
#include <string.h>
#include "http/status.h"

const gh_dashboard_asset *gh_dashboard_find(const char *path, size_t len)
{
    for (unsigned i = 0; i < gh_dashboard_nassets; i++) {
        const gh_dashboard_asset *a = &gh_dashboard_assets[i];
        if (strlen(a->path) == len && memcmp(a->path, path, len) == 0)
            return a;
    }
    return NULL;
}

bool gh_dashboard_etag_matches(const char *inm, size_t len, const char *etag)
{
    size_t elen = strlen(etag);
    size_t i = 0;
    while (i < len) {
        while (i < len && (inm[i] == ' ' || inm[i] == '\t' || inm[i] == ','))
            i++;
        size_t start = i;
        while (i < len && inm[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (inm[end - 1] == ' ' || inm[end - 1] == '\t'))
            end--;
        if (end - start == 1 && inm[start] == '*')
            return true;
        if (end - start > 2 && memcmp(inm + start, "W/", 2) == 0)
            start += 2;   /* If-None-Match compares weakly */
        if (end - start == elen && memcmp(inm + start, etag, elen) == 0)
            return true;
    }
    return false;
}

#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " \
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

void gh_admin_dashboard(gh_exchange *ex)
{
    const gh_dashboard_asset *a = gh_dashboard_find(ex->raw_path.p, ex->raw_path.len);
    if (!a) {
        gh_problem(ex, 404, "no_route", "no such dashboard file", NULL, 0, NULL);
        return;
    }
    const gh_header *inm = gh_exchange_header(ex, "if-none-match", 13);
    bool fresh = inm && gh_dashboard_etag_matches(inm->value, inm->value_len, a->etag);
    gh_header h[] = {
        { "ETag", a->etag, 4, (uint32_t)strlen(a->etag) },
        { "Cache-Control", "no-cache", 13, 8 },
        { "Content-Type", a->content_type, 12, (uint32_t)strlen(a->content_type) },
        { "Content-Security-Policy", CSP, 23, sizeof(CSP) - 1 },
        { "X-Content-Type-Options", "nosniff", 22, 7 },
        { "Referrer-Policy", "no-referrer", 15, 11 },
        { "X-Frame-Options", "DENY", 15, 4 },
    };
    if (fresh)   /* a 304 repeats the validators and caching headers only */
        gh_respond(ex, 304, h, 2, NULL, 0);
    else
        gh_respond(ex, 200, h, sizeof(h) / sizeof(h[0]), (const char *)a->data, a->len);
}
