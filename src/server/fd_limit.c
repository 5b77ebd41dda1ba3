/* fd_limit.c — see fd_limit.h. */
#include "server/fd_limit.h"
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include "core/log.h"

/* stdio, log files, each loop's epoll and wakeup descriptors, the main
 * loop's signal pipe, health checks, configuration files being read */
#define FD_RESERVE_BASE 32
#define FD_RESERVE_PER_WORKER 8

void gh_fd_limit_raise(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0 || r.rlim_cur >= r.rlim_max)
        return;
    rlim_t was = r.rlim_cur;
    r.rlim_cur = r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &r) < 0) {
        gh_log_warn("cannot raise the open-files limit from %llu to %llu: %s", (unsigned long long)was,
                    (unsigned long long)r.rlim_max, strerror(errno));
        return;
    }
    gh_log_info("open-files limit raised from %llu to %llu (the hard limit)", (unsigned long long)was,
                (unsigned long long)r.rlim_max);
}

static uint64_t fixed_need(const gh_config *cfg, int nworkers)
{
    uint64_t n = FD_RESERVE_BASE + (uint64_t)nworkers * FD_RESERVE_PER_WORKER;
    n += (uint64_t)cfg->nlistens * (uint64_t)nworkers;   /* one socket per address per worker */
    return n;
}

/* Idle pooled connections, at most `keepalive` per target per worker, and
 * never more than there were clients to open them. */
static uint64_t pool_need(const gh_config *cfg, int nworkers)
{
    uint64_t n = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        n += (uint64_t)cfg->upstreams[i].keepalive * cfg->upstreams[i].ntargets * (uint64_t)nworkers;
    return n < cfg->limits.max_connections ? n : cfg->limits.max_connections;
}

uint64_t gh_fd_limit_need(const gh_config *cfg, int nworkers)
{
    /* each client connection, and the upstream connection its request holds */
    return 2 * cfg->limits.max_connections + pool_need(cfg, nworkers) + fixed_need(cfg, nworkers);
}

void gh_fd_limit_check(const gh_config *cfg, int nworkers)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0 || r.rlim_cur == RLIM_INFINITY)
        return;
    uint64_t need = gh_fd_limit_need(cfg, nworkers);
    if (need <= r.rlim_cur)
        return;
    uint64_t other = pool_need(cfg, nworkers) + fixed_need(cfg, nworkers);
    uint64_t fits = r.rlim_cur > other + 2 ? (r.rlim_cur - other) / 2 : 1;
    gh_log_warn("limits.max_connections (%llu) does not fit under the open-files limit (%llu): its client "
                "connections, their upstream connections, pooled and listening sockets need about %llu "
                "descriptors; raise the limit (ulimit -n, LimitNOFILE= in systemd) or set "
                "limits.max_connections to at most %llu",
                (unsigned long long)cfg->limits.max_connections, (unsigned long long)r.rlim_cur,
                (unsigned long long)need, (unsigned long long)fits);
}
