/* admin.h — the admin API (SPEC §9): the handler of the admin listener.
 * It runs on the worker loops like the dispatcher, but serves only its own
 * paths; the public routes are never reachable through it (nor it through
 * them: a listener has exactly one handler). */
#ifndef GH_ADMIN_ADMIN_H
#define GH_ADMIN_ADMIN_H
#include <stdbool.h>
#include <stdint.h>
#include "http/exchange.h"

void gh_admin_handle(gh_exchange *ex);

/* Set by the server at start (uptime, started_at). */
extern int64_t gh_admin_started_at;

/* POST /api/reload runs the server's reload on the main thread. The server
 * registers `request` (called on a worker thread; must hand r to the main
 * loop), and answers each request with gh_admin_reload_done (main thread). */
typedef struct gh_admin_reload gh_admin_reload;
void gh_admin_set_reloader(void (*request)(gh_admin_reload *r));
/* errors: the refused file's messages (FILE:LINE:COL: ...), n of them. */
void gh_admin_reload_done(gh_admin_reload *r, bool ok, uint64_t generation, const char *const *errors, size_t n);

#endif
