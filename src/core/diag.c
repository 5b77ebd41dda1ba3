#include "core/diag.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void gh_diag_init(gh_diag *d, const char *file)
{
    memset(d, 0, sizeof(*d));
    d->file = file ? file : "<config>";
}

/* file: false for gh_diag_fail (the message names the file itself). */
static void add(gh_diag *d, bool warning, bool file, gh_mark at, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        gh_diag_item *items = realloc(d->items, cap * sizeof(*items));
        if (!items)
            return;
        d->items = items;
        d->cap = cap;
    }
    size_t need = strlen(d->file) + strlen(msg) + 64;
    char *text = malloc(need);
    if (!text)
        return;
    const char *w = warning ? "warning: " : "";
    if (!file)
        snprintf(text, need, "gatehouse: %s", msg);
    else if (at.line == 0)   /* no position: "0:0" would send people looking for one */
        snprintf(text, need, "%s: %s%s", d->file, w, msg);
    else
        snprintf(text, need, "%s:%u:%u: %s%s", d->file, at.line, at.col, w, msg);
    d->items[d->n++] = (gh_diag_item){ .warning = warning, .text = text };
    if (warning)
        d->warnings++;
    else
        d->errors++;
}

void gh_diag_error(gh_diag *d, gh_mark at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add(d, false, true, at, fmt, ap);
    va_end(ap);
}

void gh_diag_warn(gh_diag *d, gh_mark at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add(d, true, true, at, fmt, ap);
    va_end(ap);
}

void gh_diag_fail(gh_diag *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add(d, false, false, (gh_mark){ 0, 0 }, fmt, ap);
    va_end(ap);
}

void gh_diag_print(const gh_diag *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(out, "%s\n", d->items[i].text);
}

const char *gh_diag_first_error(const gh_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        if (!d->items[i].warning)
            return d->items[i].text;
    return NULL;
}

void gh_diag_free(gh_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->items[i].text);
    free(d->items);
    memset(d, 0, sizeof(*d));
}
