#include "server/client_addr.h"
#include <arpa/inet.h>
#include <string.h>

/* One address of the list, trimmed, into out; false if not an IP address. */
static bool take(const char *s, size_t n, char *out, size_t cap)
{
    while (n && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    unsigned char tmp[16];
    return inet_pton(AF_INET, out, tmp) == 1 || inet_pton(AF_INET6, out, tmp) == 1;
}

void gh_resolve_client(gh_exchange *ex, const gh_config *cfg)
{
    if (!cfg->ntrusted_proxies || !gh_cidr_list_contains(cfg->trusted_proxies, cfg->ntrusted_proxies, ex->peer))
        return;
    /* walk X-Forwarded-For from the right (last header line last) */
    for (size_t i = ex->nheaders; i-- > 0;) {
        const gh_header *h = &ex->headers[i];
        if (h->name_len != 15 || strncasecmp(h->name, "x-forwarded-for", 15) != 0)
            continue;
        const char *v = h->value;
        size_t end = h->value_len;
        while (end > 0) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            char addr[48];
            if (!take(v + start, end - start, addr, sizeof(addr)))
                return;   /* garbage: stop at the last address we could trust */
            memcpy(ex->client, addr, sizeof(addr));
            if (!gh_cidr_list_contains(cfg->trusted_proxies, cfg->ntrusted_proxies, addr))
                return;
            end = start ? start - 1 : 0;
        }
    }
}
