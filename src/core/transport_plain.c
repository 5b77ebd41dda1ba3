/* transport_plain.c — plain TCP: read(2) and writev(2), retried on EINTR.
 * Stateless and shared by every plain connection, so it never writes
 * t->want (see gh_transport_wants). */
#include "core/transport.h"
#include <errno.h>
#include <unistd.h>

static ssize_t plain_read(gh_transport *t, int fd, char *buf, size_t len)
{
    (void)t;
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t plain_writev(gh_transport *t, int fd, const struct iovec *iov, int n)
{
    (void)t;
    for (;;) {
        ssize_t w = writev(fd, iov, n);
        if (w >= 0)
            return w;
        if (errno != EINTR)
            return -errno;
    }
}

static const gh_transport_ops plain_ops = { .read = plain_read, .writev = plain_writev };
gh_transport gh_transport_plain = { .ops = &plain_ops };
