/* env.h — ${NAME} interpolation in configuration strings (SPEC §2).
 *
 * Every scalar value of the file goes through gh_env_expand before it is
 * read as a string, number or duration. A value that used a variable is
 * marked so the loader can flag it secret (masked outside the process). */
#ifndef GH_CONFIG_ENV_H
#define GH_CONFIG_ENV_H
#include <stdbool.h>
#include "core/arena.h"
#include "core/diag.h"
#include "core/str.h"

/* Replace each ${NAME} in `in` by the value of the environment variable
 * NAME ([A-Za-z_][A-Za-z0-9_]*); "$${" stands for a literal "${", any other
 * '$' is kept. On success *out is the result (NUL-terminated in `a`, or
 * `in` itself when there was nothing to replace) and *from_env tells whether a variable was
 * used. An unset variable or a malformed reference is reported at `at`
 * and makes it return false. */
bool gh_env_expand(gh_arena *a, gh_diag *d, gh_mark at, gh_str in, gh_str *out, bool *from_env);

#endif
