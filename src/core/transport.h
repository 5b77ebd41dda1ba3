/* transport.h — the byte stream under a connection: plain TCP or TLS.
 * Codecs read and write through it and never touch the socket API, so TLS
 * (and anything else, e.g. a test loopback) slots in underneath unchanged.
 *
 * Calls are non-blocking. -EAGAIN means "call again when the socket is
 * ready": for a stateful transport (TLS) t->want says which readiness
 * (GH_WANT_READ or GH_WANT_WRITE; a TLS read may need the socket writable
 * and a write may need it readable). The plain transport is one shared
 * stateless instance and never sets want: after its -EAGAIN a read waits
 * for readable and a write for writable — gh_transport_wants() says so.
 *
 * A transport may hold bytes already taken off the socket (TLS reads
 * ahead): before waiting for readability — after a handshake just finished
 * (the client's first request often rides with its last handshake flight),
 * after a read that filled the buffer, when a paused reader resumes — ask
 * gh_transport_pending() and read at once if true, or wait forever for
 * data that is already here. pending() may be true for half a record, in
 * which case read says -EAGAIN: then wait as usual. */
#ifndef GH_CORE_TRANSPORT_H
#define GH_CORE_TRANSPORT_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The values of libuv's UV_READABLE and UV_WRITABLE, so a poll mask can be
 * built without translation (core does not include uv.h). */
enum { GH_WANT_READ = 1, GH_WANT_WRITE = 2 };

typedef struct gh_transport gh_transport;

typedef struct gh_transport_ops {
    ssize_t (*read)(gh_transport *t, int fd, char *buf, size_t len);   /* >0, 0 = EOF, -errno */
    /* bytes written (may be fewer than offered), or -errno; -EAGAIN only
     * when nothing was written. After -EAGAIN the next call must offer the
     * same bytes again first (TLS has already encrypted them). */
    ssize_t (*writev)(gh_transport *t, int fd, const struct iovec *iov, int n);
    /* 0 = done (also when already done), -EAGAIN = wait for t->want, other
     * negative = failed (the connection is unusable). NULL: no handshake. */
    int (*handshake)(gh_transport *t, int fd);
    /* true when read can return data without the socket being readable.
     * NULL: never. */
    bool (*pending)(gh_transport *t);
    void (*destroy)(gh_transport *t);   /* NULL for stateless transports */
    /* the negotiated protocol version for the access log ("TLSv1.3");
     * NULL: none (plain) */
    const char *(*version)(gh_transport *t);
} gh_transport_ops;

struct gh_transport {
    const gh_transport_ops *ops;
    int want;        /* after -EAGAIN: GH_WANT_READ or GH_WANT_WRITE; never set by plain */
};

/* Plain TCP: a shared stateless instance (no memory per connection). */
extern gh_transport gh_transport_plain;

static inline int gh_transport_handshake(gh_transport *t, int fd)
{
    return t->ops->handshake ? t->ops->handshake(t, fd) : 0;
}

static inline bool gh_transport_pending(gh_transport *t)
{
    return t->ops->pending && t->ops->pending(t);
}

static inline const char *gh_transport_version(gh_transport *t)
{
    return t->ops->version ? t->ops->version(t) : NULL;
}

/* The readiness an -EAGAIN from a read (writing = false) or a write
 * (writing = true) waits for. */
static inline int gh_transport_wants(const gh_transport *t, bool writing)
{
    if (t == &gh_transport_plain || !t->want)
        return writing ? GH_WANT_WRITE : GH_WANT_READ;
    return t->want;
}

#endif
