/* h1_int.h — private to the HTTP/1.1 codec (h1_conn.c, h1_body.c): the
 * connection and per-exchange structs and the functions the two share. */
#ifndef GH_HTTP_H1_INT_H
#define GH_HTTP_H1_INT_H
#include <uv.h>
#include "http/h1_conn.h"

enum { ST_IDLE = 0, ST_HEAD, ST_ACTIVE, ST_HANDSHAKE };

enum {
    F_CLOSE_AFTER = 1u << 0,     /* close once the current response is written */
    F_PEER_EOF    = 1u << 1,     /* client half-closed after a complete request */
    F_DEAD        = 1u << 2,     /* queued for close; ignore events */
    F_IN_PROCESS  = 1u << 3,     /* process() on the stack: do not recurse */
    F_READ_OFF    = 1u << 4,     /* READABLE removed from the poll mask */
};

enum { RESP_LENGTH = 0, RESP_CHUNKED, RESP_CLOSE, RESP_NONE };

#define MAX_WQ 6

/* Per-exchange codec state: allocated in the exchange arena, so an idle
 * connection carries none of it. */
typedef struct h1_active {
    uint64_t body_left;          /* GH_BODY_LENGTH: bytes still expected */
    gh_chunked chunk;            /* GH_BODY_CHUNKED decoder */
    size_t span_len;             /* decoded chunk data not yet taken: at in->start */
    uint64_t rx_mark;            /* body bytes read when the rate window opened */
    uint64_t rx;                 /* body bytes read from the socket */
    char *head;                  /* serialized response head awaiting its first write */
    size_t head_len;
    int resp_mode;
    bool sent_continue;
    bool body_failed;            /* malformed/oversized body seen */
    char chunk_line[24];         /* "1a2b\r\n" in flight */
    struct iovec wq[MAX_WQ];     /* unwritten rest of a write */
    int wq_n;
} h1_active;

typedef struct h1_conn {
    uv_poll_t poll;
    gh_http_env *env;
    gh_transport *tp;
    gh_buf *in;
    gh_exchange *ex;
    h1_active *act;
    struct h1_conn *next_close;
    gh_deadline timer;
    union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } peer;
    uint32_t head_scanned;
    uint32_t requests;
    int fd;
    gh_handler handle;            /* chosen by the listener */
    uint16_t local_port;
    uint8_t state, flags, events;
    bool path_strict, tls, http2, uncounted;
} h1_conn;

#define CONN(ex) ((h1_conn *)(ex)->down_ctx)

extern const gh_downstream_ops gh_h1_ops;

/* h1_conn.c */
void gh_h1c_set_events(h1_conn *c, int events);
void gh_h1c_want_read(h1_conn *c, bool on);
void gh_h1c_arm(h1_conn *c, int kind);
void gh_h1c_defer_close(h1_conn *c);
void gh_h1c_process(h1_conn *c);
int gh_h1c_upgrade(h1_conn *c, const gh_header *hdrs, size_t n, gh_takeover *t);
/* h1_body.c */
int gh_h1c_writev(h1_conn *c, struct iovec *iov, int n);
void gh_h1c_flush(h1_conn *c);
void gh_h1c_exchange_complete(h1_conn *c);
void gh_h1c_deliver_body(h1_conn *c);
void gh_h1c_body_error(h1_conn *c, int status, const char *code, const char *detail);

#endif
