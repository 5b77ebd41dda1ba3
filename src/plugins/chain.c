/* chain.c — running a route's plugins in phase order (SPEC §5).
 *
 * The chain is the route's plugin set walked by id. A step may answer
 * (DONE), go on (NEXT) or wait (WAIT: the plugin calls gh_plugin_resume
 * later, and meanwhile run->cancel tells it when the client has gone).
 * Authentication is one phase shared by its plugins: each one that finds
 * no credential of its kind leaves its challenge; the first that finds one
 * decides; when the phase ends with none accepted, the answer is 401 with
 * every challenge. */
#include <stdio.h>
#include <string.h>
#include "core/log.h"
#include "http/status.h"
#include "observe/metrics.h"
#include "plugins/plugin.h"

_Static_assert(GH_PLUGIN_COUNT <= 32, "run->after is a 32-bit mask of plugin ids");

static bool is_auth(int id) { return id < GH_PLUGIN_COUNT && gh_plugin_phase[id] == GH_PHASE_AUTH; }

static void wait_abort(gh_exchange *ex);

/* Past the last authentication plugin with nothing accepted (the chain
 * ran every authenticator it has, in order, so "ran" = "configured"). */
static bool auth_failed(gh_plugin_run *run)
{
    if (!run->auth_ran || run->authenticated)
        return false;
    gh_header h[GH_MAX_CHALLENGES];
    size_t n = 0;
    for (size_t i = 0; i < run->nchallenges; i++)
        h[n++] = (gh_header){ "WWW-Authenticate", run->challenges[i], 16, (uint32_t)strlen(run->challenges[i]) };
    gh_problem(run->ex, 401, "unauthorized", "no credentials were given", h, n, NULL);
    return true;
}

/* The chain's plugins from run->next on, by the route's bit set of them. */
static void step(gh_plugin_run *run)
{
    uint32_t todo = run->next < GH_PLUGIN_COUNT ? run->chain->on >> run->next << run->next : 0;
    while (todo) {
        int id = __builtin_ctz(todo);
        todo &= todo - 1;
        run->next = id + 1;
        run->auth_ran |= is_auth(id);
        if (gh_plugin_registry[id]->after) {
            run->after |= 1u << id;
            run->ex->plugin_run = run;   /* the worker's done path calls the hooks */
        }
        struct gh_metrics_worker *timing = run->timing;   /* DONE may have ended the exchange (and run) */
        uint64_t t0 = run->step_ns;
        int r = gh_plugin_registry[id]->request(run, run->chain->p[id]);
        if (timing && r != GH_PLUGIN_WAIT) {
            uint64_t now = uv_hrtime();
            gh_metrics_plugin(timing, id, now - t0);
            if (r != GH_PLUGIN_DONE)
                run->step_ns = now;
        }
        if (r == GH_PLUGIN_DONE)
            return;
        if (r == GH_PLUGIN_WAIT) {
            run->ex->on_abort = wait_abort;
            run->ex->consumer = run;
            return;
        }
        if (is_auth(id) && !(todo && is_auth(__builtin_ctz(todo))) && auth_failed(run))
            return;
    }
    run->done(run);
}

void gh_plugin_chain_start(gh_plugin_run *run)
{
    run->next = 0;
    gh_exchange *ex = run->ex;
    /* one clock read per step boundary: the end of a step starts the next */
    run->timing = ex->env && ex->cfg && ex->cfg->admin && !ex->dry_run ? ex->env->metrics : NULL;
    if (run->timing)
        run->step_ns = uv_hrtime();
    step(run);
}

void gh_plugin_resume(gh_plugin_run *run, int result)
{
    run->ex->on_abort = NULL;
    run->ex->consumer = NULL;
    run->cancel = NULL;
    int id = run->next - 1;
    if (run->timing) {   /* a waiting step is timed until it resumes */
        uint64_t now = uv_hrtime();
        gh_metrics_plugin(run->timing, id, now - run->step_ns);
        run->step_ns = now;
    }
    if (result == GH_PLUGIN_DONE)
        return;
    uint32_t later = run->next < GH_PLUGIN_COUNT ? run->chain->on >> run->next << run->next : 0;
    if (is_auth(id) && !(later && is_auth(__builtin_ctz(later))) && auth_failed(run))
        return;
    step(run);
}

/* The client left while a plugin waited: it must forget the run. */
static void wait_abort(gh_exchange *ex)
{
    gh_plugin_run *run = ex->consumer;
    ex->consumer = NULL;
    if (run && run->cancel)
        run->cancel(run);
}

void gh_plugin_after_response(gh_plugin_run *run)
{
    for (uint32_t m = run->after; m; m &= m - 1) {
        int id = __builtin_ctz(m);
        const gh_plugin_cfg *conf = run->chain->p[id];
        gh_plugin_registry[id]->after(run, conf, gh_plugin_context(run, conf));
    }
}

/* ------------------------------------------------------------- helpers */

void gh_plugin_authenticated(gh_plugin_run *run, const gh_consumer_cfg *consumer)
{
    run->authenticated = true;
    run->consumer = consumer;
    if (consumer) {
        run->ex->log.consumer = consumer->name;
        run->ex->consumer_groups = consumer->groups_text;
    }
}

void gh_plugin_no_credential(gh_plugin_run *run, const char *challenge)
{
    if (run->nchallenges < GH_MAX_CHALLENGES)
        run->challenges[run->nchallenges++] = challenge;
}

int gh_plugin_unauthorized(gh_plugin_run *run, const char *challenge, const char *detail)
{
    gh_exchange *ex = run->ex;
    gh_log_info("request %s from %s: %s (route %.*s)", ex->request_id, ex->client, detail,
                (int)ex->log.route.len, ex->log.route.p);
    gh_header h = { "WWW-Authenticate", challenge, 16, (uint32_t)strlen(challenge) };
    gh_problem(ex, 401, "unauthorized", detail, &h, 1, NULL);
    return GH_PLUGIN_DONE;
}

int gh_plugin_forbidden(gh_plugin_run *run, const char *detail)
{
    gh_problem(run->ex, 403, "forbidden", detail, NULL, 0, NULL);
    return GH_PLUGIN_DONE;
}

void gh_plugins_describe(const gh_config *cfg, const gh_plugin_set *chain, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int id = 0; id < GH_PLUGIN_COUNT && n + 1 < cap; id++) {
        const gh_plugin_cfg *p = chain->p[id];
        if (!p || !p->enabled)
            continue;
        char detail[256] = "";
        if (gh_plugin_registry[id]->describe)
            gh_plugin_registry[id]->describe(cfg, p, detail, sizeof(detail));
        int w = snprintf(buf + n, cap - n, "%s%s%s%s%s", n ? ", " : "", gh_plugin_registry[id]->name,
                         detail[0] ? "(" : "", detail, detail[0] ? ")" : "");
        if (w < 0)
            break;
        n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
    }
    if (n == 0)
        snprintf(buf, cap, "(none)");
}
