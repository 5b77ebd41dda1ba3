/* redis_tls.c — TLS to Redis under hiredis 0.14, which reads and writes its
 * socket itself and has no TLS.
 *
 * Per connection, a bridge: we connect to Redis and finish the TLS handshake
 * (tls/, the same client code as upstreams), then let hiredis connect in
 * clear to a listener of this client on 127.0.0.1 and pump bytes between the
 * accepted socket and the TLS stream. The listener accepts only the socket
 * hiredis just opened (its peer address must be hiredis's local address), so
 * another local process cannot borrow the session. Closing either side
 * closes the other: hiredis sees EOF and reconnects through the usual path. */
#include "cluster/redis_int.h"
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "core/log.h"
#include "tls/tls.h"

#define PIPE_BUF_SIZE 16384

enum { P_CONNECTING, P_HANDSHAKE, P_WAIT_HIREDIS, P_PUMP };

struct gh_redis_tls_pipe {
    gh_redis_node *n;
    int phase;
    int tfd, lfd;                 /* TLS to Redis; the socket hiredis talks to */
    gh_transport *tp;
    uv_poll_t tpoll, lpoll;
    uv_timer_t timer;             /* connect + handshake deadline */
    bool lpoll_on;
    int rd_want, wr_want;         /* TLS readiness after -EAGAIN */
    struct sockaddr_storage expect;   /* hiredis's local address */
    socklen_t expectlen;
    size_t uplen, upoff, downlen, downoff;
    char up[PIPE_BUF_SIZE];       /* hiredis -> Redis */
    char down[PIPE_BUF_SIZE];     /* Redis -> hiredis */
};

static void fail(gh_redis_tls_pipe *p, const char *why) { gh_redis_node_tls_failed(p->n, why); }

static void on_handle_closed(uv_handle_t *h)
{
    gh_redis_tls_pipe *p = h->data;
    gh_redis *c = p->n->c;
    if (--p->phase > 0)   /* phase counts the handles still closing */
        return;
    free(p);
    gh_redis_unref(c);
}

void gh_redis_tls_close(gh_redis_node *n)
{
    gh_redis_tls_pipe *p = n->tls;
    if (!p)
        return;
    n->tls = NULL;
    if (p->tp && p->tp->ops->destroy)
        p->tp->ops->destroy(p->tp);
    close(p->tfd);
    if (p->lfd >= 0)
        close(p->lfd);
    p->phase = p->lpoll_on ? 3 : 2;
    uv_close((uv_handle_t *)&p->tpoll, on_handle_closed);
    uv_close((uv_handle_t *)&p->timer, on_handle_closed);
    if (p->lpoll_on)
        uv_close((uv_handle_t *)&p->lpoll, on_handle_closed);
}

static void on_tls_event(uv_poll_t *h, int status, int events);
static void on_local_event(uv_poll_t *h, int status, int events);

/* Move bytes both ways until neither side can make progress. */
static void pump(gh_redis_tls_pipe *p)
{
    for (bool moved = true; moved;) {
        moved = false;
        if (p->uplen == 0) {
            ssize_t r = read(p->lfd, p->up, sizeof(p->up));
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                fail(p, "connection closed");
                return;
            }
            if (r > 0) {
                p->uplen = (size_t)r;
                p->upoff = 0;
                moved = true;
            }
        }
        if (p->upoff < p->uplen) {
            struct iovec iov = { p->up + p->upoff, p->uplen - p->upoff };
            ssize_t w = p->tp->ops->writev(p->tp, p->tfd, &iov, 1);
            if (w == -EAGAIN) {
                p->wr_want = gh_transport_wants(p->tp, true);
            } else if (w < 0) {
                const char *why = gh_tls_error(p->tp);
                fail(p, why ? why : "TLS write failed");
                return;
            } else {
                p->upoff += (size_t)w;
                if (p->upoff == p->uplen)
                    p->uplen = p->upoff = 0;
                moved = true;
            }
        }
        if (p->downlen == 0) {
            ssize_t r = p->tp->ops->read(p->tp, p->tfd, p->down, sizeof(p->down));
            if (r == -EAGAIN) {
                p->rd_want = gh_transport_wants(p->tp, false);
            } else if (r <= 0) {
                const char *why = r < 0 ? gh_tls_error(p->tp) : NULL;
                fail(p, why ? why : "connection closed");
                return;
            } else {
                p->downlen = (size_t)r;
                p->downoff = 0;
                moved = true;
            }
        }
        if (p->downoff < p->downlen) {
            ssize_t w = write(p->lfd, p->down + p->downoff, p->downlen - p->downoff);
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                fail(p, "connection closed");
                return;
            }
            if (w > 0) {
                p->downoff += (size_t)w;
                if (p->downoff == p->downlen)
                    p->downlen = p->downoff = 0;
                moved = true;
            }
        }
    }
    int tev = (p->downlen == 0 ? p->rd_want : 0) | (p->upoff < p->uplen ? p->wr_want : 0);
    int lev = (p->uplen == 0 ? UV_READABLE : 0) | (p->downoff < p->downlen ? UV_WRITABLE : 0);
    if (tev)
        uv_poll_start(&p->tpoll, tev, on_tls_event);
    else
        uv_poll_stop(&p->tpoll);   /* level-triggered: an unread socket would spin */
    if (lev)
        uv_poll_start(&p->lpoll, lev, on_local_event);
    else
        uv_poll_stop(&p->lpoll);
}

static void handshake(gh_redis_tls_pipe *p)
{
    int rc = gh_transport_handshake(p->tp, p->tfd);
    if (rc == -EAGAIN) {
        uv_poll_start(&p->tpoll, gh_transport_wants(p->tp, false), on_tls_event);
        return;
    }
    if (rc < 0) {
        char why[300];
        const char *e = gh_tls_error(p->tp);
        snprintf(why, sizeof(why), "TLS handshake failed: %s", e ? e : "?");
        fail(p, why);
        return;
    }
    uv_timer_stop(&p->timer);
    uv_poll_stop(&p->tpoll);
    p->phase = P_WAIT_HIREDIS;
    gh_redis_node_tls_ready(p->n);   /* hiredis dials our listener */
}

static void on_tls_event(uv_poll_t *h, int status, int events)
{
    gh_redis_tls_pipe *p = h->data;
    (void)events;
    if (status < 0) {
        fail(p, uv_strerror(status));
        return;
    }
    if (p->phase == P_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(p->tfd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            fail(p, strerror(err));
            return;
        }
        /* the name checked is the configured host (sni overrides it) */
        if (!(p->tp = gh_tls_connect(p->n->c->tls, p->tfd, p->n->host))) {
            fail(p, "out of memory");
            return;
        }
        p->phase = P_HANDSHAKE;
    }
    if (p->phase == P_HANDSHAKE)
        handshake(p);
    else if (p->phase == P_PUMP)
        pump(p);
}

static void on_local_event(uv_poll_t *h, int status, int events)
{
    gh_redis_tls_pipe *p = h->data;
    (void)events;
    if (status < 0)
        fail(p, uv_strerror(status));
    else
        pump(p);
}

static void on_deadline(uv_timer_t *t) { fail(t->data, "TLS connect timed out"); }

bool gh_redis_tls_start(gh_redis_node *n, const char *ip)
{
    gh_redis *c = n->c;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (uv_ip4_addr(ip, n->port, (struct sockaddr_in *)&ss) == 0)
        len = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(ip, n->port, (struct sockaddr_in6 *)&ss) == 0)
        len = sizeof(struct sockaddr_in6);
    else
        return false;
    gh_redis_tls_pipe *p = calloc(1, sizeof(*p));
    if (!p)
        return false;
    p->n = n;
    p->lfd = -1;
    p->rd_want = UV_READABLE;
    p->wr_want = UV_WRITABLE;
    p->tfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->tfd < 0) {
        free(p);
        return false;
    }
    if (connect(p->tfd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS) {
        close(p->tfd);
        free(p);
        return false;
    }
    uv_poll_init_socket(c->loop, &p->tpoll, p->tfd);
    uv_timer_init(c->loop, &p->timer);
    p->tpoll.data = p->timer.data = p;
    c->refs++;   /* dropped when the handles have closed */
    n->tls = p;
    uint64_t ms = c->cfg.timeout_ms * 20;
    uv_timer_start(&p->timer, on_deadline, ms < 1000 ? 1000 : ms, 0);
    uv_poll_start(&p->tpoll, UV_WRITABLE, on_tls_event);
    return true;
}

void gh_redis_tls_expect(gh_redis_node *n, int hiredis_fd)
{
    gh_redis_tls_pipe *p = n->tls;
    p->expectlen = sizeof(p->expect);
    if (getsockname(hiredis_fd, (struct sockaddr *)&p->expect, &p->expectlen) != 0)
        p->expectlen = 0;
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b,
                      socklen_t blen)
{
    return alen && alen == blen && memcmp(a, b, alen) == 0;
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    gh_redis *c = h->data;
    (void)events;
    if (status < 0)
        return;
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        memset(&peer, 0, sizeof(peer));
        int fd = accept4(c->tls_lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        gh_redis_tls_pipe *p = NULL;
        for (size_t i = 0; i < c->nnodes && !p; i++) {
            gh_redis_tls_pipe *q = c->nodes[i]->tls;
            if (q && q->phase == P_WAIT_HIREDIS && q->lfd < 0 && same_addr(&q->expect, q->expectlen, &peer, plen))
                p = q;
        }
        if (!p) {
            gh_log_warn("redis tls bridge: refused a local connection that is not ours");
            close(fd);
            continue;
        }
        p->lfd = fd;
        uv_poll_init_socket(c->loop, &p->lpoll, fd);
        p->lpoll.data = p;
        p->lpoll_on = true;
        p->phase = P_PUMP;
        pump(p);
    }
}

int gh_redis_tls_listen(gh_redis *c)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    c->tls_lfd = fd;
    c->tls_port = ntohs(sa.sin_port);
    uv_poll_init_socket(c->loop, &c->tls_lpoll, fd);
    c->tls_lpoll.data = c;
    c->refs++;
    uv_poll_start(&c->tls_lpoll, UV_READABLE, on_accept);
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    gh_redis *c = h->data;
    close(c->tls_lfd);
    gh_redis_unref(c);
}

void gh_redis_tls_unlisten(gh_redis *c)
{
    if (c->tls_port)
        uv_close((uv_handle_t *)&c->tls_lpoll, on_listener_closed);
    c->tls_port = 0;
}
