/* bufpool.h — per-worker free list of fixed-size I/O buffers.
 * Connections borrow a read buffer only while bytes are pending and give it
 * back when idle, so an idle keep-alive connection costs no buffer memory.
 * Not thread-safe by design: each worker owns its pool. */
#ifndef GH_CORE_BUFPOOL_H
#define GH_CORE_BUFPOOL_H
#include <stddef.h>

typedef struct gh_buf {
    struct gh_buf *next;      /* free-list link */
    size_t cap;               /* bytes in data */
    size_t start, end;        /* unread bytes are data[start..end) */
    char data[];
} gh_buf;

typedef struct gh_bufpool {
    gh_buf *free;
    size_t nfree, max_free;   /* keep at most max_free idle buffers */
    size_t buf_size;
} gh_bufpool;

void gh_bufpool_init(gh_bufpool *p, size_t buf_size, size_t max_free);
gh_buf *gh_buf_get(gh_bufpool *p);            /* start = end = 0; NULL if out of memory */
void gh_buf_put(gh_bufpool *p, gh_buf *b);    /* NULL is fine */
void gh_bufpool_destroy(gh_bufpool *p);

static inline size_t gh_buf_len(const gh_buf *b) { return b->end - b->start; }
static inline size_t gh_buf_room(const gh_buf *b) { return b->cap - b->end; }
/* Move unread bytes to the front to make room at the end. */
void gh_buf_compact(gh_buf *b);

#endif
