#include "config/units.h"

/* Leading decimal digits of s into *out; returns how many were read, 0 on
 * none or on overflow (so "99999999999999999999s" is refused, not wrapped). */
static size_t digits(gh_str s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < s.len && s.p[i] >= '0' && s.p[i] <= '9'; i++) {
        unsigned d = (unsigned)(s.p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return i;
}

bool gh_parse_uint(gh_str s, uint64_t *out)
{
    uint64_t v;
    size_t n = digits(s, &v);
    if (n == 0 || n != s.len)
        return false;
    *out = v;
    return true;
}

typedef struct unit {
    const char *suffix;
    uint64_t factor;
} unit;

static bool scaled(gh_str s, const unit *units, size_t nunits, bool bare_ok, uint64_t *out)
{
    uint64_t v;
    size_t n = digits(s, &v);
    if (n == 0)
        return false;
    gh_str suffix = gh_str_from(s.p + n, s.len - n);
    if (suffix.len == 0) {
        /* a bare number: bytes for sizes; for durations only 0, where the
         * unit cannot matter ("5" could mean seconds or milliseconds) */
        if (!bare_ok && v != 0)
            return false;
        *out = v;
        return true;
    }
    for (size_t i = 0; i < nunits; i++) {
        if (!gh_str_eq_c(suffix, units[i].suffix))
            continue;
        if (v > UINT64_MAX / units[i].factor)
            return false;
        *out = v * units[i].factor;
        return true;
    }
    return false;
}

bool gh_parse_duration_ms(gh_str s, uint64_t *out_ms)
{
    static const unit units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 60 * 60 * 1000 },
    };
    return scaled(s, units, sizeof(units) / sizeof(units[0]), false, out_ms);
}

bool gh_parse_size(gh_str s, uint64_t *out_bytes)
{
    static const unit units[] = {
        { "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 },
        { "KB", 1000 }, { "MB", 1000 * 1000 }, { "GB", 1000 * 1000 * 1000 },
    };
    return scaled(s, units, sizeof(units) / sizeof(units[0]), true, out_bytes);
}
