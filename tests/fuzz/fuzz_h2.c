/* fuzz_h2.c — libFuzzer harness for the HTTP/2 server codec (http/h2_conn.c).
 *
 * The input is what a client sends after the connection preface (the
 * harness prepends "PRI * HTTP/2.0..."), so the corpus holds plain HTTP/2
 * frames. The codec runs as in a worker: a libuv loop, one end of a
 * socketpair handed to gh_h2_conn_start, a gh_http_env set up like
 * server/worker.c does (buffer pool, h1 worker state, deadline lists, pin /
 * unpin of a static configuration with the default limits). The harness
 * writes the input into the other end (in pieces, so frames straddle the
 * codec's reads), runs the loop, and reads back whatever the codec writes.
 *
 * the listener's handler plays the target, choosing by a hash of the path among: a
 * fixed answer (gh_respond), a problem (gh_problem), reading the body then
 * answering, reading it a few bytes at a time (flow control: resumed from a
 * deferred task), a streamed 100 KB response waiting for on_writable, a
 * gRPC-like answer with trailers, an abort in mid-body, and no answer at all
 * (until the stream or the connection ends).
 *
 * Knobs from a hash of the input (as in fuzz_h1): how many bytes ride with
 * the preface in gh_h2_conn_start's `pre`, the write piece size, tight
 * limits (so 431 / 413 paths run), a drain (GOAWAY) and the expiry of the
 * connection's timeouts. Then the client end is closed and the loop runs
 * until the codec has closed and freed everything, so LeakSanitizer sees a
 * clean state after every input. Traps if the connection does not go away
 * after its peer has. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "config/config.h"
#include "core/bufpool.h"
#include "core/deadline.h"
#include "http/exchange.h"
#include "http/h1_conn.h"
#include "http/h2_conn.h"
#include "http/status.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

enum { M_RESPOND, M_PROBLEM, M_READ_ALL, M_READ_SLOW, M_STREAM, M_TRAILERS, M_ABORT, M_SILENT, M_COUNT };

static uv_loop_t loop;
static gh_bufpool bufs;
static gh_h1_worker h1w;
static gh_http_env env;
static gh_config cfg;
static const gh_limits_cfg default_limits = {
    .header_timeout_ms = 10000, .body_timeout_ms = 10000, .min_body_rate = 1024,
    .idle_timeout_ms = 60000, .max_header_bytes = 16 * 1024, .max_headers = 100,
    .max_body_bytes = 10 * 1024 * 1024, .max_connections = 100000,
};
static size_t live_exchanges;       /* handled and not yet ended */
static size_t written_back;         /* bytes the codec wrote to the client this input */
static bool debug;                  /* FUZZ_H2_DEBUG=1: say what each input did (stderr) */
static size_t pins;
static char big[100 * 1024];

/* ------------------------------------------------------------- the env -- */

static void *pin(gh_http_env *e, const gh_config **c)
{
    (void)e;
    *c = &cfg;
    pins++;
    return &cfg;
}

static void unpin(gh_http_env *e, void *p)
{
    (void)e;
    CHECK(p == &cfg && pins > 0);
    pins--;
}

static void done(gh_exchange *ex)
{
    CHECK(ex->status >= 100 && ex->status <= 999);
}

static void conn_closed(gh_http_env *e) { (void)e; }

/* ----------------------------------------------------------- the target -- */

typedef struct fz {
    gh_exchange *ex;
    gh_task resume;
    int mode;
    size_t sent, body;
    bool gone;
} fz;

static void unlink_task(gh_task *t)
{
    if (!t->queued)
        return;
    for (gh_task **pp = &env.h1->tasks; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    t->queued = false;
}

static void on_abort(gh_exchange *ex)
{
    fz *f = ex->consumer;
    CHECK(f && !f->gone);
    f->gone = true;
    unlink_task(&f->resume);
    CHECK(live_exchanges > 0);
    live_exchanges--;
}

/* The exchange is answered completely: the codec owns it from now on. */
static void finished(fz *f)
{
    if (!f->gone) {
        f->gone = true;
        unlink_task(&f->resume);
        live_exchanges--;
    }
}

static void answer(fz *f)
{
    static const gh_header h[] = { { "Content-Type", "text/plain", 12, 10 }, { "X-Fuzz", "1", 6, 1 } };
    gh_exchange *ex = f->ex;
    finished(f);
    gh_respond(ex, 200, h, 2, "ok\n", 3);
}

static void on_resume(gh_task *t)
{
    fz *f = (fz *)((char *)t - offsetof(fz, resume));
    CHECK(!f->gone);
    gh_exchange_resume_body(f->ex);
}

static size_t on_body(gh_exchange *ex, const char *p, size_t len, bool last)
{
    fz *f = ex->consumer;
    CHECK(f && !f->gone && (len == 0 || p));
    size_t take = len;
    if (f->mode == M_READ_SLOW && take > 7) {
        take = 7;
        gh_env_defer(&env, &f->resume);
    }
    if (take) {
        volatile char first = p[0], end = p[take - 1];   /* ASan: the bytes are readable */
        (void)first;
        (void)end;
    }
    f->body += take;
    if (last && take == len)
        answer(f);
    return take;
}

static void stream_more(gh_exchange *ex);

static void on_writable(gh_exchange *ex)
{
    fz *f = ex->consumer;
    CHECK(f && !f->gone);
    stream_more(ex);
}

static void stream_more(gh_exchange *ex)
{
    fz *f = ex->consumer;
    size_t total = f->mode == M_STREAM ? sizeof(big) : 20000;
    while (f->sent < total) {
        size_t n = total - f->sent < 16384 ? total - f->sent : 16384;
        ex->on_writable = on_writable;
        int rc = ex->down->send_body(ex, big + f->sent, n);
        if (rc == GH_ERROR) {
            ex->on_writable = NULL;
            finished(f);
            ex->down->abort(ex);
            return;
        }
        f->sent += n;
        if (rc == GH_AGAIN)
            return;
    }
    ex->on_writable = NULL;
    if (f->mode == M_ABORT) {
        finished(f);
        ex->down->abort(ex);
    } else if (f->mode == M_TRAILERS) {
        static const gh_header t[] = { { "grpc-status", "0", 11, 1 }, { "Grpc-Message", "OK", 12, 2 } };
        finished(f);
        ex->down->finish_trailers(ex, t, 2);
    } else {
        finished(f);
        ex->down->finish(ex);
    }
}

static void handle(gh_exchange *ex)
{
    CHECK(ex->minor == 2 && ex->cfg == &cfg && ex->down && ex->down->send_head);
    for (size_t i = 0; i < ex->nheaders; i++)
        CHECK(ex->headers[i].name_len > 0 && ex->headers[i].name);
    fz *f = gh_arena_zalloc(&ex->arena, sizeof(*f));
    CHECK(f);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < ex->target.len; i++)
        h = (h ^ (uint8_t)ex->target.p[i]) * 16777619u;
    f->ex = ex;
    f->mode = (int)(h % M_COUNT);
    f->resume.run = on_resume;
    ex->consumer = f;
    ex->on_abort = on_abort;
    live_exchanges++;
    if (debug)
        fprintf(stderr, "fuzz_h2: %.*s %.*s -> %s\n", (int)ex->method.len, ex->method.p, (int)ex->target.len,
                ex->target.p, (const char *[]){ "respond", "problem", "read_all", "read_slow", "stream",
                                                "trailers", "abort", "silent" }[f->mode]);
    switch (f->mode) {
    case M_RESPOND:
        answer(f);
        break;
    case M_PROBLEM:
        finished(f);
        gh_problem(ex, 400, "bad_request", "fuzz", NULL, 0, NULL);
        break;
    case M_READ_ALL:
    case M_READ_SLOW:
        gh_exchange_read_body(ex, on_body);
        break;
    case M_STREAM:
    case M_TRAILERS:
    case M_ABORT: {
        static const gh_header ct[] = { { "content-type", "application/grpc", 12, 16 } };
        if (ex->down->send_head(ex, 200, ct, 1, -1) == GH_ERROR) {
            finished(f);
            ex->on_abort = NULL;
            ex->down->abort(ex);
            break;
        }
        stream_more(ex);
        break;
    }
    case M_SILENT:
        break;
    }
}

/* ------------------------------------------------------------ harness -- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    CHECK(uv_loop_init(&loop) == 0);
    gh_bufpool_init(&bufs, 32 * 1024, 64);
    gh_h1_worker_init(&h1w, &loop);
    env.loop = &loop;
    env.bufs = &bufs;
    env.h1 = &h1w;
    env.owner = NULL;
    env.pin = pin;
    env.unpin = unpin;
    env.done = done;
    env.conn_closed = conn_closed;
    for (int k = 0; k < GH_TO_COUNT; k++)
        gh_deadline_list_init(&env.timeouts[k]);
    env.rng[0] = 0x0123456789abcdefULL;
    env.rng[1] = 0xfedcba9876543210ULL;
    cfg.limits = default_limits;
    env.limits = &cfg.limits;
    memset(big, 'b', sizeof(big));
    debug = getenv("FUZZ_H2_DEBUG") != NULL;
    return 0;
}

/* Read and throw away what the codec wrote; false at EOF. */
static bool drain_client(int fd)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            written_back += (size_t)n;
            continue;
        }
        if (n == 0)
            return false;
        return errno == EAGAIN || errno == EINTR;
    }
}

/* Every deadline armed now fires once, as if its time had come: handlers
 * may re-arm (a body the gateway itself holds back is given more time), and
 * what they re-arm waits for the next round, as the worker's tick would. */
static void expire_all(void)
{
    for (int k = 0; k < GH_TO_COUNT; k++) {
        uint64_t horizon = 0;
        gh_deadline_list *l = &env.timeouts[k];
        for (gh_deadline *x = l->head.next; x != &l->head; x = x->next)
            if (x->at_ms > horizon)
                horizon = x->at_ms;
        gh_deadline *d;
        for (int fired = 0; fired < 256 && (d = gh_deadline_pop_due(l, horizon)) != NULL; fired++)
            d->fire(d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211u;

    cfg.limits = default_limits;
    if ((h >> 8) % 4 == 0) {            /* tight limits now and then */
        cfg.limits.max_header_bytes = 256;
        cfg.limits.max_headers = 4;
        cfg.limits.max_body_bytes = 100;
    }
    env.draining = false;

    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000) };
    peer.sin_addr.s_addr = htonl(0x7f000001);
    gh_h1_listen_info info = { .local_port = 8080, .http2 = true, .handle = handle };

    /* the preface, and some of the input with it, as if read by the h1 codec */
    size_t pre_extra = (h >> 16) % 3 == 0 ? (size_t)((h >> 20) % (size + 1)) : 0;
    char *pre = malloc(GH_H2_PREFACE_LEN + pre_extra);
    CHECK(pre);
    memcpy(pre, GH_H2_PREFACE, GH_H2_PREFACE_LEN);
    if (pre_extra)
        memcpy(pre + GH_H2_PREFACE_LEN, data, pre_extra);
    size_t before = h1w.nconns;
    int rc = gh_h2_conn_start(&loop, &env, sv[0], (struct sockaddr *)&peer, &info, NULL, pre,
                              GH_H2_PREFACE_LEN + pre_extra);
    free(pre);
    CHECK(rc == 0);

    size_t off = pre_extra;
    size_t piece = (h >> 32) % 4 == 0 ? 1 + (size_t)((h >> 40) % 64) : (h >> 32) % 4 == 1 ? 4096 : size + 1;
    bool client_open = true;
    for (int i = 0; i < 256 && client_open; i++) {
        if (off < size) {
            size_t n = size - off < piece ? size - off : piece;
            ssize_t w = write(sv[1], data + off, n);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                break;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        client_open = drain_client(sv[1]);
        if (off >= size && i > 8 && !h1w.tasks)
            break;
    }
    if ((h >> 48) % 4 == 0) {           /* SIGTERM: GOAWAY to every connection */
        env.draining = true;
        gh_h2_drain(&env);
        for (int i = 0; i < 4; i++) {
            uv_run(&loop, UV_RUN_NOWAIT);
            drain_client(sv[1]);
        }
    }
    if ((h >> 52) % 4 == 0) {           /* idle / send timeouts fire */
        expire_all();
        for (int i = 0; i < 4; i++) {
            uv_run(&loop, UV_RUN_NOWAIT);
            drain_client(sv[1]);
        }
    }

    /* the client goes away: the codec must notice, end every stream and free */
    close(sv[1]);
    for (int i = 0; i < 1000 && (h1w.nconns > before || h1w.tasks); i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(h1w.nconns == before);      /* the connection is gone after its peer */
    for (int i = 0; i < 8; i++)         /* uv_close callbacks: the codec frees its memory */
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(live_exchanges == 0);         /* every handled exchange finished or was aborted */
    CHECK(pins == 0);                   /* and unpinned its configuration */
    CHECK(h1w.tasks == NULL);
    gh_exchange_cache_clear(&env);
    if (debug)
        fprintf(stderr, "fuzz_h2: %zu bytes in, %zu bytes out\n", size, written_back);
    written_back = 0;
    return 0;
}
