/* config.h — the configuration as plain C data (SPEC §2-§4).
 *
 * gh_config_load_* parse YAML (libfyaml) into these structs, validate them
 * (units, ${ENV}, unknown keys, references) and report every problem to a
 * gh_diag as FILE:LINE:COL. Everything lives in cfg->arena; strings are
 * NUL-terminated. Nothing here runs: compiling (router, upstream runtime)
 * happens in the modules above, and nothing reads YAML after load. */
#ifndef GH_CONFIG_CONFIG_H
#define GH_CONFIG_CONFIG_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "core/arena.h"
#include "core/cidr.h"
#include "core/diag.h"
#include "core/method.h"
#include "core/str.h"
#include "config/plugin_cfg.h"

typedef struct gh_kv {
    gh_str name, value;
    gh_mark mark;                 /* of the key */
    bool secret;                  /* value came from ${ENV}: masked outside the process */
} gh_kv;


/* ---- TLS (listen.tls, upstreams.*.tls) ---- */
enum gh_client_cert { GH_CLIENT_CERT_NONE = 0, GH_CLIENT_CERT_OPTIONAL, GH_CLIENT_CERT_REQUIRED };

typedef struct gh_cert_cfg {
    gh_str cert, key;             /* PEM file paths, resolved against the config file's directory
                                   * (cert: the leaf first, then its chain) */
    gh_mark mark;                 /* of the list item */
    gh_mark cert_mark, key_mark;  /* of the `cert` and `key` keys: where file errors point */
} gh_cert_cfg;

typedef struct gh_tls_listen_cfg {
    gh_cert_cfg *certificates;    /* SNI picks by the certificate's names; the first is the default */
    size_t ncertificates;
    gh_str client_ca;             /* PEM bundle for mTLS (resolved path); empty = none */
    int client_cert;              /* enum gh_client_cert; default optional with client_ca, else none */
    int min_version;              /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
    gh_mark mark, client_ca_mark; /* of the `tls` and `client_ca` keys */
} gh_tls_listen_cfg;

typedef struct gh_tls_upstream_cfg {
    bool verify;                  /* default true */
    gh_str ca;                    /* PEM bundle (resolved path); empty = the system's CAs */
    gh_str sni;                   /* server name to send and verify; default: the target's host */
    gh_str cert, key;             /* client certificate (optional; both or neither) */
    gh_mark mark;                 /* of the `tls` key */
    gh_mark ca_mark, cert_mark, key_mark;   /* of those keys: where file errors point */
} gh_tls_upstream_cfg;

typedef struct gh_listen_cfg {
    gh_str address;               /* as written: "0.0.0.0:8080", "[::]:8080" */
    struct sockaddr_storage sa;   /* resolved at load */
    socklen_t salen;
    bool http2;                   /* h2c prior knowledge (plaintext) / ALPN h2 (TLS) */
    bool path_strict;             /* default true (SPEC §4) */
    gh_tls_listen_cfg *tls;       /* NULL = plaintext */
    gh_mark mark;
} gh_listen_cfg;

/* limits.underscores_in_headers: X_Consumer reaches a CGI/WSGI upstream as
 * HTTP_X_CONSUMER, the same variable as X-Consumer (nginx drops them too). */
enum gh_underscores { GH_UNDERSCORES_DROP = 0, GH_UNDERSCORES_ALLOW, GH_UNDERSCORES_REJECT };

typedef struct gh_limits_cfg {
    uint64_t header_timeout_ms;   /* 10s */
    uint64_t body_timeout_ms;     /* 10s */
    uint64_t min_body_rate;       /* bytes/s, 1KiB */
    uint64_t idle_timeout_ms;     /* 60s */
    uint64_t max_header_bytes;    /* 16KiB */
    uint64_t max_headers;         /* 100 */
    uint64_t max_body_bytes;      /* 10MiB */
    uint64_t max_connections;     /* 100000 (per process) */
    int underscores_in_headers;   /* enum gh_underscores: request header names with '_' */
} gh_limits_cfg;

typedef struct gh_log_cfg {
    int level;                    /* enum gh_log_level, default info */
    gh_str access;                /* "stdout" (default), "off", or a path */
    gh_str errors;                /* "stderr" (default) or a path */
} gh_log_cfg;

/* ---- redis (SPEC §2): the store behind scope: cluster limits ---- */
enum gh_redis_on_error { GH_REDIS_ON_ERROR_ALLOW = 0, GH_REDIS_ON_ERROR_DENY };

typedef struct gh_redis_addr_cfg {
    gh_str host;                  /* name or literal, no brackets ("localhost" kept as 127.0.0.1) */
    uint16_t port;
    gh_mark mark;
} gh_redis_addr_cfg;

typedef struct gh_redis_cfg {
    gh_redis_addr_cfg *nodes;     /* `address` (one) or the `cluster` seeds */
    size_t nnodes;
    bool cluster;                 /* Redis Cluster: slots from CLUSTER SLOTS */
    gh_str username, password;    /* AUTH on every connect; empty = none (password is a secret) */
    gh_tls_upstream_cfg *tls;     /* NULL = plaintext; same keys as an upstream's tls */
    uint64_t timeout_ms;          /* per command, default 50ms */
    int on_error;                 /* enum gh_redis_on_error */
    gh_mark mark;
} gh_redis_cfg;

/* Same servers, credentials and timeout (a reload keeps the connections). */
bool gh_redis_cfg_equal(const gh_redis_cfg *a, const gh_redis_cfg *b);

/* ---- config_source (SPEC §2, §10) ---- */
typedef struct gh_etcd_endpoint_cfg {
    gh_str url;                   /* as written: http://10.0.0.1:2379 */
    gh_str host;                  /* NUL-terminated; resolved when connecting */
    uint16_t port;
    bool tls;                     /* https:// */
} gh_etcd_endpoint_cfg;

typedef struct gh_etcd_cfg {
    gh_etcd_endpoint_cfg *endpoints;   /* tried in order, fail-over to the next */
    size_t nendpoints;
    gh_str key;                   /* the document's key */
    gh_str username, password;    /* auth (password is a secret); empty = none */
    gh_str cache_file;            /* last good document; empty = none */
    gh_tls_upstream_cfg *tls;     /* CA, client certificate for https endpoints */
    gh_mark mark;
} gh_etcd_cfg;

/* ---- upstreams (SPEC §3) ---- */
enum gh_balance { GH_BALANCE_ROUND_ROBIN = 0, GH_BALANCE_LEAST_CONN, GH_BALANCE_RANDOM_TWO, GH_BALANCE_HASH };
/* hash_on: what a `balance: hash` request is keyed by */
enum gh_hash_on { GH_HASH_NONE = 0, GH_HASH_HEADER, GH_HASH_COOKIE, GH_HASH_IP, GH_HASH_PATH, GH_HASH_CONSUMER };
enum gh_protocol { GH_PROTO_HTTP1 = 0, GH_PROTO_H2 };

/* retries.on: bit set of failure kinds */
enum {
    GH_RETRY_CONNECT_ERROR = 1u << 0,
    GH_RETRY_RESET         = 1u << 1,
    GH_RETRY_TIMEOUT       = 1u << 2,
    GH_RETRY_500           = 1u << 3,
    GH_RETRY_502           = 1u << 4,
    GH_RETRY_503           = 1u << 5,
    GH_RETRY_504           = 1u << 6,
};

typedef struct gh_target_cfg {
    gh_str address;               /* as written, "host:port" */
    gh_str host;                  /* host part (name or literal, no brackets) */
    uint16_t port;
    uint32_t weight;              /* default 1 */
    struct sockaddr_storage sa;   /* resolved at load (names: first address) */
    socklen_t salen;
    gh_mark mark;
} gh_target_cfg;

typedef struct gh_upstream_cfg {
    gh_str name;
    uint32_t metric_id;           /* observe/metrics.h id, set when the snapshot is built */
    gh_mark mark;
    gh_target_cfg *targets;
    size_t ntargets;
    int balance;                  /* enum gh_balance */
    uint32_t keepalive;           /* idle pooled conns per target per worker, 128 */
    int protocol;                 /* enum gh_protocol */
    uint64_t connect_timeout_ms;  /* 2s */
    uint64_t send_timeout_ms;     /* 30s */
    uint64_t read_timeout_ms;     /* 30s */
    uint32_t retry_attempts;      /* extra tries after the first, default 1 */
    uint32_t retry_on;            /* GH_RETRY_* bits; default connect_error|reset|502|503|504 */
    uint64_t retry_backoff_ms;    /* default 0 */
    gh_tls_upstream_cfg *tls;     /* NULL = plaintext */
    int hash_on;                  /* enum gh_hash_on (balance: hash) */
    gh_str hash_name;             /* header or cookie name */
    /* responses counted as failures by health checks and the circuit
     * breaker (SPEC §12.7): bit s of the set, statuses 100-599 */
    uint64_t failure_statuses[10];
    struct {                      /* health_check.passive; off when failures == 0 */
        uint32_t failures;        /* this many failures ... */
        uint64_t within_ms;       /* ... within this long (10s) ... */
        uint64_t eject_for_ms;    /* ... take the target out this long (30s) */
    } passive;
    struct {                      /* health_check.active (probed off the request path) */
        bool on;
        gh_str path;              /* /health */
        uint64_t interval_ms;     /* 5s */
        uint64_t timeout_ms;      /* 1s */
        uint32_t healthy_after;   /* 2 */
        uint32_t unhealthy_after; /* 3 */
        struct { uint16_t lo, hi; } expect[16];   /* default [200-399] */
        size_t nexpect;
    } active;
    struct {                      /* circuit_breaker; off when !on */
        bool on;
        double failure_ratio;     /* 0.5 */
        uint32_t min_requests;    /* 20 */
        uint64_t window_ms;       /* 10s */
        uint64_t open_for_ms;     /* 30s */
        uint32_t max_pending;     /* 1024; 0 = no bound */
    } circuit;
    uint64_t resolve_every_ms;    /* 0 = resolved at load only */
    gh_mark health_mark, circuit_mark;
} gh_upstream_cfg;

static inline bool gh_upstream_failure_status(const gh_upstream_cfg *u, int status)
{
    return status >= 0 && status < 640 && (u->failure_statuses[status >> 6] >> (status & 63) & 1);
}

/* ---- routes (SPEC §4) ---- */
enum gh_target_kind {
    GH_TARGET_UPSTREAM = 1, GH_TARGET_RESPOND, GH_TARGET_ECHO, GH_TARGET_REDIRECT, GH_TARGET_VERSIONS,
    GH_TARGET_AGGREGATE, GH_TARGET_BATCH,
};

typedef struct gh_versions_cfg gh_versions_cfg;
typedef struct gh_aggregate_cfg gh_aggregate_cfg;
typedef struct gh_batch_cfg gh_batch_cfg;

/* Known methods are GH_M_* bits (core/method.h); a route may also list
 * other tokens (extension methods). */

typedef struct gh_header_ops {
    gh_kv *set;                   /* replace (or add) these headers */
    size_t nset;
    gh_str *remove;               /* header names to drop */
    size_t nremove;
} gh_header_ops;

typedef struct gh_route_cfg {
    gh_str name;
    uint32_t metric_id;           /* observe/metrics.h id, set when the snapshot is built */
    gh_mark mark;                 /* of the list item */
    size_t index;                 /* position in the file (regex order, messages) */
    struct {
        gh_str host;              /* lower-cased; "*.example.com" for wildcards; empty = any */
        gh_str prefix;            /* normalized, no trailing slash except "/" itself */
        gh_str path;              /* template with {name} and {rest*} */
        gh_str regex;             /* PCRE2 pattern */
        uint32_t methods;         /* GH_M_* bits; 0 = any */
        gh_str *method_names;     /* every method as written, upper-case */
        size_t nmethods;
        gh_kv *headers;           /* exact values; names as written */
        size_t nheaders;
        gh_kv *query;
        size_t nquery;
        bool case_insensitive;    /* the path ignores ASCII case (IIS-like backends) */
        gh_mark mark, host_mark, path_mark;   /* path_mark: of prefix/path/regex key */
    } match;
    int target;                   /* enum gh_target_kind */
    gh_mark target_mark;          /* of the target key */
    /* GH_TARGET_UPSTREAM */
    gh_str upstream_name;
    const gh_upstream_cfg *upstream;   /* resolved at load */
    size_t upstream_index;
    /* GH_TARGET_RESPOND */
    struct { int status; gh_kv *headers; size_t nheaders; gh_str body; } respond;
    /* GH_TARGET_REDIRECT */
    struct { gh_str to; int status; } redirect;
    struct {
        bool strip_prefix;
        gh_str prefix;            /* prepended after stripping */
        gh_str path;              /* template using match params */
        gh_mark mark;
    } rewrite;
    gh_header_ops request_headers, response_headers;
    uint64_t timeout_ms;          /* 0 = upstream read timeout applies */
    gh_plugin_set plugins;        /* configured on the route */
    gh_plugin_set chain;          /* what runs: the global plugins overridden by the route's */
    bool has_plugins;             /* chain holds an enabled plugin (else the dispatcher skips it) */
    /* GH_TARGET_VERSIONS (SPEC §6) */
    gh_versions_cfg *versions;
    const struct gh_version_cfg *version;   /* on a version's own route: which one */
    gh_aggregate_cfg *aggregate;  /* GH_TARGET_AGGREGATE (SPEC §7.1) */
    gh_batch_cfg *batch;          /* GH_TARGET_BATCH (SPEC §7.2) */
} gh_route_cfg;

/* ---- aggregate and batch (SPEC §7.1, §7.2) ---- */
typedef struct gh_backend_cfg {
    gh_str key;                   /* the answer's key */
    gh_str path;                  /* template: {name} from the match, else the query parameter */
    bool optional;                /* failing or late: null and Gatehouse-Partial */
    gh_str *select;               /* top-level fields kept; none = the whole body */
    size_t nselect;
    uint64_t timeout_ms;          /* 0 = the aggregate's */
    gh_mark mark;                 /* of the list item */
    /* What the upstream call is given: the upstream (resolved at load),
     * the deadline (this timeout, within the aggregate's), the aggregate
     * route's request header edits; no plugins (they ran on the route).
     * Without `upstream` (route.target 0) the path is routed by the
     * gateway itself, like a client's request; timeout_ms still applies. */
    gh_route_cfg route;
} gh_backend_cfg;

struct gh_aggregate_cfg {
    gh_backend_cfg *backends;     /* called in parallel */
    size_t n;
    uint64_t timeout_ms;          /* the whole answer, default 5s */
    uint64_t max_body;            /* each backend's body, default 1MiB */
};

struct gh_batch_cfg {
    uint32_t max_requests;        /* default 20; more: 413 */
    uint32_t concurrency;         /* items in flight per batch, default 8 */
    uint64_t max_body;            /* each item's response body, default 1MiB */
};

/* ---- versions (SPEC §6) ---- */
enum gh_version_source { GH_VSRC_PATH = 1, GH_VSRC_HEADER, GH_VSRC_QUERY, GH_VSRC_ACCEPT };
enum gh_sticky { GH_STICKY_NONE = 0, GH_STICKY_HEADER, GH_STICKY_COOKIE, GH_STICKY_CONSUMER, GH_STICKY_IP };
#define GH_NO_DATE INT64_MIN

typedef struct gh_version_cfg {
    gh_str name;                  /* "2" */
    gh_mark mark;                 /* of the key in `list` */
    size_t index;                 /* in the list */
    /* The route as this version serves it: a copy of the versioned route
     * with the version's target, rewrite, header edits and plugins over
     * the route's. The dispatcher hands this to the plugin chain and target. */
    gh_route_cfg route;
    int64_t deprecated, sunset;   /* unix seconds, or GH_NO_DATE */
    gh_mark deprecated_mark, sunset_mark;
    gh_str docs;                  /* Link: <docs>; rel="deprecation" */
    bool preview;
    gh_str preview_group, preview_header;   /* preview_requires: one of them */
    /* response headers, prepared at load */
    gh_str deprecation_value;     /* "@1780272000" (RFC 9745) */
    gh_str sunset_value;          /* HTTP-date (RFC 8594) */
    gh_str link_value;            /* "<URL>; rel=\"deprecation\"" */
} gh_version_cfg;

struct gh_versions_cfg {
    struct { int kind; gh_str name; } from[8];   /* enum gh_version_source; name for header/query */
    size_t nfrom;
    bool from_path;               /* "path" is among the sources */
    const gh_version_cfg *def;    /* `default`, or NULL: 400 version_required */
    gh_version_cfg *list;
    size_t n;
    struct {
        const gh_version_cfg *to, *of;   /* NULL: no canary */
        uint32_t per_10000;       /* percent * 100 */
        int sticky;               /* enum gh_sticky */
        gh_str sticky_name;       /* header or cookie name */
        gh_mark mark;
    } canary;
    gh_str versions_json;         /* "\"versions\":[\"1\",\"2\"]" for version_unknown */
    gh_str names;                 /* "1, 2, 3" for messages */
};

/* admin: the admin API's own listener (SPEC §9). */
typedef struct gh_admin_cfg {
    gh_listen_cfg listen;         /* plaintext; address only */
    gh_str token;                 /* bearer token for /api/...; empty = loopback clients only */
} gh_admin_cfg;

typedef struct gh_config {
    gh_arena arena;
    const char *file;             /* as given on the command line */
    gh_listen_cfg *listens;
    size_t nlistens;
    gh_admin_cfg *admin;          /* NULL = no admin API */
    int workers;                  /* 0 = auto (one per core) */
    gh_limits_cfg limits;
    gh_cidr *trusted_proxies;
    size_t ntrusted_proxies;
    gh_log_cfg log;
    uint64_t drain_timeout_ms;    /* 30s */
    gh_upstream_cfg *upstreams;
    size_t nupstreams;
    gh_route_cfg *routes;
    size_t nroutes;
    gh_plugin_set plugins;        /* global: every route runs them unless it overrides */
    gh_consumer_cfg *consumers;
    size_t nconsumers;
    gh_redis_cfg *redis;          /* NULL = no redis: section */
    gh_etcd_cfg *etcd;            /* config_source.etcd; NULL = the file is the configuration */
    bool watch;                   /* reload when the file changes */
    int64_t revision;             /* etcd revision of the document; 0 = from a file */
    const char **secrets;         /* strings of the arena that came from ${ENV} */
    size_t nsecrets, capsecrets;
    gh_str *secret_params;        /* key_auth `query` names: masked in the access log */
    size_t nsecret_params, capsecret_params;
    const char *document;         /* the file as JSON, secrets masked (GET /api/config); may be NULL */
} gh_config;

/* Parse and validate. NULL when any error was reported to diag (all errors
 * are reported, not just the first). `name` is used in messages. */
gh_config *gh_config_load_file(const char *path, gh_diag *diag);
gh_config *gh_config_load_string(const char *name, const char *text, size_t len, gh_diag *diag);
/* A fleet's configuration (SPEC §12.21): the bootstrap file's listen, admin,
 * config_source, watch, workers and log, and everything else from `doc`
 * (named doc_name in messages), which must not hold the first three. */
gh_config *gh_config_load_layered(const char *boot_path, const char *doc_name, const char *doc, size_t len,
                                  gh_diag *diag);
/* The whole file in a malloc'd NUL-terminated buffer; NULL with errno set. */
char *gh_config_read_file(const char *path, size_t *len);
void gh_config_free(gh_config *cfg);

const gh_upstream_cfg *gh_config_upstream(const gh_config *cfg, gh_str name);
const gh_version_cfg *gh_config_version(const gh_versions_cfg *vs, gh_str name);   /* NULL if absent */

/* SPEC §12.16: a value that came from ${ENV} never leaves the process; what
 * prints configuration (routes, explain, the admin API) shows "***". */
void gh_config_add_secret(gh_config *cfg, const char *p);
bool gh_config_is_secret(const gh_config *cfg, const char *p);
/* s itself, or "***" when it is a secret. */
gh_str gh_config_show(const gh_config *cfg, gh_str s);
/* Query parameters whose values are credentials (the access log masks
 * them): the key_auth `query` names of cfg, registered by the loader, and
 * well-known names (api_key, token, password, ...). `name` as decoded;
 * compared case-insensitively. */
void gh_config_add_secret_param(gh_config *cfg, gh_str name);
bool gh_config_is_secret_param(const gh_config *cfg, gh_str name);

#endif
