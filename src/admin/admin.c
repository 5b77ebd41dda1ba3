/* admin.c — the admin API's endpoints and its access rule (SPEC §12.15). */
#include "version.h"
#include "admin/admin.h"
#include "admin/endpoints.h"
#include "http/json_body.h"
#include "admin/dashboard.h"
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/method.h"
#include "http/status.h"
#include "plugins/plugin.h"
#include "server/listeners.h"
#include "server/worker.h"

int64_t gh_admin_started_at;

void gh_admin_rfc3339(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void gh_admin_send_json(gh_exchange *ex, int status, json_t *j)
{
    size_t len;   /* reals with 10 digits: 5.382, not 5.3819999999999997 */
    char *body = gh_json_in_arena(ex, j, JSON_COMPACT | JSON_REAL_PRECISION(10), 0, &len);
    if (!body) {
        gh_problem(ex, 500, "internal_error", "cannot build the answer", NULL, 0, NULL);
        return;
    }
    static const gh_header ct = { "Content-Type", "application/json", 12, 16 };
    gh_respond(ex, status, &ct, 1, body, len);
}

/* -------------------------------------------------------------- access -- */

static bool peer_is_loopback(const gh_exchange *ex)
{
    /* the TCP peer, never X-Forwarded-For: the admin port trusts no proxy */
    return strncmp(ex->peer, "127.", 4) == 0 || strcmp(ex->peer, "::1") == 0 ||
           strncmp(ex->peer, "::ffff:127.", 11) == 0;
}

/* Hashing both sides first makes the comparison constant-time in the
 * length too. */
static bool token_matches(const gh_str *want, const char *got, size_t len)
{
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)want->p, want->len, a);
    SHA256((const unsigned char *)got, len, b);
    return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

static bool str_is(gh_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* Without a token the admin port trusts whoever can reach loopback, which
 * includes any web page the operator's browser has open: a page on another
 * site may post to it (CSRF), and one whose name re-resolves to 127.0.0.1
 * (DNS rebinding) may read it. Browsers always say who they are, so:
 * the Host must name loopback, and an Origin, when sent, must be this very
 * address. Command-line tools, Prometheus and the dashboard itself pass. */
static bool browser_safe(gh_exchange *ex)
{
    gh_str h = ex->host;
    bool loop_host = str_is(h, "localhost") || str_is(h, "[::1]") || str_is(h, "::1") ||
                     (h.len > 4 && memcmp(h.p, "127.", 4) == 0 && strspn(h.p, "0123456789.") >= h.len);
    if (!loop_host) {
        gh_problem(ex, 403, "forbidden", "the admin port answers only requests addressed to a loopback host "
                   "(Host: 127.0.0.1, [::1] or localhost) when no admin.token is set", NULL, 0, NULL);
        return false;
    }
    const gh_header *o = gh_exchange_header(ex, "origin", 6);
    if (o) {
        size_t scheme = o->value_len > 7 && memcmp(o->value, "http://", 7) == 0 ? 7 : 0;
        if (!scheme || o->value_len - scheme != ex->authority.len ||
            strncasecmp(o->value + scheme, ex->authority.p, ex->authority.len) != 0) {
            gh_problem(ex, 403, "forbidden", "cross-origin requests to the admin port are refused", NULL, 0, NULL);
            return false;
        }
    }
    return true;
}

/* /api/...: with admin.token, the bearer token from any address; without,
 * loopback clients only. */
static bool allowed(gh_exchange *ex)
{
    const gh_admin_cfg *a = ex->cfg->admin;
    if (!a || a->token.len == 0) {
        if (peer_is_loopback(ex))
            return true;
        gh_problem(ex, 403, "forbidden", "the admin API answers loopback clients only (no admin.token set)",
                   NULL, 0, NULL);
        return false;
    }
    static const gh_header www = { "WWW-Authenticate", "Bearer realm=\"gatehouse-admin\"", 16, 30 };
    const gh_header *h = gh_exchange_header(ex, "authorization", 13);
    if (!h) {
        gh_problem(ex, 401, "unauthorized", "the admin API needs Authorization: Bearer TOKEN", &www, 1, NULL);
        return false;
    }
    if (h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0 || !token_matches(&a->token, h->value + 7, h->value_len - 7)) {
        gh_problem(ex, 401, "unauthorized", "the admin token is wrong", &www, 1, NULL);
        return false;
    }
    return true;
}

/* ----------------------------------------------------------- endpoints -- */

static void healthz(gh_exchange *ex)
{
    gh_admin_send_json(ex, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz(gh_exchange *ex)
{
    gh_snapshot *s = atomic_load(&gh_current_snapshot);
    bool ready = s && s->listen && !atomic_load(&gh_draining);
    gh_admin_send_json(ex, ready ? 200 : 503, json_pack("{s:s}", "status", ready ? "ready" : "not ready"));
}

static void status(gh_exchange *ex)
{
    gh_snapshot *s = atomic_load(&gh_current_snapshot);
    char started[32], loaded[32];
    int64_t now = (int64_t)time(NULL);
    gh_admin_rfc3339(gh_admin_started_at, started);
    gh_admin_rfc3339(s->loaded_at, loaded);
    json_t *j =
              json_pack("{s:s, s:I, s:s, s:{s:I, s:s, s:s, s:o}, s:i, s:i}", "version", GH_VERSION, "uptime_seconds",
                        (json_int_t)(now - gh_admin_started_at), "started_at", started, "config", "generation",
                        (json_int_t)s->generation, "loaded_at", loaded, "source",
                        s->cfg->file ? s->cfg->file : "embedded demo", "last_reload", gh_admin_last_reload(),
                        "workers", s->listen ? s->listen->nworkers : 0,
                        "open_connections", atomic_load(&gh_open_connections));
    /* the etcd revision in effect: every node of a fleet should show the same */
    if (j && s->cfg->revision)
        json_object_set_new(json_object_get(j, "config"), "revision", json_integer((json_int_t)s->cfg->revision));
    gh_admin_send_json(ex, 200, j);
}

/* The compiled table in precedence order, worded as `gatehouse routes`. */
static void routes(gh_exchange *ex)
{
    const gh_config *cfg = ex->cfg;
    gh_snapshot *s = atomic_load(&gh_current_snapshot);
    json_t *list = json_array();
    size_t n = gh_router_count(s->router);
    for (size_t i = 0; i < n; i++) {
        const gh_route_cfg *r = gh_router_at(s->router, i);
        char match[512], target[512], plugins[1024];
        gh_router_describe(cfg, r, match, sizeof(match));
        gh_route_target_describe(cfg, r, target, sizeof(target));
        gh_plugins_describe(cfg, &r->chain, plugins, sizeof(plugins));
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "name", gh_config_show(cfg, r->name).p,
                                              "match", match, "target", target, "plugins", plugins));
    }
    gh_admin_send_json(ex, 200, json_pack("{s:I, s:o}", "generation", (json_int_t)s->generation, "routes", list));
}

/* ------------------------------------------------------------- reload --- */

struct gh_admin_reload {
    uv_async_t answer;            /* on the asking worker's loop */
    gh_exchange *ex;              /* NULL once the client went away */
    bool ok;
    uint64_t generation;
    json_t *errors;
};

static void (*reloader)(gh_admin_reload *r);

void gh_admin_set_reloader(void (*request)(gh_admin_reload *r))
{
    reloader = request;
}

static void reload_freed(uv_handle_t *h)
{
    gh_admin_reload *r = h->data;
    json_decref(r->errors);
    free(r);
}

static void reload_answered(uv_async_t *a)
{
    gh_admin_reload *r = a->data;
    gh_exchange *ex = r->ex;
    if (ex) {
        ex->on_abort = NULL;
        if (r->ok) {
            gh_admin_send_json(ex, 200, json_pack("{s:s, s:I}", "status", "reloaded", "generation", (json_int_t)r->generation));
        } else {
            json_t *body = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:I, s:O}", "type", "about:blank", "title",
                                     "Unprocessable Content", "status", 422, "code", "bad_request", "detail",
                                     "the configuration was refused; the running one is kept", "request_id",
                                     ex->request_id, "generation", (json_int_t)r->generation, "errors", r->errors);
            size_t len;
            char *copy = gh_json_in_arena(ex, body, JSON_COMPACT, 0, &len);
            static const gh_header ct = { "Content-Type", "application/problem+json", 12, 24 };
            gh_respond(ex, 422, &ct, 1, copy, copy ? len : 0);
        }
    }
    uv_close((uv_handle_t *)a, reload_freed);
}

static void reload_abort(gh_exchange *ex)
{
    gh_admin_reload *r = ex->consumer;
    r->ex = NULL;
}

void gh_admin_reload_done(gh_admin_reload *r, bool ok, uint64_t generation, const char *const *errors, size_t n)
{
    r->ok = ok;
    r->generation = generation;
    r->errors = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(r->errors, json_string(errors[i]));
    uv_async_send(&r->answer);   /* the worker answers on its own loop */
}

static void reload(gh_exchange *ex)
{
    gh_admin_reload *r = calloc(1, sizeof(*r));
    if (!r || !reloader) {
        free(r);
        gh_problem(ex, 500, "internal_error", "reload is not available", NULL, 0, NULL);
        return;
    }
    r->ex = ex;
    uv_async_init(ex->env->loop, &r->answer, reload_answered);
    r->answer.data = r;
    ex->consumer = r;
    ex->on_abort = reload_abort;
    reloader(r);
}

/* ------------------------------------------------------------- routing -- */

typedef struct endpoint {
    const char *path;             /* ending in '*': a prefix */
    uint32_t methods;             /* GH_M_* */
    const char *allow;
    bool api;                     /* under the §12.15 access rule */
    void (*serve)(gh_exchange *ex);
} endpoint;

static const endpoint endpoints[] = {
    { "/healthz", GH_M_GET | GH_M_HEAD, "GET, HEAD", false, healthz },
    { "/readyz", GH_M_GET | GH_M_HEAD, "GET, HEAD", false, readyz },
    { "/api/status", GH_M_GET | GH_M_HEAD, "GET, HEAD", true, status },
    { "/api/routes", GH_M_GET | GH_M_HEAD, "GET, HEAD", true, routes },
    { "/api/upstreams", GH_M_GET | GH_M_HEAD, "GET, HEAD", true, gh_admin_upstreams },
    { "/api/versions", GH_M_GET | GH_M_HEAD, "GET, HEAD", true, gh_admin_versions },
    { "/api/config", GH_M_GET | GH_M_HEAD, "GET, HEAD", true, gh_admin_config },
    { "/api/reload", GH_M_POST, "POST", true, reload },
    { "/metrics", GH_M_GET | GH_M_HEAD, "GET, HEAD", false, gh_admin_metrics },
    { "/api/stats", GH_M_GET | GH_M_HEAD, "GET, HEAD", true, gh_admin_stats },
    { "/", GH_M_GET | GH_M_HEAD, "GET, HEAD", false, gh_admin_dashboard },
    { "/dashboard/*", GH_M_GET | GH_M_HEAD, "GET, HEAD", false, gh_admin_dashboard },
    { "/api/cache", GH_M_DELETE, "DELETE", true, gh_admin_cache_purge },
};

void gh_admin_handle(gh_exchange *ex)
{
    gh_str path = ex->raw_path;
    bool api = path.len >= 5 && memcmp(path.p, "/api/", 5) == 0;
    if (api && !allowed(ex))   /* before anything else: no probing of /api/... paths */
        return;
    if ((!ex->cfg->admin || ex->cfg->admin->token.len == 0) && !browser_safe(ex))
        return;
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        const endpoint *e = &endpoints[i];
        size_t n = strlen(e->path);
        bool prefix = e->path[n - 1] == '*';
        if (prefix ? path.len < n - 1 || memcmp(e->path, path.p, n - 1) != 0
                   : n != path.len || memcmp(e->path, path.p, n) != 0)
            continue;
        if (!(ex->method_bit & e->methods)) {
            gh_header allow = { "Allow", e->allow, 5, (uint32_t)strlen(e->allow) };
            gh_problem(ex, 405, "method_not_allowed", "method not allowed on this admin path", &allow, 1, NULL);
            return;
        }
        e->serve(ex);
        return;
    }
    gh_problem(ex, 404, "no_route", "no such admin API path", NULL, 0, NULL);
}
