/* dry_run.c — a request built in memory, run through the real dispatcher
 * with a downstream that records the answer instead of writing it. The
 * exchange is made as the codecs make one (same target split, host rule,
 * method bit, request id), on a private loop (basic_auth checks passwords
 * on libuv's thread pool), with the snapshot pinned for its lifetime. */
#include "server/dry_run.h"
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "http/request.h"
#include "server/dispatch.h"
#include "server/worker.h"

struct gh_dry_state {
    uv_loop_t loop;
    gh_http_env env;
    gh_pin pin;
};

/* ---- the recording downstream ---- */

static void keep(char *dst, size_t cap, const gh_header *h)
{
    snprintf(dst, cap, "%.*s", (int)h->value_len, h->value);
}

static int rec_head(gh_exchange *ex, int status, const gh_header *hdrs, size_t n, int64_t cl)
{
    gh_dry_run *d = ex->dry_run;
    d->status = status;
    for (size_t i = 0; i < n; i++) {
        if (hdrs[i].name_len == 5 && strncasecmp(hdrs[i].name, "allow", 5) == 0)
            keep(d->allow, sizeof(d->allow), &hdrs[i]);
        else if (hdrs[i].name_len == 16 && strncasecmp(hdrs[i].name, "www-authenticate", 16) == 0 && !d->challenge[0])
            keep(d->challenge, sizeof(d->challenge), &hdrs[i]);
    }
    ex->head_sent = true;
    ex->status = status;
    return GH_OK;
}

static int rec_body(gh_exchange *ex, const char *p, size_t len)
{
    gh_dry_run *d = ex->dry_run;
    size_t have = strlen(d->body), room = sizeof(d->body) - 1 - have;
    memcpy(d->body + have, p, len < room ? len : room);
    d->body[have + (len < room ? len : room)] = '\0';
    return GH_OK;
}

static int rec_finish(gh_exchange *ex)
{
    gh_exchange_response_over(ex);
    return GH_OK;
}

static int rec_trailers(gh_exchange *ex, const gh_header *hdrs, size_t n) { return rec_finish(ex); }
static void rec_abort(gh_exchange *ex) { gh_exchange_response_over(ex); }

/* The request has no body: whoever asks for it gets its end at once. */
static void rec_resume_body(gh_exchange *ex)
{
    ex->body_done = true;
    if (ex->body_cb)
        ex->body_cb(ex, "", 0, true);
}

static int rec_upgrade(gh_exchange *ex, const gh_header *hdrs, size_t n, gh_takeover *t) { return GH_ERROR; }

static const gh_downstream_ops recorder = {
    .send_head = rec_head, .send_body = rec_body, .finish = rec_finish, .abort = rec_abort,
    .resume_body = rec_resume_body, .finish_trailers = rec_trailers, .upgrade = rec_upgrade,
};

static void no_unpin(gh_http_env *env, void *pin) {}

/* ---- building the request ---- */

static uint16_t port_of(const gh_listen_cfg *l)
{
    if (l->sa.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&l->sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&l->sa)->sin_port);
}

/* The listener a request to this authority would arrive on: the one with
 * its port, else the first (its path_strict and TLS apply). */
static const gh_listen_cfg *listener_for(const gh_config *cfg, gh_str authority, bool *tls)
{
    const char *colon = authority.len ? memrchr(authority.p, ':', authority.len) : NULL;
    const char *rb = authority.len ? memrchr(authority.p, ']', authority.len) : NULL;
    long port = colon && (!rb || colon > rb) ? strtol(colon + 1, NULL, 10) : (*tls ? 443 : 80);
    for (size_t i = 0; i < cfg->nlistens; i++)
        if (port_of(&cfg->listens[i]) == port)
            return &cfg->listens[i];
    return cfg->nlistens ? &cfg->listens[0] : NULL;
}

static char *arena_copy(gh_exchange *ex, const char *s, size_t n)
{
    char *p = gh_arena_alloc(&ex->arena, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static bool build(gh_exchange *ex, gh_snapshot *s, const gh_dry_request *rq, const char **err)
{
    size_t ulen = strlen(rq->url);
    char *method = arena_copy(ex, rq->method, strlen(rq->method));
    char *url = arena_copy(ex, rq->url, ulen);
    gh_header *hs = gh_arena_alloc(&ex->arena, (rq->nheaders + 1) * sizeof(*hs));
    if (!method || !url || !hs) {
        *err = "out of memory";
        return false;
    }
    if (rq->nheaders)
        memcpy(hs, rq->headers, rq->nheaders * sizeof(*hs));   /* the dispatcher edits the array */
    ex->method = gh_str_c(method);
    ex->method_bit = gh_method_bit(method, ex->method.len);
    ex->head_request = ex->method_bit == GH_M_HEAD;
    ex->target = (gh_str){ url, ulen };
    ex->headers = hs;
    ex->nheaders = rq->nheaders;
    ex->minor = 1;
    ex->keep_alive = true;
    ex->body_done = true;
    ex->tls = strncasecmp(url, "https://", 8) == 0;
    if (url[0] != '/' && strncasecmp(url, "http://", 7) != 0 && !ex->tls) {
        *err = "the URL must be a path (/x) or absolute (http://host/x)";
        return false;
    }
    gh_split_target(ex);
    const gh_header *host = gh_exchange_header(ex, "host", 4);
    if (!ex->authority.p && host) {
        ex->authority = (gh_str){ host->value, host->value_len };
        ex->host = gh_host_of(&ex->arena, host->value, host->value_len);
    }
    if (ex->authority.len && !gh_h1_valid_host(ex->authority.p, ex->authority.len)) {
        *err = "invalid host";
        return false;
    }
    const gh_listen_cfg *l = listener_for(s->cfg, ex->authority, &ex->tls);
    ex->path_strict = l ? l->path_strict : true;
    ex->local_port = l ? port_of(l) : 0;
    snprintf(ex->peer, sizeof(ex->peer), "%s", rq->client ? rq->client : "127.0.0.1");
    memcpy(ex->client, ex->peer, sizeof(ex->client));
    gh_exchange_set_request_id(ex);
    return true;
}

bool gh_dry_run_request(gh_snapshot *s, const gh_dry_request *rq, gh_dry_run *rec, const char **err)
{
    memset(rec, 0, sizeof(*rec));
    struct gh_dry_state *st = calloc(1, sizeof(*st));
    if (!st || uv_loop_init(&st->loop) != 0) {
        free(st);
        *err = "out of memory";
        return false;
    }
    rec->state = st;
    st->env.loop = &st->loop;
    st->env.unpin = no_unpin;
    st->env.limits = &s->cfg->limits;
    st->env.rng[0] = (rq->seed ? rq->seed : uv_hrtime()) | 1;   /* a random canary places each run anew */
    st->env.rng[1] = (rq->seed ? rq->seed : (uint64_t)getpid()) * 0x9e3779b97f4a7c15ull;
    st->pin.snap = s;
    gh_exchange *ex = gh_exchange_new(&st->env);
    if (!ex) {
        *err = "out of memory";
        return false;
    }
    rec->ex = ex;
    ex->down = &recorder;
    ex->pin = &st->pin;
    ex->cfg = s->cfg;
    ex->dry_run = rec;
    if (!build(ex, s, rq, err))
        return false;
    gh_dispatch(ex);
    while (!rec->reached && !rec->status && uv_run(&st->loop, UV_RUN_ONCE))
        ;   /* a plugin that WAITs (basic_auth's thread pool) */
    return true;
}

void gh_dry_run_free(gh_dry_run *rec)
{
    struct gh_dry_state *st = rec->state;
    if (!st)
        return;
    if (rec->ex)
        gh_exchange_free(rec->ex);
    gh_exchange_cache_clear(&st->env);
    uv_run(&st->loop, UV_RUN_DEFAULT);
    uv_loop_close(&st->loop);
    free(st);
    rec->state = NULL;
    rec->ex = NULL;
}
