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

/* CRC16-CCITT (XMODEM), as the Redis Cluster specification defines it:
 * a byte a step through the polynomial's table (0x1021). */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
    0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
    0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
    0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
    0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
    0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
    0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
    0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
    0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
    0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
    0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
    0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
    0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
    0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
    0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
    0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
    0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
    0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
    0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
    0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
    0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

static uint16_t crc16(const char *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)(crc << 8) ^ crc16_table[((crc >> 8) ^ (unsigned char)p[i]) & 0xff];
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
