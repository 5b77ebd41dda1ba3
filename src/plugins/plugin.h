/* plugin.h — the plugin interface (DESIGN "plugin chain", SPEC §5).
 *
 * A plugin is one row of the plugin table (config/plugin_list.h), whose
 * runtime is a gh_plugin_ops; ids are in SPEC §5's phase order, so a
 * route's chain is its configured plugins in id order. Each request step
 * returns NEXT (go on), DONE (the plugin answered, e.g. 401 or a CORS
 * preflight) or WAIT (an asynchronous step, resumed later with
 * gh_plugin_resume). Plugins see the exchange and the run, never a worker
 * or a target. */
#ifndef GH_PLUGINS_PLUGIN_H
#define GH_PLUGINS_PLUGIN_H
#include <stdbool.h>
#include <uv.h>
#include "config/config.h"
#include "core/diag.h"
#include "http/exchange.h"
#include "http/status.h"
#include "plugins/consumers.h"

enum gh_plugin_step { GH_PLUGIN_NEXT = 0, GH_PLUGIN_DONE, GH_PLUGIN_WAIT };

#define GH_MAX_CHALLENGES 4

/* The answer of a detached run of the route's target (gh_plugin_run.detach),
 * valid during the done call only. */
typedef struct gh_detached_answer {
    int status;                   /* 0: no response head came */
    const gh_header *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
    const char *error;            /* NULL, "response_too_large" (over max_body) or "aborted" */
    gh_http_env *env;             /* the worker's where it ran */
} gh_detached_answer;
typedef void (*gh_detached_done)(void *ctx, const gh_detached_answer *a);

typedef struct gh_plugin_run gh_plugin_run;
struct gh_plugin_run {
    gh_exchange *ex;
    const gh_plugin_set *chain;       /* the route's effective plugins */
    const gh_consumers *consumers;    /* the snapshot's consumer index */
    void *const *contexts;            /* this worker's plugin contexts, by conf->ctx_slot; NULL in dry runs */
    int next;                         /* id of the next plugin to run */
    uint32_t after;                   /* ids that ran and have an `after` hook */
    /* authentication (shared by the auth plugins of one chain) */
    bool auth_ran;                    /* an authentication plugin ran */
    bool authenticated;               /* a credential was found and accepted */
    const gh_consumer_cfg *consumer;  /* who, when the credential maps to a consumer */
    const char *challenges[GH_MAX_CHALLENGES];   /* WWW-Authenticate of authenticators that found nothing */
    size_t nchallenges;
    /* WAIT: the plugin's way to forget its pending work when the client leaves */
    void (*cancel)(gh_plugin_run *run);
    void *wait_ctx;
    /* gatehouse_plugin_duration_seconds: the worker's counters when metrics
     * are on (else NULL), and the clock at the current step's start */
    struct gh_metrics_worker *timing;
    uint64_t step_ns;
    /* The dispatcher's: run the route's target as a sub-request that belongs
     * to the worker, not to ex, so it runs to its end after the client left
     * (a collapsed cache fill shared by several clients). It sends the
     * request's fields as they stand, GET, no body; done runs once, on a
     * later turn of this worker's loop (status 0 and "aborted" when the
     * worker stops first). NULL where it cannot: dry runs, versioned
     * routes, targets other than an upstream. false: not started. */
    bool (*detach)(gh_plugin_run *run, size_t max_body, gh_detached_done done, void *ctx);
    /* the chain ran to its end: the dispatcher's continuation (the target) */
    void (*done)(gh_plugin_run *run);
    void *done_ctx;
};

typedef struct gh_plugin_build {
    const gh_config *cfg;
    const gh_consumers *consumers;
    gh_diag *diag;                    /* errors at the plugin's marks */
} gh_plugin_build;

typedef struct gh_plugin_ops {
    const char *name;
    /* Snapshot build: fill conf->rt (keys read from files, tables). NULL =
     * nothing to compile. false after reporting to b->diag. */
    bool (*compile)(gh_plugin_cfg *conf, const gh_plugin_build *b);
    void (*release)(gh_plugin_cfg *conf);
    int (*request)(gh_plugin_run *run, const gh_plugin_cfg *conf);
    /* One line for `routes`/`explain`, e.g. "header X-API-Key"; secrets
     * masked. Optional. */
    void (*describe)(const gh_config *cfg, const gh_plugin_cfg *conf, char *buf, size_t cap);
    /* Per-worker state (h2o's on_context_init), optional: made on the
     * worker's thread and loop when it adopts a snapshot with this
     * configuration, unless it already holds one for the same state_key
     * (the configuration did not change: kept across the reload); freed
     * when none of the worker's snapshots uses it any more, or with the
     * worker. The request step finds it as gh_plugin_context(run, conf). */
    void *(*context_new)(const gh_plugin_cfg *conf, uv_loop_t *loop);
    void (*context_free)(void *ctx);
    /* After the response, once per exchange whose chain ran this plugin's
     * request step (the worker's done path: status and bytes are final).
     * Optional; routes without such plugins pay nothing. */
    void (*after)(gh_plugin_run *run, const gh_plugin_cfg *conf, void *ctx);
} gh_plugin_ops;

extern const gh_plugin_ops *const gh_plugin_registry[GH_PLUGIN_COUNT];
extern const unsigned char gh_plugin_phase[GH_PLUGIN_COUNT];   /* enum gh_plugin_phase */

/* The plugin configurations of a snapshot that have per-worker contexts,
 * in ctx_slot order. */
typedef struct gh_plugin_slots {
    gh_plugin_cfg **confs;
    size_t n;
} gh_plugin_slots;

/* Compile every plugin configuration of cfg (global and per route) and the
 * consumer index, number the contexts into *slots; false after reporting
 * errors. Release undoes it. */
bool gh_plugins_compile(gh_config *cfg, gh_consumers **consumers, gh_plugin_slots *slots, gh_diag *diag);
void gh_plugins_release(gh_config *cfg, gh_consumers *consumers, gh_plugin_slots *slots);

/* ---- per-worker contexts (plugins/context.c), on the worker's thread ---- */
typedef struct gh_plugin_live gh_plugin_live;   /* a worker's live contexts */
/* The contexts of a snapshot's slots for this worker: kept ones (same
 * state_key) shared, others made. NULL when the snapshot has none. */
void **gh_plugin_contexts_adopt(gh_plugin_live **live, const gh_plugin_slots *slots, uv_loop_t *loop);
/* A snapshot of this worker is done: its contexts no longer used go. */
void gh_plugin_contexts_drop(gh_plugin_live **live, const gh_plugin_slots *slots, void **ctx);

static inline void *gh_plugin_context(const gh_plugin_run *run, const gh_plugin_cfg *conf)
{
    return run->contexts ? run->contexts[conf->ctx_slot] : NULL;
}

/* The worker's done path: the `after` hooks of the plugins that ran. */
void gh_plugin_after_response(gh_plugin_run *run);

/* Run the chain from its start; run->done is called when it passes. */
void gh_plugin_chain_start(gh_plugin_run *run);
/* After WAIT: the plugin's step ended. NEXT goes on with the chain. To
 * answer instead, call this with DONE first (it forgets the wait), then
 * answer: an answer may end the exchange and free the run. */
void gh_plugin_resume(gh_plugin_run *run, int step);

/* "ip_filter, key_auth(header X-API-Key), acl" for `routes`/`explain`. */
void gh_plugins_describe(const gh_config *cfg, const gh_plugin_set *chain, char *buf, size_t cap);

/* ---- helpers for plugins ---- */
/* 401 unauthorized with a WWW-Authenticate challenge, logging why without
 * the credential. */
int gh_plugin_unauthorized(gh_plugin_run *run, const char *challenge, const char *detail);
/* 403 forbidden. */
int gh_plugin_forbidden(gh_plugin_run *run, const char *detail);
/* The authenticator found and accepted a credential (consumer may be NULL
 * for an identity without a consumer, e.g. a JWT not mapped to one). */
void gh_plugin_authenticated(gh_plugin_run *run, const gh_consumer_cfg *consumer);
/* An authenticator found no credential of its kind: remember its challenge. */
void gh_plugin_no_credential(gh_plugin_run *run, const char *challenge);

#endif
