#include "core/bufpool.h"
#include <stdlib.h>
#include <string.h>

void gh_bufpool_init(gh_bufpool *p, size_t buf_size, size_t max_free)
{
    p->free = NULL;
    p->nfree = 0;
    p->max_free = max_free;
    p->buf_size = buf_size;
}

gh_buf *gh_buf_get(gh_bufpool *p)
{
    gh_buf *b = p->free;
    if (b) {
        p->free = b->next;
        p->nfree--;
    } else {
        b = malloc(sizeof(*b) + p->buf_size);
        if (!b)
            return NULL;
        b->cap = p->buf_size;
    }
    b->next = NULL;
    b->start = b->end = 0;
    return b;
}

void gh_buf_put(gh_bufpool *p, gh_buf *b)
{
    if (!b)
        return;
    if (p->nfree >= p->max_free) {
        free(b);
        return;
    }
    b->next = p->free;
    p->free = b;
    p->nfree++;
}

void gh_bufpool_destroy(gh_bufpool *p)
{
    while (p->free) {
        gh_buf *b = p->free;
        p->free = b->next;
        free(b);
    }
    p->nfree = 0;
}

void gh_buf_compact(gh_buf *b)
{
    if (b->start == 0)
        return;
    size_t n = b->end - b->start;
    if (n)
        memmove(b->data, b->data + b->start, n);
    b->start = 0;
    b->end = n;
}
