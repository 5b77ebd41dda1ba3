#include "config/schema.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "config/env.h"
#include "config/units.h"

/* ---- context helpers ---- */

void gh_ld_error(gh_load *ld, gh_mark at, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gh_diag_error(ld->diag, at, "%s", msg);
}

void *gh_ld_zalloc(gh_load *ld, size_t n)
{
    void *p = gh_arena_zalloc(ld->a, n ? n : 1);
    if (!p) {
        /* a configuration is small; no memory for it means no memory for
         * anything, and a half-built configuration must never be used */
        fprintf(stderr, "gatehouse: out of memory loading the configuration\n");
        abort();
    }
    return p;
}

void *gh_ld_tmp(gh_load *ld, size_t n)
{
    void *p = gh_arena_alloc(&ld->tmp, n ? n : 1);
    if (!p) {
        fprintf(stderr, "gatehouse: out of memory loading the configuration\n");
        abort();
    }
    return p;
}

void *gh_ld_array(gh_load *ld, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        abort();
    return gh_ld_zalloc(ld, n * size);
}

gh_str gh_ld_copy(gh_load *ld, gh_str s)
{
    char *p = gh_ld_zalloc(ld, s.len + 1);
    if (s.len)
        memcpy(p, s.p, s.len);
    return gh_str_from(p, s.len);
}

bool gh_ynode_is_null(const gh_ynode *n)
{
    if (!n)
        return true;
    if (n->kind != GH_Y_SCALAR || !n->plain)
        return false;
    return n->text.len == 0 || gh_str_eq_c(n->text, "~") || gh_str_eq_c(n->text, "null") ||
           gh_str_eq_c(n->text, "Null") || gh_str_eq_c(n->text, "NULL");
}

/* ---- "did you mean" ---- */

/* Levenshtein distance, short strings only (keys); larger is "far". */
static size_t distance(gh_str a, const char *b)
{
    size_t bl = strlen(b);
    if (a.len > 48 || bl > 48)
        return 99;
    size_t row[49];
    for (size_t j = 0; j <= bl; j++)
        row[j] = j;
    for (size_t i = 1; i <= a.len; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= bl; j++) {
            size_t up = row[j];
            size_t cost = gh_lower(a.p[i - 1]) == gh_lower(b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[bl];
}

const char *gh_ld_suggest(gh_str key, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_score = 3;   /* 0-2: edit distance; 3: prefix */
    for (size_t i = 0; i < n; i++) {
        size_t score = distance(key, names[i]);
        if (score > 2) {
            gh_str name = gh_str_c(names[i]);
            bool prefix = key.len >= 3 && (gh_str_starts(name, key) || gh_str_starts(key, name));
            score = prefix ? 3 : 99;
        }
        if (score < best_score || (score == 3 && !best)) {
            best = names[i];
            best_score = score;
        }
    }
    return best;
}

/* ---- walking a section ---- */

static bool set_value(gh_load *ld, const gh_key *k, void *obj, const gh_ypair *kv)
{
    char *field = (char *)obj + k->off;
    const gh_ynode *v = kv->value;
    int64_t i;
    uint64_t u;
    bool b;
    gh_str s;
    switch (k->type) {
    case GH_V_STR:
        if (!gh_ld_str(ld, v, &s, NULL))
            return false;
        memcpy(field, &s, sizeof(s));
        return true;
    case GH_V_BOOL:
        if (!gh_ld_bool(ld, v, &b))
            return false;
        memcpy(field, &b, sizeof(b));
        return true;
    case GH_V_INT:
    case GH_V_U32:
    case GH_V_U64:
        if (!gh_ld_int(ld, v, k->min, k->max, &i))
            return false;
        if (k->type == GH_V_INT) {
            int x = (int)i;
            memcpy(field, &x, sizeof(x));
        } else if (k->type == GH_V_U32) {
            uint32_t x = (uint32_t)i;
            memcpy(field, &x, sizeof(x));
        } else {
            uint64_t x = (uint64_t)i;
            memcpy(field, &x, sizeof(x));
        }
        return true;
    case GH_V_DURATION:
    case GH_V_SIZE:
        if (k->type == GH_V_DURATION ? !gh_ld_duration(ld, v, (uint64_t)k->min, &u)
                                     : !gh_ld_size(ld, v, (uint64_t)k->min, &u))
            return false;
        memcpy(field, &u, sizeof(u));
        return true;
    case GH_V_FN:
        if (k->kind == GH_Y_MAP && !gh_ld_is_map(ld, v))
            return false;
        if (k->kind == GH_Y_SEQ && !gh_ld_is_seq(ld, v))
            return false;
        return k->fn(ld, obj, kv);
    default:   /* GH_V_DEFER: the caller reads it from seen[] */
        return true;
    }
}

bool gh_ld_apply(gh_load *ld, const gh_section *s, const gh_ynode *map, void *obj,
                 const gh_ypair **seen)
{
    if (!gh_ld_is_map(ld, map))
        return false;
    if (map->kind != GH_Y_MAP)
        return true;   /* null: an empty mapping */
    for (size_t p = 0; p < map->n; p++) {
        const gh_ypair *kv = &map->pairs[p];
        const gh_ynode *key = kv->key;
        if (key->kind != GH_Y_SCALAR) {
            gh_ld_error(ld, key->mark, "expected a string as key");
            continue;
        }
        size_t i = 0;
        while (i < s->nkeys && !gh_str_eq_c(key->text, s->keys[i].name))
            i++;
        if (i == s->nkeys) {
            const char *names[64];
            size_t n = s->nkeys < 64 ? s->nkeys : 64;
            for (size_t j = 0; j < n; j++)
                names[j] = s->keys[j].name;
            const char *hint = gh_ld_suggest(key->text, names, n);
            int len = key->text.len > 80 ? 80 : (int)key->text.len;
            if (hint)
                gh_ld_error(ld, key->mark, "unknown key '%.*s' (did you mean '%s'?)", len, key->text.p, hint);
            else
                gh_ld_error(ld, key->mark, "unknown key '%.*s'", len, key->text.p);
            continue;
        }
        if (seen)
            seen[i] = kv;
        set_value(ld, &s->keys[i], obj, kv);
    }
    return true;
}

/* ---- what a wrong value was ---- */

/* A plain scalar that reads as a number or a boolean is shown bare. */
static bool bare(const gh_ynode *n)
{
    if (!n->plain || n->text.len == 0)
        return false;
    if (gh_str_eq_c(n->text, "true") || gh_str_eq_c(n->text, "false"))
        return true;
    for (size_t i = 0; i < n->text.len; i++)
        if (!strchr("0123456789+-.eE_", n->text.p[i]))
            return false;
    return true;
}

/* Appends the value as written (compact flow style) to out[*k..cap). */
static void render(const gh_ynode *n, char *out, size_t cap, size_t *k)
{
#define PUT(...) (*k += (size_t)snprintf(out + (*k < cap ? *k : cap), *k < cap ? cap - *k : 0, __VA_ARGS__))
    if (gh_ynode_is_null(n)) {
        PUT("null");
    } else if (n->kind == GH_Y_SCALAR && bare(n)) {
        PUT("%.*s", (int)(n->text.len > 40 ? 40 : n->text.len), n->text.p);
    } else if (n->kind == GH_Y_SCALAR) {
        char esc[96];   /* quoted as in YAML: \" and \\, control characters as ? */
        size_t e = 0, len = n->text.len > 40 ? 40 : n->text.len;
        for (size_t i = 0; i < len; i++) {
            char c = n->text.p[i];
            if (c == '"' || c == '\\')
                esc[e++] = '\\';
            esc[e++] = (unsigned char)c < 0x20 || c == 0x7f ? '?' : c;
        }
        PUT("\"%.*s%s\"", (int)e, esc, n->text.len > 40 ? "..." : "");
    } else if (n->kind == GH_Y_SEQ) {
        PUT("[");
        for (size_t i = 0; i < n->n && *k < cap; i++) {
            if (i)
                PUT(", ");
            render(n->items[i], out, cap, k);
        }
        PUT("]");
    } else {
        PUT("{ ");
        for (size_t i = 0; i < n->n && *k < cap; i++) {
            if (i)
                PUT(", ");
            render(n->pairs[i].key, out, cap, k);
            PUT(": ");
            render(n->pairs[i].value, out, cap, k);
        }
        PUT(" }");
    }
#undef PUT
}

void gh_ld_expected(gh_load *ld, const gh_ynode *n, const char *expected)
{
    char got[96];
    size_t k = 0;
    render(n, got, sizeof(got), &k);
    if (k >= sizeof(got))   /* too long to show whole */
        memcpy(got + sizeof(got) - 4, "...", 4);
    if (!n || gh_ynode_is_null(n))
        gh_ld_error(ld, n ? n->mark : (gh_mark){ 0, 0 }, "%s, got nothing", expected);
    else
        gh_ld_error(ld, n->mark, "%s, got %s", expected, got);
}

/* ---- scalars ---- */

bool gh_ld_is_map(gh_load *ld, const gh_ynode *n)
{
    if (n->kind == GH_Y_MAP || gh_ynode_is_null(n))
        return true;
    gh_ld_expected(ld, n, "expected a mapping");
    return false;
}

bool gh_ld_is_seq(gh_load *ld, const gh_ynode *n)
{
    if (n->kind == GH_Y_SEQ || gh_ynode_is_null(n))
        return true;
    gh_ld_expected(ld, n, "expected a list");
    return false;
}

bool gh_ld_text(gh_load *ld, const gh_ynode *n, const char *expected, gh_str *out, bool *from_env)
{
    bool env = false;
    if (n->kind != GH_Y_SCALAR || gh_ynode_is_null(n)) {
        gh_ld_expected(ld, n, expected);
        return false;
    }
    if (!gh_env_expand(&ld->tmp, ld->diag, n->mark, n->text, out, &env))
        return false;
    if (from_env)
        *from_env = env;
    return true;
}

bool gh_ld_str(gh_load *ld, const gh_ynode *n, gh_str *out, bool *from_env)
{
    gh_str t;
    bool env = false;
    if (!gh_ld_text(ld, n, "expected a string", &t, &env))
        return false;
    if (from_env)
        *from_env = env;
    if (memchr(t.p, '\0', t.len)) {
        /* everything downstream treats these as C strings */
        gh_ld_error(ld, n->mark, "strings must not contain NUL characters");
        return false;
    }
    *out = gh_ld_copy(ld, t);
    if (env)
        gh_config_add_secret(ld->cfg, out->p);
    return true;
}

bool gh_ld_bool(gh_load *ld, const gh_ynode *n, bool *out)
{
    gh_str t;
    if (!gh_ld_text(ld, n, "expected true or false", &t, NULL))
        return false;
    if (gh_str_eq_c(t, "true") || gh_str_eq_c(t, "false")) {
        *out = t.p[0] == 't';
        return true;
    }
    gh_ld_expected(ld, n, "expected true or false");
    return false;
}

bool gh_ld_int(gh_load *ld, const gh_ynode *n, int64_t min, int64_t max, int64_t *out)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "expected an integer between %" PRId64 " and %" PRId64, min, max);
    gh_str t;
    uint64_t v;
    if (!gh_ld_text(ld, n, msg, &t, NULL))
        return false;
    if (!gh_parse_uint(t, &v) || v > (uint64_t)INT64_MAX || (int64_t)v < min || (int64_t)v > max) {
        gh_ld_expected(ld, n, msg);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

bool gh_ld_duration(gh_load *ld, const gh_ynode *n, uint64_t min, uint64_t *out_ms)
{
    gh_str t;
    static const char expected[] = "expected a duration like " GH_DURATION_HINT;
    if (!gh_ld_text(ld, n, expected, &t, NULL))
        return false;
    if (!gh_parse_duration_ms(t, out_ms)) {
        gh_ld_expected(ld, n, expected);
        return false;
    }
    if (*out_ms < min) {
        gh_ld_error(ld, n->mark, "expected a duration greater than 0");
        return false;
    }
    return true;
}

bool gh_ld_size(gh_load *ld, const gh_ynode *n, uint64_t min, uint64_t *out)
{
    gh_str t;
    static const char expected[] = "expected a size like " GH_SIZE_HINT;
    if (!gh_ld_text(ld, n, expected, &t, NULL))
        return false;
    if (!gh_parse_size(t, out)) {
        gh_ld_expected(ld, n, expected);
        return false;
    }
    if (*out < min) {
        gh_ld_error(ld, n->mark, "expected a size greater than 0");
        return false;
    }
    return true;
}

/* ---- name -> value maps ---- */

bool gh_ld_is_token(gh_str s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c != '\0' && strchr(extra, c));
        if (!ok)
            return false;
    }
    return true;
}

bool gh_ld_kv_map(gh_load *ld, const gh_ynode *map, bool headers, gh_kv **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (!gh_ld_is_map(ld, map))
        return false;
    if (map->kind != GH_Y_MAP || map->n == 0)
        return true;
    gh_kv *kvs = gh_ld_array(ld, map->n, sizeof(*kvs));
    size_t n = 0;
    bool ok = true;
    for (size_t p = 0; p < map->n; p++) {
        const gh_ynode *key = map->pairs[p].key, *val = map->pairs[p].value;
        if (key->kind != GH_Y_SCALAR || gh_ynode_is_null(key)) {
            gh_ld_error(ld, key->mark, "expected a string as key");
            ok = false;
            continue;
        }
        int klen = key->text.len > 80 ? 80 : (int)key->text.len;
        if (headers && !gh_ld_is_token(key->text)) {
            gh_ld_error(ld, key->mark, "invalid header name '%.*s'", klen, key->text.p);
            ok = false;
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = headers ? gh_str_ieq(kvs[j].name, key->text) : gh_str_eq(kvs[j].name, key->text);
        if (dup) {
            /* YAML already refuses exact duplicates; header names ignore case */
            gh_ld_error(ld, key->mark, "duplicate header '%.*s'", klen, key->text.p);
            ok = false;
            continue;
        }
        gh_kv kv = { .mark = key->mark };
        if (!gh_ld_str(ld, val, &kv.value, &kv.secret)) {
            ok = false;
            continue;
        }
        if (headers && (memchr(kv.value.p, '\r', kv.value.len) || memchr(kv.value.p, '\n', kv.value.len))) {
            gh_ld_error(ld, val->mark, "invalid header value: CR and LF are not allowed");
            ok = false;
            continue;
        }
        kv.name = gh_ld_copy(ld, key->text);
        kvs[n++] = kv;
    }
    *out = kvs;
    *nout = n;
    return ok;
}
