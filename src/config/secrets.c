/* secrets.c — which configuration strings must be masked (SPEC §12.16).
 * Values are recognised by identity: the loader registers the arena copy of
 * every string that used ${ENV}, so printers need no per-field flags. */
#include <stdlib.h>
#include <strings.h>
#include "config/config.h"

void gh_config_add_secret(gh_config *cfg, const char *p)
{
    if (cfg->nsecrets == cfg->capsecrets) {
        size_t cap = cfg->capsecrets ? cfg->capsecrets * 2 : 16;
        const char **n = gh_arena_alloc(&cfg->arena, cap * sizeof(*n));
        if (!n)
            return;
        for (size_t i = 0; i < cfg->nsecrets; i++)
            n[i] = cfg->secrets[i];
        cfg->secrets = n;
        cfg->capsecrets = cap;
    }
    cfg->secrets[cfg->nsecrets++] = p;
}

bool gh_config_is_secret(const gh_config *cfg, const char *p)
{
    for (size_t i = 0; cfg && p && i < cfg->nsecrets; i++)
        if (cfg->secrets[i] == p)
            return true;
    return false;
}

gh_str gh_config_show(const gh_config *cfg, gh_str s)
{
    return gh_config_is_secret(cfg, s.p) ? GH_STR("***") : s;
}

static bool same_name(gh_str a, gh_str b) { return a.len == b.len && strncasecmp(a.p, b.p, a.len) == 0; }

void gh_config_add_secret_param(gh_config *cfg, gh_str name)
{
    if (gh_config_is_secret_param(cfg, name))
        return;
    if (cfg->nsecret_params == cfg->capsecret_params) {
        size_t cap = cfg->capsecret_params ? cfg->capsecret_params * 2 : 4;
        gh_str *n = gh_arena_alloc(&cfg->arena, cap * sizeof(*n));
        if (!n)
            return;
        for (size_t i = 0; i < cfg->nsecret_params; i++)
            n[i] = cfg->secret_params[i];
        cfg->secret_params = n;
        cfg->capsecret_params = cap;
    }
    cfg->secret_params[cfg->nsecret_params++] = name;
}

bool gh_config_is_secret_param(const gh_config *cfg, gh_str name)
{
    /* names that carry credentials in URLs across common APIs (OAuth 2.0,
     * signed URLs, API keys); docs/operations.md lists them */
#define K(lit) { lit, sizeof(lit) - 1 }
    static const gh_str known[] = {
        K("access_token"), K("api_key"), K("api-key"), K("apikey"),
        K("client_secret"), K("id_token"), K("key"), K("passwd"),
        K("password"), K("refresh_token"), K("secret"), K("sig"),
        K("signature"), K("token"),
    };
#undef K
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (same_name(known[i], name))
            return true;
    for (size_t i = 0; cfg && i < cfg->nsecret_params; i++)
        if (same_name(cfg->secret_params[i], name))
            return true;
    return false;
}
