/* status.h — reason phrases, the HTTP date, and gateway-made responses
 * (problem+json, RFC 9457) sent through an exchange. */
#ifndef GH_HTTP_STATUS_H
#define GH_HTTP_STATUS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "http/exchange.h"

const char *gh_status_reason(int status);   /* "Not Found"; "Unknown" if none */

/* "Sun, 06 Nov 1994 08:49:37 GMT", recomputed at most once a second per thread. */
const char *gh_http_date(void);

/* Send a complete response made by the gateway (status, headers, body)
 * and finish the exchange. Adds Date, X-Request-Id. */
int gh_respond(gh_exchange *ex, int status, const gh_header *hdrs, size_t n,
               const char *body, size_t body_len);

/* application/problem+json with the SPEC §8 `code`; `extra_json` (may be
 * NULL) is spliced in as additional members, e.g. "\"versions\":[\"1\"]". */
int gh_problem(gh_exchange *ex, int status, const char *code, const char *detail,
               const gh_header *hdrs, size_t n, const char *extra_json);

/* Append s to out as the inside of a JSON string (escaped; bytes that are
 * not UTF-8 become \ufffd, so the output is always valid JSON: at most 6
 * bytes per input byte); returns bytes written or (size_t)-1 if cap is too
 * small. */
size_t gh_json_escape(char *out, size_t cap, const char *s, size_t len);

/* Non-zero for the bytes gh_json_escape does not copy as they are: controls,
 * '"', '\\', DEL and bytes >= 0x80 (checked as UTF-8). */
extern const unsigned char gh_json_care[256];

/* The same test for 8 bytes at once: whether any byte needs care (not
 * which one). Without a high bit set, a byte sets it in x - 0x20 only if
 * below 0x20, in x + 1 only if 0x7f, in (x ^ c) - 1 only if equal to c;
 * a borrow or carry that crosses into the next byte comes only from a byte
 * that was already caught. */
static inline bool gh_json_word_needs_care(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    return ((x - ones * 0x20) | (x + ones) | x | ((x ^ (ones * 0x22)) - ones) | ((x ^ (ones * 0x5c)) - ones)) & high;
}

#endif
