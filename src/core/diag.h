/* diag.h — configuration diagnostics: "FILE:LINE:COL: message" lines.
 * Loaders and compilers append errors and warnings; the caller prints them
 * (check) or logs them (reload). LINE and COL are 1-based; an item with
 * no position (line 0) reads "FILE: message". */
#ifndef GH_CORE_DIAG_H
#define GH_CORE_DIAG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct gh_mark {
    unsigned line, col;     /* 1-based; 0 = no position */
} gh_mark;

typedef struct gh_diag_item {
    bool warning;
    char *text;             /* full "FILE:LINE:COL: message" */
} gh_diag_item;

typedef struct gh_diag {
    const char *file;       /* file name as given on the command line */
    gh_diag_item *items;
    size_t n, cap;
    size_t errors, warnings;
} gh_diag;

void gh_diag_init(gh_diag *d, const char *file);
void gh_diag_error(gh_diag *d, gh_mark at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void gh_diag_warn(gh_diag *d, gh_mark at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The file as a whole is unusable (cannot be opened or read): printed as
 * "gatehouse: MESSAGE", the message naming the file and the reason. */
void gh_diag_fail(gh_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gh_diag_print(const gh_diag *d, FILE *out);   /* every item, one per line */
const char *gh_diag_first_error(const gh_diag *d);  /* or NULL */
void gh_diag_free(gh_diag *d);

#endif
