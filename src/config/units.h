/* units.h — the value syntaxes of the configuration file (SPEC §2).
 *
 * durations: "0", "250ms", "5s", "1m", "2h" (always a unit, except 0);
 * sizes: "512" (bytes), "16KiB", "10MiB", "1GiB" (1024-based) and "1KB",
 * "10MB", "1GB" (1000-based); integers: plain decimal digits.
 * Every parser refuses overflow and trailing garbage, and never allocates. */
#ifndef GH_CONFIG_UNITS_H
#define GH_CONFIG_UNITS_H
#include <stdbool.h>
#include <stdint.h>
#include "core/str.h"

#define GH_DURATION_HINT "250ms, 5s, 1m or 2h"
#define GH_SIZE_HINT "512, 16KiB, 10MiB or 1GiB"

bool gh_parse_uint(gh_str s, uint64_t *out);          /* decimal digits only */
bool gh_parse_duration_ms(gh_str s, uint64_t *out_ms);
bool gh_parse_size(gh_str s, uint64_t *out_bytes);

#endif
