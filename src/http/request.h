/* request.h — shared by the HTTP/1.1 and HTTP/2 codecs. */
#ifndef GH_HTTP_REQUEST_H
#define GH_HTTP_REQUEST_H
#include <sys/socket.h>
#include "http/exchange.h"

uint32_t gh_method_bit(const char *m, size_t n);          /* GH_M_*, GH_M_OTHER */
gh_str gh_host_of(gh_arena *ar, const char *h, size_t n); /* lower-case, no port, in ar */
/* ex->peer, ex->client and ex->client_port from the socket's peer
 * (v4-mapped IPv6 reads as IPv4). */
void gh_set_peer(gh_exchange *ex, const struct sockaddr *sa);
/* ex->target into ex->raw_path and ex->query; absolute-form sets the authority. */
void gh_split_target(gh_exchange *ex);

#endif
