/* yaml.c — YAML text -> the gh_ynode tree, with libfyaml's event parser.
 *
 * Events rather than libfyaml's document API because 0.7.12 gives no
 * position for a mapping or a list node, and every error must have one.
 * Marks become 1-based; aliases are resolved (bounded, never cyclic);
 * duplicate keys, a second document and syntax errors are reported. */
#include <libfyaml.h>
#include <stdio.h>
#include <string.h>
#include "config/schema.h"

#define MAX_DEPTH 100               /* nesting a gateway configuration never needs */
#define MAX_NODES 1000000           /* after alias expansion: refuses "billion laughs" */

typedef struct frame {
    gh_ynode *node;
    gh_ynode *key;                  /* mapping: the key waiting for its value */
    gh_str anchor;                  /* registered when the node is complete */
} frame;

typedef struct anchor {
    gh_str name;
    gh_ynode *node;
} anchor;

typedef struct builder {
    gh_load *ld;
    frame stack[MAX_DEPTH];
    size_t depth;
    gh_ynode *root;
    anchor *anchors;
    size_t nanchors, capanchors;
    int docs;
    bool failed;
    char fy_msg[256];               /* libfyaml's last message without a position */
} builder;

/* Grow an array kept in the temporary arena (old copies are left there). */
static void grow(gh_load *ld, void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = gh_ld_tmp(ld, ncap * size);
    if (n)
        memcpy(p, *arr, n * size);
    *arr = p;
    *cap = ncap;
}

static gh_mark to_mark(const struct fy_mark *m)
{
    if (!m || m->line < 0 || m->column < 0)
        return (gh_mark){ 0, 0 };
    return (gh_mark){ (unsigned)m->line + 1, (unsigned)m->column + 1 };
}

static bool is_white(char c) { return c == ' ' || c == '\t'; }

/* A single-quoted scalar decoded from its source bytes: '' is a quote, and
 * line breaks fold (one break -> a space, n empty lines -> n newlines).
 * Done here because libfyaml 0.7.12 leaks (and its iterators garble) the
 * text of scalars with runs of '' escapes. */
static gh_str single_quoted(gh_load *ld, const char *src, size_t len)
{
    char *out = gh_ld_tmp(ld, len + 1), *o = out;
    size_t breaks = 0;
    bool first = true;
    for (size_t i = 0; i <= len;) {
        size_t end = i;
        while (end < len && src[end] != '\n')
            end++;
        size_t a = i, b = end;
        bool last = end >= len;
        if (b > a && src[b - 1] == '\r')
            b--;
        if (!first)
            while (a < b && is_white(src[a]))
                a++;
        if (!last)
            while (b > a && is_white(src[b - 1]))
                b--;
        if (!first) {
            if (a == b && !last) {
                breaks++;
                i = end + 1;
                continue;
            }
            if (breaks == 0)
                *o++ = ' ';
            for (; breaks; breaks--)
                *o++ = '\n';
        }
        for (size_t k = a; k < b; k++) {
            *o++ = src[k];
            if (src[k] == '\'' && k + 1 < b && src[k + 1] == '\'')
                k++;
        }
        first = false;
        i = end + 1;
    }
    *o = '\0';
    return gh_str_from(out, (size_t)(o - out));
}

static gh_str token_text(gh_load *ld, struct fy_token *t)
{
    if (t && fy_token_get_type(t) == FYTT_SCALAR && fy_token_scalar_style(t) == FYSS_SINGLE_QUOTED) {
        const struct fy_mark *sm = fy_token_start_mark(t), *em = fy_token_end_mark(t);
        if (sm && em && sm->input_pos <= em->input_pos && em->input_pos <= ld->src_len)
            return single_quoted(ld, ld->src + sm->input_pos, em->input_pos - sm->input_pos);
    }
    size_t len = 0;
    const char *s = t ? fy_token_get_text(t, &len) : NULL;
    if (!s)
        len = 0;
    char *p = gh_ld_tmp(ld, len + 1);
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return gh_str_from(p, len);
}

static gh_ynode *new_node(builder *b, int kind, gh_mark at)
{
    gh_ynode *n = gh_ld_tmp(b->ld, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->weight = 1;
    if (at.line == 0 && b->depth) {
        /* an empty value has no position: use its key's (or its parent's) */
        frame *f = &b->stack[b->depth - 1];
        at = f->key ? f->key->mark : f->node->mark;
    }
    n->mark = at.line ? at : (gh_mark){ 1, 1 };
    return n;
}

static void add_anchor(builder *b, gh_str name, gh_ynode *n)
{
    if (!name.len)
        return;
    grow(b->ld, (void **)&b->anchors, &b->capanchors, b->nanchors, sizeof(anchor));
    b->anchors[b->nanchors++] = (anchor){ name, n };
}

static void attach(builder *b, gh_ynode *child)
{
    if (b->depth == 0) {
        b->root = child;
        return;
    }
    frame *f = &b->stack[b->depth - 1];
    gh_ynode *parent = f->node;
    if (parent->kind == GH_Y_SEQ) {
        grow(b->ld, (void **)&parent->items, &parent->cap, parent->n, sizeof(gh_ynode *));
        parent->items[parent->n++] = child;
    } else if (!f->key) {
        f->key = child;
        return;             /* counted with its value */
    } else {
        gh_ynode *key = f->key;
        f->key = NULL;
        if (key->kind == GH_Y_SCALAR) {
            for (size_t i = 0; i < parent->n; i++) {
                const gh_ynode *k = parent->pairs[i].key;
                if (k->kind == GH_Y_SCALAR && gh_str_eq(k->text, key->text)) {
                    int len = key->text.len > 80 ? 80 : (int)key->text.len;
                    gh_ld_error(b->ld, key->mark, "duplicate key '%.*s' (first at line %u)", len,
                                key->text.p, k->mark.line);
                    return;
                }
            }
        }
        grow(b->ld, (void **)&parent->pairs, &parent->cap, parent->n, sizeof(gh_ypair));
        parent->pairs[parent->n++] = (gh_ypair){ key, child };
        parent->weight += key->weight;
    }
    parent->weight += child->weight;
    if (parent->weight > MAX_NODES && !b->failed) {
        gh_ld_error(b->ld, child->mark, "document too large (aliases expand past a million nodes)");
        b->failed = true;
    }
}

static void on_event(builder *b, struct fy_event *e)
{
    gh_mark at = to_mark(fy_event_start_mark(e));
    gh_ynode *n;
    switch (e->type) {
    case FYET_DOCUMENT_START:
        if (++b->docs > 1) {
            gh_ld_error(b->ld, at, "only one YAML document is allowed");
            b->failed = true;
        }
        return;
    case FYET_SCALAR: {
        enum fy_scalar_style style = fy_token_scalar_style(e->scalar.value);
        if ((style == FYSS_SINGLE_QUOTED || style == FYSS_DOUBLE_QUOTED) && at.col > 1)
            at.col--;   /* libfyaml marks the first character inside the quotes */
        n = new_node(b, GH_Y_SCALAR, at);
        n->text = token_text(b->ld, e->scalar.value);
        /* a tag (!!str "x") makes it a string whatever its spelling */
        n->plain = (style == FYSS_PLAIN && !e->scalar.tag) || !e->scalar.value;
        add_anchor(b, token_text(b->ld, e->scalar.anchor), n);
        attach(b, n);
        return;
    }
    case FYET_ALIAS: {
        gh_str name = token_text(b->ld, e->alias.anchor);
        if (at.col > 1)
            at.col--;   /* point at the '*', not at the name */
        for (size_t i = b->nanchors; i-- > 0;) {
            if (gh_str_eq(b->anchors[i].name, name)) {
                attach(b, b->anchors[i].node);
                return;
            }
        }
        /* anchors are registered when their node is complete, so an alias
         * inside its own anchor lands here too: no cycles in the tree */
        gh_ld_error(b->ld, at, "unknown alias '*%.*s'", name.len > 80 ? 80 : (int)name.len, name.p);
        b->failed = true;
        return;
    }
    case FYET_MAPPING_START:
    case FYET_SEQUENCE_START:
        if (b->depth == MAX_DEPTH) {
            gh_ld_error(b->ld, at, "nesting too deep");
            b->failed = true;
            return;
        }
        n = new_node(b, e->type == FYET_MAPPING_START ? GH_Y_MAP : GH_Y_SEQ, at);
        b->stack[b->depth++] = (frame){
            .node = n,
            .anchor = token_text(b->ld, e->type == FYET_MAPPING_START ? e->mapping_start.anchor
                                                                       : e->sequence_start.anchor),
        };
        return;
    case FYET_MAPPING_END:
    case FYET_SEQUENCE_END:
        if (b->depth == 0)
            return;
        b->depth--;
        n = b->stack[b->depth].node;
        add_anchor(b, b->stack[b->depth].anchor, n);
        attach(b, n);
        return;
    default:
        return;
    }
}

static void fy_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag;
    builder *b = user;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        len--;
    if (len)
        snprintf(b->fy_msg, sizeof(b->fy_msg), "%.*s", (int)len, buf);
}

/* Length of the valid UTF-8 sequence at s, 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || s[0] > 0xf4 || n > avail)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||   /* overlong, surrogate */
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))     /* overlong, > U+10FFFF */
        return 0;
    return n;
}

/* The code point of a valid UTF-8 sequence of n bytes. */
static unsigned code_point(const unsigned char *s, size_t n)
{
    if (n == 1)
        return s[0];
    unsigned c = s[0] & (0xffu >> (n + 1));
    for (size_t i = 1; i < n; i++)
        c = (c << 6) | (s[i] & 0x3fu);
    return c;
}

/* YAML's printable set (c-printable): tab, line breaks, and no other control
 * character, no U+FFFE/U+FFFF. */
static bool printable(unsigned c)
{
    if (c == '\t' || c == '\n' || c == '\r' || c == 0x85)
        return true;
    return (c >= 0x20 && c < 0x7f) || (c >= 0xa0 && c != 0xfffe && c != 0xffff);
}

/* libfyaml 0.7.12 (Debian 12) frees its parser state twice after some
 * "cannot use tab for indentation" errors (a tab before a block indicator
 * in an explicit key: `? a:<TAB>- b`, `? a <TAB>?b`, ...) and crashes in
 * fy_parser_destroy (fixed upstream). The config fuzzer kept finding new
 * spellings, so the whole family is closed at its root: outside quoted
 * text and comments, a configuration uses spaces, never tabs. */
static bool tab_outside_quotes(gh_load *ld, const char *t, size_t len)
{
    gh_mark at = { 1, 1 };
    char quote = 0, last = '\n';   /* last: the line's last non-blank character so far */
    bool comment = false;
    for (size_t i = 0; i < len; i++, at.col++) {
        char c = t[i], before = last;
        if (c != ' ' && c != '\t' && c != '\n' && !comment && !quote)
            last = c;
        if (c == '\n') {
            at.line++;
            at.col = 0;
            last = '\n';
            comment = false;
            quote = 0;   /* (a multi-line quoted scalar only risks a clear refusal) */
            continue;
        }
        if (comment)
            continue;
        if (quote) {
            if ((c == '\\' && quote == '"' && i + 1 < len && t[i + 1] != '\n') ||
                (c == '\'' && quote == '\'' && i + 1 < len && t[i + 1] == '\''))
                i++, at.col++;   /* an escaped character: \" in "...", '' in '...' */
            else if (c == quote)
                quote = 0;
            continue;
        }
        bool after_blank = i == 0 || t[i - 1] == ' ' || t[i - 1] == '\t' || t[i - 1] == '\n';
        /* a quote opens quoted text only where a scalar starts (after an
         * indicator or at the start of a line); inside a plain scalar
         * (`ab"c`, `a b "c`) it is just a character */
        bool scalar_start = (after_blank && strchr("\n:-?[{,", before)) || (i > 0 && strchr("[{,", t[i - 1]));
        if ((c == '"' || c == '\'') && scalar_start) {
            quote = c;
            continue;
        }
        if (c == '#' && after_blank) {
            comment = true;
            continue;
        }
        if (c == '\t') {
            gh_ld_error(ld, at, "invalid YAML: a tab is not allowed here (indent and separate with spaces; "
                        "a tab may appear inside quotes, as \\t)");
            return false;
        }
    }
    return true;
}

/* YAML text is printable Unicode. libfyaml 0.7.12 is also known to spin
 * forever on some invalid UTF-8 and to crash on a NUL byte, so it never
 * sees either. */
static bool check_text(gh_load *ld, const char *text, size_t len)
{
    gh_mark at = { 1, 1 };
    for (size_t i = 0; i < len;) {
        const unsigned char *s = (const unsigned char *)text + i;
        size_t n = utf8_len(s, len - i);
        if (n == 0) {
            gh_ld_error(ld, at, "invalid YAML: the file is not valid UTF-8");
            return false;
        }
        unsigned c = code_point(s, n);
        if (!printable(c)) {
            gh_ld_error(ld, at, "invalid YAML: control character U+%04X is not allowed", c);
            return false;
        }
        if (c == '\n') {
            at.line++;
            at.col = 1;
        } else {
            at.col++;
        }
        i += n;
    }
    return tab_outside_quotes(ld, text, len);
}

gh_ynode *gh_ld_parse_yaml(gh_load *ld, const char *text, size_t len)
{
    if (!check_text(ld, text, len))
        return NULL;
    ld->src = text;
    ld->src_len = len;
    builder *b = gh_ld_tmp(ld, sizeof(*b));
    memset(b, 0, sizeof(*b));
    b->ld = ld;

    struct fy_diag_cfg dc;
    fy_diag_cfg_default(&dc);
    dc.fp = NULL;               /* never print: everything goes to gh_diag */
    dc.output_fn = fy_output;
    dc.user = b;
    dc.level = FYET_ERROR;
    dc.colorize = false;
    dc.show_source = dc.show_position = dc.show_type = dc.show_module = false;
    struct fy_diag *fd = fy_diag_create(&dc);
    if (!fd) {
        gh_ld_error(ld, (gh_mark){ 0, 0 }, "cannot create the YAML parser");
        return NULL;
    }
    fy_diag_set_collect_errors(fd, true);   /* errors with their line:col */
    struct fy_parse_cfg pc = { .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2, .diag = fd };
    struct fy_parser *p = fy_parser_create(&pc);
    if (!p || fy_parser_set_string(p, text, len) != 0) {
        if (p)
            fy_parser_destroy(p);
        fy_diag_destroy(fd);
        gh_ld_error(ld, (gh_mark){ 0, 0 }, "cannot create the YAML parser");
        return NULL;
    }

    gh_mark last = { 1, 1 };
    struct fy_event *e;
    while (!b->failed && (e = fy_parser_parse(p)) != NULL) {
        gh_mark at = to_mark(fy_event_start_mark(e));
        if (at.line)
            last = at;
        on_event(b, e);
        fy_parser_event_free(p, e);
    }
    if (!b->failed && fy_parser_get_stream_error(p)) {
        size_t reported = 0;
        void *it = NULL;
        struct fy_diag_error *de;
        while ((de = fy_diag_errors_iterate(fd, &it)) != NULL) {
            if (de->type < FYET_ERROR)
                continue;
            /* collected errors are already 1-based (libfyaml adds 1) */
            gh_mark at = { de->line > 0 ? (unsigned)de->line : 0, de->column > 0 ? (unsigned)de->column : 0 };
            gh_ld_error(ld, at, "invalid YAML: %s", de->msg ? de->msg : "syntax error");
            reported++;
        }
        if (!reported)
            gh_ld_error(ld, last, "invalid YAML: %s", b->fy_msg[0] ? b->fy_msg : "syntax error");
        b->failed = true;
    }
    fy_parser_destroy(p);
    fy_diag_destroy(fd);
    return b->failed ? NULL : b->root;
}
