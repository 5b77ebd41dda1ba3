/* tunnel.c — after a 101 (WebSocket), bytes flow both ways unchanged.
 *
 * Each side has a buffer for what was read from it and not yet written to
 * the other; a side stops being read while its buffer is full, so a slow
 * peer slows the fast one and memory stays at two buffers. An EOF is passed
 * on as a half-close once its buffer is flushed; when both directions are
 * done, or nothing moved for the idle timeout, both sockets close. */
#include "proxy/tunnel.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TUNNEL_BUF (32 * 1024)

typedef struct side {
    uv_poll_t poll;
    struct gh_tunnel *t;
    int fd;
    gh_transport *tp;
    int events;
    char *buf;                    /* read from this side, for the other */
    size_t off, len;
    bool eof;                     /* this side will send no more */
    bool shut;                    /* EOF passed on to the other side */
} side;

typedef struct gh_tunnel {
    side s[2];                    /* 0 = client, 1 = upstream */
    struct gh_tunnel *prev, *next;   /* the worker's tunnels */
    uv_timer_t idle;
    gh_http_env *env;
    uint64_t idle_ms;
    int closing;
} gh_tunnel;

static void pump(gh_tunnel *t);
static void on_poll(uv_poll_t *h, int status, int events);

static void on_handle_closed(uv_handle_t *h)
{
    /* poll handles point at their side, the timer at the tunnel */
    gh_tunnel *t = h->type == UV_POLL ? ((side *)h->data)->t : h->data;
    if (--t->closing)
        return;
    for (int i = 0; i < 2; i++) {
        if (t->s[i].tp && t->s[i].tp->ops->destroy)
            t->s[i].tp->ops->destroy(t->s[i].tp);
        close(t->s[i].fd);
        free(t->s[i].buf);
    }
    gh_http_env *env = t->env;
    free(t);
    env->h1->nconns--;
    if (env->conn_closed)
        env->conn_closed(env);
}

static void tunnel_close(gh_tunnel *t)
{
    if (t->closing)
        return;
    t->closing = 3;
    gh_h1_worker *w = t->env->h1;
    if (t->prev)
        t->prev->next = t->next;
    else if (w->tunnels == t)
        w->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    for (int i = 0; i < 2; i++) {
        uv_poll_stop(&t->s[i].poll);
        uv_close((uv_handle_t *)&t->s[i].poll, on_handle_closed);
    }
    uv_timer_stop(&t->idle);
    uv_close((uv_handle_t *)&t->idle, on_handle_closed);
}

static void set_events(side *s, int ev)
{
    if (s->events == ev)
        return;
    s->events = ev;
    if (ev)
        uv_poll_start(&s->poll, ev, on_poll);
    else
        uv_poll_stop(&s->poll);
}

/* Move bytes: write each side's buffer to the other, read where there is
 * room; set the poll masks for what is still wanted. */
static void pump(gh_tunnel *t)
{
    bool moved = false;
    for (int i = 0; i < 2; i++) {
        side *from = &t->s[i], *to = &t->s[1 - i];
        for (int rounds = 0; rounds < 8; rounds++) {
            if (from->len > from->off) {
                struct iovec iov = { from->buf + from->off, from->len - from->off };
                ssize_t w = to->tp->ops->writev(to->tp, to->fd, &iov, 1);
                if (w == -EAGAIN)
                    break;
                if (w <= 0) {
                    tunnel_close(t);
                    return;
                }
                from->off += (size_t)w;
                moved = true;
                if (from->off < from->len)
                    break;
                from->off = from->len = 0;
            }
            if (from->eof) {
                if (!from->shut) {
                    from->shut = true;
                    shutdown(to->fd, SHUT_WR);   /* half-close: the other side reads EOF */
                }
                break;
            }
            ssize_t n = from->tp->ops->read(from->tp, from->fd, from->buf, TUNNEL_BUF);
            if (n == -EAGAIN)
                break;
            if (n == 0) {
                from->eof = true;
                continue;
            }
            if (n < 0) {
                tunnel_close(t);
                return;
            }
            from->len = (size_t)n;
            moved = true;
        }
    }
    if (t->s[0].shut && t->s[1].shut) {
        tunnel_close(t);   /* both directions finished */
        return;
    }
    for (int i = 0; i < 2; i++) {
        side *me = &t->s[i], *other = &t->s[1 - i];
        int ev = 0;
        if (!me->eof && me->len == 0)
            ev |= gh_transport_wants(me->tp, false);
        if (other->len > other->off)
            ev |= gh_transport_wants(me->tp, true);
        set_events(me, ev);
    }
    if (moved)
        uv_timer_again(&t->idle);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    side *s = h->data;
    if (status < 0) {
        tunnel_close(s->t);
        return;
    }
    pump(s->t);
}

static void on_idle(uv_timer_t *h)
{
    tunnel_close(h->data);
}

static bool side_buf(side *s, const char *pre, size_t npre)
{
    s->buf = malloc(npre > TUNNEL_BUF ? npre : TUNNEL_BUF);
    if (!s->buf)
        return false;
    if (npre)
        memcpy(s->buf, pre, npre);
    s->len = npre;
    return true;
}

static void side_init(gh_tunnel *t, side *s, uv_loop_t *loop, int fd, gh_transport *tp)
{
    s->t = t;
    s->fd = fd;
    s->tp = tp ? tp : &gh_transport_plain;
    uv_poll_init_socket(loop, &s->poll, fd);
    s->poll.data = s;
}

int gh_tunnel_start(uv_loop_t *loop, gh_http_env *env, gh_takeover *client, int up_fd, gh_transport *up_tp,
                    const char *up_pending, size_t up_npending, uint64_t idle_ms)
{
    gh_tunnel *t = calloc(1, sizeof(*t));
    /* the client side's "read" buffer starts with the client's early bytes;
     * the upstream side's with the 101 head followed by upstream bytes */
    size_t nhead = client->nhead + up_npending;
    char *head = malloc(nhead ? nhead : 1);
    if (!t || !head) {
        free(t);
        free(head);
        free(client->pending);
        free(client->head);
        client->pending = client->head = NULL;
        return -ENOMEM;
    }
    memcpy(head, client->head, client->nhead);
    if (up_npending)
        memcpy(head + client->nhead, up_pending, up_npending);
    bool ok = side_buf(&t->s[0], client->pending, client->npending) && side_buf(&t->s[1], head, nhead);
    free(head);
    free(client->pending);
    free(client->head);
    client->pending = client->head = NULL;
    if (!ok) {
        free(t->s[0].buf);
        free(t->s[1].buf);
        free(t);
        return -ENOMEM;
    }
    side_init(t, &t->s[0], loop, client->fd, client->tp);
    side_init(t, &t->s[1], loop, up_fd, up_tp);
    t->env = env;
    t->idle_ms = idle_ms;
    env->h1->nconns++;
    t->next = env->h1->tunnels;
    if (t->next)
        t->next->prev = t;
    env->h1->tunnels = t;
    uv_timer_init(loop, &t->idle);
    t->idle.data = t;
    uv_timer_start(&t->idle, on_idle, idle_ms, idle_ms);
    /* uv_poll_start needs the callback once; later mask changes keep it */
    for (int i = 0; i < 2; i++) {
        t->s[i].events = UV_READABLE;
        uv_poll_start(&t->s[i].poll, UV_READABLE, on_poll);
    }
    pump(t);
    return 0;
}

void gh_tunnel_close_all(gh_http_env *env)
{
    while (env->h1->tunnels)
        tunnel_close(env->h1->tunnels);
}
