/* fuzz_config.c — libFuzzer harness for the configuration loader: any bytes
 * must give a configuration or diagnostics, never a crash, a leak or a hang.
 * Build the library with -DGH_FUZZING (make fuzz does) so that host names
 * in targets are not looked up: the fuzzer must not wait on, or flood, DNS. */
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gh_diag d;
    gh_diag_init(&d, "fuzz.yaml");
    gh_config *cfg = gh_config_load_string("fuzz.yaml", (const char *)data, size, &d);
    if (cfg) {
        /* walk what a loaded configuration promises to the rest of the code */
        for (size_t i = 0; i < cfg->nroutes; i++) {
            const gh_route_cfg *r = &cfg->routes[i];
            if (r->target == GH_TARGET_UPSTREAM && gh_config_upstream(cfg, r->upstream_name) != r->upstream)
                __builtin_trap();
        }
        if (cfg->nlistens == 0)
            __builtin_trap();
    }
    if (!cfg != (d.errors > 0))
        __builtin_trap();
    gh_config_free(cfg);
    gh_diag_free(&d);
    return 0;
}
