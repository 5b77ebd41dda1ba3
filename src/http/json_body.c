/* json_body.c — see json_body.h. */
#include "http/json_body.h"

char *gh_json_in_arena(gh_exchange *ex, json_t *j, size_t flags, size_t extra, size_t *len)
{
    *len = 0;
    if (!j)
        return NULL;
    size_t n = json_dumpb(j, NULL, 0, flags);
    char *out = n ? gh_arena_alloc(&ex->arena, n + extra + 1) : NULL;
    if (out && json_dumpb(j, out, n, flags) == n) {
        out[n] = '\0';
        *len = n;
    } else {
        out = NULL;
    }
    json_decref(j);
    return out;
}
