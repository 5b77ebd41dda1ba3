/* template.h — "{name}" placeholders in path, rewrite and redirect
 * templates: one reading of the syntax for the loader that validates them,
 * the router that compiles match templates and the code that fills them.
 * "{name*}" is the same name, marked as taking the rest of the path. */
#ifndef GH_CORE_TEMPLATE_H
#define GH_CORE_TEMPLATE_H
#include "core/str.h"

typedef struct gh_tpl_ph {
    size_t at, end;     /* '{' at t[at]; t[end - 1] is its '}' (t.len if unclosed) */
    gh_str name;        /* between the braces, without a trailing '*' */
    bool star, closed;
} gh_tpl_ph;

/* The first placeholder of t at or after from: false when t has no more '{'. */
bool gh_tpl_next(gh_str t, size_t from, gh_tpl_ph *ph);

/* A segment of a match.path template: a literal, a whole-segment {name},
 * {name*} (the rest), or GH_TPL_BAD (braces elsewhere, bad name). */
enum { GH_TPL_LIT, GH_TPL_PARAM, GH_TPL_REST, GH_TPL_BAD };
int gh_tpl_segment(gh_str seg, gh_str *name);

#endif
