/* arena.h — bump allocator freed all at once.
 * One per exchange and one per configuration: allocation is a pointer bump,
 * release is one call. Blocks come from malloc; the first block can be
 * embedded by the owner so a small exchange allocates nothing. */
#ifndef GH_CORE_ARENA_H
#define GH_CORE_ARENA_H
#include <stddef.h>
#include "core/str.h"

typedef struct gh_arena_block {
    struct gh_arena_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} gh_arena_block;

typedef struct gh_arena {
    gh_arena_block *head;    /* current block, newest first */
    gh_arena_block *first;   /* embedded/initial block kept on reset, or NULL */
    size_t block_size;       /* size of blocks malloc'd on demand */
} gh_arena;

void gh_arena_init(gh_arena *a, size_t block_size);
/* Use caller memory (mem, len) as the first block; it is never freed. */
void gh_arena_init_with(gh_arena *a, void *mem, size_t len, size_t block_size);
void *gh_arena_alloc(gh_arena *a, size_t n);          /* 16-byte aligned; NULL only if malloc fails */
void *gh_arena_zalloc(gh_arena *a, size_t n);
char *gh_arena_strndup(gh_arena *a, const char *s, size_t n);  /* NUL-terminated */
gh_str gh_arena_str(gh_arena *a, gh_str s);            /* copy, NUL-terminated */
char *gh_arena_printf(gh_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gh_arena_reset(gh_arena *a);                      /* free all but the first block */
void gh_arena_free(gh_arena *a);                       /* free everything malloc'd */

#endif
