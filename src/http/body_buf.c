/* body_buf.c — the request body's bound and its buffering, for every
 * consumer and both codecs.
 *
 * The bound is a field the codecs test before each delivery
 * (gh_exchange_body_over), so a consumer never sees a byte past it and
 * the codec's own error path answers 413 (or resets) and calls on_abort.
 * Buffering is one more consumer: it collects the body into the arena and
 * continues on a later loop turn (the codec finishes its bookkeeping of
 * the last bytes first); whoever reads the body afterwards gets it replayed
 * from memory, as a Content-Length body. */
#include <string.h>
#include "http/exchange.h"

void gh_exchange_limit_body(gh_exchange *ex, uint64_t limit, const char *detail)
{
    if (limit < ex->body_limit) {
        ex->body_limit = limit;
        ex->body_limit_detail = detail;
    }
}

static size_t collect(gh_exchange *ex, const char *p, size_t len, bool last)
{
    struct gh_body_buf *b = &ex->body_buf;
    if (len > b->cap - b->len) {
        /* the codec keeps the body within body_limit: the buffer stays bounded */
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < len)
            cap *= 2;
        if (ex->body_limit < cap)
            cap = (size_t)ex->body_limit;
        if (cap < b->len + len)
            cap = b->len + len;
        char *np = gh_arena_alloc(&ex->arena, cap ? cap : 1);
        if (!np)
            return 0;   /* the body timeout ends it */
        if (b->len)
            memcpy(np, b->p, b->len);
        b->p = np;
        b->cap = cap;
    }
    if (len)
        memcpy(b->p + b->len, p, len);
    b->len += len;
    if (last) {
        ex->body_cb = NULL;
        gh_env_defer(ex->env, &b->task);
    }
    return len;
}

static void buffered(gh_task *t)
{
    gh_exchange *ex = (gh_exchange *)((char *)t - offsetof(gh_exchange, body_buf.task));
    struct gh_body_buf *b = &ex->body_buf;
    b->ready = true;
    ex->body_kind = GH_BODY_LENGTH;   /* forwarded with Content-Length */
    ex->content_length = b->len;
    if (b->done)
        b->done(ex);
}

void gh_exchange_buffer_body(gh_exchange *ex, uint64_t limit, void (*done)(gh_exchange *ex))
{
    struct gh_body_buf *b = &ex->body_buf;
    gh_exchange_limit_body(ex, limit, ex->body_limit_detail);
    b->done = done;
    b->task.run = buffered;
    if (ex->body_kind == GH_BODY_LENGTH && ex->content_length <= ex->body_limit && ex->content_length) {
        b->p = gh_arena_alloc(&ex->arena, (size_t)ex->content_length);   /* the exact size, once */
        b->cap = b->p ? (size_t)ex->content_length : 0;
    }
    gh_exchange_read_body(ex, collect);
}

void gh_exchange_buffer_cancel(gh_exchange *ex)
{
    if (ex->body_buf.task.queued)
        gh_env_undefer(ex->env, &ex->body_buf.task);
    ex->body_buf.done = NULL;
}

/* The consumer may end the exchange inside its callback when it takes
 * everything (as with a codec's delivery); one that takes less is still
 * there and waits to resume. So the state is updated before the call. */
void gh_exchange_replay_body(gh_exchange *ex)
{
    struct gh_body_buf *b = &ex->body_buf;
    if (!ex->body_cb || b->replayed)
        return;
    size_t off = b->off, n = b->len - off;
    b->off = b->len;
    b->replayed = true;
    size_t took = ex->body_cb(ex, b->p ? b->p + off : "", n, true);
    if (took < n) {
        b->off = off + took;
        b->replayed = false;
    }
}
