#include "proxy/backoff.h"
#include <stdlib.h>

typedef struct backoff {
    uv_timer_t timer;
    void (*cb)(void *data);
    void *data;
} backoff;

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_fire(uv_timer_t *t)
{
    backoff *b = t->data;
    b->cb(b->data);   /* the callback stops (and frees) the timer */
}

uv_timer_t *gh_backoff_start(uv_loop_t *loop, uint64_t ms, void (*cb)(void *data), void *data)
{
    backoff *b = malloc(sizeof(*b));
    if (!b)
        return NULL;
    b->cb = cb;
    b->data = data;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, on_fire, ms, 0);
    return &b->timer;
}

void gh_backoff_stop(uv_timer_t **t)
{
    if (!*t)
        return;
    uv_timer_stop(*t);
    uv_close((uv_handle_t *)*t, on_closed);
    *t = NULL;
}
