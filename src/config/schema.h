/* schema.h — the loader's inside: the YAML tree, the load context, and the
 * configuration keys declared as data (DESIGN "Config keys declared as data").
 *
 * load.c turns libfyaml's events into a small tree of gh_ynode with 1-based
 * marks on every node. Each section of the file (top level, an upstream, a
 * route, ...) is a table of gh_key: the key's name, the kind of value it
 * takes, and either the field it fills (plain values, by offset) or a
 * function. gh_ld_apply walks a mapping against such a table: unknown keys
 * (with a "did you mean" hint), wrong kinds and bad values are reported at
 * their line:col, and loading goes on so that every error is reported.
 * Adding a key is adding a row. Not for use outside src/config/. */
#ifndef GH_CONFIG_SCHEMA_H
#define GH_CONFIG_SCHEMA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"

/* ---- the YAML tree (lives in the load's temporary arena) ---- */
enum gh_ykind { GH_Y_SCALAR = 1, GH_Y_MAP, GH_Y_SEQ };

typedef struct gh_ynode gh_ynode;
typedef struct gh_ypair {
    gh_ynode *key, *value;
} gh_ypair;

struct gh_ynode {
    int kind;                 /* enum gh_ykind */
    gh_mark mark;             /* 1-based; an empty value gets its key's mark */
    bool plain;               /* plain scalar: "", "~", "null" mean null */
    gh_str text;              /* GH_Y_SCALAR: the value, NUL-terminated */
    gh_ynode **items;         /* GH_Y_SEQ */
    gh_ypair *pairs;          /* GH_Y_MAP, in file order */
    size_t n, cap;            /* items or pairs */
    size_t weight;            /* nodes below, aliases expanded (bounds alias bombs) */
};

bool gh_ynode_is_null(const gh_ynode *n);

/* ---- the load context ---- */
typedef struct gh_load {
    gh_config *cfg;
    gh_diag *diag;
    gh_arena *a;              /* cfg->arena: what the configuration keeps */
    gh_arena tmp;             /* the tree and scratch; freed after the load */
    const char *src;          /* the YAML text being parsed */
    size_t src_len;
} gh_load;

void gh_ld_error(gh_load *ld, gh_mark at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void *gh_ld_zalloc(gh_load *ld, size_t n);            /* in cfg->arena; aborts on OOM */
void *gh_ld_array(gh_load *ld, size_t n, size_t size); /* zeroed, overflow-checked */
gh_str gh_ld_copy(gh_load *ld, gh_str s);             /* NUL-terminated copy in cfg->arena */
void *gh_ld_tmp(gh_load *ld, size_t n);               /* in ld->tmp; aborts on OOM */

/* cfg->document: the tree as JSON with secrets masked (document.c). */
void gh_ld_document(gh_load *ld, const gh_ynode *root);

/* ---- keys as data ---- */
enum gh_vtype {
    GH_V_STR = 1,             /* gh_str field (copied, ${ENV} expanded) */
    GH_V_BOOL,                /* bool field: true | false */
    GH_V_INT,                 /* int field, within [min, max] */
    GH_V_U32,                 /* uint32_t field, within [min, max] */
    GH_V_U64,                 /* uint64_t field, within [min, max] */
    GH_V_DURATION,            /* uint64_t milliseconds, >= min */
    GH_V_SIZE,                /* uint64_t bytes, >= min */
    GH_V_FN,                  /* fn(ld, obj, pair) after the kind check */
    GH_V_DEFER,               /* kind-checked and recorded in seen[] for the caller */
};

typedef bool (*gh_key_fn)(gh_load *ld, void *obj, const gh_ypair *kv);

typedef struct gh_key {
    const char *name;
    int type;                 /* enum gh_vtype */
    int kind;                 /* GH_V_FN/DEFER: the node kind required, 0 = any */
    size_t off;               /* plain types: offset of the field in obj */
    int64_t min, max;         /* numbers: accepted range */
    gh_key_fn fn;             /* GH_V_FN */
} gh_key;

typedef struct gh_section {
    const char *what;         /* for messages: "route", "upstream", ... */
    const gh_key *keys;
    size_t nkeys;
} gh_section;

#define GH_SECTION(what, keys) { (what), (keys), sizeof(keys) / sizeof((keys)[0]) }

/* Rows: a plain value kept at offsetof(T, field) (numbers within [mn, mx];
 * durations and sizes >= mn), a function, or a key the caller reads itself. */
#define GH_KEY_VAL(nm, vt, T, field) { .name = (nm), .type = (vt), .off = offsetof(T, field) }
#define GH_KEY_NUM(nm, vt, T, field, mn, mx) \
    { .name = (nm), .type = (vt), .off = offsetof(T, field), .min = (mn), .max = (mx) }
#define GH_KEY_FN(nm, k, f) { .name = (nm), .type = GH_V_FN, .kind = (k), .fn = (f) }
#define GH_KEY_DEFER(nm) { .name = (nm), .type = GH_V_DEFER }

/* Apply every pair of `map` to obj. A null value stands for an empty
 * mapping. seen, when given, has one slot per key of the table and gets
 * the pair of each key present. Returns false (after reporting) when `map`
 * is not a mapping. */
bool gh_ld_apply(gh_load *ld, const gh_section *s, const gh_ynode *map, void *obj,
                 const gh_ypair **seen);

/* The closest known key for a misspelt one (edit distance <= 2 or a prefix
 * either way), or NULL. */
const char *gh_ld_suggest(gh_str key, const char *const *names, size_t n);

/* "EXPECTED, got VALUE" at n, VALUE as written ("fast", [1, 2], nothing). */
void gh_ld_expected(gh_load *ld, const gh_ynode *n, const char *expected);

/* ---- scalar values: report and return false when the value is wrong ---- */
/* Text of a scalar after ${ENV} expansion (in ld->tmp); from_env may be NULL. */
bool gh_ld_text(gh_load *ld, const gh_ynode *n, const char *expected, gh_str *out, bool *from_env);
/* A non-empty string kept in cfg->arena. */
bool gh_ld_str(gh_load *ld, const gh_ynode *n, gh_str *out, bool *from_env);
bool gh_ld_bool(gh_load *ld, const gh_ynode *n, bool *out);
bool gh_ld_int(gh_load *ld, const gh_ynode *n, int64_t min, int64_t max, int64_t *out);
bool gh_ld_duration(gh_load *ld, const gh_ynode *n, uint64_t min, uint64_t *out_ms);
bool gh_ld_size(gh_load *ld, const gh_ynode *n, uint64_t min, uint64_t *out);
/* A mapping / a list (null = empty); reports "expected a mapping/list". */
bool gh_ld_is_map(gh_load *ld, const gh_ynode *n);
bool gh_ld_is_seq(gh_load *ld, const gh_ynode *n);

/* A map of name -> string into gh_kv (header names must be tokens; header
 * values must not hold CR, LF or NUL). Values from ${ENV} are marked secret. */
bool gh_ld_kv_map(gh_load *ld, const gh_ynode *map, bool headers, gh_kv **out, size_t *nout);
bool gh_ld_is_token(gh_str s);            /* RFC 9110 token */

/* A list of non-empty strings (a single scalar counts as a list of one);
 * marks, when given, receives each item's mark (in ld->tmp). */
bool gh_ld_str_list(gh_load *ld, const gh_ynode *n, gh_str **out, size_t *nout, gh_mark **marks);
/* A file path, resolved against the configuration file's directory (tls.c). */
bool gh_ld_path(gh_load *ld, const gh_ynode *n, gh_str *out);

/* ---- the file (yaml.c) ---- */
/* Parse YAML text (kept in ld->src while parsing) into a tree in ld->tmp;
 * NULL when the document is empty or after reporting an error. */
gh_ynode *gh_ld_parse_yaml(gh_load *ld, const char *text, size_t len);

/* ---- addresses (load.c) ---- */
/* Split "host:port" / "[v6]:port"; host without brackets. Reports at n. */
bool gh_ld_hostport(gh_load *ld, const gh_ynode *n, gh_str addr, gh_str *host, uint16_t *port);
/* Numeric literal, "localhost" (127.0.0.1), or (names_ok) a name looked up
 * with getaddrinfo, first answer. */
bool gh_ld_resolve(gh_load *ld, const gh_ynode *n, gh_str host, uint16_t port, bool names_ok,
                   struct sockaddr_storage *sa, socklen_t *salen);

/* ---- sections kept in their own files ---- */
bool gh_ld_upstreams(gh_load *ld, void *cfg, const gh_ypair *kv);   /* upstreams.c */
bool gh_ld_listen_tls(gh_load *ld, void *listen, const gh_ypair *kv);      /* tls.c: listen[].tls */
bool gh_ld_upstream_tls(gh_load *ld, void *upstream, const gh_ypair *kv);  /* tls.c: upstreams.*.tls */
/* tls.c: a client-side `tls:` map (upstreams, redis) into *out */
bool gh_ld_client_tls(gh_load *ld, const gh_ypair *kv, gh_tls_upstream_cfg **out);
bool gh_ld_routes(gh_load *ld, void *cfg, const gh_ypair *kv);      /* routes.c */
void gh_ld_routes_resolve(gh_load *ld);                             /* after everything */
bool gh_ld_consumers(gh_load *ld, void *cfg, const gh_ypair *kv);   /* consumers.c */
bool gh_ld_redis(gh_load *ld, void *cfg, const gh_ypair *kv);       /* redis.c */
bool gh_ld_config_source(gh_load *ld, void *cfg, const gh_ypair *kv);  /* source.c */
/* versions.c: route r's `versions:` (r is complete; match: routes.c's match context) */
void gh_ld_versions(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv, const void *match);
/* routes.c: version v's route, the versioned route r with the version's
 * target, rewrite, header edits and plugins over it; life[] gets the pairs
 * of deprecated, sunset, docs, preview, preview_requires (or NULL). */
#define GH_VERSION_LIFE_KEYS 5
bool gh_ld_version_route(gh_load *ld, const gh_route_cfg *r, gh_version_cfg *v, const gh_ynode *map,
                         const gh_ypair **life, const void *match);
/* routes.c: a path template ({name} anywhere, as rewrite.path); what names it */
bool gh_ld_path_template(gh_load *ld, const gh_ynode *at, gh_str t, const char *what);
/* optimize.c: route r's `aggregate:` / `batch:` target */
void gh_ld_aggregate(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv);
void gh_ld_batch(gh_load *ld, gh_route_cfg *r, const gh_ypair *kv);
/* plugins.c: a `plugins:` map into set (global, route, version) */
bool gh_ld_plugin_set(gh_load *ld, const gh_ynode *map, gh_plugin_set *set);
bool gh_ld_global_plugins(gh_load *ld, void *cfg, const gh_ypair *kv);
/* over's entries replace base's (a disabled one too); out may be base */
void gh_plugin_set_merge(const gh_plugin_set *base, const gh_plugin_set *over, gh_plugin_set *out);
void gh_ld_plugins_resolve(gh_load *ld);                            /* after routes */
/* Every plugin's parser, from the table (config/plugin_list.h). */
#define GH_PLUGIN_PARSER_(ID, name, phase, T, parse, ops) bool parse(gh_load *ld, gh_plugin_cfg *conf, const gh_ynode *v);
GH_PLUGIN_TABLE(GH_PLUGIN_PARSER_)
#undef GH_PLUGIN_PARSER_

#endif
