/* redis.c — connections and requests of a worker's Redis client.
 *
 * hiredis owns each connection's pipeline and calls back once per command
 * (with NULL when the connection goes). A gh_redis_req is what we hand it:
 * the caller's callback, a deadline, and the formatted command for a
 * redirection. The caller may stop waiting (timeout, cancel) before hiredis
 * lets go of the req, so a req is recycled only when both are done. */
#include "cluster/redis_int.h"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/adapters/libuv.h>
#include "core/log.h"
#include "observe/metrics.h"
#include "tls/tls.h"

static void node_connect(gh_redis_node *n);
static void arm_timer(gh_redis *c);
static void final_free(gh_redis *c);

const char *gh_redis_status_name(int status)
{
    static const char *const names[] = {
        [GH_REDIS_OK] = "ok", [GH_REDIS_ERROR] = "error", [GH_REDIS_TIMEOUT] = "timeout",
        [GH_REDIS_UNAVAILABLE] = "unavailable", [GH_REDIS_CLOSED] = "closed",
    };
    return status >= 0 && status <= GH_REDIS_CLOSED ? names[status] : "?";
}

/* A stalled server (SIGSTOP, a full disk): replies stop although TCP stands.
 * After this long without any reply the connection is dropped and redialled,
 * so hiredis's buffers cannot grow without end. */
static uint64_t stall_ms(const gh_redis *c)
{
    uint64_t t = c->cfg.timeout_ms * 20;
    return t < 1000 ? 1000 : t;
}

/* ------------------------------------------------------------ requests -- */

static void unlink_waiting(gh_redis_req *req)
{
    req->prev->next = req->next;
    req->next->prev = req->prev;
    req->next = req->prev = NULL;
}

static void release(gh_redis_req *req)
{
    if (req->waiting || req->in_redis)
        return;
    gh_redis *c = req->c;
    free(req->cmd);
    req->cmd = NULL;
    req->next = c->free_reqs;
    c->free_reqs = req;
}

void gh_redis_answer(gh_redis_req *req, int status, const redisReply *r)
{
    if (!req->waiting)
        return;
    gh_redis *c = req->c;
    bool was_head = c->waiting.next == req;
    unlink_waiting(req);
    req->waiting = false;
    if (req->lcb)
        gh_redis_verdict_answer(req, status, r);
    else
        req->cb(req->ctx, status, status == GH_REDIS_OK || status == GH_REDIS_ERROR ? r : NULL);
    if (was_head && !c->freeing)
        arm_timer(c);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    gh_redis_node *n = ac->data;
    gh_redis_req *req = privdata;
    gh_redis *c = req->c;
    redisReply *r = reply;
    req->in_redis = false;
    n->inflight--;
    if (r)
        n->last_reply_ms = uv_now(c->loop);
    if (req->waiting) {
        if (!r) {
            gh_redis_answer(req, c->freeing ? GH_REDIS_CLOSED : GH_REDIS_UNAVAILABLE, NULL);
        } else if (r->type == REDIS_REPLY_ERROR) {
            bool again = false;
            if (req->retries < GH_REDIS_MAX_RETRIES) {
                if (gh_redis_is_noscript(r)) {
                    /* flushed or failed over: load again, then the same EVALSHA */
                    req->retries++;
                    gh_redis_scripts_load(n);
                    again = gh_redis_node_send(n, req);
                } else if (c->cfg.cluster) {
                    again = gh_redis_redirect(c, req, r);
                }
            }
            if (!again)
                gh_redis_answer(req, GH_REDIS_ERROR, r);
        } else {
            gh_redis_answer(req, GH_REDIS_OK, r);
        }
    }
    release(req);
}

bool gh_redis_node_usable(const gh_redis_node *n)
{
    return n && n->ac && !(n->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) &&
           n->inflight < GH_REDIS_MAX_INFLIGHT;
}

bool gh_redis_node_send(gh_redis_node *n, gh_redis_req *req)
{
    if (!gh_redis_node_usable(n) ||
        redisAsyncFormattedCommand(n->ac, on_reply, req, req->cmd, req->cmdlen) != REDIS_OK)
        return false;
    if (n->inflight++ == 0)
        n->last_reply_ms = uv_now(n->c->loop);   /* the stall clock starts now */
    req->in_redis = true;
    return true;
}

bool gh_redis_node_internal(gh_redis_node *n, redisCallbackFn *fn, int argc, const char **argv,
                            const size_t *argvlen)
{
    return n->ac && redisAsyncCommandArgv(n->ac, fn, n, argc, argv, argvlen) == REDIS_OK;
}

/* Takes cmd (malloc'd). GH_REDIS_OK: sent, *out waits for its answer. */
int gh_redis_submit(gh_redis *c, char *cmd, size_t len, int slot, gh_redis_req **out)
{
    gh_redis_node *n = c->freeing ? NULL : gh_redis_route(c, slot);
    if (!gh_redis_node_usable(n)) {
        free(cmd);
        return c->freeing ? GH_REDIS_CLOSED : GH_REDIS_UNAVAILABLE;
    }
    gh_redis_req *req = c->free_reqs;
    if (req)
        c->free_reqs = req->next;
    else if (!(req = malloc(sizeof(*req)))) {
        free(cmd);
        return GH_REDIS_UNAVAILABLE;
    }
    *req = (gh_redis_req){ .c = c, .seq = ++c->seq, .slot = slot, .cmd = cmd, .cmdlen = len,
                           .deadline = uv_now(c->loop) + c->cfg.timeout_ms };
    if (!gh_redis_node_send(n, req)) {
        release(req);
        return GH_REDIS_UNAVAILABLE;
    }
    req->waiting = true;
    bool first = c->waiting.next == &c->waiting;
    req->prev = c->waiting.prev;
    req->next = &c->waiting;
    c->waiting.prev->next = req;
    c->waiting.prev = req;
    if (first)
        arm_timer(c);
    *out = req;
    return GH_REDIS_OK;
}

int gh_redis_command(gh_redis *c, int argc, const char **argv, const size_t *argvlen, int key_index,
                     gh_redis_cb cb, void *ctx, gh_redis_handle *h)
{
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return GH_REDIS_UNAVAILABLE;
    int slot = key_index >= 0 && key_index < argc ? (int)gh_redis_key_slot(argv[key_index], argvlen[key_index])
                                                  : -1;
    gh_redis_req *req;
    int st = gh_redis_submit(c, cmd, (size_t)len, slot, &req);
    if (st == GH_REDIS_OK) {
        req->cb = cb;
        req->ctx = ctx;
        *h = (gh_redis_handle){ req, req->seq };
    }
    return st;
}

void gh_redis_cancel(gh_redis_handle h)
{
    gh_redis_req *req = h.req;
    if (!req || req->seq != h.seq || !req->waiting)
        return;
    gh_redis *c = req->c;
    bool was_head = c->waiting.next == req;
    unlink_waiting(req);
    req->waiting = false;
    if (was_head && !c->freeing)
        arm_timer(c);
    release(req);
}

/* -------------------------------------------------------------- timer ---- */

static void on_timer(uv_timer_t *t)
{
    gh_redis *c = t->data;
    uint64_t now = uv_now(c->loop);
    while (c->waiting.next != &c->waiting && c->waiting.next->deadline <= now) {
        gh_redis_req *req = c->waiting.next;
        gh_redis_answer(req, GH_REDIS_TIMEOUT, NULL);
        release(req);
        gh_metrics_redis_error();
    }
    for (size_t i = 0; i < c->nnodes; i++) {
        gh_redis_node *n = c->nodes[i];
        if (n->ac && n->inflight && now - n->last_reply_ms >= stall_ms(c)) {
            gh_log_warn("redis %s: no reply for %llu ms; reconnecting", n->name,
                        (unsigned long long)(now - n->last_reply_ms));
            redisAsyncFree(n->ac);   /* owed callbacks run with NULL, then on_disconnect */
        }
    }
    arm_timer(c);
}

static void arm_timer(gh_redis *c)
{
    uint64_t now = uv_now(c->loop), next = UINT64_MAX;
    if (c->waiting.next != &c->waiting)
        next = c->waiting.next->deadline;
    for (size_t i = 0; i < c->nnodes; i++) {
        const gh_redis_node *n = c->nodes[i];
        if (n->ac && n->inflight && n->last_reply_ms + stall_ms(c) < next)
            next = n->last_reply_ms + stall_ms(c);
    }
    if (next == UINT64_MAX)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, next > now ? next - now : 0, 0);
}

/* -------------------------------------------------------- connections -- */

static void on_retry(uv_timer_t *t) { node_connect(t->data); }

static void schedule_retry(gh_redis_node *n, const char *why)
{
    gh_redis *c = n->c;
    gh_redis_tls_close(n);
    n->ac = NULL;
    n->state = GH_NODE_DOWN;
    if (c->freeing)
        return;
    gh_metrics_redis_error();
    if (n->was_up || n->backoff_ms == 0) {
        gh_log_warn("redis %s: %s; reconnecting", n->name, why);
        n->was_up = false;
    } else {
        gh_log_debug("redis %s: %s; next try in %llu ms", n->name, why, (unsigned long long)n->backoff_ms);
    }
    if (n->backoff_ms == 0)
        n->backoff_ms = GH_REDIS_BACKOFF_MIN_MS;
    uv_timer_start(&n->retry, on_retry, n->backoff_ms, 0);
    n->backoff_ms = n->backoff_ms * 2 > GH_REDIS_BACKOFF_MAX_MS ? GH_REDIS_BACKOFF_MAX_MS : n->backoff_ms * 2;
    if (c->cfg.cluster)
        gh_redis_refresh_slots(c);   /* a master may have moved */
    arm_timer(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    gh_redis_node *n = ac->data;
    if (status != REDIS_OK) {
        schedule_retry(n, ac->errstr[0] ? ac->errstr : "cannot connect");   /* hiredis frees ac */
        return;
    }
    n->state = GH_NODE_UP;
    if (!n->was_up)
        gh_log_info("redis %s: connected", n->name);
    n->was_up = true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    gh_redis_node *n = ac->data;
    schedule_retry(n, status == REDIS_OK ? "connection closed" : (ac->errstr[0] ? ac->errstr : "connection lost"));
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    gh_redis_node *n = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        /* wrong credentials: every command would fail; retry with back-off */
        if (!n->auth_failed)
            gh_log_error("redis %s: AUTH refused: %s", n->name, r->str);
        n->auth_failed = true;
        n->was_up = false;
        redisAsyncDisconnect(ac);
    }
}

static void dial(gh_redis_node *n, const char *ip, uint16_t port)
{
    gh_redis *c = n->c;
    redisAsyncContext *ac = redisAsyncConnect(ip, port);
    if (!ac || ac->err) {
        char why[160];
        snprintf(why, sizeof(why), "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(n, why);
        return;
    }
    ac->data = n;
    if (redisLibuvAttach(ac, c->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(n, "cannot watch the socket");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    n->ac = ac;
    n->state = GH_NODE_CONNECTING;
    n->answered = false;
    if (n->tls)
        gh_redis_tls_expect(n, ac->c.fd);
    /* first on the wire, ahead of any request: AUTH (on every connect), then the scripts */
    if (c->cfg.password.len) {
        const char *argv[3] = { "AUTH", c->cfg.username.p, c->cfg.password.p };
        size_t len[3] = { 4, c->cfg.username.len, c->cfg.password.len };
        if (c->cfg.username.len)
            gh_redis_node_internal(n, on_auth, 3, argv, len);
        else
            gh_redis_node_internal(n, on_auth, 2, (const char *[]){ argv[0], argv[2] },
                                   (size_t[]){ len[0], len[2] });
    }
    gh_redis_scripts_load(n);
    if (c->cfg.cluster && !c->slots_known)
        gh_redis_refresh_slots(c);
}

/* Plain: hiredis dials Redis. TLS: the bridge first, then hiredis dials it. */
static void connect_to(gh_redis_node *n, const char *ip)
{
    gh_redis *c = n->c;
    if (!c->cfg.tls)
        dial(n, ip, n->port);
    else if (!c->tls || !c->tls_port)
        schedule_retry(n, "no TLS bridge (TLS context or loopback listener missing)");
    else if (gh_redis_tls_start(n, ip))
        n->state = GH_NODE_CONNECTING;
    else
        schedule_retry(n, "cannot start a TLS connection");
}

void gh_redis_node_tls_ready(gh_redis_node *n) { dial(n, "127.0.0.1", n->c->tls_port); }

void gh_redis_node_tls_failed(gh_redis_node *n, const char *why)
{
    if (n->ac) {
        /* hiredis is on the bridge: closing it gives hiredis EOF, and its
         * disconnect starts the retry */
        gh_log_debug("redis %s: %s", n->name, why);
        gh_redis_tls_close(n);
    } else {
        schedule_retry(n, why);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    gh_redis_node *n = req->data;
    gh_redis *c = n->c;
    n->resolving = false;
    c->refs--;
    char ip[INET6_ADDRSTRLEN] = "";
    if (status == 0 && res) {
        if (res->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, ip, sizeof(ip));
        else
            uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof(ip));
    }
    uv_freeaddrinfo(res);
    if (c->freeing) {
        if (c->refs == 0)
            final_free(c);
        return;
    }
    if (!ip[0]) {
        schedule_retry(n, status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    connect_to(n, ip);
}

/* Names are looked up with uv_getaddrinfo (hiredis would block the loop). */
static void node_connect(gh_redis_node *n)
{
    gh_redis *c = n->c;
    unsigned char buf[sizeof(struct in6_addr)];
    if (c->freeing || n->ac || n->resolving || n->tls)
        return;
    if (inet_pton(AF_INET, n->host, buf) == 1 || inet_pton(AF_INET6, n->host, buf) == 1) {
        connect_to(n, n->host);
        return;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    n->gai.data = n;
    n->state = GH_NODE_RESOLVING;
    if (uv_getaddrinfo(c->loop, &n->gai, on_resolved, n->host, NULL, &hints) == 0) {
        n->resolving = true;
        c->refs++;
    } else {
        schedule_retry(n, "cannot start a name lookup");
    }
}

gh_redis_node *gh_redis_node_find(gh_redis *c, const char *host, size_t hostlen, uint16_t port)
{
    for (size_t i = 0; i < c->nnodes; i++) {
        gh_redis_node *n = c->nodes[i];
        if (n->port == port && strlen(n->host) == hostlen && memcmp(n->host, host, hostlen) == 0)
            return n;
    }
    return NULL;
}

gh_redis_node *gh_redis_node_add(gh_redis *c, const char *host, size_t hostlen, uint16_t port)
{
    gh_redis_node *n = gh_redis_node_find(c, host, hostlen, port);
    if (n || c->nnodes >= 1024)   /* a cluster of more masters is not something we route to */
        return n;
    if (c->nnodes == c->capnodes) {
        size_t cap = c->capnodes ? c->capnodes * 2 : 4;
        gh_redis_node **a = realloc(c->nodes, cap * sizeof(*a));
        if (!a)
            return NULL;
        c->nodes = a;
        c->capnodes = cap;
    }
    if (!(n = calloc(1, sizeof(*n))))
        return NULL;
    n->c = c;
    n->host = gh_arena_strndup(&c->arena, host, hostlen);
    n->port = port;
    bool v6 = memchr(host, ':', hostlen) != NULL;
    snprintf(n->name, sizeof(n->name), v6 ? "[%s]:%u" : "%s:%u", n->host ? n->host : "?", port);
    if (!n->host) {
        free(n);
        return NULL;
    }
    uv_timer_init(c->loop, &n->retry);
    n->retry.data = n;
    c->refs++;
    c->nodes[c->nnodes++] = n;
    node_connect(n);
    return n;
}

/* ------------------------------------------------------------ lifecycle -- */

static void copy_cfg(gh_redis *c, const gh_redis_cfg *cfg)
{
    c->cfg = *cfg;
    c->cfg.username = gh_arena_str(&c->arena, cfg->username);
    c->cfg.password = gh_arena_str(&c->arena, cfg->password);
    c->cfg.nodes = gh_arena_zalloc(&c->arena, cfg->nnodes * sizeof(*cfg->nodes) + 1);
    for (size_t i = 0; c->cfg.nodes && i < cfg->nnodes; i++) {
        c->cfg.nodes[i] = cfg->nodes[i];
        c->cfg.nodes[i].host = gh_arena_str(&c->arena, cfg->nodes[i].host);
    }
    if (!c->cfg.nodes)
        c->cfg.nnodes = 0;
    if (cfg->tls && (c->cfg.tls = gh_arena_zalloc(&c->arena, sizeof(*cfg->tls)))) {
        *c->cfg.tls = *cfg->tls;   /* kept for reload comparisons: the paths, not the files */
        c->cfg.tls->ca = gh_arena_str(&c->arena, cfg->tls->ca);
        c->cfg.tls->sni = gh_arena_str(&c->arena, cfg->tls->sni);
        c->cfg.tls->cert = gh_arena_str(&c->arena, cfg->tls->cert);
        c->cfg.tls->key = gh_arena_str(&c->arena, cfg->tls->key);
    }
}

gh_redis *gh_redis_new(uv_loop_t *loop, const gh_redis_cfg *cfg, gh_tls_client *tls)
{
    gh_redis *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    gh_arena_init(&c->arena, 4096);
    copy_cfg(c, cfg);
    c->waiting.next = c->waiting.prev = &c->waiting;
    if (c->cfg.cluster && !(c->slots = calloc(GH_REDIS_SLOTS, sizeof(*c->slots)))) {
        gh_arena_free(&c->arena);
        free(c);
        return NULL;
    }
    gh_redis_scripts_init(c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->refs = 1;
    if (c->cfg.tls && tls) {
        gh_tls_client_ref(tls);
        c->tls = tls;
        if (gh_redis_tls_listen(c) != 0)
            gh_log_error("redis: cannot open the TLS bridge's loopback listener");
    }
    for (size_t i = 0; i < c->cfg.nnodes; i++)
        gh_redis_node_add(c, c->cfg.nodes[i].host.p, c->cfg.nodes[i].host.len, c->cfg.nodes[i].port);
    return c;
}

const gh_redis_cfg *gh_redis_config(const gh_redis *c) { return &c->cfg; }

bool gh_redis_ready(const gh_redis *c)
{
    if (c->cfg.cluster && !c->slots_known)
        return false;
    for (size_t i = 0; i < c->nnodes; i++)
        if (!c->nodes[i]->ac || !c->nodes[i]->answered)
            return false;
    return c->nnodes > 0;
}

static void final_free(gh_redis *c)
{
    for (size_t i = 0; i < c->nnodes; i++)
        free(c->nodes[i]);
    free(c->nodes);
    while (c->free_reqs) {
        gh_redis_req *r = c->free_reqs;
        c->free_reqs = r->next;
        free(r);
    }
    free(c->slots);
    gh_tls_client_free(c->tls);
    gh_arena_free(&c->arena);
    free(c);
}

void gh_redis_unref(gh_redis *c)
{
    if (--c->refs == 0)
        final_free(c);
}

static void on_timer_closed(uv_handle_t *h) { gh_redis_unref(h->data); }
static void on_retry_closed(uv_handle_t *h) { gh_redis_unref(((gh_redis_node *)h->data)->c); }

void gh_redis_free(gh_redis *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = true;
    while (c->waiting.next != &c->waiting) {
        gh_redis_req *req = c->waiting.next;
        gh_redis_answer(req, GH_REDIS_CLOSED, NULL);
        release(req);
    }
    for (size_t i = 0; i < c->nnodes; i++) {
        gh_redis_node *n = c->nodes[i];
        if (n->ac)
            redisAsyncFree(n->ac);   /* owed callbacks run with NULL: their reqs are recycled */
        n->ac = NULL;
        gh_redis_tls_close(n);
        if (n->resolving)
            uv_cancel((uv_req_t *)&n->gai);   /* on_resolved still runs, with UV_ECANCELED */
        uv_close((uv_handle_t *)&n->retry, on_retry_closed);
    }
    gh_redis_tls_unlisten(c);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
