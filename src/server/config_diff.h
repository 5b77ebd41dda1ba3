/* config_diff.h — what applying one configuration instead of another
 * changes (`gatehouse diff`, and `config push` before it writes): routes
 * added, removed and changed (match, target, upstream, rewrite, plugins,
 * versions, in the words of `routes`), then the sample requests derived
 * from every route of both (its exact path, prefix and prefix + "/x", a
 * filled template; its host, methods, header and query conditions, its
 * version selectors) run through the dispatcher's dry-run mode against
 * both, listing those answered differently: another route, version,
 * upstream, forwarded path or answer. Nothing is sent anywhere. */
#ifndef GH_SERVER_CONFIG_DIFF_H
#define GH_SERVER_CONFIG_DIFF_H
#include <stdio.h>
#include "server/snapshot.h"

/* Prints the difference to out, in a stable order (routes by name, samples
 * by URL then method). Returns 0 when nothing differs, 1 when something
 * does, -1 when out of memory. */
int gh_config_diff(gh_snapshot *old, gh_snapshot *neu, FILE *out);

#endif
