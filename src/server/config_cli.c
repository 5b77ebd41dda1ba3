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

/* What the push changes, printed before writing. `gatehouse diff` (route
 * changes and the sample requests that move) plugs in here when it lands;
 * until then, the revisions involved. */
static void show_changes(const char *key, const char *stored, int64_t rev, const char *file)
{
    if (stored)
        fprintf(stderr, "%s: replacing revision %lld with %s\n", key, (long long)rev, file);
    else
        fprintf(stderr, "%s: no document yet; storing %s\n", key, file);
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
        rc = 1;
        goto out;
    }
    char err[768] = "", *stored = NULL;
    size_t slen;
    int64_t rev;
    if (!gh_etcd_get(boot->etcd, tls, &stored, &slen, &rev, err, sizeof(err))) {
        fprintf(stderr, "gatehouse: cannot read %s from etcd: %s\n", boot->etcd->key.p, err);
        rc = 3;
        goto out;
    }
    show_changes(boot->etcd->key.p, stored, rev, file);
    free(stored);
    if (base_revision >= 0 && base_revision != rev) {
        fprintf(stderr, "gatehouse: refused: %s is at revision %lld, not %lld (someone pushed since); pull, review, "
                        "push again\n", boot->etcd->key.p, (long long)rev, (long long)base_revision);
        rc = 1;
        goto out;
    }
    if (dry_run) {
        fprintf(stderr, "dry run: %s is valid; nothing written\n", file);
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
