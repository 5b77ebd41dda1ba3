/* secrets.c — which configuration strings must be masked (SPEC §12.16).
 * Values are recognised by identity: the loader registers the arena copy of
 * every string that used ${ENV}, so printers need no per-field flags. */
#include <stdlib.h>
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
