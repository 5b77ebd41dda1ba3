#include "proxy/pool.h"
#include "proxy/h2_upstream.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct gh_pool {
    struct sockaddr_storage sa;
    socklen_t salen;
    uint64_t tag;                 /* what else the connections share: 0 = plain, else TLS identity */
    uint64_t hash;
    gh_upconn *idle;              /* most recently used first */
    uint32_t nidle;
};

static uint64_t addr_hash(const struct sockaddr *sa, socklen_t len)
{
    const unsigned char *p = (const unsigned char *)sa;
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (socklen_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static size_t addr_len(const struct sockaddr *sa, socklen_t len)
{
    /* compare only meaningful bytes (sin_zero etc. may differ) */
    if (sa->sa_family == AF_INET)
        return sizeof(struct sockaddr_in);
    if (sa->sa_family == AF_INET6)
        return sizeof(struct sockaddr_in6);
    return len;
}

static gh_pool *pool_find(gh_proxy_worker *pw, const struct sockaddr *sa, socklen_t len, uint64_t tag,
                          bool create)
{
    size_t alen = addr_len(sa, len);
    uint64_t h = addr_hash(sa, (socklen_t)alen) ^ (tag * 0x9e3779b97f4a7c15ULL);
    if (pw->table_cap) {
        for (size_t i = h & (pw->table_cap - 1);; i = (i + 1) & (pw->table_cap - 1)) {
            gh_pool *p = pw->table[i];
            if (!p)
                break;
            if (p->hash == h && p->tag == tag && p->salen == alen && memcmp(&p->sa, sa, alen) == 0)
                return p;
        }
    }
    if (!create)
        return NULL;
    if ((pw->npools + 1) * 2 > pw->table_cap) {
        size_t cap = pw->table_cap ? pw->table_cap * 2 : 16;
        gh_pool **t = calloc(cap, sizeof(*t));
        if (!t)
            return NULL;
        for (size_t i = 0; i < pw->table_cap; i++) {
            gh_pool *p = pw->table[i];
            if (!p)
                continue;
            size_t j = p->hash & (cap - 1);
            while (t[j])
                j = (j + 1) & (cap - 1);
            t[j] = p;
        }
        free(pw->table);
        pw->table = t;
        pw->table_cap = cap;
    }
    gh_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    memcpy(&p->sa, sa, alen);
    p->salen = (socklen_t)alen;
    p->tag = tag;
    p->hash = h;
    size_t j = h & (pw->table_cap - 1);
    while (pw->table[j])
        j = (j + 1) & (pw->table_cap - 1);
    pw->table[j] = p;
    pw->npools++;
    return p;
}

gh_proxy_worker *gh_proxy_worker_new(uv_loop_t *loop, gh_bufpool *bufs)
{
    gh_proxy_worker *pw = calloc(1, sizeof(*pw));
    if (!pw)
        return NULL;
    pw->loop = loop;
    pw->bufs = bufs;
    pw->idle_timeout_ms = 60000;
    return pw;
}

static void idle_unlink(gh_upconn *uc)
{
    if (!uc->idle)
        return;
    gh_pool *p = uc->pool;
    if (uc->prev)
        uc->prev->next = uc->next;
    else
        p->idle = uc->next;
    if (uc->next)
        uc->next->prev = uc->prev;
    uc->prev = uc->next = NULL;
    uc->idle = false;
    p->nidle--;
}

void gh_proxy_worker_free(gh_proxy_worker *pw)
{
    gh_h2up_worker_free(pw->h2up);   /* before the pools: its connections are counted there */
    for (size_t i = 0; i < pw->table_cap; i++) {
        gh_pool *p = pw->table[i];
        if (!p)
            continue;
        while (p->idle)
            gh_upconn_close(p->idle);
    }
    /* pools themselves are freed after the loop has run the close callbacks */
    for (size_t i = 0; i < pw->table_cap; i++)
        free(pw->table[i]);
    free(pw->table);
    free(pw);
}

static void on_uc_poll(uv_poll_t *h, int status, int events)
{
    gh_upconn *uc = h->data;
    if (uc->idle) {
        /* an idle upstream connection must stay silent; anything = dead —
         * except TLS records that carry no data (session tickets, key
         * updates), which a read consumes and reports as -EAGAIN */
        char probe[64];
        if (status >= 0 && uc->tp != &gh_transport_plain && gh_upconn_read(uc, probe, sizeof(probe)) == -EAGAIN)
            return;
        gh_upconn_close(uc);
        return;
    }
    if (uc->on_event)
        uc->on_event(uc, status < 0 ? status : events);
}

static void on_uc_timer(uv_timer_t *t)
{
    gh_upconn *uc = t->data;
    if (uc->idle) {
        gh_upconn_close(uc);
        return;
    }
    if (uc->on_timer)
        uc->on_timer(uc);
}

gh_upconn *gh_pool_take(gh_proxy_worker *pw, const struct sockaddr *sa, socklen_t len)
{
    return gh_pool_take_tagged(pw, sa, len, 0);
}

gh_upconn *gh_pool_take_tagged(gh_proxy_worker *pw, const struct sockaddr *sa, socklen_t len, uint64_t tag)
{
    gh_pool *p = pool_find(pw, sa, len, tag, false);
    if (!p || !p->idle)
        return NULL;
    gh_upconn *uc = p->idle;
    idle_unlink(uc);
    uv_timer_stop(&uc->timer);
    return uc;
}

gh_upconn *gh_upconn_connect(gh_proxy_worker *pw, const struct sockaddr *sa, socklen_t len, int *err)
{
    return gh_upconn_connect_tagged(pw, sa, len, 0, err);
}

gh_upconn *gh_upconn_connect_tagged(gh_proxy_worker *pw, const struct sockaddr *sa, socklen_t len, uint64_t tag,
                                    int *err)
{
    gh_pool *p = pool_find(pw, sa, len, tag, true);
    if (!p) {
        *err = -ENOMEM;
        return NULL;
    }
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        *err = -errno;
        close(fd);
        return NULL;
    }
    gh_upconn *uc = calloc(1, sizeof(*uc));
    if (!uc || uv_poll_init_socket(pw->loop, &uc->poll, fd) < 0) {
        free(uc);
        close(fd);
        *err = -ENOMEM;
        return NULL;
    }
    uv_timer_init(pw->loop, &uc->timer);
    uc->poll.data = uc;
    uc->timer.data = uc;
    uc->fd = fd;
    uc->tp = &gh_transport_plain;
    uc->pw = pw;
    uc->pool = p;
    pw->open_conns++;
    gh_upconn_events(uc, UV_WRITABLE);
    return uc;
}

ssize_t gh_upconn_read(gh_upconn *uc, char *buf, size_t len)
{
    return uc->tp->ops->read(uc->tp, uc->fd, buf, len);
}

ssize_t gh_upconn_writev(gh_upconn *uc, const struct iovec *iov, int n)
{
    return uc->tp->ops->writev(uc->tp, uc->fd, iov, n);
}

int gh_upconn_connect_result(gh_upconn *uc)
{
    int e = 0;
    socklen_t l = sizeof(e);
    if (getsockopt(uc->fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
        return -errno;
    if (e == 0)
        uc->connected = true;
    return -e;
}

void gh_upconn_events(gh_upconn *uc, int events)
{
    if (uc->events == events)
        return;
    uc->events = events;
    if (events)
        uv_poll_start(&uc->poll, events, on_uc_poll);
    else
        uv_poll_stop(&uc->poll);
}

void gh_upconn_timer(gh_upconn *uc, uint64_t ms)
{
    if (ms)
        uv_timer_start(&uc->timer, on_uc_timer, ms, 0);
    else
        uv_timer_stop(&uc->timer);
}

void gh_upconn_release(gh_upconn *uc, uint32_t keep)
{
    gh_pool *p = uc->pool;
    if (p->nidle >= keep || uc->closing) {
        gh_upconn_close(uc);
        return;
    }
    gh_buf_put(uc->pw->bufs, uc->in);
    uc->in = NULL;
    uc->owner = NULL;
    uc->on_event = NULL;
    uc->on_timer = NULL;
    uc->idle = true;
    uc->requests++;
    uc->prev = NULL;
    uc->next = p->idle;
    if (p->idle)
        p->idle->prev = uc;
    p->idle = uc;
    p->nidle++;
    gh_upconn_events(uc, UV_READABLE);
    uv_timer_start(&uc->timer, on_uc_timer, uc->pw->idle_timeout_ms, 0);
}

static void on_uc_closed(uv_handle_t *h)
{
    gh_upconn *uc = h->data;
    if (--uc->closing == 0)
        free(uc);
}

void gh_upconn_close(gh_upconn *uc)
{
    if (uc->closing)
        return;
    idle_unlink(uc);
    uc->closing = 2;
    uc->owner = NULL;
    uc->on_event = NULL;
    uc->on_timer = NULL;
    gh_buf_put(uc->pw->bufs, uc->in);
    uc->in = NULL;
    uc->pw->open_conns--;
    uv_poll_stop(&uc->poll);
    uv_timer_stop(&uc->timer);
    if (uc->tp && uc->tp->ops->destroy)
        uc->tp->ops->destroy(uc->tp);
    uc->tp = NULL;
    close(uc->fd);   /* the poll watcher is stopped; closing the fd now frees the port at once */
    uv_close((uv_handle_t *)&uc->poll, on_uc_closed);
    uv_close((uv_handle_t *)&uc->timer, on_uc_closed);
}

void gh_upconn_detach(gh_upconn *uc, int *fd, gh_transport **tp)
{
    *fd = uc->fd;
    *tp = uc->tp;
    uc->tp = NULL;
    idle_unlink(uc);
    uc->closing = 2;
    uc->owner = NULL;
    uc->on_event = NULL;
    uc->on_timer = NULL;
    gh_buf_put(uc->pw->bufs, uc->in);
    uc->in = NULL;
    uc->pw->open_conns--;
    uv_poll_stop(&uc->poll);
    uv_timer_stop(&uc->timer);
    uv_close((uv_handle_t *)&uc->poll, on_uc_closed);
    uv_close((uv_handle_t *)&uc->timer, on_uc_closed);
}
