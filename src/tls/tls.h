/* tls.h — TLS with OpenSSL 3: contexts built from the configuration
 * (context.c) and a gh_transport that speaks TLS over a non-blocking socket
 * (transport.c).
 *
 * A gh_tls_server serves one `listen` entry with TLS: one SSL_CTX per
 * certificate, SNI choosing among them (exact name, then *.wildcard, else
 * the first), ALPN ("h2" when the listener has http2, "http/1.1"), optional
 * or required client certificates. A gh_tls_client is the client side for
 * one upstream (verification against the system CAs or `ca`, hostname
 * check, optional client certificate, ALPN).
 *
 * Lifetime: both are reference-counted and thread-safe to share: build them
 * on the main thread, use them from every worker. Each transport made from
 * one holds a reference until it is destroyed, so *_free (which drops the
 * builder's reference) is safe while connections are still open. */
#ifndef GH_TLS_TLS_H
#define GH_TLS_TLS_H
#include <stdbool.h>
#include <stddef.h>
#include "config/config.h"
#include "core/diag.h"
#include "core/transport.h"

typedef struct gh_tls_server gh_tls_server;
typedef struct gh_tls_client gh_tls_client;
struct ssl_st;

/* For l->tls (must be non-NULL). Loads every file; each problem (unreadable
 * file, bad PEM, key not matching its certificate, bad client_ca) is
 * reported to diag at the key that names the file. NULL after any error. */
gh_tls_server *gh_tls_server_new(const gh_config *cfg, const gh_listen_cfg *l, gh_diag *diag);
void gh_tls_server_free(gh_tls_server *s);   /* NULL ok */

/* For u->tls (must be non-NULL); NULL after reporting errors. */
gh_tls_client *gh_tls_client_new(const gh_config *cfg, const gh_upstream_cfg *u, gh_diag *diag);
/* The same for a protocol without ALPN (redis.tls). */
gh_tls_client *gh_tls_client_new_plain(const gh_config *cfg, const gh_tls_upstream_cfg *tls, gh_diag *diag);
void gh_tls_client_free(gh_tls_client *c);   /* NULL ok */
/* Another reference, dropped with gh_tls_client_free (the health checker
 * keeps the client of the configuration it checks). */
void gh_tls_client_ref(gh_tls_client *c);

/* A TLS transport over fd, which must be non-blocking and stay open until
 * the transport is destroyed (t->ops->destroy). NULL when out of memory.
 * Drive gh_transport_handshake() to 0 before reading or writing (reads and
 * writes also advance the handshake, but the codec usually needs ALPN).
 * The fd argument of the ops is not used: the SSL is bound to fd here. */
gh_transport *gh_tls_accept(gh_tls_server *s, int fd);
/* sni_host: the name to send and to check the certificate against when
 * the upstream sets no `sni` (normally the target's host; an IP literal is
 * checked as an address and not sent). NULL: the chain is still verified,
 * no name is. */
gh_transport *gh_tls_connect(gh_tls_client *c, int fd, const char *sni_host);

/* Queries, valid once the handshake is done. Each accepts any transport
 * (plain answers false / NULL). */
bool gh_tls_is(const gh_transport *t);
/* "h2", "http/1.1" (also for a client that asked for http/1.0), or NULL
 * when nothing was negotiated (treat as http/1.1). */
const char *gh_tls_alpn(gh_transport *t);
/* The peer's certificate subject as RFC 4514 ("CN=client1,O=Example"),
 * only when a certificate was presented AND verified; false otherwise or
 * when it does not fit in cap (NUL included). */
bool gh_tls_peer_subject(gh_transport *t, char *out, size_t cap);
const char *gh_tls_version(gh_transport *t);   /* "TLSv1.3", ...; NULL if not TLS */
/* Why the last failing call failed ("certificate verify failed: hostname
 * mismatch", "no shared cipher", ...), for logs; NULL when nothing failed. */
const char *gh_tls_error(gh_transport *t);
/* The OpenSSL object, for diagnostics and tests; NULL if not TLS. */
struct ssl_st *gh_tls_ssl(gh_transport *t);

#endif
