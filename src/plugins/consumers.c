/* consumers.c — credential indexes over the configured consumers: one open
 * addressing table per kind of credential, sized to a power of two at least
 * twice the entries, so a lookup is a hash and a probe or two.
 *
 * API keys: the tables never hold a key, only a tag of it. Keys given as
 * such are indexed by SipHash-2-4-128 under a random 16-byte secret drawn
 * for each snapshot (~200 instructions for a 20-byte key, against ~3,000
 * for SHA-256); keys given as { sha256: hex } can only be found through
 * the SHA-256 of the presented key, which is computed only when the
 * configuration has such keys. A lookup does the same work whether the key
 * exists or not: the slot probed and the probes' length depend on a tag of
 * the presented key that nobody can predict (keyed, or preimage-resistant),
 * not on the bytes of a configured key, and the tag is then compared in
 * full with CRYPTO_memcmp. Both indexes are always searched when both
 * exist. The SHA-256 index also holds every plain key's digest, so a key
 * given both ways to two consumers is caught at load. */
#include "plugins/consumers.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "core/siphash.h"

typedef struct entry {
    uint64_t hash;
    const char *key;              /* bytes compared on a hash hit */
    size_t len;
    const gh_consumer_cfg *c;
} entry;

typedef struct table {
    entry *slots;
    size_t mask;                  /* capacity - 1; 0 slots when empty */
} table;

struct gh_consumers {
    table keys, sip, users, subjects, jwt_subjects;
    uint8_t (*digests)[32];       /* SHA-256 of every API key (the keys table points here) */
    uint8_t (*tags)[16];          /* SipHash tags of the plain keys (the sip table points here) */
    uint8_t sip_key[16];          /* this snapshot's secret */
    bool any_hashed;              /* a key given as { sha256: }: lookups hash with SHA-256 too */
    const char *any_hash;
};

/* ------------------------------------------------------------- sha256 */

static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void free_ctx(void *p) { EVP_MD_CTX_free(p); }
static void init_ctx(void)
{
    pthread_key_create(&ctx_key, free_ctx);
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);   /* fetched once: no lookup per call */
}

void gh_sha256(const void *p, size_t len, uint8_t out[32])
{
    pthread_once(&ctx_once, init_ctx);
    EVP_MD_CTX *ctx = pthread_getspecific(ctx_key);
    if (!ctx) {
        ctx = EVP_MD_CTX_new();
        pthread_setspecific(ctx_key, ctx);
    }
    unsigned int n = 32;
    if (!ctx || !sha256_md || !EVP_DigestInit_ex(ctx, sha256_md, NULL) || !EVP_DigestUpdate(ctx, p, len) ||
        !EVP_DigestFinal_ex(ctx, out, &n))
        memset(out, 0, 32);   /* matches no configured key: every digest there is real */
}

/* -------------------------------------------------------------- tables */

static uint64_t fnv1a(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static bool table_init(table *t, size_t n)
{
    size_t cap = 4;
    while (cap < n * 2)
        cap *= 2;
    t->slots = calloc(cap, sizeof(entry));
    t->mask = cap - 1;
    return t->slots != NULL;
}

static const entry *table_find(const table *t, uint64_t h, const char *key, size_t len, bool secret)
{
    if (!t->slots)
        return NULL;
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const entry *e = &t->slots[i];
        if (!e->key)
            return NULL;
        if (e->hash == h && e->len == len &&
            (secret ? CRYPTO_memcmp(e->key, key, len) == 0 : memcmp(e->key, key, len) == 0))
            return e;
    }
}

/* false when the key is already there (reported by the caller). */
static bool table_put(table *t, uint64_t h, const char *key, size_t len, const gh_consumer_cfg *c,
                      const gh_consumer_cfg **holder)
{
    const entry *old = table_find(t, h, key, len, false);
    if (old) {
        *holder = old->c;
        return false;
    }
    size_t i = h & t->mask;
    while (t->slots[i].key)
        i = (i + 1) & t->mask;
    t->slots[i] = (entry){ h, key, len, c };
    return true;
}

static uint64_t digest_hash(const uint8_t *d)
{
    uint64_t h;
    memcpy(&h, d, sizeof(h));
    return h;
}

static int clip(gh_str s) { return s.len > 80 ? 80 : (int)s.len; }

gh_consumers *gh_consumers_build(const gh_config *cfg, gh_diag *diag)
{
    gh_consumers *cs = calloc(1, sizeof(*cs));
    size_t nkeys = 0;
    for (size_t i = 0; i < cfg->nconsumers; i++)
        nkeys += cfg->consumers[i].napi_keys;
    if (!cs || !table_init(&cs->keys, nkeys) || !table_init(&cs->sip, nkeys) ||
        !table_init(&cs->users, cfg->nconsumers) || !table_init(&cs->subjects, cfg->nconsumers) ||
        !table_init(&cs->jwt_subjects, cfg->nconsumers) || !(cs->digests = calloc(nkeys ? nkeys : 1, 32)) ||
        !(cs->tags = calloc(nkeys ? nkeys : 1, 16)) || RAND_bytes(cs->sip_key, sizeof(cs->sip_key)) != 1) {
        gh_consumers_free(cs);
        return NULL;
    }
    bool ok = true;
    size_t d = 0;
    for (size_t i = 0; i < cfg->nconsumers; i++) {
        const gh_consumer_cfg *c = &cfg->consumers[i];
        const gh_consumer_cfg *other = NULL;
        for (size_t k = 0; k < c->napi_keys; k++, d++) {
            const gh_api_key_cfg *key = &c->api_keys[k];
            if (key->hashed)
                memcpy(cs->digests[d], key->sha256, 32);
            else
                gh_sha256(key->key.p, key->key.len, cs->digests[d]);
            if (!table_put(&cs->keys, digest_hash(cs->digests[d]), (const char *)cs->digests[d], 32, c, &other)) {
                gh_diag_error(diag, key->mark, "this API key is already consumer '%.*s''s", clip(other->name),
                              other->name.p);
                ok = false;
                continue;
            }
            if (key->hashed) {
                cs->any_hashed = true;
                continue;
            }
            gh_siphash128(cs->sip_key, key->key.p, key->key.len, cs->tags[d]);
            if (!table_put(&cs->sip, digest_hash(cs->tags[d]), (const char *)cs->tags[d], 16, c, &other)) {
                /* two keys with one 128-bit tag: not seen in practice; refuse rather than guess */
                gh_diag_error(diag, key->mark, "this API key collides with consumer '%.*s''s; reload to retry",
                              clip(other->name), other->name.p);
                ok = false;
            }
        }
        if (c->basic_user.len) {
            if (!cs->any_hash)
                cs->any_hash = c->basic_hash.p;
            if (!table_put(&cs->users, fnv1a(c->basic_user.p, c->basic_user.len), c->basic_user.p,
                           c->basic_user.len, c, &other)) {
                gh_diag_error(diag, c->basic_mark, "username '%.*s' is already consumer '%.*s''s",
                              clip(c->basic_user), c->basic_user.p, clip(other->name), other->name.p);
                ok = false;
            }
        }
        if (c->mtls_subject.len &&
            !table_put(&cs->subjects, fnv1a(c->mtls_subject.p, c->mtls_subject.len), c->mtls_subject.p,
                       c->mtls_subject.len, c, &other)) {
            gh_diag_error(diag, c->mark, "mtls_subject '%.*s' is already consumer '%.*s''s",
                          clip(c->mtls_subject), c->mtls_subject.p, clip(other->name), other->name.p);
            ok = false;
        }
        if (c->jwt_subject.len &&
            !table_put(&cs->jwt_subjects, fnv1a(c->jwt_subject.p, c->jwt_subject.len), c->jwt_subject.p,
                       c->jwt_subject.len, c, &other)) {
            gh_diag_error(diag, c->mark, "jwt_subject '%.*s' is already consumer '%.*s''s",
                          clip(c->jwt_subject), c->jwt_subject.p, clip(other->name), other->name.p);
            ok = false;
        }
    }
    if (!ok) {
        gh_consumers_free(cs);
        return NULL;
    }
    return cs;
}

void gh_consumers_free(gh_consumers *cs)
{
    if (!cs)
        return;
    free(cs->keys.slots);
    free(cs->sip.slots);
    free(cs->users.slots);
    free(cs->subjects.slots);
    free(cs->jwt_subjects.slots);
    free(cs->digests);
    free(cs->tags);
    OPENSSL_cleanse(cs->sip_key, sizeof(cs->sip_key));
    free(cs);
}

const gh_consumer_cfg *gh_consumers_by_key(const gh_consumers *cs, const char *key, size_t len)
{
    uint8_t tag[16];
    gh_siphash128(cs->sip_key, key, len, tag);
    const entry *e = table_find(&cs->sip, digest_hash(tag), (const char *)tag, 16, true);
    if (cs->any_hashed) {   /* a property of the configuration, not of the key: always both */
        uint8_t d[32];
        gh_sha256(key, len, d);
        const entry *h = table_find(&cs->keys, digest_hash(d), (const char *)d, 32, true);
        if (!e)
            e = h;
    }
    return e ? e->c : NULL;
}

static const gh_consumer_cfg *by_name(const table *t, const char *s, size_t len)
{
    const entry *e = table_find(t, fnv1a(s, len), s, len, false);
    return e ? e->c : NULL;
}

const gh_consumer_cfg *gh_consumers_by_user(const gh_consumers *cs, const char *user, size_t len)
{
    return by_name(&cs->users, user, len);
}

const gh_consumer_cfg *gh_consumers_by_subject(const gh_consumers *cs, const char *subject, size_t len)
{
    return by_name(&cs->subjects, subject, len);
}

const gh_consumer_cfg *gh_consumers_by_jwt_subject(const gh_consumers *cs, const char *sub, size_t len)
{
    return by_name(&cs->jwt_subjects, sub, len);
}

const char *gh_consumers_any_hash(const gh_consumers *cs) { return cs->any_hash; }
