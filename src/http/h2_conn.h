/* h2_conn.h — the HTTP/2 server side of a client connection (nghttp2).
 * Each stream becomes a gh_exchange, so routing, targets and the proxy are
 * the same code as for HTTP/1.1. Reached by ALPN "h2" after a TLS handshake
 * or by the prior-knowledge preface on a plaintext listener with http2. */
#ifndef GH_HTTP_H2_CONN_H
#define GH_HTTP_H2_CONN_H
#include <sys/socket.h>
#include <uv.h>
#include "core/transport.h"
#include "http/exchange.h"
#include "http/h1_conn.h"

/* Take over a connection (fd and transport). `pre`: bytes already read
 * from the transport (the client preface, or more), fed first. 0 or -errno
 * (then fd and transport are released). */
int gh_h2_conn_start(uv_loop_t *loop, gh_http_env *env, int fd, const struct sockaddr *peer,
                     const gh_h1_listen_info *info, gh_transport *tp, const char *pre, size_t prelen);

/* Drain: GOAWAY to every HTTP/2 connection of this worker; each closes when
 * its last stream is done. */
void gh_h2_drain(gh_http_env *env);

/* The connection preface a prior-knowledge client starts with. */
#define GH_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define GH_H2_PREFACE_LEN 24

#endif
