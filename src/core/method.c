/* method.c — the method table (see method.h). */
#include "core/method.h"

const gh_method gh_methods[GH_NMETHODS] = {
    { "GET", 3, GH_M_GET }, { "HEAD", 4, GH_M_HEAD }, { "POST", 4, GH_M_POST }, { "PUT", 3, GH_M_PUT },
    { "DELETE", 6, GH_M_DELETE }, { "PATCH", 5, GH_M_PATCH }, { "OPTIONS", 7, GH_M_OPTIONS },
    { "TRACE", 5, GH_M_TRACE }, { "CONNECT", 7, GH_M_CONNECT },
};

/* Per request (codecs, router): compared byte by byte, no library call,
 * GET first. */
uint32_t gh_method_bit(const char *m, size_t n)
{
    for (size_t i = 0; i < GH_NMETHODS; i++) {
        const gh_method *k = &gh_methods[i];
        if (k->len != n)
            continue;
        size_t j = 0;
        while (j < n && m[j] == k->name[j])
            j++;
        if (j == n)
            return k->bit;
    }
    return GH_M_OTHER;
}
