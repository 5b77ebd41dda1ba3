/* transport.h — the byte stream under a connection: plain TCP or TLS.
 * Codecs read and write through it and never touch the socket API, so TLS
 * (and anything else, e.g. a test loopback) slots in underneath unchanged.
 * Calls are non-blocking: -EAGAIN means "wait for the poll events that
 * gh_transport_want() reports". */
#ifndef GH_CORE_TRANSPORT_H
#define GH_CORE_TRANSPORT_H
#include <sys/types.h>
#include <sys/uio.h>

typedef struct gh_transport gh_transport;

typedef struct gh_transport_ops {
    ssize_t (*read)(gh_transport *t, int fd, char *buf, size_t len);   /* >0, 0 = EOF, -errno */
    ssize_t (*writev)(gh_transport *t, int fd, const struct iovec *iov, int n);
    void (*destroy)(gh_transport *t);   /* NULL for stateless transports */
} gh_transport_ops;

struct gh_transport {
    const gh_transport_ops *ops;
};

/* Plain TCP: a shared stateless instance (no memory per connection). */
extern gh_transport gh_transport_plain;

#endif
