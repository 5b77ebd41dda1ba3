/* listeners.h — listening sockets, made by the main thread, used by workers.
 *
 * Each worker gets its own SO_REUSEPORT socket per address (the kernel
 * spreads connections across them). The main thread binds them, so a port
 * that cannot be bound is reported before anything is published; a worker
 * that receives a socket owns it from then on and closes it when the
 * address goes away (reload) or on drain. libuv 1.44 has no
 * UV_TCP_REUSEPORT, hence plain sockets.
 *
 * SO_REUSEPORT would also let a second gatehouse (same user) share a port
 * and silently take half its connections: an address this process does not
 * hold yet is first probed with a socket bound without SO_REUSEPORT, which
 * fails if anyone listens there. The probe is closed before the group is
 * bound, so two processes starting within that microsecond window can both
 * pass it; nothing short of holding the probe (which SO_REUSEPORT forbids)
 * closes that window. */
#ifndef GH_SERVER_LISTENERS_H
#define GH_SERVER_LISTENERS_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config/config.h"

typedef struct gh_listen_item {
    struct sockaddr_storage sa;
    socklen_t salen;
    char address[64];             /* as configured, for messages */
    bool http2, path_strict;
    bool admin;                   /* served by the admin API, not the dispatcher */
    struct gh_tls_server *tls;    /* the snapshot's; NULL = plaintext */
    int *fds;                     /* [nworkers]; -1 = the worker keeps its socket */
} gh_listen_item;

struct gh_listen_set {
    gh_listen_item *items;
    size_t n;
    int nworkers;
};
typedef struct gh_listen_set gh_listen_set;

/* Sockets for cfg's listen addresses. Addresses in `current` (the set in
 * service, may be NULL) get fds = -1 (workers keep theirs); new ones are
 * bound now. NULL + message in err on failure (nothing left open):
 * "cannot listen on ADDRESS: address already in use by another process". */
gh_listen_set *gh_listen_set_make(const gh_config *cfg, struct gh_tls_server *const *tls,
                                  const gh_listen_set *current, int nworkers, char *err, size_t errlen);
void gh_listen_set_free(gh_listen_set *s);   /* closes fds never handed over */
bool gh_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b);
uint16_t gh_sockaddr_port(const struct sockaddr *a);   /* host order; IPv4 or IPv6 */

#endif
