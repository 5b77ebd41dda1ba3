/* plugin_cfg.h — plugin and consumer configuration as plain data (SPEC §5).
 *
 * A plugin's id is its place in the fixed phase order of SPEC §5, so a
 * route's chain is simply its configured plugins in id order. Each plugin's
 * configuration starts with gh_plugin_cfg; config/plugins.c parses it (one
 * row per plugin), plugins/ compiles and runs it. Types only. */
#ifndef GH_CONFIG_PLUGIN_CFG_H
#define GH_CONFIG_PLUGIN_CFG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/cidr.h"
#include "core/diag.h"
#include "core/str.h"
#include "config/plugin_list.h"

/* Ids in run order, from the table (config/plugin_list.h). */
#define GH_PLUGIN_ID_(ID, name, phase, T, parse, ops) GH_PLUGIN_##ID,
enum gh_plugin_id { GH_PLUGIN_TABLE(GH_PLUGIN_ID_) GH_PLUGIN_COUNT };
#undef GH_PLUGIN_ID_

/* Phases (SPEC §5), in order; each plugin names its own in the table. */
enum gh_plugin_phase { GH_PHASE_FILTER, GH_PHASE_AUTH, GH_PHASE_AUTHZ, GH_PHASE_LIMIT, GH_PHASE_VALIDATE, GH_PHASE_CACHE, GH_PHASE_RESPONSE };

/* The head of every plugin's configuration. */
typedef struct gh_plugin_cfg {
    int id;                       /* enum gh_plugin_id */
    bool enabled;                 /* `name: false` turns off an inherited plugin */
    gh_mark mark;                 /* of the plugin's key */
    uint64_t hash;                /* of its configuration as written (env expanded) */
    uint64_t state_key;           /* hash + where it is configured: state kept across
                                     reloads is found by this (set at snapshot build) */
    int ctx_slot;                 /* its per-worker context's index (plugins with contexts) */
    void *rt;                     /* compiled state, owned by plugins/ (set at snapshot build) */
} gh_plugin_cfg;

/* Plugins configured at one level (global, route, version); NULL = not here. */
typedef struct gh_plugin_set {
    gh_plugin_cfg *p[GH_PLUGIN_COUNT];
    uint32_t on;                  /* a route's chain: bit id set = p[id] runs (set at load) */
} gh_plugin_set;

typedef struct gh_key_auth_cfg {
    gh_plugin_cfg base;
    gh_str header;                /* default X-API-Key; empty with query only */
    gh_str query;                 /* query parameter; empty = not read */
    bool hide_credentials;        /* remove the key before forwarding */
} gh_key_auth_cfg;

typedef struct gh_basic_auth_cfg {
    gh_plugin_cfg base;
    gh_str realm;                 /* default "gatehouse" */
    bool hide_credentials;
} gh_basic_auth_cfg;

typedef struct gh_mtls_auth_cfg {
    gh_plugin_cfg base;
} gh_mtls_auth_cfg;

typedef struct gh_jwt_issuer_cfg {
    gh_str issuer;                /* required `iss`; empty = any */
    gh_str *audiences;
    size_t naudiences;
    gh_str keys_file;             /* PEM or JWKS (resolved path); or: */
    gh_str secret;                /* raw bytes of the string (HS*) */
    bool secret_base64;           /* `secret_base64:` given: secret holds the decoded bytes */
    gh_str *algorithms;           /* names as written (checked at compile); none = what the keys allow */
    size_t nalgorithms;
    gh_mark mark, keys_mark, algorithms_mark;   /* of the item, keys_file (key) or secret (value), algorithms */
} gh_jwt_issuer_cfg;

typedef struct gh_claim_header {
    gh_str header, claim;         /* forward_claims: { X-User-Id: sub } */
} gh_claim_header;

typedef struct gh_scope_rule {
    gh_str method;                /* upper-case; "*" = any other */
    gh_str *scopes;               /* all required */
    size_t nscopes;
} gh_scope_rule;

typedef struct gh_jwt_cfg {
    gh_plugin_cfg base;
    gh_jwt_issuer_cfg *issuers;
    size_t nissuers;
    uint64_t clock_skew_ms;       /* default 30s */
    gh_claim_header *forward_claims;
    size_t nforward_claims;
    bool require_consumer;        /* a valid token must map to a consumer (jwt_subject) */
    gh_scope_rule *scopes;
    size_t nscopes;
    bool hide_credentials;
    gh_str *require;              /* claims that must be present: [exp, sub, ...] */
    size_t nrequire;
} gh_jwt_cfg;

typedef struct gh_acl_cfg {
    gh_plugin_cfg base;
    gh_str *allow, *deny;         /* consumer groups */
    size_t nallow, ndeny;
} gh_acl_cfg;

typedef struct gh_ip_filter_cfg {
    gh_plugin_cfg base;
    gh_cidr *allow, *deny;
    size_t nallow, ndeny;
} gh_ip_filter_cfg;

typedef struct gh_cors_cfg {
    gh_plugin_cfg base;
    gh_str *origins;              /* exact, a host starting with "*." (any subdomain), or a lone star */
    size_t norigins;
    gh_str methods;               /* joined "GET, POST"; default the simple set */
    gh_str headers;               /* joined; empty = echo the requested ones */
    gh_str expose_headers;        /* joined; may be empty */
    bool credentials;
    uint64_t max_age_s;           /* 0 = no Access-Control-Max-Age */
    uint32_t method_bits;         /* GH_M_* of methods (for preflight checks) */
    gh_str *method_names;         /* the same, each */
    size_t nmethods;
    gh_str *header_names;         /* lower-case, each */
    size_t nheaders;
} gh_cors_cfg;

/* rate_limit (SPEC §5.3): one or several limits on one key. */
#define GH_RL_MAX_LIMITS 4
#define GH_RL_MAX_KEYS 4
#define GH_RL_MAX_LIMIT 1000000   /* per window (the counters are 20 bits wide) */
enum { GH_RL_SLIDING_WINDOW = 0, GH_RL_TOKEN_BUCKET };
enum { GH_RL_LOCAL = 0, GH_RL_CLUSTER };
enum { GH_RL_KEY_CONSUMER = 0, GH_RL_KEY_IP, GH_RL_KEY_ROUTE, GH_RL_KEY_HEADER };

typedef struct gh_rate_limit_cfg {
    gh_plugin_cfg base;
    struct { uint64_t limit, window_ms; } limits[GH_RL_MAX_LIMITS];
    size_t nlimits;
    int algorithm;                /* GH_RL_SLIDING_WINDOW (default) | GH_RL_TOKEN_BUCKET */
    int scope;                    /* GH_RL_LOCAL (default) | GH_RL_CLUSTER */
    struct { int kind; gh_str header; } keys[GH_RL_MAX_KEYS];   /* default: consumer */
    size_t nkeys;
    gh_mark scope_mark;
} gh_rate_limit_cfg;

/* request_validation (SPEC §5.4): checks on the request before it is forwarded. */
typedef struct gh_request_validation_cfg {
    gh_plugin_cfg base;
    uint64_t max_body;            /* bytes; 0 = only limits.max_body_bytes */
    gh_str *content_types;        /* lower-case "type/sub", "type/ANY" or "ANY/ANY" (ANY = star); none = any */
    size_t ncontent_types;
    bool json;                    /* the body must be one JSON text */
    gh_str *required_headers;     /* names as written */
    size_t nrequired_headers;
    gh_str *required_query;       /* query parameter names */
    size_t nrequired_query;
} gh_request_validation_cfg;

/* cache (SPEC §7.3): responses kept and served again (plugins/cache.c). */
#define GH_CACHE_MAX_HEADERS 8
enum { GH_CACHE_MEMORY = 0, GH_CACHE_REDIS };
typedef struct gh_cache_cfg {
    gh_plugin_cfg base;
    uint64_t ttl_ms;              /* the longest an entry lives (30s) */
    uint32_t methods;             /* GH_M_GET | GH_M_HEAD (the only ones accepted) */
    gh_str vary[GH_CACHE_MAX_HEADERS];        /* request headers in the key, and forwarded */
    size_t nvary;
    gh_str key_headers[GH_CACHE_MAX_HEADERS]; /* request headers in the key only */
    size_t nkey_headers;
    uint64_t max_entry;           /* bytes of body (1MiB) */
    uint64_t size;                /* bytes of the store (256MiB) */
    int store;                    /* GH_CACHE_MEMORY | GH_CACHE_REDIS */
    gh_mark store_mark;
    bool collapse;                /* concurrent identical misses share one fill */
    bool shared_auth;             /* requests with Authorization may use the cache */
} gh_cache_cfg;

/* compress (SPEC §7.3): response content codings, by Accept-Encoding. */
enum { GH_COMPRESS_BR = 0, GH_COMPRESS_GZIP, GH_COMPRESS_COUNT };
typedef struct gh_compress_cfg {
    gh_plugin_cfg base;
    gh_str *types;                /* media types: "application/json", a major type "text/" + "*" */
    size_t ntypes;
    uint64_t min_size;            /* a known Content-Length below this is sent as is */
    gh_str names[GH_COMPRESS_COUNT];   /* the algorithms, in the server's preference order */
    int algos[GH_COMPRESS_COUNT];      /* GH_COMPRESS_* of each */
    size_t nalgos;
    int level[GH_COMPRESS_COUNT];      /* by GH_COMPRESS_*: gzip 1-9 (6), br 0-11 (4) */
} gh_compress_cfg;

/* ---- consumers (SPEC §5.1) ---- */
typedef struct gh_api_key_cfg {
    gh_str key;                   /* the key itself (secret), or empty when: */
    uint8_t sha256[32];           /* ... given as { sha256: hex }; else filled at compile */
    bool hashed;
    gh_mark mark;
} gh_api_key_cfg;

typedef struct gh_consumer_cfg {
    gh_str name;
    gh_mark mark;
    gh_str *groups;
    size_t ngroups;
    gh_str groups_text;           /* "admins,beta": X-Consumer-Groups, in the configured order */
    gh_api_key_cfg *api_keys;
    size_t napi_keys;
    gh_str basic_user, basic_hash;/* basic: { username, password_hash } */
    gh_mark basic_mark;
    gh_str mtls_subject;          /* RFC 4514 subject of a verified client certificate */
    gh_str jwt_subject;           /* JWT `sub` */
} gh_consumer_cfg;

#endif
