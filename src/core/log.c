#include "core/log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int gh_log_level = GH_LOG_INFO;
static atomic_int log_fd = 2;
static char log_path[4096];

int gh_log_level_parse(const char *s)
{
    static const char *names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int open_target(const char *target)
{
    if (strcmp(target, "stderr") == 0)
        return 2;
    if (strcmp(target, "stdout") == 0)
        return 1;
    int fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

int gh_log_open(const char *target)
{
    int fd = open_target(target);
    if (fd < 0)
        return fd;
    snprintf(log_path, sizeof(log_path), "%s", target);
    int old = atomic_exchange(&log_fd, fd);
    if (old > 2)
        close(old);
    return 0;
}

int gh_log_reopen(void)
{
    if (!log_path[0] || strcmp(log_path, "stderr") == 0 || strcmp(log_path, "stdout") == 0)
        return 0;
    return gh_log_open(log_path);
}

void gh_log(int level, const char *fmt, ...)
{
    static const char *names[] = { "error", "warn", "info", "debug" };
    if (level > gh_log_level)
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level & 3]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof(line) - (size_t)n - 1 ? (size_t)m : sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    ssize_t w = write(atomic_load(&log_fd), line, len);
    (void)w;
}

bool gh_log_limit_pass(gh_log_limit *l, uint64_t now_ms, uint64_t every_ms, unsigned long *suppressed)
{
    if (l->next_ms && now_ms < l->next_ms) {
        l->suppressed++;
        return false;
    }
    *suppressed = l->suppressed;
    l->suppressed = 0;
    l->next_ms = now_ms + every_ms;
    if (!l->next_ms)   /* 0 means "never logged" */
        l->next_ms = 1;
    return true;
}
