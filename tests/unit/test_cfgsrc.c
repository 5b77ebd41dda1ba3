/* test_cfgsrc.c — `config_source` and `watch` keys, and the layered load of
 * a fleet's document under its bootstrap file (SPEC §2, §12.21). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "config/config.h"

#define BOOT                                                                                                      \
    "listen: [{ address: 127.0.0.1:8080 }]\n"                                                                     \
    "admin: { address: 127.0.0.1:9901 }\n"                                                                        \
    "config_source:\n"                                                                                            \
    "  etcd: { endpoints: [http://127.0.0.1:2379, https://etcd.example:2379], key: /gh, username: u, password: p }\n"

static char errs[4096];

static gh_config *load(const char *name, const char *yaml)
{
    gh_diag d;
    gh_diag_init(&d, name);
    gh_config *cfg = gh_config_load_string(name, yaml, strlen(yaml), &d);
    errs[0] = '\0';
    for (size_t i = 0; i < d.n; i++) {
        strncat(errs, d.items[i].text, sizeof(errs) - strlen(errs) - 2);
        strcat(errs, "\n");
    }
    gh_diag_free(&d);
    return cfg;
}

static void test_etcd_keys(void **state)
{
    (void)state;
    gh_config *cfg = load("boot.yaml", BOOT "watch: true\n");
    assert_non_null(cfg);
    assert_true(cfg->watch);
    assert_non_null(cfg->etcd);
    assert_int_equal(cfg->etcd->nendpoints, 2);
    assert_string_equal(cfg->etcd->endpoints[0].host.p, "127.0.0.1");
    assert_int_equal(cfg->etcd->endpoints[0].port, 2379);
    assert_false(cfg->etcd->endpoints[0].tls);
    assert_true(cfg->etcd->endpoints[1].tls);
    assert_non_null(cfg->etcd->tls);   /* https: verified by default */
    assert_true(cfg->etcd->tls->verify);
    assert_true(gh_config_is_secret(cfg, cfg->etcd->password.p));
    gh_config_free(cfg);
}

static void test_etcd_errors(void **state)
{
    (void)state;
    assert_null(load("b.yaml", "listen: [{ address: 127.0.0.1:8080 }]\nconfig_source: { etcd: { key: /k } }\n"));
    assert_non_null(strstr(errs, "b.yaml:2:18: etcd needs endpoints"));
    assert_null(load("b.yaml", "listen: [{ address: 127.0.0.1:8080 }]\n"
                               "config_source: { etcd: { endpoints: [ftp://x:1], key: /k } }\n"));
    assert_non_null(strstr(errs, "invalid etcd endpoint 'ftp://x:1'"));
    assert_null(load("b.yaml", "listen: [{ address: 127.0.0.1:8080 }]\n"
                               "config_source: { etcd: { endpoints: [http://x:1] } }\n"));
    assert_non_null(strstr(errs, "etcd needs the key"));
    assert_null(load("b.yaml", "listen: [{ address: 127.0.0.1:8080 }]\n"
                               "config_source: { etcd: { endpoints: [http://x:1], key: /k, username: u } }\n"));
    assert_non_null(strstr(errs, "username and password go together"));
    /* the bootstrap of an etcd node holds only the node's own keys */
    assert_null(load("b.yaml", BOOT "routes: []\n"));
    assert_non_null(strstr(errs, "b.yaml:5:1: with config_source.etcd, `routes` comes from etcd"));
}

static void test_layered(void **state)
{
    (void)state;
    char path[] = "/tmp/gh-boot-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, BOOT, strlen(BOOT)), (ssize_t)strlen(BOOT));
    close(fd);

    const char *doc = "workers: 3\nroutes:\n  - name: r\n    match: { path: / }\n    respond: { status: 204 }\n"
                      "upstreams:\n  app:\n    targets: [127.0.0.1:9]\n    tls: { ca: certs/ca.pem }\n";
    gh_diag d;
    gh_diag_init(&d, "etcd:/gh@7");
    gh_config *cfg = gh_config_load_layered(path, "etcd:/gh@7", doc, strlen(doc), &d);
    gh_diag_print(&d, stderr);
    gh_diag_free(&d);
    assert_non_null(cfg);
    assert_int_equal(cfg->nlistens, 1);            /* from the bootstrap */
    assert_non_null(cfg->admin);
    assert_non_null(cfg->etcd);
    assert_int_equal(cfg->nroutes, 1);             /* from the document */
    assert_int_equal(cfg->workers, 3);
    assert_string_equal(cfg->file, "etcd:/gh@7");
    /* a relative path in the document is the bootstrap file's neighbour */
    assert_string_equal(cfg->upstreams[0].tls->ca.p, "/tmp/certs/ca.pem");
    gh_config_free(cfg);

    /* §12.21: listen, admin, config_source only from the bootstrap; errors name the revision */
    const char *own = "routes: []\nadmin: { address: 127.0.0.1:1 }\nlisten: []\n";
    gh_diag_init(&d, "etcd:/gh@8");
    assert_null(gh_config_load_layered(path, "etcd:/gh@8", own, strlen(own), &d));
    assert_int_equal(d.errors, 2);
    assert_string_equal(d.items[0].text,
                        "etcd:/gh@8:2:1: `admin` comes from the bootstrap file, not from etcd: remove it from the document");
    assert_non_null(strstr(d.items[1].text, "etcd:/gh@8:3:1: `listen` comes from the bootstrap file"));
    gh_diag_free(&d);

    const char *bad = "routes:\n  - name: r\n    match: { path: / }\n";
    gh_diag_init(&d, "etcd:/gh@9");
    assert_null(gh_config_load_layered(path, "etcd:/gh@9", bad, strlen(bad), &d));
    assert_true(d.errors > 0);
    assert_non_null(strstr(d.items[0].text, "etcd:/gh@9:2:5: route needs a target"));
    gh_diag_free(&d);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etcd_keys),
        cmocka_unit_test(test_etcd_errors),
        cmocka_unit_test(test_layered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
