/* log.h — the error log: leveled lines with context, to stderr or a file.
 * Lines are written with one write(2) so workers never interleave. */
#ifndef GH_CORE_LOG_H
#define GH_CORE_LOG_H
#include <stdbool.h>
#include <stdint.h>

enum gh_log_level { GH_LOG_ERROR = 0, GH_LOG_WARN = 1, GH_LOG_INFO = 2, GH_LOG_DEBUG = 3 };

extern int gh_log_level;   /* messages above this level are skipped */

int gh_log_level_parse(const char *s);   /* -1 if unknown */
int gh_log_open(const char *target);     /* "stderr", "stdout" or a path; 0 or -errno */
int gh_log_reopen(void);                 /* SIGUSR1 */
void gh_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For a line that can repeat in a storm (accept failing for lack of file
 * descriptors): at most one per `every_ms`, the others counted. One per
 * thread (no locking). True: log now; *suppressed is how many were skipped
 * since the previous one. */
typedef struct gh_log_limit {
    uint64_t next_ms;             /* no line before this time */
    unsigned long suppressed;
} gh_log_limit;
bool gh_log_limit_pass(gh_log_limit *l, uint64_t now_ms, uint64_t every_ms, unsigned long *suppressed);

#define gh_log_error(...) gh_log(GH_LOG_ERROR, __VA_ARGS__)
#define gh_log_warn(...)  do { if (gh_log_level >= GH_LOG_WARN) gh_log(GH_LOG_WARN, __VA_ARGS__); } while (0)
#define gh_log_info(...)  do { if (gh_log_level >= GH_LOG_INFO) gh_log(GH_LOG_INFO, __VA_ARGS__); } while (0)
#define gh_log_debug(...) do { if (gh_log_level >= GH_LOG_DEBUG) gh_log(GH_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
