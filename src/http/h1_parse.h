/* h1_parse.h — strict, zero-copy HTTP/1.1 message parser (RFC 9112, SPEC §8).
 *
 * Like picohttpparser: the caller hands in the bytes received so far and an
 * array for the headers; the parser returns the head length when the head is
 * complete, GH_H1_AGAIN when more bytes are needed, or an error. It never
 * allocates or copies: names and values point into the caller's buffer.
 * Re-parse from the start when more bytes arrive (heads are small; the caller
 * first checks for the blank line). The framing rules of SPEC §8 are applied
 * here, so every user of the parser gets the same smuggling protection.
 *
 * gh_chunked_* decode a chunked body incrementally without copying. */
#ifndef GH_HTTP_H1_PARSE_H
#define GH_HTTP_H1_PARSE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct gh_header {
    const char *name;
    const char *value;            /* leading/trailing OWS removed */
    uint32_t name_len;
    uint32_t value_len;
} gh_header;

enum {
    GH_H1_AGAIN    = -1,          /* incomplete: read more */
    GH_H1_BAD      = -2,          /* malformed or ambiguous: 400 (502 for responses) */
    GH_H1_TOO_BIG  = -3,          /* head over max bytes or over max headers: 431 */
};

/* Why a message was refused (for logs and tests). */
enum gh_h1_error {
    GH_H1E_NONE = 0,
    GH_H1E_METHOD,                /* invalid method token */
    GH_H1E_TARGET,                /* invalid request-target */
    GH_H1E_VERSION,               /* not HTTP/1.0 or HTTP/1.1 */
    GH_H1E_STATUS,                /* invalid status line (responses) */
    GH_H1E_LINE_END,              /* bare CR, bare LF where CRLF required */
    GH_H1E_HEADER_NAME,           /* empty name, non-token char, space before colon */
    GH_H1E_HEADER_VALUE,          /* NUL, CTL, bare CR in a value */
    GH_H1E_OBS_FOLD,              /* line folding */
    GH_H1E_CL_INVALID,            /* Content-Length not 1*DIGIT, or overflow */
    GH_H1E_CL_DUPLICATE,          /* several Content-Length (even equal) */
    GH_H1E_CL_AND_TE,             /* both Content-Length and Transfer-Encoding */
    GH_H1E_TE_INVALID,            /* a Transfer-Encoding other than a final chunked */
    GH_H1E_HOST_MISSING,          /* HTTP/1.1 request without Host */
    GH_H1E_HOST_DUPLICATE,
    GH_H1E_HOST_INVALID,
    GH_H1E_TOO_MANY_HEADERS,
    GH_H1E_HEAD_TOO_LARGE,
};

enum gh_h1_body {
    GH_BODY_NONE = 0,             /* no body (or Content-Length: 0) */
    GH_BODY_LENGTH,               /* content_length bytes */
    GH_BODY_CHUNKED,
    GH_BODY_UNTIL_CLOSE,          /* responses only: read until the upstream closes */
};

typedef struct gh_h1_message {
    /* request line */
    const char *method;   uint32_t method_len;
    const char *target;   uint32_t target_len;
    /* status line */
    int status;
    const char *reason;   uint32_t reason_len;
    int minor;                    /* 0 or 1 */
    gh_header *headers;           /* caller's array */
    size_t nheaders;
    /* derived */
    int body;                     /* enum gh_h1_body */
    uint64_t content_length;      /* with GH_BODY_LENGTH */
    bool keep_alive;              /* per version + Connection */
    bool expect_continue;         /* request: Expect: 100-continue */
    bool upgrade;                 /* Connection: upgrade and an Upgrade header */
    const char *host;     uint32_t host_len;   /* request: the Host value */
    int error;                    /* enum gh_h1_error when GH_H1_BAD / GH_H1_TOO_BIG */
} gh_h1_message;

/* Parse a request head. Returns the head length (> 0), GH_H1_AGAIN,
 * GH_H1_BAD or GH_H1_TOO_BIG (head over max_bytes, or more than max_headers
 * headers). `headers` has room for max_headers entries. */
int gh_h1_parse_request(const char *buf, size_t len, gh_h1_message *m,
                        gh_header *headers, size_t max_headers, size_t max_bytes);

/* Parse a response head. `head_request`: the request was HEAD (no body);
 * 1xx, 204 and 304 never have a body. GH_H1_BAD for ambiguous framing. */
int gh_h1_parse_response(const char *buf, size_t len, gh_h1_message *m,
                         gh_header *headers, size_t max_headers, size_t max_bytes,
                         bool head_request);

/* Does buf[0..len) contain the end of a head ("\r\n\r\n")? `*scanned` keeps
 * how far earlier calls looked, so repeated calls cost O(new bytes). */
bool gh_h1_head_complete(const char *buf, size_t len, size_t *scanned);

/* Tokens: RFC 9110 tchar. */
bool gh_h1_is_token(const char *s, size_t len);
/* uri-host [":" port], the rule for Host (and HTTP/2 :authority). */
bool gh_h1_valid_host(const char *s, size_t n);
/* An absolute-form target ("http://" or "https://", any case): returns
 * where its authority starts and sets *len to its length (up to the first
 * '/' or '?'); returns 0 when the target is not absolute-form. The parser
 * has refused any authority that gh_h1_valid_host refuses. */
size_t gh_h1_target_authority(const char *t, size_t n, size_t *len);

/* ---- chunked transfer coding ---- */
typedef struct gh_chunked {
    int state;
    uint64_t remaining;           /* bytes left in the current chunk */
    uint32_t line_len;            /* length of the size/trailer line so far (bounded) */
    uint32_t trailer_bytes;       /* total trailer bytes (bounded) */
} gh_chunked;

enum { GH_CHUNKED_DONE = 1, GH_CHUNKED_MORE = 0, GH_CHUNKED_BAD = -1 };

void gh_chunked_init(gh_chunked *c);
/* Decode from buf[0..len). Consumes bytes up to and including at most one
 * data span: *consumed = bytes used, *data and *data_len = chunk data found in
 * them (may be 0 bytes). Returns GH_CHUNKED_MORE (call again with the rest,
 * or with more input once all is consumed), GH_CHUNKED_DONE (last chunk and
 * trailers consumed; bytes after *consumed belong to the next message) or
 * GH_CHUNKED_BAD. Trailer fields are validated and dropped. */
int gh_chunked_decode(gh_chunked *c, const char *buf, size_t len, size_t *consumed,
                      const char **data, size_t *data_len);

#endif
