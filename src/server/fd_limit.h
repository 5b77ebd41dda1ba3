/* fd_limit.h — the open-files limit (RLIMIT_NOFILE) against what the
 * configuration may make the process hold. A gateway needs a descriptor
 * per client connection, usually one more for its upstream connection,
 * plus idle pooled upstream connections, listeners and a few of its own;
 * the usual soft limit of 1024 is far below that. */
#ifndef GH_SERVER_FD_LIMIT_H
#define GH_SERVER_FD_LIMIT_H
#include <stdint.h>
#include "config/config.h"

/* At start: raise the soft limit to the hard one (logged when raised). */
void gh_fd_limit_raise(void);

/* Descriptors cfg may need with nworkers workers (see above). */
uint64_t gh_fd_limit_need(const gh_config *cfg, int nworkers);

/* Warn, with what to do, when gh_fd_limit_need exceeds the soft limit. */
void gh_fd_limit_check(const gh_config *cfg, int nworkers);

#endif
