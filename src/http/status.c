#include "http/status.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *gh_status_reason(int s)
{
    switch (s) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

const char *gh_http_date(void)
{
    static _Thread_local time_t last;
    static _Thread_local char buf[32];
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

/* Length of the valid UTF-8 sequence at s[0, len) (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!n || n > len)
        return 0;
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* The bytes JSON needs escaped or checked (status.h). */
const unsigned char gh_json_care[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* Clean runs are copied as they are scanned (8 bytes a word, then by
 * table), bounded once per run by the room left; only the bytes that need
 * care take the slow path. Most access-log fields are short and clean, so
 * this is a few instructions per byte and no call per run. */
size_t gh_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t lim = len - i < cap - o ? len - i : cap - o, k = 0;
        while (k + 8 <= lim) {
            uint64_t w;
            memcpy(&w, u + i + k, 8);
            if (gh_json_word_needs_care(w))
                break;
            memcpy(out + o + k, &w, 8);
            k += 8;
        }
        while (k < lim && !gh_json_care[u[i + k]]) {
            out[o + k] = (char)u[i + k];
            k++;
        }
        i += k;
        o += k;
        if (i == len)
            break;
        unsigned char c = u[i];
        if (!gh_json_care[c])
            return (size_t)-1;   /* the run stopped for want of room */
        char esc = c == '"' ? '"' : c == '\\' ? '\\' : c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : 0;
        size_t n = 1;
        if (esc) {
            if (o + 2 > cap) return (size_t)-1;
            out[o++] = '\\';
            out[o++] = esc;
        } else if (c < 0x80) {   /* other controls, DEL */
            if (o + 6 > cap) return (size_t)-1;
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else if ((n = utf8_len(u + i, len - i))) {
            if (o + n > cap) return (size_t)-1;
            memcpy(out + o, u + i, n);
            o += n;
        } else {   /* not UTF-8 (a client's bytes): U+FFFD keeps the JSON valid */
            n = 1;
            if (o + 6 > cap) return (size_t)-1;
            memcpy(out + o, "\\ufffd", 6);
            o += 6;
        }
        i += n;
    }
    return o;
}

int gh_respond(gh_exchange *ex, int status, const gh_header *hdrs, size_t n,
               const char *body, size_t body_len)
{
    gh_header *all = gh_arena_alloc(&ex->arena, (n + 2) * sizeof(*all));
    if (!all)
        return GH_ERROR;
    if (n)
        memcpy(all, hdrs, n * sizeof(*all));
    const char *date = gh_arena_strndup(&ex->arena, gh_http_date(), 29);
    all[n++] = (gh_header){ "Date", date, 4, 29 };
    all[n++] = (gh_header){ "X-Request-Id", ex->request_id, 12, ex->request_id_len };
    int rc = gh_exchange_send_head(ex, status, all, n, (int64_t)body_len);
    if (rc == GH_ERROR)
        return rc;
    if (body_len && !ex->head_request) {
        rc = ex->down->send_body(ex, body, body_len);
        if (rc == GH_ERROR)
            return rc;
    }
    return ex->down->finish(ex);
}

/* gRPC clients cannot read an HTTP error body: they get HTTP 200 with
 * grpc-status / grpc-message ("trailers-only" response). Codes follow
 * gRPC's HTTP mapping, refined by the gateway's own problem code. */
static int grpc_status_for(int status, const char *code)
{
    if (strcmp(code, "upstream_timeout") == 0 || strcmp(code, "request_timeout") == 0)
        return 4;    /* DEADLINE_EXCEEDED */
    if (strcmp(code, "rate_limited") == 0 || strcmp(code, "payload_too_large") == 0 ||
        strcmp(code, "header_too_large") == 0)
        return 8;    /* RESOURCE_EXHAUSTED */
    switch (status) {
    case 400: return 13;   /* INTERNAL */
    case 401: return 16;   /* UNAUTHENTICATED */
    case 403: return 7;    /* PERMISSION_DENIED */
    case 404: case 405: case 410: return 12;   /* UNIMPLEMENTED */
    case 429: case 502: case 503: case 504: return 14;   /* UNAVAILABLE */
    default: return 2;     /* UNKNOWN */
    }
}

static bool is_grpc(const gh_exchange *ex)
{
    const gh_header *ct = gh_exchange_header(ex, "content-type", 12);
    return ct && ct->value_len >= 16 && strncasecmp(ct->value, "application/grpc", 16) == 0;
}

static int grpc_problem(gh_exchange *ex, int status, const char *code, const char *detail)
{
    /* grpc-message is percent-encoded (gRPC HTTP/2 protocol) */
    const char *msg = detail ? detail : code;
    size_t len = strlen(msg);
    char *enc = gh_arena_alloc(&ex->arena, len * 3 + 1);
    char *st = gh_arena_printf(&ex->arena, "%d", grpc_status_for(status, code));
    if (!enc || !st)
        return GH_ERROR;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c < 0x20 || c > 0x7e || c == '%') {
            o += (size_t)snprintf(enc + o, 4, "%%%02X", c);
        } else {
            enc[o++] = (char)c;
        }
    }
    enc[o] = '\0';
    gh_header h[4] = {
        { "Content-Type", "application/grpc", 12, 16 },
        { "grpc-status", st, 11, (uint32_t)strlen(st) },
        { "grpc-message", enc, 12, (uint32_t)o },
        { "X-Request-Id", ex->request_id, 12, ex->request_id_len },
    };
    ex->log.error = code;
    int rc = gh_exchange_send_head(ex, 200, h, 4, -1);
    if (rc == GH_ERROR)
        return rc;
    return ex->down->finish(ex);
}

int gh_problem(gh_exchange *ex, int status, const char *code, const char *detail,
               const gh_header *hdrs, size_t n, const char *extra_json)
{
    if (ex->minor == 2 && is_grpc(ex))
        return grpc_problem(ex, status, code, detail);
    const char *title = gh_status_reason(status);
    size_t dlen = detail ? strlen(detail) : 0;
    size_t cap = 256 + strlen(title) + strlen(code) + dlen * 6 + (extra_json ? strlen(extra_json) : 0);
    char *body = gh_arena_alloc(&ex->arena, cap);
    if (!body)
        return GH_ERROR;
    int len = snprintf(body, cap, "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,\"code\":\"%s\"",
                       title, status, code);
    if (detail) {
        memcpy(body + len, ",\"detail\":\"", 11);
        len += 11;
        size_t e = gh_json_escape(body + len, cap - (size_t)len, detail, dlen);
        len += (int)e;
        body[len++] = '"';
    }
    len += snprintf(body + len, cap - (size_t)len, ",\"request_id\":\"%s\"%s%s}", ex->request_id,
                    extra_json ? "," : "", extra_json ? extra_json : "");
    gh_header *all = gh_arena_alloc(&ex->arena, (n + 1) * sizeof(*all));
    if (!all)
        return GH_ERROR;
    all[0] = (gh_header){ "Content-Type", "application/problem+json", 12, 24 };
    if (n)
        memcpy(all + 1, hdrs, n * sizeof(*all));
    if (!ex->log.error)
        ex->log.error = code;
    return gh_respond(ex, status, all, n + 1, body, (size_t)len);
}
