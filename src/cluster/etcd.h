/* etcd.h — a small etcd v3 client over its HTTP/JSON gateway, on libuv
 * (main thread; control plane, not request traffic). It reads one key,
 * watches it from the last seen revision, fails over between endpoints and
 * reconnects with back-off. Also the blocking calls of `config push/pull`. */
#ifndef GH_CLUSTER_ETCD_H
#define GH_CLUSTER_ETCD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "config/config.h"
#include "tls/tls.h"

typedef struct gh_etcd gh_etcd;

typedef struct gh_etcd_handler {
    /* The key's value at mod_revision (value NULL: no such key). */
    void (*value)(void *ud, const char *value, size_t len, int64_t mod_revision);
    /* Every endpoint failed once (the first time only: start-up's cue to use
     * the cache file); the client keeps retrying. */
    void (*unreachable)(void *ud, const char *why);
    void *ud;
} gh_etcd_handler;

/* cfg and tls (for https endpoints; NULL without) must outlive the client. */
gh_etcd *gh_etcd_start(uv_loop_t *loop, const gh_etcd_cfg *cfg, gh_tls_client *tls, gh_etcd_handler h);
/* The TLS client for cfg's https endpoints (NULL, and nothing reported, when
 * there are none; NULL after reporting to diag when a file is bad). */
gh_tls_client *gh_etcd_tls(const gh_config *cfg, gh_diag *diag, bool *ok);
void gh_etcd_stop(gh_etcd *e);

/* Blocking one-shot calls for the command line (own loop). get: *value
 * malloc'd (NULL when the key is absent), *mod_revision 0 then. put: only
 * if the key's mod_revision is still `expect` (0 = absent); false with
 * *conflict set when someone wrote in between. err gets the reason. */
bool gh_etcd_get(const gh_etcd_cfg *cfg, gh_tls_client *tls, char **value, size_t *len, int64_t *mod_revision,
                 char *err, size_t errlen);
bool gh_etcd_put_if(const gh_etcd_cfg *cfg, gh_tls_client *tls, const char *value, size_t len, int64_t expect,
                    bool *conflict, int64_t *revision, char *err, size_t errlen);

#endif
