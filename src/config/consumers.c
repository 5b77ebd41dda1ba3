/* consumers.c — the `consumers:` list (SPEC §5.1): who may call, their
 * groups and credentials. Passwords only as hashes (§12.8); API keys as
 * given (usually ${ENV}) or as { sha256: hex }. Uniqueness of credentials
 * across consumers is checked when plugins/consumers.c indexes them. */
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }


static const gh_key hashed_key_keys[] = { GH_KEY_DEFER("sha256") };
static const gh_section hashed_key_section = GH_SECTION("api key", hashed_key_keys);

static bool load_api_key(gh_load *ld, gh_api_key_cfg *k, const gh_ynode *item)
{
    k->mark = item->mark;
    if (item->kind == GH_Y_SCALAR) {
        if (!gh_ld_str(ld, item, &k->key, NULL))
            return false;
        if (k->key.len < 8) {
            gh_ld_error(ld, item->mark, "API keys must be at least 8 characters");
            return false;
        }
        gh_config_add_secret(ld->cfg, k->key.p);   /* §12.16: api_keys are masked everywhere */
        return true;
    }
    const gh_ypair *seen[1] = { 0 };
    if (!gh_ld_apply(ld, &hashed_key_section, item, k, seen))
        return false;
    gh_str hex;
    if (!seen[0] || !gh_ld_text(ld, seen[0]->value, "expected 64 hex digits", &hex, NULL)) {
        if (!seen[0])
            gh_ld_error(ld, item->mark, "expected a key, or { sha256: HEX }");
        return false;
    }
    bool ok = hex.len == 64;
    for (size_t i = 0; ok && i < 32; i++) {
        int hi = gh_hexval((unsigned char)hex.p[2 * i]), lo = gh_hexval((unsigned char)hex.p[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        if (ok)
            k->sha256[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!ok) {
        gh_ld_error(ld, seen[0]->value->mark, "sha256 must be 64 hex digits (sha256sum of the key)");
        return false;
    }
    k->hashed = true;
    return true;
}

/* §12.8: argon2id, bcrypt, sha256-crypt, sha512-crypt, yescrypt. */
static bool hash_supported(gh_str h)
{
    static const char *const prefixes[] = { "$argon2id$", "$2b$", "$2a$", "$2y$", "$5$", "$6$", "$y$" };
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (gh_str_starts(h, gh_str_c(prefixes[i])))
            return h.len > strlen(prefixes[i]) + 8;
    return false;
}

enum { B_USER, B_HASH, B_COUNT };
static const gh_key basic_keys[] = {
    [B_USER] = GH_KEY_VAL("username", GH_V_STR, gh_consumer_cfg, basic_user),
    [B_HASH] = GH_KEY_DEFER("password_hash"),
};
static const gh_section basic_section = GH_SECTION("basic", basic_keys);

static bool set_basic(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_consumer_cfg *c = obj;
    const gh_ypair *seen[B_COUNT] = { 0 };
    c->basic_mark = kv->key->mark;
    if (!gh_ld_apply(ld, &basic_section, kv->value, c, seen))
        return false;
    if (!seen[B_USER] || !seen[B_HASH]) {
        gh_ld_error(ld, kv->key->mark, "basic needs username and password_hash");
        return false;
    }
    if (c->basic_user.len == 0 || memchr(c->basic_user.p, ':', c->basic_user.len)) {
        gh_ld_error(ld, seen[B_USER]->value->mark, "a username must be non-empty and without ':'");
        return false;
    }
    if (!gh_ld_str(ld, seen[B_HASH]->value, &c->basic_hash, NULL))
        return false;
    gh_config_add_secret(ld->cfg, c->basic_hash.p);
    if (!hash_supported(c->basic_hash)) {
        gh_ld_error(ld, seen[B_HASH]->value->mark,
                    "password_hash must be an argon2id, bcrypt ($2b$), sha256-crypt ($5$), sha512-crypt ($6$) "
                    "or yescrypt ($y$) hash; plaintext passwords are not accepted");
        return false;
    }
    return true;
}

static bool set_groups(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_consumer_cfg *c = obj;
    gh_mark *marks;
    if (!gh_ld_str_list(ld, kv->value, &c->groups, &c->ngroups, &marks))
        return false;
    size_t len = 0;
    for (size_t i = 0; i < c->ngroups; i++) {
        if (!gh_ld_is_token(c->groups[i])) {
            gh_ld_error(ld, marks[i], "group names are tokens (letters, digits, -_.), not '%.*s'",
                        clip(c->groups[i]), c->groups[i].p);
            return false;
        }
        len += c->groups[i].len + 1;
    }
    char *text = gh_ld_zalloc(ld, len + 1), *p = text;
    for (size_t i = 0; i < c->ngroups; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, c->groups[i].p, c->groups[i].len);
        p += c->groups[i].len;
    }
    c->groups_text = gh_str_from(text, (size_t)(p - text));
    return true;
}

static bool set_api_keys(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_consumer_cfg *c = obj;
    const gh_ynode *list = kv->value;
    c->api_keys = gh_ld_array(ld, list->n ? list->n : 1, sizeof(*c->api_keys));
    for (size_t i = 0; i < list->n; i++)
        if (load_api_key(ld, &c->api_keys[c->napi_keys], list->items[i]))
            c->napi_keys++;
    return true;
}

enum { N_NAME, N_GROUPS, N_API_KEYS, N_BASIC, N_MTLS, N_JWT, N_COUNT };
static const gh_key consumer_keys[] = {
    [N_NAME] = GH_KEY_VAL("name", GH_V_STR, gh_consumer_cfg, name),
    [N_GROUPS] = GH_KEY_FN("groups", GH_Y_SEQ, set_groups),
    [N_API_KEYS] = GH_KEY_FN("api_keys", GH_Y_SEQ, set_api_keys),
    [N_BASIC] = GH_KEY_FN("basic", GH_Y_MAP, set_basic),
    [N_MTLS] = GH_KEY_VAL("mtls_subject", GH_V_STR, gh_consumer_cfg, mtls_subject),
    [N_JWT] = GH_KEY_VAL("jwt_subject", GH_V_STR, gh_consumer_cfg, jwt_subject),
};
static const gh_section consumer_section = GH_SECTION("consumer", consumer_keys);

bool gh_ld_consumers(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    const gh_ynode *list = kv->value;
    if (list->n == 0)
        return true;
    cfg->consumers = gh_ld_array(ld, list->n, sizeof(*cfg->consumers));
    for (size_t i = 0; i < list->n; i++) {
        gh_consumer_cfg *c = &cfg->consumers[cfg->nconsumers];
        const gh_ypair *seen[N_COUNT] = { 0 };
        c->mark = list->items[i]->mark;
        if (!gh_ld_apply(ld, &consumer_section, list->items[i], c, seen))
            continue;
        if (!seen[N_NAME] || c->name.len == 0) {
            gh_ld_error(ld, c->mark, "consumer needs a name");
            continue;
        }
        if (!gh_ld_is_token(c->name)) {
            gh_ld_error(ld, seen[N_NAME]->value->mark, "consumer names are tokens (letters, digits, -_.)");
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < cfg->nconsumers && !dup; j++)
            dup = gh_str_eq(cfg->consumers[j].name, c->name);
        if (dup) {
            gh_ld_error(ld, seen[N_NAME]->value->mark, "duplicate consumer '%.*s'", clip(c->name), c->name.p);
            continue;
        }
        cfg->nconsumers++;
    }
    return true;
}
