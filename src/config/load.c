/* load.c — YAML text -> gh_config: the libfyaml tree, the top-level keys,
 * listeners, limits, log, trusted proxies, addresses, and the public API.
 * Upstreams and routes have their own files (upstreams.c, routes.c). */
#include "config/config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <libfyaml.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/schema.h"
#include "config/units.h"
#include "core/log.h"

#define MAX_DEPTH 100               /* nesting a gateway configuration never needs */
#define MAX_NODES 1000000           /* after alias expansion: refuses "billion laughs" */
#define MAX_FILE (16u << 20)        /* a configuration, not a data set */

/* ---------------------------------------------------------------- tree */

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

static void *tmp_alloc(gh_load *ld, size_t n)
{
    void *p = gh_arena_alloc(&ld->tmp, n ? n : 1);
    if (!p) {
        fprintf(stderr, "gatehouse: out of memory loading the configuration\n");
        abort();
    }
    return p;
}

/* Grow an array kept in the temporary arena (old copies are left there). */
static void grow(gh_load *ld, void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = tmp_alloc(ld, ncap * size);
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
    char *out = tmp_alloc(ld, len + 1), *o = out;
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
    char *p = tmp_alloc(ld, len + 1);
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return gh_str_from(p, len);
}

static gh_ynode *new_node(builder *b, int kind, gh_mark at)
{
    gh_ynode *n = tmp_alloc(b->ld, sizeof(*n));
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

/* YAML text is Unicode; libfyaml 0.7.12 can also spin forever on some
 * invalid UTF-8 (in a directive line), so it never sees any. */
static bool check_utf8(gh_load *ld, const char *text, size_t len)
{
    gh_mark at = { 1, 1 };
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len((const unsigned char *)text + i, len - i);
        if (n == 0) {
            gh_ld_error(ld, at, "invalid YAML: the file is not valid UTF-8");
            return false;
        }
        if (text[i] == '\n') {
            at.line++;
            at.col = 1;
        } else {
            at.col++;
        }
        i += n;
    }
    return true;
}

/* Parse YAML into the tree; NULL after reporting (syntax errors included). */
static gh_ynode *parse_yaml(gh_load *ld, const char *text, size_t len)
{
    if (!check_utf8(ld, text, len))
        return NULL;
    ld->src = text;
    ld->src_len = len;
    builder *b = tmp_alloc(ld, sizeof(*b));
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

/* ----------------------------------------------------------- addresses */

bool gh_ld_hostport(gh_load *ld, const gh_ynode *n, gh_str addr, gh_str *host, uint16_t *port)
{
    int alen = addr.len > 80 ? 80 : (int)addr.len;
    gh_str h, p;
    if (addr.len && addr.p[0] == '[') {
        const char *close = memchr(addr.p, ']', addr.len);
        if (!close || close + 1 >= addr.p + addr.len || close[1] != ':')
            goto bad;
        h = gh_str_from(addr.p + 1, (size_t)(close - addr.p - 1));
        p = gh_str_from(close + 2, addr.len - (size_t)(close + 2 - addr.p));
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < addr.len; i++)
            if (addr.p[i] == ':')
                colon = addr.p + i;
        if (!colon)
            goto bad;
        h = gh_str_from(addr.p, (size_t)(colon - addr.p));
        p = gh_str_from(colon + 1, addr.len - h.len - 1);
        if (memchr(h.p, ':', h.len)) {
            gh_ld_error(ld, n->mark, "invalid address '%.*s' (an IPv6 address needs brackets: [::1]:8080)",
                        alen, addr.p);
            return false;
        }
    }
    if (h.len == 0)
        goto bad;
    uint64_t v;
    if (!gh_parse_uint(p, &v) || v == 0 || v > 65535) {
        gh_ld_error(ld, n->mark, "invalid port in '%.*s' (use 1-65535)", alen, addr.p);
        return false;
    }
    *host = h;
    *port = (uint16_t)v;
    return true;
bad:
    gh_ld_error(ld, n->mark, "invalid address '%.*s' (use host:port or [v6]:port)", alen, addr.p);
    return false;
}

static void set_port(struct sockaddr_storage *sa, uint16_t port)
{
    if (sa->ss_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    else if (sa->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static bool lookup(const char *host, int flags, struct sockaddr_storage *sa, socklen_t *salen, int *err)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = flags };
    struct addrinfo *res = NULL;
    *err = getaddrinfo(host, NULL, &hints, &res);
    if (*err != 0)
        return false;
    bool ok = res && res->ai_addrlen <= sizeof(*sa);
    if (ok) {
        memset(sa, 0, sizeof(*sa));
        memcpy(sa, res->ai_addr, res->ai_addrlen);
        *salen = (socklen_t)res->ai_addrlen;
    } else {
        *err = EAI_FAMILY;
    }
    freeaddrinfo(res);
    return ok;
}

bool gh_ld_resolve(gh_load *ld, const gh_ynode *n, gh_str host, uint16_t port, bool names_ok,
                   struct sockaddr_storage *sa, socklen_t *salen)
{
    char *h = tmp_alloc(ld, host.len + 1);
    memcpy(h, host.p, host.len);
    h[host.len] = '\0';
    int hlen = host.len > 80 ? 80 : (int)host.len;
    int err = 0;
    /* "localhost" is the IPv4 loopback: predictable, whatever /etc/hosts
     * lists first, and no resolver involved */
    if (strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    if (lookup(h, AI_NUMERICHOST | AI_PASSIVE, sa, salen, &err)) {
        set_port(sa, port);
        return true;
    }
    if (!names_ok) {
        gh_ld_error(ld, n->mark, "invalid host '%.*s' (use an IP address or localhost)", hlen, host.p);
        return false;
    }
#ifdef GH_FUZZING
    /* the fuzzer must not wait on DNS */
    gh_ld_error(ld, n->mark, "cannot resolve '%.*s': name lookups are off in fuzzing builds", hlen, host.p);
    return false;
#else
    if (lookup(h, 0, sa, salen, &err)) {
        set_port(sa, port);
        return true;
    }
    gh_ld_error(ld, n->mark, "cannot resolve '%.*s': %s", hlen, host.p,
                err == EAI_SYSTEM ? strerror(errno) : gai_strerror(err));
    return false;
#endif
}

static bool parse_cidr(gh_str s, gh_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = memchr(s.p, '/', s.len);
    size_t alen = slash ? (size_t)(slash - s.p) : s.len;
    if (alen == 0 || alen >= sizeof(buf))
        return false;
    memcpy(buf, s.p, alen);
    buf[alen] = '\0';
    memset(out, 0, sizeof(*out));
    unsigned max;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return false;
    }
    uint64_t bits = max;
    if (slash && (!gh_parse_uint(gh_str_from(slash + 1, s.len - alen - 1), &bits) || bits > max))
        return false;
    out->bits = (uint8_t)bits;
    /* zero the host bits so matching is a plain masked compare */
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits >= (i + 1) * 8 ? 8 : bits > i * 8 ? (unsigned)bits - i * 8 : 0;
        out->addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    return true;
}

/* ---------------------------------------------------------- top level */

enum { L_ADDRESS, L_HTTP2, L_PATH_STRICT };
static const gh_key listen_keys[] = {
    [L_ADDRESS] = { .name = "address", .type = GH_V_DEFER },
    [L_HTTP2] = { .name = "http2", .type = GH_V_BOOL, .off = offsetof(gh_listen_cfg, http2) },
    [L_PATH_STRICT] = { .name = "path_strict", .type = GH_V_BOOL, .off = offsetof(gh_listen_cfg, path_strict) },
};
static const gh_section listen_section = GH_SECTION("listen", listen_keys);

static bool set_listen(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    const gh_ynode *list = kv->value;
    if (list->kind != GH_Y_SEQ || list->n == 0) {
        gh_ld_error(ld, kv->key->mark, "at least one listen address is required");
        return false;
    }
    cfg->listens = gh_ld_array(ld, list->n, sizeof(*cfg->listens));
    for (size_t i = 0; i < list->n; i++) {
        const gh_ynode *item = list->items[i];
        gh_listen_cfg *l = &cfg->listens[cfg->nlistens];
        const gh_ypair *seen[3] = { 0 };
        memset(l, 0, sizeof(*l));
        l->path_strict = true;
        l->mark = item->mark;
        if (!gh_ld_apply(ld, &listen_section, item, l, seen))
            continue;
        if (!seen[L_ADDRESS]) {
            gh_ld_error(ld, item->mark, "listen entry needs an address");
            continue;
        }
        const gh_ynode *v = seen[L_ADDRESS]->value;
        gh_str host;
        uint16_t port;
        l->mark = v->mark;
        if (!gh_ld_str(ld, v, &l->address, NULL) || !gh_ld_hostport(ld, v, l->address, &host, &port) ||
            !gh_ld_resolve(ld, v, host, port, false, &l->sa, &l->salen))
            continue;
        for (size_t j = 0; j < cfg->nlistens; j++) {
            const gh_listen_cfg *o = &cfg->listens[j];
            if (o->salen == l->salen && memcmp(&o->sa, &l->sa, l->salen) == 0) {
                gh_ld_error(ld, v->mark, "duplicate listen address '%s' (also at line %u)",
                            l->address.p, o->mark.line);
                goto next;
            }
        }
        cfg->nlistens++;
    next:;
    }
    return true;
}

static bool set_workers(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    static const char msg[] = "expected auto or an integer between 1 and 256";
    gh_str t;
    uint64_t v;
    if (!gh_ld_text(ld, kv->value, msg, &t, NULL))
        return false;
    if (gh_str_eq_c(t, "auto")) {
        cfg->workers = 0;
        return true;
    }
    if (!gh_parse_uint(t, &v) || v < 1 || v > 256) {
        gh_ld_error(ld, kv->value->mark, "%s", msg);
        return false;
    }
    cfg->workers = (int)v;
    return true;
}

static const gh_key limits_keys[] = {
    { .name = "header_timeout", .type = GH_V_DURATION, .off = offsetof(gh_limits_cfg, header_timeout_ms), .min = 1 },
    { .name = "body_timeout", .type = GH_V_DURATION, .off = offsetof(gh_limits_cfg, body_timeout_ms), .min = 1 },
    { .name = "min_body_rate", .type = GH_V_SIZE, .off = offsetof(gh_limits_cfg, min_body_rate) },
    { .name = "idle_timeout", .type = GH_V_DURATION, .off = offsetof(gh_limits_cfg, idle_timeout_ms), .min = 1 },
    { .name = "max_header_bytes", .type = GH_V_SIZE, .off = offsetof(gh_limits_cfg, max_header_bytes), .min = 1 },
    { .name = "max_headers", .type = GH_V_U64, .off = offsetof(gh_limits_cfg, max_headers), .min = 1, .max = 10000 },
    { .name = "max_body_bytes", .type = GH_V_SIZE, .off = offsetof(gh_limits_cfg, max_body_bytes) },
    { .name = "max_connections", .type = GH_V_U64, .off = offsetof(gh_limits_cfg, max_connections), .min = 1, .max = 10000000 },
};
static const gh_section limits_section = GH_SECTION("limits", limits_keys);

static bool set_limits(gh_load *ld, void *obj, const gh_ypair *kv)
{
    return gh_ld_apply(ld, &limits_section, kv->value, &((gh_config *)obj)->limits, NULL);
}

static bool set_trusted(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_config *cfg = obj;
    const gh_ynode *list = kv->value;
    if (list->kind != GH_Y_SEQ)
        return true;   /* null: none */
    cfg->trusted_proxies = gh_ld_array(ld, list->n, sizeof(gh_cidr));
    for (size_t i = 0; i < list->n; i++) {
        gh_str t;
        if (!gh_ld_text(ld, list->items[i], "expected an address or CIDR (10.0.0.0/8, ::1)", &t, NULL))
            continue;
        if (!parse_cidr(t, &cfg->trusted_proxies[cfg->ntrusted_proxies])) {
            gh_ld_error(ld, list->items[i]->mark, "invalid address or CIDR '%.*s'",
                        t.len > 80 ? 80 : (int)t.len, t.p);
            continue;
        }
        cfg->ntrusted_proxies++;
    }
    return true;
}

static bool set_log_level(gh_load *ld, void *obj, const gh_ypair *kv)
{
    static const char *const names[] = {
        [GH_LOG_ERROR] = "error", [GH_LOG_WARN] = "warn", [GH_LOG_INFO] = "info", [GH_LOG_DEBUG] = "debug",
    };
    gh_str t;
    if (!gh_ld_text(ld, kv->value, "expected a log level (error, warn, info or debug)", &t, NULL))
        return false;
    for (int i = 0; i < 4; i++) {
        if (gh_str_eq_c(t, names[i])) {
            ((gh_log_cfg *)obj)->level = i;
            return true;
        }
    }
    gh_ld_error(ld, kv->value->mark, "invalid log level '%.*s' (use error, warn, info or debug)",
                t.len > 80 ? 80 : (int)t.len, t.p);
    return false;
}

enum { G_LEVEL, G_ACCESS, G_ERRORS };
static const gh_key log_keys[] = {
    [G_LEVEL] = { .name = "level", .type = GH_V_FN, .fn = set_log_level },
    [G_ACCESS] = { .name = "access", .type = GH_V_STR, .off = offsetof(gh_log_cfg, access) },
    [G_ERRORS] = { .name = "errors", .type = GH_V_STR, .off = offsetof(gh_log_cfg, errors) },
};
static const gh_section log_section = GH_SECTION("log", log_keys);

static bool set_log(gh_load *ld, void *obj, const gh_ypair *kv)
{
    gh_log_cfg *log = &((gh_config *)obj)->log;
    const gh_ypair *seen[3] = { 0 };
    if (!gh_ld_apply(ld, &log_section, kv->value, log, seen))
        return false;
    if (seen[G_ACCESS] && log->access.len == 0)
        gh_ld_error(ld, seen[G_ACCESS]->value->mark, "expected stdout, off or a file path");
    if (seen[G_ERRORS] && log->errors.len == 0)
        gh_ld_error(ld, seen[G_ERRORS]->value->mark, "expected stderr or a file path");
    if (log->access.len == 0)
        log->access = GH_STR("stdout");
    if (log->errors.len == 0)
        log->errors = GH_STR("stderr");
    return true;
}

/* The top level. Keys of SPEC §2 not implemented yet (admin, redis,
 * config_source, watch, plugins, consumers) are left out on purpose: they
 * are refused as unknown until their feature lands with its row here. */
enum { T_LISTEN, T_WORKERS, T_LIMITS, T_TRUSTED, T_LOG, T_DRAIN, T_UPSTREAMS, T_ROUTES, T_COUNT };
static const gh_key top_keys[] = {
    [T_LISTEN] = { .name = "listen", .type = GH_V_FN, .kind = GH_Y_SEQ, .fn = set_listen },
    [T_WORKERS] = { .name = "workers", .type = GH_V_FN, .fn = set_workers },
    [T_LIMITS] = { .name = "limits", .type = GH_V_FN, .kind = GH_Y_MAP, .fn = set_limits },
    [T_TRUSTED] = { .name = "trusted_proxies", .type = GH_V_FN, .kind = GH_Y_SEQ, .fn = set_trusted },
    [T_LOG] = { .name = "log", .type = GH_V_FN, .kind = GH_Y_MAP, .fn = set_log },
    [T_DRAIN] = { .name = "drain_timeout", .type = GH_V_DURATION, .off = offsetof(gh_config, drain_timeout_ms) },
    [T_UPSTREAMS] = { .name = "upstreams", .type = GH_V_FN, .kind = GH_Y_MAP, .fn = gh_ld_upstreams },
    [T_ROUTES] = { .name = "routes", .type = GH_V_FN, .kind = GH_Y_SEQ, .fn = gh_ld_routes },
};
static const gh_section top_section = GH_SECTION("configuration", top_keys);

static void set_defaults(gh_config *cfg)
{
    cfg->workers = 0;
    cfg->limits = (gh_limits_cfg){
        .header_timeout_ms = 10000,
        .body_timeout_ms = 10000,
        .min_body_rate = 1024,
        .idle_timeout_ms = 60000,
        .max_header_bytes = 16 * 1024,
        .max_headers = 100,
        .max_body_bytes = 10 * 1024 * 1024,
        .max_connections = 100000,
    };
    cfg->log = (gh_log_cfg){ .level = GH_LOG_INFO, .access = GH_STR("stdout"), .errors = GH_STR("stderr") };
    cfg->drain_timeout_ms = 30000;
}

static void load_root(gh_load *ld, const gh_ynode *root)
{
    if (!root || gh_ynode_is_null(root)) {
        gh_ld_error(ld, (gh_mark){ 1, 1 }, "empty configuration");
        return;
    }
    const gh_ypair *seen[T_COUNT] = { 0 };
    if (!gh_ld_apply(ld, &top_section, root, ld->cfg, seen))
        return;
    if (!seen[T_LISTEN])
        gh_ld_error(ld, root->mark, "at least one listen address is required (listen: [{ address: 0.0.0.0:8080 }])");
    gh_ld_routes_resolve(ld);
}

/* --------------------------------------------------------------- API */

typedef struct sorted_item {
    unsigned line, col;
    size_t index;
    const char *msg;
} sorted_item;

static int by_position(const void *a, const void *b)
{
    const sorted_item *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Hand the load's messages to the caller's diag in file order: sections are
 * checked in dependency order (routes after upstreams, cross-checks last),
 * but `gatehouse check` should read top to bottom. `local` was made with an
 * empty file name, so each text starts with ":LINE:COL: ". */
static void publish(gh_diag *local, gh_diag *diag)
{
    sorted_item *items = local->n ? calloc(local->n, sizeof(*items)) : NULL;
    for (size_t i = 0; i < local->n; i++) {
        const char *t = local->items[i].text;
        char *end;
        sorted_item it = { .index = i, .msg = t };
        if (*t == ':') {
            it.line = (unsigned)strtoul(t + 1, &end, 10);
            if (*end == ':') {
                it.col = (unsigned)strtoul(end + 1, &end, 10);
                if (end[0] == ':' && end[1] == ' ')
                    it.msg = end + 2;
            }
        }
        if (local->items[i].warning && strncmp(it.msg, "warning: ", 9) == 0)
            it.msg += 9;
        if (!items) {   /* no memory to sort: in order of discovery */
            gh_mark at = { it.line, it.col };
            if (local->items[i].warning)
                gh_diag_warn(diag, at, "%s", it.msg);
            else
                gh_diag_error(diag, at, "%s", it.msg);
            continue;
        }
        items[i] = it;
    }
    if (!items)
        return;
    qsort(items, local->n, sizeof(*items), by_position);
    for (size_t i = 0; i < local->n; i++) {
        gh_mark at = { items[i].line, items[i].col };
        if (local->items[items[i].index].warning)
            gh_diag_warn(diag, at, "%s", items[i].msg);
        else
            gh_diag_error(diag, at, "%s", items[i].msg);
    }
    free(items);
}

gh_config *gh_config_load_string(const char *name, const char *text, size_t len, gh_diag *diag)
{
    gh_diag local;
    gh_diag_init(&local, "");
    gh_arena arena;
    gh_arena_init(&arena, 16384);
    gh_config *cfg = gh_arena_zalloc(&arena, sizeof(*cfg));
    if (!cfg) {
        gh_diag_error(diag, (gh_mark){ 0, 0 }, "out of memory");
        return NULL;
    }
    cfg->arena = arena;   /* from here on the configuration owns its arena */
    gh_load ld = { .cfg = cfg, .diag = &local, .a = &cfg->arena };
    gh_arena_init(&ld.tmp, 16384);
    cfg->file = gh_ld_copy(&ld, gh_str_c(name ? name : diag->file)).p;
    set_defaults(cfg);

    gh_ynode *root = parse_yaml(&ld, text ? text : "", text ? len : 0);
    if (root || local.errors == 0)
        load_root(&ld, root);
    gh_arena_free(&ld.tmp);

    const char *saved_file = diag->file;
    if (name)
        diag->file = name;   /* messages name what the caller called it */
    publish(&local, diag);
    diag->file = saved_file;
    bool failed = local.errors > 0;
    gh_diag_free(&local);
    if (failed) {
        gh_config_free(cfg);
        return NULL;
    }
    return cfg;
}

gh_config *gh_config_load_file(const char *path, gh_diag *diag)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    int err = 0;
    if (!f) {
        err = errno;
    } else {
        size_t cap = 0;
        for (;;) {
            if (len == cap) {
                cap = cap ? cap * 2 : 8192;
                char *nb = cap <= MAX_FILE ? realloc(buf, cap) : NULL;
                if (!nb) {
                    err = cap > MAX_FILE ? EFBIG : ENOMEM;
                    break;
                }
                buf = nb;
            }
            size_t got = fread(buf + len, 1, cap - len, f);
            len += got;
            if (got == 0) {
                if (ferror(f))
                    err = errno ? errno : EIO;
                break;
            }
        }
        fclose(f);
    }
    if (err) {
        const char *saved_file = diag->file;
        diag->file = path;
        gh_diag_error(diag, (gh_mark){ 0, 0 }, "cannot read the configuration: %s", strerror(err));
        diag->file = saved_file;
        free(buf);
        return NULL;
    }
    gh_config *cfg = gh_config_load_string(path, buf ? buf : "", len, diag);
    free(buf);
    return cfg;
}

void gh_config_free(gh_config *cfg)
{
    if (!cfg)
        return;
    gh_arena arena = cfg->arena;   /* cfg itself lives in it */
    gh_arena_free(&arena);
}

const gh_upstream_cfg *gh_config_upstream(const gh_config *cfg, gh_str name)
{
    for (size_t i = 0; cfg && i < cfg->nupstreams; i++)
        if (gh_str_eq(cfg->upstreams[i].name, name))
            return &cfg->upstreams[i];
    return NULL;
}
