/* plugin_ratelimit.c — configuration of the rate_limit plugin (SPEC §5.3):
 *   rate_limit: { limit: 100, window: 1m, key: consumer, scope: local, algorithm: sliding_window }
 *   rate_limit: { limits: [ { limit: 10, window: 1s }, { limit: 1000, window: 1h } ], key: [consumer, route] }
 * A request must fit every limit. `scope: cluster` needs the top-level
 * `redis:` section (checked with the whole file: gh_ld_plugins_resolve). */
#include <string.h>
#include "config/schema.h"

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

#define MIN_WINDOW_MS 1000

enum { R_LIMIT, R_WINDOW, R_LIMITS, R_KEY, R_SCOPE, R_ALGORITHM, R_COUNT };
static const gh_key rl_keys[] = {
    [R_LIMIT] = GH_KEY_DEFER("limit"),         [R_WINDOW] = GH_KEY_DEFER("window"),
    [R_LIMITS] = GH_KEY_DEFER("limits"),       [R_KEY] = GH_KEY_DEFER("key"),
    [R_SCOPE] = GH_KEY_DEFER("scope"),         [R_ALGORITHM] = GH_KEY_DEFER("algorithm"),
};
static const gh_section rl_section = GH_SECTION("rate_limit", rl_keys);

enum { L_LIMIT, L_WINDOW, L_COUNT };
static const gh_key limit_keys[] = { [L_LIMIT] = GH_KEY_DEFER("limit"), [L_WINDOW] = GH_KEY_DEFER("window") };
static const gh_section limit_section = GH_SECTION("rate_limit limit", limit_keys);

/* One { limit, window } pair; `at` marks the map (for a missing half). */
static bool one_limit(gh_load *ld, gh_rate_limit_cfg *c, const gh_ypair *limit, const gh_ypair *window, gh_mark at)
{
    if (!limit || !window) {
        gh_ld_error(ld, at, "rate_limit needs both limit and window (e.g. limit: 100, window: 1m)");
        return false;
    }
    int64_t n;
    uint64_t ms;
    if (!gh_ld_int(ld, limit->value, 1, GH_RL_MAX_LIMIT, &n) || !gh_ld_duration(ld, window->value, 1, &ms))
        return false;
    if (ms < MIN_WINDOW_MS) {
        gh_ld_error(ld, window->value->mark, "a rate_limit window must be at least 1s");
        return false;
    }
    for (size_t i = 0; i < c->nlimits; i++) {
        if (c->limits[i].window_ms == ms) {
            gh_ld_error(ld, window->value->mark, "rate_limit has two limits with the same window");
            return false;
        }
    }
    c->limits[c->nlimits].limit = (uint64_t)n;
    c->limits[c->nlimits].window_ms = ms;
    c->nlimits++;
    return true;
}

static bool limit_list(gh_load *ld, gh_rate_limit_cfg *c, const gh_ynode *seq)
{
    if (!gh_ld_is_seq(ld, seq))
        return false;
    if (seq->n == 0 || seq->n > GH_RL_MAX_LIMITS) {
        gh_ld_error(ld, seq->mark, "rate_limit limits: give 1 to %d limits", GH_RL_MAX_LIMITS);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < seq->n; i++) {
        const gh_ypair *seen[L_COUNT] = { 0 };
        if (!gh_ld_apply(ld, &limit_section, seq->items[i], c, seen)) {
            ok = false;
            continue;
        }
        ok &= one_limit(ld, c, seen[L_LIMIT], seen[L_WINDOW], seq->items[i]->mark);
    }
    return ok;
}

static bool key_list(gh_load *ld, gh_rate_limit_cfg *c, const gh_ynode *n)
{
    gh_str *items;
    gh_mark *marks;
    size_t count;
    if (!gh_ld_str_list(ld, n, &items, &count, &marks))
        return false;
    if (count == 0 || count > GH_RL_MAX_KEYS) {
        gh_ld_error(ld, n->mark, "rate_limit key: give 1 to %d parts", GH_RL_MAX_KEYS);
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        gh_str s = items[i];
        int kind = gh_str_eq_c(s, "consumer") ? GH_RL_KEY_CONSUMER
                   : gh_str_eq_c(s, "ip")     ? GH_RL_KEY_IP
                   : gh_str_eq_c(s, "route")  ? GH_RL_KEY_ROUTE
                   : s.len > 7 && memcmp(s.p, "header:", 7) == 0 ? GH_RL_KEY_HEADER
                                                                 : -1;
        gh_str header = { s.p + 7, s.len > 7 ? s.len - 7 : 0 };
        if (kind < 0) {
            gh_ld_error(ld, marks[i], "unknown rate_limit key '%.*s' (use consumer, ip, route or header:NAME)",
                        clip(s), s.p);
            return false;
        }
        if (kind == GH_RL_KEY_HEADER && !gh_ld_is_token(header)) {
            gh_ld_error(ld, marks[i], "invalid header name in rate_limit key '%.*s'", clip(s), s.p);
            return false;
        }
        for (size_t k = 0; k < c->nkeys; k++) {
            if (c->keys[k].kind == kind && gh_str_eq(c->keys[k].header, kind == GH_RL_KEY_HEADER ? header : (gh_str){ "", 0 })) {
                gh_ld_error(ld, marks[i], "rate_limit key '%.*s' is listed twice", clip(s), s.p);
                return false;
            }
        }
        c->keys[c->nkeys].kind = kind;
        c->keys[c->nkeys].header = kind == GH_RL_KEY_HEADER ? header : (gh_str){ "", 0 };
        c->nkeys++;
    }
    return true;
}

/* `name: value` among choices; false after reporting. */
static bool choice(gh_load *ld, const gh_ynode *n, const char *what, const char *a, const char *b, int *out)
{
    gh_str s;
    if (!gh_ld_str(ld, n, &s, NULL))
        return false;
    if (gh_str_eq_c(s, a) || gh_str_eq_c(s, b)) {
        *out = gh_str_eq_c(s, a) ? 0 : 1;
        return true;
    }
    gh_ld_error(ld, n->mark, "unknown rate_limit %s '%.*s' (use %s or %s)", what, clip(s), s.p, a, b);
    return false;
}

bool gh_ld_rate_limit(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v)
{
    gh_rate_limit_cfg *c = (gh_rate_limit_cfg *)conf;
    const gh_ypair *seen[R_COUNT] = { 0 };
    if (v && !gh_ld_apply(ld, &rl_section, v, c, seen))
        return false;
    bool ok = true;
    if (seen[R_LIMITS] && (seen[R_LIMIT] || seen[R_WINDOW])) {
        gh_ld_error(ld, seen[R_LIMITS]->key->mark, "rate_limit takes either limit and window, or limits: [...], not both");
        return false;
    }
    if (seen[R_LIMITS])
        ok &= limit_list(ld, c, seen[R_LIMITS]->value);
    else
        ok &= one_limit(ld, c, seen[R_LIMIT], seen[R_WINDOW], conf->mark);
    if (seen[R_KEY])
        ok &= key_list(ld, c, seen[R_KEY]->value);
    else
        c->keys[c->nkeys++].kind = GH_RL_KEY_CONSUMER;
    if (seen[R_ALGORITHM])
        ok &= choice(ld, seen[R_ALGORITHM]->value, "algorithm", "sliding_window", "token_bucket", &c->algorithm);
    if (seen[R_SCOPE]) {
        c->scope_mark = seen[R_SCOPE]->value->mark;
        ok &= choice(ld, seen[R_SCOPE]->value, "scope", "local", "cluster", &c->scope);
    }
    return ok;
}
