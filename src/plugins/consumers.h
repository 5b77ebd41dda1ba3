/* consumers.h — the consumers of a configuration, indexed by credential
 * (SPEC §5.1): O(1) lookups by API key (through a keyed SipHash tag, or its
 * SHA-256 for keys configured as digests, compared in constant time), basic
 * username, mTLS subject and JWT subject. Built once
 * per snapshot, read-only afterwards (shared by every worker). */
#ifndef GH_PLUGINS_CONSUMERS_H
#define GH_PLUGINS_CONSUMERS_H
#include <stdint.h>
#include "config/config.h"

typedef struct gh_consumers gh_consumers;

/* NULL after reporting duplicates (a key or name given to two consumers). */
gh_consumers *gh_consumers_build(const gh_config *cfg, gh_diag *diag);
void gh_consumers_free(gh_consumers *cs);

const gh_consumer_cfg *gh_consumers_by_key(const gh_consumers *cs, const char *key, size_t len);
const gh_consumer_cfg *gh_consumers_by_user(const gh_consumers *cs, const char *user, size_t len);
const gh_consumer_cfg *gh_consumers_by_subject(const gh_consumers *cs, const char *subject, size_t len);
const gh_consumer_cfg *gh_consumers_by_jwt_subject(const gh_consumers *cs, const char *sub, size_t len);
/* Any consumer's basic password hash (to spend the same time on unknown users), or NULL. */
const char *gh_consumers_any_hash(const gh_consumers *cs);

/* SHA-256 with a per-thread context: no allocation per call. */
void gh_sha256(const void *p, size_t len, uint8_t out[32]);

#endif
