/* test_listeners.c — server/listeners.c: a port another process listens
 * on (even with SO_REUSEPORT) is refused with a clear message; addresses
 * the process holds or binds itself are not mistaken for someone else's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "server/listeners.h"

#define NWORKERS 2

typedef struct addrs {
    gh_listen_cfg items[4];
    char text[4][32];
    gh_config cfg;
} addrs;

static void add(addrs *a, const char *ip, uint16_t port)
{
    gh_listen_cfg *l = &a->items[a->cfg.nlistens];
    char *t = a->text[a->cfg.nlistens];
    snprintf(t, sizeof(a->text[0]), "%s:%u", ip, port);
    memset(l, 0, sizeof(*l));
    l->address = (gh_str){ t, strlen(t) };
    struct sockaddr_in *in = (struct sockaddr_in *)&l->sa;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, ip, &in->sin_addr);
    l->salen = sizeof(*in);
    a->cfg.listens = a->items;
    a->cfg.nlistens++;
}

/* A listening socket on a free loopback port, with SO_REUSEPORT when
 * asked (as another gatehouse would hold it). */
static int holder(bool reuseport, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof(in);
    getsockname(fd, (struct sockaddr *)&in, &len);
    *port = ntohs(in.sin_port);
    return fd;
}

static uint16_t free_port(void)
{
    uint16_t port;
    close(holder(false, &port));
    return port;
}

static void test_port_held_by_another_process(void **state)
{
    for (int reuse = 0; reuse < 2; reuse++) {
        uint16_t port;
        int other = holder(reuse, &port);
        addrs a = { 0 };
        add(&a, "127.0.0.1", port);
        char err[256] = "", want[256];
        assert_null(gh_listen_set_make(&a.cfg, NULL, NULL, NWORKERS, err, sizeof(err)));
        snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%u: address already in use by another process", port);
        assert_string_equal(err, want);
        /* the wildcard overlaps it too */
        addrs b = { 0 };
        add(&b, "0.0.0.0", port);
        assert_null(gh_listen_set_make(&b.cfg, NULL, NULL, NWORKERS, err, sizeof(err)));
        close(other);
    }
}

static void test_reload_keeps_held_and_probes_new(void **state)
{
    uint16_t p1 = free_port(), p2 = free_port(), p3;
    addrs a = { 0 };
    add(&a, "127.0.0.1", p1);
    char err[256] = "";
    gh_listen_set *cur = gh_listen_set_make(&a.cfg, NULL, NULL, NWORKERS, err, sizeof(err));
    assert_non_null(cur);
    assert_true(cur->items[0].fds[0] >= 0 && cur->items[0].fds[1] >= 0);

    /* the held address is kept (no probe, which our own sockets would fail) */
    addrs b = { 0 };
    add(&b, "127.0.0.1", p1);
    add(&b, "127.0.0.1", p2);
    gh_listen_set *next = gh_listen_set_make(&b.cfg, NULL, cur, NWORKERS, err, sizeof(err));
    assert_non_null(next);
    assert_int_equal(next->items[0].fds[0], -1);
    assert_true(next->items[1].fds[0] >= 0);
    gh_listen_set_free(next);

    /* a new address someone else holds fails the whole set */
    int other = holder(true, &p3);
    addrs c = { 0 };
    add(&c, "127.0.0.1", p1);
    add(&c, "127.0.0.1", p3);
    assert_null(gh_listen_set_make(&c.cfg, NULL, cur, NWORKERS, err, sizeof(err)));
    assert_non_null(strstr(err, "address already in use by another process"));
    close(other);
    gh_listen_set_free(cur);
}

static void test_overlapping_addresses_of_one_config(void **state)
{
    uint16_t p = free_port();
    addrs a = { 0 };
    add(&a, "0.0.0.0", p);
    add(&a, "127.0.0.1", p);
    char err[256] = "";
    gh_listen_set *s = gh_listen_set_make(&a.cfg, NULL, NULL, NWORKERS, err, sizeof(err));
    assert_non_null(s);
    assert_string_equal(err, "");
    gh_listen_set_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port_held_by_another_process),
        cmocka_unit_test(test_reload_keeps_held_and_probes_new),
        cmocka_unit_test(test_overlapping_addresses_of_one_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
