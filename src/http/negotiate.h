/* negotiate.h — proactive content negotiation (RFC 9110 §12): which
 * content coding a client accepts, and media-type patterns. Pure
 * functions over header values; no allocation. */
#ifndef GH_HTTP_NEGOTIATE_H
#define GH_HTTP_NEGOTIATE_H
#include <stdbool.h>
#include <stddef.h>
#include "core/str.h"

#define GH_CODING_IDENTITY (-1)

/* The coding to send, by Accept-Encoding (v, n; present = false when the
 * request has none): an index into codings[] (the server's preference
 * order), or GH_CODING_IDENTITY. The client's highest q wins; ties go to
 * the server's order; q=0 refuses; `*` stands for codings not named;
 * identity is chosen when the client rates it (by name or by `*`)
 * strictly higher, or when no listed coding is acceptable. Elements
 * that do not parse are ignored; "x-gzip" is "gzip". */
int gh_accept_encoding_pick(const char *v, size_t n, bool present, const gh_str *codings, size_t ncodings);

/* Whether a Content-Type value (parameters ignored, case-insensitive)
 * matches one of the patterns: "text/html", "text/" + "*" or any ("*" "/" "*"). */
bool gh_media_type_match(const char *v, size_t n, const gh_str *patterns, size_t npatterns);

#endif
