/* h2_upstream_session.c — the HTTP/2 client connections under `protocol:
 * h2` upstreams: per worker, a few per target address and TLS identity
 * (keyed like the pools), made on demand over gh_upconn (plaintext: h2c
 * prior knowledge; TLS: ALPN must pick h2), shared by every exchange going
 * there, closed when idle for
 * pw->idle_timeout_ms, on GOAWAY once drained, or on error (their exchanges
 * then fail or retry: h2_upstream.c decides).
 *
 * nghttp2_session_mem_recv / mem_send run only here, from the top of the
 * session's own handlers (socket events, its timer, a deferred flush); a
 * session that dies is freed only when its handler unwinds, so no callback
 * ever runs on freed memory. One timer per session serves every deadline
 * of its exchanges: it is armed for the earliest, lazily. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "http/h1_conn.h"
#include "proxy/h2_upstream_int.h"
#include "tls/tls.h"

#define CONN_WINDOW (8 << 20)
#define MAX_STREAMS 100              /* per session, even if the server allows more */
#define MAX_SESSIONS 4               /* per target; beyond that nghttp2 queues streams */
#define OUT_CAP (64 << 10)           /* output gathered before one write */

typedef gh_h2up_sess sess;
typedef gh_h2up_stream h2s;
typedef gh_h2up_call h2x;

static void flush(sess *ss);
static void on_readable(sess *ss);

/* ------------------------------------------------------------ timers -- */

static void arm(sess *ss, uint64_t due)
{
    uint64_t now = gh_h2up_now(ss->w);
    ss->timer_at = due;
    gh_upconn_timer(ss->uc, due > now ? due - now : 1);
}

void gh_h2up_set_due(h2x *x, uint64_t ms)
{
    /* a client that does not read suspends it (forward.c does the same) */
    uint64_t due = ms && !x->blocked ? gh_h2up_now(x->w) + ms : 0;
    if (x->deadline_ms && !x->blocked && (!due || x->deadline_ms < due))
        due = x->deadline_ms;
    x->due_ms = due;
    sess *ss = x->st ? x->st->ss : x->wss;
    if (ss && !ss->dead && due && (!ss->timer_at || due < ss->timer_at))
        arm(ss, due);
}

static void rearm(sess *ss)
{
    uint64_t due = ss->connected ? ss->idle_due : ss->connect_due;
    for (h2x *x = ss->waiting; x; x = x->wnext)
        if (x->due_ms && (!due || x->due_ms < due))
            due = x->due_ms;
    for (h2s *st = ss->streams; st; st = st->next)
        if (st->x && st->x->due_ms && (!due || st->x->due_ms < due))
            due = st->x->due_ms;
    if (due) {
        arm(ss, due);
    } else {
        ss->timer_at = 0;
        gh_upconn_timer(ss->uc, 0);
    }
}

/* ------------------------------------------------- streams and waiters -- */

void gh_h2up_flush_soon(sess *ss)
{
    if (ss && !ss->dead && ss->connected)
        gh_env_defer(ss->w->env, &ss->flush_task);
}

void gh_h2up_stream_free(h2s *st)
{
    gh_buf_put(st->bufs, st->req);
    free(st->rbuf);
    free(st);
}

void gh_h2up_stream_link(sess *ss, h2s *st)
{
    st->ss = ss;
    st->prev = NULL;
    st->next = ss->streams;
    if (ss->streams)
        ss->streams->prev = st;
    ss->streams = st;
    ss->nstreams++;
    ss->idle_due = 0;
}

void gh_h2up_stream_unlink(sess *ss, h2s *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else if (ss->streams == st)
        ss->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
    if (--ss->nstreams == 0 && ss->nwaiting == 0) {
        ss->idle_due = gh_h2up_now(ss->w) + ss->w->pw->idle_timeout_ms;
        if (ss->goaway)
            ss->dead = true;   /* drained after GOAWAY: close */
    }
}

void gh_h2up_wait(sess *ss, h2x *x)
{
    x->wss = ss;
    x->wprev = NULL;
    x->wnext = ss->waiting;
    if (ss->waiting)
        ss->waiting->wprev = x;
    ss->waiting = x;
    ss->nwaiting++;
}

void gh_h2up_wait_remove(h2x *x)
{
    sess *ss = x->wss;
    if (!ss)
        return;
    if (x->wprev)
        x->wprev->wnext = x->wnext;
    else
        ss->waiting = x->wnext;
    if (x->wnext)
        x->wnext->wprev = x->wprev;
    x->wprev = x->wnext = NULL;
    x->wss = NULL;
    ss->nwaiting--;
}

/* After a flush: ask clients again for body bytes refused while full. */
static void resume_bodies(sess *ss)
{
    for (h2s *st = ss->streams; st; st = st->next) {
        h2x *x = st->x;
        if (x && x->want_body && (!st->req || gh_buf_len(st->req) < st->req->cap)) {
            x->want_body = false;
            gh_exchange_resume_body(x->ex);
        }
    }
}

/* ------------------------------------------------------ the sessions --- */

static size_t addr_key(const struct sockaddr *sa, socklen_t *len)
{
    /* only the meaningful bytes (sin_zero and the like may differ) */
    *len = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
         : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : *len;
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (socklen_t i = 0; i < *len; i++)
        h = (h ^ ((const unsigned char *)sa)[i]) * 1099511628211ULL;
    return (size_t)(h % GH_H2UP_BUCKETS);
}

static size_t stream_limit(sess *ss)
{
    if (!ss->connected)
        return MAX_STREAMS;
    uint32_t r = nghttp2_session_get_remote_settings(ss->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return r < MAX_STREAMS ? r : MAX_STREAMS;
}

static void on_uc_event(gh_upconn *uc, int events);
static void on_uc_timer(gh_upconn *uc);
static void unwind(sess *ss);

static void on_flush_task(gh_task *t)
{
    sess *ss = (sess *)((char *)t - offsetof(sess, flush_task));
    ss->busy++;
    if (ss->reread && !ss->dead)
        on_readable(ss);
    flush(ss);
    unwind(ss);
}

static sess *sess_new(gh_h2up_worker *w, const h2x *x, const gh_target_cfg *t, const struct sockaddr *sa,
                      socklen_t len, uint64_t tag, size_t b, int *err)
{
    sess *ss = calloc(1, sizeof(*ss));
    if (!ss || nghttp2_session_client_new2(&ss->ng, w->cbs, ss, w->opt) != 0) {
        free(ss);
        *err = -ENOMEM;
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GH_H2UP_STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GH_H2UP_MAX_HEADER_BYTES },
    };
    nghttp2_submit_settings(ss->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(ss->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    ss->uc = gh_upconn_connect(w->pw, sa, len, err);
    gh_tls_client *tls = x->ctx.tls ? x->ctx.tls[x->route->upstream_index] : NULL;
    if (ss->uc && tls) {
        /* made now, not once connected: it holds its own reference to the
         * client, which a reload may otherwise free meanwhile */
        gh_transport *tp = gh_tls_connect(tls, ss->uc->fd, t->host.p);
        if (tp) {
            ss->uc->tp = tp;
        } else {
            gh_upconn_close(ss->uc);
            ss->uc = NULL;
            *err = -ENOMEM;
        }
    }
    if (!ss->uc) {
        nghttp2_session_del(ss->ng);
        free(ss);
        return NULL;
    }
    ss->uc->owner = ss;
    ss->uc->on_event = on_uc_event;
    ss->uc->on_timer = on_uc_timer;
    memcpy(&ss->sa, sa, len);
    ss->salen = len;
    ss->tag = tag;
    ss->w = w;
    ss->flush_task.run = on_flush_task;
    ss->rd_want = UV_READABLE;
    ss->connect_due = gh_h2up_now(w) + x->up->connect_timeout_ms;
    arm(ss, ss->connect_due);
    ss->next = w->buckets[b];
    w->buckets[b] = ss;
    return ss;
}

sess *gh_h2up_pick(h2x *x, const gh_target_cfg *t, int *err)
{
    gh_h2up_worker *w = x->w;
    struct sockaddr_storage ab;
    socklen_t len;
    const struct sockaddr *sa = gh_upcall_addr(&x->call, &ab, &len);
    size_t b = addr_key(sa, &len);
    uint64_t tag = gh_proxy_tls_tag(x->up);
    sess *best = NULL;
    size_t count = 0, best_load = 0;
    for (sess *ss = w->buckets[b]; ss; ss = ss->next) {
        if (ss->dead || ss->goaway || ss->salen != len || ss->tag != tag || memcmp(&ss->sa, sa, len) != 0)
            continue;
        size_t load = ss->nstreams + ss->nwaiting;
        if (load < stream_limit(ss))
            return ss;
        if (!best || load < best_load) {
            best = ss;
            best_load = load;
        }
        count++;
    }
    if (best && count >= MAX_SESSIONS)
        return best;   /* nghttp2 queues the stream until one ends */
    sess *ss = sess_new(w, x, t, sa, len, tag, b, err);
    return ss ? ss : best;
}

static void sess_destroy(sess *ss)
{
    gh_h2up_worker *w = ss->w;
    socklen_t len = ss->salen;
    for (sess **pp = &w->buckets[addr_key((struct sockaddr *)&ss->sa, &len)]; *pp; pp = &(*pp)->next)
        if (*pp == ss) {
            *pp = ss->next;
            break;
        }
    if (ss->flush_task.queued) {
        /* drop the pending flush: unlink it from the worker's task list */
        for (gh_task **pp = &w->env->h1->tasks; *pp; pp = &(*pp)->next)
            if (*pp == &ss->flush_task) {
                *pp = ss->flush_task.next;
                break;
            }
    }
    nghttp2_session_del(ss->ng);   /* calls no stream callbacks */
    gh_upconn_close(ss->uc);
    free(ss->out);
    free(ss);
}

/* The connection is gone: each exchange on it fails or retries elsewhere.
 * The session itself is freed when the current handler unwinds. */
static void sess_lost(sess *ss, enum gh_h2up_fail kind)
{
    if (ss->dead && !ss->streams && !ss->waiting)
        return;
    ss->dead = true;
    gh_log_debug("h2 upstream connection %s", kind == GH_H2F_CONNECT ? "failed"
                 : kind == GH_H2F_CONNECT_TIMEOUT ? "timed out" : "lost");
    while (ss->waiting) {
        h2x *x = ss->waiting;
        gh_h2up_wait_remove(x);
        gh_h2up_fail(x, ss->tls_failed ? GH_H2F_TLS : kind, "connection failed");
    }
    while (ss->streams) {
        h2s *st = ss->streams;
        gh_h2up_stream_unlink(ss, st);
        st->closed = true;
        st->ss = NULL;   /* from now on it belongs to its exchange alone */
        nghttp2_session_set_stream_user_data(ss->ng, st->id, NULL);
        h2x *x = st->x;
        if (!x)
            gh_h2up_stream_free(st);
        else if (!x->end_recv)   /* a complete response still reaching a slow client stays */
            gh_h2up_fail(x, GH_H2F_LOST, "connection lost");
    }
}

/* --------------------------------------------------------------- I/O ---- */

static void set_events(sess *ss)
{
    if (!ss->connected)
        return;   /* connecting: the connect / handshake chose the events */
    int ev = ss->rd_want;
    if (ss->out_len > ss->out_off)
        ev |= gh_transport_wants(ss->uc->tp, true);
    gh_upconn_events(ss->uc, ev);
}

/* Write gathered output; true when all of it went. */
static bool write_out(sess *ss)
{
    while (ss->out_off < ss->out_len) {
        struct iovec iov = { ss->out + ss->out_off, ss->out_len - ss->out_off };
        ssize_t n = gh_upconn_writev(ss->uc, &iov, 1);
        if (n == -EAGAIN)
            return false;
        if (n <= 0) {
            sess_lost(ss, GH_H2F_LOST);
            return false;
        }
        ss->out_off += (size_t)n;
    }
    ss->out_off = ss->out_len = 0;
    return true;
}

/* Everything nghttp2 wants to send, gathered and written. Only from the
 * top of one of the session's handlers. */
static void flush(sess *ss)
{
    for (int round = 0; !ss->dead && ss->connected; round++) {
        if (!write_out(ss))
            break;   /* the rest when the socket is writable */
        if (round == 16) {
            gh_env_defer(ss->w->env, &ss->flush_task);   /* let others run meanwhile */
            break;
        }
        const uint8_t *data;
        ssize_t n;
        while (ss->out_len < OUT_CAP && (n = nghttp2_session_mem_send(ss->ng, &data)) != 0) {
            if (n < 0) {
                sess_lost(ss, GH_H2F_LOST);
                return;
            }
            size_t need = ss->out_len + (size_t)n;
            if (need > ss->out_cap) {   /* one frame may overshoot OUT_CAP */
                size_t cap = need > OUT_CAP ? need : OUT_CAP;
                char *grow = realloc(ss->out, cap);
                if (!grow) {
                    sess_lost(ss, GH_H2F_LOST);
                    return;
                }
                ss->out = grow;
                ss->out_cap = cap;
            }
            memcpy(ss->out + ss->out_len, data, (size_t)n);
            ss->out_len += (size_t)n;
        }
        if (ss->out_len == 0)
            break;
    }
    if (ss->dead || !ss->connected)
        return;
    if (ss->out_len == 0 && !nghttp2_session_want_read(ss->ng) && !nghttp2_session_want_write(ss->ng))
        ss->dead = true;   /* GOAWAY both ways and nothing left */
    resume_bodies(ss);
}

static void on_readable(sess *ss)
{
    gh_buf *b = gh_buf_get(ss->w->pw->bufs);
    if (!b) {
        sess_lost(ss, GH_H2F_LOST);
        return;
    }
    ss->reread = false;
    for (int i = 0; !ss->dead; i++) {
        if (i == 32) {
            ss->reread = true;   /* the transport may hold more: next turn, after others */
            gh_env_defer(ss->w->env, &ss->flush_task);
            break;
        }
        ssize_t n = gh_upconn_read(ss->uc, b->data, b->cap);
        if (n == -EAGAIN) {
            ss->rd_want = gh_transport_wants(ss->uc->tp, false);
            break;
        }
        if (n <= 0) {
            sess_lost(ss, GH_H2F_LOST);
            break;
        }
        ssize_t r = nghttp2_session_mem_recv(ss->ng, (const uint8_t *)b->data, (size_t)n);
        if (r < 0) {
            gh_log_debug("h2 upstream: %s", nghttp2_strerror((int)r));
            flush(ss);   /* nghttp2 queued a GOAWAY where it could */
            sess_lost(ss, GH_H2F_LOST);
            break;
        }
        if ((size_t)n < b->cap && !gh_transport_pending(ss->uc->tp))
            break;
    }
    gh_buf_put(ss->w->pw->bufs, b);
}

static void on_connected(sess *ss)
{
    int r = gh_transport_handshake(ss->uc->tp, ss->uc->fd);
    if (r == -EAGAIN) {
        gh_upconn_events(ss->uc, gh_transport_wants(ss->uc->tp, false));
        return;
    }
    const char *alpn = r < 0 || !gh_tls_is(ss->uc->tp) ? NULL : gh_tls_alpn(ss->uc->tp);
    if (r < 0 || (gh_tls_is(ss->uc->tp) && (!alpn || strcmp(alpn, "h2") != 0))) {
        const char *why = r < 0 ? gh_tls_error(ss->uc->tp) : "the server did not select h2 (ALPN)";
        gh_log_warn("h2 upstream: TLS handshake failed: %s", why ? why : "?");
        ss->tls_failed = true;
        sess_lost(ss, GH_H2F_CONNECT);
        return;
    }
    ss->connected = true;
    while (ss->waiting && !ss->dead) {
        h2x *x = ss->waiting;
        gh_h2up_wait_remove(x);
        gh_h2up_submit(x, ss);
    }
    if (!ss->streams && !ss->waiting)
        ss->idle_due = gh_h2up_now(ss->w) + ss->w->pw->idle_timeout_ms;
}

/* Every handler of a session ends here: a session that died is freed only
 * now, with nothing of it left on the stack. */
static void unwind(sess *ss)
{
    if (--ss->busy > 0)
        return;
    if (ss->dead) {
        sess_lost(ss, GH_H2F_LOST);
        sess_destroy(ss);
        return;
    }
    set_events(ss);
    rearm(ss);
}

static void on_uc_event(gh_upconn *uc, int events)
{
    sess *ss = uc->owner;
    ss->busy++;
    if (events < 0) {
        sess_lost(ss, ss->tcp_up ? GH_H2F_LOST : GH_H2F_CONNECT);
    } else if (!ss->tcp_up) {
        if (events & UV_WRITABLE) {
            if (gh_upconn_connect_result(uc) < 0) {
                sess_lost(ss, GH_H2F_CONNECT);
            } else {
                ss->tcp_up = true;
                on_connected(ss);
            }
        }
    } else if (!ss->connected) {
        on_connected(ss);   /* the TLS handshake goes on */
    } else if ((events & UV_READABLE) || ((events & UV_WRITABLE) && ss->rd_want == UV_WRITABLE)) {
        on_readable(ss);
    }
    flush(ss);
    unwind(ss);
}

/* The earliest of: connect timeout, idle timeout, an exchange's deadline. */
static void on_uc_timer(gh_upconn *uc)
{
    sess *ss = uc->owner;
    uint64_t now = gh_h2up_now(ss->w);
    ss->busy++;
    ss->timer_at = 0;
    if (!ss->connected) {
        if (now >= ss->connect_due)
            sess_lost(ss, GH_H2F_CONNECT_TIMEOUT);
    } else if (ss->idle_due && now >= ss->idle_due && !ss->streams && !ss->waiting) {
        nghttp2_session_terminate_session(ss->ng, NGHTTP2_NO_ERROR);
        flush(ss);
        ss->dead = true;
    }
    /* one expiry at a time: failing an exchange changes the lists */
    for (bool again = true; again && !ss->dead;) {
        h2x *due = NULL;
        for (h2x *x = ss->waiting; x && !due; x = x->wnext)
            if (x->due_ms && x->due_ms <= now)
                due = x;
        for (h2s *st = ss->streams; st && !due; st = st->next)
            if (st->x && st->x->due_ms && st->x->due_ms <= now)
                due = st->x;
        again = due != NULL;
        if (due) {
            due->due_ms = 0;
            gh_h2up_expire(due, now);
        }
    }
    flush(ss);
    unwind(ss);
}

/* ------------------------------------------------------------ worker --- */

gh_h2up_worker *gh_h2up_worker_get(gh_proxy_worker *pw, gh_http_env *env)
{
    if (pw->h2up)
        return pw->h2up;
    gh_h2up_worker *w = calloc(1, sizeof(*w));
    if (!w || nghttp2_session_callbacks_new(&w->cbs) != 0 || nghttp2_option_new(&w->opt) != 0) {
        if (w)
            nghttp2_session_callbacks_del(w->cbs);
        free(w);
        return NULL;
    }
    w->pw = pw;
    w->env = env;
    gh_h2up_set_callbacks(w->cbs);
    nghttp2_option_set_no_auto_window_update(w->opt, 1);   /* acknowledge what the client took */
    nghttp2_option_set_peer_max_concurrent_streams(w->opt, MAX_STREAMS);
    nghttp2_option_set_max_outbound_ack(w->opt, 1000);
    nghttp2_option_set_max_settings(w->opt, 32);
    nghttp2_option_set_max_continuations(w->opt, 8);
    pw->h2up = w;
    return w;
}

void gh_h2up_worker_free(gh_h2up_worker *w)
{
    if (!w)
        return;
    for (size_t b = 0; b < GH_H2UP_BUCKETS; b++)
        while (w->buckets[b]) {
            sess *ss = w->buckets[b];
            while (ss->waiting)
                gh_h2up_wait_remove(ss->waiting);
            while (ss->streams) {
                h2s *st = ss->streams;
                gh_h2up_stream_unlink(ss, st);
                if (st->x)
                    st->x->st = NULL;
                gh_h2up_stream_free(st);
            }
            sess_destroy(ss);
        }
    nghttp2_session_callbacks_del(w->cbs);
    nghttp2_option_del(w->opt);
    free(w);
}
