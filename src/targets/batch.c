/* batch.c — the `batch` target (SPEC §7.2, §12.20).
 *
 * The body is read whole (within limits.max_body_bytes), checked whole
 * before anything runs (a bad item is a 400 naming its index; more than
 * max_requests a 413), then each item becomes a sub-request through
 * gh_dispatch: routing, authentication, rate limits and versions apply to
 * it as if it came alone. Items carry the outer request's header fields as
 * they reach this target, overridden by their own by name (so the outer
 * credentials apply unless the item brings its own; the gateway's identity
 * headers are re-derived per item, since every sub-request's intake drops
 * them). At most `concurrency` items run at once; answers are kept in
 * request order. A batch item cannot be a batch. */
#include "targets/batch.h"
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "http/json_body.h"
#include "http/status.h"
#include "proxy/headers.h"
#include "server/subreq.h"

typedef struct batch batch;
typedef struct item {
    gh_subreq sr;
    batch *b;
    size_t index;
    gh_subreq_spec spec;
    json_t *answer;               /* {"id","status","headers","body"} once done */
    bool started;
} item;

struct batch {
    gh_exchange *ex;
    const gh_route_cfg *route;
    json_t *doc;                  /* the parsed body (items' strings point into it) */
    gh_header *outer;             /* the outer request's fields for the items */
    size_t nouter;
    size_t n, next, running, finished;
    item *items;
};

static void bad(gh_exchange *ex, int status, const char *code, const char *detail)
{
    ex->on_abort = NULL;
    ex->consumer = NULL;
    gh_problem(ex, status, code, detail, NULL, 0, NULL);
}

static void release(batch *bt)
{
    for (size_t i = 0; bt->items && i < bt->n; i++) {
        if (bt->items[i].started)
            gh_subreq_cancel(&bt->items[i].sr);
        bt->items[i].started = false;
        json_decref(bt->items[i].answer);
        bt->items[i].answer = NULL;
    }
    json_decref(bt->doc);
    bt->doc = NULL;
}

static void on_client_abort(gh_exchange *ex)
{
    batch *bt = ex->consumer;
    gh_exchange_buffer_cancel(ex);
    release(bt);
}

/* ------------------------------------------------------------- answers */

static bool is_json_type(const gh_header *ct)
{
    if (!ct)
        return false;
    size_t n = ct->value_len;
    const char *semi = memchr(ct->value, ';', n);
    if (semi)
        n = (size_t)(semi - ct->value);
    while (n && ct->value[n - 1] == ' ')
        n--;
    return (n == 16 && strncasecmp(ct->value, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(ct->value + n - 5, "+json", 5) == 0);
}

/* The body as a JSON string; bytes that are not UTF-8 become U+FFFD. */
static json_t *text_value(gh_exchange *ex, const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    if (s)
        return s;
    size_t cap = n * 6 + 3;
    char *q = gh_arena_alloc(&ex->arena, cap);
    if (!q)
        return json_null();
    size_t o = gh_json_escape(q + 1, cap - 2, p, n);
    if (o == (size_t)-1)
        return json_null();
    q[0] = '"';
    q[o + 1] = '"';
    s = json_loadb(q, o + 2, JSON_DECODE_ANY, NULL);
    return s ? s : json_null();
}

static json_t *item_answer(batch *bt, item *it)
{
    gh_subreq *sr = &it->sr;
    json_t *o = json_object();
    json_t *id = json_object_get(json_array_get(json_object_get(bt->doc, "requests"), it->index), "id");
    if (id)
        json_object_set(o, "id", id);
    if (sr->error || sr->status == 0) {
        bool big = sr->error && strcmp(sr->error, "response_too_large") == 0;
        json_object_set_new(o, "status", json_integer(502));
        json_object_set_new(o, "headers", json_object());
        json_object_set_new(o, "body", json_pack("{s:s,s:s}", "code", "upstream_error", "detail",
                                                 big ? "the answer exceeds the batch's max_body"
                                                     : "the answer was cut short"));
        return o;
    }
    json_object_set_new(o, "status", json_integer(sr->status));
    json_t *hs = json_object();
    char name[128];
    for (size_t i = 0; i < sr->nheaders; i++) {
        const gh_header *h = &sr->headers[i];
        if (h->name_len >= sizeof(name))
            continue;
        for (size_t k = 0; k < h->name_len; k++)
            name[k] = (char)((h->name[k] >= 'A' && h->name[k] <= 'Z') ? h->name[k] + 32 : h->name[k]);
        name[h->name_len] = '\0';
        json_object_set_new(hs, name, text_value(bt->ex, h->value, h->value_len));
    }
    json_object_set_new(o, "headers", hs);
    json_t *body = NULL;
    if (is_json_type(gh_subreq_header(sr, "content-type", 12)))
        body = json_loadb(sr->body, sr->body_len, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "body", body ? body : text_value(bt->ex, sr->body, sr->body_len));
    return o;
}

static void finish(batch *bt)
{
    gh_exchange *ex = bt->ex;
    json_t *list = json_array();
    for (size_t i = 0; i < bt->n; i++) {
        json_array_append_new(list, bt->items[i].answer);
        bt->items[i].answer = NULL;
    }
    json_t *o = json_pack("{s:o}", "responses", list);
    size_t len;
    char *body = gh_json_in_arena(ex, o, JSON_COMPACT, 0, &len);   /* alive until written */
    release(bt);
    ex->on_abort = NULL;
    ex->consumer = NULL;
    gh_header h[1] = { { "Content-Type", "application/json", 12, 16 } };
    size_t n = 1;
    gh_header *out = body ? gh_apply_header_ops(ex, &bt->route->response_headers, h, n, &n) : NULL;
    if (!out) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    gh_respond(ex, 200, out, n, body, len);
}

static void start_more(batch *bt);

static void item_done(gh_subreq *sr)
{
    item *it = sr->ctx;
    batch *bt = it->b;
    it->answer = item_answer(bt, it);
    gh_subreq_release(sr);
    it->started = false;
    bt->running--;
    bt->finished++;
    if (bt->finished == bt->n)
        finish(bt);
    else
        start_more(bt);
}

static void start_more(batch *bt)
{
    uint32_t limit = bt->route->batch->concurrency;
    while (bt->next < bt->n && bt->running < limit) {
        item *it = &bt->items[bt->next++];
        it->started = gh_subreq_start(&it->sr, bt->ex, &it->spec, item_done, it);
        if (!it->started) {
            release(bt);
            bad(bt->ex, 500, "internal_error", "out of memory");
            return;
        }
        bt->running++;
    }
}

/* -------------------------------------------------------------- reading */

static bool token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!(*s > ' ' && *s < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", *s)))
            return false;
    return true;
}

/* What the codecs accept from a client (RFC 9110 §5.5): no control
 * characters but HTAB. */
static bool field_value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* An origin-form target: printable, no space, no fragment. */
static bool target_ok(const char *s, size_t n)
{
    if (n == 0 || s[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '#')
            return false;
    }
    return true;
}

/* The outer request's fields that items inherit: not those about the
 * outer body, nor Accept-Encoding (the answers are read here, as text). */
static bool inherited(const gh_header *h)
{
    static const char *const drop[] = { "content-length", "content-type", "transfer-encoding", "expect",
                                        "content-encoding", "accept-encoding" };
    for (size_t j = 0; j < sizeof(drop) / sizeof(drop[0]); j++)
        if (h->name_len == strlen(drop[j]) && strncasecmp(h->name, drop[j], h->name_len) == 0)
            return false;
    return true;
}

/* Item i's sub-request, or the reason it is malformed (in why). */
static bool read_item(batch *bt, size_t i, json_t *jt, char *why, size_t cap)
{
    gh_exchange *ex = bt->ex;
    item *it = &bt->items[i];
    it->b = bt;
    it->index = i;
    if (!json_is_object(jt)) {
        snprintf(why, cap, "request %zu: expected an object", i);
        return false;
    }
    json_t *m = json_object_get(jt, "method"), *p = json_object_get(jt, "path");
    json_t *hs = json_object_get(jt, "headers"), *body = json_object_get(jt, "body");
    json_t *id = json_object_get(jt, "id");
    if (m && (!json_is_string(m) || !token(json_string_value(m)))) {
        snprintf(why, cap, "request %zu: method must be a method name", i);
        return false;
    }
    if (!json_is_string(p) || !target_ok(json_string_value(p), json_string_length(p))) {
        snprintf(why, cap, "request %zu: path must be a string starting with '/', without spaces or control characters", i);
        return false;
    }
    if (hs && !json_is_object(hs)) {
        snprintf(why, cap, "request %zu: headers must be an object of strings", i);
        return false;
    }
    if (id && !json_is_string(id) && !json_is_integer(id)) {
        snprintf(why, cap, "request %zu: id must be a string or an integer", i);
        return false;
    }
    size_t nh = json_object_size(hs);
    gh_header *out = gh_arena_alloc(&ex->arena, (bt->nouter + nh + 2) * sizeof(*out));
    if (!out) {
        snprintf(why, cap, "out of memory");
        return false;
    }
    size_t k = 0;
    const char *name;
    json_t *v;
    json_object_foreach(hs, name, v) {
        if (!json_is_string(v) || !token(name) || !field_value_ok(json_string_value(v), json_string_length(v))) {
            snprintf(why, cap, "request %zu: header '%.64s' must be a valid name with a string value", i, name);
            return false;
        }
        if (strcasecmp(name, "accept-encoding") == 0)
            continue;   /* an answer is embedded as text or JSON: never encoded */
        out[k++] = (gh_header){ name, json_string_value(v), (uint32_t)strlen(name), (uint32_t)json_string_length(v) };
    }
    size_t nown = k;
    /* the outer fields, unless the item names them itself */
    for (size_t j = 0; j < bt->nouter; j++) {
        bool own = false;
        for (size_t q = 0; q < nown && !own; q++)
            own = out[q].name_len == bt->outer[j].name_len &&
                  strncasecmp(out[q].name, bt->outer[j].name, out[q].name_len) == 0;
        if (!own)
            out[k++] = bt->outer[j];
    }
    gh_str b = { NULL, 0 };
    if (json_is_string(body)) {
        b = (gh_str){ json_string_value(body), json_string_length(body) };
    } else if (body && !json_is_null(body)) {
        char *t = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t tl = t ? strlen(t) : 0;
        char *c = t ? gh_arena_alloc(&ex->arena, tl + 1) : NULL;
        if (c)
            memcpy(c, t, tl);
        free(t);
        if (!c) {
            snprintf(why, cap, "out of memory");
            return false;
        }
        b = (gh_str){ c, tl };
        bool typed = false;
        for (size_t q = 0; q < nown && !typed; q++)
            typed = out[q].name_len == 12 && strncasecmp(out[q].name, "content-type", 12) == 0;
        if (!typed)
            out[k++] = (gh_header){ "Content-Type", "application/json", 12, 16 };
    }
    const char *ms = m ? json_string_value(m) : "GET";
    it->spec = (gh_subreq_spec){
        .method = { ms, strlen(ms) }, .target = { json_string_value(p), json_string_length(p) },
        .headers = out, .nheaders = k, .body = b, .max_body = bt->route->batch->max_body,
    };
    return true;
}

static void body_ready(gh_exchange *ex)
{
    batch *bt = ex->consumer;
    const gh_batch_cfg *cfg = bt->route->batch;
    json_error_t err;
    bt->doc = json_loadb(ex->body_buf.p ? ex->body_buf.p : "", ex->body_buf.len, 0, &err);
    char why[256];
    if (!bt->doc) {
        snprintf(why, sizeof(why), "the batch body is not JSON: %s at byte %d", err.text, err.position);
        release(bt);
        bad(ex, 400, "bad_request", why);
        return;
    }
    json_t *list = json_object_get(bt->doc, "requests");
    if (!json_is_array(list)) {
        release(bt);
        bad(ex, 400, "bad_request", "the batch body needs \"requests\": a list of requests");
        return;
    }
    bt->n = json_array_size(list);
    if (bt->n > cfg->max_requests) {
        snprintf(why, sizeof(why), "a batch holds at most %u requests; this one has %zu", cfg->max_requests, bt->n);
        release(bt);
        bad(ex, 413, "payload_too_large", why);
        return;
    }
    bt->outer = gh_arena_alloc(&ex->arena, (ex->nheaders + 1) * sizeof(gh_header));
    bt->items = gh_arena_zalloc(&ex->arena, (bt->n + 1) * sizeof(item));
    if (!bt->outer || !bt->items) {
        release(bt);
        bad(ex, 500, "internal_error", "out of memory");
        return;
    }
    for (size_t i = 0; i < ex->nheaders; i++)
        if (inherited(&ex->headers[i]))
            bt->outer[bt->nouter++] = ex->headers[i];
    for (size_t i = 0; i < bt->n; i++) {
        if (!read_item(bt, i, json_array_get(list, i), why, sizeof(why))) {
            release(bt);
            bad(ex, 400, "bad_request", why);
            return;
        }
    }
    if (bt->n == 0) {
        finish(bt);
        return;
    }
    start_more(bt);
}

void gh_target_batch(gh_exchange *ex, const gh_route_cfg *route)
{
    if (gh_subreq_is_child(ex)) {
        gh_problem(ex, 400, "bad_request", "a batch item cannot be a batch", NULL, 0, NULL);
        return;
    }
    batch *bt = gh_arena_zalloc(&ex->arena, sizeof(*bt));
    if (!bt) {
        gh_problem(ex, 500, "internal_error", "out of memory", NULL, 0, NULL);
        return;
    }
    bt->ex = ex;
    bt->route = route;
    ex->consumer = bt;
    ex->on_abort = on_client_abort;
    if (ex->body_buf.ready)   /* a plugin (validation) read it already */
        body_ready(ex);
    else
        gh_exchange_buffer_body(ex, ex->body_limit, body_ready);
}
