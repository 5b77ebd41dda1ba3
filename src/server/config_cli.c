/* config_cli.c — `config push` validates a document exactly as every node
 * will (the bootstrap's listen/admin/config_source layered under it, then
 * compiled) and writes it with an etcd transaction that compares the key's
 * mod_revision: two operators pushing from the same base cannot overwrite
 * each other's change unseen. */
#include "server/config_cli.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cluster/etcd.h"
#include "config/config.h"
#include "route/route.h"
#include "server/config_diff.h"
#include "server/snapshot.h"

static gh_config *load_bootstrap(const char *bootstrap, gh_tls_client **tls)
{
    gh_diag d;
    gh_diag_init(&d, bootstrap);
    gh_config *boot = gh_config_load_file(bootstrap, &d);
    gh_diag_print(&d, stderr);
    gh_diag_free(&d);
    if (boot && !boot->etcd) {
        fprintf(stderr, "gatehouse: %s has no config_source.etcd: nothing to push to or pull from\n", bootstrap);
        gh_config_free(boot);
        return NULL;
    }
    if (boot) {
        bool ok;
        gh_diag_init(&d, bootstrap);
        *tls = gh_etcd_tls(boot, &d, &ok);
        gh_diag_print(&d, stderr);
        gh_diag_free(&d);
        if (!ok) {
            gh_config_free(boot);
            return NULL;
        }
    }
    return boot;
}

/* The stored document as a node would load it, to diff against: the empty
 * document when there is none yet or when it no longer loads (an invalid
 * one put into etcd by other means), so the diff shows everything FILE
 * brings. */
static gh_snapshot *stored_snapshot(const char *bootstrap, const char *key, const char *stored, size_t slen,
                                    int64_t rev)
{
    char name[512];
    snprintf(name, sizeof(name), "etcd:%s@%lld", key, (long long)rev);
    gh_diag d;
    gh_diag_init(&d, name);
    gh_config *cfg = stored ? gh_config_load_layered(bootstrap, name, stored, slen, &d) : NULL;
    gh_snapshot *s = cfg ? gh_snapshot_build(cfg, 1, &d) : NULL;
    gh_diag_free(&d);
    if (stored && !s)
        fprintf(stderr, "%s: the stored document does not load; showing %s against an empty one\n", name, key);
    if (s)
        return s;
    gh_diag_init(&d, name);
    static const char empty[] = "routes: []\n";
    cfg = gh_config_load_layered(bootstrap, name, empty, sizeof(empty) - 1, &d);
    s = cfg ? gh_snapshot_build(cfg, 1, &d) : NULL;
    gh_diag_free(&d);
    return s;
}

/* What the push changes, printed on stdout before writing: exactly what
 * `gatehouse diff` prints for the stored document against FILE. Returns
 * gh_config_diff's answer (0 same, 1 differs, -1 trouble). */
static int show_changes(const char *bootstrap, const char *key, const char *stored, size_t slen, int64_t rev,
                        gh_snapshot *neu, const char *file)
{
    if (stored)
        printf("%s@%lld -> %s\n", key, (long long)rev, file);
    else
        printf("%s: no document yet -> %s\n", key, file);
    gh_snapshot *old = stored_snapshot(bootstrap, key, stored, slen, rev);
    int rc = old ? gh_config_diff(old, neu, stdout) : -1;
    gh_snapshot_unref(old);
    fflush(stdout);
    return rc;
}

int gh_config_push(const char *bootstrap, const char *file, bool dry_run, int64_t base_revision)
{
    gh_tls_client *tls = NULL;
    gh_config *boot = load_bootstrap(bootstrap, &tls);
    if (!boot)
        return 1;
    size_t len;
    char *text = gh_config_read_file(file, &len);
    if (!text) {
        fprintf(stderr, "gatehouse: cannot read %s: %s\n", file, strerror(errno));
        gh_config_free(boot);
        return 1;
    }
    gh_diag d;
    gh_diag_init(&d, file);
    gh_config *cfg = gh_config_load_layered(bootstrap, file, text, len, &d);
    gh_snapshot *snap = cfg ? gh_snapshot_build(cfg, 1, &d) : NULL;
    gh_diag_print(&d, stderr);
    int rc = 0;
    if (!snap) {
        fprintf(stderr, "gatehouse: %s is invalid: nothing written to etcd\n", file);
        rc = dry_run ? 2 : 1;
        goto out;
    }
    char err[768] = "", *stored = NULL;
    size_t slen = 0;
    int64_t rev;
    if (!gh_etcd_get(boot->etcd, tls, &stored, &slen, &rev, err, sizeof(err))) {
        fprintf(stderr, "gatehouse: cannot read %s from etcd: %s\n", boot->etcd->key.p, err);
        rc = 3;
        goto out;
    }
    int changes = show_changes(bootstrap, boot->etcd->key.p, stored, slen, rev, snap, file);
    free(stored);
    if (changes < 0) {
        fprintf(stderr, "gatehouse: cannot compare with the stored document (out of memory); nothing written\n");
        rc = dry_run ? 2 : 1;
        goto out;
    }
    if (base_revision >= 0 && base_revision != rev) {
        fprintf(stderr, "gatehouse: refused: %s is at revision %lld, not %lld (someone pushed since); pull, review, "
                        "push again\n", boot->etcd->key.p, (long long)rev, (long long)base_revision);
        rc = dry_run ? 2 : 1;
        goto out;
    }
    if (dry_run) {   /* exit codes as `diff`'s: 0 nothing would change, 1 something would */
        fprintf(stderr, "dry run: %s is valid; nothing written\n", file);
        rc = changes;
        goto out;
    }
    bool conflict;
    int64_t now;
    if (!gh_etcd_put_if(boot->etcd, tls, text, len, rev, &conflict, &now, err, sizeof(err))) {
        fprintf(stderr, "gatehouse: %s%s\n", conflict ? "refused: " : "cannot write to etcd: ", err);
        rc = conflict ? 1 : 3;
        goto out;
    }
    printf("pushed %s to %s: revision %lld\n", file, boot->etcd->key.p, (long long)now);
out:
    gh_diag_free(&d);
    gh_snapshot_unref(snap);
    free(text);
    gh_tls_client_free(tls);
    gh_config_free(boot);
    gh_router_thread_done();
    return rc;
}

int gh_config_pull(const char *bootstrap)
{
    gh_tls_client *tls = NULL;
    gh_config *boot = load_bootstrap(bootstrap, &tls);
    if (!boot)
        return 1;
    char err[768] = "", *v = NULL;
    size_t len;
    int64_t rev;
    int rc = 0;
    if (!gh_etcd_get(boot->etcd, tls, &v, &len, &rev, err, sizeof(err))) {
        fprintf(stderr, "gatehouse: cannot read %s from etcd: %s\n", boot->etcd->key.p, err);
        rc = 3;
    } else if (!v) {
        fprintf(stderr, "gatehouse: no document at %s\n", boot->etcd->key.p);
        rc = 1;
    } else {
        fwrite(v, 1, len, stdout);
        fprintf(stderr, "# %s at revision %lld\n", boot->etcd->key.p, (long long)rev);
    }
    free(v);
    gh_tls_client_free(tls);
    gh_config_free(boot);
    return rc;
}
