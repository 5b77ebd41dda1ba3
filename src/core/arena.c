#include "core/arena.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void gh_arena_init(gh_arena *a, size_t block_size)
{
    a->head = a->first = NULL;
    a->block_size = block_size ? block_size : 4096;
}

void gh_arena_init_with(gh_arena *a, void *mem, size_t len, size_t block_size)
{
    gh_arena_init(a, block_size);
    uintptr_t p = ((uintptr_t)mem + 15) & ~(uintptr_t)15;
    size_t skip = p - (uintptr_t)mem;
    if (len < skip + sizeof(gh_arena_block) + 64)
        return;
    gh_arena_block *b = (gh_arena_block *)p;
    b->next = NULL;
    b->size = len - skip - sizeof(gh_arena_block);
    b->used = 0;
    a->head = a->first = b;
}

void *gh_arena_alloc(gh_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    gh_arena_block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > a->block_size / 2 ? n : a->block_size;
        b = malloc(sizeof(*b) + size);
        if (!b)
            return NULL;
        b->size = size;
        b->used = 0;
        if (size == n && a->head) {   /* big one-off: keep the current block current */
            b->next = a->head->next;
            a->head->next = b;
            b->used = n;
            return b->data;
        }
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void *gh_arena_zalloc(gh_arena *a, size_t n)
{
    void *p = gh_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *gh_arena_strndup(gh_arena *a, const char *s, size_t n)
{
    char *p = gh_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

gh_str gh_arena_str(gh_arena *a, gh_str s)
{
    char *p = gh_arena_strndup(a, s.p, s.len);
    return (gh_str){ p, p ? s.len : 0 };
}

char *gh_arena_printf(gh_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = gh_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static void free_chain(gh_arena_block *b, gh_arena_block *keep)
{
    while (b) {
        gh_arena_block *next = b->next;
        if (b != keep)
            free(b);
        b = next;
    }
}

void gh_arena_reset(gh_arena *a)
{
    free_chain(a->head, a->first);
    a->head = a->first;
    if (a->first) {
        a->first->used = 0;
        a->first->next = NULL;
    }
}

void gh_arena_free(gh_arena *a)
{
    gh_arena_reset(a);
}
