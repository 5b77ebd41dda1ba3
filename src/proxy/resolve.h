/* resolve.h — upstream host names re-resolved every `resolve_every` (SPEC §3).
 *
 * Runs on the main thread's loop with uv_getaddrinfo (the lookup itself is
 * on libuv's thread pool: no loop ever blocks on DNS). A target is one name,
 * as its health and passive state are (proxy/upstate.h, keyed by the
 * address as written): it connects to one address of the answer, the one it
 * has while that stays in the answer (warm pools stay warm), else the first.
 * A change is published to the target's state, which every worker reads at
 * its next connect (gh_upcall_addr), and logged once at info. A name that
 * stops resolving keeps its last address (warned once, until it resolves
 * again). IP literals and `localhost` are never looked up. A reload
 * publishes the address the load itself resolved. */
#ifndef GH_PROXY_RESOLVE_H
#define GH_PROXY_RESOLVE_H
#include <netdb.h>
#include <sys/socket.h>
#include <uv.h>
#include "config/config.h"

typedef struct gh_resolver gh_resolver;

gh_resolver *gh_resolver_new(uv_loop_t *loop);
/* Re-resolve what cfg asks for from now on; keeps nothing of cfg. */
void gh_resolver_apply(gh_resolver *r, const gh_config *cfg);
/* Stops every timer and cancels lookups; run the loop afterwards. */
void gh_resolver_free(gh_resolver *r);

/* ---- the rules, also for tests ---- */
/* Does this target's host need lookups (not an IP literal, not localhost)? */
bool gh_resolve_is_name(const char *host);
/* The address to use from an answer: cur if still in it, else the first
 * usable one; NULL when none fits a sockaddr of 32 bytes. */
const struct addrinfo *gh_resolve_choose(const struct addrinfo *list, const struct sockaddr *cur, socklen_t curlen);

#endif
