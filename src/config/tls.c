/* tls.c — `listen[].tls` (SPEC §2) and `upstreams.NAME.tls` (SPEC §3).
 * Only the shape of the values is checked here: files are opened, parsed
 * and matched against each other when tls/context.c builds the SSL_CTX,
 * which reports at the marks kept here. Relative paths are resolved against
 * the configuration file's directory, so `gatehouse -c /etc/gh/gh.yaml`
 * finds `certs/api.pem` in /etc/gh/certs whatever the working directory. */
#include <openssl/tls1.h>
#include <stdio.h>
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

/* A file path: `path` if absolute (or the file has no directory part), else
 * the configuration file's directory joined with it. A path that came from
 * ${ENV} stays a secret in its resolved form. */
bool gh_ld_path(gh_load *ld, const gh_ynode *n, gh_str *out)
{
    gh_str p;
    bool env = false;
    if (!gh_ld_str(ld, n, &p, &env))
        return false;
    const char *file = ld->cfg->file ? ld->cfg->file : "";
    const char *slash = strrchr(file, '/');
    if (p.p[0] == '/' || !slash) {
        *out = p;
        return true;
    }
    size_t dlen = (size_t)(slash - file) + 1;   /* keeps the '/' */
    char *joined = gh_ld_zalloc(ld, dlen + p.len + 1);
    memcpy(joined, file, dlen);
    memcpy(joined + dlen, p.p, p.len);
    *out = gh_str_from(joined, dlen + p.len);
    if (env)
        gh_config_add_secret(ld->cfg, joined);
    return true;
}

/* ------------------------------------------------------------ listen.tls */

enum { C_CERT, C_KEY, C_COUNT };
static const gh_key cert_keys[] = {
    [C_CERT] = GH_KEY_DEFER("cert"),
    [C_KEY] = GH_KEY_DEFER("key"),
};
static const gh_section cert_section = GH_SECTION("certificate", cert_keys);

static bool load_cert(gh_load *ld, gh_cert_cfg *c, const gh_ynode *item)
{
    const gh_ypair *seen[C_COUNT] = { 0 };
    memset(c, 0, sizeof(*c));
    c->mark = item->mark;
    if (item->kind != GH_Y_MAP) {
        gh_ld_error(ld, item->mark, "expected a mapping { cert: FILE, key: FILE }");
        return false;
    }
    if (!gh_ld_apply(ld, &cert_section, item, c, seen))
        return false;
    bool ok = true;
    if (!seen[C_CERT] || !seen[C_KEY]) {
        gh_ld_error(ld, item->mark, "certificate needs %s", !seen[C_CERT] ? "cert" : "key");
        ok = false;
    }
    /* unreadable or mismatched files are reported later at these keys */
    if (seen[C_CERT]) {
        c->cert_mark = seen[C_CERT]->key->mark;
        ok = gh_ld_path(ld, seen[C_CERT]->value, &c->cert) && ok;
    }
    if (seen[C_KEY]) {
        c->key_mark = seen[C_KEY]->key->mark;
        ok = gh_ld_path(ld, seen[C_KEY]->value, &c->key) && ok;
    }
    return ok;
}

static bool set_client_cert(gh_load *ld, void *obj, const gh_ypair *kv)
{
    static const char *const names[] = {
        [GH_CLIENT_CERT_NONE] = "none", [GH_CLIENT_CERT_OPTIONAL] = "optional",
        [GH_CLIENT_CERT_REQUIRED] = "required",
    };
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected none, optional or required", &t, NULL))
        return false;
    for (int i = 0; i < 3; i++) {
        if (gh_str_eq_c(t, names[i])) {
            ((gh_tls_listen_cfg *)obj)->client_cert = i;
            return true;
        }
    }
    gh_ld_error(ld, kv->value->mark, "invalid client_cert '%.*s' (use none, optional or required)",
                clip(t), t.p);
    return false;
}

static bool set_min_version(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected \"1.2\" or \"1.3\"", &t, NULL))
        return false;
    gh_tls_listen_cfg *tls = obj;
    if (gh_str_eq_c(t, "1.2")) {
        tls->min_version = TLS1_2_VERSION;
    } else if (gh_str_eq_c(t, "1.3")) {
        tls->min_version = TLS1_3_VERSION;
    } else {
        gh_ld_error(ld, kv->value->mark, "invalid min_version '%.*s' (use \"1.2\" or \"1.3\")",
                    clip(t), t.p);
        return false;
    }
    return true;
}

enum { LT_CERTIFICATES, LT_CLIENT_CA, LT_CLIENT_CERT, LT_MIN_VERSION, LT_COUNT };
static const gh_key listen_tls_keys[] = {
    [LT_CERTIFICATES] = GH_KEY_DEFER("certificates"),
    [LT_CLIENT_CA] = GH_KEY_DEFER("client_ca"),
    [LT_CLIENT_CERT] = GH_KEY_FN("client_cert", 0, set_client_cert),
    [LT_MIN_VERSION] = GH_KEY_FN("min_version", 0, set_min_version),
};
static const gh_section listen_tls_section = GH_SECTION("tls", listen_tls_keys);

bool gh_ld_listen_tls(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_listen_cfg *l = obj;
    gh_tls_listen_cfg *tls = gh_ld_zalloc(ld, sizeof(*tls));
    const gh_ypair *seen[LT_COUNT] = { 0 };
    tls->mark = kv->key->mark;
    tls->min_version = TLS1_2_VERSION;
    tls->client_cert = -1;   /* not given: decided below */
    if (!gh_ld_apply(ld, &listen_tls_section, kv->value, tls, seen))
        return false;
    bool ok = true;

    const gh_ynode *list = seen[LT_CERTIFICATES] ? seen[LT_CERTIFICATES]->value : NULL;
    if (!list) {
        gh_ld_error(ld, kv->key->mark, "tls needs certificates (a list of { cert: FILE, key: FILE })");
        ok = false;
    } else if (!gh_ld_is_seq(ld, list)) {
        ok = false;
    } else if (list->kind != GH_Y_SEQ || list->n == 0) {
        gh_ld_error(ld, seen[LT_CERTIFICATES]->key->mark, "certificates must not be empty");
        ok = false;
    } else {
        tls->certificates = gh_ld_array(ld, list->n, sizeof(*tls->certificates));
        for (size_t i = 0; i < list->n; i++) {
            if (load_cert(ld, &tls->certificates[tls->ncertificates], list->items[i]))
                tls->ncertificates++;
            else
                ok = false;
        }
    }

    if (seen[LT_CLIENT_CA]) {
        tls->client_ca_mark = seen[LT_CLIENT_CA]->key->mark;
        ok = gh_ld_path(ld, seen[LT_CLIENT_CA]->value, &tls->client_ca) && ok;
    }
    if (tls->client_cert < 0) {
        tls->client_cert = tls->client_ca.len ? GH_CLIENT_CERT_OPTIONAL : GH_CLIENT_CERT_NONE;
    } else if (tls->client_cert != GH_CLIENT_CERT_NONE && !tls->client_ca.len && !seen[LT_CLIENT_CA]) {
        /* without a CA nothing could be verified: refuse rather than
         * silently accept every client */
        gh_ld_error(ld, seen[LT_CLIENT_CERT]->key->mark, "client_cert: %s needs client_ca",
                    tls->client_cert == GH_CLIENT_CERT_REQUIRED ? "required" : "optional");
        ok = false;
    }
    if (ok)
        l->tls = tls;
    return ok;
}

/* -------------------------------------------------------- upstream tls */

enum { UT_VERIFY, UT_CA, UT_SNI, UT_CERT, UT_KEY, UT_COUNT };
static const gh_key upstream_tls_keys[] = {
    [UT_VERIFY] = GH_KEY_VAL("verify", GH_V_BOOL, gh_tls_upstream_cfg, verify),
    [UT_CA] = GH_KEY_DEFER("ca"),
    [UT_SNI] = GH_KEY_DEFER("sni"),
    [UT_CERT] = GH_KEY_DEFER("cert"),
    [UT_KEY] = GH_KEY_DEFER("key"),
};
static const gh_section upstream_tls_section = GH_SECTION("tls", upstream_tls_keys);

/* A server name as sent in SNI and checked against the certificate:
 * letters, digits, '-', '.', no empty label. */
static bool host_name_ok(gh_str s)
{
    if (s.len == 0 || s.len > 253 || s.p[0] == '.' || s.p[s.len - 1] == '.')
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || (c == '.' && s.p[i + 1] != '.');
        if (!ok)
            return false;
    }
    return true;
}

bool gh_ld_upstream_tls(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_client_tls(ld, kv, &((gh_upstream_cfg *)obj)->tls);
}

bool gh_ld_client_tls(gh_load *ld, const gh_ypair *kv, gh_tls_upstream_cfg **out)
{
    gh_tls_upstream_cfg *tls = gh_ld_zalloc(ld, sizeof(*tls));
    const gh_ypair *seen[UT_COUNT] = { 0 };
    tls->mark = kv->key->mark;
    tls->verify = true;
    if (!gh_ld_apply(ld, &upstream_tls_section, kv->value, tls, seen))
        return false;
    bool ok = true;
    if (seen[UT_CA]) {
        tls->ca_mark = seen[UT_CA]->key->mark;
        ok = gh_ld_path(ld, seen[UT_CA]->value, &tls->ca) && ok;
    }
    if (seen[UT_CERT]) {
        tls->cert_mark = seen[UT_CERT]->key->mark;
        ok = gh_ld_path(ld, seen[UT_CERT]->value, &tls->cert) && ok;
    }
    if (seen[UT_KEY]) {
        tls->key_mark = seen[UT_KEY]->key->mark;
        ok = gh_ld_path(ld, seen[UT_KEY]->value, &tls->key) && ok;
    }
    if (!seen[UT_CERT] != !seen[UT_KEY]) {
        const gh_ypair *given = seen[UT_CERT] ? seen[UT_CERT] : seen[UT_KEY];
        gh_ld_error(ld, given->key->mark, "%s needs %s (a client certificate takes both)",
                    seen[UT_CERT] ? "cert" : "key", seen[UT_CERT] ? "key" : "cert");
        ok = false;
    }
    if (seen[UT_SNI]) {
        const gh_ynode *v = seen[UT_SNI]->value;
        if (!gh_ld_str(ld, v, &tls->sni, NULL)) {
            ok = false;
        } else if (!host_name_ok(tls->sni)) {
            gh_ld_error(ld, v->mark, "invalid sni '%.*s' (expected a host name)", clip(tls->sni),
                        tls->sni.p);
            ok = false;
        }
    }
    if (ok)
        *out = tls;
    return ok;
}
