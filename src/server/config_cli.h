/* config_cli.h — `gatehouse config push` and `config pull` (SPEC §1, §10). */
#ifndef GH_SERVER_CONFIG_CLI_H
#define GH_SERVER_CONFIG_CLI_H
#include <stdbool.h>
#include <stdint.h>

/* Validate file as the fleet would load it (layered on bootstrap), print
 * the diff from the stored document (as `gatehouse diff`), then write it to
 * etcd only if the key's mod_revision is still the one read (or
 * base_revision when >= 0). Exit code: 0 stored, 1 invalid or refused, 3
 * etcd unreachable; with dry_run, as diff's: 0 no change, 1 changes, 2
 * invalid or refused, 3 etcd unreachable. */
int gh_config_push(const char *bootstrap, const char *file, bool dry_run, int64_t base_revision);
/* Print the stored document (its revision to stderr). */
int gh_config_pull(const char *bootstrap);

#endif
