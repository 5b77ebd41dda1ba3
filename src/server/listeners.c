#include "server/listeners.h"
#include <errno.h>
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

static int open_listener(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (sa->sa_family == AF_INET6)   /* [::]:port means IPv6 only; list 0.0.0.0 for IPv4 */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, sa, len) < 0 || listen(fd, 4096) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
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
    s->items = calloc(cfg->nlistens ? cfg->nlistens : 1, sizeof(*s->items));
    if (!s->items) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nlistens; i++) {
        const gh_listen_cfg *l = &cfg->listens[i];
        gh_listen_item *it = &s->items[s->n++];
        memcpy(&it->sa, &l->sa, l->salen);
        it->salen = l->salen;
        snprintf(it->address, sizeof(it->address), "%s", l->address.p);
        it->http2 = l->http2;
        it->path_strict = l->path_strict;
        it->tls = tls ? tls[i] : NULL;
        it->fds = malloc(sizeof(int) * (size_t)nworkers);
        if (!it->fds) {
            gh_listen_set_free(s);
            return NULL;
        }
        bool kept = false;
        for (size_t k = 0; current && k < current->n; k++)
            if (gh_sockaddr_equal((const struct sockaddr *)&current->items[k].sa, (const struct sockaddr *)&it->sa))
                kept = true;
        for (int w = 0; w < nworkers; w++) {
            it->fds[w] = -1;
            if (kept)
                continue;
            int fd = open_listener((const struct sockaddr *)&it->sa, it->salen);
            if (fd < 0) {
                snprintf(err, errlen, "cannot listen on %s: %s", it->address, strerror(-fd));
                gh_listen_set_free(s);
                return NULL;
            }
            it->fds[w] = fd;
        }
    }
    return s;
}
