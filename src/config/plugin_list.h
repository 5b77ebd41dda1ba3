/* plugin_list.h — THE table of plugins (SPEC §5): one row per plugin, in
 * run order. Adding a plugin is one row here, plus its own code: its
 * configuration type (config/plugin_cfg.h), its parser (config/plugin_*.c)
 * and its runtime (plugins/NAME.c, a gh_plugin_ops).
 *
 * Columns: ID (GH_PLUGIN_<ID>), name in the file, phase (GH_PHASE_<PHASE>;
 * plugins of the AUTH phase share it: the first that finds a credential
 * decides), configuration type, parser (config/), runtime ops (plugins/).
 * config/ expands the first five; only plugins/registry.c names the ops,
 * so the layering holds (config/ is data and never sees plugins/). */
#ifndef GH_CONFIG_PLUGIN_LIST_H
#define GH_CONFIG_PLUGIN_LIST_H

#define GH_PLUGIN_TABLE(X)                                                                          \
    X(IP_FILTER, ip_filter, FILTER, gh_ip_filter_cfg, gh_ld_ip_filter, gh_ip_filter_plugin)         \
    X(CORS, cors, FILTER, gh_cors_cfg, gh_ld_cors, gh_cors_plugin)                                  \
    X(KEY_AUTH, key_auth, AUTH, gh_key_auth_cfg, gh_ld_key_auth, gh_key_auth_plugin)                \
    X(JWT, jwt, AUTH, gh_jwt_cfg, gh_ld_jwt, gh_jwt_plugin)                                         \
    X(BASIC_AUTH, basic_auth, AUTH, gh_basic_auth_cfg, gh_ld_basic_auth, gh_basic_auth_plugin)      \
    X(MTLS_AUTH, mtls_auth, AUTH, gh_mtls_auth_cfg, gh_ld_mtls_auth, gh_mtls_auth_plugin)           \
    X(ACL, acl, AUTHZ, gh_acl_cfg, gh_ld_acl, gh_acl_plugin)                                        \
    X(RATE_LIMIT, rate_limit, LIMIT, gh_rate_limit_cfg, gh_ld_rate_limit, gh_rate_limit_plugin)      \
    X(REQUEST_VALIDATION, request_validation, VALIDATE, gh_request_validation_cfg,                  \
      gh_ld_request_validation, gh_request_validation_plugin)                                       \
    X(CACHE, cache, CACHE, gh_cache_cfg, gh_ld_cache, gh_cache_plugin)                              \
    X(COMPRESS, compress, RESPONSE, gh_compress_cfg, gh_ld_compress, gh_compress_plugin)

#endif
