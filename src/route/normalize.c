/* normalize.c — request path normalization before matching (SPEC §4).
 *
 * One pass, segment by segment, writing into out (never longer than in):
 *   - percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are
 *     decoded; every other escape is kept, its hex digits upper-cased, so
 *     "%2f" and "%2F" compare equal and %2F never becomes a separator;
 *   - repeated slashes are merged, then "." and ".." segments removed
 *     (RFC 3986 §5.2.4) after decoding, so "%2e%2e" is a ".." too;
 *   - a ".." that would climb above "/" is GH_PATH_CLIMB in every mode
 *     (RFC 3986 would clamp it silently; we refuse, an attacker sent it).
 *
 * Path variants that backends read as another path: Tomcat, Jetty and
 * Spring cut ";params" off a segment ("/private;x" is "/private"), IIS and
 * Windows drop a segment's trailing dots and spaces ("/private." and
 * "/private%20" are "/private"). So a matched prefix cannot be trusted
 * while such variants pass as other paths. Strict mode refuses them: a ';'
 * (raw or %3B) anywhere, a segment ending in '.' (other than the dot
 * segments) or in an encoded space or tab (%20, %09). Non-strict mode
 * reads them as those backends do: ";..." up to the end of the segment is
 * removed, then trailing dots and spaces/tabs; a segment left empty is
 * dropped like ".", and "..;x" is a "..". Either way the normalized path is
 * what is matched and forwarded, so the two cannot disagree.
 *
 * Strict mode (the default) also refuses, with GH_PATH_BAD: %2F %5C %00, a
 * raw backslash, malformed escapes, raw bytes >= 0x80, and percent-encoded
 * bytes >= 0x80 that are not well-formed UTF-8 (overlong, surrogates, above
 * U+10FFFF, truncated or lone continuation bytes). Non-strict mode keeps all
 * of those as literal bytes (still encoded), so they are matched and
 * forwarded as sent, and still refuses climbing.
 *
 * In every mode: the path must start with '/', and raw control characters
 * and spaces are refused (they cannot be forwarded in a request line). */
#include <stdint.h>
#include "route/route.h"

static const char HEX[] = "0123456789ABCDEF";

static bool unreserved(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Value of the escape at in[i] ('%'), or -1 if it is malformed. */
static int escape_at(const char *in, size_t len, size_t i)
{
    if (len < 3 || i > len - 3)
        return -1;
    int h = gh_hexval((unsigned char)in[i + 1]), l = gh_hexval((unsigned char)in[i + 2]);
    return (h < 0 || l < 0) ? -1 : (h << 4) | l;
}

/* Length in input bytes of a well-formed UTF-8 sequence written entirely as
 * escapes starting at in[i], or 0. Ranges per RFC 3629 §4: they exclude
 * overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_escaped(const char *in, size_t len, size_t i)
{
    int b0 = escape_at(in, len, i);
    unsigned lo = 0x80, hi = 0xBF;
    size_t need;
    if (b0 >= 0xC2 && b0 <= 0xDF)
        need = 1;
    else if (b0 == 0xE0)
        need = 2, lo = 0xA0;
    else if (b0 == 0xED)
        need = 2, hi = 0x9F;
    else if (b0 >= 0xE1 && b0 <= 0xEF)
        need = 2;
    else if (b0 == 0xF0)
        need = 3, lo = 0x90;
    else if (b0 >= 0xF1 && b0 <= 0xF3)
        need = 3;
    else if (b0 == 0xF4)
        need = 3, hi = 0x8F;
    else
        return 0;                       /* continuation byte, C0/C1, F5..FF */
    for (size_t k = 1; k <= need; k++) {
        size_t at = i + 3 * k;
        if (at >= len || in[at] != '%')
            return 0;
        int b = escape_at(in, len, at);
        if (b < 0 || (unsigned)b < lo || (unsigned)b > hi)
            return 0;
        lo = 0x80, hi = 0xBF;
    }
    return 3 * (need + 1);
}

/* Past ";params" starting at in[i]: to the segment's closing '/' or the end. */
static size_t skip_params(const char *in, size_t len, size_t i)
{
    const char *slash = memchr(in + i, '/', len - i);
    return slash ? (size_t)(slash - in) : len;
}

/* Bytes of out[s, o) that end it with a '.', "%20" or "%09", or 0. Escapes
 * in out are always three bytes with upper-case hex, so "%2520" is not one. */
static size_t trailer(const char *out, size_t s, size_t o)
{
    if (o > s && out[o - 1] == '.')
        return 1;
    if (o - s >= 3 && out[o - 3] == '%' && ((out[o - 2] == '2' && out[o - 1] == '0') ||
                                            (out[o - 2] == '0' && out[o - 1] == '9')))
        return 3;
    return 0;
}

int gh_path_normalize(const char *in, size_t len, char *out, size_t *out_len, bool strict)
{
    if (len == 0 || in[0] != '/')
        return GH_PATH_BAD;
    size_t o = 0, i = 0;
    out[o++] = '/';
    while (i < len) {
        if (in[i] == '/') {             /* merge repeated slashes */
            i++;
            continue;
        }
        size_t s = o;                   /* segment start in out; out[s - 1] == '/' */
        while (i < len && in[i] != '/') {
            unsigned char c = (unsigned char)in[i];
            if (c == '%') {
                int v = escape_at(in, len, i);
                if (v < 0) {
                    if (strict)
                        return GH_PATH_BAD;
                    out[o++] = '%';     /* legacy: a stray '%' stays literal */
                    i++;
                    continue;
                }
                if (v == ';') {         /* an encoded ';' is read as one by some servers */
                    if (strict)
                        return GH_PATH_BAD;
                    i = skip_params(in, len, i);
                    break;
                }
                /* After a stray '%' (lax mode), a decoded hex digit could
                 * form a new escape ("%%41b" -> "%Ab"): keep it encoded. */
                bool forms = gh_hexval((unsigned char)v) >= 0 &&
                             ((o > s && out[o - 1] == '%') ||
                              (o > s + 1 && out[o - 2] == '%' && gh_hexval((unsigned char)out[o - 1]) >= 0));
                if (unreserved((unsigned)v) && !forms) {
                    out[o++] = (char)v;
                    i += 3;
                    continue;
                }
                if (v == '/' || v == '\\' || v == 0) {
                    if (strict)
                        return GH_PATH_BAD;
                } else if (v >= 0x80 && strict) {
                    size_t n = utf8_escaped(in, len, i);
                    if (n == 0)
                        return GH_PATH_BAD;
                    for (size_t k = 0; k < n; k += 3) {
                        int b = escape_at(in, len, i + k);
                        out[o++] = '%';
                        out[o++] = HEX[b >> 4];
                        out[o++] = HEX[b & 15];
                    }
                    i += n;
                    continue;
                }
                out[o++] = '%';
                out[o++] = HEX[v >> 4];
                out[o++] = HEX[v & 15];
                i += 3;
                continue;
            }
            if (c < 0x20 || c == 0x7F || c == ' ')
                return GH_PATH_BAD;
            if (strict && (c == '\\' || c >= 0x80))
                return GH_PATH_BAD;
            if (c == ';') {             /* path parameters: refused, or cut off */
                if (strict)
                    return GH_PATH_BAD;
                i = skip_params(in, len, i);
                break;
            }
            out[o++] = (char)c;
            i++;
        }
        size_t n = o - s;
        if (n == 1 && out[s] == '.') {
            o = s;                      /* drop it; out still ends with '/' */
            continue;
        }
        if (n == 2 && out[s] == '.' && out[s + 1] == '.') {
            if (s == 1)
                return GH_PATH_CLIMB;
            o = s - 1;                  /* back over the previous segment */
            while (out[o - 1] != '/')
                o--;
            continue;
        }
        size_t t;
        while ((t = trailer(out, s, o)) > 0) {     /* "a.", "a%20": IIS reads "a" */
            if (strict)
                return GH_PATH_BAD;
            o -= t;
        }
        if (o == s)
            continue;                   /* nothing left of it ("...", ";x"): dropped like "." */
        if (i < len)                    /* the segment ended with a '/' (consumed above) */
            out[o++] = '/';
    }
    out[o] = '\0';
    *out_len = o;
    return GH_PATH_OK;
}
