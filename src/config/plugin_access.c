/* plugin_access.c — configuration of the authorization and filter plugins
 * (SPEC §5.2): acl, ip_filter, cors. */
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

/* ----------------------------------------------------------------- acl */

enum { A_ALLOW, A_DENY, A_COUNT };
static const gh_key acl_keys[] = { [A_ALLOW] = GH_KEY_DEFER("allow"), [A_DENY] = GH_KEY_DEFER("deny") };
static const gh_section acl_section = GH_SECTION("acl", acl_keys);

bool gh_ld_acl(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_acl_cfg *c = (gh_acl_cfg *)conf;
    const gh_ypair *seen[A_COUNT] = { 0 };
    if (v && !gh_ld_apply(ld, &acl_section, v, c, seen))
        return false;
    bool ok = true;
    if (seen[A_ALLOW])
        ok &= gh_ld_str_list(ld, seen[A_ALLOW]->value, &c->allow, &c->nallow, NULL);
    if (seen[A_DENY])
        ok &= gh_ld_str_list(ld, seen[A_DENY]->value, &c->deny, &c->ndeny, NULL);
    if (ok && c->nallow == 0 && c->ndeny == 0) {
        gh_ld_error(ld, conf->mark, "acl needs allow or deny groups");
        return false;
    }
    return ok;
}

/* ----------------------------------------------------------- ip_filter */

static bool cidr_list(gh_load *ld, const gh_ynode *n, gh_cidr **out, size_t *nout)
{
    gh_str *items;
    gh_mark *marks;
    size_t count;
    if (!gh_ld_str_list(ld, n, &items, &count, &marks))
        return false;
    *out = gh_ld_array(ld, count ? count : 1, sizeof(gh_cidr));
    *nout = 0;
    bool ok = true;
    for (size_t i = 0; i < count; i++) {
        if (!gh_cidr_parse(items[i], &(*out)[*nout])) {
            gh_ld_error(ld, marks[i], "invalid address or network '%.*s' (use 10.0.0.0/8, 2001:db8::/32, ::1)",
                        clip(items[i]), items[i].p);
            ok = false;
            continue;
        }
        (*nout)++;
    }
    return ok;
}

enum { F_ALLOW, F_DENY, F_COUNT };
static const gh_key ip_keys[] = { [F_ALLOW] = GH_KEY_DEFER("allow"), [F_DENY] = GH_KEY_DEFER("deny") };
static const gh_section ip_section = GH_SECTION("ip_filter", ip_keys);

bool gh_ld_ip_filter(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_ip_filter_cfg *c = (gh_ip_filter_cfg *)conf;
    const gh_ypair *seen[F_COUNT] = { 0 };
    if (v && !gh_ld_apply(ld, &ip_section, v, c, seen))
        return false;
    bool ok = true;
    if (seen[F_ALLOW])
        ok &= cidr_list(ld, seen[F_ALLOW]->value, &c->allow, &c->nallow);
    if (seen[F_DENY])
        ok &= cidr_list(ld, seen[F_DENY]->value, &c->deny, &c->ndeny);
    if (ok && c->nallow == 0 && c->ndeny == 0) {
        gh_ld_error(ld, conf->mark, "ip_filter needs allow or deny addresses");
        return false;
    }
    return ok;
}

/* ---------------------------------------------------------------- cors */

/* "https://app.example.com", "http://localhost:3000", a host starting with "*." or a lone "*". */
static bool origin_ok(gh_str o)
{
    if (gh_str_eq_c(o, "*"))
        return true;
    const char *sep = memmem(o.p, o.len, "://", 3);
    if (!sep || sep == o.p)
        return false;
    for (const char *p = o.p; p < sep; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))
            return false;
    const char *h = sep + 3, *end = o.p + o.len;
    if (end - h >= 2 && h[0] == '*' && h[1] == '.')
        h += 2;
    if (h == end)
        return false;
    for (const char *p = h; p < end; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == ':' ||
              *p == '[' || *p == ']'))
            return false;   /* no path, no upper case: browsers send origins lower-case */
    return true;
}

/* "a, b, c" from a list, in cfg->arena. */
static gh_str joined(gh_load *ld, const gh_str *items, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += items[i].len + 2;
    char *out = gh_ld_zalloc(ld, len + 1), *p = out;
    for (size_t i = 0; i < n; i++) {
        if (i) {
            memcpy(p, ", ", 2);
            p += 2;
        }
        memcpy(p, items[i].p, items[i].len);
        p += items[i].len;
    }
    return gh_str_from(out, (size_t)(p - out));
}

static bool token_list(gh_load *ld, const gh_ynode *n, gh_str **out, size_t *nout, bool upper)
{
    gh_mark *marks;
    if (!gh_ld_str_list(ld, n, out, nout, &marks))
        return false;
    for (size_t i = 0; i < *nout; i++) {
        gh_str *s = &(*out)[i];
        if (!gh_ld_is_token(*s)) {
            gh_ld_error(ld, marks[i], "'%.*s' is not a valid %s", clip(*s), s->p, upper ? "method" : "header name");
            return false;
        }
        char *w = (char *)s->p;
        for (size_t k = 0; k < s->len; k++)
            w[k] = upper ? (char)(w[k] >= 'a' && w[k] <= 'z' ? w[k] - 32 : w[k])
                         : (char)(w[k] >= 'A' && w[k] <= 'Z' ? w[k] + 32 : w[k]);
    }
    return true;
}

enum { C_ORIGINS, C_METHODS, C_HEADERS, C_EXPOSE, C_CREDENTIALS, C_MAX_AGE, C_COUNT };
static const gh_key cors_keys[] = {
    [C_ORIGINS] = GH_KEY_DEFER("origins"),
    [C_METHODS] = GH_KEY_DEFER("methods"),
    [C_HEADERS] = GH_KEY_DEFER("headers"),
    [C_EXPOSE] = GH_KEY_DEFER("expose_headers"),
    [C_CREDENTIALS] = GH_KEY_VAL("credentials", GH_V_BOOL, gh_cors_cfg, credentials),
    [C_MAX_AGE] = GH_KEY_DEFER("max_age"),
};
static const gh_section cors_section = GH_SECTION("cors", cors_keys);

bool gh_ld_cors(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_cors_cfg *c = (gh_cors_cfg *)conf;
    const gh_ypair *seen[C_COUNT] = { 0 };
    if (v && !gh_ld_apply(ld, &cors_section, v, c, seen))
        return false;
    gh_mark *marks = NULL;
    if (!seen[C_ORIGINS] ||
        !gh_ld_str_list(ld, seen[C_ORIGINS]->value, &c->origins, &c->norigins, &marks) || c->norigins == 0) {
        gh_ld_error(ld, seen[C_ORIGINS] ? seen[C_ORIGINS]->value->mark : conf->mark,
                    "cors needs origins: [\"https://app.example.com\", ...]");
        return false;
    }
    bool ok = true, any = false;
    for (size_t i = 0; i < c->norigins; i++) {
        if (!origin_ok(c->origins[i])) {
            gh_ld_error(ld, marks[i], "invalid origin '%.*s' (scheme://host[:port], lower-case, no path; "
                        "https://*.example.com; or *)", clip(c->origins[i]), c->origins[i].p);
            ok = false;
        }
        any |= gh_str_eq_c(c->origins[i], "*");
    }
    if (any && c->credentials) {
        /* the Fetch standard refuses `*` with credentials; echoing any origin
         * instead would let every site read authenticated answers */
        gh_ld_error(ld, seen[C_CREDENTIALS]->key->mark,
                    "cors: credentials: true cannot be used with origin \"*\"; list the origins");
        ok = false;
    }
    if (seen[C_METHODS]) {
        ok &= token_list(ld, seen[C_METHODS]->value, &c->method_names, &c->nmethods, true);
    } else {
        static const gh_str defaults[] = { GH_STR("GET"), GH_STR("HEAD"), GH_STR("POST"), GH_STR("PUT"),
                                           GH_STR("PATCH"), GH_STR("DELETE") };
        c->method_names = (gh_str *)defaults;
        c->nmethods = sizeof(defaults) / sizeof(defaults[0]);
    }
    for (size_t i = 0; i < c->nmethods; i++)
        c->method_bits |= gh_method_bit(c->method_names[i].p, c->method_names[i].len) & ~(uint32_t)GH_M_OTHER;
    c->methods = joined(ld, c->method_names, c->nmethods);
    if (seen[C_HEADERS]) {
        ok &= token_list(ld, seen[C_HEADERS]->value, &c->header_names, &c->nheaders, false);
        c->headers = joined(ld, c->header_names, c->nheaders);
    }
    if (seen[C_EXPOSE]) {
        gh_str *names;
        size_t n;
        ok &= token_list(ld, seen[C_EXPOSE]->value, &names, &n, false);
        c->expose_headers = joined(ld, names, n);
    }
    if (seen[C_MAX_AGE]) {
        uint64_t ms;
        if (gh_ld_duration(ld, seen[C_MAX_AGE]->value, 0, &ms))
            c->max_age_s = ms / 1000;
        else
            ok = false;
    }
    return ok;
}
