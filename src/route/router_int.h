/* router_int.h — types shared by router.c (build, match) and route_check.c
 * (configuration-time checks): the compiled route, its template segments,
 * host groups and the hash table. Private to src/route/; the public API is
 * route.h. */
#ifndef GH_ROUTE_ROUTER_INT_H
#define GH_ROUTE_ROUTER_INT_H
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stdint.h>
#include "route/route.h"

enum { HOST_EXACT, HOST_WILD, HOST_ANY };
enum { PATH_EXACT, PATH_TPL, PATH_PREFIX, PATH_REGEX };
enum { SEG_LIT, SEG_PARAM, SEG_REST };
/* Hash keys; K_IEXACT and K_IPREFIX hold case-insensitive routes' paths
 * (lower-cased), compared ignoring ASCII case like hosts. */
enum { K_HOST, K_WILD, K_EXACT, K_PREFIX, K_IEXACT, K_IPREFIX };

typedef struct seg { gh_str text; int kind; } seg;
typedef struct re_name { gh_str name; uint32_t group; } re_name;

typedef struct rt {
    const gh_route_cfg *cfg;
    size_t pos;                   /* position in the file: regex order, stable sort */
    int host_kind, path_kind;
    gh_str host;                  /* exact: lower-case; wildcard: ".example.com" */
    gh_str path;                  /* exact path, prefix, template (normalized) or regex */
    seg *segs;                    /* templates */
    size_t nseg, nlit, lead_len;  /* lead_len: bytes of the leading literal segments */
    bool rest;
    pcre2_code *re;
    re_name *names;
    size_t nnames;
    uint32_t mbits;               /* known methods, HEAD implied by GET; 0 and no ext = any */
    gh_str *ext;                  /* extension methods */
    size_t next;
    bool any_method, has_cond;
    bool icase;                   /* match.case_insensitive: the path ignores ASCII case */
    size_t ncond, mcount;
    uint32_t tnext;               /* template index: next route (index + 1) in its node's list */
} rt;

typedef struct group {
    size_t tpl_b, tpl_e, re_b, re_e;
    bool exact, prefix, iexact, iprefix;
    uint32_t troot;               /* template tree root (tpl_index.c); 0: none */
} group;

/* A node of a group's template tree: one per distinct run of leading
 * segments; literal children are edges in a hash table. Lists hold route
 * indexes + 1 chained through rt.tnext, ascending (precedence order). */
typedef struct tnode {
    uint32_t param;               /* child for a {name} segment; 0: none */
    uint32_t end, rest;           /* routes ending here / with {rest*} here */
} tnode;

typedef struct tedge {
    gh_str key;                   /* key.p == NULL: free slot */
    uint32_t hash, parent, child;
    bool icase;
} tedge;

typedef struct hent {
    gh_str key;                   /* key.p == NULL: free slot */
    uint32_t hash, kind, group, begin, end;
} hent;

struct gh_router {
    gh_arena arena;
    rt *routes;
    size_t n;
    group *groups;
    size_t ngroups;
    long any_group;               /* -1: no route without host */
    bool has_wild;
    hent *ht;
    size_t htmask;
    uint32_t max_pairs;           /* regex ovector pairs needed */
    tnode *tnodes;                /* template trees of all groups; [0] unused */
    size_t ntnodes;
    tedge *tedges;
    size_t temask;
    bool has_itpl;                /* some template ignores case */
};

#define RNAME(c) (int)(c)->name.len, (c)->name.p

/* router.c */
/* The path key: routes equal in it (and in host) are tie candidates. */
int gh_rt_cmp_path_key(const rt *a, const rt *b);
/* Is m one of t's extension methods (compared exactly)? */
bool gh_rt_ext_has(const rt *t, gh_str m);

/* Linear matcher over the precedence order: the test oracle the indexed
 * gh_router_match is checked against (tests/unit/test_route_index.c). */
int gh_router_match_linear(const gh_router *r, const gh_route_request *req, gh_route_match *out);

/* tpl_index.c */
bool gh_tpl_index_build(gh_router *r);
/* The template routes of group g whose segment shape can match path, as
 * ascending route indexes in out; (size_t)-1 when more than cap (the
 * caller then scans the group's templates). */
#define GH_TPL_CAND 64
size_t gh_tpl_candidates(const gh_router *r, const group *g, gh_str path, uint32_t *out, size_t cap);

/* route_check.c */
/* Ties (errors) and shadows (warnings) among routes [b, e) of one host group. */
bool gh_rt_analyze_group(const gh_router *r, size_t b, size_t e, gh_diag *d);
/* rewrite.path may only use names the match captures (rewrite.c fills them). */
void gh_rt_check_rewrite(const rt *t, gh_diag *d);

#endif
