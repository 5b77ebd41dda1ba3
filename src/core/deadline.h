/* deadline.h — timeouts without a timer per connection.
 * A deadline list holds entries that all use the same duration, so appending
 * at the tail keeps it sorted: arming, re-arming and cancelling are O(1) and
 * one periodic tick per worker expires everything due from the head.
 * (After a reload changes a duration, entries armed before it may expire
 * up to the difference late; nothing expires early.) */
#ifndef GH_CORE_DEADLINE_H
#define GH_CORE_DEADLINE_H
#include <stdbool.h>
#include <stdint.h>

typedef struct gh_deadline {
    struct gh_deadline *prev, *next;
    uint64_t at_ms;               /* 0 = not armed */
    void (*fire)(struct gh_deadline *d);   /* called when due (owner's handler) */
    unsigned char list;           /* which list holds it (caller's numbering) */
} gh_deadline;

typedef struct gh_deadline_list {
    gh_deadline head;             /* sentinel */
} gh_deadline_list;

void gh_deadline_list_init(gh_deadline_list *l);
void gh_deadline_arm(gh_deadline_list *l, gh_deadline *d, uint64_t at_ms, unsigned char which);
void gh_deadline_cancel(gh_deadline *d);
static inline bool gh_deadline_armed(const gh_deadline *d) { return d->at_ms != 0; }
/* The first entry due at now_ms (removed from the list), or NULL. */
gh_deadline *gh_deadline_pop_due(gh_deadline_list *l, uint64_t now_ms);
bool gh_deadline_list_empty(const gh_deadline_list *l);

#endif
