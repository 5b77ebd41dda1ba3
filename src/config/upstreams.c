/* upstreams.c — the `upstreams:` section (SPEC §3): targets, balancing,
 * keepalive, protocol, timeouts, retries, health checks, circuit breaker,
 * failure statuses, tls (config/tls.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

static bool set_balance(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_upstream_cfg *u = obj;
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected round_robin, least_conn, random_two or hash", &t, NULL))
        return false;
    static const char *const names[] = { "round_robin", "least_conn", "random_two", "hash" };
    for (int i = 0; i < 4; i++)
        if (gh_str_eq_c(t, names[i])) {
            u->balance = i;   /* enum gh_balance, in this order */
            return true;
        }
    gh_ld_error(ld, kv->value->mark,
                "invalid balance '%.*s' (use round_robin, least_conn, random_two or hash)", clip(t), t.p);
    return false;
}

/* hash_on: header:NAME | cookie:NAME | ip | path | consumer */
static bool set_hash_on(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_upstream_cfg *u = obj;
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected header:NAME, cookie:NAME, ip, path or consumer", &t, NULL))
        return false;
    static const struct { const char *name; int kind; } plain[] = {
        { "ip", GH_HASH_IP }, { "path", GH_HASH_PATH }, { "consumer", GH_HASH_CONSUMER },
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (gh_str_eq_c(t, plain[i].name)) {
            u->hash_on = plain[i].kind;
            return true;
        }
    int kind = t.len > 7 && memcmp(t.p, "header:", 7) == 0 ? GH_HASH_HEADER
             : t.len > 7 && memcmp(t.p, "cookie:", 7) == 0 ? GH_HASH_COOKIE : 0;
    gh_str name = { t.p + 7, t.len > 7 ? t.len - 7 : 0 };
    if (!kind || !gh_ld_is_token(name)) {
        gh_ld_error(ld, kv->value->mark,
                    "invalid hash_on '%.*s' (use header:NAME, cookie:NAME, ip, path or consumer)", clip(t), t.p);
        return false;
    }
    u->hash_on = kind;
    u->hash_name = gh_ld_copy(ld, name);
    return true;
}

/* A status list item: 503, or a range "200-399" (expect). */
static bool status_range(gh_load *ld, const gh_ynode *n, bool ranges, uint16_t *lo, uint16_t *hi)
{
    gh_str t;
    if (!gh_ld_text(ld, n, ranges ? "expected a status or a range like 200-399" : "expected a status",
                    &t, NULL))
        return false;
    char buf[16];
    if (t.len >= sizeof(buf))
        goto bad;
    memcpy(buf, t.p, t.len);
    buf[t.len] = 0;
    char *end;
    long a = strtol(buf, &end, 10), b = a;
    if (ranges && *end == '-')
        b = strtol(end + 1, &end, 10);
    if (end == buf || *end || a < 100 || b > 599 || a > b)
        goto bad;
    *lo = (uint16_t)a;
    *hi = (uint16_t)b;
    return true;
bad:
    gh_ld_error(ld, n->mark, "invalid status '%.*s' (%s)", clip(t), t.p,
                ranges ? "use 100-599, or a range like 200-399" : "use 100-599");
    return false;
}

static bool set_failure_statuses(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_upstream_cfg *u = obj;
    memset(u->failure_statuses, 0, sizeof(u->failure_statuses));
    for (size_t i = 0; kv->value->kind == GH_Y_SEQ && i < kv->value->n; i++) {
        uint16_t lo, hi;
        if (status_range(ld, kv->value->items[i], false, &lo, &hi))
            u->failure_statuses[lo >> 6] |= 1ull << (lo & 63);
    }
    return true;
}

static const gh_key passive_keys[] = {
    GH_KEY_NUM("failures", GH_V_U32, gh_upstream_cfg, passive.failures, 1, 1000000),
    GH_KEY_NUM("within", GH_V_DURATION, gh_upstream_cfg, passive.within_ms, 1, 0),
    GH_KEY_NUM("eject_for", GH_V_DURATION, gh_upstream_cfg, passive.eject_for_ms, 1, 0),
};
static const gh_section passive_section = GH_SECTION("health_check.passive", passive_keys);

static bool set_passive(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_upstream_cfg *u = obj;
    u->passive.failures = 5;
    u->passive.within_ms = 10000;
    u->passive.eject_for_ms = 30000;
    return gh_ld_apply(ld, &passive_section, kv->value, obj, NULL);
}

static bool set_expect(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_upstream_cfg *u = obj;
    u->active.nexpect = 0;
    for (size_t i = 0; kv->value->kind == GH_Y_SEQ && i < kv->value->n; i++) {
        uint16_t lo, hi;
        if (u->active.nexpect == sizeof(u->active.expect) / sizeof(u->active.expect[0])) {
            gh_ld_error(ld, kv->value->items[i]->mark, "too many expect items (at most 16)");
            return false;
        }
        if (status_range(ld, kv->value->items[i], true, &lo, &hi)) {
            u->active.expect[u->active.nexpect].lo = lo;
            u->active.expect[u->active.nexpect++].hi = hi;
        }
    }
    if (kv->value->kind != GH_Y_SEQ || kv->value->n == 0)
        gh_ld_error(ld, kv->key->mark, "expect must not be empty");
    return true;
}

static bool set_active_path(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_upstream_cfg *u = obj;
    gh_str t;
    if (!gh_ld_str(ld, kv->value, &t, NULL))
        return false;
    for (size_t i = 0; i < t.len; i++)
        if ((unsigned char)t.p[i] <= ' ' || t.p[i] == 0x7f) {
            gh_ld_error(ld, kv->value->mark, "invalid health check path (no spaces or control characters)");
            return false;
        }
    if (t.p[0] != '/') {
        gh_ld_error(ld, kv->value->mark, "health check path must start with '/'");
        return false;
    }
    u->active.path = t;
    return true;
}

static const gh_key active_keys[] = {
    GH_KEY_FN("path", 0, set_active_path),
    GH_KEY_NUM("interval", GH_V_DURATION, gh_upstream_cfg, active.interval_ms, 1, 0),
    GH_KEY_NUM("timeout", GH_V_DURATION, gh_upstream_cfg, active.timeout_ms, 1, 0),
    GH_KEY_NUM("healthy_after", GH_V_U32, gh_upstream_cfg, active.healthy_after, 1, 1000),
    GH_KEY_NUM("unhealthy_after", GH_V_U32, gh_upstream_cfg, active.unhealthy_after, 1, 1000),
    GH_KEY_FN("expect", GH_Y_SEQ, set_expect),
};
static const gh_section active_section = GH_SECTION("health_check.active", active_keys);

static bool set_active(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_upstream_cfg *u = obj;
    u->active.on = true;
    u->active.path = (gh_str){ "/health", 7 };
    u->active.interval_ms = 5000;
    u->active.timeout_ms = 1000;
    u->active.healthy_after = 2;
    u->active.unhealthy_after = 3;
    u->active.expect[0].lo = 200;
    u->active.expect[0].hi = 399;
    u->active.nexpect = 1;
    return gh_ld_apply(ld, &active_section, kv->value, obj, NULL);
}

static const gh_key health_keys[] = {
    GH_KEY_FN("active", GH_Y_MAP, set_active),
    GH_KEY_FN("passive", GH_Y_MAP, set_passive),
};
static const gh_section health_section = GH_SECTION("health_check", health_keys);

static bool set_health(gh_load *ld, void *obj, const gh_ypair *kv)
{
    ((gh_upstream_cfg *)obj)->health_mark = kv->key->mark;
    return gh_ld_apply(ld, &health_section, kv->value, obj, NULL);
}

static bool set_failure_ratio(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected a ratio between 0 and 1", &t, NULL))
        return false;
    char buf[32];
    char *end = buf;
    double r = -1;
    if (t.len && t.len < sizeof(buf)) {
        memcpy(buf, t.p, t.len);
        buf[t.len] = 0;
        r = strtod(buf, &end);
    }
    if (end == buf || *end || !(r > 0 && r <= 1)) {
        gh_ld_error(ld, kv->value->mark, "invalid failure_ratio '%.*s' (use a number above 0, at most 1)",
                    clip(t), t.p);
        return false;
    }
    ((gh_upstream_cfg *)obj)->circuit.failure_ratio = r;
    return true;
}

static const gh_key circuit_keys[] = {
    GH_KEY_FN("failure_ratio", 0, set_failure_ratio),
    GH_KEY_NUM("min_requests", GH_V_U32, gh_upstream_cfg, circuit.min_requests, 1, 1000000000),
    GH_KEY_NUM("window", GH_V_DURATION, gh_upstream_cfg, circuit.window_ms, 1, 0),
    GH_KEY_NUM("open_for", GH_V_DURATION, gh_upstream_cfg, circuit.open_for_ms, 1, 0),
    GH_KEY_NUM("max_pending", GH_V_U32, gh_upstream_cfg, circuit.max_pending, 0, 1000000000),
};
static const gh_section circuit_section = GH_SECTION("circuit_breaker", circuit_keys);

static bool set_circuit(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_upstream_cfg *u = obj;
    u->circuit.on = true;
    u->circuit.failure_ratio = 0.5;
    u->circuit.min_requests = 20;
    u->circuit.window_ms = 10000;
    u->circuit.open_for_ms = 30000;
    u->circuit.max_pending = 1024;
    u->circuit_mark = kv->key->mark;
    return gh_ld_apply(ld, &circuit_section, kv->value, obj, NULL);
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

enum { U_TARGETS, U_BALANCE, U_KEEPALIVE, U_PROTOCOL, U_TIMEOUTS, U_RETRIES, U_TLS, U_HASH_ON, U_HEALTH,
       U_CIRCUIT, U_FAILURE_STATUSES, U_RESOLVE, U_COUNT };
static const gh_key upstream_keys[] = {
    [U_TARGETS] = GH_KEY_DEFER("targets"),
    [U_BALANCE] = GH_KEY_FN("balance", 0, set_balance),
    [U_KEEPALIVE] = GH_KEY_NUM("keepalive", GH_V_U32, gh_upstream_cfg, keepalive, 0, 100000),
    [U_PROTOCOL] = GH_KEY_FN("protocol", 0, set_protocol),
    [U_TIMEOUTS] = GH_KEY_FN("timeouts", GH_Y_MAP, set_timeouts),
    [U_RETRIES] = GH_KEY_FN("retries", GH_Y_MAP, set_retries),
    [U_TLS] = GH_KEY_FN("tls", GH_Y_MAP, gh_ld_upstream_tls),
    [U_HASH_ON] = GH_KEY_FN("hash_on", 0, set_hash_on),
    [U_HEALTH] = GH_KEY_FN("health_check", GH_Y_MAP, set_health),
    [U_CIRCUIT] = GH_KEY_FN("circuit_breaker", GH_Y_MAP, set_circuit),
    [U_FAILURE_STATUSES] = GH_KEY_FN("failure_statuses", GH_Y_SEQ, set_failure_statuses),
    [U_RESOLVE] = GH_KEY_NUM("resolve_every", GH_V_DURATION, gh_upstream_cfg, resolve_every_ms, 1, 0),
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
    if (u->balance == GH_BALANCE_HASH && !seen[U_HASH_ON])
        gh_ld_error(ld, seen[U_BALANCE]->value->mark, "balance: hash needs hash_on");
    if (seen[U_HASH_ON] && u->balance != GH_BALANCE_HASH)
        gh_ld_error(ld, seen[U_HASH_ON]->key->mark, "hash_on needs balance: hash");
    /* the checker speaks HTTP/1.1 only: an h2-only target would fail every check */
    if (u->active.on && u->protocol == GH_PROTO_H2)
        gh_ld_error(ld, u->health_mark,
                    "health_check.active speaks HTTP/1.1 and is not available with protocol: h2 (use passive checks)");
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
            .failure_statuses = { [500 >> 6] = 1ull << (500 & 63) | 1ull << (502 & 63) |
                                                1ull << (503 & 63) | 1ull << (504 & 63) },
        };
        load_upstream(ld, u, &map->pairs[i]);
    }
    return true;
}
