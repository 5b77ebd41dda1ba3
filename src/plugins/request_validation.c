/* request_validation.c — checks on a request before it goes on (SPEC §5.4):
 * required headers and query parameters (400 naming every missing one),
 * the body's media type (415), its size (413: from Content-Length at once,
 * else the exchange's body bound stops delivery past max_body) and, with
 * `json: true`, that it is one JSON text (400 with the byte position; the
 * body is buffered for that and forwarded from memory). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "http/request.h"
#include "plugins/plugin.h"

/* Append "what a, b" to buf for each missing name; returns how many. */
static size_t missing(char *buf, size_t cap, size_t *n, const char *what, const gh_str *names, size_t count,
                      bool (*present)(const gh_exchange *, gh_str), const gh_exchange *ex)
{
    size_t found = 0;
    for (size_t i = 0; i < count; i++) {
        if (present(ex, names[i]) || *n + 1 >= cap)
            continue;
        int w = snprintf(buf + *n, cap - *n, "%s%s%.*s", found ? ", " : *n ? "; " : "", found ? "" : what,
                         (int)(names[i].len > 64 ? 64 : names[i].len), names[i].p);
        if (w > 0)
            *n += (size_t)w < cap - *n ? (size_t)w : cap - *n - 1;
        found++;
    }
    return found;
}

static bool has_header(const gh_exchange *ex, gh_str name) { return gh_exchange_header(ex, name.p, name.len); }

static bool has_query(const gh_exchange *ex, gh_str name)
{
    gh_str v;
    return gh_query_param(ex->query, name, &v, NULL);
}

/* A body is there unless the request says none (or Content-Length: 0). */
static bool has_body(const gh_exchange *ex)
{
    return ex->body_kind == GH_BODY_CHUNKED || (ex->body_kind == GH_BODY_LENGTH && ex->content_length > 0);
}

/* The media type of a Content-Type value (parameters and spaces cut). */
static gh_str media_type(const gh_header *h)
{
    const char *p = h->value, *end = p + h->value_len;
    const char *semi = memchr(p, ';', h->value_len);
    if (semi)
        end = semi;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (gh_str){ p, (size_t)(end - p) };
}

/* Listed entries are lower-case; a star subtype matches its type, star/star anything. */
static bool type_listed(const gh_request_validation_cfg *c, gh_str mt)
{
    const char *slash = memchr(mt.p, '/', mt.len);
    size_t tlen = slash ? (size_t)(slash - mt.p) : mt.len;
    for (size_t i = 0; i < c->ncontent_types; i++) {
        gh_str want = c->content_types[i];
        if (gh_str_eq_c(want, "*/*"))
            return slash != NULL;
        bool wild = want.len >= 2 && want.p[want.len - 1] == '*';
        if (wild ? slash && tlen == want.len - 2 && strncasecmp(mt.p, want.p, tlen + 1) == 0 : gh_str_ieq(mt, want))
            return true;
    }
    return false;
}

static void list_types(char *buf, size_t cap, const gh_request_validation_cfg *c)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->ncontent_types && n + 1 < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%.*s", i ? ", " : "", (int)(c->content_types[i].len > 64 ? 64 : c->content_types[i].len),
                         c->content_types[i].p);
        if (w > 0)
            n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
    }
}

static int unsupported_type(gh_exchange *ex, const gh_request_validation_cfg *c, const gh_header *ct)
{
    char types[256], detail[400];
    list_types(types, sizeof(types), c);
    if (!ct) {
        snprintf(detail, sizeof(detail), "the request has a body but no Content-Type; accepted: %s", types);
    } else {
        gh_str mt = media_type(ct);
        snprintf(detail, sizeof(detail), "Content-Type %.*s is not accepted here; accepted: %s",
                 (int)(mt.len > 80 ? 80 : mt.len), mt.p, types);
    }
    gh_problem(ex, 415, "unsupported_media_type", detail, NULL, 0, NULL);
    return GH_PLUGIN_DONE;
}

/* The whole body is here (in ex->body_buf): one JSON text, or 400. */
static void json_buffered(gh_exchange *ex)
{
    gh_plugin_run *run = ex->consumer;
    json_error_t err;
    json_t *doc = json_loadb(ex->body_buf.p ? ex->body_buf.p : "", ex->body_buf.len, JSON_DECODE_ANY, &err);
    if (doc) {
        json_decref(doc);
        gh_plugin_resume(run, GH_PLUGIN_NEXT);
        return;
    }
    char detail[300];
    snprintf(detail, sizeof(detail), "malformed JSON body at byte %d (line %d, column %d): %s", err.position,
             err.line, err.column, err.text);
    gh_plugin_resume(run, GH_PLUGIN_DONE);   /* forget the wait first: the answer may end the exchange */
    gh_problem(ex, 400, "bad_request", detail, NULL, 0, NULL);
}

static void json_cancel(gh_plugin_run *run) { gh_exchange_buffer_cancel(run->ex); }

static int rv_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    const gh_request_validation_cfg *c = (const gh_request_validation_cfg *)conf;
    gh_exchange *ex = run->ex;
    char detail[512];
    size_t n = 0;
    size_t lacking = missing(detail, sizeof(detail), &n, "missing required header(s): ", c->required_headers,
                             c->nrequired_headers, has_header, ex);
    lacking += missing(detail, sizeof(detail), &n, "missing required query parameter(s): ", c->required_query,
                       c->nrequired_query, has_query, ex);
    if (lacking) {
        gh_problem(ex, 400, "bad_request", detail, NULL, 0, NULL);
        return GH_PLUGIN_DONE;
    }
    bool body = has_body(ex);
    if (c->ncontent_types && body) {
        const gh_header *ct = gh_exchange_header(ex, "content-type", 12);
        if (!ct || !type_listed(c, media_type(ct)))
            return unsupported_type(ex, c, ct);
    }
    if (c->max_body) {
        if (ex->body_kind == GH_BODY_LENGTH && ex->content_length > c->max_body) {
            snprintf(detail, sizeof(detail), "request body of %llu bytes exceeds max_body (%llu bytes)",
                     (unsigned long long)ex->content_length, (unsigned long long)c->max_body);
            gh_problem(ex, 413, "payload_too_large", detail, NULL, 0, NULL);
            return GH_PLUGIN_DONE;
        }
        const char *why = gh_arena_printf(&ex->arena, "request body exceeds max_body (%llu bytes)",
                                          (unsigned long long)c->max_body);
        gh_exchange_limit_body(ex, c->max_body, why ? why : "request body exceeds max_body");
    }
    if (c->json && body && !ex->dry_run) {   /* a dry run records decisions, never reads a body */
        run->cancel = json_cancel;
        gh_exchange_buffer_body(ex, ex->body_limit, json_buffered);
        return GH_PLUGIN_WAIT;
    }
    return GH_PLUGIN_NEXT;
}

static void add(char *buf, size_t cap, size_t *n, const char *fmt, const gh_str *items, size_t count)
{
    for (size_t i = 0; i < count && *n + 1 < cap; i++) {
        int w = snprintf(buf + *n, cap - *n, "%s%s%.*s", i ? "," : *n ? "; " : "", i ? "" : fmt,
                         (int)(items[i].len > 64 ? 64 : items[i].len), items[i].p);
        if (w > 0)
            *n += (size_t)w < cap - *n ? (size_t)w : cap - *n - 1;
    }
}

static void rv_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    const gh_request_validation_cfg *c = (const gh_request_validation_cfg *)conf;
    size_t n = 0;
    buf[0] = '\0';
    if (c->max_body) {
        int w = snprintf(buf, cap, "max_body %llu", (unsigned long long)c->max_body);
        n = w > 0 ? ((size_t)w < cap ? (size_t)w : cap - 1) : 0;
    }
    add(buf, cap, &n, "types ", c->content_types, c->ncontent_types);
    if (c->json && n + 1 < cap) {
        int w = snprintf(buf + n, cap - n, "%sjson", n ? "; " : "");
        if (w > 0)
            n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
    }
    add(buf, cap, &n, "headers ", c->required_headers, c->nrequired_headers);
    add(buf, cap, &n, "query ", c->required_query, c->nrequired_query);
}

const gh_plugin_ops gh_request_validation_plugin = {
    .name = "request_validation",
    .request = rv_request,
    .describe = rv_describe,
};
