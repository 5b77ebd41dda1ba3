/* template.c — placeholders in templates (see template.h). */
#include "core/template.h"

bool gh_tpl_next(gh_str t, size_t from, gh_tpl_ph *ph)
{
    const char *open = from < t.len ? memchr(t.p + from, '{', t.len - from) : NULL;
    if (!open)
        return false;
    size_t at = (size_t)(open - t.p);
    const char *close = memchr(open, '}', t.len - at);
    size_t end = close ? (size_t)(close - t.p) : t.len;
    gh_str inner = gh_str_from(open + 1, end - at - 1);
    bool star = inner.len && inner.p[inner.len - 1] == '*';
    *ph = (gh_tpl_ph){ .at = at, .end = close ? end + 1 : t.len, .star = star, .closed = close != NULL,
                       .name = gh_str_from(inner.p, inner.len - star) };
    return true;
}

int gh_tpl_segment(gh_str seg, gh_str *name)
{
    gh_tpl_ph ph;
    if (!gh_tpl_next(seg, 0, &ph)) {
        if (memchr(seg.p, '}', seg.len))
            return GH_TPL_BAD;
        *name = seg;
        return GH_TPL_LIT;
    }
    if (ph.at != 0 || ph.end != seg.len || !ph.closed || !gh_ident(ph.name))
        return GH_TPL_BAD;
    *name = ph.name;
    return ph.star ? GH_TPL_REST : GH_TPL_PARAM;
}
