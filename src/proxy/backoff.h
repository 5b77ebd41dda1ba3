/* backoff.h — the wait before a retry (`retries.backoff`), shared by the
 * HTTP/1.1 and HTTP/2 forwarders. The timer is allocated apart from the
 * exchange arena: it must outlive an exchange that ends while it closes. */
#ifndef GH_PROXY_BACKOFF_H
#define GH_PROXY_BACKOFF_H
#include <stdint.h>
#include <uv.h>

/* Calls cb(data) after ms; NULL if it could not wait (call cb at once). */
uv_timer_t *gh_backoff_start(uv_loop_t *loop, uint64_t ms, void (*cb)(void *data), void *data);
/* Cancel (NULL-safe); *t becomes NULL. */
void gh_backoff_stop(uv_timer_t **t);

#endif
