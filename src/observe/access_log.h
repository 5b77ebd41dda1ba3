/* access_log.h — one JSON object per request (SPEC §9), buffered per worker
 * and written by the worker's tick (every 100 ms) or once 48 KiB are
 * buffered: a few large writes a second instead of one per loop turn. The target (stdout, a file, or off) is process-wide
 * and reopened on SIGUSR1. */
#ifndef GH_OBSERVE_ACCESS_LOG_H
#define GH_OBSERVE_ACCESS_LOG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "http/exchange.h"

typedef struct gh_access_log {
    char *buf;
    size_t len, cap;
    time_t ts_sec;                /* the second ts_text was made for */
    char ts_text[32];             /* "2026-12-07T10:56:37." */
    size_t ts_len;
    int64_t wall_off_ns;          /* CLOCK_REALTIME - uv_hrtime(), */
    uint64_t off_at_ns;           /* as read at this uv_hrtime() (0: never) */
} gh_access_log;

/* Main thread: where access lines go ("stdout", "off" or a path). 0 or -errno. */
int gh_access_log_open(const char *target);
int gh_access_log_reopen(void);
bool gh_access_log_enabled(void);

void gh_access_log_init(gh_access_log *al);
void gh_access_log_free(gh_access_log *al);
/* Not const: a request that reached no upstream gets its trace id here.
 * now_ns: the exchange's end (uv_hrtime()), shared with the metrics. */
void gh_access_log_add(gh_access_log *al, gh_exchange *ex, uint64_t now_ns);
void gh_access_log_flush(gh_access_log *al);

#endif
