/* cidr.h — IPv4/IPv6 networks: parse "10.0.0.0/8", "::1", and test an
 * address against a list (trusted proxies now; ip_filter later). */
#ifndef GH_CORE_CIDR_H
#define GH_CORE_CIDR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/str.h"

typedef struct gh_cidr {
    uint8_t family;               /* AF_INET or AF_INET6 */
    uint8_t bits;                 /* prefix length */
    uint8_t addr[16];             /* network byte order, host bits zeroed */
} gh_cidr;

/* "a.b.c.d", "a.b.c.d/n", "v6", "v6/n". false if malformed. */
bool gh_cidr_parse(gh_str s, gh_cidr *out);
/* Is the address (text, IPv4 or IPv6; v4-mapped IPv6 counts as IPv4) in any of the networks? */
bool gh_cidr_list_contains(const gh_cidr *list, size_t n, const char *addr);

#endif
