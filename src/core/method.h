/* method.h — the HTTP methods the gateway knows by name, as bits: one
 * table for the codecs, the router, the loader and the plugins. Other
 * tokens are extension methods (GH_M_OTHER). Methods are case-sensitive
 * (RFC 9110 §9.1): "get" is not GET. */
#ifndef GH_CORE_METHOD_H
#define GH_CORE_METHOD_H
#include <stddef.h>
#include <stdint.h>

enum {
    GH_M_GET = 1u << 0, GH_M_HEAD = 1u << 1, GH_M_POST = 1u << 2, GH_M_PUT = 1u << 3,
    GH_M_DELETE = 1u << 4, GH_M_PATCH = 1u << 5, GH_M_OPTIONS = 1u << 6,
    GH_M_TRACE = 1u << 7, GH_M_CONNECT = 1u << 8, GH_M_OTHER = 1u << 15,
};

#define GH_NMETHODS 9
typedef struct gh_method {
    const char *name;
    size_t len;
    uint32_t bit;
} gh_method;
extern const gh_method gh_methods[GH_NMETHODS];   /* in the order of the bits */

/* The bit of method m (n bytes), GH_M_OTHER when it is not in the table. */
uint32_t gh_method_bit(const char *m, size_t n);

#endif
