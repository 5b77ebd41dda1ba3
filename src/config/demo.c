/* demo.c — the configuration served by `gatehouse run` without a file and
 * printed by `gatehouse config --default`, and its start-up banner. It
 * needs no other process and points nowhere else: every route, and every
 * link it gives, is answered by the gateway itself. */
#include "config/demo.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "core/text.h"

/* A fixed key, not one drawn per run: the demo protects nothing (its routes
 * answer from the gateway itself), and a fixed key keeps the printed
 * configuration, the README and the banner the same from run to run. */
#define DEMO_KEY "demo-key-12345"
#define DEMO_LISTEN "0.0.0.0:8080"
#define DEMO_ADMIN "127.0.0.1:9901"

/* @LISTEN@, @ADMIN@ and @EXAMPLES@ are filled in by gh_demo_yaml. This is
 * the first YAML a user reads: its comments teach the format. */
static const char demo_template[] =
    "# gatehouse demo: what `gatehouse run` serves when there is no configuration\n"
    "# file. Save it (gatehouse config --default > gatehouse.yaml), edit it, check\n"
    "# it (gatehouse check -c gatehouse.yaml), run it (gatehouse run -c gatehouse.yaml).\n"
    "# Every answer here comes from the gateway itself: no upstream to start.\n"
    "\n"
    "listen:                        # where clients connect: one or more addresses\n"
    "  - address: @LISTEN@\n"
    "\n"
    "admin:                         # admin API (/api/...) and the live dashboard (/)\n"
    "  address: @ADMIN@   # loopback needs no token; any other address needs admin.token\n"
    "\n"
    "log:\n"
    "  level: info                  # error | warn | info | debug\n"
    "  access: stdout               # one JSON line per request (off, or a file path)\n"
    "\n"
    "limits:\n"
    "  max_connections: 4096        # a demo: fits any open-files limit\n"
    "\n"
    "consumers:                     # who may call: a name, groups, credentials\n"
    "  - name: demo\n"
    "    groups: [demo]\n"
    "    api_keys: [ \"" DEMO_KEY "\" ]   # public demo key; real ones come from ${ENV}\n"
    "\n"
    "# Routes: the most specific match wins. Each has one target: upstream (a\n"
    "# backend service), respond (a fixed answer), echo (the request as JSON) or\n"
    "# redirect; and optional plugins (authentication, limits...).\n"
    "routes:\n"
    "  - name: index\n"
    "    match: { path: / }           # path: exactly this path; prefix: it and below\n"
    "    respond:\n"
    "      status: 200\n"
    "      headers: { Content-Type: application/json }\n"
    "      body: |\n"
    "        {\"gatehouse\": \"demo\", \"routes\": [\n"
    "          {\"path\": \"/echo\", \"does\": \"describes your request as JSON\"},\n"
    "          {\"path\": \"/hello\", \"does\": \"a fixed answer\"},\n"
    "          {\"path\": \"/docs\", \"does\": \"how to try each route\"},\n"
    "          {\"path\": \"/private\", \"does\": \"needs X-API-Key: " DEMO_KEY "\"},\n"
    "          {\"path\": \"/greeting\", \"does\": \"a versioned API: /v1/greeting is deprecated\"},\n"
    "          {\"path\": \"/limited\", \"does\": \"5 requests per 10 seconds, then 429\"},\n"
    "          {\"path\": \"/home\", \"does\": \"three routes in one answer (aggregate)\"}\n"
    "        ]}\n"
    "\n"
    "  - name: echo\n"
    "    match: { prefix: /echo }\n"
    "    echo: {}                     # answers with the request as it would be forwarded\n"
    "\n"
    "  - name: hello\n"
    "    match: { path: /hello }\n"
    "    respond:\n"
    "      status: 200\n"
    "      headers: { Content-Type: text/plain }\n"
    "      body: \"hello from gatehouse\\n\"\n"
    "\n"
    "  - name: private\n"
    "    match: { prefix: /private }\n"
    "    echo: {}\n"
    "    plugins:                     # run in order before the target\n"
    "      key_auth: {}               # X-API-Key must name a consumer, else 401\n"
    "      acl: { allow: [demo] }     # and the consumer must be in group demo, else 403\n"
    "\n"
    "  - name: greeting\n"
    "    match: { prefix: /greeting }\n"
    "    versions:                    # one route, several API versions\n"
    "      from: [path, header:Api-Version, query:version]   # /v1/greeting, Api-Version: 1, ?version=1\n"
    "      default: \"2\"               # when the request names none\n"
    "      list:\n"
    "        \"1\":\n"
    "          respond: { status: 200, headers: { Content-Type: text/plain }, body: \"hello (v1)\\n\" }\n"
    "          deprecated: 2026-06-01   # from then on: Deprecation and Link headers\n"
    "          sunset: 2099-12-31       # then 410; far ahead so the demo keeps working\n"
    "          docs: /docs              # Link: </docs>; rel=\"deprecation\"\n"
    "        \"2\":\n"
    "          respond: { status: 200, headers: { Content-Type: application/json }, body: \"{\\\"greeting\\\": \\\"hello\\\", \\\"version\\\": 2}\\n\" }\n"
    "\n"
    "  - name: limited\n"
    "    match: { path: /limited }\n"
    "    respond: { status: 200, headers: { Content-Type: text/plain }, body: \"within the limit\\n\" }\n"
    "    plugins:\n"
    "      rate_limit: { limit: 5, window: 10s, key: ip }   # RateLimit-* headers; the 6th gets 429\n"
    "\n"
    "  - name: home\n"
    "    match: { path: /home }\n"
    "    aggregate:                   # one call, several answers merged into one JSON object\n"
    "      timeout: 1s                # the whole answer comes by then\n"
    "      backends:                  # in parallel; with upstream: NAME they call a service\n"
    "        - { key: greeting, path: /greeting }                         # here: the gateway's own routes\n"
    "        - { key: request, path: /echo/home, select: [method, path] }  # select: keep these fields\n"
    "        - { key: account, path: /private/me, optional: true, select: [consumer] }   # needs the key:\n"
    "                                 # without it null, and the header Gatehouse-Partial: account\n"
    "\n"
    "  - name: docs\n"
    "    match: { path: /docs }\n"
    "    respond:\n"
    "      status: 200\n"
    "      headers: { Content-Type: text/plain; charset=utf-8 }\n"
    "      body: |\n"
    "        gatehouse demo: what each route does and how to try it\n"
    "\n"
    "@EXAMPLES@"
    "\n"
    "        The configuration behind this demo: gatehouse config --default\n"
    "        Write your own: gatehouse config --default > gatehouse.yaml, edit it,\n"
    "        then gatehouse check -c gatehouse.yaml and gatehouse run -c gatehouse.yaml\n";

/* What to try, in the banner's order (the dashboard first). One table for
 * the banner and /docs, so the two cannot disagree. */
typedef struct example {
    const char *label;   /* the banner's left column */
    bool admin;          /* on the admin address, else the public one */
    const char *opts;    /* curl options; NULL: a page for the browser */
    const char *path;
    const char *what;    /* /docs: what to look for */
} example;

static const example examples[] = {
    { "dashboard", true, NULL, "/", "the live dashboard: open it in a browser" },
    { "fixed answer", false, "-i", "/hello", "a fixed answer (respond)" },
    { "echo", false, "-i", "/echo/x?y=1", "your request as JSON, as it would be forwarded (echo)" },
    { "401 no key", false, "-i", "/private", "needs an API key (key_auth)" },
    { "200 with key", false, "-i -H 'X-API-Key: " DEMO_KEY "'", "/private", "the consumer 'demo' (key_auth + acl)" },
    { "deprecated v1", false, "-i", "/v1/greeting", "version 1 by path: Deprecation, Sunset and Link headers" },
    { "current v2", false, "-i", "/greeting", "a versioned API: version 2 by default" },
    { "limit 5 per 10s", false, "-i", "/limited", "5 requests per 10 s (RateLimit-* headers), then 429" },
    { "aggregate", false, "-i", "/home", "three routes in one JSON answer; with the key, 'account' is filled too" },
    { "admin API", true, "-i", "/api/status", "the gateway's status as JSON (loopback only)" },
    { "every route", false, "-i", "/docs", "this page" },
};
#define NEXAMPLES (sizeof(examples) / sizeof(examples[0]))

/* Where a client reaches ADDRESS: a wildcard listens on loopback too. */
static void reach(const char *address, char *out, size_t cap)
{
    if (strncmp(address, "0.0.0.0:", 8) == 0)
        snprintf(out, cap, "127.0.0.1:%s", address + 8);
    else if (strncmp(address, "[::]:", 5) == 0)
        snprintf(out, cap, "[::1]:%s", address + 5);
    else
        snprintf(out, cap, "%s", address);
}

/* The example as printed: a curl command, or a URL for the browser. */
static void example_text(const example *e, const char *listen, const char *admin, char *out, size_t cap)
{
    char host[128];
    reach(e->admin ? admin : listen, host, sizeof(host));
    bool quote = strpbrk(e->path, "?&") != NULL;   /* the shell must not see them */
    if (!e->opts)
        snprintf(out, cap, "http://%s%s", host, e->path);
    else
        snprintf(out, cap, "curl %s %shttp://%s%s%s", e->opts, quote ? "'" : "", host, e->path, quote ? "'" : "");
}

/* "[::1]:8080" must be quoted: YAML would read a bracket as a list. */
static void put_address(gh_text *t, const char *address)
{
    bool quote = address[0] == '[';
    gh_text_put(t, "\"", quote);
    gh_text_put(t, address, strlen(address));
    gh_text_put(t, "\"", quote);
}

/* An override, or the default; NULL (reported) when it is not an address. */
static const char *address_from_env(const char *var, const char *dflt, gh_diag *diag)
{
    const char *v = getenv(var);
    if (!v)
        return dflt;
    size_t n = strlen(v);
    bool ok = n > 0 && n < 100;
    for (size_t i = 0; ok && i < n; i++)   /* it goes into YAML: nothing that could change its shape */
        ok = isalnum((unsigned char)v[i]) || strchr(".:[]-_", v[i]);
    if (!ok)
        gh_diag_fail(diag, "%s='%s' is not an address (HOST:PORT, e.g. 127.0.0.1:18080)", var, v);
    return ok ? v : NULL;
}

char *gh_demo_yaml(gh_diag *diag)
{
    const char *listen = address_from_env(GH_DEMO_LISTEN_ENV, DEMO_LISTEN, diag);
    const char *admin = address_from_env(GH_DEMO_ADMIN_ENV, DEMO_ADMIN, diag);
    if (!listen || !admin)
        return NULL;
    gh_text t = { 0 };
    for (const char *p = demo_template; *p;) {
        const char *at = strchr(p, '@');
        if (!at) {
            gh_text_put(&t, p, strlen(p));
            break;
        }
        gh_text_put(&t, p, (size_t)(at - p));
        if (strncmp(at, "@LISTEN@", 8) == 0) {
            put_address(&t, listen);
            p = at + 8;
        } else if (strncmp(at, "@ADMIN@", 7) == 0) {
            put_address(&t, admin);
            p = at + 7;
        } else if (strncmp(at, "@EXAMPLES@", 10) == 0) {
            for (size_t i = 0; i < NEXAMPLES; i++) {
                char cmd[256], line[512];
                example_text(&examples[i], listen, admin, cmd, sizeof(cmd));
                int n = snprintf(line, sizeof(line), "          %s\n            %s\n", cmd, examples[i].what);
                gh_text_put(&t, line, (size_t)n);
            }
            p = at + 10;
        } else {
            gh_text_put(&t, at, 1);
            p = at + 1;
        }
    }
    if (t.oom) {
        free(t.p);
        gh_diag_fail(diag, "out of memory building the demo configuration");
        return NULL;
    }
    return t.p;
}

gh_config *gh_demo_load(gh_diag *diag)
{
    char *yaml = gh_demo_yaml(diag);
    if (!yaml)
        return NULL;
    gh_config *cfg = gh_config_load_string("<demo>", yaml, strlen(yaml), diag);
    free(yaml);
    return cfg;
}

void gh_demo_banner(FILE *out, const gh_config *cfg)
{
    const char *listen = cfg->nlistens ? cfg->listens[0].address.p : DEMO_LISTEN;
    const char *admin = cfg->admin ? cfg->admin->listen.address.p : DEMO_ADMIN;
    fprintf(out, "\n  gatehouse demo is up (its configuration: gatehouse config --default). Try:\n\n");
    for (size_t i = 0; i < NEXAMPLES; i++) {
        char cmd[256];
        example_text(&examples[i], listen, admin, cmd, sizeof(cmd));
        fprintf(out, "  %-16s %s\n", examples[i].label, cmd);
    }
    fprintf(out, "\n");
}
