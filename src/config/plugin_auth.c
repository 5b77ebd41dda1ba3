/* plugin_auth.c — configuration of the authentication plugins (SPEC §5.1):
 * key_auth, basic_auth, mtls_auth, jwt. Shapes and values only; keys files
 * are read and algorithm names checked when plugins/jwt.c compiles. */
#include <openssl/evp.h>
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

/* ------------------------------------------------------------ key_auth */

enum { K_HEADER, K_QUERY, K_HIDE, K_COUNT };
static const gh_key key_auth_keys[] = {
    [K_HEADER] = GH_KEY_VAL("header", GH_V_STR, gh_key_auth_cfg, header),
    [K_QUERY] = GH_KEY_VAL("query", GH_V_STR, gh_key_auth_cfg, query),
    [K_HIDE] = GH_KEY_VAL("hide_credentials", GH_V_BOOL, gh_key_auth_cfg, hide_credentials),
};
static const gh_section key_auth_section = GH_SECTION("key_auth", key_auth_keys);

bool gh_ld_key_auth(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_key_auth_cfg *c = (gh_key_auth_cfg *)conf;
    const gh_ypair *seen[K_COUNT] = { 0 };
    if (v && !gh_ld_apply(ld, &key_auth_section, v, c, seen))
        return false;
    if (!seen[K_HEADER] && !seen[K_QUERY])
        c->header = GH_STR("X-API-Key");
    if (seen[K_HEADER] && !gh_ld_is_token(c->header)) {
        gh_ld_error(ld, seen[K_HEADER]->value->mark, "expected a header name");
        return false;
    }
    if (seen[K_QUERY] && c->query.len == 0) {
        gh_ld_error(ld, seen[K_QUERY]->value->mark, "expected a query parameter name");
        return false;
    }
    if (seen[K_QUERY])
        gh_config_add_secret_param(ld->cfg, c->query);   /* its values are masked in the access log */
    return true;
}

/* ---------------------------------------------------------- basic_auth */

static const gh_key basic_keys[] = {
    GH_KEY_VAL("realm", GH_V_STR, gh_basic_auth_cfg, realm),
    GH_KEY_VAL("hide_credentials", GH_V_BOOL, gh_basic_auth_cfg, hide_credentials),
};
static const gh_section basic_section = GH_SECTION("basic_auth", basic_keys);

bool gh_ld_basic_auth(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_basic_auth_cfg *c = (gh_basic_auth_cfg *)conf;
    if (v && !gh_ld_apply(ld, &basic_section, v, c, NULL))
        return false;
    if (c->realm.len == 0)
        c->realm = GH_STR("gatehouse");
    for (size_t i = 0; i < c->realm.len; i++)
        if (c->realm.p[i] == '"' || c->realm.p[i] == '\\' || (unsigned char)c->realm.p[i] < 0x20) {
            gh_ld_error(ld, conf->mark, "realm must not contain quotes, backslashes or control characters");
            return false;
        }
    return true;
}

/* ----------------------------------------------------------- mtls_auth */

static const gh_key mtls_keys[] = { GH_KEY_DEFER("_") };
static const gh_section mtls_section = { "mtls_auth", mtls_keys, 0 };

bool gh_ld_mtls_auth(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    return !v || gh_ld_apply(ld, &mtls_section, v, conf, NULL);
}

/* ----------------------------------------------------------------- jwt */

enum { I_ISSUER, I_AUDIENCES, I_KEYS_FILE, I_SECRET, I_SECRET_B64, I_ALGORITHMS, I_COUNT };
static const gh_key issuer_keys[] = {
    [I_ISSUER] = GH_KEY_VAL("issuer", GH_V_STR, gh_jwt_issuer_cfg, issuer),
    [I_AUDIENCES] = GH_KEY_DEFER("audiences"),
    [I_KEYS_FILE] = GH_KEY_DEFER("keys_file"),
    [I_SECRET] = GH_KEY_DEFER("secret"),
    [I_SECRET_B64] = GH_KEY_DEFER("secret_base64"),
    [I_ALGORITHMS] = GH_KEY_DEFER("algorithms"),
};
static const gh_section issuer_section = GH_SECTION("jwt issuer", issuer_keys);

static bool load_issuer(gh_load *ld, gh_jwt_issuer_cfg *is, const gh_ynode *item)
{
    const gh_ypair *seen[I_COUNT] = { 0 };
    is->mark = item->mark;
    if (item->kind != GH_Y_MAP) {
        gh_ld_error(ld, item->mark, "expected a mapping { issuer: ..., keys_file: ... | secret: ... }");
        return false;
    }
    if (!gh_ld_apply(ld, &issuer_section, item, is, seen))
        return false;
    bool ok = true;
    if (seen[I_AUDIENCES])
        ok &= gh_ld_str_list(ld, seen[I_AUDIENCES]->value, &is->audiences, &is->naudiences, NULL);
    if (seen[I_ALGORITHMS]) {
        is->algorithms_mark = seen[I_ALGORITHMS]->value->mark;
        ok &= gh_ld_str_list(ld, seen[I_ALGORITHMS]->value, &is->algorithms, &is->nalgorithms, NULL);
    }
    int nkeys = !!seen[I_KEYS_FILE] + !!seen[I_SECRET] + !!seen[I_SECRET_B64];
    if (nkeys != 1) {
        gh_mark at = item->mark;   /* none: the item; several: the second one */
        if (nkeys > 1)
            at = (seen[I_SECRET_B64] ? seen[I_SECRET_B64] : seen[I_SECRET])->key->mark;
        gh_ld_error(ld, at, "a jwt issuer needs exactly one of keys_file, secret, secret_base64");
        return false;
    }
    if (seen[I_KEYS_FILE]) {
        is->keys_mark = seen[I_KEYS_FILE]->key->mark;
        return gh_ld_path(ld, seen[I_KEYS_FILE]->value, &is->keys_file) && ok;
    }
    const gh_ypair *kv = seen[I_SECRET] ? seen[I_SECRET] : seen[I_SECRET_B64];
    is->keys_mark = kv->value->mark;   /* a short secret is reported here (plugins/jwt.c) */
    gh_str s;
    bool env = false;
    if (!gh_ld_text(ld, kv->value, "expected a secret", &s, &env))
        return false;
    if (s.len == 0) {
        gh_ld_error(ld, kv->value->mark, "the secret is empty");
        return false;
    }
    if (seen[I_SECRET]) {
        is->secret = gh_ld_copy(ld, s);
        gh_config_add_secret(ld->cfg, is->secret.p);
        return ok;
    }
    /* standard or URL-safe base64, padding optional */
    char *norm = gh_ld_tmp(ld, s.len + 4);
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++)
        norm[n++] = s.p[i] == '-' ? '+' : s.p[i] == '_' ? '/' : s.p[i];
    while (n % 4)
        norm[n++] = '=';
    unsigned char *out = gh_ld_zalloc(ld, n / 4 * 3 + 1);
    int len = EVP_DecodeBlock(out, (const unsigned char *)norm, (int)n);
    if (len < 0) {
        gh_ld_error(ld, kv->value->mark, "secret_base64 is not valid base64");
        return false;
    }
    for (size_t i = n; i > 0 && norm[i - 1] == '='; i--)
        len--;   /* EVP_DecodeBlock counts padding as zero bytes */
    is->secret = gh_str_from((const char *)out, (size_t)len);
    is->secret_base64 = true;
    return ok;
}

static bool set_issuers(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_jwt_cfg *c = obj;
    const gh_ynode *list = kv->value;
    if (list->kind != GH_Y_SEQ || list->n == 0) {
        gh_ld_error(ld, list->mark, "expected a non-empty list of issuers");
        return false;
    }
    c->issuers = gh_ld_array(ld, list->n, sizeof(*c->issuers));
    for (size_t i = 0; i < list->n; i++) {
        gh_jwt_issuer_cfg *is = &c->issuers[c->nissuers];
        if (!load_issuer(ld, is, list->items[i]))
            continue;
        for (size_t j = 0; j < c->nissuers; j++)
            if (gh_str_eq(c->issuers[j].issuer, is->issuer)) {
                gh_ld_error(ld, is->mark, is->issuer.len ? "issuer '%.*s' is listed twice"
                                                         : "only one issuer may leave out 'issuer'%.*s",
                            clip(is->issuer), is->issuer.p ? is->issuer.p : "");
                break;
            }
        c->nissuers++;
    }
    return true;
}

static bool set_forward_claims(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_jwt_cfg *c = obj;
    gh_kv *pairs;
    size_t n;
    if (!gh_ld_kv_map(ld, kv->value, true, &pairs, &n))
        return false;
    c->forward_claims = gh_ld_array(ld, n ? n : 1, sizeof(*c->forward_claims));
    for (size_t i = 0; i < n; i++) {
        if (pairs[i].value.len == 0) {
            gh_ld_error(ld, pairs[i].mark, "expected a claim name");
            continue;
        }
        c->forward_claims[c->nforward_claims++] = (gh_claim_header){ pairs[i].name, pairs[i].value };
    }
    return true;
}

static bool set_scopes(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_jwt_cfg *c = obj;
    const gh_ynode *map = kv->value;
    c->scopes = gh_ld_array(ld, map->n ? map->n : 1, sizeof(*c->scopes));
    for (size_t i = 0; i < map->n; i++) {
        const gh_ypair *p = &map->pairs[i];
        gh_str m = gh_ld_copy(ld, p->key->text);
        if (!gh_ld_is_token(m) && !gh_str_eq_c(m, "*")) {
            gh_ld_error(ld, p->key->mark, "expected a method name (or *)");
            continue;
        }
        for (size_t j = 0; j < m.len; j++)
            ((char *)m.p)[j] = (char)(m.p[j] >= 'a' && m.p[j] <= 'z' ? m.p[j] - 32 : m.p[j]);
        gh_scope_rule *rule = &c->scopes[c->nscopes];
        rule->method = m;
        if (gh_ld_str_list(ld, p->value, &rule->scopes, &rule->nscopes, NULL))
            c->nscopes++;
    }
    return true;
}

/* require: [exp, sub, ...]. Any claim name (exp, nbf, iat, iss, aud, sub,
 * jti are the registered ones); it is quoted in WWW-Authenticate, hence
 * printable ASCII without quotes or backslashes. */
static bool set_require(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_jwt_cfg *c = obj;
    gh_mark *marks;
    if (!gh_ld_str_list(ld, kv->value, &c->require, &c->nrequire, &marks))
        return false;
    bool ok = true;
    for (size_t i = 0; i < c->nrequire; i++) {
        gh_str n = c->require[i];
        bool good = n.len > 0 && n.len <= 64;
        for (size_t j = 0; good && j < n.len; j++)
            good = n.p[j] > 0x20 && n.p[j] < 0x7f && n.p[j] != '"' && n.p[j] != '\\';
        if (!good) {
            gh_ld_error(ld, marks[i], "expected a claim name (exp, nbf, iat, iss, aud, sub, jti, or another "
                                      "name of up to 64 printable characters without quotes)");
            ok = false;
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (gh_str_eq(c->require[j], n)) {
                gh_ld_error(ld, marks[i], "claim '%.*s' is listed twice", clip(n), n.p);
                ok = false;
                break;
            }
    }
    return ok;
}

static const gh_key jwt_keys[] = {
    GH_KEY_FN("issuers", GH_Y_SEQ, set_issuers),
    GH_KEY_VAL("clock_skew", GH_V_DURATION, gh_jwt_cfg, clock_skew_ms),
    GH_KEY_FN("forward_claims", GH_Y_MAP, set_forward_claims),
    GH_KEY_VAL("require_consumer", GH_V_BOOL, gh_jwt_cfg, require_consumer),
    GH_KEY_FN("scopes", GH_Y_MAP, set_scopes),
    GH_KEY_VAL("hide_credentials", GH_V_BOOL, gh_jwt_cfg, hide_credentials),
    GH_KEY_FN("require", GH_Y_SEQ, set_require),
};
static const gh_section jwt_section = GH_SECTION("jwt", jwt_keys);

bool gh_ld_jwt(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_jwt_cfg *c = (gh_jwt_cfg *)conf;
    c->clock_skew_ms = 30000;
    if (v && !gh_ld_apply(ld, &jwt_section, v, c, NULL))
        return false;
    if (c->nissuers == 0) {
        gh_ld_error(ld, conf->mark, "jwt needs issuers: [{ issuer: ..., keys_file: ... | secret: ... }]");
        return false;
    }
    return true;
}
