/* cache_policy.h — the cache's rules as pure functions (SPEC §7.3, §12.19):
 * what the upstream's Cache-Control / Expires allow, how long, the key of a
 * request, and the validators of conditional requests. No state, no I/O:
 * plugins/cache.c applies them, tests/unit/test_cache_policy.c pins them. */
#ifndef GH_PLUGINS_CACHE_POLICY_H
#define GH_PLUGINS_CACHE_POLICY_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "config/config.h"
#include "http/exchange.h"

typedef struct gh_cache_cc {
    bool no_store, private_, no_cache;
    int64_t max_age, s_maxage;    /* seconds; -1 = absent */
} gh_cache_cc;

/* Parse one Cache-Control value into *cc (call with cc zeroed and ages -1
 * first; several headers accumulate). Unknown directives are ignored. */
void gh_cache_cc_parse(const char *v, size_t len, gh_cache_cc *cc);

/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); false when not one. */
bool gh_cache_http_date(const char *v, size_t len, time_t *out);

/* How long a response may be kept, in ms (0: not at all), given its status
 * and headers, the route's ttl and the current time: the shorter of ttl and
 * s-maxage (else max-age, else Expires - Date); never no-store, private,
 * no-cache, Set-Cookie, Vary: *, or a status other than those cacheable by
 * default (200 203 204 300 301 308 404 405 410 414 501). */
uint64_t gh_cache_lifetime_ms(int status, const gh_header *h, size_t n, uint64_t ttl_ms, time_t now);

/* The key of ex's request for a route: method class (HEAD is GET), host,
 * normalized path, query, then the values of `vary` and `key_headers`,
 * each part length-prefixed so no two requests share a key by accident.
 * Written into the exchange's arena; false when out of memory. */
bool gh_cache_key(gh_exchange *ex, gh_str route, const gh_cache_cfg *c, gh_str *key);

/* If-None-Match (a list, or *) against an ETag, compared weakly (RFC 9110 §13.1.2). */
bool gh_cache_etag_match(const char *inm, size_t inm_len, const char *etag, size_t etag_len);

#endif
