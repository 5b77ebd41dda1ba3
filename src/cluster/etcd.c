/* etcd.c — etcd v3 through its HTTP/JSON gateway (POST /v3/kv/range,
 * /v3/watch, /v3/kv/txn, /v3/auth/authenticate; keys and values base64).
 * One HTTP/1.1 request per connection (Connection: close): the watch is one
 * long streamed response, the rest are rare. Responses go through the
 * project's h1 parser and chunked decoder. */
#include "cluster/etcd.h"
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include "core/log.h"
#include "http/h1_parse.h"
#include "tls/tls.h"

#define MAX_RESPONSE (64u << 20)   /* a configuration document, base64'd, in JSON */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define CALL_TIMEOUT_MS 5000       /* a server that accepts but never answers */

/* ------------------------------------------------------------ base64 --- */

static char *b64_encode(const char *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)p, (int)n);
    return out;
}

static char *b64_decode(const char *s, size_t *outlen)
{
    size_t n = strlen(s);
    char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    int got = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n) : 0;
    if (got < 0 || n % 4) {
        free(out);
        return NULL;
    }
    size_t len = (size_t)got;
    for (size_t i = n; i > 0 && s[i - 1] == '=' && len > 0; i--)
        len--;   /* EVP_DecodeBlock counts the padding as zero bytes */
    out[len] = '\0';
    *outlen = len;
    return out;
}

/* grpc-gateway writes int64 as strings and leaves zero values out. */
static int64_t jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

/* -------------------------------------------------------------- call --- */

typedef struct call call;
typedef void (*call_json_fn)(call *c, json_t *j);       /* each object (stream) or the answer */
typedef void (*call_fail_fn)(call *c, const char *why); /* then the call is gone */

struct call {
    uv_loop_t *loop;
    uv_getaddrinfo_t gai;
    uv_poll_t poll;
    int fd;
    int phase;                    /* PH_* */
    gh_transport *tp;             /* plain or TLS, once connected */
    gh_tls_client *tls;           /* https endpoints */
    char host[256];               /* the name TLS checks */
    uv_buf_t out;
    size_t outoff;
    char *in, *body;              /* raw bytes; decoded body */
    size_t inlen, incap, blen, bcap, used;
    size_t scanned;
    size_t jscan;                 /* a watch: body scanned for object ends up to here */
    int jdepth;                   /* ... nesting there, and whether inside a string */
    bool jstr, jesc;
    int head;                     /* head length once parsed */
    int status;
    gh_h1_message m;
    gh_header hs[64];
    gh_chunked ck;
    uv_timer_t deadline;          /* an answer (a watch: its first message) within CALL_TIMEOUT_MS */
    int handles;                  /* still to close before the call is freed */
    bool stream, done, poll_open, resolving;
    char port[8];
    call_json_fn on_json;
    call_fail_fn on_fail;
    void *ud;
};

enum { PH_CONNECTING, PH_HANDSHAKE, PH_IO };

static void call_closed(uv_handle_t *h)
{
    call *c = h->data;
    if (--c->handles > 0)
        return;
    if (c->tp && c->tp->ops->destroy)
        c->tp->ops->destroy(c->tp);
    if (c->fd >= 0)
        close(c->fd);
    free(c->out.base);
    free(c->in);
    free(c->body);
    free(c);
}

/* Ends the call; no callback runs after this. */
static void call_free(call *c)
{
    c->done = true;
    if (c->resolving || uv_is_closing((uv_handle_t *)&c->deadline))
        return;   /* on_resolved frees it, or already closing */
    c->handles = 1 + c->poll_open;
    uv_close((uv_handle_t *)&c->deadline, call_closed);
    if (c->poll_open)
        uv_close((uv_handle_t *)&c->poll, call_closed);
}

static void call_fail(call *c, const char *fmt, const char *detail)
{
    if (c->done)
        return;
    char why[512];
    snprintf(why, sizeof(why), fmt, detail);
    c->done = true;
    c->on_fail(c, why);
}

static bool body_add(call *c, const char *p, size_t n)
{
    if (c->blen + n + 1 > c->bcap) {
        size_t cap = c->bcap ? c->bcap : 4096;
        while (cap < c->blen + n + 1)
            cap *= 2;
        char *nb = cap <= MAX_RESPONSE ? realloc(c->body, cap) : NULL;
        if (!nb)
            return false;
        c->body = nb;
        c->bcap = cap;
    }
    memcpy(c->body + c->blen, p, n);
    c->blen += n;
    c->body[c->blen] = '\0';
    return true;
}

/* A watch: whether a whole top-level JSON object lies in the body past
 * what was delivered. Each byte is scanned once, so a large message
 * arriving in many reads is parsed once, not once per read. */
static bool object_ready(call *c)
{
    for (; c->jscan < c->blen; c->jscan++) {
        char ch = c->body[c->jscan];
        if (c->jstr) {
            if (c->jesc)
                c->jesc = false;
            else if (ch == '\\')
                c->jesc = true;
            else if (ch == '"')
                c->jstr = false;
        } else if (ch == '"') {
            c->jstr = true;
        } else if (ch == '{' || ch == '[') {
            c->jdepth++;
        } else if ((ch == '}' || ch == ']') && --c->jdepth <= 0) {
            c->jdepth = 0;
            c->jscan++;
            return true;
        }
    }
    return false;
}

/* Whole JSON objects in the body so far (a watch sends one per message).
 * A plain call's answer is parsed once, when its body is complete: a large
 * document arrives in many reads, and a prefix of it is not an error. */
static void deliver(call *c, bool final)
{
    if (!c->stream && !final)
        return;
    while (!c->done && c->used < c->blen) {
        json_error_t je;
        const char *p = c->body + c->used;
        size_t n = c->blen - c->used;
        while (n && (*p == '\n' || *p == '\r' || *p == ' ')) {
            p++, n--, c->used++;
        }
        if (!n || (c->stream && !final && !object_ready(c)))
            break;
        json_t *j = json_loadb(p, n, JSON_DISABLE_EOF_CHECK, &je);
        if (!j) {   /* a whole answer, or a whole watch message */
            call_fail(c, "invalid JSON from etcd: %s", je.text);
            return;
        }
        c->used += (size_t)je.position;
        if (c->status != 200) {
            const char *msg = json_string_value(json_object_get(j, "message"));
            if (!msg)
                msg = json_string_value(json_object_get(j, "error"));
            call_fail(c, "etcd: %s", msg ? msg : "error status");
            json_decref(j);
            return;
        }
        /* a streamed error arrives as {"error": {...}} */
        const json_t *err = json_object_get(j, "error");
        if (json_is_object(err)) {
            const char *msg = json_string_value(json_object_get(err, "message"));
            call_fail(c, "etcd: %s", msg ? msg : "stream error");
            json_decref(j);
            return;
        }
        uv_timer_stop(&c->deadline);   /* answered; a watch may now be quiet for long */
        c->on_json(c, j);
        json_decref(j);
        if (!c->stream)
            c->done = true;
    }
    if (c->stream && !c->done && c->used) {   /* a long watch keeps only what is not delivered yet */
        memmove(c->body, c->body + c->used, c->blen - c->used + 1);
        c->blen -= c->used;
        c->jscan = c->jscan > c->used ? c->jscan - c->used : 0;
        c->used = 0;
    }
}

static void got_eof(call *c)
{
    if (c->head > 0 && c->m.body == GH_BODY_UNTIL_CLOSE)
        deliver(c, true);
    if (!c->done)
        call_fail(c, "connection to etcd closed: %s", "end of stream");
}

/* n more bytes at c->in + c->inlen: the head, then the body (chunked or not). */
static void got_bytes(call *c, size_t n)
{
    c->inlen += n;
    if (c->head <= 0) {
        if (!gh_h1_head_complete(c->in, c->inlen, &c->scanned))
            return;
        int r = gh_h1_parse_response(c->in, c->inlen, &c->m, c->hs, 64, 65536, false);
        if (r < 0) {
            call_fail(c, "%s", "malformed HTTP response from etcd");
            return;
        }
        c->head = r;
        c->status = c->m.status;
        gh_chunked_init(&c->ck);
        memmove(c->in, c->in + r, c->inlen - (size_t)r);
        c->inlen -= (size_t)r;
    }
    size_t off = 0;
    bool complete = false;
    if (c->m.body == GH_BODY_CHUNKED) {
        while (off < c->inlen) {
            size_t used = 0, dlen = 0;
            const char *d = NULL;
            int rc = gh_chunked_decode(&c->ck, c->in + off, c->inlen - off, &used, &d, &dlen);
            if (rc == GH_CHUNKED_BAD || (dlen && !body_add(c, d, dlen))) {
                call_fail(c, "%s", "bad chunked body from etcd");
                return;
            }
            off += used;
            if (rc == GH_CHUNKED_DONE) {
                complete = true;
                break;
            }
            if (used == 0)
                break;
        }
    } else {
        off = c->inlen;
        if (!body_add(c, c->in, c->inlen)) {
            call_fail(c, "%s", "etcd response too large");
            return;
        }
        complete = c->m.body == GH_BODY_NONE || (c->m.body == GH_BODY_LENGTH && c->blen >= c->m.content_length);
    }
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
    deliver(c, complete);
    if (complete && !c->done)
        call_fail(c, "%s", c->stream ? "etcd ended the watch" : "empty answer from etcd");
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Connect, handshake, then write the request and read what comes, until
 * the socket would block; then wait for what the transport wants. */
static void drive(call *c)
{
    if (c->phase == PH_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            call_fail(c, "cannot connect to etcd: %s", strerror(err));
            return;
        }
        c->tp = c->tls ? gh_tls_connect(c->tls, c->fd, c->host) : &gh_transport_plain;
        if (!c->tp) {
            call_fail(c, "%s", "out of memory");
            return;
        }
        c->phase = PH_HANDSHAKE;
    }
    if (c->phase == PH_HANDSHAKE) {
        int rc = gh_transport_handshake(c->tp, c->fd);
        if (rc == -EAGAIN) {
            uv_poll_start(&c->poll, c->tp->want ? c->tp->want : UV_READABLE, on_poll);
            return;
        }
        if (rc < 0) {
            const char *e = gh_tls_error(c->tp);
            call_fail(c, "TLS handshake with etcd failed: %s", e ? e : "?");
            return;
        }
        c->phase = PH_IO;
    }
    int want = 0;
    while (c->outoff < c->out.len) {
        struct iovec iov = { c->out.base + c->outoff, c->out.len - c->outoff };
        ssize_t w = c->tp->ops->writev(c->tp, c->fd, &iov, 1);
        if (w == -EAGAIN) {
            want |= gh_transport_wants(c->tp, true);
            break;
        }
        if (w < 0) {
            call_fail(c, "cannot write to etcd: %s", strerror((int)-w));
            return;
        }
        c->outoff += (size_t)w;
    }
    for (;;) {
        if (c->incap - c->inlen < 16384) {
            size_t cap = c->incap ? c->incap * 2 : 32768;
            char *nb = cap <= MAX_RESPONSE ? realloc(c->in, cap) : NULL;
            if (!nb) {
                call_fail(c, "%s", "etcd response too large");
                return;
            }
            c->in = nb;
            c->incap = cap;
        }
        ssize_t r = c->tp->ops->read(c->tp, c->fd, c->in + c->inlen, c->incap - c->inlen);
        if (r == -EAGAIN) {
            want |= gh_transport_wants(c->tp, false);
            break;
        }
        if (r == 0) {
            got_eof(c);
            return;
        }
        if (r < 0) {
            const char *e = gh_tls_error(c->tp);
            call_fail(c, "connection to etcd lost: %s", e ? e : strerror((int)-r));
            return;
        }
        got_bytes(c, (size_t)r);
        if (c->done)
            return;
    }
    uv_poll_start(&c->poll, want, on_poll);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    call *c = h->data;
    (void)events;
    if (c->done)
        return;
    if (status < 0) {   /* the socket's own error says more than the poll's */
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        call_fail(c, c->phase == PH_CONNECTING ? "cannot connect to etcd: %s" : "connection to etcd lost: %s",
                  err ? strerror(err) : uv_strerror(status));
        return;
    }
    drive(c);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    call *c = g->data;
    c->resolving = false;
    if (c->done) {   /* abandoned while resolving */
        uv_freeaddrinfo(res);
        call_free(c);
        return;
    }
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        call_fail(c, "cannot resolve the etcd endpoint: %s", uv_strerror(status));
        return;
    }
    c->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = 0;
    if (c->fd < 0 || (connect(c->fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS))
        rc = -errno;
    uv_freeaddrinfo(res);
    if (rc < 0) {
        call_fail(c, "cannot connect to etcd: %s", strerror(-rc));
        return;
    }
    int one = 1, idle = 10, intvl = 5, cnt = 3;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* a watch is quiet for hours: keepalives find a peer that vanished (~25 s) */
    setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    if (uv_poll_init(c->loop, &c->poll, c->fd) < 0) {
        call_fail(c, "%s", "cannot watch the etcd socket");
        return;
    }
    c->poll_open = true;
    c->phase = PH_CONNECTING;
    uv_poll_start(&c->poll, UV_WRITABLE, on_poll);
}

static void on_deadline(uv_timer_t *t)
{
    call_fail(t->data, "etcd did not answer within %s", "5 s");
}

static call *call_start(uv_loop_t *loop, const gh_etcd_endpoint_cfg *ep, gh_tls_client *tls, const char *path,
                        const char *token, json_t *body, bool stream, call_json_fn on_json, call_fail_fn on_fail,
                        void *ud)
{
    call *c = calloc(1, sizeof(*c));
    char *js = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!c || !js) {
        free(c);
        free(js);
        return NULL;
    }
    size_t jl = strlen(js);
    size_t cap = jl + strlen(path) + ep->host.len + (token ? strlen(token) : 0) + 256;
    c->out.base = malloc(cap);
    if (!c->out.base) {
        free(js);
        free(c);
        return NULL;
    }
    int n = snprintf(c->out.base, cap,
                     "POST %s HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: application/json\r\n%s%s%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, ep->host.p, ep->port, token ? "Authorization: " : "", token ? token : "",
                     token ? "\r\n" : "", jl, js);
    free(js);
    c->out.len = (size_t)n;
    c->loop = loop;
    c->fd = -1;
    c->tls = ep->tls ? tls : NULL;
    snprintf(c->host, sizeof(c->host), "%s", ep->host.p);
    c->stream = stream;
    c->on_json = on_json;
    c->on_fail = on_fail;
    c->ud = ud;
    c->poll.data = c;
    c->gai.data = c;
    c->deadline.data = c;
    uv_timer_init(loop, &c->deadline);
    uv_timer_start(&c->deadline, on_deadline, CALL_TIMEOUT_MS, 0);
    snprintf(c->port, sizeof(c->port), "%u", ep->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    c->resolving = true;
    if (uv_getaddrinfo(loop, &c->gai, on_resolved, ep->host.p, c->port, &hints) < 0) {
        c->resolving = false;
        call_free(c);
        return NULL;
    }
    return c;
}

static json_t *key_body(const gh_etcd_cfg *cfg)
{
    char *k = b64_encode(cfg->key.p, cfg->key.len);
    json_t *j = json_pack("{s:s}", "key", k ? k : "");
    free(k);
    return j;
}

static json_t *auth_body(const gh_etcd_cfg *cfg)
{
    return json_pack("{s:s, s:s}", "name", cfg->username.p, "password", cfg->password.p);
}

/* ------------------------------------------------------------ watcher --- */

struct gh_etcd {
    uv_loop_t *loop;
    const gh_etcd_cfg *cfg;
    gh_tls_client *tls;
    gh_etcd_handler h;
    uv_timer_t retry;
    call *cur;
    size_t ep;                    /* endpoint in use */
    size_t failures;              /* in a row */
    unsigned backoff_ms;
    bool told_unreachable, need_range, stopping;
    char *token;
    int64_t seen;                 /* last revision seen (watch resumes after it) */
    int64_t delivered;            /* mod_revision handed to the handler */
};

static void step(gh_etcd *e);
static void on_retry(uv_timer_t *t) { step(t->data); }

static void e_retry(gh_etcd *e, const char *why)
{
    e->cur = NULL;
    if (strstr(why, "auth token") || strstr(why, "permission denied")) {
        free(e->token);   /* expired or revoked: authenticate again */
        e->token = NULL;
    }
    /* the first failure of a streak is a warning; the retries that follow are not news */
    if (e->failures == 0)
        gh_log_warn("etcd %s: %s; retrying with back-off", e->cfg->endpoints[e->ep].url.p, why);
    else
        gh_log_debug("etcd %s: %s; retrying in %u ms", e->cfg->endpoints[e->ep].url.p, why, e->backoff_ms);
    e->ep = (e->ep + 1) % e->cfg->nendpoints;
    if (++e->failures >= e->cfg->nendpoints && !e->told_unreachable) {
        e->told_unreachable = true;
        if (e->h.unreachable)
            e->h.unreachable(e->h.ud, why);
    }
    uv_timer_start(&e->retry, on_retry, e->backoff_ms, 0);
    e->backoff_ms = e->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : e->backoff_ms * 2;
}

static void e_fail(call *c, const char *why)
{
    gh_etcd *e = c->ud;
    call_free(c);
    e_retry(e, why);
}

static void deliver_kv(gh_etcd *e, const json_t *kv, bool deleted)
{
    int64_t mod = jint(kv, "mod_revision");
    if (mod && mod <= e->delivered)
        return;
    const char *v = json_string_value(json_object_get(kv, "value"));
    size_t len = 0;
    char *doc = deleted || !kv ? NULL : b64_decode(v ? v : "", &len);
    if (mod)
        e->delivered = mod;
    e->h.value(e->h.ud, doc, len, mod);
    free(doc);
}

static void on_watch(call *c, json_t *j)
{
    gh_etcd *e = c->ud;
    const json_t *r = json_object_get(j, "result");
    if (!r)
        return;
    int64_t rev = jint(json_object_get(r, "header"), "revision");
    if (jint(r, "compact_revision") > 0) {
        /* compacted past our revision: read the key afresh, then watch on */
        gh_log_info("etcd watch compacted at revision %lld; reading the key again",
                    (long long)jint(r, "compact_revision"));
        call_free(c);
        e->cur = NULL;
        e->need_range = true;
        step(e);
        return;
    }
    if (json_is_true(json_object_get(r, "canceled"))) {
        const char *why = json_string_value(json_object_get(r, "cancel_reason"));
        e_fail(c, why ? why : "watch canceled");
        return;
    }
    if (json_is_true(json_object_get(r, "created"))) {
        if (e->failures)
            gh_log_info("etcd %s: watching %s again from revision %lld", e->cfg->endpoints[e->ep].url.p,
                        e->cfg->key.p, (long long)e->seen + 1);
        e->failures = 0;
        e->backoff_ms = BACKOFF_MIN_MS;
    }
    const json_t *evs = json_object_get(r, "events");
    size_t i;
    const json_t *ev;
    json_array_foreach(evs, i, ev)
    {
        const json_t *kv = json_object_get(ev, "kv");
        const char *type = json_string_value(json_object_get(ev, "type"));
        deliver_kv(e, kv, type && strcmp(type, "DELETE") == 0);
        if (jint(kv, "mod_revision") > e->seen)
            e->seen = jint(kv, "mod_revision");
    }
    if (rev > e->seen && !json_array_size(evs) && !json_is_true(json_object_get(r, "created")))
        e->seen = rev;   /* progress notification */
}

static void on_range(call *c, json_t *j)
{
    gh_etcd *e = c->ud;
    call_free(c);
    e->cur = NULL;
    e->need_range = false;
    e->seen = jint(json_object_get(j, "header"), "revision");
    const json_t *kv = json_array_get(json_object_get(j, "kvs"), 0);
    if (kv)
        deliver_kv(e, kv, false);
    else
        e->h.value(e->h.ud, NULL, 0, 0);
    step(e);
}

static void on_auth(call *c, json_t *j)
{
    gh_etcd *e = c->ud;
    call_free(c);
    e->cur = NULL;
    const char *t = json_string_value(json_object_get(j, "token"));
    free(e->token);
    e->token = t ? strdup(t) : NULL;
    if (!e->token) {
        e_retry(e, "no token in the authenticate answer");
        return;
    }
    step(e);
}

static void step(gh_etcd *e)
{
    if (e->stopping || e->cur)
        return;
    const gh_etcd_endpoint_cfg *ep = &e->cfg->endpoints[e->ep];
    if (e->cfg->username.len && !e->token) {
        e->cur = call_start(e->loop, ep, e->tls, "/v3/auth/authenticate", NULL, auth_body(e->cfg), false, on_auth,
                            e_fail, e);
    } else if (e->need_range || e->seen == 0) {
        e->cur = call_start(e->loop, ep, e->tls, "/v3/kv/range", e->token, key_body(e->cfg), false, on_range,
                            e_fail, e);
    } else {
        json_t *k = key_body(e->cfg);
        json_object_set_new(k, "start_revision", json_integer((json_int_t)(e->seen + 1)));
        e->cur = call_start(e->loop, ep, e->tls, "/v3/watch", e->token, json_pack("{s:o}", "create_request", k), true,
                            on_watch, e_fail, e);
    }
    if (!e->cur)
        uv_timer_start(&e->retry, on_retry, BACKOFF_MAX_MS, 0);
}

gh_etcd *gh_etcd_start(uv_loop_t *loop, const gh_etcd_cfg *cfg, gh_tls_client *tls, gh_etcd_handler h)
{
    gh_etcd *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->loop = loop;
    e->cfg = cfg;
    e->tls = tls;
    e->h = h;
    e->backoff_ms = BACKOFF_MIN_MS;
    e->need_range = true;
    uv_timer_init(loop, &e->retry);
    e->retry.data = e;
    step(e);
    return e;
}

static void e_closed(uv_handle_t *t)
{
    gh_etcd *e = t->data;
    free(e->token);
    free(e);
}

void gh_etcd_stop(gh_etcd *e)
{
    if (!e)
        return;
    e->stopping = true;
    if (e->cur)
        call_free(e->cur);
    uv_close((uv_handle_t *)&e->retry, e_closed);
}

/* ---------------------------------------------------- one-shot calls --- */

typedef struct oneshot {
    json_t *answer;
    char err[512];
} oneshot;

static void os_json(call *c, json_t *j)
{
    oneshot *o = c->ud;
    o->answer = json_incref(j);
    call_free(c);
}

static void os_fail(call *c, const char *why)
{
    oneshot *o = c->ud;
    snprintf(o->err, sizeof(o->err), "%s", why);
    call_free(c);
}

/* One request, endpoints in order until one answers. */
static json_t *request(const gh_etcd_cfg *cfg, gh_tls_client *tls, const char *path, const char *token, json_t *body,
                       char *err,
                       size_t errlen)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    json_t *answer = NULL;
    for (size_t i = 0; i < cfg->nendpoints && !answer; i++) {
        oneshot o = { 0 };
        if (!call_start(&loop, &cfg->endpoints[i], tls, path, token, json_incref(body), false, os_json, os_fail, &o))
            snprintf(o.err, sizeof(o.err), "out of memory");
        uv_run(&loop, UV_RUN_DEFAULT);
        answer = o.answer;
        if (!answer)
            snprintf(err, errlen, "%s: %s", cfg->endpoints[i].url.p, o.err);
        /* an answer with an error status is final: no other endpoint would say otherwise */
        if (!answer && strncmp(o.err, "etcd: ", 6) == 0)
            break;
    }
    json_decref(body);
    uv_loop_close(&loop);
    return answer;
}

static bool authenticate(const gh_etcd_cfg *cfg, gh_tls_client *tls, char **token, char *err, size_t errlen)
{
    *token = NULL;
    if (!cfg->username.len)
        return true;
    json_t *a = request(cfg, tls, "/v3/auth/authenticate", NULL, auth_body(cfg), err, errlen);
    const char *t = json_string_value(json_object_get(a, "token"));
    *token = t ? strdup(t) : NULL;
    json_decref(a);
    if (a && !*token)
        snprintf(err, errlen, "no token in the authenticate answer");
    return *token != NULL;
}

bool gh_etcd_get(const gh_etcd_cfg *cfg, gh_tls_client *tls, char **value, size_t *len, int64_t *mod_revision,
                 char *err, size_t errlen)
{
    char *token;
    *value = NULL;
    *len = 0;
    *mod_revision = 0;
    if (!authenticate(cfg, tls, &token, err, errlen))
        return false;
    json_t *a = request(cfg, tls, "/v3/kv/range", token, key_body(cfg), err, errlen);
    free(token);
    if (!a)
        return false;
    const json_t *kv = json_array_get(json_object_get(a, "kvs"), 0);
    bool ok = true;
    if (kv) {
        const char *v = json_string_value(json_object_get(kv, "value"));
        *mod_revision = jint(kv, "mod_revision");
        *value = b64_decode(v ? v : "", len);
        if (!*value) {
            snprintf(err, errlen, "the stored value is not valid base64");
            ok = false;
        }
    }
    json_decref(a);
    return ok;
}

bool gh_etcd_put_if(const gh_etcd_cfg *cfg, gh_tls_client *tls, const char *value, size_t len, int64_t expect,
                    bool *conflict, int64_t *revision, char *err, size_t errlen)
{
    char *token;
    *conflict = false;
    if (!authenticate(cfg, tls, &token, err, errlen))
        return false;
    char *k = b64_encode(cfg->key.p, cfg->key.len), *v = b64_encode(value, len);
    json_t *body = k && v ? json_pack("{s:[{s:s, s:s, s:s, s:I}], s:[{s:{s:s, s:s}}]}", "compare", "key", k, "target",
                                      "MOD", "result", "EQUAL", "mod_revision", (json_int_t)expect, "success",
                                      "request_put", "key", k, "value", v)
                          : NULL;
    free(k);
    free(v);
    json_t *a = body ? request(cfg, tls, "/v3/kv/txn", token, body, err, errlen) : NULL;
    free(token);
    if (!a)
        return false;
    bool ok = json_is_true(json_object_get(a, "succeeded"));
    *revision = jint(json_object_get(a, "header"), "revision");
    json_decref(a);
    if (!ok) {
        *conflict = true;
        snprintf(err, errlen, "the stored document changed since it was read (now at a revision after %lld)",
                 (long long)expect);
    }
    return ok;
}

gh_tls_client *gh_etcd_tls(const gh_config *cfg, gh_diag *diag, bool *ok)
{
    *ok = true;
    if (!cfg->etcd || !cfg->etcd->tls)
        return NULL;   /* the loader gives every https endpoint list a tls section */
    gh_tls_client *c = gh_tls_client_new_plain(cfg, cfg->etcd->tls, diag);
    *ok = c != NULL;
    return c;
}
