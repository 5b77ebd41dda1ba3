#include "server/listeners.h"
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool gh_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return false;
}

uint16_t gh_sockaddr_port(const struct sockaddr *a)
{
    return ntohs(a->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)(const void *)a)->sin6_port
                                          : ((const struct sockaddr_in *)(const void *)a)->sin_port);
}

/* A bound socket for sa. With reuseport, one of a worker group's sockets;
 * without, a probe that fails with EADDRINUSE if anyone listens there. */
static int bound_socket(const struct sockaddr *sa, socklen_t len, bool reuseport)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* connections of a previous run in TIME_WAIT do not hold the port */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (sa->sa_family == AF_INET6)   /* [::]:port means IPv6 only; list 0.0.0.0 for IPv4 */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, sa, len) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int open_listener(const struct sockaddr *sa, socklen_t len)
{
    int fd = bound_socket(sa, len, true);
    if (fd >= 0 && listen(fd, 4096) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* SO_REUSEPORT lets any process of the same user join a port's group and
 * take a share of its connections. A socket without it cannot bind while
 * anyone listens there, so a probe bound and closed before the group's
 * sockets are made tells "free" from "taken by another process". */
static int probe_free(const struct sockaddr *sa, socklen_t len)
{
    int fd = bound_socket(sa, len, false);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

static bool is_wildcard(const struct sockaddr *a)
{
    static const struct in6_addr any6 = IN6ADDR_ANY_INIT;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr, &any6, sizeof(any6)) == 0;
}

/* Would sockets on a and b compete for the same connections? (Same family
 * and port, and the same address or one of them the wildcard.) */
static bool overlaps(const struct sockaddr *a, const struct sockaddr *b)
{
    return a->sa_family == b->sa_family && gh_sockaddr_port(a) == gh_sockaddr_port(b) &&
           (gh_sockaddr_equal(a, b) || is_wildcard(a) || is_wildcard(b));
}

/* The probe would trip over our own sockets where this process already
 * listens on an overlapping address (kept across a reload, or an earlier
 * entry of the same configuration): no probe there. */
static bool held_by_us(const struct sockaddr *sa, const gh_listen_set *current, const gh_listen_set *next)
{
    for (size_t k = 0; current && k < current->n; k++)
        if (overlaps(sa, (const struct sockaddr *)&current->items[k].sa))
            return true;
    for (size_t k = 0; k < next->n; k++)
        if (overlaps(sa, (const struct sockaddr *)&next->items[k].sa))
            return true;
    return false;
}

static void listen_error(char *err, size_t errlen, const char *address, int e)
{
    if (e == -EADDRINUSE)
        snprintf(err, errlen, "cannot listen on %s: address already in use by another process", address);
    else
        snprintf(err, errlen, "cannot listen on %s: %s", address, strerror(-e));
}

void gh_listen_set_free(gh_listen_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        for (int w = 0; w < s->nworkers && s->items[i].fds; w++)
            if (s->items[i].fds[w] >= 0)
                close(s->items[i].fds[w]);
        free(s->items[i].fds);
    }
    free(s->items);
    free(s);
}

gh_listen_set *gh_listen_set_make(const gh_config *cfg, struct gh_tls_server *const *tls,
                                  const gh_listen_set *current, int nworkers, char *err, size_t errlen)
{
    gh_listen_set *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->nworkers = nworkers;
    size_t total = cfg->nlistens + (cfg->admin ? 1 : 0);
    s->items = calloc(total ? total : 1, sizeof(*s->items));
    if (!s->items) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < total; i++) {
        bool admin = i == cfg->nlistens;   /* the admin listener comes last */
        const gh_listen_cfg *l = admin ? &cfg->admin->listen : &cfg->listens[i];
        gh_listen_item *it = &s->items[s->n];
        memcpy(&it->sa, &l->sa, l->salen);
        it->salen = l->salen;
        snprintf(it->address, sizeof(it->address), "%s", l->address.p);
        it->http2 = l->http2;
        it->path_strict = l->path_strict;
        it->admin = admin;
        it->tls = tls && !admin ? tls[i] : NULL;
        it->fds = malloc(sizeof(int) * (size_t)nworkers);
        if (!it->fds) {
            gh_listen_set_free(s);
            return NULL;
        }
        for (int w = 0; w < nworkers; w++)
            it->fds[w] = -1;
        const struct sockaddr *sa = (const struct sockaddr *)&it->sa;
        bool kept = false;
        for (size_t k = 0; current && k < current->n; k++)
            if (gh_sockaddr_equal((const struct sockaddr *)&current->items[k].sa, sa))
                kept = true;
        int rc = kept || held_by_us(sa, current, s) ? 0 : probe_free(sa, it->salen);
        s->n++;   /* from here on, gh_listen_set_free closes its sockets */
        for (int w = 0; w < nworkers && !kept && rc == 0; w++) {
            int fd = open_listener(sa, it->salen);
            if (fd < 0)
                rc = fd;
            else
                it->fds[w] = fd;
        }
        if (rc < 0) {
            listen_error(err, errlen, it->address, rc);
            gh_listen_set_free(s);
            return NULL;
        }
    }
    return s;
}
