/* upquota.h — how many upstream connections the exchanges of one client
 * connection may hold at once.
 *
 * An HTTP/2 client multiplexes up to 100 streams on one connection; a
 * stream that is opened and then reset (by the client, or by us because of
 * the client's frames: MadeYouReset, CVE-2025-8671) costs an upstream
 * connection that cannot be reused. The codec owns one quota per client
 * connection; a consumer takes a slot before it takes or opens an upstream
 * connection and gives it back when it lets go. A stream over the bound
 * waits in line (FIFO) for a sibling's slot, so the bound never turns a
 * burst into errors. */
#ifndef GH_HTTP_UPQUOTA_H
#define GH_HTTP_UPQUOTA_H
#include <stdbool.h>
#include <stdint.h>

typedef struct gh_upwait {
    struct gh_upwait *prev, *next;
    void (*go)(struct gh_upwait *w);   /* a slot is now held for you */
    bool queued;
} gh_upwait;

typedef struct gh_upquota {
    uint32_t held, max;
    gh_upwait *first, *last;
    /* the owner runs gh_upquota_run soon, outside any callback */
    void (*kick)(struct gh_upquota *q);
} gh_upquota;

/* true: a slot is held now. false: w is queued; w->go runs (from
 * gh_upquota_run) once a slot is held for it. */
bool gh_upquota_take(gh_upquota *q, gh_upwait *w);
/* Let go of a held slot. */
void gh_upquota_give(gh_upquota *q);
/* Leave the line (the waiter is going away); no-op if not queued. */
void gh_upquota_cancel(gh_upquota *q, gh_upwait *w);
/* Hand free slots to waiters, oldest first. */
void gh_upquota_run(gh_upquota *q);

#endif
