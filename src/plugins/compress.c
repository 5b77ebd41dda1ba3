/* compress.c — response compression (SPEC §7.3), a response filter.
 *
 * The request step puts a filter between the producers and the codec
 * (http/exchange.h, gh_exchange_push_filter); the response head decides:
 * a compressible type (`types`, parameters ignored) of a response that is
 * not already encoded, not `no-transform`, not partial, not known to be
 * below `min_size`, gets `Vary: Accept-Encoding`, and the coding the client
 * rates best (http/negotiate.h) among `algorithms` in their order. Then the
 * head loses its length (the codec chunks, or h2 streams), a strong ETag
 * turns weak, and the body streams through zlib (gzip wrapper) or brotli,
 * flushed whenever the producer pauses (nothing more in this loop turn),
 * so server-sent events arrive as they happen. Memory per stream: the encoder and one pool
 * buffer. While the codec holds that buffer (GH_AGAIN), the producer is
 * held too (GH_AGAIN from here); the codec's writable goes to the filter
 * first. Any response not compressed drops the filter at its head. */
#include <brotli/encode.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include "http/negotiate.h"
#include "plugins/plugin.h"

enum { MODE_MORE, MODE_FLUSH, MODE_FINISH };

typedef struct cz {
    gh_resp_filter base;
    const gh_compress_cfg *conf;
    int algo;                       /* GH_COMPRESS_*; -1 until the head chose */
    z_stream *z;                    /* from the worker's pool (or made here) */
    struct zpool *pool;             /* where z goes back; NULL: freed */
    BrotliEncoderState *br;
    gh_buf *out;                    /* one pool buffer: the encoder's output */
    size_t out_len;                 /* bytes of out not yet handed to the codec */
    const uint8_t *in;              /* the producer's bytes not yet encoded */
    size_t in_len;
    bool work;                      /* the encoder has input, a flush or the end to emit */
    bool flush_due;                 /* the producer paused: flush what the encoder holds */
    gh_task flush_task;             /* the pause is seen on the next loop turn */
    gh_exchange *ex;
    bool out_busy;                  /* the codec holds out (GH_AGAIN) */
    bool producer_waits;            /* we answered GH_AGAIN to the producer */
    int ending;                     /* 0, or finishing: 1 finish, 2 with trailers */
    gh_header *trailers;
    size_t ntrailers;
} cz;

static const gh_downstream_ops cz_ops;

/* A worker's spare deflate states for one configuration (its level):
 * deflateReset instead of a quarter of a MiB allocated, faulted in and
 * freed per response. */
#define ZPOOL_MAX 8
typedef struct zpool {
    z_stream *free[ZPOOL_MAX];
    size_t n;
} zpool;

static z_stream *z_make(int level)
{
    z_stream *z = calloc(1, sizeof(*z));
    /* windowBits 15 + 16: the gzip wrapper; memLevel 8: zlib's default */
    if (z && deflateInit2(z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

static void z_drop(z_stream *z)
{
    deflateEnd(z);
    free(z);
}

static void *compress_context_new(const gh_plugin_cfg *conf, uv_loop_t *loop)
{
    return calloc(1, sizeof(zpool));
}

static void compress_context_free(void *p)
{
    zpool *zp = p;
    while (zp->n)
        z_drop(zp->free[--zp->n]);
    free(zp);
}

static cz *CZ(gh_exchange *ex) { return (cz *)ex->filter; }

/* ------------------------------------------------------------ encoders -- */

static bool encoder_start(gh_exchange *ex, cz *f, int algo)
{
    f->out = gh_buf_get(ex->env->bufs);
    if (!f->out)
        return false;
    if (algo == GH_COMPRESS_GZIP) {
        f->z = f->pool && f->pool->n ? f->pool->free[--f->pool->n] : z_make(f->conf->level[algo]);
        if (!f->z)
            return false;
    } else {
        f->br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (!f->br)
            return false;
        BrotliEncoderSetParameter(f->br, BROTLI_PARAM_QUALITY, (uint32_t)f->conf->level[algo]);
        BrotliEncoderSetParameter(f->br, BROTLI_PARAM_LGWIN, 18);   /* a 256 KiB window bounds memory */
    }
    f->algo = algo;
    return true;
}

/* Encode what is pending into out after out_len: *n bytes made; true when
 * the flush (or the end) is complete. -1 on an encoder error. */
static int encode(cz *f, int mode, size_t *n)
{
    size_t cap = f->out->cap - f->out_len;
    uint8_t *buf = (uint8_t *)f->out->data + f->out_len;
    if (f->algo == GH_COMPRESS_GZIP) {
        z_stream *z = f->z;
        z->next_in = (Bytef *)(uintptr_t)f->in;
        z->avail_in = (uInt)f->in_len;
        z->next_out = buf;
        z->avail_out = (uInt)cap;
        int r = deflate(z, mode == MODE_FINISH ? Z_FINISH : mode == MODE_FLUSH ? Z_SYNC_FLUSH : Z_NO_FLUSH);
        if (r == Z_STREAM_ERROR)
            return -1;
        f->in = z->next_in;
        f->in_len = z->avail_in;
        *n = cap - z->avail_out;
        if (mode == MODE_FINISH)
            return r == Z_STREAM_END;
        return f->in_len == 0 && (mode == MODE_MORE || z->avail_out > 0);
    }
    size_t avail_out = cap;
    uint8_t *next_out = buf;
    BrotliEncoderOperation op = mode == MODE_FINISH  ? BROTLI_OPERATION_FINISH
                                : mode == MODE_FLUSH ? BROTLI_OPERATION_FLUSH
                                                     : BROTLI_OPERATION_PROCESS;
    if (!BrotliEncoderCompressStream(f->br, op, &f->in_len, &f->in, &avail_out, &next_out, NULL))
        return -1;
    *n = cap - avail_out;
    if (mode == MODE_FINISH)
        return BrotliEncoderIsFinished(f->br);
    return f->in_len == 0 && (mode == MODE_MORE || !BrotliEncoderHasMoreOutput(f->br));
}

/* Encode and hand to the codec until the pending work is done (GH_OK), the
 * codec holds our buffer (GH_AGAIN), or it failed (GH_ERROR). The output
 * goes out when the buffer is full, flushed or at the end, not per input
 * piece, and the end's last bytes wait for end_now (the codec's send_last):
 * a body that arrives at once leaves in one write with the head and the
 * terminator, as without compression (the encoder's 10-byte gzip header
 * alone, then the rest, then the terminator were three writes). */
static int pump(gh_exchange *ex, cz *f)
{
    while (f->work && !f->out_busy) {
        size_t n = 0;
        int mode = f->ending ? MODE_FINISH : f->flush_due ? MODE_FLUSH : MODE_MORE;
        int done = encode(f, mode, &n);
        if (done < 0) {
            f->base.next->abort(ex);   /* a truncated body must look truncated */
            return GH_ERROR;
        }
        f->work = !done;
        f->flush_due &= !done;
        f->out_len += n;
        bool last = done && mode == MODE_FINISH && f->ending == 1 && f->base.next->send_last;
        if (f->out_len && (f->out_len == f->out->cap || (done && mode != MODE_MORE && !last))) {
            n = f->out_len;
            f->out_len = 0;
            int rc = f->base.next->send_body(ex, f->out->data, n);
            if (rc == GH_ERROR)
                return GH_ERROR;
            f->out_busy = rc == GH_AGAIN;
        }
    }
    return f->out_busy ? GH_AGAIN : GH_OK;
}

static void release(gh_exchange *ex)
{
    cz *f = CZ(ex);
    gh_env_undefer(ex->env, &f->flush_task);
    if (f->z && f->pool && f->pool->n < ZPOOL_MAX && deflateReset(f->z) == Z_OK)
        f->pool->free[f->pool->n++] = f->z;
    else if (f->z)
        z_drop(f->z);
    f->z = NULL;
    if (f->br)
        BrotliEncoderDestroyInstance(f->br);
    f->br = NULL;
    gh_buf_put(ex->env->bufs, f->out);
    f->out = NULL;
}

/* The filter steps aside: the codec's ops again, nothing more to free. */
static void bypass(gh_exchange *ex, cz *f)
{
    release(ex);
    ex->down = f->base.next;
    ex->filter = NULL;
}

/* -------------------------------------------------------------- head ---- */

static bool name_is(const gh_header *h, const char *name, size_t n)
{
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

static bool has_token(const gh_header *h, const char *tok, size_t n)
{
    for (size_t i = 0; i + n <= h->value_len; i++)
        if (strncasecmp(h->value + i, tok, n) == 0)
            return true;
    return false;
}

/* Whether this response may be compressed at all (for any client). */
static bool compressible(const gh_compress_cfg *c, int status, const gh_header *hdrs, size_t n, int64_t clen)
{
    if (status < 200 || status == 204 || status == 206 || status == 304)
        return false;
    if (clen >= 0 && (uint64_t)clen < c->min_size)
        return false;
    bool typed = false;
    for (size_t i = 0; i < n; i++) {
        const gh_header *h = &hdrs[i];
        if (name_is(h, "content-encoding", 16) || name_is(h, "content-range", 13))
            return false;
        if (name_is(h, "cache-control", 13) && has_token(h, "no-transform", 12))
            return false;
        if (name_is(h, "content-type", 12))
            typed = gh_media_type_match(h->value, h->value_len, c->types, c->ntypes);
    }
    return typed;
}

/* The head with Vary: Accept-Encoding merged in and, when compressing,
 * Content-Encoding added and a strong ETag made weak. */
static gh_header *rewrite(gh_exchange *ex, const gh_header *hdrs, size_t n, const gh_str *coding, size_t *nout)
{
    gh_header *all = gh_arena_alloc(&ex->arena, (n + 2) * sizeof(*all));
    if (!all)
        return NULL;
    size_t k = 0, vary = SIZE_MAX;
    bool varied = false;
    for (size_t i = 0; i < n; i++) {
        gh_header h = hdrs[i];
        if (name_is(&h, "vary", 4)) {
            varied |= has_token(&h, "accept-encoding", 15) || has_token(&h, "*", 1);
            vary = vary == SIZE_MAX ? k : vary;
        } else if (coding && name_is(&h, "etag", 4) && h.value_len >= 1 && h.value[0] == '"') {
            char *w = gh_arena_alloc(&ex->arena, h.value_len + 2);
            if (!w)
                return NULL;
            memcpy(w, "W/", 2);
            memcpy(w + 2, h.value, h.value_len);
            h.value = w;
            h.value_len += 2;
        }
        all[k++] = h;
    }
    if (!varied && vary != SIZE_MAX && all[vary].value_len) {
        gh_header *h = &all[vary];
        char *v = gh_arena_alloc(&ex->arena, h->value_len + 17);
        if (!v)
            return NULL;
        memcpy(v, h->value, h->value_len);
        memcpy(v + h->value_len, ", Accept-Encoding", 17);
        h->value = v;
        h->value_len += 17;
    } else if (!varied && vary != SIZE_MAX) {
        all[vary].value = "Accept-Encoding";   /* an empty Vary */
        all[vary].value_len = 15;
    } else if (!varied) {
        all[k++] = (gh_header){ "Vary", "Accept-Encoding", 4, 15 };
    }
    if (coding)
        all[k++] = (gh_header){ "Content-Encoding", coding->p, 16, (uint32_t)coding->len };
    *nout = k;
    return all;
}

static int cz_send_head(gh_exchange *ex, int status, const gh_header *hdrs, size_t n, int64_t clen)
{
    cz *f = CZ(ex);
    const gh_downstream_ops *next = f->base.next;
    const gh_compress_cfg *c = f->conf;
    if (!compressible(c, status, hdrs, n, clen)) {
        bypass(ex, f);
        return next->send_head(ex, status, hdrs, n, clen);
    }
    const gh_header *ae = gh_exchange_header(ex, "accept-encoding", 15);
    int pick = gh_accept_encoding_pick(ae ? ae->value : "", ae ? ae->value_len : 0, ae != NULL, c->names, c->nalgos);
    if (pick != GH_CODING_IDENTITY && !encoder_start(ex, f, c->algos[pick]))
        pick = GH_CODING_IDENTITY;   /* out of memory: the body goes as it is */
    size_t k;
    gh_header *all = rewrite(ex, hdrs, n, pick == GH_CODING_IDENTITY ? NULL : &c->names[pick], &k);
    if (pick == GH_CODING_IDENTITY || !all) {
        bypass(ex, f);
        return all ? next->send_head(ex, status, all, k, clen) : GH_ERROR;
    }
    int rc = next->send_head(ex, status, all, k, -1);
    f->producer_waits = rc == GH_AGAIN;   /* the codec's writable is then the producer's */
    return rc;
}

/* -------------------------------------------------------------- body ---- */

/* The loop turn that handed us bytes is over: the producer has nothing
 * more right now, so what the encoder holds goes out (an event of a
 * server-sent stream arrives whole). A body that ends in the same turn
 * skips this: finish() emits all at once. */
static void flush_soon(gh_task *t)
{
    cz *f = (cz *)((char *)t - offsetof(cz, flush_task));
    gh_exchange *ex = f->ex;
    if (f->ending)
        return;
    f->flush_due = true;
    f->work = true;
    if (f->out_busy)
        return;   /* the codec's writable pumps it */
    if (pump(ex, f) == GH_OK && f->producer_waits) {
        f->producer_waits = false;
        if (ex->on_writable)
            ex->on_writable(ex);
    }
}

static int cz_send_body(gh_exchange *ex, const char *p, size_t len)
{
    cz *f = CZ(ex);
    if (len == 0)
        return GH_OK;
    f->in = (const uint8_t *)p;
    f->in_len = len;
    f->work = true;
    int rc = pump(ex, f);
    f->producer_waits = rc == GH_AGAIN;
    if (rc != GH_ERROR)
        gh_env_defer(ex->env, &f->flush_task);
    return rc;
}

static int end_now(gh_exchange *ex, cz *f)
{
    const gh_downstream_ops *next = f->base.next;
    size_t n = f->out_len;   /* held by pump for send_last */
    f->out_len = 0;
    if (n)
        return next->send_last(ex, f->out->data, n);
    return f->ending == 2 ? next->finish_trailers(ex, f->trailers, f->ntrailers) : next->finish(ex);
}

/* The producer is done: the encoder's end goes out, then the codec's. If
 * the codec holds our buffer, the producer is forgotten now (as a finish
 * forgets it) and the codec's finish follows on writable. */
static int ending(gh_exchange *ex, int how, const gh_header *tr, size_t ntr)
{
    cz *f = CZ(ex);
    f->ending = how;
    f->work = true;
    f->in_len = 0;
    int rc = pump(ex, f);
    if (rc != GH_AGAIN)
        return rc == GH_OK ? end_now(ex, f) : rc;
    if (ntr) {
        f->trailers = gh_arena_alloc(&ex->arena, ntr * sizeof(*tr));
        for (size_t i = 0; f->trailers && i < ntr; i++) {
            char *s = gh_arena_alloc(&ex->arena, tr[i].name_len + tr[i].value_len + 1);
            if (!s)
                return GH_ERROR;
            memcpy(s, tr[i].name, tr[i].name_len);
            memcpy(s + tr[i].name_len, tr[i].value, tr[i].value_len);
            f->trailers[i] = (gh_header){ s, s + tr[i].name_len, tr[i].name_len, tr[i].value_len };
        }
        if (!f->trailers)
            return GH_ERROR;
        f->ntrailers = ntr;
    }
    ex->on_writable = NULL;
    ex->on_abort = NULL;
    ex->body_cb = NULL;
    f->producer_waits = false;
    return GH_OK;
}

static int cz_finish(gh_exchange *ex) { return ending(ex, 1, NULL, 0); }

static int cz_finish_trailers(gh_exchange *ex, const gh_header *hdrs, size_t n)
{
    return ending(ex, 2, hdrs, n);
}

/* The codec took our buffer: more encoding, then the codec's finish or the
 * producer's turn. */
static void cz_writable(gh_exchange *ex)
{
    cz *f = CZ(ex);
    f->out_busy = false;
    int rc = pump(ex, f);
    if (rc != GH_OK)
        return;   /* more later, or the connection is closing */
    if (f->ending) {
        end_now(ex, f);
        return;
    }
    if (f->producer_waits) {
        f->producer_waits = false;
        if (ex->on_writable)
            ex->on_writable(ex);
    }
}

static void cz_abort(gh_exchange *ex) { CZ(ex)->base.next->abort(ex); }
static void cz_resume_body(gh_exchange *ex) { CZ(ex)->base.next->resume_body(ex); }
static int cz_upgrade(gh_exchange *ex, const gh_header *hdrs, size_t n, gh_takeover *t)
{
    cz *f = CZ(ex);
    const gh_downstream_ops *next = f->base.next;
    bypass(ex, f);
    return next->upgrade(ex, hdrs, n, t);
}

static const gh_downstream_ops cz_ops = {
    .send_head = cz_send_head,
    .send_body = cz_send_body,
    .finish = cz_finish,
    .abort = cz_abort,
    .resume_body = cz_resume_body,
    .finish_trailers = cz_finish_trailers,
    .upgrade = cz_upgrade,
};

/* ------------------------------------------------------------ plugin ---- */

static int compress_request(gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    gh_exchange *ex = run->ex;
    if (ex->head_request || ex->dry_run || ex->filter)
        return GH_PLUGIN_NEXT;   /* no body to encode; explain sends nothing */
    cz *f = gh_arena_zalloc(&ex->arena, sizeof(*f));
    if (!f)
        return GH_PLUGIN_NEXT;
    f->conf = (const gh_compress_cfg *)conf;
    f->pool = gh_plugin_context(run, conf);
    f->ex = ex;
    f->flush_task.run = flush_soon;
    f->algo = -1;
    f->base.writable = cz_writable;
    f->base.release = release;
    gh_exchange_push_filter(ex, &f->base, &cz_ops);
    return GH_PLUGIN_NEXT;
}

static void compress_describe(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap)
{
    const gh_compress_cfg *c = (const gh_compress_cfg *)conf;
    size_t k = 0;
    for (size_t i = 0; i < c->nalgos && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%.*s", i ? " " : "", (int)c->names[i].len, c->names[i].p);
    if (k < cap)
        snprintf(buf + k, cap - k, ", min %llu bytes", (unsigned long long)c->min_size);
}

const gh_plugin_ops gh_compress_plugin = {
    .name = "compress", .request = compress_request, .describe = compress_describe,
    .context_new = compress_context_new, .context_free = compress_context_free,
};
