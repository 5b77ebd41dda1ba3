/* test_cache.c — the cache's rules (plugins/cache_policy.c: Cache-Control,
 * Expires, lifetimes, keys, ETag matching) and its store (plugins/
 * cache_store.c: LRU bound, references, purge). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/method.h"
#include "plugins/cache_policy.h"
#include "plugins/cache_store.h"

static gh_cache_cc cc_of(const char *v)
{
    gh_cache_cc cc = { .max_age = -1, .s_maxage = -1 };
    gh_cache_cc_parse(v, strlen(v), &cc);
    return cc;
}

static void test_cache_control(void **state)
{
    (void)state;
    gh_cache_cc cc = cc_of("public, max-age=60");
    assert_false(cc.no_store || cc.private_ || cc.no_cache);
    assert_int_equal(cc.max_age, 60);
    assert_int_equal(cc.s_maxage, -1);
    cc = cc_of("No-Store");
    assert_true(cc.no_store);
    cc = cc_of("private=\"Set-Cookie, X-A\", s-maxage = 5");
    assert_true(cc.private_);
    assert_int_equal(cc.s_maxage, 5);
    cc = cc_of("max-age=\"30\",no-cache");
    assert_int_equal(cc.max_age, 30);
    assert_true(cc.no_cache);
    cc = cc_of("max-age=soon");
    assert_int_equal(cc.max_age, 0);   /* invalid: stale */
    cc = cc_of("max-age=99999999999999999999");
    assert_true(cc.max_age >= 1000000000);
    cc = cc_of(",, ,max-agex=5, no-storex");
    assert_false(cc.no_store);
    assert_int_equal(cc.max_age, -1);
}

#define H(n, v) { n, v, sizeof(n) - 1, sizeof(v) - 1 }

static void test_lifetime(void **state)
{
    (void)state;
    const uint64_t ttl = 30000;
    time_t now = 1700000000;
    gh_header none[] = { H("Content-Type", "text/plain") };
    assert_int_equal(gh_cache_lifetime_ms(200, none, 1, ttl, now), ttl);
    assert_int_equal(gh_cache_lifetime_ms(206, none, 1, ttl, now), 0);
    assert_int_equal(gh_cache_lifetime_ms(500, none, 1, ttl, now), 0);
    assert_int_equal(gh_cache_lifetime_ms(404, none, 1, ttl, now), ttl);
    gh_header shorter[] = { H("Cache-Control", "max-age=5") };
    assert_int_equal(gh_cache_lifetime_ms(200, shorter, 1, ttl, now), 5000);
    gh_header longer[] = { H("Cache-Control", "max-age=600") };
    assert_int_equal(gh_cache_lifetime_ms(200, longer, 1, ttl, now), ttl);   /* the shorter wins */
    gh_header shared[] = { H("Cache-Control", "max-age=1, s-maxage=10") };
    assert_int_equal(gh_cache_lifetime_ms(200, shared, 1, ttl, now), 10000);
    gh_header nostore[] = { H("cache-control", "no-store") };
    assert_int_equal(gh_cache_lifetime_ms(200, nostore, 1, ttl, now), 0);
    gh_header cookie[] = { H("Set-Cookie", "a=1") };
    assert_int_equal(gh_cache_lifetime_ms(200, cookie, 1, ttl, now), 0);
    gh_header star[] = { H("Vary", "*") };
    assert_int_equal(gh_cache_lifetime_ms(200, star, 1, ttl, now), 0);
    gh_header exp[] = { H("Date", "Tue, 14 Nov 2023 22:13:20 GMT"), H("Expires", "Tue, 14 Nov 2023 22:13:30 GMT") };
    assert_int_equal(gh_cache_lifetime_ms(200, exp, 2, ttl, now), 10000);
    gh_header past[] = { H("Expires", "Tue, 14 Nov 2023 22:13:19 GMT") };
    assert_int_equal(gh_cache_lifetime_ms(200, past, 1, ttl, now), 0);
    gh_header bad[] = { H("Expires", "0") };
    assert_int_equal(gh_cache_lifetime_ms(200, bad, 1, ttl, now), 0);
    gh_header both[] = { H("Expires", "Tue, 14 Nov 2023 22:13:19 GMT"), H("Cache-Control", "max-age=7") };
    assert_int_equal(gh_cache_lifetime_ms(200, both, 2, ttl, now), 7000);   /* max-age over Expires */
}

static void test_http_date_and_etag(void **state)
{
    (void)state;
    time_t t;
    assert_true(gh_cache_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t));
    assert_int_equal(t, 784111777);
    assert_false(gh_cache_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 30, &t));
    assert_false(gh_cache_http_date("Sun, 06 Foo 1994 08:49:37 GMT", 29, &t));
    assert_false(gh_cache_http_date("Sun, 06 Nov 1994 28:49:37 GMT", 29, &t));
#define M(inm, etag) gh_cache_etag_match(inm, strlen(inm), etag, strlen(etag))
    assert_true(M("\"a\"", "\"a\""));
    assert_true(M("W/\"a\"", "\"a\""));
    assert_true(M("\"x\", W/\"a\"", "W/\"a\""));
    assert_true(M("*", "\"a\""));
    assert_false(M("\"b\"", "\"a\""));
    assert_false(M("\"a\"", ""));
#undef M
}

static gh_str key_for(gh_exchange *ex, const char *method, gh_header *h, size_t n, const gh_cache_cfg *c)
{
    ex->method = gh_str_c(method);
    ex->method_bit = gh_method_bit(method, strlen(method));
    ex->headers = h;
    ex->nheaders = n;
    gh_str k;
    assert_true(gh_cache_key(ex, gh_str_c("api"), c, &k));
    return k;
}

static void test_keys(void **state)
{
    (void)state;
    static char mem[16384];
    gh_exchange ex;
    memset(&ex, 0, sizeof(ex));
    gh_arena_init_with(&ex.arena, mem, sizeof(mem), 8192);
    ex.host = gh_str_c("example.com");
    ex.path = gh_str_c("/a");
    ex.query = gh_str_c("x=1");
    gh_cache_cfg c = { .nvary = 1, .vary = { { "Accept-Language", 15 } }, .nkey_headers = 1,
                       .key_headers = { { "X-Tenant", 8 } } };
    gh_header en[] = { H("accept-language", "en") }, fr[] = { H("Accept-Language", "fr") },
              empty[] = { H("Accept-Language", "") }, t1[] = { H("X-Tenant", "1") };
    gh_str get = key_for(&ex, "GET", en, 1, &c), head = key_for(&ex, "HEAD", en, 1, &c);
    assert_true(gh_str_eq(get, head));   /* HEAD shares GET's entry */
    assert_false(gh_str_eq(get, key_for(&ex, "GET", fr, 1, &c)));
    assert_false(gh_str_eq(key_for(&ex, "GET", NULL, 0, &c), key_for(&ex, "GET", empty, 1, &c)));
    assert_false(gh_str_eq(get, key_for(&ex, "GET", t1, 1, &c)));
    gh_str a = key_for(&ex, "GET", NULL, 0, &c);
    ex.query = gh_str_c("x=2");
    assert_false(gh_str_eq(a, key_for(&ex, "GET", NULL, 0, &c)));
    /* parts are length-prefixed: moving a byte between them changes the key */
    ex.path = gh_str_c("/a?");
    ex.query = gh_str_c("x=1");
    gh_str b = key_for(&ex, "GET", NULL, 0, &c);
    ex.path = gh_str_c("/a");
    ex.query = gh_str_c("?x=1");
    assert_false(gh_str_eq(b, key_for(&ex, "GET", NULL, 0, &c)));
    gh_arena_free(&ex.arena);
}

static gh_cache_entry *entry(const char *key, const char *route, const char *path, size_t body)
{
    gh_header h[] = { H("Content-Type", "text/plain") };
    gh_cache_entry *e = gh_cache_entry_new(gh_str_c(key), gh_str_c(route), gh_str_c(path), 200, h, 1,
                                           calloc(1, body ? body : 1), body);
    assert_non_null(e);
    e->expires_ms = 1000;
    return e;
}

static gh_cache_entry *find(gh_cache_store *s, const char *key, uint64_t now)
{
    gh_str k = gh_str_c(key);
    return gh_cache_lookup(s, gh_cache_hash(k), k, now);
}

static void test_store(void **state)
{
    (void)state;
    gh_cache_store *s = gh_cache_store_get(0x5eed, 3 * 1400);
    assert_ptr_equal(gh_cache_store_get(0x5eed, 1), s);   /* shared by state key */
    gh_cache_store_put(s);
    gh_cache_insert(s, entry("a", "r", "/a", 1000));
    gh_cache_insert(s, entry("b", "r", "/b", 1000));
    gh_cache_insert(s, entry("c", "q", "/c", 1000));
    gh_cache_entry *a = find(s, "a", 10);   /* a is the most recent now; b the LRU */
    assert_non_null(a);
    gh_cache_insert(s, entry("d", "r", "/d", 1000));
    assert_null(find(s, "b", 10));
    gh_cache_entry *c = find(s, "c", 10);
    assert_non_null(c);
    gh_cache_entry_unref(c);
    assert_null(find(s, "a", 1000));   /* expired: dropped */
    assert_int_equal(a->body_len, 1000);   /* the reader's reference keeps it */
    gh_cache_entry_unref(a);
    assert_int_equal(gh_cache_purge(gh_str_c("r"), gh_str_c("/d")), 1);
    assert_int_equal(gh_cache_purge(gh_str_c("q"), (gh_str){ 0 }), 1);
    assert_null(find(s, "c", 10));
    gh_cache_store_put(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_control), cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_http_date_and_etag), cmocka_unit_test(test_keys), cmocka_unit_test(test_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
