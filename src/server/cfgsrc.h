/* cfgsrc.h — where the configuration comes from (SPEC §2, §9, §10): the
 * file, the file watched for changes, or etcd. Every source feeds the same
 * validate-then-swap reload: it says "changed" and hands out the document
 * to load, which is parsed and compiled off the main loop. */
#ifndef GH_SERVER_CFGSRC_H
#define GH_SERVER_CFGSRC_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "server/snapshot.h"

/* One document to load: the file itself (text NULL), or etcd's text layered
 * on the bootstrap file. */
typedef struct gh_cfgdoc {
    char *path;                   /* the file given with -c; NULL = embedded demo */
    char *text;                   /* etcd's document, or NULL */
    size_t len;
    char *name;                   /* etcd:KEY@REVISION, for messages */
    int64_t revision;             /* etcd's mod_revision; 0 = a file */
} gh_cfgdoc;

typedef struct gh_cfgsrc gh_cfgsrc;

/* boot: the configuration loaded from path at start (kept by the caller).
 * changed(ud) runs on the loop when a new document is there to load. With
 * etcd, the first document (or the cache file, when etcd is unreachable)
 * is waited for here, running the loop. */
gh_cfgsrc *gh_cfgsrc_new(uv_loop_t *loop, const char *path, const gh_config *boot, void (*changed)(void *ud),
                         void *ud);
/* Returns true when this source needs the first document from etcd (the
 * bootstrap alone is not the configuration). */
bool gh_cfgsrc_is_remote(const gh_cfgsrc *s);
/* The document to load now (a copy, for another thread). */
bool gh_cfgsrc_current(gh_cfgsrc *s, gh_cfgdoc *out);
/* After a reload: a good etcd document goes to the cache file; watch
 * follows the new configuration's `watch`. */
void gh_cfgsrc_loaded(gh_cfgsrc *s, const gh_cfgdoc *doc, const gh_config *cfg, bool ok);
void gh_cfgsrc_free(gh_cfgsrc *s);

/* Thread-safe: load, validate and compile (names resolved here, off the loop). */
gh_snapshot *gh_cfgdoc_load(const gh_cfgdoc *doc, int nworkers, gh_diag *diag);
void gh_cfgdoc_free(gh_cfgdoc *doc);

#endif
