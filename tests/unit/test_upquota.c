/* test_upquota.c — the bound on upstream connections one client connection
 * holds (http/upquota.h): slots, the FIFO of waiters, leaving the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "http/upquota.h"

static int kicks, order[8], norder;

static void kick(gh_upquota *q) { (void)q; kicks++; }

typedef struct { gh_upwait w; int id; } waiter;

static void go(gh_upwait *w) { order[norder++] = ((waiter *)w)->id; }

static void test_slots_then_line_in_order(void **st)
{
    (void)st;
    gh_upquota q = { .max = 2, .kick = kick };
    waiter a = { { .go = go }, 1 }, b = { { .go = go }, 2 }, c = { { .go = go }, 3 }, d = { { .go = go }, 4 };
    kicks = norder = 0;
    assert_true(gh_upquota_take(&q, &a.w));
    assert_true(gh_upquota_take(&q, &b.w));
    assert_false(gh_upquota_take(&q, &c.w));   /* full: in line */
    assert_false(gh_upquota_take(&q, &d.w));
    assert_int_equal(q.held, 2);
    gh_upquota_give(&q);
    assert_int_equal(kicks, 1);                /* the owner is asked to run the line */
    gh_upquota_run(&q);
    assert_int_equal(norder, 1);
    assert_int_equal(order[0], 3);             /* oldest first */
    assert_int_equal(q.held, 2);
    gh_upquota_run(&q);                        /* no free slot: nobody else goes */
    assert_int_equal(norder, 1);
    gh_upquota_give(&q);
    gh_upquota_run(&q);
    assert_int_equal(order[1], 4);
    assert_null(q.first);
}

static void test_leaving_the_line(void **st)
{
    (void)st;
    gh_upquota q = { .max = 1, .kick = kick };
    waiter a = { { .go = go }, 1 }, b = { { .go = go }, 2 }, c = { { .go = go }, 3 };
    norder = 0;
    assert_true(gh_upquota_take(&q, &a.w));
    assert_false(gh_upquota_take(&q, &b.w));
    assert_false(gh_upquota_take(&q, &c.w));
    gh_upquota_cancel(&q, &b.w);
    gh_upquota_cancel(&q, &b.w);               /* twice is harmless */
    gh_upquota_give(&q);
    gh_upquota_run(&q);
    assert_int_equal(norder, 1);
    assert_int_equal(order[0], 3);
    gh_upquota_cancel(&q, &c.w);               /* already out of line: no-op */
    assert_null(q.first);
    assert_null(q.last);
    /* a newcomer does not jump the line while others wait */
    gh_upquota_give(&q);
    assert_true(gh_upquota_take(&q, &a.w));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_then_line_in_order),
        cmocka_unit_test(test_leaving_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
