/* source.c — `config_source:` (SPEC §2, §10): where a fleet's configuration
 * comes from. Only data here; the etcd client is src/cluster/etcd.c and the
 * seam that feeds reloads is src/server/cfgsrc.c. */
#include <string.h>
#include "config/schema.h"
#include "config/units.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

static bool set_tls(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_client_tls(ld, kv, &((gh_etcd_cfg *)obj)->tls);
}

static bool set_cache_file(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_path(ld, kv->value, &((gh_etcd_cfg *)obj)->cache_file);
}

enum { E_ENDPOINTS, E_KEY, E_USERNAME, E_PASSWORD, E_CACHE, E_TLS, E_COUNT };
static const gh_key etcd_keys[] = {
    [E_ENDPOINTS] = GH_KEY_DEFER("endpoints"),
    [E_KEY] = GH_KEY_VAL("key", GH_V_STR, gh_etcd_cfg, key),
    [E_USERNAME] = GH_KEY_VAL("username", GH_V_STR, gh_etcd_cfg, username),
    [E_PASSWORD] = GH_KEY_DEFER("password"),
    [E_CACHE] = GH_KEY_FN("cache_file", 0, set_cache_file),
    [E_TLS] = GH_KEY_FN("tls", GH_Y_MAP, set_tls),
};
static const gh_section etcd_section = GH_SECTION("etcd", etcd_keys);

/* http://host:port or https://host:port (the gRPC gateway's address). */
static bool set_endpoint(gh_load *ld, const gh_ynode *n, gh_etcd_endpoint_cfg *e)
{
    gh_str url;
    if (!gh_ld_str(ld, n, &url, NULL))
        return false;
    gh_str rest;
    if (url.len > 7 && memcmp(url.p, "http://", 7) == 0)
        rest = gh_str_from(url.p + 7, url.len - 7);
    else if (url.len > 8 && memcmp(url.p, "https://", 8) == 0) {
        rest = gh_str_from(url.p + 8, url.len - 8);
        e->tls = true;
    } else {
        gh_ld_error(ld, n->mark, "invalid etcd endpoint '%.*s' (use http://host:port or https://host:port)",
                    clip(url), url.p);
        return false;
    }
    if (rest.len && rest.p[rest.len - 1] == '/')
        rest.len--;
    gh_str host;
    if (!gh_ld_hostport(ld, n, rest, &host, &e->port))
        return false;
    e->url = url;
    e->host = gh_ld_copy(ld, gh_str_eq_c(host, "localhost") ? GH_STR("127.0.0.1") : host);
    return true;
}

static bool set_etcd(gh_load *ld, gh_config *cfg, const gh_ypair *kv)
{
    gh_etcd_cfg *e = gh_ld_zalloc(ld, sizeof(*e));
    const gh_ypair *seen[E_COUNT] = { 0 };
    e->mark = kv->key->mark;
    if (!gh_ld_apply(ld, &etcd_section, kv->value, e, seen))
        return false;
    bool ok = true;
    const gh_ynode *list = seen[E_ENDPOINTS] ? seen[E_ENDPOINTS]->value : NULL;
    if (!list || (list->kind == GH_Y_SEQ && list->n == 0)) {
        gh_ld_error(ld, kv->key->mark, "etcd needs endpoints: [http://127.0.0.1:2379]");
        ok = false;
    } else if (list->kind == GH_Y_SCALAR) {
        e->endpoints = gh_ld_zalloc(ld, sizeof(*e->endpoints));
        ok = set_endpoint(ld, list, &e->endpoints[0]);
        e->nendpoints = ok;
    } else if (list->kind != GH_Y_SEQ) {
        gh_ld_expected(ld, list, "expected a list of endpoints");
        ok = false;
    } else {
        e->endpoints = gh_ld_array(ld, list->n, sizeof(*e->endpoints));
        for (size_t i = 0; i < list->n; i++) {
            memset(&e->endpoints[e->nendpoints], 0, sizeof(*e->endpoints));
            if (set_endpoint(ld, list->items[i], &e->endpoints[e->nendpoints]))
                e->nendpoints++;
            else
                ok = false;
        }
    }
    if (!seen[E_KEY]) {
        gh_ld_error(ld, kv->key->mark, "etcd needs the key of the document (key: /gatehouse/config)");
        ok = false;
    }
    if (seen[E_PASSWORD]) {
        if (gh_ld_str(ld, seen[E_PASSWORD]->value, &e->password, NULL))
            gh_config_add_secret(ld->cfg, e->password.p);
        else
            ok = false;
    }
    if (e->username.len != e->password.len && (!e->username.len || !e->password.len)) {
        gh_ld_error(ld, kv->key->mark, "etcd username and password go together");
        ok = false;
    }
    bool https = false;
    for (size_t i = 0; i < e->nendpoints; i++)
        https = https || e->endpoints[i].tls;
    if (https && !e->tls) {   /* verified against the system's CAs */
        e->tls = gh_ld_zalloc(ld, sizeof(*e->tls));
        e->tls->verify = true;
        e->tls->mark = kv->key->mark;
    }
    if (ok)
        cfg->etcd = e;
    return ok;
}

enum { S_ETCD, S_COUNT };
static const gh_key source_keys[] = {
    [S_ETCD] = GH_KEY_DEFER("etcd"),
};
static const gh_section source_section = GH_SECTION("config_source", source_keys);

bool gh_ld_config_source(gh_load *ld, void *obj, const gh_ypair *kv)
{
    const gh_ypair *seen[S_COUNT] = { 0 };
    if (!gh_ld_apply(ld, &source_section, kv->value, obj, seen))
        return false;
    if (!seen[S_ETCD]) {
        gh_ld_error(ld, kv->key->mark, "config_source needs etcd: { endpoints: [...], key: ... }");
        return false;
    }
    if (seen[S_ETCD]->value->kind != GH_Y_MAP) {
        gh_ld_expected(ld, seen[S_ETCD]->value, "expected a mapping");
        return false;
    }
    return set_etcd(ld, obj, seen[S_ETCD]);
}
