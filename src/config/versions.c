/* versions.c — a route's `versions:` target (SPEC §6): where the version is
 * read (`from`), `default`, the `list` of versions with their lifecycle
 * dates, preview rules and their own route settings (routes.c builds each
 * version's route), and the `canary`. Checks what `gatehouse check`
 * promises: sunset after deprecated, a default and a canary that exist and
 * are not past their sunset. Header values for the lifecycle are prepared
 * here, once. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "config/schema.h"
#include "config/units.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

/* ---------------------------------------------------------------- dates */

static bool digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* "2026-06-01" (00:00 UTC that day, §12.11) or RFC 3339
 * "2026-06-01T12:00:00Z" / "...+02:00" (fractions of a second ignored). */
static bool parse_date(gh_str s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
    const char *p = s.p;
    if (s.len < 10 || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
        !digits(p + 8, 2, &d))
        return false;
    size_t i = 10;
    if (s.len > 10) {
        if ((p[10] != 'T' && p[10] != 't' && p[10] != ' ') || s.len < 20 || !digits(p + 11, 2, &h) ||
            p[13] != ':' || !digits(p + 14, 2, &mi) || p[16] != ':' || !digits(p + 17, 2, &sec))
            return false;
        i = 19;
        if (i < s.len && p[i] == '.')
            for (i++; i < s.len && p[i] >= '0' && p[i] <= '9'; i++)
                ;
        if (i < s.len && (p[i] == 'Z' || p[i] == 'z')) {
            i++;
        } else if (i + 6 == s.len && (p[i] == '+' || p[i] == '-') && digits(p + i + 1, 2, &oh) &&
                   p[i + 3] == ':' && digits(p + i + 4, 2, &om)) {
            sign = p[i] == '+' ? 1 : -1;
            i += 6;
        } else {
            return false;
        }
    }
    if (i != s.len || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59)
        return false;
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec };
    time_t t = timegm(&tm);
    if (tm.tm_mday != d)   /* timegm normalized an impossible day (Feb 30) */
        return false;
    *out = (int64_t)t - sign * (oh * 3600 + om * 60);
    return true;
}

static bool load_date(gh_load *ld, const gh_ypair *kv, int64_t *out, gh_mark *mark)
{
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected a date (2026-06-01 or 2026-06-01T12:00:00Z)", &t, NULL))
        return false;
    if (!parse_date(t, out)) {
        gh_ld_error(ld, kv->value->mark, "invalid date '%.*s' (use 2026-06-01 or 2026-06-01T12:00:00Z)", clip(t),
                    t.p);
        return false;
    }
    *mark = kv->value->mark;
    return true;
}

/* --------------------------------------------------------- one version */

enum { P_GROUP, P_HEADER, P_COUNT };
static const gh_key preview_keys[] = {
    [P_GROUP] = GH_KEY_VAL("group", GH_V_STR, gh_version_cfg, preview_group),
    [P_HEADER] = GH_KEY_VAL("header", GH_V_STR, gh_version_cfg, preview_header),
};
static const gh_section preview_section = GH_SECTION("preview_requires", preview_keys);

/* life[]: deprecated, sunset, docs, preview, preview_requires */
static void load_lifecycle(gh_load *ld, gh_version_cfg *v, const gh_ypair **life)
{
    v->deprecated = v->sunset = GH_NO_DATE;
    if (life[0])
        load_date(ld, life[0], &v->deprecated, &v->deprecated_mark);
    if (life[1])
        load_date(ld, life[1], &v->sunset, &v->sunset_mark);
    if (v->deprecated != GH_NO_DATE && v->sunset != GH_NO_DATE && v->sunset < v->deprecated)
        gh_ld_error(ld, v->sunset_mark, "version '%.*s': sunset is before deprecated", clip(v->name), v->name.p);
    if (life[2] && gh_ld_str(ld, life[2]->value, &v->docs, NULL)) {
        bool ok = v->docs.len > 0;
        for (size_t i = 0; i < v->docs.len; i++)
            ok &= (unsigned char)v->docs.p[i] > ' ' && v->docs.p[i] != '>' && v->docs.p[i] != '<' && v->docs.p[i] != 0x7f;
        if (!ok)
            gh_ld_error(ld, life[2]->value->mark, "docs must be a URL (no spaces, '<' or '>')");
    }
    if (life[3])
        gh_ld_bool(ld, life[3]->value, &v->preview);
    if (life[4]) {
        const gh_ypair *seen[P_COUNT] = { 0 };
        if (gh_ld_apply(ld, &preview_section, life[4]->value, v, seen) && !!seen[P_GROUP] == !!seen[P_HEADER])
            gh_ld_error(ld, life[4]->key->mark, "preview_requires takes one of group or header");
        if (!v->preview)
            gh_ld_error(ld, life[4]->key->mark, "preview_requires needs preview: true");
        if (seen[P_HEADER] && !gh_ld_is_token(v->preview_header))
            gh_ld_error(ld, seen[P_HEADER]->value->mark, "expected a header name");
    }
    /* the header values, once */
    if (v->deprecated != GH_NO_DATE) {
        char *d = gh_ld_zalloc(ld, 24);
        snprintf(d, 24, "@%lld", (long long)v->deprecated);
        v->deprecation_value = gh_str_c(d);
        if (v->docs.len) {
            char *l = gh_ld_zalloc(ld, v->docs.len + 24);
            snprintf(l, v->docs.len + 24, "<%s>; rel=\"deprecation\"", v->docs.p);
            v->link_value = gh_str_c(l);
        }
    }
    if (v->sunset != GH_NO_DATE) {
        char *s = gh_ld_zalloc(ld, 40);
        time_t t = (time_t)v->sunset;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(s, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        v->sunset_value = gh_str_c(s);
    }
}

/* ---------------------------------------------------------------- from */

static bool set_from(gh_load *ld, gh_versions_cfg *vs, const gh_ynode *n)
{
    gh_str *items;
    gh_mark *marks;
    size_t count;
    if (!gh_ld_str_list(ld, n, &items, &count, &marks))
        return false;
    if (count == 0 || count > sizeof(vs->from) / sizeof(vs->from[0])) {
        gh_ld_error(ld, n->mark, "from needs 1 to 8 sources (path, header:NAME, query:NAME, accept)");
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        gh_str t = items[i];
        int kind = 0;
        gh_str name = { NULL, 0 };
        if (gh_str_eq_c(t, "path")) {
            kind = GH_VSRC_PATH;
            vs->from_path = true;
        } else if (gh_str_eq_c(t, "accept")) {
            kind = GH_VSRC_ACCEPT;
        } else if (gh_str_starts(t, GH_STR("header:")) && gh_ld_is_token(gh_str_from(t.p + 7, t.len - 7))) {
            kind = GH_VSRC_HEADER;
            name = gh_str_from(t.p + 7, t.len - 7);
        } else if (gh_str_starts(t, GH_STR("query:")) && t.len > 6) {
            kind = GH_VSRC_QUERY;
            name = gh_str_from(t.p + 6, t.len - 6);
        } else {
            gh_ld_error(ld, marks[i], "invalid version source '%.*s' (use path, header:NAME, query:NAME, accept)",
                        clip(t), t.p);
            continue;
        }
        for (size_t k = 0; k < vs->nfrom; k++)
            if (vs->from[k].kind == kind && gh_str_ieq(vs->from[k].name, name)) {
                gh_ld_error(ld, marks[i], "version source '%.*s' is listed twice", clip(t), t.p);
                kind = 0;
            }
        if (kind) {
            vs->from[vs->nfrom].kind = kind;
            vs->from[vs->nfrom].name = name;
            vs->nfrom++;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- list */

const gh_version_cfg *gh_config_version(const gh_versions_cfg *vs, gh_str name)
{
    for (size_t i = 0; i < vs->n; i++)
        if (gh_str_eq(vs->list[i].name, name))
            return &vs->list[i];
    return NULL;
}

static bool name_ok(gh_str n)
{
    if (n.len == 0 || n.len > 32)
        return false;
    for (size_t i = 0; i < n.len; i++) {
        char c = n.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

static void load_list(gh_load *ld, gh_route_cfg *r, gh_versions_cfg *vs, const gh_ynode *map, const void *match)
{
    if (map->kind != GH_Y_MAP || map->n == 0) {
        gh_ld_error(ld, map->mark, "list needs at least one version: { \"1\": { upstream: ... } }");
        return;
    }
    vs->list = gh_ld_array(ld, map->n, sizeof(*vs->list));
    size_t json_len = 16, names_len = 1;
    for (size_t i = 0; i < map->n; i++) {
        const gh_ypair *kv = &map->pairs[i];
        gh_version_cfg *v = &vs->list[vs->n];
        v->name = gh_ld_copy(ld, kv->key->text);
        v->mark = kv->key->mark;
        v->index = vs->n;
        if (!name_ok(v->name)) {
            gh_ld_error(ld, kv->key->mark, "invalid version name '%.*s' (letters, digits, . - _; quote numbers: \"2\")",
                        clip(v->name), v->name.p);
            continue;
        }
        const gh_ypair *life[GH_VERSION_LIFE_KEYS] = { 0 };
        if (kv->value->kind != GH_Y_MAP) {
            gh_ld_error(ld, kv->value->mark, "expected a mapping { upstream: ..., deprecated: ..., sunset: ... }");
            continue;
        }
        if (!gh_ld_version_route(ld, r, v, kv->value, life, match))
            continue;
        load_lifecycle(ld, v, life);
        json_len += v->name.len + 3;
        names_len += v->name.len + 2;
        vs->n++;
    }
    char *json = gh_ld_zalloc(ld, json_len), *names = gh_ld_zalloc(ld, names_len);
    size_t j = (size_t)sprintf(json, "\"versions\":["), k = 0;
    for (size_t i = 0; i < vs->n; i++) {
        j += (size_t)sprintf(json + j, "%s\"%s\"", i ? "," : "", vs->list[i].name.p);
        k += (size_t)sprintf(names + k, "%s%s", i ? ", " : "", vs->list[i].name.p);
    }
    json[j++] = ']';
    vs->versions_json = gh_str_from(json, j);
    vs->names = gh_str_from(names, k);
}

/* -------------------------------------------------------------- canary */

enum { C_VERSION, C_OF, C_PERCENT, C_STICKY, C_COUNT };
static const gh_key canary_keys[] = {
    [C_VERSION] = GH_KEY_DEFER("version"),
    [C_OF] = GH_KEY_DEFER("of"),
    [C_PERCENT] = GH_KEY_DEFER("percent"),
    [C_STICKY] = GH_KEY_DEFER("sticky"),
};
static const gh_section canary_section = GH_SECTION("canary", canary_keys);

static const gh_version_cfg *canary_version(gh_load *ld, gh_versions_cfg *vs, const gh_ypair *kv, const char *what)
{
    gh_str t;
    if (!kv || !gh_ld_text(ld, kv->value, "expected a version name", &t, NULL)) {
        if (!kv)
            gh_ld_error(ld, vs->canary.mark, "canary needs '%s'", what);
        return NULL;
    }
    const gh_version_cfg *v = gh_config_version(vs, t);
    if (!v) {   /* §12.1: an undefined reference is reported at the key */
        gh_ld_error(ld, kv->key->mark, "canary %s '%.*s' is not in the list (%.*s)", what, clip(t), t.p,
                    clip(vs->names), vs->names.p);
        return NULL;
    }
    if (v->sunset != GH_NO_DATE && v->sunset <= (int64_t)time(NULL)) {
        gh_ld_error(ld, kv->value->mark, "canary %s '%.*s' is past its sunset", what, clip(t), t.p);
        return NULL;
    }
    return v;
}

static void set_percent(gh_load *ld, gh_versions_cfg *vs, const gh_ynode *n)
{
    gh_str t;
    if (!gh_ld_text(ld, n, "expected a percentage (0 to 100, e.g. 5 or 2.5)", &t, NULL))
        return;
    /* up to two decimals, kept as hundredths of a percent: exact buckets */
    uint64_t whole = 0, frac = 0;
    const char *dot = memchr(t.p, '.', t.len);
    gh_str w = dot ? gh_str_from(t.p, (size_t)(dot - t.p)) : t;
    gh_str f = dot ? gh_str_from(dot + 1, t.len - w.len - 1) : gh_str_from("", 0);
    bool ok = gh_parse_uint(w, &whole) && f.len <= 2 && (f.len == 0 || gh_parse_uint(f, &frac));
    if (f.len == 1)
        frac *= 10;
    if (!ok || whole * 100 + frac > 10000) {
        gh_ld_error(ld, n->mark, "invalid percent '%.*s' (0 to 100, at most two decimals)", clip(t), t.p);
        return;
    }
    vs->canary.per_10000 = (uint32_t)(whole * 100 + frac);
}

static void set_sticky(gh_load *ld, gh_versions_cfg *vs, const gh_ynode *n)
{
    gh_str t;
    if (!gh_ld_text(ld, n, "expected header:NAME, cookie:NAME, consumer or ip", &t, NULL))
        return;
    if (gh_str_eq_c(t, "consumer")) {
        vs->canary.sticky = GH_STICKY_CONSUMER;
    } else if (gh_str_eq_c(t, "ip")) {
        vs->canary.sticky = GH_STICKY_IP;
    } else if (gh_str_starts(t, GH_STR("header:")) && gh_ld_is_token(gh_str_from(t.p + 7, t.len - 7))) {
        vs->canary.sticky = GH_STICKY_HEADER;
        vs->canary.sticky_name = gh_ld_copy(ld, gh_str_from(t.p + 7, t.len - 7));
    } else if (gh_str_starts(t, GH_STR("cookie:")) && gh_ld_is_token(gh_str_from(t.p + 7, t.len - 7))) {
        vs->canary.sticky = GH_STICKY_COOKIE;
        vs->canary.sticky_name = gh_ld_copy(ld, gh_str_from(t.p + 7, t.len - 7));
    } else {
        gh_ld_error(ld, n->mark, "invalid sticky '%.*s' (header:NAME, cookie:NAME, consumer or ip)", clip(t), t.p);
    }
}

static bool same_plugins(const gh_plugin_set *a, const gh_plugin_set *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

static void load_canary(gh_load *ld, gh_versions_cfg *vs, const gh_ypair *kv)
{
    const gh_ypair *seen[C_COUNT] = { 0 };
    vs->canary.mark = kv->key->mark;
    if (!gh_ld_apply(ld, &canary_section, kv->value, vs, seen))
        return;
    const gh_version_cfg *to = canary_version(ld, vs, seen[C_VERSION], "version");
    const gh_version_cfg *of = canary_version(ld, vs, seen[C_OF], "of");
    if (!seen[C_PERCENT])
        gh_ld_error(ld, kv->key->mark, "canary needs 'percent'");
    else
        set_percent(ld, vs, seen[C_PERCENT]->value);
    if (seen[C_STICKY])
        set_sticky(ld, vs, seen[C_STICKY]->value);
    if (to && of && to == of)
        gh_ld_error(ld, seen[C_VERSION]->value->mark, "canary version and of are the same");
    /* with sticky: consumer the choice is made once the consumer is known,
     * after the plugins of `of` ran: the canary must not need others */
    if (to && of && vs->canary.sticky == GH_STICKY_CONSUMER && !same_plugins(&to->route.plugins, &of->route.plugins))
        gh_ld_error(ld, seen[C_STICKY]->value->mark,
                    "sticky: consumer needs versions '%s' and '%s' to have the same plugins", to->name.p, of->name.p);
    vs->canary.to = to;
    vs->canary.of = of;
}

/* -------------------------------------------------------------- versions */

enum { S_FROM, S_DEFAULT, S_LIST, S_CANARY, S_COUNT };
static const gh_key versions_keys[] = {
    [S_FROM] = GH_KEY_DEFER("from"),
    [S_DEFAULT] = GH_KEY_DEFER("default"),
    [S_LIST] = GH_KEY_DEFER("list"),
    [S_CANARY] = GH_KEY_DEFER("canary"),
};
static const gh_section versions_section = GH_SECTION("versions", versions_keys);

void gh_ld_versions(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv, const void *match)
{
    const gh_ypair *seen[S_COUNT] = { 0 };
    gh_versions_cfg *vs = gh_ld_zalloc(ld, sizeof(*vs));
    if (!gh_ld_apply(ld, &versions_section, kv->value, vs, seen))
        return;
    if (!seen[S_LIST]) {
        gh_ld_error(ld, kv->key->mark, "versions needs a list");
        return;
    }
    if (seen[S_FROM]) {
        set_from(ld, vs, seen[S_FROM]->value);
    } else {   /* without `from`: the path, then an Api-Version header */
        vs->from[0].kind = GH_VSRC_PATH;
        vs->from[1].kind = GH_VSRC_HEADER;
        vs->from[1].name = GH_STR("Api-Version");
        vs->nfrom = 2;
        vs->from_path = true;
    }
    load_list(ld, r, vs, seen[S_LIST]->value, match);
    if (seen[S_DEFAULT]) {
        gh_str t;
        if (gh_ld_text(ld, seen[S_DEFAULT]->value, "expected a version name", &t, NULL)) {
            vs->def = gh_config_version(vs, t);
            if (!vs->def)
                gh_ld_error(ld, seen[S_DEFAULT]->key->mark, "default '%.*s' is not in the list (%.*s)", clip(t),
                            t.p, clip(vs->names), vs->names.p);
        }
    }
    if (seen[S_CANARY])
        load_canary(ld, vs, seen[S_CANARY]);
    r->versions = vs;
}
