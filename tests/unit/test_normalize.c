/* test_normalize.c — gh_path_normalize (SPEC §4 path handling). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "route/route.h"

typedef struct vec { const char *in, *out; int rc; } vec;
#define OK(i, o) { i, o, GH_PATH_OK }
#define BAD(i) { i, NULL, GH_PATH_BAD }
#define CLIMB(i) { i, NULL, GH_PATH_CLIMB }

static int run(const char *in, size_t len, bool strict, char *out, size_t *n)
{
    *n = 0;
    return gh_path_normalize(in, len, out, n, strict);
}

static void check(const vec *v, size_t count, bool strict)
{
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(v[i].in), n;
        char *out = malloc(len + 1);      /* exactly what the contract promises */
        int rc = run(v[i].in, len, strict, out, &n);
        if (rc != v[i].rc)
            fail_msg("%s \"%s\": rc %d, want %d", strict ? "strict" : "lax", v[i].in, rc, v[i].rc);
        if (rc == GH_PATH_OK) {
            assert_true(n <= len);
            assert_int_equal(out[n], '\0');
            if (strcmp(out, v[i].out) != 0)
                fail_msg("%s \"%s\": got \"%s\", want \"%s\"", strict ? "strict" : "lax", v[i].in, out, v[i].out);
        }
        free(out);
    }
}

/* Accepted the same way in both modes. */
static const vec common_ok[] = {
    OK("/", "/"), OK("/a/b", "/a/b"), OK("//a///b//", "/a/b/"), OK("/a/", "/a/"),
    OK("/a/./b", "/a/b"), OK("/a/../b", "/b"), OK("/a/b/..", "/a/"), OK("/a/..", "/"),
    OK("/a/.", "/a/"), OK("/.", "/"), OK("/./", "/"), OK("/a/b/../../c", "/c"),
    OK("/a//../b", "/b"), OK("/a/./../b/", "/b/"),
    OK("/%7euser/%41b", "/~user/Ab"), OK("/a%2db%5F%2Ex", "/a-b_.x"), OK("/%30%39", "/09"),
    OK("/a/%2e/b", "/a/b"), OK("/a/%2e%2E/b", "/b"), OK("/a/.%2e", "/"), OK("/a/%2E.", "/"),
    OK("/a%20b", "/a%20b"), OK("/a%3fb", "/a%3Fb"), OK("/%20a/%09b", "/%20a/%09b"), OK("/%25", "/%25"), OK("/%2541", "/%2541"),
    OK("/caf%c3%a9", "/caf%C3%A9"), OK("/%e2%82%ac", "/%E2%82%AC"), OK("/%f0%9f%98%80", "/%F0%9F%98%80"),
    OK("/%ef%bf%bf", "/%EF%BF%BF"), OK("/%f4%8f%bf%bf", "/%F4%8F%BF%BF"), OK("/%ed%9f%bf", "/%ED%9F%BF"),
    OK("/a/...b/..c", "/a/...b/..c"), OK("/.a/a.b", "/.a/a.b"), OK("/a%2520", "/a%2520"),
    OK("/users/{id}", "/users/{id}"), OK("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
};

static const vec strict_bad[] = {
    BAD("/a%2fb"), BAD("/a%2Fb"), BAD("/a%5cb"), BAD("/a%5C"), BAD("/a%00"), BAD("/a\\b"),
    BAD("/a/..;x/b"), BAD("/.;x/"),
    /* variants that Tomcat/Spring (";params") or IIS (trailing dots, spaces) read as another path */
    BAD("/private;x/y"), BAD("/private;x"), BAD("/private%3Bx"), BAD("/private%3bx"), BAD("/private."),
    BAD("/private%20"), BAD("/private%09"), BAD("/private./x"), BAD("/private%20/x"), BAD("/private%2e"),
    BAD("/a;b/c;d=1"), BAD("/;x/"), BAD("/a/..%3Bx"), BAD("/a%3fb%3B"), BAD("/..."), BAD("/a/..%20"),
    BAD("/.a/a."), BAD("/a%2db%5F%2E"), BAD("/a.%20"), BAD("/a/.;/b"), BAD("/a/..;"), BAD("/%2e%2e;x/"),
    BAD("/%c0%ae"), BAD("/%C0%AF"), BAD("/%c1%bf"), BAD("/%e0%80%ae"), BAD("/%e0%9f%bf"),
    BAD("/%f0%8f%bf%bf"), BAD("/%80"), BAD("/a%bf"), BAD("/%ed%a0%80"), BAD("/%ed%bf%bf"),
    BAD("/%f4%90%80%80"), BAD("/%f5%80%80%80"), BAD("/%ff"), BAD("/%c3"), BAD("/%c3a"),
    BAD("/%c3%28"), BAD("/%e2%82"), BAD("/%e2%82/"), BAD("/%c3%a9%a9"),
    BAD("/%zz"), BAD("/%4"), BAD("/%"), BAD("/a%g1"), BAD("/a\x80"), BAD("/\xc3\xa9"),
};

/* Refused in every mode (not a path / cannot go in a request line). */
static const vec always_bad[] = {
    BAD(""), BAD("a/b"), BAD("*"), BAD("/a\x01"), BAD("/a\x7f"), BAD("/a b"), BAD("/a\tb"), BAD("/\r\n"),
};

static const vec lax_climbs[] = {
    CLIMB("/%2e%2e;x/y"), CLIMB("/..;x"), CLIMB("/a/..;/..;/b"),
};

static const vec climbs[] = {
    CLIMB("/.."), CLIMB("/../"), CLIMB("/../x"), CLIMB("/a/../../x"), CLIMB("/%2e%2e/x"),
    CLIMB("/%2E%2e"), CLIMB("/a/%2e%2e/%2e%2e/x"), CLIMB("/./../x"), CLIMB("//../x"),
    CLIMB("/a/b/../../.."), CLIMB("/.%2e/etc/passwd"),
};

static const vec lax_ok[] = {
    OK("/a%2fb", "/a%2Fb"), OK("/a%5cb", "/a%5Cb"), OK("/a\\b", "/a\\b"), OK("/a%00", "/a%00"),
    /* ";params" cut off, trailing dots and spaces/tabs removed, as Tomcat and IIS read them */
    OK("/private;x/y", "/private/y"), OK("/private;x", "/private"), OK("/private%3Bx", "/private"),
    OK("/private.", "/private"), OK("/private%20", "/private"), OK("/private%09", "/private"),
    OK("/private.%20.", "/private"), OK("/private;x./y", "/private/y"), OK("/private.;x", "/private"),
    OK("/a;b/c;d=1", "/a/c"), OK("/;x/", "/"), OK("/a/;x", "/a/"), OK("/a/...", "/a/"),
    OK("/a/.../b", "/a/b"), OK("/a/..%20/b", "/a/b"), OK("/a%2520", "/a%2520"), OK("/a/%2e%2e%2e", "/a/"),
    OK("/a/..;x/b", "/b"), OK("/.;x/", "/"), OK("/a/b/..%3Bx", "/a/"), OK("/a%2fb;c%2fd/e", "/a%2Fb/e"),
    OK("/%c0%ae", "/%C0%AE"), OK("/%ed%a0%80", "/%ED%A0%80"), OK("/%zz", "/%zz"), OK("/%4", "/%4"),
    OK("/100%", "/100%"), OK("/a\x80", "/a\x80"), OK("/..%2fx", "/..%2Fx"), OK("/..%2f..%2fx", "/..%2F..%2Fx"),
    OK("/a/..\\..\\x", "/a/..\\..\\x"), OK("/%%41b", "/%%41b"), OK("/%4%31", "/%4%31"),
};

static void test_common_both_modes(void **state)
{
    check(common_ok, sizeof(common_ok) / sizeof(common_ok[0]), true);
    check(common_ok, sizeof(common_ok) / sizeof(common_ok[0]), false);
    check(always_bad, sizeof(always_bad) / sizeof(always_bad[0]), true);
    check(always_bad, sizeof(always_bad) / sizeof(always_bad[0]), false);
}

static void test_strict_refusals(void **state)
{
    check(strict_bad, sizeof(strict_bad) / sizeof(strict_bad[0]), true);
}

static void test_climb_in_every_mode(void **state)
{
    check(climbs, sizeof(climbs) / sizeof(climbs[0]), true);
    check(climbs, sizeof(climbs) / sizeof(climbs[0]), false);
    check(lax_climbs, sizeof(lax_climbs) / sizeof(lax_climbs[0]), false);
}

static void test_lax_keeps_literals(void **state)
{
    check(lax_ok, sizeof(lax_ok) / sizeof(lax_ok[0]), false);
}

static void test_embedded_nul_and_exact_buffer(void **state)
{
    char out[8];
    size_t n;
    assert_int_equal(run("/a\0b", 4, false, out, &n), GH_PATH_BAD);
    /* Input not NUL-terminated, out exactly len + 1 bytes. */
    const char in[5] = { '/', 'a', '%', '4', '1' };
    memset(out, 'X', sizeof(out));
    assert_int_equal(run(in, 5, true, out, &n), GH_PATH_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "/aA", 4);
    assert_int_equal(run(in, 4, true, out, &n), GH_PATH_BAD);    /* "%4" at the very end */
}

/* Property test over a small alphabet: a result starts with '/', is never
 * longer than the input, holds no "//" or dot segment, and is a fixed point. */
static void test_properties(void **state)
{
    static const char *atoms[] = { "/", "a", ".", "..", "%2e", "%2E", "%2f", "%41", "%c3%a9", "%", ";",
                                   "\\", "b", "//", "%7e", "%e2%82", "%zz", "%20", "%3b", "%09" };
    size_t natoms = sizeof(atoms) / sizeof(atoms[0]);
    unsigned seed = 12345;
    char in[128], out[129], again[129];
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = 0;
        in[len++] = '/';
        int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 10;
        for (int p = 0; p < parts; p++) {
            const char *a = atoms[((seed = seed * 1103515245u + 12345u) >> 16) % natoms];
            memcpy(in + len, a, strlen(a));
            len += strlen(a);
        }
        for (int strict = 0; strict < 2; strict++) {
            size_t n, m;
            int rc = run(in, len, strict, out, &n);
            if (rc != GH_PATH_OK)
                continue;
            assert_true(n >= 1 && n <= len && out[0] == '/');
            assert_null(strstr(out, "//"));
            assert_null(strstr(out, "/./"));
            assert_null(strstr(out, "/../"));
            assert_false(n >= 2 && strcmp(out + n - 2, "/.") == 0);
            assert_false(n >= 3 && strcmp(out + n - 3, "/..") == 0);
            /* no variant a backend would read as another path is left */
            assert_null(strchr(out, ';'));
            assert_null(strstr(out, "%3B"));
            for (size_t k = 1; k <= n; k++)
                if (k == n || out[k] == '/') {
                    assert_false(out[k - 1] == '.');
                    assert_false(k >= 4 && (memcmp(out + k - 3, "%20", 3) == 0 || memcmp(out + k - 3, "%09", 3) == 0) &&
                                 out[k - 4] != '%');
                }
            assert_int_equal(run(out, n, strict, again, &m), GH_PATH_OK);
            assert_int_equal(m, n);
            assert_memory_equal(again, out, n);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_both_modes),
        cmocka_unit_test(test_strict_refusals),
        cmocka_unit_test(test_climb_in_every_mode),
        cmocka_unit_test(test_lax_keeps_literals),
        cmocka_unit_test(test_embedded_nul_and_exact_buffer),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
