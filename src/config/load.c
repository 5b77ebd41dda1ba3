/* load.c — YAML text -> gh_config: the top-level keys, listeners, limits,
 * log, trusted proxies, addresses, and the public API. The YAML tree comes
 * from yaml.c; upstreams and routes have their own files. */
#include "config/config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/schema.h"
#include "config/units.h"
#include "core/log.h"

#define MAX_FILE (16u << 20)        /* a configuration, not a data set */

/* ----------------------------------------------------------- addresses */

bool gh_ld_hostport(gh_load *ld, const gh_ynode *n, gh_str addr, gh_str *host, uint16_t *port)
{
    int alen = addr.len > 80 ? 80 : (int)addr.len;
    gh_str h, p;
    if (addr.len && addr.p[0] == '[') {
        const char *close = memchr(addr.p, ']', addr.len);
        if (!close || close + 1 >= addr.p + addr.len || close[1] != ':')
            goto bad;
        h = gh_str_from(addr.p + 1, (size_t)(close - addr.p - 1));
        p = gh_str_from(close + 2, addr.len - (size_t)(close + 2 - addr.p));
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < addr.len; i++)
            if (addr.p[i] == ':')
                colon = addr.p + i;
        if (!colon)
            goto bad;
        h = gh_str_from(addr.p, (size_t)(colon - addr.p));
        p = gh_str_from(colon + 1, addr.len - h.len - 1);
        if (memchr(h.p, ':', h.len)) {
            gh_ld_error(ld, n->mark, "invalid address '%.*s' (an IPv6 address needs brackets: [::1]:8080)",
                        alen, addr.p);
            return false;
        }
    }
    if (h.len == 0)
        goto bad;
    uint64_t v;
    if (!gh_parse_uint(p, &v) || v == 0 || v > 65535) {
        gh_ld_error(ld, n->mark, "invalid port in '%.*s' (use 1-65535)", alen, addr.p);
        return false;
    }
    *host = h;
    *port = (uint16_t)v;
    return true;
bad:
    gh_ld_error(ld, n->mark, "invalid address '%.*s' (use host:port or [v6]:port)", alen, addr.p);
    return false;
}

static void set_port(struct sockaddr_storage *sa, uint16_t port)
{
    if (sa->ss_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    else if (sa->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static bool lookup(const char *host, int flags, struct sockaddr_storage *sa, socklen_t *salen, int *err)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = flags };
    struct addrinfo *res = NULL;
    *err = getaddrinfo(host, NULL, &hints, &res);
    if (*err != 0)
        return false;
    bool ok = res && res->ai_addrlen <= sizeof(*sa);
    if (ok) {
        memset(sa, 0, sizeof(*sa));
        memcpy(sa, res->ai_addr, res->ai_addrlen);
        *salen = (socklen_t)res->ai_addrlen;
    } else {
        *err = EAI_FAMILY;
    }
    freeaddrinfo(res);
    return ok;
}

bool gh_ld_resolve(gh_load *ld, const gh_ynode *n, gh_str host, uint16_t port, bool names_ok,
                   struct sockaddr_storage *sa, socklen_t *salen)
{
    char *h = gh_ld_tmp(ld, host.len + 1);
    memcpy(h, host.p, host.len);
    h[host.len] = '\0';
    int hlen = host.len > 80 ? 80 : (int)host.len;
    int err = 0;
    /* "localhost" is the IPv4 loopback: predictable, whatever /etc/hosts
     * lists first, and no resolver involved */
    if (strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    if (lookup(h, AI_NUMERICHOST | AI_PASSIVE, sa, salen, &err)) {
        set_port(sa, port);
        return true;
    }
    if (!names_ok) {
        gh_ld_error(ld, n->mark, "invalid host '%.*s' (use an IP address or localhost)", hlen, host.p);
        return false;
    }
#ifdef GH_FUZZING
    /* the fuzzer must not wait on DNS */
    gh_ld_error(ld, n->mark, "cannot resolve '%.*s': name lookups are off in fuzzing builds", hlen, host.p);
    return false;
#else
    if (lookup(h, 0, sa, salen, &err)) {
        set_port(sa, port);
        return true;
    }
    gh_ld_error(ld, n->mark, "cannot resolve '%.*s': %s", hlen, host.p,
                err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
    return false;
#endif
}

/* ---------------------------------------------------------- top level */

enum { L_ADDRESS, L_HTTP2, L_PATH_STRICT, L_TLS, L_COUNT };
static const gh_key listen_keys[] = {
    [L_ADDRESS] = GH_KEY_DEFER("address"),
    [L_HTTP2] = GH_KEY_VAL("http2", GH_V_BOOL, gh_listen_cfg, http2),
    [L_PATH_STRICT] = GH_KEY_VAL("path_strict", GH_V_BOOL, gh_listen_cfg, path_strict),
    [L_TLS] = GH_KEY_FN("tls", GH_Y_MAP, gh_ld_listen_tls),
};
static const gh_section listen_section = GH_SECTION("listen", listen_keys);

static bool set_listen(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    const gh_ynode *list = kv->value;
    if (list->kind != GH_Y_SEQ || list->n == 0) {
        gh_ld_error(ld, kv->key->mark, "at least one listen address is required");
        return false;
    }
    cfg->listens = gh_ld_array(ld, list->n, sizeof(*cfg->listens));
    for (size_t i = 0; i < list->n; i++) {
        const gh_ynode *item = list->items[i];
        gh_listen_cfg *l = &cfg->listens[cfg->nlistens];
        const gh_ypair *seen[L_COUNT] = { 0 };
        memset(l, 0, sizeof(*l));
        l->path_strict = true;
        l->mark = item->mark;
        if (!gh_ld_apply(ld, &listen_section, item, l, seen))
            continue;
        if (!seen[L_ADDRESS]) {
            gh_ld_error(ld, item->mark, "listen entry needs an address");
            continue;
        }
        const gh_ynode *v = seen[L_ADDRESS]->value;
        gh_str host;
        uint16_t port;
        l->mark = v->mark;
        if (!gh_ld_str(ld, v, &l->address, NULL) || !gh_ld_hostport(ld, v, l->address, &host, &port) ||
            !gh_ld_resolve(ld, v, host, port, false, &l->sa, &l->salen))
            continue;
        for (size_t j = 0; j < cfg->nlistens; j++) {
            const gh_listen_cfg *o = &cfg->listens[j];
            if (o->salen == l->salen && memcmp(&o->sa, &l->sa, l->salen) == 0) {
                gh_ld_error(ld, v->mark, "duplicate listen address '%s' (also at line %u)",
                            l->address.p, o->mark.line);
                goto next;
            }
        }
        cfg->nlistens++;
    next:;
    }
    return true;
}

static bool set_workers(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    static const char msg[] = "expected auto or an integer between 1 and 256";
    gh_str t;
    uint64_t v;
    if (!gh_ld_text(ld, kv->value, msg, &t, NULL))
        return false;
    if (gh_str_eq_c(t, "auto")) {
        cfg->workers = 0;
        return true;
    }
    if (!gh_parse_uint(t, &v) || v < 1 || v > 256) {
        gh_ld_expected(ld, kv->value, msg);
        return false;
    }
    cfg->workers = (int)v;
    return true;
}

static bool set_underscores(gh_load *ld, void *obj, const gh_ypair *kv)
{
    static const char *const names[] = {
        [GH_UNDERSCORES_DROP] = "drop", [GH_UNDERSCORES_ALLOW] = "allow", [GH_UNDERSCORES_REJECT] = "reject",
    };
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected drop, allow or reject", &t, NULL))
        return false;
    for (int i = 0; i < 3; i++) {
        if (gh_str_eq_c(t, names[i])) {
            ((gh_limits_cfg *)obj)->underscores_in_headers = i;
            return true;
        }
    }
    gh_ld_error(ld, kv->value->mark, "invalid underscores_in_headers '%.*s' (use drop, allow or reject)",
                t.len > 80 ? 80 : (int)t.len, t.p);
    return false;
}

static const gh_key limits_keys[] = {
    GH_KEY_NUM("header_timeout", GH_V_DURATION, gh_limits_cfg, header_timeout_ms, 1, 0),
    GH_KEY_NUM("body_timeout", GH_V_DURATION, gh_limits_cfg, body_timeout_ms, 1, 0),
    GH_KEY_VAL("min_body_rate", GH_V_SIZE, gh_limits_cfg, min_body_rate),
    GH_KEY_NUM("idle_timeout", GH_V_DURATION, gh_limits_cfg, idle_timeout_ms, 1, 0),
    GH_KEY_NUM("max_header_bytes", GH_V_SIZE, gh_limits_cfg, max_header_bytes, 1, 0),
    GH_KEY_NUM("max_headers", GH_V_U64, gh_limits_cfg, max_headers, 1, 10000),
    GH_KEY_VAL("max_body_bytes", GH_V_SIZE, gh_limits_cfg, max_body_bytes),
    GH_KEY_NUM("max_connections", GH_V_U64, gh_limits_cfg, max_connections, 1, 10000000),
    GH_KEY_FN("underscores_in_headers", 0, set_underscores),
};
static const gh_section limits_section = GH_SECTION("limits", limits_keys);

static bool set_limits(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_apply(ld, &limits_section, kv->value, &((gh_config *)obj)->limits, NULL);
}

static bool set_trusted(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    const gh_ynode *list = kv->value;
    if (list->kind != GH_Y_SEQ)
        return true;   /* null: none */
    cfg->trusted_proxies = gh_ld_array(ld, list->n, sizeof(gh_cidr));
    for (size_t i = 0; i < list->n; i++) {
        gh_str t;
        if (!gh_ld_text(ld, list->items[i], "expected an address or CIDR (10.0.0.0/8, ::1)", &t, NULL))
            continue;
        if (!gh_cidr_parse(t, &cfg->trusted_proxies[cfg->ntrusted_proxies])) {
            gh_ld_error(ld, list->items[i]->mark, "invalid address or CIDR '%.*s'",
                        t.len > 80 ? 80 : (int)t.len, t.p);
            continue;
        }
        cfg->ntrusted_proxies++;
    }
    return true;
}

static bool set_log_level(gh_load *ld, void *obj, const gh_ypair *kv)
{
    static const char *const names[] = {
        [GH_LOG_ERROR] = "error", [GH_LOG_WARN] = "warn", [GH_LOG_INFO] = "info", [GH_LOG_DEBUG] = "debug",
    };
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected a log level (error, warn, info or debug)", &t, NULL))
        return false;
    for (int i = 0; i < 4; i++) {
        if (gh_str_eq_c(t, names[i])) {
            ((gh_log_cfg *)obj)->level = i;
            return true;
        }
    }
    gh_ld_error(ld, kv->value->mark, "invalid log level '%.*s' (use error, warn, info or debug)",
                t.len > 80 ? 80 : (int)t.len, t.p);
    return false;
}

enum { G_LEVEL, G_ACCESS, G_ERRORS };
static const gh_key log_keys[] = {
    [G_LEVEL] = GH_KEY_FN("level", 0, set_log_level),
    [G_ACCESS] = GH_KEY_VAL("access", GH_V_STR, gh_log_cfg, access),
    [G_ERRORS] = GH_KEY_VAL("errors", GH_V_STR, gh_log_cfg, errors),
};
static const gh_section log_section = GH_SECTION("log", log_keys);
static bool is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) == 127;
    return sa->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
}

enum { A_ADDRESS, A_TOKEN, A_COUNT };
static const gh_key admin_keys[] = {
    [A_ADDRESS] = GH_KEY_DEFER("address"),
    [A_TOKEN] = GH_KEY_VAL("token", GH_V_STR, gh_admin_cfg, token),
};
static const gh_section admin_section = GH_SECTION("admin", admin_keys);

/* SPEC §12.15: without a token the admin API answers loopback clients only,
 * so a non-loopback address without one would serve nobody's /api/... safely. */
static bool set_admin(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    gh_admin_cfg *a = gh_ld_array(ld, 1, sizeof(*a));
    const gh_ypair *seen[A_COUNT] = { 0 };
    memset(a, 0, sizeof(*a));
    if (!gh_ld_apply(ld, &admin_section, kv->value, a, seen))
        return false;
    if (!seen[A_ADDRESS]) {
        gh_ld_error(ld, kv->value->mark, "admin needs an address (admin: { address: 127.0.0.1:9901 })");
        return false;
    }
    const gh_ynode *v = seen[A_ADDRESS]->value;
    gh_listen_cfg *l = &a->listen;
    gh_str host;
    uint16_t port;
    l->mark = v->mark;
    l->path_strict = true;
    if (!gh_ld_str(ld, v, &l->address, NULL) || !gh_ld_hostport(ld, v, l->address, &host, &port) ||
        !gh_ld_resolve(ld, v, host, port, false, &l->sa, &l->salen))
        return false;
    if (seen[A_TOKEN] && a->token.len == 0) {
        gh_ld_error(ld, seen[A_TOKEN]->value->mark, "admin token is empty");
        return false;
    }
    if (a->token.len == 0 && !is_loopback(&l->sa)) {
        gh_ld_error(ld, v->mark, "admin address '%s' is not loopback: set admin.token", l->address.p);
        return false;
    }
    cfg->admin = a;
    return true;
}

static bool set_log(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_log_cfg *log = &((gh_config *)obj)->log;
    const gh_ypair *seen[3] = { 0 };
    if (!gh_ld_apply(ld, &log_section, kv->value, log, seen))
        return false;
    if (seen[G_ACCESS] && log->access.len == 0)
        gh_ld_error(ld, seen[G_ACCESS]->value->mark, "expected stdout, off or a file path");
    if (seen[G_ERRORS] && log->errors.len == 0)
        gh_ld_error(ld, seen[G_ERRORS]->value->mark, "expected stderr or a file path");
    if (log->access.len == 0)
        log->access = GH_STR("stdout");
    if (log->errors.len == 0)
        log->errors = GH_STR("stderr");
    return true;
}

/* The top level (SPEC §2). */
enum { T_LISTEN, T_ADMIN, T_WORKERS, T_LIMITS, T_TRUSTED, T_LOG, T_DRAIN, T_PLUGINS, T_UPSTREAMS, T_CONSUMERS,
       T_ROUTES, T_REDIS, T_SOURCE, T_WATCH, T_COUNT };
static const gh_key top_keys[] = {
    [T_LISTEN] = GH_KEY_FN("listen", GH_Y_SEQ, set_listen),
    [T_ADMIN] = GH_KEY_FN("admin", GH_Y_MAP, set_admin),
    [T_WORKERS] = GH_KEY_FN("workers", 0, set_workers),
    [T_LIMITS] = GH_KEY_FN("limits", GH_Y_MAP, set_limits),
    [T_TRUSTED] = GH_KEY_FN("trusted_proxies", GH_Y_SEQ, set_trusted),
    [T_LOG] = GH_KEY_FN("log", GH_Y_MAP, set_log),
    [T_DRAIN] = GH_KEY_VAL("drain_timeout", GH_V_DURATION, gh_config, drain_timeout_ms),
    [T_PLUGINS] = GH_KEY_FN("plugins", GH_Y_MAP, gh_ld_global_plugins),
    [T_UPSTREAMS] = GH_KEY_FN("upstreams", GH_Y_MAP, gh_ld_upstreams),
    [T_CONSUMERS] = GH_KEY_FN("consumers", GH_Y_SEQ, gh_ld_consumers),
    [T_ROUTES] = GH_KEY_FN("routes", GH_Y_SEQ, gh_ld_routes),
    [T_REDIS] = GH_KEY_FN("redis", GH_Y_MAP, gh_ld_redis),
    [T_SOURCE] = GH_KEY_FN("config_source", GH_Y_MAP, gh_ld_config_source),
    [T_WATCH] = GH_KEY_VAL("watch", GH_V_BOOL, gh_config, watch),
};
static const gh_section top_section = GH_SECTION("configuration", top_keys);

static void set_defaults(gh_config *cfg)
{
    cfg->workers = 0;
    cfg->limits = (gh_limits_cfg){
        .header_timeout_ms = 10000,
        .body_timeout_ms = 10000,
        .min_body_rate = 1024,
        .idle_timeout_ms = 60000,
        .max_header_bytes = 16 * 1024,
        .max_headers = 100,
        .max_body_bytes = 10 * 1024 * 1024,
        .max_connections = 100000,
    };
    cfg->log = (gh_log_cfg){ .level = GH_LOG_INFO, .access = GH_STR("stdout"), .errors = GH_STR("stderr") };
    cfg->drain_timeout_ms = 30000;
}

/* SPEC §12.21: with config_source.etcd the bootstrap file holds the node's
 * own settings and etcd the rest; a key never comes from both. */
static bool is_node_key(gh_str k, bool bootstrap_only)
{
    static const char *const keys[] = { "listen", "admin", "config_source", "watch", "workers", "log" };
    for (size_t i = 0; i < (bootstrap_only ? 4u : 6u); i++)
        if (gh_str_eq_c(k, keys[i]))
            return true;
    return false;
}

static bool check_bootstrap(gh_load *ld, const gh_ynode *root)
{
    bool ok = true;
    for (size_t i = 0; i < root->n; i++)
        if (!is_node_key(root->pairs[i].key->text, false)) {
            gh_ld_error(ld, root->pairs[i].key->mark,
                        "with config_source.etcd, `%s` comes from etcd: this file holds only listen, admin, "
                        "config_source, watch, workers and log",
                        root->pairs[i].key->text.p);
            ok = false;
        }
    return ok;
}

/* The document's keys plus the bootstrap's node keys (in ld->tmp). */
static const gh_ynode *layer(gh_load *ld, const gh_ynode *doc, const gh_ynode *boot)
{
    if (doc->kind != GH_Y_MAP || boot->kind != GH_Y_MAP)
        return doc;   /* reported by the apply below */
    bool ok = true;
    for (size_t i = 0; i < doc->n; i++)
        if (is_node_key(doc->pairs[i].key->text, true)) {
            gh_ld_error(ld, doc->pairs[i].key->mark,
                        "`%s` comes from the bootstrap file, not from etcd: remove it from the document",
                        doc->pairs[i].key->text.p);
            ok = false;
        }
    if (!ok)
        return NULL;
    gh_ynode *m = gh_arena_zalloc(&ld->tmp, sizeof(*m));
    m->kind = GH_Y_MAP;
    m->mark = doc->mark;
    m->pairs = gh_arena_alloc(&ld->tmp, sizeof(gh_ypair) * (doc->n + boot->n + 1));
    for (size_t i = 0; i < boot->n; i++) {
        bool in_doc = false;
        for (size_t j = 0; j < doc->n; j++)
            in_doc = in_doc || gh_str_eq(doc->pairs[j].key->text, boot->pairs[i].key->text);
        if (!in_doc)
            m->pairs[m->n++] = boot->pairs[i];
    }
    for (size_t i = 0; i < doc->n; i++)
        m->pairs[m->n++] = doc->pairs[i];
    m->cap = m->n;
    m->weight = doc->weight + boot->weight;
    return m;
}

static void load_root(gh_load *ld, const gh_ynode *root, const gh_ynode *boot)
{
    if (!root || gh_ynode_is_null(root)) {
        gh_ld_error(ld, (gh_mark){ 1, 1 }, "empty configuration");
        return;
    }
    if (boot && !(root = layer(ld, root, boot)))
        return;
    const gh_ypair *seen[T_COUNT] = { 0 };
    if (!gh_ld_apply(ld, &top_section, root, ld->cfg, seen))
        return;
    if (ld->cfg->etcd && !boot && !check_bootstrap(ld, root))
        return;
    if (!seen[T_LISTEN])
        gh_ld_error(ld, root->mark,
                    "at least one listen address is required (listen: [{ address: 0.0.0.0:8080 }])");
    const gh_admin_cfg *a = ld->cfg->admin;
    for (size_t j = 0; a && j < ld->cfg->nlistens; j++) {
        const gh_listen_cfg *o = &ld->cfg->listens[j];
        if (o->salen == a->listen.salen && memcmp(&o->sa, &a->listen.sa, o->salen) == 0)
            gh_ld_error(ld, a->listen.mark, "admin address '%s' is also a listen address (line %u)",
                        a->listen.address.p, o->mark.line);
    }
    gh_ld_routes_resolve(ld);
    gh_ld_plugins_resolve(ld);
}

/* --------------------------------------------------------------- API */

typedef struct sorted_item {
    unsigned line, col;
    size_t index;
    const char *msg;
} sorted_item;

static int by_position(const void *a, const void *b)
{
    const sorted_item *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* One message to the caller's diag, control characters (from the file's
 * own text, quoted in messages) shown as '?': one message, one clean line. */
static void emit(gh_diag *diag, bool warning, gh_mark at, const char *msg)
{
    char clean[1024];
    size_t n = 0;
    for (; msg[n] && n + 1 < sizeof(clean); n++)
        clean[n] = ((unsigned char)msg[n] < 0x20 || msg[n] == 0x7f) ? '?' : msg[n];
    clean[n] = '\0';
    if (warning)
        gh_diag_warn(diag, at, "%s", clean);
    else
        gh_diag_error(diag, at, "%s", clean);
}

/* Hand the load's messages to the caller's diag in file order: sections are
 * checked in dependency order (routes after upstreams, cross-checks last),
 * but `gatehouse check` should read top to bottom. `local` was made with an
 * empty file name, so each text starts with ":LINE:COL: ". */
static void publish(gh_diag *local, gh_diag *diag)
{
    sorted_item *items = local->n ? calloc(local->n, sizeof(*items)) : NULL;
    for (size_t i = 0; i < local->n; i++) {
        const char *t = local->items[i].text;
        char *end;
        sorted_item it = { .index = i, .msg = t };
        if (*t == ':') {
            it.line = (unsigned)strtoul(t + 1, &end, 10);
            if (*end == ':') {
                it.col = (unsigned)strtoul(end + 1, &end, 10);
                if (end[0] == ':' && end[1] == ' ')
                    it.msg = end + 2;
            }
        }
        if (local->items[i].warning && strncmp(it.msg, "warning: ", 9) == 0)
            it.msg += 9;
        if (!items) {   /* no memory to sort: in order of discovery */
            emit(diag, local->items[i].warning, (gh_mark){ it.line, it.col }, it.msg);
            continue;
        }
        items[i] = it;
    }
    if (!items)
        return;
    qsort(items, local->n, sizeof(*items), by_position);
    for (size_t i = 0; i < local->n; i++)
        emit(diag, local->items[items[i].index].warning, (gh_mark){ items[i].line, items[i].col },
             items[i].msg);
    free(items);
}

static gh_config *load_texts(const char *name, const char *text, size_t len, const char *boot_path,
                             const char *boot_text, size_t boot_len, gh_diag *diag)
{
    gh_diag local;
    gh_diag_init(&local, "");
    gh_arena arena;
    gh_arena_init(&arena, 16384);
    gh_config *cfg = gh_arena_zalloc(&arena, sizeof(*cfg));
    if (!cfg) {
        gh_diag_error(diag, (gh_mark){ 0, 0 }, "out of memory");
        return NULL;
    }
    cfg->arena = arena;   /* from here on the configuration owns its arena */
    gh_load ld = { .cfg = cfg, .diag = &local, .a = &cfg->arena };
    gh_arena_init(&ld.tmp, 16384);
    /* relative paths (certificates, key files) are the bootstrap file's neighbours in a fleet */
    cfg->file = gh_ld_copy(&ld, gh_str_c(boot_path ? boot_path : name ? name : diag->file)).p;
    set_defaults(cfg);

    gh_ynode *boot = boot_text ? gh_ld_parse_yaml(&ld, boot_text, boot_len) : NULL;
    gh_ynode *root = gh_ld_parse_yaml(&ld, text ? text : "", text ? len : 0);
    if (boot_text && !boot && local.errors == 0)
        gh_ld_error(&ld, (gh_mark){ 1, 1 }, "the bootstrap file is empty");
    if ((root || local.errors == 0) && local.errors == 0)
        load_root(&ld, root, boot);
    if (root && local.errors == 0)
        gh_ld_document(&ld, root);
    gh_arena_free(&ld.tmp);
    if (boot_path)
        cfg->file = gh_ld_copy(&ld, gh_str_c(name)).p;   /* what the admin API and logs show */

    const char *saved_file = diag->file;
    if (name)
        diag->file = name;   /* messages name what the caller called it */
    publish(&local, diag);
    diag->file = saved_file;
    bool failed = local.errors > 0;
    gh_diag_free(&local);
    if (failed) {
        gh_config_free(cfg);
        return NULL;
    }
    return cfg;
}

gh_config *gh_config_load_string(const char *name, const char *text, size_t len, gh_diag *diag)
{
    return load_texts(name, text, len, NULL, NULL, 0, diag);
}

gh_config *gh_config_load_layered(const char *boot_path, const char *doc_name, const char *doc, size_t len,
                                  gh_diag *diag)
{
    size_t blen;
    char *boot = gh_config_read_file(boot_path, &blen);
    if (!boot) {
        gh_diag_fail(diag, "cannot read %s: %s", boot_path, strerror(errno));
        return NULL;
    }
    gh_config *cfg = load_texts(doc_name, doc, len, boot_path, boot, blen, diag);
    free(boot);
    return cfg;
}

static char *read_all(const char *path, size_t *outlen, bool *opened)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int err = 0;
    *opened = f != NULL;
    if (!f)
        return NULL;
    for (;;) {
        if (len + 1 >= cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = cap <= MAX_FILE ? realloc(buf, cap) : NULL;
            if (!nb) {
                err = cap > MAX_FILE ? EFBIG : ENOMEM;
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                err = errno ? errno : EIO;
            break;
        }
    }
    fclose(f);
    if (err) {
        free(buf);
        errno = err;
        return NULL;
    }
    buf[len] = '\0';
    *outlen = len;
    return buf;
}

char *gh_config_read_file(const char *path, size_t *len)
{
    bool opened;
    return read_all(path, len, &opened);
}

gh_config *gh_config_load_file(const char *path, gh_diag *diag)
{
    size_t len = 0;
    bool opened;
    char *buf = read_all(path, &len, &opened);
    if (!buf) {
        gh_diag_fail(diag, "cannot %s %s: %s", opened ? "read" : "open", path, strerror(errno));
        return NULL;
    }
    gh_config *cfg = gh_config_load_string(path, buf, len, diag);
    free(buf);
    return cfg;
}

void gh_config_free(gh_config *cfg)
{
    if (!cfg)
        return;
    gh_arena arena = cfg->arena;   /* cfg itself lives in it */
    gh_arena_free(&arena);
}

const gh_upstream_cfg *gh_config_upstream(const gh_config *cfg, gh_str name)
{
    for (size_t i = 0; cfg && i < cfg->nupstreams; i++)
        if (gh_str_eq(cfg->upstreams[i].name, name))
            return &cfg->upstreams[i];
    return NULL;
}
