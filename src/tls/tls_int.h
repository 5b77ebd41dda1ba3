/* tls_int.h — what context.c and transport.c share: the two context
 * objects and their reference counts. Not for use outside src/tls/. */
#ifndef GH_TLS_TLS_INT_H
#define GH_TLS_TLS_INT_H
#include <openssl/ssl.h>
#include <stdatomic.h>
#include "tls/tls.h"

/* A name a server certificate answers to, lower-case, no trailing dot. */
typedef struct gh_tls_name {
    char *name;          /* "api.example.com", or "*.example.com" (wildcard) */
    size_t ctx;          /* index into gh_tls_server.ctx */
} gh_tls_name;

struct gh_tls_server {
    atomic_int refs;     /* the builder's + one per transport */
    bool http2;          /* offer "h2" in ALPN */
    SSL_CTX **ctx;       /* one per certificate; ctx[0] (the default) starts every SSL */
    size_t nctx;
    gh_tls_name *names;  /* in configuration order */
    size_t nnames;
};

struct gh_tls_client {
    atomic_int refs;
    SSL_CTX *ctx;
    bool verify;
    char *sni;           /* the upstream's `sni`, or NULL: the target's host */
};

void gh_tls_server_ref(gh_tls_server *s);

/* sniff.c: what the first byte of an accepted connection says, peeked
 * (left for OpenSSL). GH_SNIFF_PLAIN_HTTP: plain HTTP was sent to the TLS
 * port and has been answered 400 in clear text; close the connection. */
enum { GH_SNIFF_TLS, GH_SNIFF_AGAIN, GH_SNIFF_PLAIN_HTTP };
int gh_tls_sniff(int fd);

#endif
