/* versions.c — choosing the version of a versioned route (SPEC §6, §12.11,
 * §12.12): read it from the sources of `from` in order (the first that has
 * one decides), else the default; refuse unknown (400 version_unknown with
 * the list), missing (400 version_required) and retired ones (410
 * version_sunset, against the clock of each request); keep previews hidden
 * (404 no_route); move the canary's share; announce the lifecycle with
 * Deprecation / Sunset / Link and name the version in Api-Version both ways. */
#include "targets/versions.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "http/request.h"
#include "http/status.h"

bool gh_versions_path_segment(gh_str path, gh_str *name, gh_str *rest)
{
    if (path.len < 3 || path.p[0] != '/' || path.p[1] != 'v' || path.p[2] < '0' || path.p[2] > '9')
        return false;
    const char *slash = memchr(path.p + 1, '/', path.len - 1);
    size_t seg = slash ? (size_t)(slash - path.p) : path.len;
    *name = gh_str_from(path.p + 2, seg - 2);
    *rest = slash ? gh_str_from(slash, path.len - seg) : gh_str_from("/", 1);
    return true;
}

bool gh_versions_claims_path(const gh_route_cfg *route)
{
    return route->target == GH_TARGET_VERSIONS && route->versions && route->versions->from_path;
}

static const gh_header *header(const gh_header *h, size_t nh, gh_str name)
{
    for (size_t i = 0; i < nh; i++)
        if (h[i].name_len == name.len && strncasecmp(h[i].name, name.p, name.len) == 0)
            return &h[i];
    return NULL;
}

/* "application/vnd.example.v2+json" -> "2": the last ".v<name>" before a
 * '+' or the end of a media type, in any element of Accept. */
static bool accept_version(const gh_header *h, gh_str *out)
{
    if (!h)
        return false;
    const char *p = h->value, *end = p + h->value_len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *elem_end = comma ? comma : end;
        const char *semi = memchr(p, ';', (size_t)(elem_end - p));
        const char *type_end = semi ? semi : elem_end;
        while (p < type_end && *p == ' ')
            p++;
        while (type_end > p && type_end[-1] == ' ')
            type_end--;
        const char *vnd = (size_t)(type_end - p) > 16 ? memmem(p, (size_t)(type_end - p), "/vnd.", 5) : NULL;
        if (vnd) {
            const char *plus = memchr(vnd, '+', (size_t)(type_end - vnd));
            const char *stop = plus ? plus : type_end;
            for (const char *q = stop - 1; q > vnd + 5; q--) {
                if (q[0] == 'v' && q[-1] == '.' && q + 1 < stop) {
                    *out = gh_str_from(q + 1, (size_t)(stop - q - 1));
                    return true;
                }
            }
        }
        p = comma ? comma + 1 : end;
    }
    return false;
}

int gh_versions_requested(const gh_versions_cfg *vs, const gh_header *h, size_t nh, gh_str query,
                          gh_str path_version, char *buf, gh_str *out)
{
    for (size_t i = 0; i < vs->nfrom; i++) {
        gh_str name = vs->from[i].name, raw;
        const gh_header *f;
        switch (vs->from[i].kind) {
        case GH_VSRC_PATH:
            if (path_version.p) {
                *out = path_version;
                return GH_VSRC_PATH;
            }
            break;
        case GH_VSRC_HEADER:
            if ((f = header(h, nh, name)) && f->value_len) {
                *out = gh_str_from(f->value, f->value_len);
                return GH_VSRC_HEADER;
            }
            break;
        case GH_VSRC_QUERY:
            if (gh_query_param(query, name, &raw, NULL) && raw.len) {
                *out = gh_str_from(buf, gh_query_decode(raw, buf));
                return GH_VSRC_QUERY;
            }
            break;
        case GH_VSRC_ACCEPT:
            if (accept_version(header(h, nh, GH_STR("accept")), out))
                return GH_VSRC_ACCEPT;
            break;
        }
    }
    return 0;
}

const gh_version_cfg *gh_versions_find(const gh_versions_cfg *vs, gh_str name)
{
    const gh_version_cfg *v = gh_config_version(vs, name);
    if (!v && name.len > 1 && (name.p[0] == 'v' || name.p[0] == 'V'))
        v = gh_config_version(vs, gh_str_from(name.p + 1, name.len - 1));   /* "Api-Version: v2" */
    return v;
}

uint32_t gh_versions_bucket(gh_str route, gh_str key)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a over "route\0key", then a splitmix64 finish */
    for (size_t i = 0; i < route.len; i++)
        h = (h ^ (uint8_t)route.p[i]) * 1099511628211ull;
    h = (h ^ 0) * 1099511628211ull;
    for (size_t i = 0; i < key.len; i++)
        h = (h ^ (uint8_t)key.p[i]) * 1099511628211ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (uint32_t)(h % 10000);
}

/* The sticky key, or false (then the request is placed at random). */
static bool sticky_key(gh_exchange *ex, const gh_versions_cfg *vs, gh_str *key)
{
    switch (vs->canary.sticky) {
    case GH_STICKY_HEADER: {
        const gh_header *h = gh_exchange_header(ex, vs->canary.sticky_name.p, vs->canary.sticky_name.len);
        if (h && h->value_len)
            *key = gh_str_from(h->value, h->value_len);
        return h && h->value_len;
    }
    case GH_STICKY_COOKIE:
        return gh_cookie(ex, vs->canary.sticky_name, key) && key->len;
    case GH_STICKY_CONSUMER:
        /* an anonymous caller sticks by address */
        *key = ex->log.consumer.len ? ex->log.consumer : gh_str_c(ex->client);
        return true;
    case GH_STICKY_IP:
        *key = gh_str_c(ex->client);
        return true;
    default:
        return false;
    }
}

static bool to_canary(gh_exchange *ex, const gh_route_cfg *route)
{
    const gh_versions_cfg *vs = route->versions;
    gh_str key;
    uint32_t bucket = sticky_key(ex, vs, &key) ? gh_versions_bucket(route->name, key)
                                               : (uint32_t)(gh_random(ex->env) % 10000);
    return bucket < vs->canary.per_10000;
}

static bool retired(const gh_version_cfg *v, int64_t now) { return v->sunset != GH_NO_DATE && now >= v->sunset; }

const char *gh_versions_state(const gh_version_cfg *v, int64_t now)
{
    if (retired(v, now))
        return "sunset";
    if ((v->deprecated != GH_NO_DATE && now >= v->deprecated) || v->sunset != GH_NO_DATE)
        return "deprecated";
    return v->preview ? "preview" : "active";
}

/* What the refusals (version_unknown, version_required, version_sunset)
 * offer instead: the versions still served at `now` (previews too, as the
 * list has always named them); a retired one is not offered again. Only
 * refusals pay for this. */
static void offered(gh_exchange *ex, const gh_versions_cfg *vs, int64_t now, const char **json, gh_str *names)
{
    char *j = gh_arena_alloc(&ex->arena, vs->versions_json.len + 1);
    char *n = gh_arena_alloc(&ex->arena, vs->names.len + 8);
    *json = vs->versions_json.p;
    *names = vs->names;
    if (!j || !n)
        return;
    size_t jl = (size_t)sprintf(j, "\"versions\":["), nl = 0;
    for (size_t i = 0; i < vs->n; i++) {
        const gh_version_cfg *v = &vs->list[i];
        if (retired(v, now))
            continue;   /* names are [A-Za-z0-9._-]: nothing to escape */
        jl += (size_t)sprintf(j + jl, "%s\"%s\"", nl ? "," : "", v->name.p);
        nl += (size_t)sprintf(n + nl, "%s%s", nl ? ", " : "", v->name.p);
    }
    j[jl++] = ']';
    j[jl] = '\0';
    if (!nl)
        nl = (size_t)sprintf(n, "none");
    *json = j;
    *names = gh_str_from(n, nl);
}

/* The version is decided (once per request): say so to the upstream, the
 * client and the log. */
static void announce(gh_exchange *ex, const gh_version_cfg *v)
{
    ex->log.version = v->name;
    gh_exchange_set_header(ex, "Api-Version", 11, v->name.p, v->name.len);   /* replacing a client's (§12.12) */
    gh_exchange_add_response_header(ex, "Api-Version", 11, v->name.p, v->name.len);
    if (v->deprecation_value.len)
        gh_exchange_add_response_header(ex, "Deprecation", 11, v->deprecation_value.p, v->deprecation_value.len);
    if (v->sunset_value.len)
        gh_exchange_add_response_header(ex, "Sunset", 6, v->sunset_value.p, v->sunset_value.len);
    if (v->link_value.len)
        gh_exchange_add_response_header(ex, "Link", 4, v->link_value.p, v->link_value.len);
}

bool gh_versions_pick(gh_exchange *ex, const gh_route_cfg *route, gh_str path_version, gh_version_pick *pick)
{
    const gh_versions_cfg *vs = route->versions;
    char detail[256];
    gh_str name, names;
    const char *json;
    const gh_version_cfg *v;
    int64_t now = (int64_t)time(NULL);
    *pick = (gh_version_pick){ 0 };
    char *buf = gh_arena_alloc(&ex->arena, ex->query.len + 1);
    if (buf && (pick->source = gh_versions_requested(vs, ex->headers, ex->nheaders, ex->query, path_version, buf, &name))) {
        v = gh_versions_find(vs, name);
        if (!v) {
            offered(ex, vs, now, &json, &names);
            snprintf(detail, sizeof(detail), "version '%.*s' is unknown; valid: %.*s",
                     (int)(name.len > 32 ? 32 : name.len), name.p, (int)names.len, names.p);
            gh_problem(ex, 400, "version_unknown", detail, NULL, 0, json);
            return false;
        }
    } else if (vs->def) {
        v = vs->def;
    } else {
        offered(ex, vs, now, &json, &names);
        snprintf(detail, sizeof(detail), "this API needs a version; valid: %.*s", (int)names.len, names.p);
        gh_problem(ex, 400, "version_required", detail, NULL, 0, json);
        return false;
    }
    pick->asked = v;
    const gh_version_cfg *to = vs->canary.to;
    if (vs->canary.of == v && vs->canary.per_10000 && !retired(to, now)) {
        /* (a canary past its sunset gives its share back) */
        pick->canary_tried = true;
        if (vs->canary.sticky == GH_STICKY_CONSUMER)
            pick->decide_later = true;
        else if (to_canary(ex, route)) {
            v = vs->canary.to;
            pick->by_canary = true;
        }
    }
    pick->v = v;   /* (also when refused below: explain says which) */
    if (retired(v, now)) {
        offered(ex, vs, now, &json, &names);
        snprintf(detail, sizeof(detail), "version %s was retired on %s; served: %.*s", v->name.p,
                 v->sunset_value.p, (int)names.len, names.p);
        ex->log.version = v->name;
        gh_problem(ex, 410, "version_sunset", detail, NULL, 0, json);
        return false;
    }
    if (v->preview && !pick->by_canary && v->preview_header.len &&
        !gh_exchange_header(ex, v->preview_header.p, v->preview_header.len)) {
        gh_problem(ex, 404, "no_route", "no route matches this request", NULL, 0, NULL);
        return false;
    }
    /* a preview for a group, or a canary by consumer, is decided after the
     * plugins: until then nothing tells the version */
    pick->announce_later = pick->decide_later || (v->preview && !pick->by_canary && v->preview_group.len);
    if (!pick->announce_later)
        announce(ex, v);
    return true;
}

static bool in_groups(gh_str groups, gh_str g)
{
    const char *p = groups.p, *end = p + groups.len;
    while (p && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if ((size_t)(e - p) == g.len && memcmp(p, g.p, g.len) == 0)
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

bool gh_versions_confirm(gh_exchange *ex, const gh_route_cfg *route, gh_version_pick *pick)
{
    const gh_versions_cfg *vs = route->versions;
    if (pick->decide_later && to_canary(ex, route)) {
        pick->v = vs->canary.to;
        pick->by_canary = true;
    }
    const gh_version_cfg *v = pick->v;
    if (v->preview && !pick->by_canary && v->preview_group.len && !in_groups(ex->consumer_groups, v->preview_group)) {
        gh_problem(ex, 404, "no_route", "no route matches this request", NULL, 0, NULL);
        return false;
    }
    if (pick->announce_later)
        announce(ex, v);
    return true;
}
