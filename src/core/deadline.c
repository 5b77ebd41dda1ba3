#include "core/deadline.h"
#include <stddef.h>

void gh_deadline_list_init(gh_deadline_list *l)
{
    l->head.prev = l->head.next = &l->head;
    l->head.at_ms = 0;
}

void gh_deadline_cancel(gh_deadline *d)
{
    if (!d->at_ms)
        return;
    d->prev->next = d->next;
    d->next->prev = d->prev;
    d->prev = d->next = NULL;
    d->at_ms = 0;
}

void gh_deadline_arm(gh_deadline_list *l, gh_deadline *d, uint64_t at_ms, unsigned char which)
{
    gh_deadline_cancel(d);
    d->at_ms = at_ms ? at_ms : 1;
    d->list = which;
    d->prev = l->head.prev;
    d->next = &l->head;
    l->head.prev->next = d;
    l->head.prev = d;
}

gh_deadline *gh_deadline_pop_due(gh_deadline_list *l, uint64_t now_ms)
{
    gh_deadline *d = l->head.next;
    if (d == &l->head || d->at_ms > now_ms)
        return NULL;
    gh_deadline_cancel(d);
    return d;
}

bool gh_deadline_list_empty(const gh_deadline_list *l)
{
    return l->head.next == &l->head;
}
