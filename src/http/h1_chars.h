/* h1_chars.h — the character classes of HTTP/1.1 syntax, one table for
 * all of them (a single load per byte), shared by the message parser and
 * the chunked decoder. */
#ifndef GH_HTTP_H1_CHARS_H
#define GH_HTTP_H1_CHARS_H

enum {
    C_TOKEN  = 1,    /* RFC 9110 tchar */
    C_VALUE  = 2,    /* field-value byte: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 4,    /* request-target byte: VCHAR */
    C_REG    = 8,    /* reg-name: unreserved / sub-delims (pct-encoding apart) */
    C_HEX    = 16,
    C_QDTEXT = 32,   /* quoted-string qdtext (used by chunked.c's copy) */
};

extern const unsigned char gh_h1_cls[256];

#endif
