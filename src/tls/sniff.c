/* sniff.c — the first byte of a connection to a TLS listener, looked at
 * before OpenSSL reads anything (as nginx does): a TLS record starts with
 * 0x16 (handshake), an SSLv2-style hello with the high bit set, an HTTP
 * request with a method's letter. Plain HTTP gets a clear-text 400 that
 * says what happened instead of a silent close; anything else goes to
 * OpenSSL unchanged. One MSG_PEEK per connection, none per request. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include "tls/tls_int.h"

#define PROBLEM_BODY                                                                                        \
    "{\"type\":\"about:blank\",\"title\":\"Bad Request\",\"status\":400,\"code\":\"bad_request\","       \
    "\"detail\":\"plain HTTP was sent to a TLS port; use https://\"}"

/* A method token starts with a letter (RFC 9110 §9 methods, and every
 * extension method in practice); a TLS record never does (content types
 * 20-24), nor does an SSLv2 hello (high bit set). */
static bool looks_like_http(unsigned char b)
{
    return (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z');
}

/* Take what the client already sent (so closing sends FIN, not a reset
 * that could destroy the answer in flight), then answer in clear text. */
static void answer_plain_http(int fd)
{
    static const char head[] = "HTTP/1.1 400 Bad Request\r\n"
                               "Content-Type: application/problem+json\r\n"
                               "Connection: close\r\n"
                               "Content-Length: %zu\r\n\r\n%s";
    char drain[4096], out[512];
    for (int i = 0; i < 16 && recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0; i++)
        ;
    int n = snprintf(out, sizeof(out), head, sizeof(PROBLEM_BODY) - 1, PROBLEM_BODY);
    if (n > 0 && (size_t)n < sizeof(out) && send(fd, out, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
        shutdown(fd, SHUT_WR);
}

int gh_tls_sniff(int fd)
{
    unsigned char b;
    ssize_t r;
    do
        r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? GH_SNIFF_AGAIN : GH_SNIFF_TLS;   /* OpenSSL reports it */
    if (r == 0 || !looks_like_http(b))
        return GH_SNIFF_TLS;
    answer_plain_http(fd);
    return GH_SNIFF_PLAIN_HTTP;
}
