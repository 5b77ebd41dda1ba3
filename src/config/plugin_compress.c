/* plugin_compress.c — configuration of the compress plugin (SPEC §7.3):
 *   compress: { types: [application/json, text/html], min_size: 1KiB,
 *               algorithms: [br, gzip], level: { gzip: 6, br: 4 } }
 * Every key is optional; the defaults are the ones shown. The levels are
 * for compressing on the fly: fast, most of the gain. */
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

enum { C_TYPES, C_MIN_SIZE, C_ALGORITHMS, C_LEVEL, C_COUNT };
static const gh_key compress_keys[] = {
    [C_TYPES] = GH_KEY_DEFER("types"),
    [C_MIN_SIZE] = GH_KEY_NUM("min_size", GH_V_SIZE, gh_compress_cfg, min_size, 0, 0),
    [C_ALGORITHMS] = GH_KEY_DEFER("algorithms"),
    [C_LEVEL] = GH_KEY_DEFER("level"),
};
static const gh_section compress_section = GH_SECTION("compress", compress_keys);

enum { LV_GZIP, LV_BR, LV_COUNT };
static const gh_key level_keys[] = {
    [LV_GZIP] = GH_KEY_NUM("gzip", GH_V_INT, gh_compress_cfg, level[GH_COMPRESS_GZIP], 1, 9),
    [LV_BR] = GH_KEY_NUM("br", GH_V_INT, gh_compress_cfg, level[GH_COMPRESS_BR], 0, 11),
};
static const gh_section level_section = GH_SECTION("compress level", level_keys);

static const char *const algo_names[GH_COMPRESS_COUNT] = { [GH_COMPRESS_BR] = "br", [GH_COMPRESS_GZIP] = "gzip" };

static bool algorithms(gh_load *ld, gh_compress_cfg *c, const gh_ynode *n)
{
    gh_str *items;
    gh_mark *marks;
    size_t count;
    if (!gh_ld_str_list(ld, n, &items, &count, &marks))
        return false;
    if (count == 0) {
        gh_ld_error(ld, n->mark, "compress algorithms: give br, gzip or both");
        return false;
    }
    c->nalgos = 0;
    for (size_t i = 0; i < count; i++) {
        int a = -1;
        for (int k = 0; k < GH_COMPRESS_COUNT; k++)
            if (gh_str_eq_c(items[i], algo_names[k]))
                a = k;
        if (a < 0) {
            gh_ld_error(ld, marks[i], "unknown compress algorithm '%.*s' (use br or gzip)", clip(items[i]),
                        items[i].p);
            return false;
        }
        for (size_t k = 0; k < c->nalgos; k++) {
            if (c->algos[k] == a) {
                gh_ld_error(ld, marks[i], "compress algorithm '%s' is listed twice", algo_names[a]);
                return false;
            }
        }
        c->algos[c->nalgos] = a;
        c->names[c->nalgos] = gh_str_from(algo_names[a], strlen(algo_names[a]));
        c->nalgos++;
    }
    return true;
}

static bool types(gh_load *ld, gh_compress_cfg *c, const gh_ynode *n)
{
    gh_mark *marks;
    if (!gh_ld_str_list(ld, n, &c->types, &c->ntypes, &marks))
        return false;
    for (size_t i = 0; i < c->ntypes; i++) {
        gh_str t = c->types[i];
        const char *slash = memchr(t.p, '/', t.len);
        bool ok = slash && slash > t.p && (size_t)(slash - t.p) + 1 < t.len && !memchr(t.p, ';', t.len) &&
                  !memchr(slash + 1, '/', t.len - (size_t)(slash - t.p) - 1);
        if (!ok) {
            gh_ld_error(ld, marks[i], "invalid media type '%.*s' in compress types (e.g. application/json or text/*)",
                        clip(t), t.p);
            return false;
        }
    }
    if (c->ntypes == 0) {
        gh_ld_error(ld, n->mark, "compress types: give at least one media type");
        return false;
    }
    return true;
}

static gh_str default_types[] = { { "text/*", 6 }, { "application/json", 16 }, { "application/javascript", 22 },
                                  { "application/xml", 15 }, { "image/svg+xml", 13 } };

bool gh_ld_compress(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_compress_cfg *c = (gh_compress_cfg *)conf;
    c->min_size = 1024;
    c->level[GH_COMPRESS_GZIP] = 6;
    c->level[GH_COMPRESS_BR] = 4;
    c->algos[0] = GH_COMPRESS_BR;
    c->algos[1] = GH_COMPRESS_GZIP;
    c->names[0] = gh_str_from("br", 2);
    c->names[1] = gh_str_from("gzip", 4);
    c->nalgos = 2;
    c->types = default_types;
    c->ntypes = sizeof(default_types) / sizeof(default_types[0]);
    const gh_ypair *seen[C_COUNT] = { 0 };
    if (v && !gh_ld_apply(ld, &compress_section, v, c, seen))
        return false;
    bool ok = true;
    if (seen[C_TYPES])
        ok &= types(ld, c, seen[C_TYPES]->value);
    if (seen[C_ALGORITHMS])
        ok &= algorithms(ld, c, seen[C_ALGORITHMS]->value);
    if (seen[C_LEVEL])
        ok &= gh_ld_apply(ld, &level_section, seen[C_LEVEL]->value, c, NULL);
    return ok;
}
