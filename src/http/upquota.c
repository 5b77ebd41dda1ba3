/* upquota.c — a counted bound with a FIFO of waiters (see upquota.h). */
#include "http/upquota.h"
#include <stddef.h>

bool gh_upquota_take(gh_upquota *q, gh_upwait *w)
{
    if (q->held < q->max && !q->first) {
        q->held++;
        return true;
    }
    w->next = NULL;
    w->prev = q->last;
    if (q->last)
        q->last->next = w;
    else
        q->first = w;
    q->last = w;
    w->queued = true;
    return false;
}

void gh_upquota_cancel(gh_upquota *q, gh_upwait *w)
{
    if (!w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->first = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->last = w->prev;
    w->prev = w->next = NULL;
    w->queued = false;
}

void gh_upquota_give(gh_upquota *q)
{
    if (q->held)
        q->held--;
    if (q->first && q->kick)
        q->kick(q);
}

void gh_upquota_run(gh_upquota *q)
{
    while (q->first && q->held < q->max) {
        gh_upwait *w = q->first;
        gh_upquota_cancel(q, w);
        q->held++;
        w->go(w);   /* may give the slot back at once (a failed attempt) */
    }
}
