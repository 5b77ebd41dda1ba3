/* redis_cluster.c — Redis Cluster: which master holds a key's slot.
 *
 * The map comes from CLUSTER SLOTS, asked of any connected node (the seeds
 * first). A key goes to its slot's master; before the map is known it goes
 * to any node, whose MOVED answer teaches us. MOVED updates the map, asks
 * for a fresh one and re-sends once; ASK (a slot being migrated) re-sends
 * once to the named node after ASKING, without touching the map. */
#include "cluster/redis_int.h"
#include <stdlib.h>
#include <string.h>
#include "core/log.h"

/* CRC16-CCITT (XMODEM), as the Redis Cluster specification defines it. */
static uint16_t crc16(const char *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned gh_redis_key_slot(const char *key, size_t len)
{
    /* {tag}: only what is between the first { and the next } counts, if non-empty */
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (GH_REDIS_SLOTS - 1);
    }
    return crc16(key, len) & (GH_REDIS_SLOTS - 1);
}

static gh_redis_node *any_node(gh_redis *c)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (gh_redis_node_usable(c->nodes[i]))
            return c->nodes[i];
    return NULL;
}

gh_redis_node *gh_redis_route(gh_redis *c, int slot)
{
    if (!c->cfg.cluster)
        return c->nnodes ? c->nodes[0] : NULL;
    if (slot >= 0 && c->slots[slot])
        return c->nodes[c->slots[slot] - 1];   /* its master, even when down: no guessing */
    return any_node(c);
}

static size_t node_index(gh_redis *c, const gh_redis_node *n)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i] == n)
            return i;
    return 0;
}

static bool is_int(const redisReply *r) { return r && r->type == REDIS_REPLY_INTEGER; }

/* [[start, end, [host, port, id...], replicas...], ...] */
static void on_slots(redisAsyncContext *ac, void *reply, void *privdata)
{
    gh_redis_node *asked = privdata;
    gh_redis *c = asked->c;
    redisReply *r = reply;
    c->refreshing = false;
    if (c->freeing)
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            gh_log_warn("redis %s: CLUSTER SLOTS: %s", asked->name,
                        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;   /* the next MOVED or reconnect asks again */
    }
    size_t mapped = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || !is_int(e->element[0]) || !is_int(e->element[1]) ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING || !is_int(e->element[2]->element[1]))
            continue;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        long long port = e->element[2]->element[1]->integer;
        const redisReply *host = e->element[2]->element[0];
        if (lo < 0 || hi >= GH_REDIS_SLOTS || lo > hi || port <= 0 || port > 65535)
            continue;
        /* an empty or unknown ("?") endpoint: the node we asked (Redis 7) */
        gh_redis_node *n = host->len == 0 || (host->len == 1 && host->str[0] == '?')
                               ? gh_redis_node_add(c, asked->host, strlen(asked->host), (uint16_t)port)
                               : gh_redis_node_add(c, host->str, host->len, (uint16_t)port);
        if (!n)
            continue;
        uint16_t idx = (uint16_t)(node_index(c, n) + 1);
        for (long long s = lo; s <= hi; s++)
            c->slots[s] = idx;
        mapped += (size_t)(hi - lo + 1);
    }
    if (!c->slots_known && mapped)
        gh_log_info("redis cluster: %zu of %d slots mapped over %zu nodes", mapped, GH_REDIS_SLOTS, c->nnodes);
    c->slots_known = mapped > 0;
    if (c->refresh_again) {
        c->refresh_again = false;
        gh_redis_refresh_slots(c);
    }
    (void)ac;
}

void gh_redis_refresh_slots(gh_redis *c)
{
    if (!c->cfg.cluster || c->freeing)
        return;
    if (c->refreshing) {
        c->refresh_again = true;   /* the map may have changed after that question */
        return;
    }
    gh_redis_node *n = any_node(c);
    static const char *argv[2] = { "CLUSTER", "SLOTS" };
    static const size_t len[2] = { 7, 5 };
    if (n && gh_redis_node_internal(n, on_slots, 2, argv, len))
        c->refreshing = true;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" */
static bool parse_redirect(const redisReply *r, bool *ask, int *slot, const char **host, size_t *hostlen,
                           uint16_t *port)
{
    const char *s = r->str, *end = r->str + r->len;
    if (r->len > 6 && memcmp(s, "MOVED ", 6) == 0) {
        *ask = false;
        s += 6;
    } else if (r->len > 4 && memcmp(s, "ASK ", 4) == 0) {
        *ask = true;
        s += 4;
    } else {
        return false;
    }
    char *e;
    long v = strtol(s, &e, 10);
    if (e == s || *e != ' ' || v < 0 || v >= GH_REDIS_SLOTS)
        return false;
    *slot = (int)v;
    s = e + 1;
    const char *colon = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == ':')
            colon = p;
    if (!colon || colon == s)
        return false;
    long p = strtol(colon + 1, &e, 10);
    if (p <= 0 || p > 65535)
        return false;
    *host = s;
    *hostlen = (size_t)(colon - s);
    if (*hostlen >= 2 && s[0] == '[' && colon[-1] == ']') {
        (*host)++;
        *hostlen -= 2;
    }
    *port = (uint16_t)p;
    return true;
}

bool gh_redis_redirect(gh_redis *c, gh_redis_req *req, const redisReply *r)
{
    bool ask;
    int slot;
    const char *host;
    size_t hostlen;
    uint16_t port;
    if (!parse_redirect(r, &ask, &slot, &host, &hostlen, &port))
        return false;
    gh_redis_node *n = gh_redis_node_add(c, host, hostlen, port);
    if (!n)
        return false;
    req->retries++;
    if (ask) {
        static const char *argv[1] = { "ASKING" };
        static const size_t len[1] = { 6 };
        if (!gh_redis_node_internal(n, NULL, 1, argv, len))
            return false;
    } else {
        c->slots[slot] = (uint16_t)(node_index(c, n) + 1);
        gh_redis_refresh_slots(c);   /* one slot moved: others likely did too */
    }
    return gh_redis_node_send(n, req);
}
