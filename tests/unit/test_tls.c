/* test_tls.c — config/tls.c and src/tls/: the tls sections of the
 * configuration, SSL_CTX building with its errors at FILE:LINE:COL, and
 * real handshakes in-process over socketpairs (SNI, ALPN, versions, mTLS,
 * upstream verification, data through read/writev). Certificates are made
 * once per run with the openssl command into a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "config/config.h"
#include "tls/tls.h"

static char dir[64];

/* ---- fixtures ---- */

static const char gen_script[] =
    "set -e; cd '%s'\n"
    "ec='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
    "ca() { openssl req -x509 $ec -keyout $1.key -out $1.pem -days 3 -subj \"$2\" "
    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign; }\n"
    "leaf() { openssl req -new $ec -keyout $1.key -out $1.csr -subj \"$2\"; printf '%%s\\n' \"$4\" > $1.ext;\n"
    "  openssl x509 -req -in $1.csr -CA $3.pem -CAkey $3.key -CAcreateserial -days 2 -out $1.pem "
    "-extfile $1.ext; }\n"
    "ca ca '/CN=Test CA'\n"
    "ca other '/CN=Other CA'\n"
    "leaf a /CN=a.example.com ca subjectAltName=DNS:a.example.com\n"
    "leaf wild /CN=wild ca 'subjectAltName=DNS:*.b.example.com'\n"
    "leaf exact /CN=exact ca subjectAltName=DNS:c.b.example.com\n"
    "leaf def /CN=default.example.com ca basicConstraints=CA:FALSE\n"
    "leaf client1 /O=Example/CN=client1 ca extendedKeyUsage=clientAuth\n"
    "leaf intruder /O=Example/CN=intruder other extendedKeyUsage=clientAuth\n"
    "openssl pkey -in a.key -aes128 -passout pass:secret -out enc.key\n"
    "mkdir certs; cp *.pem *.key certs/\n";

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The configuration every handshake test uses: listeners 0-4, upstreams
 * in file order (see the names). Paths are relative to the file. */
static const char main_yaml[] =
    "listen:\n"
    "  - address: 127.0.0.1:8443\n"                              /* 0: three certs + default */
    "    http2: true\n"
    "    tls:\n"
    "      certificates:\n"
    "        - { cert: certs/def.pem, key: certs/def.key }\n"
    "        - { cert: certs/a.pem, key: certs/a.key }\n"
    "        - { cert: certs/wild.pem, key: certs/wild.key }\n"
    "        - { cert: certs/exact.pem, key: certs/exact.key }\n"
    "  - address: 127.0.0.1:8444\n"                              /* 1: no http2, TLS 1.3 only */
    "    tls: { certificates: [{ cert: a.pem, key: a.key }], min_version: \"1.3\" }\n"
    "  - address: 127.0.0.1:8445\n"                              /* 2: mTLS required */
    "    tls:\n"
    "      certificates: [{ cert: a.pem, key: a.key }]\n"
    "      client_ca: ca.pem\n"
    "      client_cert: required\n"
    "  - address: 127.0.0.1:8446\n"                              /* 3: mTLS optional (default) */
    "    tls: { certificates: [{ cert: a.pem, key: a.key }], client_ca: ca.pem }\n"
    "  - address: 127.0.0.1:8447\n"                              /* 4: no client certs */
    "    tls: { certificates: [{ cert: a.pem, key: a.key }] }\n"
    "upstreams:\n"
    "  noverify: { targets: [127.0.0.1:1], tls: { verify: false } }\n"
    "  trusting: { targets: [127.0.0.1:1], tls: { ca: ca.pem } }\n"
    "  strangers: { targets: [127.0.0.1:1], tls: { ca: other.pem } }\n"
    "  client1: { targets: [127.0.0.1:1], tls: { ca: ca.pem, cert: client1.pem, key: client1.key } }\n"
    "  intruder: { targets: [127.0.0.1:1], tls: { ca: ca.pem, cert: intruder.pem, key: intruder.key } }\n"
    "  named: { targets: [127.0.0.1:1], tls: { ca: ca.pem, sni: x.b.example.com } }\n";

enum { L_SNI, L_TLS13, L_REQUIRED, L_OPTIONAL, L_PLAIN, L_COUNT };
enum { U_NOVERIFY, U_TRUSTING, U_STRANGERS, U_CLIENT1, U_INTRUDER, U_NAMED, U_COUNT };

/* Built once for every test from main_yaml. */
static gh_config *cfg;
static gh_tls_server *servers[L_COUNT];
static gh_tls_client *clients[U_COUNT], *client_h2;   /* client_h2: noverify, offering h2 */

static int load_main(void)
{
    char path[128];
    gh_diag d;
    snprintf(path, sizeof(path), "%s/main.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(main_yaml, f);
    fclose(f);
    gh_diag_init(&d, path);
    cfg = gh_config_load_file(path, &d);
    for (int i = 0; cfg && i < L_COUNT; i++)
        servers[i] = gh_tls_server_new(cfg, &cfg->listens[i], &d);
    for (int i = 0; cfg && i < U_COUNT; i++)
        clients[i] = gh_tls_client_new(cfg, &cfg->upstreams[i], &d);
    if (cfg) {
        gh_upstream_cfg u = cfg->upstreams[U_NOVERIFY];
        u.protocol = GH_PROTO_H2;   /* the loader does not take h2 yet */
        client_h2 = gh_tls_client_new(cfg, &u, &d);
    }
    gh_diag_print(&d, stderr);
    int rc = cfg && d.n == 0 ? 0 : -1;
    gh_diag_free(&d);
    return rc;
}

static int setup(void **state)
{
    char script[4096], path[128], cmd[512];
    signal(SIGPIPE, SIG_IGN);   /* as the server does: a write to a closed peer is EPIPE */
    strcpy(dir, "/tmp/gh-test-tls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(script, sizeof(script), gen_script, dir);
    snprintf(path, sizeof(path), "%s/gen.sh", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(script, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "sh '%s' >'%s/gen.log' 2>&1", path, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "certificate generation failed, see %s/gen.log\n", dir);
        return -1;
    }
    return load_main();
}

static int teardown(void **state)
{
    char cmd[128];
    for (int i = 0; i < L_COUNT; i++)
        gh_tls_server_free(servers[i]);
    for (int i = 0; i < U_COUNT; i++)
        gh_tls_client_free(clients[i]);
    gh_tls_client_free(client_h2);
    gh_config_free(cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- a connection in one thread ---- */

typedef struct tlink {
    int fd[2];                /* [0] server side, [1] client side */
    gh_transport *srv, *cli;
    int rs, rc;               /* handshake results */
} tlink;

static void drive(tlink *k)
{
    k->rs = k->rc = -EAGAIN;
    for (int i = 0; i < 100 && (k->rs == -EAGAIN || k->rc == -EAGAIN); i++) {
        if (k->rc == -EAGAIN)
            k->rc = gh_transport_handshake(k->cli, k->fd[1]);
        if (k->rs == -EAGAIN)
            k->rs = gh_transport_handshake(k->srv, k->fd[0]);
        if (k->rs == -EAGAIN)
            assert_int_equal(k->srv->want, GH_WANT_READ);   /* socketpairs never fill here */
    }
}

static void open_link(tlink *k, gh_tls_server *s, gh_tls_client *c, const char *host)
{
    memset(k, 0, sizeof(*k));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, k->fd), 0);
    k->srv = gh_tls_accept(s, k->fd[0]);
    k->cli = gh_tls_connect(c, k->fd[1], host);
    assert_non_null(k->srv);
    assert_non_null(k->cli);
    drive(k);
}

static void close_link(tlink *k)
{
    if (k->cli)
        k->cli->ops->destroy(k->cli);
    if (k->srv)
        k->srv->ops->destroy(k->srv);
    close(k->fd[0]);
    close(k->fd[1]);
}

/* CN of the certificate the client was shown. */
static const char *server_cn(tlink *k, char *buf, size_t cap)
{
    X509 *x = SSL_get0_peer_certificate(gh_tls_ssl(k->cli));
    assert_non_null(x);
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)cap) > 0);
    return buf;
}

/* ---- configuration ---- */

static gh_config *load_text(const char *name, const char *yaml, gh_diag *d)
{
    gh_diag_init(d, name);
    return gh_config_load_string(name, yaml, strlen(yaml), d);
}

static char errs[4096];
static const char *errors_of(const char *yaml)
{
    gh_diag d;
    assert_null(load_text("test.yaml", yaml, &d));
    errs[0] = '\0';
    for (size_t i = 0; i < d.n; i++) {
        if (i)
            strcat(errs, "\n");
        strncat(errs, d.items[i].text, sizeof(errs) - strlen(errs) - 2);
    }
    gh_diag_free(&d);
    return errs;
}

#define LISTEN "listen:\n  - address: 127.0.0.1:8443\n"

static void test_config_values(void **state)
{
    gh_diag d;
    gh_config *c = load_text("conf/gh.yaml",
                             "listen:\n"
                             "  - address: 127.0.0.1:8443\n"
                             "    tls:\n"
                             "      certificates:\n"
                             "        - { cert: certs/a.pem, key: /abs/a.key }\n"
                             "        - cert: b.pem\n"
                             "          key: b.key\n"
                             "      client_ca: ca.pem\n"
                             "      min_version: 1.3\n"
                             "  - address: 127.0.0.1:8444\n"
                             "    tls: { certificates: [{ cert: a.pem, key: a.key }], client_ca: ca.pem, "
                             "client_cert: required }\n"
                             "  - address: 127.0.0.1:8445\n"
                             "upstreams:\n"
                             "  u: { targets: [127.0.0.1:1], tls: { sni: api.internal, cert: c.pem, key: c.key } }\n"
                             "  v: { targets: [127.0.0.1:1], tls: { verify: false, ca: /etc/ca.pem } }\n"
                             "  w: { targets: [127.0.0.1:1] }\n",
                             &d);
    gh_diag_print(&d, stderr);
    assert_non_null(c);
    const gh_tls_listen_cfg *t = c->listens[0].tls;
    assert_non_null(t);
    assert_int_equal(t->ncertificates, 2);
    assert_string_equal(t->certificates[0].cert.p, "conf/certs/a.pem");
    assert_string_equal(t->certificates[0].key.p, "/abs/a.key");
    assert_int_equal(t->certificates[0].cert_mark.line, 5);
    assert_int_equal(t->certificates[0].cert_mark.col, 13);
    assert_int_equal(t->certificates[1].key_mark.line, 7);
    assert_int_equal(t->certificates[1].key_mark.col, 11);
    assert_string_equal(t->certificates[1].key.p, "conf/b.key");
    assert_string_equal(t->client_ca.p, "conf/ca.pem");
    assert_int_equal(t->client_cert, GH_CLIENT_CERT_OPTIONAL);   /* default with a client_ca */
    assert_int_equal(t->min_version, TLS1_3_VERSION);
    assert_int_equal(c->listens[1].tls->client_cert, GH_CLIENT_CERT_REQUIRED);
    assert_int_equal(c->listens[1].tls->min_version, TLS1_2_VERSION);
    assert_null(c->listens[2].tls);

    const gh_tls_upstream_cfg *u = c->upstreams[0].tls;
    assert_true(u->verify);
    assert_string_equal(u->sni.p, "api.internal");
    assert_string_equal(u->cert.p, "conf/c.pem");
    assert_string_equal(u->key.p, "conf/c.key");
    assert_int_equal(u->ca.len, 0);
    assert_false(c->upstreams[1].tls->verify);
    assert_string_equal(c->upstreams[1].tls->ca.p, "/etc/ca.pem");
    assert_null(c->upstreams[2].tls);
    gh_config_free(c);
    gh_diag_free(&d);

    /* without a client_ca, no client certificates */
    c = load_text("gh.yaml", LISTEN "    tls: { certificates: [{ cert: a.pem, key: a.key }] }\n", &d);
    assert_non_null(c);
    assert_int_equal(c->listens[0].tls->client_cert, GH_CLIENT_CERT_NONE);
    assert_string_equal(c->listens[0].tls->certificates[0].cert.p, "a.pem");   /* no directory */
    gh_config_free(c);
    gh_diag_free(&d);
}

static void test_config_errors(void **state)
{
    assert_string_equal(errors_of(LISTEN "    tls: {}\n"),
                        "test.yaml:3:5: tls needs certificates (a list of { cert: FILE, key: FILE })");
    assert_string_equal(errors_of(LISTEN "    tls: { certificates: [] }\n"),
                        "test.yaml:3:12: certificates must not be empty");
    assert_string_equal(errors_of(LISTEN "    tls:\n      certificates:\n        - { cert: a.pem }\n"
                                         "        - a.pem\n"),
                        "test.yaml:5:11: certificate needs key\n"
                        "test.yaml:6:11: expected a mapping { cert: FILE, key: FILE }");
    assert_string_equal(errors_of(LISTEN "    tls:\n      certificates: [{ cert: a.pem, key: a.key }]\n"
                                         "      client_cert: required\n"),
                        "test.yaml:5:7: client_cert: required needs client_ca");
    assert_string_equal(errors_of(LISTEN "    tls:\n      certificate: [{ cert: a.pem, key: a.key }]\n"
                                         "      client_cert: sometimes\n      min_version: 1.1\n"),
                        "test.yaml:3:5: tls needs certificates (a list of { cert: FILE, key: FILE })\n"
                        "test.yaml:4:7: unknown key 'certificate' (did you mean 'certificates'?)\n"
                        "test.yaml:5:20: invalid client_cert 'sometimes' (use none, optional or required)\n"
                        "test.yaml:6:20: invalid min_version '1.1' (use \"1.2\" or \"1.3\")");
    assert_string_equal(errors_of(LISTEN "upstreams:\n  u:\n    targets: [127.0.0.1:1]\n"
                                         "    tls: { cert: c.pem, verify: yes, sni: \"a b\", cs: x }\n"),
                        "test.yaml:6:12: cert needs key (a client certificate takes both)\n"
                        "test.yaml:6:33: expected true or false, got \"yes\"\n"
                        "test.yaml:6:43: invalid sni 'a b' (expected a host name)\n"
                        "test.yaml:6:50: unknown key 'cs' (did you mean 'ca'?)");
}

/* Errors found while building contexts: at the key naming the file. */
static void test_context_errors(void **state)
{
    char yaml[2048], path[128], want[1024];
    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    snprintf(yaml, sizeof(yaml),
             "listen:\n"
             "  - address: 127.0.0.1:8443\n"
             "    tls:\n"
             "      certificates:\n"
             "        - { cert: missing.pem, key: a.key }\n"       /* 5 */
             "        - { cert: a.pem, key: def.key }\n"           /* 6 */
             "        - { cert: a.key, key: a.key }\n"             /* 7 */
             "        - { cert: a.pem, key: enc.key }\n"           /* 8 */
             "        - { cert: a.pem, key: %s/certs }\n"          /* 9 */
             "        - { cert: a.pem, key: a.pem }\n"            /* 10 */
             "  - address: 127.0.0.1:8444\n"
             "    tls: { certificates: [{ cert: a.pem, key: a.key }], client_ca: nope.pem }\n"
             "upstreams:\n"
             "  u: { targets: [127.0.0.1:1], tls: { ca: a.key, cert: client1.pem, key: a.key } }\n",
             dir);
    write_file("bad.yaml", yaml);
    gh_diag d;
    gh_diag_init(&d, path);
    gh_config *c = gh_config_load_file(path, &d);
    assert_non_null(c);
    assert_null(gh_tls_server_new(c, &c->listens[0], &d));
    assert_null(gh_tls_server_new(c, &c->listens[1], &d));
    assert_null(gh_tls_client_new(c, &c->upstreams[0], &d));
    assert_int_equal(d.errors, 9);
    const char *expect[] = {
        "%1$s/bad.yaml:5:13: cannot read certificate '%1$s/missing.pem': No such file or directory",
        "%1$s/bad.yaml:6:26: key '%1$s/def.key' does not match certificate '%1$s/a.pem' (key values mismatch)",
        "%1$s/bad.yaml:7:13: cannot load certificate '%1$s/a.key': no PEM data found",
        "%1$s/bad.yaml:8:26: cannot load key '%1$s/enc.key': encrypted keys are not supported",
        "%1$s/bad.yaml:9:26: cannot read key '%1$s/certs': Is a directory",
        "%1$s/bad.yaml:10:26: cannot load key '%1$s/a.pem': no PEM private key found",
        "%1$s/bad.yaml:12:57: cannot read client_ca '%1$s/nope.pem': No such file or directory",
        "%1$s/bad.yaml:14:39: cannot load ca '%1$s/a.key': no PEM certificate found",
        "%1$s/bad.yaml:14:69: key '%1$s/a.key' does not match certificate '%1$s/client1.pem' (key values mismatch)",
    };
    for (size_t i = 0; i < d.n && i < 9; i++) {
        snprintf(want, sizeof(want), expect[i], dir);
        assert_string_equal(d.items[i].text, want);
    }
    gh_diag_free(&d);
    gh_config_free(c);
}

/* ---- handshakes ---- */

static void test_sni(void **state)
{
    gh_tls_server *s = servers[L_SNI];
    gh_tls_client *c = clients[U_NOVERIFY];
    static const struct { const char *host, *cn; } cases[] = {
        { "a.example.com", "a.example.com" },
        { "A.Example.COM.", "a.example.com" },     /* case and a trailing dot */
        { "x.b.example.com", "wild" },             /* one label under the wildcard */
        { "c.b.example.com", "exact" },            /* exact beats an earlier wildcard */
        { "y.x.b.example.com", "default.example.com" },   /* two labels: no */
        { "b.example.com", "default.example.com" },
        { "default.example.com", "default.example.com" }, /* CN when there is no SAN */
        { "unknown.org", "default.example.com" },
        { NULL, "default.example.com" },           /* no SNI at all */
        { "127.0.0.1", "default.example.com" },    /* IP literals are not sent */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tlink k;
        char cn[256];
        open_link(&k, s, c, cases[i].host);
        assert_int_equal(k.rc, 0);
        assert_int_equal(k.rs, 0);
        assert_string_equal(server_cn(&k, cn, sizeof(cn)), cases[i].cn);
        close_link(&k);
    }
}

static void test_alpn(void **state)
{
    gh_tls_server *h2 = servers[L_SNI], *h1 = servers[L_PLAIN];
    gh_tls_client *c2 = client_h2, *c1 = clients[U_NOVERIFY];
    tlink k;
    open_link(&k, h2, c2, "a.example.com");
    assert_int_equal(k.rs, 0);
    assert_string_equal(gh_tls_alpn(k.srv), "h2");
    assert_string_equal(gh_tls_alpn(k.cli), "h2");
    close_link(&k);
    open_link(&k, h1, c2, "a.example.com");   /* http2 off: h1 even when h2 is offered */
    assert_string_equal(gh_tls_alpn(k.srv), "http/1.1");
    assert_string_equal(gh_tls_alpn(k.cli), "http/1.1");
    close_link(&k);
    open_link(&k, h2, c1, "a.example.com");   /* client offers only http/1.1 */
    assert_string_equal(gh_tls_alpn(k.srv), "http/1.1");
    assert_true(gh_tls_is(k.srv));
    close_link(&k);

    assert_false(gh_tls_is(&gh_transport_plain));
    assert_null(gh_tls_alpn(&gh_transport_plain));
}

/* A client built with OpenSSL directly: versions, ALPN lists and session
 * resumption that gh_tls_client never uses. */
typedef struct raw_opts {
    int max_version;
    const char *alpn;         /* wire format */
    const char *cert;         /* "client1": client1.pem and client1.key in dir */
    SSL_SESSION *resume;
    SSL_SESSION **session;    /* out: the session to resume later */
} raw_opts;

static int raw_handshake(gh_tls_server *s, const raw_opts *o, gh_transport **srv_out, int fd[2])
{
    char cert[128], key[128];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    SSL_CTX_set_max_proto_version(ctx, o->max_version);
    if (o->alpn)
        assert_int_equal(SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)o->alpn, strlen(o->alpn)), 0);
    if (o->cert) {
        snprintf(cert, sizeof(cert), "%s/%s.pem", dir, o->cert);
        snprintf(key, sizeof(key), "%s/%s.key", dir, o->cert);
        assert_int_equal(SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    }
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd[1]);
    SSL_set_connect_state(ssl);
    SSL_set_tlsext_host_name(ssl, "a.example.com");
    if (o->resume)
        assert_int_equal(SSL_set_session(ssl, o->resume), 1);
    gh_transport *srv = gh_tls_accept(s, fd[0]);
    int rs = -EAGAIN, rc = 0;
    for (int i = 0; i < 100 && rs == -EAGAIN; i++) {
        rc = SSL_do_handshake(ssl);
        rs = gh_transport_handshake(srv, fd[0]);
    }
    if (rs == 0 && rc != 1)
        rc = SSL_do_handshake(ssl);
    if (rs == 0 && rc == 1 && o->session) {
        char b[1];
        assert_int_equal(SSL_read(ssl, b, 1), -1);   /* takes the TLS 1.3 tickets */
        *o->session = SSL_get1_session(ssl);
    }
    if (rs == 0 && rc == 1)
        SSL_shutdown(ssl);   /* else OpenSSL forgets the session as a bad one */
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    *srv_out = srv;
    return rs == 0 && rc == 1 ? 0 : -1;
}

static void raw_close(gh_transport *srv, int fd[2])
{
    srv->ops->destroy(srv);
    close(fd[0]);
    close(fd[1]);
}

static void test_versions(void **state)
{
    gh_tls_server *any = servers[L_SNI], *v13 = servers[L_TLS13];
    gh_tls_client *c = clients[U_NOVERIFY];
    gh_transport *srv;
    int fd[2];

    raw_opts o12 = { .max_version = TLS1_2_VERSION, .alpn = "\x08http/1.1" };
    assert_int_equal(raw_handshake(any, &o12, &srv, fd), 0);
    assert_string_equal(gh_tls_version(srv), "TLSv1.2");
    assert_string_equal(gh_tls_alpn(srv), "http/1.1");
    raw_close(srv, fd);

    tlink k;
    open_link(&k, any, c, "a.example.com");
    assert_int_equal(k.rs, 0);
    assert_string_equal(gh_tls_version(k.srv), "TLSv1.3");
    close_link(&k);

    /* min_version 1.3 refuses a client that stops at 1.2 */
    assert_int_equal(raw_handshake(v13, &(raw_opts){ .max_version = TLS1_2_VERSION }, &srv, fd), -1);
    assert_non_null(gh_tls_error(srv));
    raw_close(srv, fd);

    /* no ALPN at all, and an ALPN list without an HTTP protocol we serve */
    assert_int_equal(raw_handshake(v13, &(raw_opts){ .max_version = TLS1_3_VERSION }, &srv, fd), 0);
    assert_null(gh_tls_alpn(srv));
    raw_close(srv, fd);
    raw_opts only_h2 = { .max_version = TLS1_3_VERSION, .alpn = "\x02h2" };
    assert_int_equal(raw_handshake(v13, &only_h2, &srv, fd), -1);   /* no http2 there */
    raw_close(srv, fd);
    raw_opts h10 = { .max_version = TLS1_3_VERSION, .alpn = "\x08http/1.0" };
    assert_int_equal(raw_handshake(any, &h10, &srv, fd), 0);
    assert_string_equal(gh_tls_alpn(srv), "http/1.1");
    raw_close(srv, fd);

}

/* Tickets and the session cache survive the SNI switch and client
 * verification (which needs a session id context), and a resumed session
 * keeps its verified client. */
static void test_resumption(void **state)
{
    gh_tls_server *sni = servers[L_SNI], *req = servers[L_REQUIRED];
    static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };
    char subject[256];
    for (int v = 0; v < 2; v++) {
        for (int which = 0; which < 2; which++) {
            gh_tls_server *s = which ? req : sni;
            SSL_SESSION *sess = NULL;
            gh_transport *srv;
            int fd[2];
            raw_opts o = { .max_version = versions[v], .cert = which ? "client1" : NULL, .session = &sess };
            assert_int_equal(raw_handshake(s, &o, &srv, fd), 0);
            assert_false(SSL_session_reused(gh_tls_ssl(srv)));
            raw_close(srv, fd);
            assert_non_null(sess);
            o.resume = sess;
            o.session = NULL;
            assert_int_equal(raw_handshake(s, &o, &srv, fd), 0);
            assert_true(SSL_session_reused(gh_tls_ssl(srv)));
            if (which) {
                assert_true(gh_tls_peer_subject(srv, subject, sizeof(subject)));
                assert_string_equal(subject, "CN=client1,O=Example");
            }
            raw_close(srv, fd);
            SSL_SESSION_free(sess);
        }
    }
}

static void test_mtls(void **state)
{
    gh_tls_server *req = servers[L_REQUIRED], *opt = servers[L_OPTIONAL],
                  *none = servers[L_PLAIN];
    gh_tls_client *anon = clients[U_TRUSTING],
                  *good = clients[U_CLIENT1],
                  *bad = clients[U_INTRUDER];
    char subject[256];
    tlink k;

    /* required: no certificate, or one from another CA, fails the server side
     * (with TLS 1.3 the client may finish first; the alert reaches it later) */
    open_link(&k, req, anon, "a.example.com");
    assert_true(k.rs < 0 && k.rs != -EAGAIN);
    assert_non_null(gh_tls_error(k.srv));
    close_link(&k);
    open_link(&k, req, bad, "a.example.com");
    assert_true(k.rs < 0 && k.rs != -EAGAIN);
    close_link(&k);
    open_link(&k, req, good, "a.example.com");
    assert_int_equal(k.rs, 0);
    assert_int_equal(k.rc, 0);
    assert_true(gh_tls_peer_subject(k.srv, subject, sizeof(subject)));
    assert_string_equal(subject, "CN=client1,O=Example");
    assert_false(gh_tls_peer_subject(k.srv, subject, 8));   /* does not fit */
    close_link(&k);

    /* optional: the handshake succeeds; only a verified certificate counts */
    open_link(&k, opt, bad, "a.example.com");
    assert_int_equal(k.rs, 0);
    assert_int_equal(k.rc, 0);
    assert_false(gh_tls_peer_subject(k.srv, subject, sizeof(subject)));
    close_link(&k);
    open_link(&k, opt, anon, "a.example.com");
    assert_int_equal(k.rs, 0);
    assert_false(gh_tls_peer_subject(k.srv, subject, sizeof(subject)));
    close_link(&k);
    open_link(&k, opt, good, "a.example.com");
    assert_int_equal(k.rs, 0);
    assert_true(gh_tls_peer_subject(k.srv, subject, sizeof(subject)));
    assert_string_equal(subject, "CN=client1,O=Example");
    close_link(&k);

    /* none: no certificate is asked for */
    open_link(&k, none, good, "a.example.com");
    assert_int_equal(k.rs, 0);
    assert_false(gh_tls_peer_subject(k.srv, subject, sizeof(subject)));
    assert_false(gh_tls_peer_subject(&gh_transport_plain, subject, sizeof(subject)));
    close_link(&k);

}

static void test_upstream_verify(void **state)
{
    gh_tls_server *s = servers[L_SNI];
    gh_tls_client *trusting = clients[U_TRUSTING],
                  *strangers = clients[U_STRANGERS],
                  *named = clients[U_NAMED],
                  *noverify = clients[U_NOVERIFY];
    char cn[256];
    tlink k;

    open_link(&k, s, trusting, "a.example.com");
    assert_int_equal(k.rc, 0);
    assert_int_equal(k.rs, 0);
    assert_null(gh_tls_error(k.cli));
    close_link(&k);
    open_link(&k, s, trusting, "x.b.example.com");   /* wildcard certificate */
    assert_int_equal(k.rc, 0);
    close_link(&k);

    /* the default certificate does not name this host */
    open_link(&k, s, trusting, "nope.example.com");
    assert_int_equal(k.rc, -EPROTO);
    assert_string_equal(gh_tls_error(k.cli), "hostname mismatch");
    close_link(&k);
    /* an address is checked as an address */
    open_link(&k, s, trusting, "127.0.0.1");
    assert_int_equal(k.rc, -EPROTO);
    close_link(&k);
    /* signed by a CA the upstream does not trust */
    open_link(&k, s, strangers, "a.example.com");
    assert_int_equal(k.rc, -EPROTO);
    assert_string_equal(gh_tls_error(k.cli), "unable to get local issuer certificate");
    close_link(&k);
    /* `sni` wins over the target's host, for sending and for checking */
    open_link(&k, s, named, "10.1.2.3");
    assert_int_equal(k.rc, 0);
    assert_string_equal(server_cn(&k, cn, sizeof(cn)), "wild");
    close_link(&k);
    /* verify: false accepts anything */
    open_link(&k, s, noverify, "nope.example.com");
    assert_int_equal(k.rc, 0);
    close_link(&k);

}

/* ---- data ---- */

/* Move bytes from w to r until r has got `want` bytes; both sides may say
 * -EAGAIN (the socketpair buffer is smaller than the payload). */
static size_t pump(gh_transport *w, int wfd, const struct iovec *iov, int n, gh_transport *r, int rfd, char *out,
                   size_t want)
{
    struct iovec cur[8];
    memcpy(cur, iov, (size_t)n * sizeof(*iov));
    int ci = 0;
    size_t got = 0;
    for (int spins = 0; got < want && spins < 100000; spins++) {
        if (ci < n) {
            ssize_t wr = w->ops->writev(w, wfd, cur + ci, n - ci);
            assert_true(wr > 0 || wr == -EAGAIN);
            if (wr == -EAGAIN)
                assert_int_equal(w->want, GH_WANT_WRITE);
            for (size_t left = wr > 0 ? (size_t)wr : 0; left;) {
                size_t step = left < cur[ci].iov_len ? left : cur[ci].iov_len;
                cur[ci].iov_base = (char *)cur[ci].iov_base + step;
                cur[ci].iov_len -= step;
                left -= step;
                while (ci < n && cur[ci].iov_len == 0)
                    ci++;
            }
        }
        ssize_t rd = r->ops->read(r, rfd, out + got, want - got);
        assert_true(rd > 0 || rd == -EAGAIN);
        if (rd > 0)
            got += (size_t)rd;
    }
    return got;
}

static void test_data(void **state)
{
    gh_tls_server *s = servers[L_SNI];
    gh_tls_client *c = clients[U_TRUSTING];
    tlink k;
    open_link(&k, s, c, "a.example.com");
    assert_int_equal(k.rs, 0);

    size_t big_len = 300000;
    char *big = malloc(big_len), *got = malloc(big_len + 64);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 23);
    struct iovec iov[4] = {
        { "GET / HTTP/1.1\r\n", 16 }, { "", 0 }, { "Host: a\r\n\r\n", 11 }, { big, big_len },
    };
    size_t total = 16 + 11 + big_len;
    assert_int_equal(pump(k.cli, k.fd[1], iov, 4, k.srv, k.fd[0], got, total), total);
    assert_memory_equal(got, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);
    assert_memory_equal(got + 27, big, big_len);

    /* and back */
    struct iovec back[2] = { { "HTTP/1.1 200 OK\r\n\r\n", 19 }, { big, 70000 } };
    assert_int_equal(pump(k.srv, k.fd[0], back, 2, k.cli, k.fd[1], got, 19 + 70000), 19 + 70000);
    assert_memory_equal(got + 19, big, 70000);

    /* records already decrypted wait inside the transport: pending says so */
    for (int i = 0; i < 3; i++)
        assert_int_equal(k.cli->ops->writev(k.cli, k.fd[1], &(struct iovec){ "0123456789", 10 }, 1), 10);
    char small[8];
    assert_int_equal(k.srv->ops->read(k.srv, k.fd[0], small, 4), 4);
    assert_true(gh_transport_pending(k.srv));
    size_t n = 4;
    while (gh_transport_pending(k.srv)) {
        ssize_t r = k.srv->ops->read(k.srv, k.fd[0], small, sizeof(small));
        assert_true(r > 0);
        n += (size_t)r;
    }
    assert_int_equal(n, 30);
    assert_int_equal(k.srv->ops->read(k.srv, k.fd[0], small, sizeof(small)), -EAGAIN);
    assert_int_equal(k.srv->want, GH_WANT_READ);
    assert_false(gh_transport_pending(&gh_transport_plain));

    /* close_notify from the client is a clean EOF, and stays one */
    k.cli->ops->destroy(k.cli);
    k.cli = NULL;
    assert_int_equal(k.srv->ops->read(k.srv, k.fd[0], small, sizeof(small)), 0);
    assert_int_equal(k.srv->ops->read(k.srv, k.fd[0], small, sizeof(small)), 0);
    close_link(&k);

    /* a peer that just goes away is an EOF too */
    open_link(&k, s, c, "a.example.com");
    shutdown(k.fd[1], SHUT_RDWR);
    assert_int_equal(k.srv->ops->read(k.srv, k.fd[0], small, sizeof(small)), 0);
    close_link(&k);

    free(big);
    free(got);
}

/* Freeing the server while a connection is open only drops a reference. */
/* A client may send its request in the same flight as its Finished: the
 * server's handshake reads it along (read-ahead), so the socket will not
 * become readable for it again. pending() says it is there. */
static void test_data_after_handshake(void **state)
{
    gh_tls_server *s = servers[L_SNI];
    gh_tls_client *c = clients[U_TRUSTING];
    tlink k = { 0 };
    char buf[64];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, k.fd), 0);
    k.srv = gh_tls_accept(s, k.fd[0]);
    k.cli = gh_tls_connect(c, k.fd[1], "a.example.com");
    assert_int_equal(gh_transport_handshake(k.cli, k.fd[1]), -EAGAIN);   /* ClientHello out */
    assert_int_equal(gh_transport_handshake(k.srv, k.fd[0]), -EAGAIN);   /* ServerHello..Finished out */
    assert_int_equal(gh_transport_handshake(k.cli, k.fd[1]), 0);         /* TLS 1.3: done first */
    assert_int_equal(k.cli->ops->writev(k.cli, k.fd[1], &(struct iovec){ "GET /", 5 }, 1), 5);
    assert_int_equal(gh_transport_handshake(k.srv, k.fd[0]), 0);
    assert_true(gh_transport_pending(k.srv));
    assert_int_equal(k.srv->ops->read(k.srv, k.fd[0], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "GET /", 5);
    close_link(&k);
}

/* Plain HTTP on a TLS listener: seen on the first byte, answered 400 in
 * clear text, the handshake fails with a reason for the log. Before any
 * byte, the handshake waits for one (nothing is sent). */
static void test_plain_http_answered(void **state)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    tlink k = { 0 };
    char buf[1024];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, k.fd), 0);
    k.srv = gh_tls_accept(servers[L_SNI], k.fd[0]);
    assert_int_equal(gh_transport_handshake(k.srv, k.fd[0]), -EAGAIN);
    assert_int_equal(k.srv->want, GH_WANT_READ);
    assert_int_equal(read(k.fd[1], buf, sizeof(buf)), -1);   /* nothing said yet */
    assert_int_equal(write(k.fd[1], req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    assert_true(gh_transport_handshake(k.srv, k.fd[0]) < 0);
    assert_non_null(strstr(gh_tls_error(k.srv), "plain HTTP"));
    ssize_t n = read(k.fd[1], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_non_null(strstr(buf, "\"code\":\"bad_request\""));
    assert_non_null(strstr(buf, "plain HTTP was sent to a TLS port"));
    assert_int_equal(read(k.fd[1], buf, sizeof(buf)), 0);   /* and the write side is shut */
    close_link(&k);
}

static void test_lifetime(void **state)
{
    gh_diag d;
    gh_diag_init(&d, cfg->file);
    gh_config *own = gh_config_load_file(cfg->file, &d);
    assert_non_null(own);
    gh_tls_server *s = gh_tls_server_new(own, &own->listens[L_SNI], &d);
    gh_tls_client *c = gh_tls_client_new(own, &own->upstreams[U_TRUSTING], &d);
    assert_int_equal(d.n, 0);
    gh_diag_free(&d);
    tlink k = { 0 };
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, k.fd), 0);
    k.srv = gh_tls_accept(s, k.fd[0]);
    k.cli = gh_tls_connect(c, k.fd[1], "x.b.example.com");
    gh_tls_server_free(s);      /* before the ClientHello: SNI still works */
    gh_tls_client_free(c);
    gh_config_free(own);        /* the contexts keep nothing of the configuration */
    drive(&k);
    assert_int_equal(k.rs, 0);
    assert_int_equal(k.rc, 0);
    char cn[256];
    assert_string_equal(server_cn(&k, cn, sizeof(cn)), "wild");
    close_link(&k);             /* the last references go here (ASan checks) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_values),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_context_errors),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_upstream_verify),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_data_after_handshake),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_plain_http_answered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
