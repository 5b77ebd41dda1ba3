/* trace.h — W3C Trace Context (traceparent, tracestate) for the hop to the
 * upstream. The gateway is a hop: a valid client traceparent is continued
 * (same trace id and flags, the gateway's own span id as parent-id), else a
 * trace is started (random ids from the worker's generator, flags 01). A
 * client's tracestate is kept only beside a valid traceparent. Nothing is
 * allocated but from the exchange arena, and only to join several
 * tracestate fields. */
#ifndef GH_OBSERVE_TRACE_H
#define GH_OBSERVE_TRACE_H
#include <stdbool.h>
#include <stddef.h>
#include "http/exchange.h"

enum { GH_TRACEPARENT_LEN = 55, GH_TRACE_ID_LEN = 32, GH_TRACESTATE_MAX = 512, GH_TRACESTATE_MEMBERS = 32 };

/* A traceparent value by the W3C rules: version 00 exactly 55 characters;
 * a higher version (not ff) read by its first four fields; lowercase hex
 * only; all-zero trace-id or parent-id invalid. On success *ids points at
 * the value's "<trace-id>-<parent-id>-<flags>" (52 characters). */
bool gh_traceparent_parse(const char *v, size_t n, const char **ids);

/* A tracestate list the gateway may forward: list-members key=value by the
 * W3C grammar, at most 32 of them and 512 bytes. Empty members are allowed. */
bool gh_tracestate_ok(const char *v, size_t n);

/* Fill ex->trace once (later calls return at once): continue the client's
 * trace or start one. The upstream request carries ex->trace.parent and, when
 * kept, ex->trace.state. */
void gh_trace_begin(gh_exchange *ex);

/* The trace id (32 hex digits, not terminated), after gh_trace_begin. */
static inline const char *gh_trace_id(const gh_exchange *ex) { return ex->trace.parent + 3; }

#endif
