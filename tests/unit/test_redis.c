/* test_redis.c — the worker's Redis client (cluster/redis.h) against real
 * redis-server processes: commands, pipelining, timeouts (SIGSTOP),
 * reconnecting, ACL AUTH, the limiter scripts, and a three-master Redis
 * Cluster with ASK and MOVED followed. Servers run on ports claimed like
 * the end-to-end fixtures claim theirs, and are killed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include "cluster/redis_int.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define REDIS_CLI "/usr/bin/redis-cli"

static uv_loop_t loop;
static char tmpdir[64];

/* ---------------------------------------------------------------- ports -- */
/* The e2e fixtures' scheme (tests/e2e/conftest.py): blocks of 64 ports below
 * the ephemeral range, each claimed with a lock file for our lifetime. */
static int ports[64], nports;

static bool bindable(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int free_port(void)
{
    while (nports == 0) {
        int low = 32768;
        FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
        if (f) {
            if (fscanf(f, "%d", &low) != 1)
                low = 32768;
            fclose(f);
        }
        int nblocks = (low - 10000) / 64;
        mkdir("/tmp/gatehouse-e2e-ports", 0777);
        srand((unsigned)(getpid() ^ time(NULL)));
        for (int tries = 0, b = rand() % nblocks; tries < nblocks; tries++, b = (b + 1) % nblocks) {
            char path[96];
            snprintf(path, sizeof(path), "/tmp/gatehouse-e2e-ports/block-%d", b);
            int fd = open(path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0666);
            if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
                if (fd >= 0)
                    close(fd);
                continue;
            }
            for (int i = 63; i >= 0; i--)   /* the fd stays open: the claim lasts */
                ports[nports++] = 10000 + b * 64 + i;
            break;
        }
    }
    int p = ports[--nports];
    return bindable(p) ? p : free_port();
}

/* ------------------------------------------------------------ processes -- */
static pid_t pids[16];
static int npids;

static void kill_all(void)
{
    for (int i = 0; i < npids; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGCONT);
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
    }
    npids = 0;
}

static void stop(pid_t pid)
{
    for (int i = 0; i < npids; i++) {
        if (pids[i] == pid) {
            kill(pid, SIGCONT);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            pids[i] = 0;
        }
    }
}

static redisContext *dial(int port)
{
    struct timeval tv = { 1, 0 };
    redisContext *r = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (r && r->err) {
        redisFree(r);
        return NULL;
    }
    return r;
}

/* Blocking command to a server (the test's own view of it). */
static redisReply *cmd(int port, const char *fmt, ...)
{
    redisContext *r = dial(port);
    if (!r)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r, fmt, ap);
    va_end(ap);
    redisFree(r);
    return rep;
}

static void pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Wait for a condition on the server: it answers PING (10 s at most). */
static bool wait_ping(int port, const char *user, const char *pass)
{
    for (int i = 0; i < 1000; i++) {
        redisContext *r = dial(port);
        if (r) {
            redisReply *rep = user ? redisCommand(r, "AUTH %s %s", user, pass) : NULL;
            freeReplyObject(rep);
            rep = redisCommand(r, "PING");
            bool ok = rep && rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
            redisFree(r);
            if (ok)
                return true;
        }
        pause_ms(10);
    }
    return false;
}

static pid_t spawn(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    pids[npids++] = pid;
    return pid;
}

/* redis-server on port; extra: more "--key value" arguments, NULL-ended. */
static pid_t start_redis(int port, ...)
{
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    char *argv[40] = { REDIS_SERVER, "--port", portbuf, "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", tmpdir };
    int n = 11;
    va_list ap;
    va_start(ap, port);
    for (char *a; (a = va_arg(ap, char *)) != NULL && n < 39;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return spawn(argv);
}

/* --------------------------------------------------------------- loop ---- */
static void on_tick(uv_timer_t *t) { (void)t; }

/* Run the loop until *flag (or ms pass). */
static bool run_until(const bool *flag, int ms)
{
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uint64_t end = uv_now(&loop) + (uint64_t)ms;
    while (!*flag && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *flag;
}

static void settle(gh_redis *c)
{
    gh_redis_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);   /* handles closed, memory freed */
}

typedef struct call {
    bool done;
    int status;
    long long integer;
    char str[64];
    int type;
} call;

static void on_cmd(void *ctx, int status, const redisReply *r)
{
    call *k = ctx;
    k->done = true;
    k->status = status;
    if (r) {
        k->type = r->type;
        k->integer = r->integer;
        if (r->str)
            snprintf(k->str, sizeof(k->str), "%.*s", (int)r->len, r->str);
    }
}

static int send_cmd(gh_redis *c, call *k, int key_index, const char *a0, const char *a1, const char *a2)
{
    const char *argv[3] = { a0, a1, a2 };
    size_t len[3] = { strlen(a0), a1 ? strlen(a1) : 0, a2 ? strlen(a2) : 0 };
    int argc = a2 ? 3 : a1 ? 2 : 1;
    gh_redis_handle h;
    memset(k, 0, sizeof(*k));
    int st = gh_redis_command(c, argc, argv, len, key_index, on_cmd, k, &h);
    if (st != GH_REDIS_OK) {
        k->done = true;
        k->status = st;
    }
    return st;
}

/* One command, waited for; retried while the client (re)connects. */
static call sync_cmd(gh_redis *c, int key_index, const char *a0, const char *a1, const char *a2)
{
    call k;
    for (int i = 0; i < 500; i++) {
        send_cmd(c, &k, key_index, a0, a1, a2);
        run_until(&k.done, 2000);
        if (k.status != GH_REDIS_UNAVAILABLE && k.status != GH_REDIS_TIMEOUT)
            break;
        bool never = false;
        run_until(&never, 20);   /* let a reconnect happen */
    }
    return k;
}

static gh_redis_cfg one_server(int port, gh_redis_addr_cfg *addr)
{
    *addr = (gh_redis_addr_cfg){ .host = GH_STR("127.0.0.1"), .port = (uint16_t)port };
    return (gh_redis_cfg){ .nodes = addr, .nnodes = 1, .timeout_ms = 200 };
}

static bool have_redis(void)
{
    if (access(REDIS_SERVER, X_OK) == 0)
        return true;
    fprintf(stderr, "SKIPPED: %s is not installed (scripts/install-deps.sh test installs redis-server)\n",
            REDIS_SERVER);
    return false;
}

/* ------------------------------------------------------------- tests ----- */

static void test_key_slot(void **st)
{
    (void)st;
    /* values from the Redis Cluster specification and CLUSTER KEYSLOT */
    assert_int_equal(gh_redis_key_slot("123456789", 9), 0x31C3 & 16383);
    assert_int_equal(gh_redis_key_slot("foo", 3), 12182);
    assert_int_equal(gh_redis_key_slot("{user1000}.following", 20), gh_redis_key_slot("user1000", 8));
    assert_int_not_equal(gh_redis_key_slot("foo{}{bar}", 10), gh_redis_key_slot("bar", 3));   /* empty tag: all */
    assert_int_equal(gh_redis_key_slot("foo{{bar}}zap", 13), gh_redis_key_slot("{bar", 4));
}

static void test_commands_and_pipelining(void **st)
{
    (void)st;
    if (!have_redis())
        skip();
    int port = free_port();
    start_redis(port, NULL);
    assert_true(wait_ping(port, NULL, NULL));
    gh_redis_addr_cfg a;
    gh_redis_cfg cfg = one_server(port, &a);
    gh_redis *c = gh_redis_new(&loop, &cfg, NULL);
    call k = sync_cmd(c, 1, "SET", "greeting", "hello");
    assert_int_equal(k.status, GH_REDIS_OK);
    k = sync_cmd(c, 1, "GET", "greeting", NULL);
    assert_int_equal(k.status, GH_REDIS_OK);
    assert_string_equal(k.str, "hello");
    k = sync_cmd(c, 0, "NOSUCHCOMMAND", NULL, NULL);
    assert_int_equal(k.status, GH_REDIS_ERROR);

    /* 2000 calls in flight at once share the one connection, answered in order */
    enum { N = 2000 };
    static call calls[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(send_cmd(c, &calls[i], 1, "INCR", "counter", NULL), GH_REDIS_OK);
    bool never = false;
    for (int i = 0; i < N; i++)
        run_until(&calls[i].done, 5000);
    (void)never;
    for (int i = 0; i < N; i++) {
        assert_int_equal(calls[i].status, GH_REDIS_OK);
        assert_int_equal(calls[i].integer, i + 1);
    }
    redisReply *r = cmd(port, "INFO clients");
    assert_non_null(r);
    assert_non_null(strstr(r->str, "connected_clients:2"));   /* ours and this one */
    freeReplyObject(r);
    settle(c);
    kill_all();
}

static void test_timeout_cancel_and_stall(void **st)
{
    (void)st;
    if (!have_redis())
        skip();
    int port = free_port();
    pid_t pid = start_redis(port, NULL);
    assert_true(wait_ping(port, NULL, NULL));
    gh_redis_addr_cfg a;
    gh_redis_cfg cfg = one_server(port, &a);
    cfg.timeout_ms = 50;
    gh_redis *c = gh_redis_new(&loop, &cfg, NULL);
    assert_int_equal(sync_cmd(c, -1, "PING", NULL, NULL).status, GH_REDIS_OK);

    kill(pid, SIGSTOP);
    call k, cancelled;
    uint64_t t0 = uv_hrtime();
    assert_int_equal(send_cmd(c, &k, -1, "PING", NULL, NULL), GH_REDIS_OK);
    gh_redis_handle h;
    memset(&cancelled, 0, sizeof(cancelled));
    const char *argv[1] = { "PING" };
    size_t len[1] = { 4 };
    assert_int_equal(gh_redis_command(c, 1, argv, len, -1, on_cmd, &cancelled, &h), GH_REDIS_OK);
    gh_redis_cancel(h);                /* the client left: its callback must never run */
    assert_true(run_until(&k.done, 2000));
    uint64_t took_ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(k.status, GH_REDIS_TIMEOUT);
    assert_true(took_ms >= 45 && took_ms < 1000);
    gh_redis_cancel(h);                /* again, after the fact: harmless */
    /* still stopped: no reply for long (20 x timeout, 1 s at least), so the
     * connection is dropped rather than left to pile up requests */
    bool dropped = false;
    for (int i = 0; i < 300 && !dropped; i++) {
        bool never = false;
        run_until(&never, 10);
        dropped = c->nodes[0]->ac == NULL;
    }
    assert_true(dropped);

    kill(pid, SIGCONT);
    k = sync_cmd(c, -1, "PING", NULL, NULL);
    assert_int_equal(k.status, GH_REDIS_OK);
    assert_false(cancelled.done);
    settle(c);
    assert_false(cancelled.done);
    kill_all();
}

static void test_reconnect_after_restart(void **st)
{
    (void)st;
    if (!have_redis())
        skip();
    int port = free_port();
    pid_t pid = start_redis(port, NULL);
    assert_true(wait_ping(port, NULL, NULL));
    gh_redis_addr_cfg a;
    gh_redis_cfg cfg = one_server(port, &a);
    gh_redis *c = gh_redis_new(&loop, &cfg, NULL);
    assert_int_equal(sync_cmd(c, -1, "PING", NULL, NULL).status, GH_REDIS_OK);
    assert_true(gh_redis_ready(c));

    stop(pid);
    /* the loss is noticed; calls are answered at once, not after timeouts */
    call k;
    for (int i = 0; i < 200 && send_cmd(c, &k, -1, "PING", NULL, NULL) == GH_REDIS_OK; i++) {
        run_until(&k.done, 1000);
        if (k.status != GH_REDIS_OK)
            break;
    }
    assert_int_not_equal(k.status, GH_REDIS_OK);
    assert_int_equal(send_cmd(c, &k, -1, "PING", NULL, NULL), GH_REDIS_UNAVAILABLE);

    start_redis(port, NULL);
    assert_true(wait_ping(port, NULL, NULL));
    k = sync_cmd(c, -1, "PING", NULL, NULL);   /* picked up by itself */
    assert_int_equal(k.status, GH_REDIS_OK);
    settle(c);
    kill_all();
}

static void test_acl_auth(void **st)
{
    (void)st;
    if (!have_redis())
        skip();
    int port = free_port();
    start_redis(port, "--user", "default", "off", "--user", "gatehouse", "on", ">s3cret", "~*", "+@all", NULL);
    assert_true(wait_ping(port, "gatehouse", "s3cret"));
    gh_redis_addr_cfg a;
    gh_redis_cfg cfg = one_server(port, &a);
    cfg.username = GH_STR("gatehouse");
    cfg.password = GH_STR("s3cret");
    gh_redis *c = gh_redis_new(&loop, &cfg, NULL);
    call k = sync_cmd(c, 1, "SET", "k", "v");
    assert_int_equal(k.status, GH_REDIS_OK);
    redisReply *r = cmd(port, "CLIENT KILL TYPE normal");   /* every connection must AUTH again */
    freeReplyObject(r);
    k = sync_cmd(c, 1, "GET", "k", NULL);
    assert_int_equal(k.status, GH_REDIS_OK);
    assert_string_equal(k.str, "v");
    settle(c);

    cfg.password = GH_STR("wrong");
    c = gh_redis_new(&loop, &cfg, NULL);
    k = sync_cmd(c, 1, "GET", "k", NULL);
    assert_int_equal(k.status, GH_REDIS_ERROR);   /* NOAUTH: refused, not served */
    assert_false(gh_redis_ready(c));
    settle(c);
    kill_all();
}

/* ------------------------------------------------------------- limits ---- */
typedef struct verdict_call {
    bool done;
    int status;
    gh_redis_verdict v;
} verdict_call;

static void on_verdict(void *ctx, int status, const gh_redis_verdict *v)
{
    verdict_call *k = ctx;
    k->done = true;
    k->status = status;
    if (v)
        k->v = *v;
}

/* n concurrent calls through the clients in turn; returns how many were allowed */
static int burst(gh_redis **cs, int ncs, int algo, const char *key, int n, uint64_t limit, uint64_t window,
                 uint64_t now, verdict_call *out)
{
    for (int i = 0; i < n; i++) {
        gh_redis_handle h;
        memset(&out[i], 0, sizeof(out[i]));
        int st = gh_redis_limit(cs[i % ncs], algo, key, strlen(key), limit, window, now, on_verdict, &out[i], &h);
        assert_int_equal(st, GH_REDIS_OK);
    }
    int allowed = 0;
    for (int i = 0; i < n; i++) {
        assert_true(run_until(&out[i].done, 5000));
        assert_int_equal(out[i].status, GH_REDIS_OK);
        allowed += out[i].v.allowed;
    }
    return allowed;
}

/* the same with several limits in each call */
static int burst_n(gh_redis *c, int algo, const char *key, int n, const gh_redis_window *w, size_t nw, uint64_t now,
                   verdict_call *out)
{
    for (int i = 0; i < n; i++) {
        gh_redis_handle h;
        memset(&out[i], 0, sizeof(out[i]));
        assert_int_equal(gh_redis_limits(c, algo, key, strlen(key), w, nw, now, on_verdict, &out[i], &h), GH_REDIS_OK);
    }
    int allowed = 0;
    for (int i = 0; i < n; i++) {
        assert_true(run_until(&out[i].done, 5000));
        assert_int_equal(out[i].status, GH_REDIS_OK);
        allowed += out[i].v.allowed;
    }
    return allowed;
}

static void wait_ready(gh_redis *c)
{
    bool never = false;
    for (int i = 0; i < 1000 && !gh_redis_ready(c); i++)
        run_until(&never, 10);
    assert_true(gh_redis_ready(c));
}

static void check_limits(gh_redis **cs, int ncs, int port_for_ttl)
{
    static verdict_call out[64];
    const uint64_t T = 1700000000500ULL;   /* half-way through a 1 s window */
    /* sliding window: exactly 10 of 50 concurrent calls from two clients */
    assert_int_equal(burst(cs, ncs, GH_REDIS_SLIDING_WINDOW, "sw:alice", 50, 10, 1000, T, out), 10);
    int seen_zero = 0;
    for (int i = 0; i < 50; i++) {
        if (!out[i].v.allowed) {
            assert_int_equal(out[i].v.remaining, 0);
            assert_true(out[i].v.reset_ms > 0 && out[i].v.reset_ms <= 1000);
        } else if (out[i].v.remaining == 0) {
            seen_zero++;
        }
    }
    assert_int_equal(seen_zero, 1);   /* the 10th saw none left */
    /* the next window, half-way: the last one's 10 weigh 5, so 5 more */
    assert_int_equal(burst(cs, ncs, GH_REDIS_SLIDING_WINDOW, "sw:alice", 20, 10, 1000, T + 1000, out), 5);
    /* two windows on: nothing left of it */
    assert_int_equal(burst(cs, ncs, GH_REDIS_SLIDING_WINDOW, "sw:alice", 20, 10, 1000, T + 3000, out), 10);
    /* another key counts apart */
    assert_int_equal(burst(cs, ncs, GH_REDIS_SLIDING_WINDOW, "sw:bob", 3, 10, 1000, T, out), 3);

    /* token bucket: 5 tokens, one more every 200 ms */
    assert_int_equal(burst(cs, ncs, GH_REDIS_TOKEN_BUCKET, "tb:carol", 8, 5, 1000, T, out), 5);
    for (int i = 0; i < 8; i++)
        if (!out[i].v.allowed)
            assert_int_equal(out[i].v.reset_ms, 200);
    assert_int_equal(burst(cs, ncs, GH_REDIS_TOKEN_BUCKET, "tb:carol", 3, 5, 1000, T + 200, out), 1);
    assert_int_equal(burst(cs, ncs, GH_REDIS_TOKEN_BUCKET, "tb:carol", 9, 5, 1000, T + 5000, out), 5);

    /* several limits in one call: 3 per 1 s and 5 per 10 s. The first
     * refuses (and is named); a refused request counts in neither, so once
     * the first has room again 2 more pass, then the second refuses. */
    const gh_redis_window w[2] = { { 3, 1000 }, { 5, 10000 } };
    const uint64_t T0 = 1700000010000ULL;   /* the start of both windows */
    for (int algo = 0; algo < 2; algo++) {
        const char *key = algo ? "multi:tb" : "multi:sw";
        assert_int_equal(burst_n(cs[0], algo, key, 6, w, 2, T0, out), 3);
        for (int i = 0; i < 6; i++) {
            assert_int_equal(out[i].v.which, 0);
            assert_int_equal(out[i].v.limit, 3);
        }
        /* sliding: two windows of the first on, it is empty; bucket: one window on, it is full again */
        assert_int_equal(burst_n(cs[0], algo, key, 6, w, 2, T0 + (algo ? 1000 : 2000), out), 2);
        assert_false(out[2].v.allowed);
        assert_int_equal(out[2].v.which, 1);
        assert_int_equal(out[2].v.limit, 5);
        assert_true(out[2].v.reset_ms >= 1000);
    }
    /* more limits than a call holds: refused before anything is sent */
    gh_redis_window many[GH_REDIS_MAX_LIMITS + 1] = { { 1, 1000 }, { 1, 2000 }, { 1, 3000 }, { 1, 4000 }, { 1, 5000 } };
    gh_redis_handle hx;
    assert_int_equal(gh_redis_limits(cs[0], 0, "x", 1, many, GH_REDIS_MAX_LIMITS + 1, T0, on_verdict, out, &hx),
                     GH_REDIS_ERROR);

    if (port_for_ttl) {
        /* idle keys expire */
        redisReply *r = cmd(port_for_ttl, "PTTL gh:rl:{sw:bob}");
        assert_non_null(r);
        assert_true(r->integer > 0 && r->integer <= 2000);
        freeReplyObject(r);
        r = cmd(port_for_ttl, "PTTL gh:rl:{tb:carol}");
        assert_true(r->integer > 0 && r->integer <= 1000);
        freeReplyObject(r);
        /* scripts flushed (a restart, SCRIPT FLUSH): NOSCRIPT, loaded again, answered */
        freeReplyObject(cmd(port_for_ttl, "SCRIPT FLUSH"));
        assert_int_equal(burst(cs, ncs, GH_REDIS_SLIDING_WINDOW, "sw:dave", 4, 10, 1000, 0, out), 4);
    }
}

static void test_limit_scripts(void **st)
{
    (void)st;
    if (!have_redis())
        skip();
    int port = free_port();
    start_redis(port, NULL);
    assert_true(wait_ping(port, NULL, NULL));
    gh_redis_addr_cfg a;
    gh_redis_cfg cfg = one_server(port, &a);
    gh_redis *cs[2] = { gh_redis_new(&loop, &cfg, NULL), gh_redis_new(&loop, &cfg, NULL) };   /* two workers */
    wait_ready(cs[0]);
    wait_ready(cs[1]);
    check_limits(cs, 2, port);
    gh_redis_free(cs[0]);
    settle(cs[1]);
    kill_all();
}

/* ------------------------------------------------------------ cluster ---- */

static char *node_id(int port)
{
    static char ids[3][64];
    static int next;
    redisReply *r = cmd(port, "CLUSTER MYID");
    assert_non_null(r);
    char *id = ids[next++ % 3];
    snprintf(id, 64, "%s", r->str);
    freeReplyObject(r);
    return id;
}

static int owner_of(int *p, unsigned slot)
{
    redisReply *r = cmd(p[0], "CLUSTER SLOTS");
    int port = 0;
    for (size_t i = 0; r && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if ((long long)slot >= e->element[0]->integer && (long long)slot <= e->element[1]->integer)
            port = (int)e->element[2]->element[1]->integer;
    }
    freeReplyObject(r);
    return port;
}

static void test_cluster(void **st)
{
    (void)st;
    if (!have_redis() || access(REDIS_CLI, X_OK) != 0) {
        fprintf(stderr, "SKIPPED: redis-cli is not installed (redis-tools)\n");
        skip();
    }
    int p[3];
    char conf[3][128], bus[3][16];
    for (int i = 0; i < 3; i++) {
        p[i] = free_port();
        snprintf(bus[i], sizeof(bus[i]), "%d", free_port());
        snprintf(conf[i], sizeof(conf[i]), "%s/nodes-%d.conf", tmpdir, p[i]);
        start_redis(p[i], "--cluster-enabled", "yes", "--cluster-config-file", conf[i], "--cluster-port", bus[i],
                    NULL);
    }
    for (int i = 0; i < 3; i++)
        assert_true(wait_ping(p[i], NULL, NULL));
    char addr[3][32];
    for (int i = 0; i < 3; i++)
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", p[i]);
    char *create[] = { REDIS_CLI, "--cluster", "create", addr[0], addr[1], addr[2], "--cluster-replicas", "0",
                       "--cluster-yes", NULL };
    pid_t cli = fork();
    if (cli == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execv(create[0], create);
        _exit(127);
    }
    int wst;
    waitpid(cli, &wst, 0);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    for (int i = 0; i < 3; i++) {   /* every node agrees the cluster is up */
        bool ok = false;
        for (int t = 0; t < 1000 && !ok; t++) {
            redisReply *r = cmd(p[i], "CLUSTER INFO");
            ok = r && r->str && strstr(r->str, "cluster_state:ok");
            freeReplyObject(r);
            if (!ok)
                pause_ms(10);
        }
        assert_true(ok);
    }

    /* one seed is enough: the rest comes from CLUSTER SLOTS */
    gh_redis_addr_cfg seed = { .host = GH_STR("127.0.0.1"), .port = (uint16_t)p[1] };
    gh_redis_cfg cfg = { .nodes = &seed, .nnodes = 1, .cluster = true, .timeout_ms = 500 };
    gh_redis *c = gh_redis_new(&loop, &cfg, NULL);
    wait_ready(c);
    assert_int_equal(c->nnodes, 3);

    /* keys on every node, each stored where its slot lives */
    const char *keys[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
    bool on[3] = { false };
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(sync_cmd(c, 1, "SET", keys[i], keys[i]).status, GH_REDIS_OK);
        int port = owner_of(p, gh_redis_key_slot(keys[i], 1));
        redisReply *r = cmd(port, "GET %s", keys[i]);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
        for (int k = 0; k < 3; k++)
            on[k] |= port == p[k];
    }
    assert_true(on[0] && on[1] && on[2]);

    /* the limits, cluster-wide */
    gh_redis *cs[1] = { c };
    check_limits(cs, 1, 0);

    /* migrate the slot of "a" to another master, by hand as redis-cli does */
    unsigned slot = gh_redis_key_slot("a", 1);
    int from = owner_of(p, slot), to = from == p[0] ? p[1] : p[0];
    char *from_id = node_id(from), *to_id = node_id(to);
    freeReplyObject(cmd(to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id));
    freeReplyObject(cmd(from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id));
    redisReply *r = cmd(from, "MIGRATE 127.0.0.1 %d a 0 5000", to);
    assert_true(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    /* mid-migration: the old owner answers ASK; followed once, the map kept */
    call k = sync_cmd(c, 1, "GET", "a", NULL);
    assert_int_equal(k.status, GH_REDIS_OK);
    assert_string_equal(k.str, "a");
    assert_int_equal(c->nodes[c->slots[slot] - 1]->port, from);
    for (int i = 0; i < 3; i++)
        freeReplyObject(cmd(p[i], "CLUSTER SETSLOT %u NODE %s", slot, to_id));
    /* done: the old owner answers MOVED; followed, and the map learns it */
    k = sync_cmd(c, 1, "GET", "a", NULL);
    assert_int_equal(k.status, GH_REDIS_OK);
    assert_string_equal(k.str, "a");
    assert_int_equal(c->nodes[c->slots[slot] - 1]->port, to);
    settle(c);
    kill_all();
}

static int setup(void **st)
{
    (void)st;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/gh-test-redis-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    signal(SIGPIPE, SIG_IGN);
    atexit(kill_all);
    return uv_loop_init(&loop);
}

static int teardown(void **st)
{
    (void)st;
    kill_all();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf %s", tmpdir);
    return system(rm) == 0 ? 0 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slot),
        cmocka_unit_test(test_commands_and_pipelining),
        cmocka_unit_test(test_timeout_cancel_and_stall),
        cmocka_unit_test(test_reconnect_after_restart),
        cmocka_unit_test(test_acl_auth),
        cmocka_unit_test(test_limit_scripts),
        cmocka_unit_test(test_cluster),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
