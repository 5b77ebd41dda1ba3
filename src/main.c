/* main.c — the command line (SPEC §1): run, check, routes, explain, diff,
 * status, config, version. Exit codes: 0 ok, 1 configuration error, 2 usage, 3 runtime. */
#include "version.h"
#include <jansson.h>
#include <nghttp2/nghttp2.h>
#include <openssl/opensslv.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include <zlib.h>
#include "admin/status_cli.h"
#include "config/config.h"
#include "config/demo.h"
#include "config/units.h"
#include "core/log.h"
#include "route/route.h"
#include "server/config_cli.h"
#include "server/config_diff.h"
#include "server/dry_run.h"
#include "server/server.h"
#include "plugins/plugin.h"
#include "proxy/describe.h"
#include "server/snapshot.h"
#include "http/status.h"
#include "targets/versions.h"

/* One row per command: the usage line and what `CMD --help` adds. */
typedef struct command_help {
    const char *name, *synopsis, *summary, *details;
} command_help;

static const command_help commands[] = {
    { "run", "run [-c FILE] [--workers N] [--log-level LEVEL]", "serve (default: ./gatehouse.yaml, else the demo)",
      "  -c, --config FILE     the configuration (default ./gatehouse.yaml if present, else the embedded demo)\n"
      "  --workers N           worker threads, 1 to 256 (overrides the configuration)\n"
      "  --log-level LEVEL     error, warn, info or debug\n"
      "Signals: SIGHUP reloads, SIGTERM/SIGINT drain and exit, SIGUSR1 reopens log files.\n" },
    { "check", "check -c FILE", "validate a configuration",
      "Prints every error as FILE:LINE:COL: message and exits 1, or says the file is valid and exits 0.\n" },
    { "routes", "routes -c FILE", "print the route table in precedence order",
      "One line per route (name, match, target), then its plugins or its versions.\n" },
    { "explain", "explain -c FILE METHOD URL [-H 'Name: value']...", "which route a request would take, and why",
      "URL is absolute (http://api.example.com/users?x=1) or a path, with the host from -H 'Host: ...'.\n"
      "The request runs through the same dispatcher as a real one (routing, version and canary,\n"
      "plugins) without sending anything: prints the route, version, plugins and target, the\n"
      "forwarded path and the upstream, or the answer the gateway would give instead (401, 404...).\n" },
    { "diff", "diff -c OLD NEW", "what applying NEW instead of OLD changes",
      "Routes added (+), removed (-) and changed (~, with what changed: match, target, rewrite,\n"
      "plugins, versions), then sample requests derived from every route's match (its path,\n"
      "prefix and prefix/x, a filled template; host, methods, header and query conditions, version\n"
      "selectors), run through the dispatcher against both without sending anything; those that\n"
      "would now reach another route, version, upstream or answer are listed.\n"
      "Exit codes, as diff(1): 0 no difference, 1 differences, 2 trouble (an invalid file, usage).\n" },
    { "status", "status -a ADDR [--token T] [--interval 1s]", "a running gatehouse's summary, from its admin API",
      "  -a, --admin ADDR      the admin listener, HOST:PORT\n"
      "  --token T             the admin token (default: $GATEHOUSE_ADMIN_TOKEN)\n"
      "  --interval D          time between the two samples rates are computed from (default 1s)\n"
      "Prints version, uptime, configuration and last reload, per-route req/s, error % and\n"
      "p50/p95/p99, upstream targets, deprecated versions with their callers, recent errors.\n"
      "Exit codes: 0 ok, 1 token refused (401/403), 2 usage, 3 admin API unreachable.\n" },
    { "config", "config --default | push -c BOOTSTRAP FILE [--dry-run] | pull -c BOOTSTRAP",
      "the demo configuration; a fleet's document in etcd",
      "  config --default              print the embedded demo configuration\n"
      "  config push -c BOOTSTRAP FILE validate FILE as the fleet will load it (under BOOTSTRAP's\n"
      "                                listen, admin and config_source) and store it in etcd, only if\n"
      "                                nobody changed the stored document since it was read\n"
      "    --dry-run                   validate and print the diff; write nothing\n"
      "    --base-revision N           store only if the stored document is still at revision N\n"
      "  config pull -c BOOTSTRAP      print the stored document (its revision on stderr)\n"
      "push prints the same diff as 'gatehouse diff' (stored document -> FILE) before writing.\n"
      "Exit codes: 0 ok, 1 invalid document or push refused, 3 etcd unreachable; with --dry-run,\n"
      "as diff's: 0 nothing would change, 1 something would, 2 invalid or refused, 3 etcd unreachable.\n" },
    { "version", "version", "versions of gatehouse and its libraries", "" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const command_help *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: gatehouse <command> [options]\n\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-50s %s\n", commands[i].synopsis, commands[i].summary);
    fprintf(out, "\n'gatehouse COMMAND --help' says more about one command.\n");
}

static void command_usage(FILE *out, const command_help *c, bool details)
{
    fprintf(out, "usage: gatehouse %s\n  %s\n", c->synopsis, c->summary);
    if (details && c->details[0])
        fprintf(out, "\n%s", c->details);
}

static const command_help *current;   /* the command being run, for usage errors */

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "gatehouse: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n");
    if (current)
        command_usage(stderr, current, false);
    else
        usage(stderr);
    return 2;
}

/* "1 route", "2 routes". */
static const char *counted(char *buf, size_t cap, size_t n, const char *word)
{
    snprintf(buf, cap, "%zu %s%s", n, word, n == 1 ? "" : "s");
    return buf;
}

/* Loads FILE into a compiled snapshot, printing diagnostics. */
static gh_snapshot *load(const char *file, gh_diag *d)
{
    gh_diag_init(d, file);
    gh_snapshot *s = gh_snapshot_load(file, 1, d);
    gh_diag_print(d, stderr);
    return s;
}

static int cmd_check(const char *file)
{
    gh_diag d;
    gh_snapshot *s = load(file, &d);
    int rc = s ? 0 : 1;
    char routes[32], upstreams[32];
    if (s)
        printf("%s: configuration ok (%s, %s)%s\n", file, counted(routes, sizeof(routes), s->cfg->nroutes, "route"),
               counted(upstreams, sizeof(upstreams), s->cfg->nupstreams, "upstream"),
               d.warnings ? ", with warnings" : "");
    gh_diag_free(&d);
    gh_snapshot_unref(s);
    return rc;
}

/* Printing configuration values goes through SHOW: ${ENV} values are "***". */
#define SHOW(cfg, s) gh_config_show((cfg), (s)).p


static void print_date(const char *what, int64_t t)
{
    char d[96];
    gh_date_describe(d, sizeof(d), what, t);
    fputs(d, stdout);
}

/* One line per version: its target, lifecycle, plugins. */
static void print_version(const gh_config *cfg, const gh_version_cfg *v, const char *indent)
{
    char line[1024], plugins[1024];
    gh_plugins_describe(cfg, &v->route.chain, plugins, sizeof(plugins));
    printf("%s%s\n%s  plugins: %s\n", indent, gh_version_describe(cfg, v, line, sizeof(line)), indent, plugins);
}

static int cmd_routes(const char *file)
{
    gh_diag d;
    gh_snapshot *s = load(file, &d);
    gh_diag_free(&d);
    if (!s)
        return 1;
    size_t n = gh_router_count(s->router);
    printf("%-4s %-24s %-56s %s\n", "#", "route", "match", "target");
    for (size_t i = 0; i < n; i++) {
        const gh_route_cfg *r = gh_router_at(s->router, i);
        char match[512], target[512];
        gh_router_describe(s->cfg, r, match, sizeof(match));
        printf("%-4zu %-24s %-56s %s\n", i + 1, SHOW(s->cfg, r->name), match,
               gh_route_target_describe(s->cfg, r, target, sizeof(target)));
        char plugins[1024];
        if (r->versions) {
            for (size_t k = 0; k < r->versions->n; k++)
                print_version(s->cfg, &r->versions->list[k], "     ");
            continue;
        }
        gh_plugins_describe(s->cfg, &r->chain, plugins, sizeof(plugins));
        printf("     plugins: %s\n", plugins);
        if (r->target == GH_TARGET_UPSTREAM)
            printf("     upstream: %s\n", gh_upstream_describe(s->cfg, r->upstream, plugins, sizeof(plugins)));
    }
    gh_snapshot_unref(s);
    return 0;
}

static const char *sticky_text(const gh_versions_cfg *vs, char *buf, size_t cap)
{
    static const char *const kind[] = { "at random", "sticky by header", "sticky by cookie", "sticky by consumer",
                                        "sticky by client address" };
    snprintf(buf, cap, "%s%s%s", kind[vs->canary.sticky], vs->canary.sticky_name.len ? " " : "",
             vs->canary.sticky_name.len ? vs->canary.sticky_name.p : "");
    return buf;
}

/* The version the dispatcher picked and why, and what the canary did. */
static void print_version_pick(const gh_dry_run *d)
{
    static const char *const source[] = { "default", "path", "header", "query", "accept" };
    const gh_versions_cfg *vs = d->m.route->versions;
    const gh_version_pick *p = &d->pick;
    char vt[512], st[128];
    printf("versions:  %s\n", gh_route_target_describe(d->ex->cfg, d->m.route, vt, sizeof(vt)));
    if (!p->v)
        return;   /* unknown or required: the result says which */
    printf("version:   %s (", p->v->name.p);
    if (p->by_canary)
        printf("canary; asked for %s by %s)", p->asked->name.p, source[p->source]);
    else
        printf("%s)", source[p->source]);
    print_date("deprecated", p->v->deprecated);
    print_date("sunset", p->v->sunset);
    if (p->v->preview)   /* otherwise 404 no_route, as if the version did not exist */
        printf(", preview: needs %s %s", p->v->preview_group.len ? "group" : "header",
               p->v->preview_group.len ? p->v->preview_group.p : p->v->preview_header.p);
    printf("\n");
    if (p->canary_tried) {
        printf("canary:    %u.%02u%% of version %s go to version %s, %s: ", vs->canary.per_10000 / 100,
               vs->canary.per_10000 % 100, vs->canary.of->name.p, vs->canary.to->name.p,
               sticky_text(vs, st, sizeof(st)));
        if (p->decide_later && !d->reached && d->status)
            printf("not decided (the plugins answered first)\n");
        else if (p->by_canary)
            printf("this request goes to version %s\n", p->v->name.p);
        else
            printf("this request stays on version %s\n", p->v->name.p);
    }
}

/* The answer the gateway gave instead of reaching the target. */
static void print_answer(const gh_dry_run *d)
{
    json_t *j = json_loads(d->body, 0, NULL);
    const char *code = j ? json_string_value(json_object_get(j, "code")) : NULL;
    const char *detail = j ? json_string_value(json_object_get(j, "detail")) : NULL;
    printf("result:    %d %s%s%s", d->status, code ? code : gh_status_reason(d->status), detail ? ": " : "",
           detail ? detail : "");
    if (d->allow[0] && !detail)
        printf(" (Allow: %s)", d->allow);
    if (d->challenge[0])
        printf(" (WWW-Authenticate: %s)", d->challenge);
    printf("\n");
    json_decref(j);
}

/* explain: the request runs through the dispatcher in its dry-run mode;
 * this prints what it recorded. No network traffic. */
static int cmd_explain(const char *file, const char *method, const char *url, char **hdrs, int nh)
{
    gh_header headers[64];
    size_t nheaders = 0;
    for (int i = 0; i < nh && nheaders < 64; i++) {
        const char *colon = strchr(hdrs[i], ':');
        if (!colon || colon == hdrs[i])
            return usage_error("header '%s' must be 'Name: value'", hdrs[i]);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        headers[nheaders++] = (gh_header){ hdrs[i], v, (uint32_t)(colon - hdrs[i]), (uint32_t)strlen(v) };
    }
    gh_diag diag;
    gh_snapshot *s = load(file, &diag);
    gh_diag_free(&diag);
    if (!s)
        return 1;
    gh_dry_request rq = { .method = method, .url = url, .headers = headers, .nheaders = nheaders };
    gh_dry_run d;
    const char *err = NULL;
    if (!gh_dry_run_request(s, &rq, &d, &err)) {
        gh_dry_run_free(&d);
        gh_snapshot_unref(s);
        return usage_error("explain: %s", err);
    }
    const gh_config *cfg = s->cfg;
    printf("request:   %s %s (host %.*s", method, url, d.ex->host.len ? (int)d.ex->host.len : 1,
           d.ex->host.len ? d.ex->host.p : "-");
    if (d.path.p)
        printf(", normalized path %.*s", (int)d.path.len, d.path.p);
    printf(")\n");
    if (d.routed) {
        char desc[512];
        gh_router_describe(cfg, d.m.route, desc, sizeof(desc));
        printf("route:     %s (%s)\n", SHOW(cfg, d.m.route->name), desc);
        for (size_t i = 0; i < d.m.nparams; i++)
            printf("param:     %.*s = %.*s\n", (int)d.m.params[i].name.len, d.m.params[i].name.p,
                   (int)d.m.params[i].value.len, d.m.params[i].value.p);
        if (d.versioned)
            print_version_pick(&d);
    }
    if (d.chain_of) {
        char plugins[1024];
        gh_plugins_describe(cfg, &d.chain_of->chain, plugins, sizeof(plugins));
        printf("plugins:   %s\n", plugins);
    }
    if (d.ex->log.consumer.len)
        printf("consumer:  %.*s\n", (int)d.ex->log.consumer.len, d.ex->log.consumer.p);
    if (!d.reached) {
        print_answer(&d);
    } else {
        char target[512];
        printf("target:    %s\n", gh_route_target_describe(cfg, d.target, target, sizeof(target)));
        if (d.forwarded.p)
            printf("forwarded: %.*s\n", (int)d.forwarded.len, d.forwarded.p);
        for (size_t i = 0; i < d.ncalls; i++) {
            const gh_backend_cfg *b = &d.target->aggregate->backends[i];
            printf("calls:     %s: GET %s %.*s (timeout %llums%s)\n", b->key.p,
                   b->route.upstream ? SHOW(cfg, b->route.upstream_name) : "(routed)",
                   (int)d.calls[i].len, d.calls[i].p ? d.calls[i].p : "", (unsigned long long)b->route.timeout_ms,
                   b->optional ? ", optional" : "");
        }
        if (d.target->target == GH_TARGET_UPSTREAM) {
            char up[1024];
            printf("upstream:  %s (%s)\n", SHOW(cfg, d.target->upstream->name),
                   gh_upstream_describe(cfg, d.target->upstream, up, sizeof(up)));
        }
    }
    gh_dry_run_free(&d);
    gh_snapshot_unref(s);
    return 0;
}

/* diff: exit codes as diff(1), so scripts can tell "changes" from "trouble". */
static int cmd_diff(const char *old_file, const char *new_file)
{
    gh_diag d;
    gh_snapshot *a = load(old_file, &d);
    gh_diag_free(&d);
    gh_snapshot *b = a ? load(new_file, &d) : NULL;
    if (a)
        gh_diag_free(&d);
    int rc = a && b ? gh_config_diff(a, b, stdout) : -1;
    gh_snapshot_unref(a);
    gh_snapshot_unref(b);
    gh_router_thread_done();
    return rc < 0 ? 2 : rc;
}

static int cmd_version(void)
{
    printf("gatehouse %s\n", GH_VERSION);
    printf("  libuv %s, %s, nghttp2 %s, jansson %s, zlib %s, pcre2 %d.%d\n", uv_version_string(),
           OPENSSL_VERSION_TEXT, nghttp2_version(0)->version_str, JANSSON_VERSION, zlibVersion(),
           PCRE2_MAJOR, PCRE2_MINOR);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        const command_help *c = argc > 2 && strcmp(cmd, "help") == 0 ? find_command(argv[2]) : NULL;
        if (argc > 2 && strcmp(cmd, "help") == 0 && !c)
            return usage_error("unknown command '%s'", argv[2]);
        if (c)
            command_usage(stdout, c, true);
        else
            usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0)
        return cmd_version();
    current = find_command(cmd);
    if (!current)
        return usage_error("unknown command '%s'", cmd);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            command_usage(stdout, current, true);
            return 0;
        }
    }
    if (strcmp(cmd, "version") == 0)
        return argc > 2 ? usage_error("version takes no arguments ('%s')", argv[2]) : cmd_version();

    const char *file = NULL;
    gh_run_options run = { .config = NULL, .workers = 0, .log_level = -1 };
    bool dflt = false, dry = false;
    int64_t base_rev = -1;
    const char *admin_addr = NULL, *token = getenv("GATEHOUSE_ADMIN_TOKEN");
    uint64_t interval_ms = 1000;
    char *pos[8];
    int npos = 0;
    char *hdrs[64];
    int nh = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && more)
            file = argv[++i];
        else if (strcmp(a, "--workers") == 0 && more) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 256)
                return usage_error("--workers takes a number from 1 to 256, not '%s'", argv[i]);
            run.workers = (int)n;
        } else if (strcmp(a, "--log-level") == 0 && more) {
            run.log_level = gh_log_level_parse(argv[++i]);
            if (run.log_level < 0)
                return usage_error("--log-level takes error, warn, info or debug, not '%s'", argv[i]);
        } else if (strcmp(a, "-H") == 0 && more && nh < 64)
            hdrs[nh++] = argv[++i];
        else if ((strcmp(a, "-a") == 0 || strcmp(a, "--admin") == 0) && more)
            admin_addr = argv[++i];
        else if (strcmp(a, "--token") == 0 && more)
            token = argv[++i];
        else if (strcmp(a, "--interval") == 0 && more) {
            if (!gh_parse_duration_ms(gh_str_c(argv[++i]), &interval_ms) || interval_ms == 0 ||
                interval_ms > 3600000)
                return usage_error("--interval takes a duration up to 1h (" GH_DURATION_HINT "), not '%s'", argv[i]);
        } else if (strcmp(a, "--default") == 0)
            dflt = true;
        else if (strcmp(a, "--dry-run") == 0)
            dry = true;
        else if (strcmp(a, "--base-revision") == 0 && more) {
            char *end;
            long long n = strtoll(argv[++i], &end, 10);
            if (*end || n < 0)
                return usage_error("--base-revision takes a revision number, not '%s'", argv[i]);
            base_rev = n;
        }
        else if (a[0] == '-' && a[1])
            return usage_error("unknown option '%s'", a);
        else if (npos < 8)
            pos[npos++] = argv[i];
        else
            return usage_error("too many arguments at '%s'", a);
    }

    if (strcmp(cmd, "run") == 0) {
        if (npos)
            return usage_error("run takes no arguments ('%s')", pos[0]);
        if (!file) {
            FILE *f = fopen("gatehouse.yaml", "r");
            if (f) {
                fclose(f);
                file = "gatehouse.yaml";
            }
        }
        run.config = file;
        return gh_server_run(&run);
    }
    if (strcmp(cmd, "config") == 0) {
        if (dflt) {   /* what `run` would serve here, overrides included */
            gh_diag d;
            gh_diag_init(&d, "<demo>");
            char *yaml = gh_demo_yaml(&d);
            gh_diag_print(&d, stderr);
            gh_diag_free(&d);
            if (yaml)
                fputs(yaml, stdout);
            free(yaml);
            return yaml ? 0 : 1;
        }
        if (npos >= 1 && strcmp(pos[0], "push") == 0) {
            if (!file || npos != 2)
                return usage_error("config push needs -c BOOTSTRAP and one FILE%s", "");
            return gh_config_push(file, pos[1], dry, base_rev);
        }
        if (npos >= 1 && strcmp(pos[0], "pull") == 0) {
            if (!file || npos != 1)
                return usage_error("config pull takes -c BOOTSTRAP and nothing else%s", "");
            return gh_config_pull(file);
        }
        return usage_error("config: use 'config --default', 'config push' or 'config pull'%s", "");
    }
    if (strcmp(cmd, "status") != 0 && (admin_addr || interval_ms != 1000))
        return usage_error("-a and --interval belong to 'status'%s", "");
    if (strcmp(cmd, "status") == 0) {
        if (npos)
            return usage_error("status takes no arguments ('%s')", pos[0]);
        if (!admin_addr)
            return usage_error("status needs -a ADDR (the admin listener, HOST:PORT)%s", "");
        return gh_status_cli(admin_addr, token, interval_ms);
    }
    if (!file)
        return usage_error("%s needs -c FILE", cmd);
    if (strcmp(cmd, "check") == 0)
        return npos ? usage_error("check takes no arguments ('%s')", pos[0]) : cmd_check(file);
    if (strcmp(cmd, "routes") == 0)
        return npos ? usage_error("routes takes no arguments ('%s')", pos[0]) : cmd_routes(file);
    if (strcmp(cmd, "diff") == 0) {
        if (npos != 1)
            return usage_error("diff needs -c OLD and NEW%s", "");
        return cmd_diff(file, pos[0]);
    }
    if (strcmp(cmd, "explain") == 0) {
        if (npos != 2)
            return usage_error("explain needs METHOD and URL%s", "");
        return cmd_explain(file, pos[0], pos[1], hdrs, nh);
    }
    return usage_error("unknown command '%s'", cmd);
}
