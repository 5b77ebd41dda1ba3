/* request.h — reading a request: shared by the codecs (method, host,
 * target, peer) and by what looks into a request (query parameters,
 * cookies). */
#ifndef GH_HTTP_REQUEST_H
#define GH_HTTP_REQUEST_H
#include <sys/socket.h>
#include "core/method.h"   /* gh_method_bit: GH_M_*, GH_M_OTHER */
#include "http/exchange.h"

gh_str gh_host_of(gh_arena *ar, const char *h, size_t n); /* lower-case, no port, in ar */
/* ex->peer, ex->client and ex->client_port from the socket's peer
 * (v4-mapped IPv6 reads as IPv4). */
void gh_set_peer(gh_exchange *ex, const struct sockaddr *sa);
/* ex->target into ex->raw_path and ex->query; absolute-form sets the authority. */
void gh_split_target(gh_exchange *ex);

/* Query parameter `name` (compared as written): its raw value, and the
 * span of the whole "name=value" item (to cut it out). false if absent. */
bool gh_query_param(gh_str query, gh_str name, gh_str *value, gh_str *item);
/* %XX and '+' decoded into out (at least in.len bytes); returns the length. */
size_t gh_query_decode(gh_str in, char *out);
/* Cookie `name` among the request's Cookie headers. false if absent. */
bool gh_cookie(const gh_exchange *ex, gh_str name, gh_str *value);

#endif
