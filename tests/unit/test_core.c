/* test_core.c — arena, deadline lists, buffer pool, diagnostics, log rate limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "core/arena.h"
#include "core/bufpool.h"
#include "core/deadline.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/siphash.h"

static void test_arena_alignment_and_growth(void **state)
{
    unsigned char mem[512];
    gh_arena a;
    gh_arena_init_with(&a, mem, sizeof(mem), 1024);
    void *p1 = gh_arena_alloc(&a, 3);
    void *p2 = gh_arena_alloc(&a, 5);
    assert_true(((uintptr_t)p1 & 15) == 0 && ((uintptr_t)p2 & 15) == 0);
    assert_true((unsigned char *)p1 >= mem && (unsigned char *)p1 < mem + sizeof(mem));
    /* larger than the embedded block: comes from malloc, the rest keeps working */
    char *big = gh_arena_alloc(&a, 4000);
    assert_non_null(big);
    memset(big, 'x', 4000);
    char *s = gh_arena_strndup(&a, "hello", 5);
    assert_string_equal(s, "hello");
    char *f = gh_arena_printf(&a, "%d-%s", 42, "x");
    assert_string_equal(f, "42-x");
    gh_arena_reset(&a);
    /* after reset the embedded block serves again */
    void *p3 = gh_arena_alloc(&a, 16);
    assert_true((unsigned char *)p3 >= mem && (unsigned char *)p3 < mem + sizeof(mem));
    gh_arena_free(&a);
}

static void test_arena_many_blocks(void **state)
{
    gh_arena a;
    gh_arena_init(&a, 256);
    for (int i = 0; i < 1000; i++) {
        char *p = gh_arena_zalloc(&a, 100);
        assert_non_null(p);
        assert_int_equal(p[0], 0);
        p[99] = 1;
    }
    gh_arena_free(&a);   /* LeakSanitizer checks every block went */
}

static int fired[8];
static int nfired;
static void on_fire(gh_deadline *d) { fired[nfired++] = d->list; }

static void test_deadlines_fire_in_order(void **state)
{
    gh_deadline_list l;
    gh_deadline_list_init(&l);
    gh_deadline d[4];
    memset(d, 0, sizeof(d));
    for (int i = 0; i < 4; i++) {
        d[i].fire = on_fire;
        gh_deadline_arm(&l, &d[i], 100 + (uint64_t)i * 10, (unsigned char)i);
    }
    gh_deadline_cancel(&d[1]);
    gh_deadline_arm(&l, &d[0], 200, 0);   /* re-arm moves it to the tail */
    nfired = 0;
    gh_deadline *x;
    while ((x = gh_deadline_pop_due(&l, 125)) != NULL)
        x->fire(x);
    assert_int_equal(nfired, 1);
    assert_int_equal(fired[0], 2);
    while ((x = gh_deadline_pop_due(&l, 1000)) != NULL)
        x->fire(x);
    assert_int_equal(nfired, 3);
    assert_int_equal(fired[1], 3);
    assert_int_equal(fired[2], 0);
    assert_true(gh_deadline_list_empty(&l));
    assert_false(gh_deadline_armed(&d[0]));
}

static void test_bufpool_recycles(void **state)
{
    gh_bufpool p;
    gh_bufpool_init(&p, 1024, 2);
    gh_buf *a = gh_buf_get(&p), *b = gh_buf_get(&p), *c = gh_buf_get(&p);
    assert_int_equal(a->cap, 1024);
    memcpy(a->data, "abcdef", 6);
    a->end = 6;
    a->start = 4;
    gh_buf_compact(a);
    assert_int_equal(a->start, 0);
    assert_int_equal(a->end, 2);
    assert_memory_equal(a->data, "ef", 2);
    gh_buf_put(&p, a);
    gh_buf_put(&p, b);
    gh_buf_put(&p, c);          /* over max_free: freed */
    assert_int_equal(p.nfree, 2);
    gh_buf *d = gh_buf_get(&p);
    assert_ptr_equal(d, b);     /* last in, first out */
    assert_int_equal(d->start, 0);
    assert_int_equal(d->end, 0);
    gh_buf_put(&p, d);
    gh_bufpool_destroy(&p);
}

static void test_diag_format(void **state)
{
    gh_diag d;
    gh_diag_init(&d, "conf/g.yaml");
    gh_diag_error(&d, (gh_mark){ 3, 7 }, "unknown key '%s'", "upstreem");
    gh_diag_warn(&d, (gh_mark){ 9, 1 }, "route 'x' can never match");
    assert_int_equal(d.errors, 1);
    assert_int_equal(d.warnings, 1);
    assert_string_equal(d.items[0].text, "conf/g.yaml:3:7: unknown key 'upstreem'");
    assert_string_equal(d.items[1].text, "conf/g.yaml:9:1: warning: route 'x' can never match");
    assert_string_equal(gh_diag_first_error(&d), d.items[0].text);
    gh_diag_free(&d);
}

/* A storm of the same line: the first passes, the rest within the period
 * are counted and reported with the next line that passes. */
static void test_log_limit(void **state)
{
    gh_log_limit l = { 0 };
    unsigned long skipped = 99;
    assert_true(gh_log_limit_pass(&l, 0, 5000, &skipped));   /* time 0 is a valid first time */
    assert_int_equal(skipped, 0);
    for (int i = 0; i < 1000; i++)
        assert_false(gh_log_limit_pass(&l, 4999, 5000, &skipped));
    assert_true(gh_log_limit_pass(&l, 5000, 5000, &skipped));
    assert_int_equal(skipped, 1000);
    assert_false(gh_log_limit_pass(&l, 5001, 5000, &skipped));
    assert_true(gh_log_limit_pass(&l, 20000, 5000, &skipped));
    assert_int_equal(skipped, 1);
}

/* The reference implementation's vectors: key 00..0f, message 00..(n-1). */
static void test_siphash128_reference_vectors(void **state)
{
    (void)state;
    static const struct { size_t n; uint8_t tag[16]; } v[] = {
        { 0, { 0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93 } },
        { 7, { 0xa1, 0xf1, 0xeb, 0xbe, 0xd8, 0xdb, 0xc1, 0x53, 0xc0, 0xb8, 0x4a, 0xa6, 0x1f, 0xf0, 0x82, 0x39 } },
        { 8, { 0x3b, 0x62, 0xa9, 0xba, 0x62, 0x58, 0xf5, 0x61, 0x0f, 0x83, 0xe2, 0x64, 0xf3, 0x14, 0x97, 0xb4 } },
        { 15, { 0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11, 0x7e, 0x08, 0xec, 0x0f, 0x97, 0xcf, 0xc3, 0xd9 } },
        { 63, { 0x51, 0x50, 0xd1, 0x77, 0x2f, 0x50, 0x83, 0x4a, 0x50, 0x3e, 0x06, 0x9a, 0x97, 0x3f, 0xbd, 0x7c } },
    };
    uint8_t key[16], msg[64], out[16];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        gh_siphash128(key, msg, v[i].n, out);
        assert_memory_equal(out, v[i].tag, 16);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_alignment_and_growth),
        cmocka_unit_test(test_arena_many_blocks),
        cmocka_unit_test(test_deadlines_fire_in_order),
        cmocka_unit_test(test_bufpool_recycles),
        cmocka_unit_test(test_diag_format),
        cmocka_unit_test(test_log_limit),
        cmocka_unit_test(test_siphash128_reference_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
