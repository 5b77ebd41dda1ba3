/* client_addr.h — who the client is (SPEC §2 trusted_proxies): the TCP peer,
 * or, when the peer is a trusted proxy, the right-most X-Forwarded-For
 * address that is not itself a trusted proxy (nginx's realip, recursive). */
#ifndef GH_SERVER_CLIENT_ADDR_H
#define GH_SERVER_CLIENT_ADDR_H
#include "config/config.h"
#include "http/exchange.h"

void gh_resolve_client(gh_exchange *ex, const gh_config *cfg);

#endif
