#include "observe/access_log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "http/status.h"

#define FLUSH_AT (48 * 1024)

static atomic_int log_fd = -1;          /* -1 = off */
static char log_target[4096];

static int open_target(const char *t)
{
    if (strcmp(t, "off") == 0)
        return -1;
    if (strcmp(t, "stdout") == 0)
        return 1;
    if (strcmp(t, "stderr") == 0)
        return 2;
    int fd = open(t, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno - 1000 : fd;
}

int gh_access_log_open(const char *target)
{
    int fd = open_target(target);
    if (fd < -1)
        return fd + 1000;
    snprintf(log_target, sizeof(log_target), "%s", target);
    int old = atomic_exchange(&log_fd, fd);
    /* A worker that loaded the old fd just before the swap may see EBADF and
     * drop one batch; reopen is rare (logrotate) and that is acceptable. */
    if (old > 2)
        close(old);
    return 0;
}

int gh_access_log_reopen(void)
{
    if (!log_target[0])
        return 0;
    return gh_access_log_open(log_target);
}

bool gh_access_log_enabled(void)
{
    return atomic_load_explicit(&log_fd, memory_order_relaxed) >= 0;
}

void gh_access_log_init(gh_access_log *al)
{
    al->cap = 64 * 1024;
    al->buf = malloc(al->cap);
    al->len = 0;
}

void gh_access_log_free(gh_access_log *al)
{
    gh_access_log_flush(al);
    free(al->buf);
    al->buf = NULL;
}

static void put_str(gh_access_log *al, const char *key, const char *s, size_t n)
{
    char *p = al->buf + al->len;
    size_t room = al->cap - al->len;
    int k = snprintf(p, room, ",\"%s\":", key);
    if (k < 0 || (size_t)k >= room)
        return;
    al->len += (size_t)k;
    if (!s) {
        if (al->cap - al->len > 4) {
            memcpy(al->buf + al->len, "null", 4);
            al->len += 4;
        }
        return;
    }
    if (al->cap - al->len < 2)
        return;
    al->buf[al->len++] = '"';
    size_t e = gh_json_escape(al->buf + al->len, al->cap - al->len - 1, s, n);
    if (e != (size_t)-1)
        al->len += e;
    al->buf[al->len++] = '"';
}

static void put_gstr(gh_access_log *al, const char *key, gh_str s)
{
    put_str(al, key, s.len ? s.p : NULL, s.len);
}

void gh_access_log_add(gh_access_log *al, const gh_exchange *ex)
{
    if (!al->buf || !gh_access_log_enabled())
        return;
    /* worst case: long path/host escaped 6x; flush first if short of room */
    size_t need = 1024 + (ex->path.len + ex->raw_path.len + ex->host.len + ex->method.len) * 6;
    if (al->cap - al->len < need) {
        gh_access_log_flush(al);
        if (al->cap < need)
            return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    uint64_t dur_us = (uv_hrtime() - ex->start_ns) / 1000;
    int k = snprintf(al->buf + al->len, al->cap - al->len,
                     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"request_id\":\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, ex->request_id);
    al->len += (size_t)k;
    put_str(al, "client", ex->client, strlen(ex->client));
    put_gstr(al, "method", ex->method);
    put_gstr(al, "host", ex->host);
    gh_str path = ex->path.len ? ex->path : ex->raw_path;
    put_gstr(al, "path", path);
    k = snprintf(al->buf + al->len, al->cap - al->len,
                 ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f",
                 ex->status, (unsigned long long)ex->body_received, (unsigned long long)ex->bytes_out,
                 (double)dur_us / 1000.0);
    al->len += (size_t)k;
    put_gstr(al, "route", ex->log.route);
    put_gstr(al, "consumer", ex->log.consumer);
    put_gstr(al, "version", ex->log.version);
    put_gstr(al, "upstream", ex->log.upstream);
    put_gstr(al, "target", ex->log.target);
    if (ex->log.upstream_ms >= 0)
        k = snprintf(al->buf + al->len, al->cap - al->len, ",\"upstream_ms\":%lld", (long long)ex->log.upstream_ms);
    else
        k = snprintf(al->buf + al->len, al->cap - al->len, ",\"upstream_ms\":null");
    al->len += (size_t)k;
    put_gstr(al, "cache", ex->log.cache);
    put_str(al, "error", ex->log.error, ex->log.error ? strlen(ex->log.error) : 0);
    al->buf[al->len++] = '}';
    al->buf[al->len++] = '\n';
    if (al->len >= FLUSH_AT)
        gh_access_log_flush(al);
}

void gh_access_log_flush(gh_access_log *al)
{
    if (!al->len)
        return;
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    size_t off = 0;
    while (fd >= 0 && off < al->len) {
        ssize_t w = write(fd, al->buf + off, al->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    al->len = 0;
}
