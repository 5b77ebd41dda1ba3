/* status_cli.h — `gatehouse status -a ADDR`: the admin API's summary in a
 * terminal (SPEC §1, §9), for operators on a server without a browser. */
#ifndef GH_ADMIN_STATUS_CLI_H
#define GH_ADMIN_STATUS_CLI_H
#include <stdint.h>

/* Reads /api/status, two samples of /api/stats interval_ms apart,
 * /api/upstreams and /api/versions from the admin listener at addr
 * ("host:port", "[v6]:port" or "http://host:port") and prints the summary
 * on stdout. token: the bearer token, or NULL. Exit code: 0, 1 when the
 * API refused the token (401/403, with its reason), 3 when the admin
 * listener cannot be reached or answers nonsense. */
int gh_status_cli(const char *addr, const char *token, uint64_t interval_ms);

#endif
