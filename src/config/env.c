#include "config/env.h"
#include <stdlib.h>
#include <string.h>


/* One pass over `in`: with dst == NULL it validates and measures, else it
 * writes. Returns the output length, or (size_t)-1 after reporting. */
static size_t expand(gh_diag *d, gh_mark at, gh_str in, char *dst, bool *used)
{
    size_t n = 0;
    for (size_t i = 0; i < in.len;) {
        char c = in.p[i];
        if (c == '$' && i + 2 < in.len && in.p[i + 1] == '$' && in.p[i + 2] == '{') {
            if (dst)
                memcpy(dst + n, "${", 2);
            n += 2;
            i += 3;
            continue;
        }
        if (c != '$' || i + 1 >= in.len || in.p[i + 1] != '{') {
            if (dst)
                dst[n] = c;
            n++;
            i++;
            continue;
        }
        size_t start = i + 2, end = start;
        while (end < in.len && gh_ident_char(in.p[end]))
            end++;
        if (end == start || !gh_ident_start(in.p[start]) || end >= in.len || in.p[end] != '}') {
            if (!dst)
                gh_diag_error(d, at, "invalid environment reference in '%.*s' (use ${NAME})",
                              (int)in.len, in.p);
            return (size_t)-1;
        }
        char name[256];
        size_t len = end - start;
        if (len >= sizeof(name)) {
            if (!dst)
                gh_diag_error(d, at, "environment variable name too long");
            return (size_t)-1;
        }
        memcpy(name, in.p + start, len);
        name[len] = '\0';
        const char *v = getenv(name);
        if (!v) {
            if (!dst)
                gh_diag_error(d, at, "environment variable %s is not set", name);
            return (size_t)-1;
        }
        size_t vlen = strlen(v);
        if (dst)
            memcpy(dst + n, v, vlen);
        n += vlen;
        *used = true;
        i = end + 1;
    }
    return n;
}

bool gh_env_expand(gh_arena *a, gh_diag *d, gh_mark at, gh_str in, gh_str *out, bool *from_env)
{
    *from_env = false;
    if (!in.len || !memchr(in.p, '$', in.len)) {
        *out = in;
        return true;
    }
    bool used = false;
    size_t n = expand(d, at, in, NULL, &used);
    if (n == (size_t)-1)
        return false;
    char *buf = gh_arena_alloc(a, n + 1);
    if (!buf) {
        gh_diag_error(d, at, "out of memory");
        return false;
    }
    /* the environment does not change between the two passes: same length */
    expand(d, at, in, buf, &used);
    buf[n] = '\0';
    *out = gh_str_from(buf, n);
    *from_env = used;
    return true;
}
