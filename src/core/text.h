/* text.h — a growing text buffer for output built off the request path
 * (the Prometheus exposition, the demo's YAML): append, printf, and one
 * out-of-memory flag checked once at the end instead of after each write. */
#ifndef GH_CORE_TEXT_H
#define GH_CORE_TEXT_H
#include <stdbool.h>
#include <stddef.h>

typedef struct gh_text {
    char *p;                      /* malloc'd, NUL-terminated once written; free(p) */
    size_t len, cap;
    bool oom;                     /* a write failed: the text is incomplete */
} gh_text;

void gh_text_put(gh_text *t, const char *s, size_t n);
void gh_text_printf(gh_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
