/* hop.h — hop-by-hop header fields (RFC 9110 §7.6.1): what a proxy never
 * passes on as received, in either direction. One definition for the
 * request intake (server/intake.c) and the response filter (proxy/headers.c). */
#ifndef GH_HTTP_HOP_H
#define GH_HTTP_HOP_H
#include <stdbool.h>
#include <stddef.h>
#include "core/str.h"
#include "http/h1_parse.h"

enum gh_hop {
    GH_HOP_NO = 0,
    GH_HOP_YES,          /* Keep-Alive, Trailer, Proxy-*, HTTP2-Settings, and framing
                            (Content-Length, Transfer-Encoding: the codec re-frames) */
    GH_HOP_CONNECTION,   /* Connection: its tokens name more hop-by-hop fields */
    GH_HOP_TE,
    GH_HOP_UPGRADE,
};

/* enum gh_hop of a field name (any case). */
int gh_hop_kind(const char *name, size_t len);

/* Remove from h[0..n) every field named by a token of the Connection
 * values conn[0..nconn), however many tokens there are. Returns the new n.
 * Cost: tokens x fields of a length some token has, bounded by the head. */
size_t gh_hop_strip_named(gh_header *h, size_t n, const gh_str *conn, size_t nconn);

/* TE lists "trailers" (parameters and other codings ignored). */
bool gh_hop_te_trailers(const char *v, size_t n);

/* Upgrade asks for WebSocket alone: the only protocol switch the gateway
 * tunnels (h2c or anything else would carry requests past every plugin). */
bool gh_hop_upgrade_websocket(const char *v, size_t n);

#endif
