/* upstreams.c — the `upstreams:` section (SPEC §3): targets, balancing,
 * keepalive, protocol, timeouts, retries, tls (config/tls.c). Keys of §3 not
 * implemented yet (hash_on, health_check, circuit_breaker, resolve_every)
 * are absent from the tables, so they are refused as unknown keys. */
#include <stdio.h>
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

static bool set_balance(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_upstream_cfg *u = obj;
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected round_robin or least_conn", &t, NULL))
        return false;
    if (gh_str_eq_c(t, "round_robin")) {
        u->balance = GH_BALANCE_ROUND_ROBIN;
    } else if (gh_str_eq_c(t, "least_conn")) {
        u->balance = GH_BALANCE_LEAST_CONN;
    } else if (gh_str_eq_c(t, "random_two") || gh_str_eq_c(t, "hash")) {
        gh_ld_error(ld, kv->value->mark, "balance '%.*s' is not supported yet", clip(t), t.p);
        return false;
    } else {
        gh_ld_error(ld, kv->value->mark, "invalid balance '%.*s' (use round_robin or least_conn)",
                    clip(t), t.p);
        return false;
    }
    return true;
}

static bool set_protocol(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected http1", &t, NULL))
        return false;
    if (gh_str_eq_c(t, "http1")) {
        ((gh_upstream_cfg *)obj)->protocol = GH_PROTO_HTTP1;
        return true;
    }
    if (gh_str_eq_c(t, "h2")) {
        ((gh_upstream_cfg *)obj)->protocol = GH_PROTO_H2;
        return true;
    }
    gh_ld_error(ld, kv->value->mark, "invalid protocol '%.*s' (use http1 or h2)", clip(t), t.p);
    return false;
}

static const gh_key timeouts_keys[] = {
    GH_KEY_NUM("connect", GH_V_DURATION, gh_upstream_cfg, connect_timeout_ms, 1, 0),
    GH_KEY_NUM("send", GH_V_DURATION, gh_upstream_cfg, send_timeout_ms, 1, 0),
    GH_KEY_NUM("read", GH_V_DURATION, gh_upstream_cfg, read_timeout_ms, 1, 0),
};
static const gh_section timeouts_section = GH_SECTION("timeouts", timeouts_keys);

static bool set_timeouts(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_apply(ld, &timeouts_section, kv->value, obj, NULL);
}

static bool set_retry_on(gh_load *ld, void *obj, const gh_ypair *kv)
{
    static const struct { const char *name; uint32_t bit; } conds[] = {
        { "connect_error", GH_RETRY_CONNECT_ERROR }, { "reset", GH_RETRY_RESET },
        { "timeout", GH_RETRY_TIMEOUT }, { "500", GH_RETRY_500 }, { "502", GH_RETRY_502 },
        { "503", GH_RETRY_503 }, { "504", GH_RETRY_504 },
    };
    gh_upstream_cfg *u = obj;
    const gh_ynode *list = kv->value;
    u->retry_on = 0;
    for (size_t i = 0; list->kind == GH_Y_SEQ && i < list->n; i++) {
        gh_str t;
        if (!gh_ld_text(ld, list->items[i], "expected a retry condition", &t, NULL))
            continue;
        size_t c = 0;
        while (c < sizeof(conds) / sizeof(conds[0]) && !gh_str_eq_c(t, conds[c].name))
            c++;
        if (c == sizeof(conds) / sizeof(conds[0])) {
            gh_ld_error(ld, list->items[i]->mark,
                        "invalid retry condition '%.*s' (use connect_error, reset, timeout, 500, 502, 503, 504)",
                        clip(t), t.p);
            continue;
        }
        u->retry_on |= conds[c].bit;
    }
    return true;
}

static const gh_key retries_keys[] = {
    GH_KEY_NUM("attempts", GH_V_U32, gh_upstream_cfg, retry_attempts, 0, 10),
    GH_KEY_FN("on", GH_Y_SEQ, set_retry_on),
    GH_KEY_VAL("backoff", GH_V_DURATION, gh_upstream_cfg, retry_backoff_ms),
};
static const gh_section retries_section = GH_SECTION("retries", retries_keys);

static bool set_retries(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_apply(ld, &retries_section, kv->value, obj, NULL);
}

enum { U_TARGETS, U_BALANCE, U_KEEPALIVE, U_PROTOCOL, U_TIMEOUTS, U_RETRIES, U_TLS, U_COUNT };
static const gh_key upstream_keys[] = {
    [U_TARGETS] = GH_KEY_DEFER("targets"),
    [U_BALANCE] = GH_KEY_FN("balance", 0, set_balance),
    [U_KEEPALIVE] = GH_KEY_NUM("keepalive", GH_V_U32, gh_upstream_cfg, keepalive, 0, 100000),
    [U_PROTOCOL] = GH_KEY_FN("protocol", 0, set_protocol),
    [U_TIMEOUTS] = GH_KEY_FN("timeouts", GH_Y_MAP, set_timeouts),
    [U_RETRIES] = GH_KEY_FN("retries", GH_Y_MAP, set_retries),
    [U_TLS] = GH_KEY_FN("tls", GH_Y_MAP, gh_ld_upstream_tls),
};
static const gh_section upstream_section = GH_SECTION("upstream", upstream_keys);

enum { TG_ADDRESS, TG_WEIGHT };
static const gh_key target_keys[] = {
    [TG_ADDRESS] = GH_KEY_DEFER("address"),
    [TG_WEIGHT] = GH_KEY_NUM("weight", GH_V_U32, gh_target_cfg, weight, 1, 1000),
};
static const gh_section target_section = GH_SECTION("target", target_keys);

/* One item of targets: "host:port", or { address: host:port, weight: N }. */
static bool load_target(gh_load *ld, gh_target_cfg *t, const gh_ynode *item)
{
    const gh_ynode *addr = item;
    memset(t, 0, sizeof(*t));
    t->weight = 1;
    t->mark = item->mark;
    if (item->kind != GH_Y_SCALAR) {
        const gh_ypair *seen[2] = { 0 };
        if (!gh_ld_apply(ld, &target_section, item, t, seen))
            return false;
        if (!seen[TG_ADDRESS]) {
            gh_ld_error(ld, item->mark, "target needs an address");
            return false;
        }
        addr = seen[TG_ADDRESS]->value;
    }
    t->mark = addr->mark;
    if (!gh_ld_str(ld, addr, &t->address, NULL) || !gh_ld_hostport(ld, addr, t->address, &t->host, &t->port))
        return false;
    t->host = gh_ld_copy(ld, t->host);
    return gh_ld_resolve(ld, addr, t->host, t->port, true, &t->sa, &t->salen);
}

static void load_upstream(gh_load *ld, gh_upstream_cfg *u, const gh_ypair *kv)
{
    const gh_ypair *seen[U_COUNT] = { 0 };
    if (!gh_ld_apply(ld, &upstream_section, kv->value, u, seen))
        return;
    if (!seen[U_TARGETS]) {
        gh_ld_error(ld, kv->key->mark, "upstream '%.*s' needs targets", clip(u->name), u->name.p);
        return;
    }
    const gh_ynode *list = seen[U_TARGETS]->value;
    if (!gh_ld_is_seq(ld, list))
        return;
    if (list->kind != GH_Y_SEQ || list->n == 0) {
        gh_ld_error(ld, seen[U_TARGETS]->key->mark, "targets must not be empty");
        return;
    }
    u->targets = gh_ld_array(ld, list->n, sizeof(*u->targets));
    for (size_t i = 0; i < list->n; i++)
        if (load_target(ld, &u->targets[u->ntargets], list->items[i]))
            u->ntargets++;
}

bool gh_ld_upstreams(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    const gh_ynode *map = kv->value;
    if (map->kind != GH_Y_MAP)
        return true;   /* null: none */
    cfg->upstreams = gh_ld_array(ld, map->n, sizeof(*cfg->upstreams));
    for (size_t i = 0; i < map->n; i++) {
        const gh_ynode *key = map->pairs[i].key;
        if (key->kind != GH_Y_SCALAR || gh_ynode_is_null(key) || key->text.len == 0) {
            gh_ld_error(ld, key->mark, "expected an upstream name");
            continue;
        }
        gh_upstream_cfg *u = &cfg->upstreams[cfg->nupstreams++];
        /* kept even when its body has errors: routes naming it then get
         * no second, misleading "not defined" error */
        *u = (gh_upstream_cfg){
            .name = gh_ld_copy(ld, key->text),
            .mark = key->mark,
            .balance = GH_BALANCE_ROUND_ROBIN,
            .keepalive = 128,
            .protocol = GH_PROTO_HTTP1,
            .connect_timeout_ms = 2000,
            .send_timeout_ms = 30000,
            .read_timeout_ms = 30000,
            .retry_attempts = 1,
            .retry_on = GH_RETRY_CONNECT_ERROR | GH_RETRY_RESET | GH_RETRY_502 | GH_RETRY_503 | GH_RETRY_504,
            .retry_backoff_ms = 0,
        };
        load_upstream(ld, u, &map->pairs[i]);
    }
    return true;
}
