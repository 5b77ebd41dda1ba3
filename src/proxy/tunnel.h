/* tunnel.h — a byte tunnel between a client and an upstream connection,
 * used after 101 Switching Protocols (WebSocket). */
#ifndef GH_PROXY_TUNNEL_H
#define GH_PROXY_TUNNEL_H
#include <stdint.h>
#include <uv.h>
#include "http/exchange.h"
#include "http/h1_conn.h"

/* Takes the client connection (its early bytes and the 101 head to send
 * first) and the upstream socket (with bytes it sent after its 101 head).
 * Closes both after idle_ms without traffic, or when both sides are done.
 * The tunnel counts as a client connection of the worker (drain waits). */
int gh_tunnel_start(uv_loop_t *loop, gh_http_env *env, gh_takeover *client, int up_fd, gh_transport *up_tp,
                    const char *up_pending, size_t up_npending, uint64_t idle_ms);

/* Drain: close every tunnel of this worker. */
void gh_tunnel_close_all(gh_http_env *env);

#endif
