/* str.h — byte slices (pointer + length) and small helpers on them.
 * A gh_str never owns its bytes; whoever made it says how long they live. */
#ifndef GH_CORE_STR_H
#define GH_CORE_STR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

typedef struct gh_str {
    const char *p;
    size_t len;
} gh_str;

#define GH_STR(lit) ((gh_str){ (lit), sizeof(lit) - 1 })
#define GH_STR_NULL ((gh_str){ NULL, 0 })

static inline gh_str gh_str_from(const char *p, size_t len) { return (gh_str){ p, len }; }
static inline gh_str gh_str_c(const char *s) { return (gh_str){ s, s ? strlen(s) : 0 }; }
static inline bool gh_str_eq(gh_str a, gh_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}
static inline bool gh_str_eq_c(gh_str a, const char *b) { return gh_str_eq(a, gh_str_c(b)); }
static inline bool gh_str_ieq(gh_str a, gh_str b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.p, b.p, a.len) == 0);
}
static inline bool gh_str_ieq_c(gh_str a, const char *b) { return gh_str_ieq(a, gh_str_c(b)); }
static inline bool gh_str_starts(gh_str a, gh_str prefix)
{
    return a.len >= prefix.len && memcmp(a.p, prefix.p, prefix.len) == 0;
}
static inline char gh_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

/* Identifiers (template parameters, ${ENV} names): [A-Za-z_][A-Za-z0-9_]*. */
static inline bool gh_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static inline bool gh_ident_char(char c) { return gh_ident_start(c) || (c >= '0' && c <= '9'); }
static inline bool gh_ident(gh_str s)
{
    if (s.len == 0 || !gh_ident_start(s.p[0]))
        return false;
    for (size_t i = 1; i < s.len; i++)
        if (!gh_ident_char(s.p[i]))
            return false;
    return true;
}

/* FNV-1a: for tables of names the configuration chose (route and
 * upstream names), not of bytes a client sends (those use siphash). */
static inline uint64_t gh_str_hash(gh_str s)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < s.len; i++)
        h = (h ^ (unsigned char)s.p[i]) * 1099511628211ull;
    return h;
}

/* The value of a hex digit, or -1. */
static inline int gh_hexval(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* v in decimal at out (up to 20 bytes, no NUL); returns the length. For
 * the hot path, where printf's machinery costs hundreds of instructions. */
static inline size_t gh_u64_dec(char *out, uint64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    size_t n = 1;   /* digits: counted first, then written from the end two at a time */
    for (uint64_t p = 10; n < 20 && v >= p; p *= 10)
        n++;
    size_t k = n;
    while (v >= 100) {
        size_t i = (size_t)(v % 100) * 2;
        v /= 100;
        out[--k] = pairs[i + 1];
        out[--k] = pairs[i];
    }
    if (v >= 10) {
        out[--k] = pairs[v * 2 + 1];
        out[--k] = pairs[v * 2];
    } else {
        out[--k] = (char)('0' + v);
    }
    return n;
}

#endif
