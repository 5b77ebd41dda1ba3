/* h2_conn.c — HTTP/2 server connections on nghttp2: the session I/O.
 *
 * Bytes in: nghttp2_session_mem_recv, whose stream callbacks (h2_stream.c)
 * build one exchange per stream; streams whose heads are complete are
 * dispatched only after the whole read batch was processed, so a HEADERS
 * immediately followed by its RST_STREAM (rapid reset) never reaches an
 * upstream. Bytes out: nghttp2_session_mem_send into one buffer, written
 * with one call, from a deferred flush on the next loop turn, so no nghttp2
 * callback can free a stream under a producer that is still on the stack.
 *
 * Flow control is end to end: automatic WINDOW_UPDATEs are off and request
 * body bytes are acknowledged only when the exchange's consumer takes them
 * (h2_stream.c), so the receive windows bound what a client can make us
 * hold. Resets the client causes are counted here (one budget). */
#include "http/h2_conn.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/log.h"
#include "http/h2_int.h"
#include "tls/tls.h"

static void conn_close(h2_conn *c);
static void set_events(h2_conn *c, int ev);

static void on_closed(uv_handle_t *h)
{
    h2_conn *c = h->data;
    close(c->fd);
    free(c->out);
    free(c->client_cert);
    free(c);
}

/* A response that flow control holds back: the client's window is shut. */
static bool send_blocked(h2_conn *c)
{
    for (h2_stream *s = c->streams; s; s = s->next)
        if (s->data_len && (nghttp2_session_get_remote_window_size(c->ng) <= 0 ||
                            nghttp2_session_get_stream_remote_window_size(c->ng, s->id) <= 0))
            return true;
    return false;
}

static void arm_timeout(h2_conn *c)
{
    const gh_limits_cfg *l = c->env->limits;
    uint64_t now = gh_now_ms(c->env);
    if (c->out_len > c->out_off)
        gh_deadline_arm(&c->env->timeouts[GH_TO_SEND], &c->timer, now + l->idle_timeout_ms, GH_TO_SEND);
    else if (c->nstreams == 0)
        gh_deadline_arm(&c->env->timeouts[GH_TO_IDLE], &c->timer, now + l->idle_timeout_ms, GH_TO_IDLE);
    else if (send_blocked(c)) {
        /* a zero window that stays shut: armed once, not pushed on by PINGs */
        if (!gh_deadline_armed(&c->timer) || c->timer.list != GH_TO_SEND)
            gh_deadline_arm(&c->env->timeouts[GH_TO_SEND], &c->timer, now + l->idle_timeout_ms, GH_TO_SEND);
    } else
        gh_deadline_cancel(&c->timer);
}

/* A reset the client caused (its own, or ours because of its frames):
 * spend a token; with none left, GOAWAY(ENHANCE_YOUR_CALM) ends the
 * connection and nothing more of it is dispatched (MadeYouReset,
 * CVE-2025-8671, and rapid reset, CVE-2023-44487, by one rule). */
void gh_h2c_count_reset(h2_conn *c)
{
    uint64_t now = gh_now_ms(c->env);
    uint64_t add = (now - c->reset_ms) * RESET_RATE / 1000;
    if (add) {
        c->reset_tokens = add >= RESET_BURST - c->reset_tokens ? RESET_BURST : c->reset_tokens + (uint32_t)add;
        c->reset_ms += add * 1000 / RESET_RATE;
    }
    if (c->reset_tokens) {
        c->reset_tokens--;
        return;
    }
    if (c->calm)
        return;
    c->calm = c->goaway = true;
    gh_log_debug("http2: too many reset streams; GOAWAY(ENHANCE_YOUR_CALM)");
    nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
    gh_h2c_schedule_flush(c);
}

/* ----------------------------------------------------------- flushing -- */

/* Write gathered output; true when all of it went. */
static bool write_out(h2_conn *c)
{
    while (c->out_off < c->out_len) {
        struct iovec iov = { c->out + c->out_off, c->out_len - c->out_off };
        ssize_t w = c->tp->ops->writev(c->tp, c->fd, &iov, 1);
        if (w == -EAGAIN) {
            set_events(c, c->events | gh_transport_wants(c->tp, true));
            return false;
        }
        if (w <= 0) {
            c->dead = true;
            return false;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    set_events(c, UV_READABLE);
    return true;
}

/* Everything nghttp2 wants to send, gathered and written. Only called from
 * the top of a loop callback. */
static void flush(h2_conn *c)
{
    for (int rounds = 0; !c->dead && rounds < 64; rounds++) {
        if (!write_out(c))
            break;
        while (c->out_len < OUT_CAP) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->ng, &data);
            if (n < 0) {
                c->dead = true;
                break;
            }
            if (n == 0) {
                if (!c->notify)
                    break;
                /* producers whose data nghttp2 took may send more or finish
                 * now: their frames go in this write, not in one more */
                gh_h2s_notify(c);
                continue;
            }
            if (c->out_len + (size_t)n > OUT_CAP) {
                /* a frame bigger than what is left: write what we have first */
                if (!write_out(c)) {
                    char *grow = realloc(c->out, c->out_len + (size_t)n);
                    if (!grow) {
                        c->dead = true;
                        break;
                    }
                    c->out = grow;
                }
            }
            if (c->out_len + (size_t)n > OUT_CAP && c->out_len == 0 && (size_t)n > OUT_CAP) {
                char *grow = realloc(c->out, (size_t)n);
                if (!grow) {
                    c->dead = true;
                    break;
                }
                c->out = grow;
            }
            memcpy(c->out + c->out_len, data, (size_t)n);
            c->out_len += (size_t)n;
        }
        if (c->out_len == 0)
            break;
    }
    if (!c->dead && c->out_len == 0 && !nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))
        c->dead = true;   /* GOAWAY exchanged and nothing left: done */
    gh_h2s_notify(c);
    if (c->dead) {
        conn_close(c);
        return;
    }
    arm_timeout(c);
}

static void on_flush_task(gh_task *t)
{
    h2_conn *c = (h2_conn *)((char *)t - offsetof(h2_conn, flush_task));
    gh_upquota_run(&c->upq);   /* streams waiting for an upstream slot go first */
    flush(c);
}

static void on_quota_kick(gh_upquota *q)
{
    gh_h2c_schedule_flush((h2_conn *)((char *)q - offsetof(h2_conn, upq)));
}

void gh_h2c_schedule_flush(h2_conn *c)
{
    if (!c->dead)
        gh_env_defer(c->env, &c->flush_task);
}

/* ------------------------------------------------------------- events -- */

/* Resets count against the budget whichever side sends them: the client's
 * own, and ours for its errors (PROTOCOL_ERROR on a malformed request or
 * DATA beyond content-length, FLOW_CONTROL_ERROR, REFUSED_STREAM, CANCEL of
 * a stalled or oversized body); not NO_ERROR (a complete answer) nor
 * INTERNAL_ERROR (the upstream failed). */
static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type == NGHTTP2_RST_STREAM)
        gh_h2c_count_reset(ud);
    gh_h2s_frame_recv(ud, f);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type == NGHTTP2_RST_STREAM && f->rst_stream.error_code != NGHTTP2_NO_ERROR &&
        f->rst_stream.error_code != NGHTTP2_INTERNAL_ERROR)
        gh_h2c_count_reset(ud);
    gh_h2s_frame_sent(ud, f);
    return 0;
}

static void on_readable(h2_conn *c)
{
    gh_buf *b = gh_buf_get(c->env->bufs);
    if (!b) {
        conn_close(c);
        return;
    }
    for (int i = 0; i < 16 && !c->dead; i++) {
        ssize_t n = c->tp->ops->read(c->tp, c->fd, b->data, b->cap);
        if (n == -EAGAIN) {
            int want = gh_transport_wants(c->tp, false);
            if (want != GH_WANT_READ)
                set_events(c, c->events | want);
            break;
        }
        if (n <= 0) {
            c->dead = true;
            break;
        }
        ssize_t r = nghttp2_session_mem_recv(c->ng, (const uint8_t *)b->data, (size_t)n);
        if (r < 0) {
            gh_log_debug("http2: closing connection: %s", nghttp2_strerror((int)r));
            /* nghttp2 has queued a GOAWAY where it could: try to send it */
            gh_h2s_dispatch_ready(c);
            flush(c);
            if (!c->dead)
                conn_close(c);
            gh_buf_put(c->env->bufs, b);
            return;
        }
        gh_h2s_dispatch_ready(c);
        if ((size_t)n < b->cap && !gh_transport_pending(c->tp))
            break;
    }
    gh_buf_put(c->env->bufs, b);
    if (c->dead)
        flush(c);   /* closes */
    else
        gh_h2c_schedule_flush(c);   /* with whatever the upstreams answer in this loop turn: one write */
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    h2_conn *c = h->data;
    if (c->dead)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (events & UV_WRITABLE) {
        if (c->out_len > c->out_off || !(events & UV_READABLE))
            flush(c);
        if (c->dead)
            return;
    }
    if (events & UV_READABLE)
        on_readable(c);
}

static void set_events(h2_conn *c, int ev)
{
    if (c->events == ev)
        return;
    c->events = ev;
    uv_poll_start(&c->poll, ev, on_poll);
}

static void on_timeout(gh_deadline *d)
{
    h2_conn *c = (h2_conn *)((char *)d - offsetof(h2_conn, timer));
    if (c->dead)
        return;
    if (d->list == GH_TO_IDLE && !c->goaway) {
        /* idle: say goodbye properly, then close */
        c->goaway = true;
        nghttp2_session_terminate_session(c->ng, NGHTTP2_NO_ERROR);
        flush(c);
        return;
    }
    conn_close(c);   /* a client that stopped reading, or a goodbye that never completed */
}

static void conn_close(h2_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->dead = true;
    /* streams still open: their exchanges learn it through on_stream_close */
    nghttp2_session *ng = c->ng;
    c->ng = NULL;
    gh_deadline_cancel(&c->timer);
    uv_poll_stop(&c->poll);
    /* nghttp2_session_del calls no stream callbacks: end our streams first */
    while (c->streams)
        gh_h2s_end(c, c->streams);
    if (ng)
        nghttp2_session_del(ng);
    c->ready = c->ready_tail = NULL;
    c->notify = NULL;
    gh_h1_worker *w = c->env->h1;
    if (c->prev)
        c->prev->next = c->next;
    else if (w->h2_conns == c)
        w->h2_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    if (c->env->conn_closed)
        c->env->conn_closed(c->env);
    if (c->flush_task.queued) {
        /* drop the pending flush: unlink it from the worker's task list */
        for (gh_task **pp = &w->tasks; *pp; pp = &(*pp)->next)
            if (*pp == &c->flush_task) {
                *pp = c->flush_task.next;
                break;
            }
        c->flush_task.queued = false;
    }
    if (c->tp && c->tp->ops->destroy)
        c->tp->ops->destroy(c->tp);
    c->tp = NULL;
    uv_close((uv_handle_t *)&c->poll, on_closed);
}

/* ------------------------------------------------------------------ api -- */

int gh_h2_conn_start(uv_loop_t *loop, gh_http_env *env, int fd, const struct sockaddr *peer,
                     const gh_h1_listen_info *info, gh_transport *tp, const char *pre, size_t prelen)
{
    h2_conn *c = calloc(1, sizeof(*c));
    char *out = malloc(OUT_CAP);
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    if (!c || !out || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0) {
        free(c);
        free(out);
        nghttp2_session_callbacks_del(cb);
        if (tp && tp->ops->destroy)
            tp->ops->destroy(tp);
        close(fd);
        return -ENOMEM;
    }
    c->out = out;
    c->env = env;
    c->fd = fd;
    c->tp = tp ? tp : &gh_transport_plain;
    c->info = *info;
    c->timer.fire = on_timeout;
    c->flush_task.run = on_flush_task;
    c->upq.max = UPSTREAM_CONNS;
    c->upq.kick = on_quota_kick;
    c->reset_tokens = RESET_BURST;
    c->reset_ms = gh_now_ms(env);
    if (peer->sa_family == AF_INET6)
        memcpy(&c->peer.v6, peer, sizeof(c->peer.v6));
    else
        memcpy(&c->peer.v4, peer, sizeof(c->peer.v4));
    gh_h2s_set_callbacks(cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    /* abuse limits (DESIGN: use nghttp2's, and bound streams ourselves) */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, 1000);        /* PING / SETTINGS floods */
    nghttp2_option_set_max_settings(opt, 32);
    /* resets (rapid reset, MadeYouReset) are counted by count_reset */
    nghttp2_option_set_max_continuations(opt, 8);
    /* responses are encoded with the static table and literals only, as
     * nginx and HAProxy do: no dynamic table to search, insert into and
     * evict from on every response (half of nghttp2's cost per request),
     * and no 4 KiB of table state per connection */
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
    int rc = nghttp2_session_server_new2(&c->ng, cb, c, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rc != 0) {
        free(out);
        free(c);
        if (tp && tp->ops->destroy)
            tp->ops->destroy(tp);
        close(fd);
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)env->limits->max_header_bytes },
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
    };
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    rc = uv_poll_init_socket(loop, &c->poll, fd);
    if (rc < 0) {
        nghttp2_session_del(c->ng);
        free(out);
        free(c);
        if (tp && tp->ops->destroy)
            tp->ops->destroy(tp);
        close(fd);
        return rc;
    }
    c->poll.data = c;
    c->events = UV_READABLE;
    uv_poll_start(&c->poll, UV_READABLE, on_poll);
    gh_h1_worker *w = env->h1;
    c->next = w->h2_conns;
    if (w->h2_conns)
        w->h2_conns->prev = c;
    w->h2_conns = c;
    w->nconns++;
    if (env->draining)
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    if (c->info.tls) {
        char subject[512];
        if (gh_tls_peer_subject(c->tp, subject, sizeof(subject)))
            c->client_cert = strdup(subject);
    }
    if (prelen) {
        ssize_t r = nghttp2_session_mem_recv(c->ng, (const uint8_t *)pre, prelen);
        if (r < 0)
            c->dead = true;
        else
            gh_h2s_dispatch_ready(c);
    }
    flush(c);
    /* TLS may already hold the client's first frames (sent with its Finished) */
    if (!c->closing && gh_transport_pending(c->tp))
        on_readable(c);
    return 0;
}

void gh_h2_drain(gh_http_env *env)
{
    for (h2_conn *c = env->h1->h2_conns; c; c = c->next) {
        if (c->dead || c->goaway)
            continue;
        c->goaway = true;
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->ng),
                              NGHTTP2_NO_ERROR, NULL, 0);
        gh_h2c_schedule_flush(c);
    }
}
