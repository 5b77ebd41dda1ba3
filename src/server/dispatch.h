/* dispatch.h — what happens to a parsed request: normalize the path, route
 * it, and hand it to the route's target. (Plugins join here, in the fixed
 * phase order of SPEC §5, with the authentication issue.) */
#ifndef GH_SERVER_DISPATCH_H
#define GH_SERVER_DISPATCH_H
#include "http/exchange.h"

void gh_dispatch(gh_exchange *ex);

#endif
