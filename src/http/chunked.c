/* chunked.c — incremental, zero-copy decoder for the chunked transfer coding
 * (RFC 9112 §7.1).
 *
 * A byte-at-a-time state machine for the framing (size lines, CRLFs,
 * trailers) and one memcpy-free span per call for the data, so it resumes at
 * any split of the input. Strict where lenient decoders have been used for
 * smuggling: CRLF only (no bare LF, not even inside an extension), no
 * whitespace before the size, no whitespace after it unless a ';' follows
 * (BWS belongs to an extension), at most 16 hex digits, bounded size lines
 * and trailers. Trailer fields are validated like header fields and dropped. */
#include "core/str.h"
#include "http/h1_parse.h"
#include "http/h1_chars.h"

enum {
    MAX_SIZE_DIGITS = 16,         /* 16 hex digits always fit a uint64_t */
    MAX_LINE        = 4096,       /* chunk-size line, extensions and CRLF */
    MAX_TRAILERS    = 16384,      /* whole trailer section */
};

enum {
    S_SIZE = 0,       /* hex digits (line_len counts them, nothing else yet) */
    S_EXT,            /* after a size or an extension: ';' CR or BWS */
    S_EXT_WS,         /* BWS seen: only more BWS or ';' */
    S_EXT_NAME0,      /* after ';': BWS, then a name */
    S_EXT_NAME,
    S_EXT_NAME_WS,    /* BWS after a name: '=' or ';' */
    S_EXT_VAL0,       /* after '=': BWS, then token or quoted-string */
    S_EXT_VAL,
    S_EXT_QUOTED,
    S_EXT_QPAIR,
    S_SIZE_LF,        /* CR of the size line seen */
    S_DATA,
    S_DATA_CR,
    S_DATA_LF,
    S_TR_START,       /* start of a trailer line or of the final CRLF */
    S_TR_NAME,
    S_TR_VALUE,
    S_TR_LF,
    S_END_LF,
    S_DONE,
    S_BAD,
};


void gh_chunked_init(gh_chunked *c)
{
    *c = (gh_chunked){ .state = S_SIZE };
}

/* Where a byte after a size, a name or a value leads: the three share it. */
static int after_item(unsigned ch, int on_ws)
{
    switch (ch) {
    case ';': return S_EXT_NAME0;
    case '\r': return S_SIZE_LF;
    case ' ': case '\t': return on_ws;
    default: return S_BAD;
    }
}

int gh_chunked_decode(gh_chunked *c, const char *buf, size_t len, size_t *consumed,
                      const char **data, size_t *data_len)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    *data = NULL;
    *data_len = 0;
    *consumed = 0;
    if (c->state == S_DONE)
        return GH_CHUNKED_DONE;
    if (c->state == S_BAD)
        return GH_CHUNKED_BAD;

    int st = c->state;
    while (p < end) {
        if (st == S_DATA) {
            /* The one data span of this call; stop right after it so the
             * caller can hand it on before the buffer moves. */
            size_t avail = (size_t)(end - p);
            size_t n = c->remaining < avail ? (size_t)c->remaining : avail;
            *data = (const char *)p;
            *data_len = n;
            p += n;
            c->remaining -= n;
            if (c->remaining == 0)
                st = S_DATA_CR;
            break;
        }

        unsigned ch = *p++;
        if (st < S_SIZE_LF || st == S_SIZE_LF) {
            if (++c->line_len > MAX_LINE)
                st = S_BAD;
        } else if (st >= S_TR_START) {
            if (++c->trailer_bytes > MAX_TRAILERS)
                st = S_BAD;
        }

        switch (st) {
        case S_SIZE:
            if (gh_h1_cls[ch] & C_HEX) {
                if (c->line_len > MAX_SIZE_DIGITS)
                    st = S_BAD;
                else
                    c->remaining = c->remaining << 4 | (unsigned)gh_hexval((unsigned char)ch);
            } else {
                st = c->line_len > 1 ? after_item(ch, S_EXT_WS) : S_BAD;
            }
            break;
        case S_EXT:
            st = after_item(ch, S_EXT_WS);
            break;
        case S_EXT_WS:
            st = ch == ' ' || ch == '\t' ? S_EXT_WS : ch == ';' ? S_EXT_NAME0 : S_BAD;
            break;
        case S_EXT_NAME0:
            st = ch == ' ' || ch == '\t' ? S_EXT_NAME0 : gh_h1_cls[ch] & C_TOKEN ? S_EXT_NAME : S_BAD;
            break;
        case S_EXT_NAME:
            if (!(gh_h1_cls[ch] & C_TOKEN))
                st = ch == '=' ? S_EXT_VAL0 : after_item(ch, S_EXT_NAME_WS);
            break;
        case S_EXT_NAME_WS:
            st = ch == ' ' || ch == '\t' ? S_EXT_NAME_WS
               : ch == '=' ? S_EXT_VAL0 : ch == ';' ? S_EXT_NAME0 : S_BAD;
            break;
        case S_EXT_VAL0:
            st = ch == ' ' || ch == '\t' ? S_EXT_VAL0
               : ch == '"' ? S_EXT_QUOTED : gh_h1_cls[ch] & C_TOKEN ? S_EXT_VAL : S_BAD;
            break;
        case S_EXT_VAL:
            if (!(gh_h1_cls[ch] & C_TOKEN))
                st = after_item(ch, S_EXT_WS);
            break;
        case S_EXT_QUOTED:
            st = ch == '"' ? S_EXT : ch == '\\' ? S_EXT_QPAIR
               : gh_h1_cls[ch] & C_QDTEXT ? S_EXT_QUOTED : S_BAD;
            break;
        case S_EXT_QPAIR:
            /* quoted-pair: HTAB / SP / VCHAR / obs-text, i.e. a value byte */
            st = gh_h1_cls[ch] & C_VALUE ? S_EXT_QUOTED : S_BAD;
            break;
        case S_SIZE_LF:
            if (ch != '\n') {
                st = S_BAD;
            } else {
                c->line_len = 0;
                st = c->remaining ? S_DATA : S_TR_START;
            }
            break;
        case S_DATA_CR:
            st = ch == '\r' ? S_DATA_LF : S_BAD;
            break;
        case S_DATA_LF:
            st = ch == '\n' ? S_SIZE : S_BAD;     /* remaining and line_len are 0 here */
            break;
        case S_TR_START:
            /* a leading SP/HTAB would be obs-fold; ':' an empty name */
            st = ch == '\r' ? S_END_LF : gh_h1_cls[ch] & C_TOKEN ? S_TR_NAME : S_BAD;
            break;
        case S_TR_NAME:
            if (!(gh_h1_cls[ch] & C_TOKEN))
                st = ch == ':' ? S_TR_VALUE : S_BAD;
            break;
        case S_TR_VALUE:
            if (!(gh_h1_cls[ch] & C_VALUE))
                st = ch == '\r' ? S_TR_LF : S_BAD;
            break;
        case S_TR_LF:
            st = ch == '\n' ? S_TR_START : S_BAD;
            break;
        case S_END_LF:
            st = ch == '\n' ? S_DONE : S_BAD;
            break;
        default:                                  /* S_BAD from the bounds above */
            break;
        }
        if (st == S_BAD || st == S_DONE)
            break;
    }
    c->state = st;
    *consumed = (size_t)(p - (const unsigned char *)buf);
    if (st == S_BAD)
        return GH_CHUNKED_BAD;
    return st == S_DONE ? GH_CHUNKED_DONE : GH_CHUNKED_MORE;
}
