/* status_cli.c — `gatehouse status`: a small blocking HTTP/1.1 client
 * (one connection per request, with a timeout) and the terminal summary of
 * what the admin API reports. Percentiles come from the latency histogram's
 * deltas between two samples, or from the cumulative counts when nothing
 * happened in between. */
#include "admin/status_cli.h"
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 5000
#define MAX_BODY (16u << 20)

typedef struct target {
    char host[256], port[16];
    const char *addr;
    const char *token;
} target;

typedef struct reply {
    int status;                   /* 0: no answer (err says why) */
    char err[256];
    json_t *json;                 /* the body, when JSON */
} reply;

static bool split_addr(const char *addr, target *t)
{
    if (strncmp(addr, "http://", 7) == 0)
        addr += 7;
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= sizeof(t->port))
        return false;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof(t->host))
        return false;
    memcpy(t->host, h, hl);
    t->host[hl] = '\0';
    if (!hl)
        strcpy(t->host, "127.0.0.1");
    snprintf(t->port, sizeof(t->port), "%s", colon + 1);
    size_t slash = strcspn(t->port, "/");
    t->port[slash] = '\0';
    return t->port[0] != '\0';
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left = deadline - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    if (left <= 0)
        return 0;
    struct pollfd p = { fd, ev, 0 };
    int r;
    while ((r = poll(&p, 1, (int)left)) < 0 && errno == EINTR)
        ;
    return r;
}

static int64_t mono_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int connect_to(const target *t, char *err, size_t cap, int64_t deadline)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
    int rc = getaddrinfo(t->host, t->port, &hints, &res);
    if (rc) {
        snprintf(err, cap, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (wait_fd(fd, POLLOUT, deadline) > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
                soerr == 0)
                break;
            snprintf(err, cap, "%s", soerr ? strerror(soerr) : "connection timed out");
        } else {
            snprintf(err, cap, "%s", strerror(errno));
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* Chunked bodies decoded in place; false when malformed. */
static bool dechunk(char *b, size_t *len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        unsigned long n = strtoul(b + in, &end, 16);
        char *crlf = strstr(end, "\r\n");
        if (end == b + in || !crlf)
            return false;
        in = (size_t)(crlf - b) + 2;
        if (n == 0)
            break;
        if (in + n > *len)
            return false;
        memmove(b + out, b + in, n);
        out += n;
        in += n + 2;
    }
    *len = out;
    b[out] = '\0';
    return true;
}

static reply get(const target *t, const char *path)
{
    reply r = { 0 };
    int64_t deadline = mono_ms() + TIMEOUT_MS;
    int fd = connect_to(t, r.err, sizeof(r.err), deadline);
    if (fd < 0)
        return r;
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-status\r\n%s%s%s"
                     "Connection: close\r\n\r\n", path, t->addr, t->token ? "Authorization: Bearer " : "",
                     t->token ? t->token : "", t->token ? "\r\n" : "");
    for (int off = 0; off < n;) {
        if (wait_fd(fd, POLLOUT, deadline) <= 0) {
            snprintf(r.err, sizeof(r.err), "timed out sending the request");
            close(fd);
            return r;
        }
        ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(r.err, sizeof(r.err), "%s", strerror(errno));
            close(fd);
            return r;
        }
        off += w > 0 ? (int)w : 0;
    }
    size_t len = 0, cap = 16384;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf || len == cap) {
            char *nb = cap < MAX_BODY ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb) {
                snprintf(r.err, sizeof(r.err), "answer too large");
                break;
            }
            buf = nb;
            cap *= 2;
        }
        if (wait_fd(fd, POLLIN, deadline) <= 0) {
            snprintf(r.err, sizeof(r.err), "timed out waiting for the answer");
            break;
        }
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    if (!buf)
        return r;
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    int status = 0;
    if (r.err[0] == '\0' && (!body || sscanf(buf, "HTTP/1.%*d %d", &status) != 1))
        snprintf(r.err, sizeof(r.err), "not an HTTP answer");
    if (status && body) {
        body += 4;
        size_t blen = len - (size_t)(body - buf);
        *(body - 2) = '\0';   /* the head, for the header search */
        bool chunked = strcasestr(buf, "\r\ntransfer-encoding: chunked") != NULL;
        if (!chunked || dechunk(body, &blen)) {
            r.status = status;
            r.err[0] = '\0';
            r.json = json_loadb(body, blen, 0, NULL);
        } else {
            snprintf(r.err, sizeof(r.err), "malformed chunked answer");
        }
    }
    free(buf);
    return r;
}

/* ------------------------------------------------------------- output -- */

static const char *str(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static double num(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static void duration(char *out, size_t cap, long long s)
{
    if (s >= 86400)
        snprintf(out, cap, "%lldd %lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(out, cap, "%lldh %lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(out, cap, "%lldm %llds", s / 60, s % 60);
    else
        snprintf(out, cap, "%llds", s);
}

/* q-quantile (0..1) of a histogram: counts[nb + 1] over upper bounds[nb]
 * (the last count is +Inf), linear within the bucket. */
static void quantile(char *out, size_t cap, const double *bounds, size_t nb, const double *counts, double q)
{
    double total = 0;
    for (size_t i = 0; i <= nb; i++)
        total += counts[i];
    if (total <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    double rank = q * total, seen = 0;
    for (size_t i = 0; i <= nb; i++) {
        if (counts[i] > 0 && seen + counts[i] >= rank) {
            if (i == nb) {
                snprintf(out, cap, ">%gms", nb ? bounds[nb - 1] : 0);
                return;
            }
            double lo = i ? bounds[i - 1] : 0, hi = bounds[i];
            double v = lo + (hi - lo) * ((rank - seen) / counts[i]);
            snprintf(out, cap, v < 10 ? "%.2fms" : "%.0fms", v);
            return;
        }
        seen += counts[i];
    }
    snprintf(out, cap, "-");
}

static json_t *route_in(json_t *stats, const char *name)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(stats, "routes"), i, r)
        if (strcmp(str(r, "route", ""), name) == 0)
            return r;
    return NULL;
}

static void print_routes(json_t *s1, json_t *s2, double secs)
{
    json_t *jb = json_object_get(s2, "latency_buckets_ms");
    size_t nb = json_array_size(jb);
    double bounds[64], counts[65];
    if (nb > 63)
        nb = 63;
    for (size_t i = 0; i < nb; i++)
        bounds[i] = json_number_value(json_array_get(jb, i));
    printf("\nROUTES (over the last %.1fs; cumulative where there was no traffic)\n", secs);
    printf("  %-24s %9s %8s %8s %8s %8s %10s\n", "ROUTE", "REQ/S", "ERR%", "P50", "P95", "P99", "REQUESTS");
    size_t i;
    json_t *r2;
    json_array_foreach(json_object_get(s2, "routes"), i, r2) {
        const char *name = str(r2, "route", "");
        json_t *r1 = route_in(s1, name);
        double req2 = num(r2, "requests"), req1 = r1 ? num(r1, "requests") : 0;
        double d = req2 - req1;
        bool delta = d > 0;
        double errs = num(r2, "errors") - (delta && r1 ? num(r1, "errors") : 0);
        double base = delta ? d : req2;
        json_t *l2 = json_object_get(r2, "latency"), *l1 = r1 ? json_object_get(r1, "latency") : NULL;
        for (size_t k = 0; k <= nb; k++)
            counts[k] = json_number_value(json_array_get(l2, k)) - (delta && l1 ? json_number_value(json_array_get(l1, k)) : 0);
        char p50[24], p95[24], p99[24], err[16];
        quantile(p50, sizeof(p50), bounds, nb, counts, 0.50);
        quantile(p95, sizeof(p95), bounds, nb, counts, 0.95);
        quantile(p99, sizeof(p99), bounds, nb, counts, 0.99);
        if (base > 0)
            snprintf(err, sizeof(err), "%.1f", 100.0 * errs / base);
        else
            snprintf(err, sizeof(err), "-");
        printf("  %-24s %9.1f %8s %8s %8s %8s %10.0f\n", name[0] ? name : "(no route)", secs > 0 ? d / secs : 0,
               err, p50, p95, p99, req2);
    }
}

static void print_upstreams(json_t *u)
{
    printf("\nUPSTREAMS\n");
    printf("  %-16s %-24s %-5s %-9s %-10s %9s %8s\n", "UPSTREAM", "TARGET", "UP", "HEALTH", "CIRCUIT", "IN-FLIGHT",
           "FAILURES");
    size_t i, k;
    json_t *up, *t;
    json_array_foreach(json_object_get(u, "upstreams"), i, up) {
        const char *circuit = str(up, "circuit", "-");
        json_array_foreach(json_object_get(up, "targets"), k, t) {
            bool ej = json_is_true(json_object_get(t, "ejected"));
            printf("  %-16s %-24s %-5s %-9s %-10s %9.0f %8.0f\n", k ? "" : str(up, "name", "?"),
                   str(t, "address", "?"), json_is_true(json_object_get(t, "up")) ? "yes" : "NO",
                   ej ? "ejected" : json_is_true(json_object_get(t, "healthy")) ? "healthy" : "UNHEALTHY",
                   k ? "" : circuit, num(t, "in_flight"), num(t, "failures"));
        }
    }
}

static void print_versions(json_t *v)
{
    bool any = false;
    size_t i, k, c;
    json_t *r, *ver, *caller;
    json_array_foreach(json_object_get(v, "routes"), i, r) {
        json_array_foreach(json_object_get(r, "versions"), k, ver) {
            const char *state = str(ver, "state", "");
            if (strcmp(state, "deprecated") != 0 && strcmp(state, "sunset") != 0)
                continue;
            if (!any)
                printf("\nDEPRECATED VERSIONS (callers in the last 24 h)\n");
            any = true;
            json_t *days = json_object_get(ver, "days_to_sunset");
            char when[64];
            if (json_is_integer(days))
                snprintf(when, sizeof(when), "sunset %s (in %lld days)", str(ver, "sunset", "?"),
                         (long long)json_integer_value(days));
            else
                snprintf(when, sizeof(when), "no sunset date");
            printf("  %s v%s  %s  %s, %.0f requests\n", str(r, "route", "?"), str(ver, "name", "?"), state, when,
                   num(ver, "requests_24h"));
            json_array_foreach(json_object_get(ver, "callers"), c, caller)
                printf("    %-24s %8.0f  last seen %s\n", str(caller, "consumer", "?"), num(caller, "requests_24h"),
                       str(caller, "last_seen", "?"));
        }
    }
    if (!any)
        printf("\nDEPRECATED VERSIONS: none\n");
}

static void print_errors(json_t *s)
{
    json_t *list = json_object_get(s, "recent_errors");
    printf("\nRECENT ERRORS%s\n", json_array_size(list) ? " (newest first)" : ": none");
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        if (i == 10)
            break;
        printf("  %s %3.0f %-20s %-16s %s %s  %s\n", str(e, "time", "?"), num(e, "status"), str(e, "code", "?"),
               str(e, "route", "-"), str(e, "method", "?"), str(e, "path", "?"), str(e, "request_id", ""));
    }
}

/* 0 when r is a 200 with JSON; else the exit code, the reason printed. */
static int check(const target *t, const char *path, const reply *r)
{
    if (!r->status) {
        fprintf(stderr, "gatehouse status: cannot reach the admin API at %s: %s\n", t->addr, r->err);
        return 3;
    }
    if (r->status == 401 || r->status == 403) {
        fprintf(stderr, "gatehouse status: %s refused (%d): %s\n", path, r->status,
                str(r->json, "detail", "no reason given"));
        if (r->status == 401)
            fprintf(stderr, "  pass the admin token with --token T or GATEHOUSE_ADMIN_TOKEN\n");
        return 1;
    }
    if (r->status != 200 || !json_is_object(r->json)) {
        fprintf(stderr, "gatehouse status: %s answered %d%s\n", path, r->status,
                r->json ? "" : " without JSON (is this the admin listener?)");
        return 3;
    }
    return 0;
}

int gh_status_cli(const char *addr, const char *token, uint64_t interval_ms)
{
    target t = { .addr = addr, .token = token && *token ? token : NULL };
    if (!split_addr(addr, &t)) {
        fprintf(stderr, "gatehouse status: '%s' is not an address (HOST:PORT)\n", addr);
        return 2;
    }
    int rc;
    reply st = get(&t, "/api/status");
    if ((rc = check(&t, "/api/status", &st))) {
        json_decref(st.json);
        return rc;
    }
    reply s1 = get(&t, "/api/stats");
    bool stats = s1.status == 200 && json_is_object(s1.json);
    if (!stats && s1.status != 404 && (rc = check(&t, "/api/stats", &s1))) {
        json_decref(st.json);
        json_decref(s1.json);
        return rc;
    }
    reply s2 = { 0 };
    int64_t t0 = mono_ms();
    if (stats) {
        struct timespec ts = { (time_t)(interval_ms / 1000), (long)(interval_ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        s2 = get(&t, "/api/stats");
        if ((rc = check(&t, "/api/stats", &s2)))
            goto out;
    }
    double secs = (double)(mono_ms() - t0) / 1000.0;
    reply up = get(&t, "/api/upstreams"), ver = get(&t, "/api/versions");
    if ((rc = check(&t, "/api/upstreams", &up)) || (rc = check(&t, "/api/versions", &ver))) {
        json_decref(up.json);
        json_decref(ver.json);
        goto out;
    }

    json_t *cfg = json_object_get(st.json, "config");
    char uptime[32];
    duration(uptime, sizeof(uptime), (long long)num(st.json, "uptime_seconds"));
    printf("gatehouse %s at %s, up %s, %.0f workers, %.0f open connections\n", str(st.json, "version", "?"), addr,
           uptime, num(st.json, "workers"), num(st.json, "open_connections"));
    printf("config: generation %.0f from %s, loaded %s", num(cfg, "generation"), str(cfg, "source", "?"),
           str(cfg, "loaded_at", "?"));
    if (json_is_integer(json_object_get(cfg, "revision")))
        printf(", etcd revision %.0f", num(cfg, "revision"));
    printf("\n");
    if (stats) {
        json_t *last = json_object_get(json_object_get(s2.json, "config"), "last_reload");
        if (json_is_object(last)) {
            printf("last reload: %s at %s\n", str(last, "result", "?"), str(last, "at", "?"));
            size_t i;
            json_t *e;
            json_array_foreach(json_object_get(last, "errors"), i, e)
                printf("  %s\n", json_string_value(e) ? json_string_value(e) : "?");
        } else {
            printf("last reload: none since start\n");
        }
        json_t *tot = json_object_get(s2.json, "totals");
        printf("requests: %.0f total, %.0f client errors, %.0f errors, %.0f rate limited\n", num(tot, "requests"),
               num(tot, "client_errors"), num(tot, "errors"), num(tot, "rate_limited"));
        print_routes(s1.json, s2.json, secs);
    } else {
        printf("\nROUTES: this gatehouse serves no /api/stats (request statistics unavailable)\n");
    }
    print_upstreams(up.json);
    print_versions(ver.json);
    if (stats)
        print_errors(s2.json);
    json_decref(up.json);
    json_decref(ver.json);
out:
    json_decref(st.json);
    json_decref(s1.json);
    json_decref(s2.json);
    return rc;
}
