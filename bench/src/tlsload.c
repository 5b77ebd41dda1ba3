/*
 * tlsload.c - closed-loop TLS connection generator for tls-h2-bench.
 *
 * CONNS slots run concurrently on one thread (epoll, non-blocking). Each slot
 * loops: TCP connect, TLS handshake, one HTTP/1.1 GET over it, read the whole
 * response (Content-Length framed), close (no close_notify), start again.
 *
 *   full    never offers a session: every handshake is a full one (ECDHE +
 *           the server's certificate signature), like a new visitor.
 *   resume  offers the session ticket that the slot's previous connection
 *           received, like a returning client: TLS 1.3 PSK with (EC)DHE
 *           (psk_dhe_ke, what browsers send), or a TLS 1.2 ticket.
 *
 * The server is configured the same way in both modes (tickets on); only the
 * client decides whether to resume. After SECONDS no new connection starts
 * and the ones in flight are finished (up to 2 s more, not counted), so the
 * server never sees connections abandoned mid-request. Prints one line:
 *   connections=N resumed=N errors=N tickets=N seconds=S rate=R/s
 *   drained=N aborted=N version=.. cipher=.. group=.. alpn=..
 *
 * Usage: tlsload HOST PORT CONNS SECONDS full|resume [1.2|1.3] [PATH]
 * HOST is an IPv4 address. Build: cc -O2 -o tlsload tlsload.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { S_CONNECT, S_HANDSHAKE, S_WRITE, S_READ };

typedef struct {
    int fd, state;
    unsigned ev;             /* events registered with epoll */
    SSL *ssl;
    SSL_SESSION *sess;       /* resume: the newest ticket this slot received */
    size_t len;              /* response bytes in buf */
    char buf[8192];
} slot;

static SSL_CTX *ctx;
static int ep, resume, slot_idx;
static struct sockaddr_in addr;
static char req[512];
static size_t reqlen;
static long n_done, n_reused, n_err, n_tickets;
static int stopping, active;   /* after the measured time: no new connections */
static char info[256];
static int errors_shown;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    slot *s = SSL_get_ex_data(ssl, slot_idx);
    n_tickets++;
    if (!resume || !s)
        return 0;            /* not kept: OpenSSL frees it */
    if (s->sess)
        SSL_SESSION_free(s->sess);
    s->sess = sess;          /* we own this reference now */
    return 1;
}

static void start(slot *s);

static void fail(slot *s, const char *what)
{
    n_err++;
    if (errors_shown < 5) {
        char e[256] = "";
        unsigned long code = ERR_peek_last_error();
        if (code)
            ERR_error_string_n(code, e, sizeof(e));
        fprintf(stderr, "tlsload: %s%s%s (errno %d)\n", what, e[0] ? ": " : "", e, errno);
        errors_shown++;
    }
    ERR_clear_error();
    if (s->ssl)
        SSL_free(s->ssl);
    s->ssl = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (s->sess) {           /* a ticket that did not work is not offered again */
        SSL_SESSION_free(s->sess);
        s->sess = NULL;
    }
    start(s);
}

static void want(slot *s, unsigned ev)
{
    if (s->ev == ev)
        return;
    struct epoll_event e = { .events = ev, .data.ptr = s };
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
    s->ev = ev;
}

static void start(slot *s)
{
    s->len = 0;
    if (stopping) {
        s->fd = -1;
        active--;
        return;
    }
    for (int tries = 0;; tries++) {
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
            perror("tlsload: socket");
            exit(1);
        }
        int one = 1;
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(s->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 || errno == EINPROGRESS)
            break;
        n_err++;
        if (errors_shown++ < 5 || tries == 100)
            perror("tlsload: connect");
        close(s->fd);
        if (tries == 100)
            exit(1);
        usleep(1000);        /* do not spin on a refused port */
    }
    s->state = S_CONNECT;
    s->ev = EPOLLOUT;
    struct epoll_event e = { .events = EPOLLOUT, .data.ptr = s };
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e);
}

/* The response is complete when the head and Content-Length bytes are in. */
static int response_done(slot *s, int *bad)
{
    char *end = memmem(s->buf, s->len, "\r\n\r\n", 4);
    *bad = 0;
    if (!end)
        return 0;
    if (s->len < 12 || memcmp(s->buf + 9, "200", 3) != 0) {
        *bad = 1;
        return 0;
    }
    size_t head = (size_t)(end - s->buf) + 4, clen = 0;
    int found = 0;
    for (char *p = s->buf; p < end; p++) {
        if (*p == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0) {
            clen = strtoul(p + 16, NULL, 10);
            found = 1;
            break;
        }
    }
    if (!found) {
        *bad = 2;
        return 0;
    }
    return s->len >= head + clen;
}

static void sample_info(SSL *ssl)
{
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    int nid = SSL_get_negotiated_group(ssl);
    snprintf(info, sizeof(info), "version=%s cipher=%s group=%s alpn=%.*s", SSL_get_version(ssl),
             SSL_get_cipher_name(ssl), nid > 0 ? OBJ_nid2sn(nid) : "none", alen ? (int)alen : 4,
             alen ? (const char *)alpn : "none");
}

static void step(slot *s)
{
    int r, e;
    for (;;) {
        switch (s->state) {
        case S_CONNECT: {
            int err = 0;
            socklen_t l = sizeof(err);
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err) {
                errno = err;
                fail(s, "connect");
                return;
            }
            s->ssl = SSL_new(ctx);
            SSL_set_fd(s->ssl, s->fd);
            SSL_set_ex_data(s->ssl, slot_idx, s);
            SSL_set_tlsext_host_name(s->ssl, "localhost");
            if (resume && s->sess)
                SSL_set_session(s->ssl, s->sess);
            s->state = S_HANDSHAKE;
            break;
        }
        case S_HANDSHAKE:
            r = SSL_connect(s->ssl);
            if (r == 1) {
                s->state = S_WRITE;
                break;
            }
            e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                want(s, EPOLLIN);
            else if (e == SSL_ERROR_WANT_WRITE)
                want(s, EPOLLOUT);
            else
                fail(s, "handshake");
            return;
        case S_WRITE:
            r = SSL_write(s->ssl, req, (int)reqlen);
            if (r > 0) {
                s->state = S_READ;
                break;
            }
            e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                want(s, EPOLLIN);
            else if (e == SSL_ERROR_WANT_WRITE)
                want(s, EPOLLOUT);
            else
                fail(s, "write");
            return;
        case S_READ:
            r = SSL_read(s->ssl, s->buf + s->len, (int)(sizeof(s->buf) - s->len));
            if (r > 0) {
                int bad;
                s->len += (size_t)r;
                if (response_done(s, &bad)) {
                    if (SSL_session_reused(s->ssl))
                        n_reused++;
                    if (!info[0])
                        sample_info(s->ssl);
                    n_done++;
                    /* no close_notify: the server sees EOF. Marked as shut
                     * down all the same, or SSL_free would make the
                     * session (our ticket) not resumable. */
                    SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
                    SSL_free(s->ssl);
                    s->ssl = NULL;
                    close(s->fd);       /* also removes it from the epoll set */
                    start(s);
                    return;
                }
                if (bad || s->len == sizeof(s->buf)) {
                    fail(s, bad == 2 ? "response without Content-Length" : "response not 200 or too large");
                    return;
                }
                break;
            }
            e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                want(s, EPOLLIN);
            else if (e == SSL_ERROR_WANT_WRITE)
                want(s, EPOLLOUT);
            else
                fail(s, "read (closed before the response was complete)");
            return;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 6 || (strcmp(argv[5], "full") && strcmp(argv[5], "resume"))) {
        fprintf(stderr, "usage: tlsload HOST PORT CONNS SECONDS full|resume [1.2|1.3] [PATH]\n");
        return 2;
    }
    int conns = atoi(argv[3]);
    double secs = atof(argv[4]);
    resume = strcmp(argv[5], "resume") == 0;
    const char *ver = argc > 6 ? argv[6] : "1.3";
    const char *path = argc > 7 ? argv[7] : "/";
    if (conns < 1 || secs <= 0) {
        fprintf(stderr, "tlsload: CONNS and SECONDS must be positive\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "tlsload: bad IPv4 address %s\n", argv[1]);
        return 2;
    }
    reqlen = (size_t)snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tlsload\r\n\r\n", path);

    ctx = SSL_CTX_new(TLS_client_method());
    /* one suite and one group for every server: the same crypto work */
    if (strcmp(ver, "1.2") == 0) {
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256");
    } else {
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
        SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
    }
    /* X25519 for the key exchange (the one key share sent); P-256 listed
     * too, or a TLS 1.2 server may not use its P-256 ECDSA certificate */
    SSL_CTX_set1_groups_list(ctx, "X25519:P-256");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);   /* self-signed; the signature is still checked */
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    slot_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);

    ep = epoll_create1(EPOLL_CLOEXEC);
    slot *slots = calloc((size_t)conns, sizeof(slot));
    if (!slots || ep < 0) {
        perror("tlsload");
        return 1;
    }
    double t0 = now(), end = t0 + secs;
    active = conns;
    for (int i = 0; i < conns; i++) {
        slots[i].fd = -1;
        start(&slots[i]);
    }
    struct epoll_event evs[256];
    double t;
    while ((t = now()) < end) {
        int ms = (int)((end - t) * 1000) + 1;
        int n = epoll_wait(ep, evs, 256, ms < 100 ? ms : 100);
        for (int i = 0; i < n; i++)
            step(evs[i].data.ptr);
        if (n_err > 1000 && n_err > 10 * n_done) {
            fprintf(stderr, "tlsload: too many errors (%ld, %ld connections done)\n", n_err, n_done);
            return 1;
        }
    }
    double el = t - t0;
    long done = n_done, reused = n_reused, errs = n_err, tickets = n_tickets;
    /* drain: finish what is in flight, start nothing new */
    stopping = 1;
    double drain_end = t + 2;
    while (active > 0 && (t = now()) < drain_end) {
        int n = epoll_wait(ep, evs, 256, 50);
        for (int i = 0; i < n; i++)
            step(evs[i].data.ptr);
    }
    printf("connections=%ld resumed=%ld errors=%ld tickets=%ld seconds=%.3f rate=%.1f drained=%ld aborted=%d %s\n",
           done, reused, errs, tickets, el, done / el, n_done - done, active, info[0] ? info : "version=none");
    return done > 0 ? 0 : 1;
}
