#include "core/cidr.h"
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

bool gh_cidr_parse(gh_str s, gh_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = memchr(s.p, '/', s.len);
    size_t alen = slash ? (size_t)(slash - s.p) : s.len;
    if (alen == 0 || alen >= sizeof(buf))
        return false;
    memcpy(buf, s.p, alen);
    buf[alen] = '\0';
    memset(out, 0, sizeof(*out));
    unsigned max;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return false;
    }
    unsigned bits = max;
    if (slash) {
        const char *d = slash + 1, *end = s.p + s.len;
        if (d == end || end - d > 3)
            return false;
        bits = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return false;
            bits = bits * 10 + (unsigned)(*d - '0');
        }
        if (bits > max)
            return false;
    }
    out->bits = (uint8_t)bits;
    /* zero the host bits so matching is a plain masked compare */
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits >= (i + 1) * 8 ? 8 : bits > i * 8 ? bits - i * 8 : 0;
        out->addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    return true;
}

static bool in_net(const gh_cidr *c, const uint8_t *a)
{
    unsigned bits = c->bits;
    for (unsigned i = 0; bits; i++) {
        unsigned keep = bits >= 8 ? 8 : bits;
        uint8_t mask = (uint8_t)(0xff00u >> keep);
        if ((a[i] & mask) != c->addr[i])
            return false;
        bits -= keep;
    }
    return true;
}

bool gh_cidr_list_contains(const gh_cidr *list, size_t n, const char *addr)
{
    uint8_t a[16];
    int family;
    if (inet_pton(AF_INET, addr, a) == 1) {
        family = AF_INET;
    } else if (inet_pton(AF_INET6, addr, a) == 1) {
        family = AF_INET6;
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(a, mapped, 12) == 0) {
            memmove(a, a + 12, 4);
            family = AF_INET;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (list[i].family == family && in_net(&list[i], a))
            return true;
    return false;
}
