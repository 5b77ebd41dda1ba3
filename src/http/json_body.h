/* json_body.h — a JSON value written straight into the exchange's arena:
 * the answers the gateway composes itself (admin API, echo, aggregate,
 * batch) live as long as the exchange, with no malloc'd copy in between. */
#ifndef GH_HTTP_JSON_BODY_H
#define GH_HTTP_JSON_BODY_H
#include <jansson.h>
#include <stddef.h>
#include "http/exchange.h"

/* Takes j (NULL is allowed: returns NULL). `extra` more bytes are left free
 * after the text (a trailing newline, say). NULL when out of memory;
 * *len is the text's length. */
char *gh_json_in_arena(gh_exchange *ex, json_t *j, size_t flags, size_t extra, size_t *len);

#endif
