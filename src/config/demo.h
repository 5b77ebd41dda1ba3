/* demo.h — the embedded demo (SPEC §11): its YAML, and the examples its
 * start-up banner prints and its /docs route lists (one table for both). */
#ifndef GH_CONFIG_DEMO_H
#define GH_CONFIG_DEMO_H
#include <stdio.h>
#include "config/config.h"
#include "core/diag.h"

/* The demo's ports can be moved (tests, a second demo) without a file:
 * GATEHOUSE_DEMO_LISTEN and GATEHOUSE_DEMO_ADMIN replace the public and
 * the admin address. Read only when no configuration file is used. */
#define GH_DEMO_LISTEN_ENV "GATEHOUSE_DEMO_LISTEN"
#define GH_DEMO_ADMIN_ENV "GATEHOUSE_DEMO_ADMIN"

/* The demo's YAML with the overrides applied (malloc'd, the caller frees),
 * or NULL with the reason in diag (a malformed override). */
char *gh_demo_yaml(gh_diag *diag);

/* gh_demo_yaml, loaded: what `run` serves without a file. */
gh_config *gh_demo_load(gh_diag *diag);

/* The start-up banner of the demo: the dashboard, then one runnable curl
 * command per feature, on the addresses cfg actually listens on. */
void gh_demo_banner(FILE *out, const gh_config *cfg);

#endif
