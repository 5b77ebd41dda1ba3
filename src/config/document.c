/* document.c — the configuration as the admin API shows it (GET
 * /api/config): the parsed YAML document as compact JSON, rendered once at
 * load (never on a request), with every secret masked as "***" (SPEC
 * §12.16): values that came from ${ENV}, and whatever sits under a key
 * named like a credential. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "config/env.h"
#include "config/schema.h"

static bool secret_key(const gh_ynode *k)
{
    static const char *const names[] = { "secret", "secret_base64", "password", "password_hash",
                                         "token", "api_keys", "key" };
    if (!k || k->kind != GH_Y_SCALAR)
        return false;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(k->text.p, names[i]) == 0)
            return true;
    return false;
}

/* A plain scalar as YAML 1.2's core schema reads it; quoted ones are strings. */
static json_t *scalar(gh_load *ld, const gh_ynode *n)
{
    if (gh_ynode_is_null(n))
        return json_null();
    gh_diag d;   /* the load reported bad references already */
    gh_diag_init(&d, "");
    gh_str v;
    bool from_env = false;
    bool ok = gh_env_expand(&ld->tmp, &d, n->mark, n->text, &v, &from_env);
    gh_diag_free(&d);
    if (from_env || !ok)
        return json_string("***");
    if (n->plain) {
        if (strcmp(v.p, "true") == 0 || strcmp(v.p, "false") == 0)
            return json_boolean(v.p[0] == 't');
        char *end;
        long long i = strtoll(v.p, &end, 10);
        if (v.len && *end == '\0')
            return json_integer(i);
        double f = strtod(v.p, &end);
        if (v.len && *end == '\0' && strspn(v.p, "0123456789.eE+-") == v.len)
            return json_real(f);
    }
    return json_stringn(v.p, v.len);
}

static json_t *node(gh_load *ld, const gh_ynode *n, int depth)
{
    if (!n || depth > 64)
        return json_null();
    switch (n->kind) {
    case GH_Y_MAP: {
        json_t *o = json_object();
        for (size_t i = 0; i < n->n; i++) {
            const gh_ypair *p = &n->pairs[i];
            const char *k = p->key && p->key->kind == GH_Y_SCALAR ? p->key->text.p : "?";
            json_object_set_new(o, k, secret_key(p->key) ? json_string("***") : node(ld, p->value, depth + 1));
        }
        return o;
    }
    case GH_Y_SEQ: {
        json_t *a = json_array();
        for (size_t i = 0; i < n->n; i++)
            json_array_append_new(a, node(ld, n->items[i], depth + 1));
        return a;
    }
    default:
        return scalar(ld, n);
    }
}

void gh_ld_document(gh_load *ld, const gh_ynode *root)
{
    json_t *j = node(ld, root, 0);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (text)
        ld->cfg->document = gh_ld_copy(ld, gh_str_c(text)).p;
    free(text);
}
