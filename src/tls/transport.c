/* transport.c — gh_transport over TLS (core/transport.h): SSL_read and
 * SSL_write on a non-blocking socket, WANT_READ / WANT_WRITE turned into
 * -EAGAIN plus t->want, and the queries a connection needs after the
 * handshake (ALPN, the verified client certificate).
 *
 * OpenSSL's error queue is per thread and shared by every connection of a
 * worker: it is cleared before each call and after each failure, or one
 * connection's stale error would make SSL_get_error lie about the next. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include "tls/tls_int.h"

/* Small iovecs (a response head, a chunk-size line) are gathered into one
 * record of up to this size rather than sent as tiny records. */
#define STAGE_SIZE 16384

typedef struct tls_conn {
    gh_transport base;        /* first: the transport is the connection */
    SSL *ssl;
    gh_tls_server *server;    /* the reference this connection holds, or NULL */
    gh_tls_client *client;
    int failed;               /* sticky: once broken, every call returns this */
    bool sniffed;             /* server side: the first byte was looked at (sniff.c) */
    bool eof;                 /* close_notify/EOF seen after data: the next read returns 0 */
    const char *error;        /* static text from OpenSSL, for logs */
} tls_conn;

static const gh_transport_ops tls_ops;

static tls_conn *conn_of(gh_transport *t)
{
    return t && t->ops == &tls_ops ? (tls_conn *)t : NULL;
}

/* Remember why the connection failed: a certificate verification result
 * says more than "certificate verify failed". */
static void note_error(tls_conn *c)
{
    long v = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_last_error();
    if (e && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK)
        c->error = X509_verify_cert_error_string(v);
    else if (e)
        c->error = ERR_reason_error_string(e);
    if (!c->error)
        c->error = "TLS error";
    ERR_clear_error();
}

/* The outcome of an SSL call that returned r <= 0 (sys_errno: errno right
 * after it): -EAGAIN with want set, 0 for a closed stream, or a failure. */
static ssize_t outcome(tls_conn *c, int r, int sys_errno)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        c->base.want = GH_WANT_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        c->base.want = GH_WANT_WRITE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:   /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        c->failed = sys_errno ? -sys_errno : -ECONNRESET;
        c->error = sys_errno ? strerror(sys_errno) : "connection reset";
        ERR_clear_error();
        return c->failed;
    default:
        c->failed = -EPROTO;
        note_error(c);
        return c->failed;
    }
}

static int tls_handshake(gh_transport *t, int fd)
{
    tls_conn *c = (tls_conn *)t;
    (void)fd;
    if (c->failed)
        return c->failed;
    if (!c->sniffed && c->server) {
        int s = gh_tls_sniff(SSL_get_fd(c->ssl));
        if (s == GH_SNIFF_AGAIN) {   /* OpenSSL's read would find nothing either */
            c->base.want = GH_WANT_READ;
            return -EAGAIN;
        }
        c->sniffed = true;
        if (s == GH_SNIFF_PLAIN_HTTP) {
            c->failed = -EPROTO;
            c->error = "plain HTTP request on a TLS port (answered 400)";
            return c->failed;
        }
    }
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return 0;
    ssize_t o = outcome(c, r, errno);
    if (o == 0) {   /* closed before the handshake finished */
        c->failed = -ECONNRESET;
        c->error = "connection closed during the handshake";
        return c->failed;
    }
    return (int)o;
}

/* Drains every record OpenSSL already holds (read-ahead brings several per
 * read(2)) while there is room, so one call returns what one socket read
 * brought. A failure after some bytes is kept for the next call. */
static ssize_t tls_read(gh_transport *t, int fd, char *buf, size_t len)
{
    tls_conn *c = (tls_conn *)t;
    (void)fd;
    if (c->failed)
        return c->failed;
    if (c->eof)
        return 0;
    size_t got = 0;
    while (got < len) {
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_read_ex(c->ssl, buf + got, len - got, &n);
        if (r == 1) {
            got += n;
            if (!SSL_has_pending(c->ssl))
                break;
            continue;
        }
        int err = errno;
        if (got) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN)
                c->eof = true;   /* the socket will not say so again: remember it */
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                outcome(c, r, err);   /* sets failed */
            ERR_clear_error();
            break;
        }
        return outcome(c, r, err);
    }
    return (ssize_t)got;
}

/* Where the next write starts: iovec i, offset off in it. */
typedef struct cursor {
    const struct iovec *iov;
    int n, i;
    size_t off;
} cursor;

static void skip_empty(cursor *k)
{
    while (k->i < k->n && k->off == k->iov[k->i].iov_len) {
        k->i++;
        k->off = 0;
    }
}

static void advance(cursor *k, size_t by)
{
    while (by) {
        size_t room = k->iov[k->i].iov_len - k->off;
        size_t step = by < room ? by : room;
        k->off += step;
        by -= step;
        skip_empty(k);
    }
}

/* The next piece to hand SSL_write: a large iovec as it is, or small ones
 * gathered into stage. Deterministic for the same bytes offered, which
 * matters: after WANT_WRITE OpenSSL must see the same data again. */
static const char *next_piece(const cursor *k, char *stage, size_t *len)
{
    const char *base = (const char *)k->iov[k->i].iov_base + k->off;
    size_t rem = k->iov[k->i].iov_len - k->off;
    if (rem >= STAGE_SIZE) {
        *len = rem;
        return base;
    }
    size_t used = 0;
    for (int i = k->i; i < k->n && used < STAGE_SIZE; i++) {
        const char *p = i == k->i ? base : (const char *)k->iov[i].iov_base;
        size_t l = i == k->i ? rem : k->iov[i].iov_len;
        size_t take = l < STAGE_SIZE - used ? l : STAGE_SIZE - used;
        memcpy(stage + used, p, take);
        used += take;
    }
    *len = used;
    return stage;
}

static ssize_t tls_writev(gh_transport *t, int fd, const struct iovec *iov, int n)
{
    tls_conn *c = (tls_conn *)t;
    char stage[STAGE_SIZE];
    cursor k = { .iov = iov, .n = n };
    size_t total = 0;
    (void)fd;
    if (c->failed)
        return c->failed;
    skip_empty(&k);
    while (k.i < k.n) {
        size_t len, w = 0;
        const char *p = next_piece(&k, stage, &len);
        ERR_clear_error();
        int r = SSL_write_ex(c->ssl, p, len, &w);
        if (r != 1) {
            int err = errno;
            /* a write can never "succeed with 0 bytes": OpenSSL reports
             * ZERO_RETURN for a write once the peer's close was read, and
             * a writer told 0 would wait for writability forever */
            if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) {
                c->failed = -EPIPE;
                c->error = "the peer closed the connection";
                ERR_clear_error();
                return total ? (ssize_t)total : c->failed;
            }
            if (!total)
                return outcome(c, r, err);
            /* progress first; a broken connection fails the next call */
            if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ &&
                SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_WRITE)
                outcome(c, r, err);
            ERR_clear_error();
            break;
        }
        total += w;   /* partial-write mode: one record at a time */
        advance(&k, w);
    }
    return (ssize_t)total;
}

static bool tls_pending(gh_transport *t)
{
    tls_conn *c = (tls_conn *)t;
    /* a remembered EOF or failure is news the reader must come and get */
    return c->eof || c->failed || SSL_has_pending(c->ssl);
}

static void tls_destroy(gh_transport *t)
{
    tls_conn *c = (tls_conn *)t;
    /* one non-blocking close_notify, never after a failure (OpenSSL forbids
     * it) and never a wait for the peer's */
    if (!c->failed && SSL_is_init_finished(c->ssl)) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
    }
    ERR_clear_error();
    SSL_free(c->ssl);
    gh_tls_server_free(c->server);
    gh_tls_client_free(c->client);
    free(c);
}

static const char *tls_version(gh_transport *t) { return SSL_get_version(((tls_conn *)t)->ssl); }

static const gh_transport_ops tls_ops = {
    .version = tls_version,
    .read = tls_read,
    .writev = tls_writev,
    .handshake = tls_handshake,
    .pending = tls_pending,
    .destroy = tls_destroy,
};

static tls_conn *conn_new(SSL_CTX *ctx, int fd)
{
    tls_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base.ops = &tls_ops;
    ERR_clear_error();
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    return c;
}

gh_transport *gh_tls_accept(gh_tls_server *s, int fd)
{
    tls_conn *c = conn_new(s->ctx[0], fd);
    if (!c)
        return NULL;
    SSL_set_accept_state(c->ssl);
    gh_tls_server_ref(s);
    c->server = s;
    return &c->base;
}

static bool is_ip_literal(const char *h)
{
    unsigned char a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

gh_transport *gh_tls_connect(gh_tls_client *cl, int fd, const char *sni_host)
{
    tls_conn *c = conn_new(cl->ctx, fd);
    if (!c)
        return NULL;
    SSL_set_connect_state(c->ssl);
    const char *name = cl->sni ? cl->sni : sni_host;
    bool ok = true;
    if (name && *name) {
        bool ip = is_ip_literal(name);
        /* RFC 6066 §3: no IP literals in server_name */
        if (!ip)
            ok = SSL_set_tlsext_host_name(c->ssl, name) == 1;
        if (ok && cl->verify) {
            if (ip) {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) == 1;
            } else {
                SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                ok = SSL_set1_host(c->ssl, name) == 1;
            }
        }
    }
    if (!ok) {
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    gh_tls_client_ref(cl);
    c->client = cl;
    return &c->base;
}

/* ---------------------------------------------------------------- queries */

bool gh_tls_is(const gh_transport *t)
{
    return t && t->ops == &tls_ops;
}

const char *gh_tls_alpn(gh_transport *t)
{
    tls_conn *c = conn_of(t);
    const unsigned char *p = NULL;
    unsigned len = 0;
    if (!c)
        return NULL;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    if (len == 2 && memcmp(p, "h2", 2) == 0)
        return "h2";
    if (len == 8 && (memcmp(p, "http/1.1", 8) == 0 || memcmp(p, "http/1.0", 8) == 0))
        return "http/1.1";
    return NULL;
}

bool gh_tls_peer_subject(gh_transport *t, char *out, size_t cap)
{
    tls_conn *c = conn_of(t);
    if (!c || !cap)
        return false;
    X509 *x = SSL_get0_peer_certificate(c->ssl);
    /* presented AND verified: with client_cert: optional a failed
     * verification still completes the handshake */
    if (!x || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return false;
    BIO *b = BIO_new(BIO_s_mem());
    bool ok = b && X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0;
    char *p = NULL;
    long n = ok ? BIO_get_mem_data(b, &p) : 0;
    ok = ok && n >= 0 && (size_t)n < cap;
    if (ok) {
        memcpy(out, p, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(b);
    ERR_clear_error();
    return ok;
}

const char *gh_tls_version(gh_transport *t)
{
    tls_conn *c = conn_of(t);
    return c ? SSL_get_version(c->ssl) : NULL;
}

const char *gh_tls_error(gh_transport *t)
{
    tls_conn *c = conn_of(t);
    return c ? c->error : NULL;
}

struct ssl_st *gh_tls_ssl(gh_transport *t)
{
    tls_conn *c = conn_of(t);
    return c ? c->ssl : NULL;
}
