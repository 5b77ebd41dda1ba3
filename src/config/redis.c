/* redis.c — the `redis:` section (SPEC §2): one server (`address`) or the
 * seeds of a Redis Cluster (`cluster`), ACL credentials, TLS, the per-command
 * timeout and what a cluster limit does while Redis is unreachable. The
 * client that uses it is src/cluster/redis.c. */
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

static bool set_on_error(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected allow or deny", &t, NULL))
        return false;
    if (gh_str_eq_c(t, "allow"))
        ((gh_redis_cfg *)obj)->on_error = GH_REDIS_ON_ERROR_ALLOW;
    else if (gh_str_eq_c(t, "deny"))
        ((gh_redis_cfg *)obj)->on_error = GH_REDIS_ON_ERROR_DENY;
    else {
        gh_ld_error(ld, kv->value->mark, "invalid on_error '%.*s' (use allow or deny)", clip(t), t.p);
        return false;
    }
    return true;
}

/* hiredis 0.14 has no TLS: the client bridges it (cluster/redis_tls.c). */
static bool set_tls(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_client_tls(ld, kv, &((gh_redis_cfg *)obj)->tls);
}

enum { R_ADDRESS, R_CLUSTER, R_USERNAME, R_PASSWORD, R_TLS, R_TIMEOUT, R_ON_ERROR, R_COUNT };
static const gh_key redis_keys[] = {
    [R_ADDRESS] = GH_KEY_DEFER("address"),
    [R_CLUSTER] = GH_KEY_DEFER("cluster"),
    [R_USERNAME] = GH_KEY_VAL("username", GH_V_STR, gh_redis_cfg, username),
    [R_PASSWORD] = GH_KEY_DEFER("password"),
    [R_TLS] = GH_KEY_FN("tls", GH_Y_MAP, set_tls),
    [R_TIMEOUT] = GH_KEY_NUM("timeout", GH_V_DURATION, gh_redis_cfg, timeout_ms, 1, 0),
    [R_ON_ERROR] = GH_KEY_FN("on_error", 0, set_on_error),
};
static const gh_section redis_section = GH_SECTION("redis", redis_keys);

static bool set_addr(gh_load *ld, const gh_ynode *n, gh_redis_addr_cfg *out)
{
    gh_str a;
    if (!gh_ld_text(ld, n, "expected host:port", &a, NULL) || !gh_ld_hostport(ld, n, a, &out->host, &out->port))
        return false;
    /* as the listeners read it: the IPv4 loopback, no resolver involved */
    out->host = gh_str_eq_c(out->host, "localhost") ? GH_STR("127.0.0.1") : gh_ld_copy(ld, out->host);
    out->mark = n->mark;
    return true;
}

bool gh_ld_redis(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    gh_redis_cfg *r = gh_ld_zalloc(ld, sizeof(*r));
    const gh_ypair *seen[R_COUNT] = { 0 };
    r->timeout_ms = 50;
    r->mark = kv->key->mark;
    if (!gh_ld_apply(ld, &redis_section, kv->value, r, seen))
        return false;
    bool ok = true;
    if (seen[R_ADDRESS] && seen[R_CLUSTER]) {
        gh_ld_error(ld, seen[R_CLUSTER]->key->mark,
                    "redis takes either address (one server) or cluster (Redis Cluster seeds), not both");
        ok = false;
    } else if (seen[R_ADDRESS]) {
        r->nodes = gh_ld_zalloc(ld, sizeof(*r->nodes));
        if (set_addr(ld, seen[R_ADDRESS]->value, &r->nodes[0]))
            r->nnodes = 1;
        else
            ok = false;
    } else if (seen[R_CLUSTER]) {
        const gh_ynode *list = seen[R_CLUSTER]->value;
        if (list->kind != GH_Y_SEQ || list->n == 0) {
            gh_ld_expected(ld, list, "expected a list of host:port seeds");
            ok = false;
        } else {
            r->cluster = true;
            r->nodes = gh_ld_array(ld, list->n, sizeof(*r->nodes));
            for (size_t i = 0; i < list->n; i++) {
                if (set_addr(ld, list->items[i], &r->nodes[r->nnodes]))
                    r->nnodes++;
                else
                    ok = false;
            }
        }
    } else {
        gh_ld_error(ld, kv->key->mark, "redis needs address: host:port or cluster: [host:port, ...]");
        ok = false;
    }
    if (seen[R_PASSWORD]) {
        /* a credential whether or not it came from ${ENV}: never printed */
        if (gh_ld_str(ld, seen[R_PASSWORD]->value, &r->password, NULL))
            gh_config_add_secret(ld->cfg, r->password.p);
        else
            ok = false;
    }
    if (r->username.len && !r->password.len && seen[R_USERNAME]) {
        gh_ld_error(ld, seen[R_USERNAME]->key->mark, "redis.username needs a password");
        ok = false;
    }
    if (ok)
        cfg->redis = r;
    return ok;
}

bool gh_redis_cfg_equal(const gh_redis_cfg *a, const gh_redis_cfg *b)
{
    if (!a || !b)
        return a == b;
    if (a->cluster != b->cluster || a->nnodes != b->nnodes || a->timeout_ms != b->timeout_ms ||
        !gh_str_eq(a->username, b->username) || !gh_str_eq(a->password, b->password))
        return false;
    if (!a->tls != !b->tls ||
        (a->tls && (a->tls->verify != b->tls->verify || !gh_str_eq(a->tls->ca, b->tls->ca) ||
                    !gh_str_eq(a->tls->sni, b->tls->sni) || !gh_str_eq(a->tls->cert, b->tls->cert) ||
                    !gh_str_eq(a->tls->key, b->tls->key))))
        return false;
    for (size_t i = 0; i < a->nnodes; i++)
        if (a->nodes[i].port != b->nodes[i].port || !gh_str_eq(a->nodes[i].host, b->nodes[i].host))
            return false;
    return true;
}
