/* context.c — SSL_CTX objects from `listen[].tls` and `upstreams.*.tls`.
 *
 * Server: one SSL_CTX per certificate, all with the same settings; every
 * connection starts on the first (the default) and the servername callback
 * moves it to the certificate that names the requested host. Session
 * tickets and the session cache belong to the SSL_CTX a connection started
 * on (OpenSSL's session_ctx), so they work the same whichever certificate
 * SNI picks. Client: one SSL_CTX per upstream. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tls/tls_int.h"

/* TLS 1.2 suites offered by listeners: forward secret and AEAD only. TLS
 * 1.3 suites (all of them both) keep OpenSSL's defaults. */
static const char server_ciphers_12[] = "ECDHE+AESGCM:ECDHE+CHACHA20";

/* Session caching with client verification needs an id context, or
 * OpenSSL refuses to resume; every ctx of a server gets the same one. */
static const unsigned char session_id_ctx[] = "gatehouse";

/* Partial writes and a moving write buffer: transport.c hands SSL_write
 * either a caller's iovec or its own staging buffer, and counts progress
 * record by record. Buffers are released while a connection is idle
 * (keep-alive connections are mostly idle). */
static const long ssl_modes =
    SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS;

/* Encrypted private keys would make OpenSSL prompt on the terminal: refuse. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Why the last OpenSSL call failed, in words; empties the error queue.
 * The queue holds the root cause first and wrappers ("PEM lib") after;
 * the causes users meet most get plainer words. */
static const char *ossl_reason(char *buf, size_t cap)
{
    unsigned long e, first = 0;
    const char *plain = NULL;
    while ((e = ERR_get_error()) != 0) {
        if (!first)
            first = e;
        int lib = ERR_GET_LIB(e), why = ERR_GET_REASON(e);
        if (lib == ERR_LIB_PEM && why == PEM_R_NO_START_LINE)
            plain = "no PEM data found";
        else if (lib == ERR_LIB_PEM &&
                 (why == PEM_R_BAD_PASSWORD_READ || why == PEM_R_PROBLEMS_GETTING_PASSWORD))
            plain = "encrypted keys are not supported";
        else if (lib == ERR_LIB_X509 && why == X509_R_NO_CERTIFICATE_OR_CRL_FOUND)
            plain = "no PEM certificate found";
        else if (lib == ERR_LIB_OSSL_DECODER && why == ERR_R_UNSUPPORTED && !plain)
            plain = "no PEM private key found";   /* what the decoders say about a file without one */
    }
    if (plain)
        return plain;
    const char *r = first ? ERR_reason_error_string(first) : "unknown error";
    if (!r) {
        ERR_error_string_n(first, buf, cap);
        r = buf;
    }
    return r;
}

static const char *shown(const gh_config *cfg, gh_str path)
{
    return gh_config_show(cfg, path).p;
}

/* Opening the file ourselves gives the system's reason (no such file,
 * permission denied, is a directory) instead of OpenSSL's "system lib". */
static bool readable(gh_diag *diag, const gh_config *cfg, gh_str path, gh_mark at, const char *what)
{
    FILE *f = fopen(path.p, "r");
    int err = 0;
    if (!f) {
        err = errno;
    } else {
        if (fgetc(f) == EOF && ferror(f))
            err = errno ? errno : EIO;
        fclose(f);
    }
    if (!err)
        return true;
    gh_diag_error(diag, at, "cannot read %s '%s': %s", what, shown(cfg, path), strerror(err));
    return false;
}

static void warn_expired(gh_diag *diag, const gh_config *cfg, X509 *x, gh_str path, gh_mark at)
{
    const ASN1_TIME *na = X509_get0_notAfter(x);
    struct tm tm;
    char day[32] = "?";
    if (X509_cmp_current_time(na) >= 0)
        return;
    if (ASN1_TIME_to_tm(na, &tm) == 1)
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    gh_diag_warn(diag, at, "certificate '%s' expired on %s", shown(cfg, path), day);
}

/* cert (leaf then chain) and key into ctx; errors at the key naming the file. */
static bool load_pair(SSL_CTX *ctx, const gh_config *cfg, gh_diag *diag, gh_str cert, gh_mark cert_at,
                      gh_str key, gh_mark key_at)
{
    char buf[256];
    if (!readable(diag, cfg, cert, cert_at, "certificate"))
        return false;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.p) != 1) {
        gh_diag_error(diag, cert_at, "cannot load certificate '%s': %s", shown(cfg, cert),
                      ossl_reason(buf, sizeof(buf)));
        return false;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    warn_expired(diag, cfg, leaf, cert, cert_at);
    if (!readable(diag, cfg, key, key_at, "key"))
        return false;
    BIO *bio = BIO_new_file(key.p, "r");
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
    BIO_free(bio);
    if (!pk) {
        gh_diag_error(diag, key_at, "cannot load key '%s': %s", shown(cfg, key),
                      ossl_reason(buf, sizeof(buf)));
        return false;
    }
    bool ok = X509_check_private_key(leaf, pk) == 1;
    if (!ok)
        gh_diag_error(diag, key_at, "key '%s' does not match certificate '%s' (%s)", shown(cfg, key),
                      shown(cfg, cert), ossl_reason(buf, sizeof(buf)));
    else if (SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
        gh_diag_error(diag, key_at, "cannot use key '%s': %s", shown(cfg, key),
                      ossl_reason(buf, sizeof(buf)));
        ok = false;
    }
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return ok;
}

static void set_common(SSL_CTX *ctx, int min_version)
{
    SSL_CTX_set_min_proto_version(ctx, min_version ? min_version : TLS1_2_VERSION);
    /* compression invites CRIME; renegotiation is a DoS lever and HTTP/2
     * forbids it; a peer that closes without close_notify is an EOF (HTTP
     * framing, not TLS, tells a truncated message) */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, ssl_modes);
    /* one read(2) brings several records instead of header, then body */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
}

/* ---------------------------------------------------------------- server */

static bool add_name(gh_tls_server *s, const unsigned char *p, size_t len, size_t ctx)
{
    if (len && p[len - 1] == '.')
        len--;
    if (len == 0 || len > 253 || memchr(p, '\0', len))
        return true;   /* not a usable host name: nothing to match */
    if (s->nnames % 8 == 0) {
        gh_tls_name *n = realloc(s->names, (s->nnames + 8) * sizeof(*n));
        if (!n)
            return false;
        s->names = n;
    }
    char *name = malloc(len + 1);
    if (!name)
        return false;
    for (size_t i = 0; i < len; i++)
        name[i] = gh_lower((char)p[i]);
    name[len] = '\0';
    s->names[s->nnames++] = (gh_tls_name){ .name = name, .ctx = ctx };
    return true;
}

/* The names SNI can pick this certificate by: its DNS subjectAltNames, or
 * its common names when it has none (as browsers once did). */
static bool collect_names(gh_tls_server *s, X509 *x, size_t ctx)
{
    size_t before = s->nnames;
    bool ok = true;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && ok && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            ok = add_name(s, ASN1_STRING_get0_data(g->d.dNSName),
                          (size_t)ASN1_STRING_length(g->d.dNSName), ctx);
    }
    GENERAL_NAMES_free(sans);
    if (s->nnames > before || !ok)
        return ok;
    const X509_NAME *subj = X509_get_subject_name(x);
    for (int i = -1; ok && (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
        unsigned char *cn = NULL;
        int len = ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
        if (len > 0)
            ok = add_name(s, cn, (size_t)len, ctx);
        OPENSSL_free(cn);
    }
    return ok;
}

/* Which certificate serves host (lower-case): an exact name first, then a
 * wildcard covering exactly the first label, else the default (0). */
static size_t find_ctx(const gh_tls_server *s, const char *host, size_t len)
{
    for (size_t i = 0; i < s->nnames; i++)
        if (strcmp(s->names[i].name, host) == 0)
            return s->names[i].ctx;
    const char *dot = memchr(host, '.', len);
    if (!dot || dot == host)
        return 0;
    for (size_t i = 0; i < s->nnames; i++) {
        const char *n = s->names[i].name;
        if (n[0] == '*' && n[1] == '.' && strcmp(n + 1, dot) == 0)
            return s->names[i].ctx;
    }
    return 0;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    const gh_tls_server *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char host[256];
    size_t len = name ? strlen(name) : 0;
    if (s->nctx < 2 || len == 0 || len >= sizeof(host))
        return SSL_TLSEXT_ERR_OK;   /* the default certificate */
    for (size_t i = 0; i < len; i++)
        host[i] = gh_lower(name[i]);
    if (host[len - 1] == '.')
        len--;
    host[len] = '\0';
    size_t i = find_ctx(s, host, len);
    if (i != 0 && SSL_get_SSL_CTX(ssl) != s->ctx[i] && !SSL_set_SSL_CTX(ssl, s->ctx[i])) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Our preference, not the client's: h2 when the listener serves it. The
 * h1 codec serves http/1.0 too. No protocol in common is a fatal
 * no_application_protocol alert (RFC 7301 §3.2). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    static const char *const ours[] = { "h2", "http/1.1", "http/1.0" };
    const gh_tls_server *s = arg;
    (void)ssl;
    for (size_t k = s->http2 ? 0 : 1; k < sizeof(ours) / sizeof(ours[0]); k++) {
        size_t klen = strlen(ours[k]);
        for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
            unsigned plen = in[i];
            if (i + 1 + plen > inlen)
                break;
            if (plen == klen && memcmp(in + i + 1, ours[k], klen) == 0) {
                *out = in + i + 1;
                *outlen = (unsigned char)plen;
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* client_cert: optional — verify, but let the handshake go on whatever the
 * result: the failure stays in SSL_get_verify_result, so the connection
 * reports no verified subject. */
static int accept_unverified(int ok, X509_STORE_CTX *x)
{
    (void)ok, (void)x;
    return 1;
}

static SSL_CTX *server_ctx(gh_tls_server *s, const gh_tls_listen_cfg *tls)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    set_common(ctx, tls->min_version);
    /* the client picks among these; all are strong */
    SSL_CTX_set_cipher_list(ctx, server_ciphers_12);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, session_id_ctx, sizeof(session_id_ctx) - 1);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, s);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, s);
    return ctx;
}

/* mTLS: the same CA store and CA list (sent in CertificateRequest) on every
 * ctx, since SNI may switch a connection to any of them. */
static bool setup_client_ca(gh_tls_server *s, const gh_config *cfg, const gh_tls_listen_cfg *tls,
                            gh_diag *diag)
{
    char buf[256];
    if (tls->client_cert == GH_CLIENT_CERT_NONE || tls->client_ca.len == 0)
        return true;
    if (!readable(diag, cfg, tls->client_ca, tls->client_ca_mark, "client_ca"))
        return false;
    ERR_clear_error();
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509_NAME) *names = NULL;
    bool ok = false;
    if (!store || X509_STORE_load_file(store, tls->client_ca.p) != 1) {
        gh_diag_error(diag, tls->client_ca_mark, "cannot load client_ca '%s': %s", shown(cfg, tls->client_ca),
                      ossl_reason(buf, sizeof(buf)));
        goto out;
    }
    names = SSL_load_client_CA_file(tls->client_ca.p);
    if (!names || sk_X509_NAME_num(names) == 0) {
        gh_diag_error(diag, tls->client_ca_mark, "no CA certificate in client_ca '%s'",
                      shown(cfg, tls->client_ca));
        goto out;
    }
    int mode = SSL_VERIFY_PEER;
    if (tls->client_cert == GH_CLIENT_CERT_REQUIRED)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    for (size_t i = 0; i < s->nctx; i++) {
        STACK_OF(X509_NAME) *copy = SSL_dup_CA_list(names);
        if (!copy) {
            gh_diag_error(diag, tls->client_ca_mark, "out of memory");
            goto out;
        }
        SSL_CTX_set1_cert_store(s->ctx[i], store);
        SSL_CTX_set_client_CA_list(s->ctx[i], copy);
        SSL_CTX_set_verify(s->ctx[i], mode,
                           tls->client_cert == GH_CLIENT_CERT_OPTIONAL ? accept_unverified : NULL);
    }
    ok = true;
out:
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok;
}

void gh_tls_server_ref(gh_tls_server *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void gh_tls_server_free(gh_tls_server *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->nctx; i++)
        SSL_CTX_free(s->ctx[i]);
    for (size_t i = 0; i < s->nnames; i++)
        free(s->names[i].name);
    free(s->names);
    free(s->ctx);
    free(s);
}

gh_tls_server *gh_tls_server_new(const gh_config *cfg, const gh_listen_cfg *l, gh_diag *diag)
{
    const gh_tls_listen_cfg *tls = l->tls;
    if (!tls || tls->ncertificates == 0) {
        gh_diag_error(diag, l->mark, "tls needs certificates");
        return NULL;
    }
    gh_tls_server *s = calloc(1, sizeof(*s));
    if (s)
        s->ctx = calloc(tls->ncertificates, sizeof(*s->ctx));
    if (!s || !s->ctx) {
        free(s);
        gh_diag_error(diag, l->mark, "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->http2 = l->http2;
    bool ok = true;
    /* every certificate is tried, so that `check` reports all bad files */
    for (size_t i = 0; i < tls->ncertificates; i++) {
        const gh_cert_cfg *c = &tls->certificates[i];
        SSL_CTX *ctx = server_ctx(s, tls);
        if (!ctx) {
            gh_diag_error(diag, c->mark, "out of memory");
            ok = false;
            break;
        }
        s->ctx[s->nctx++] = ctx;
        if (!load_pair(ctx, cfg, diag, c->cert, c->cert_mark, c->key, c->key_mark)) {
            ok = false;
            continue;
        }
        if (!collect_names(s, SSL_CTX_get0_certificate(ctx), i)) {
            gh_diag_error(diag, c->mark, "out of memory");
            ok = false;
        }
    }
    if (ok)
        ok = setup_client_ca(s, cfg, tls, diag);
    if (!ok) {
        gh_tls_server_free(s);
        return NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- client */

void gh_tls_client_ref(gh_tls_client *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void gh_tls_client_free(gh_tls_client *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(c->ctx);
    free(c->sni);
    free(c);
}

/* alpn: wire format (length-prefixed names), NULL = none offered */
static gh_tls_client *client_new(const gh_config *cfg, const gh_tls_upstream_cfg *tls, const unsigned char *alpn,
                                 size_t alpn_len, gh_diag *diag)
{
    char buf[256];
    gh_tls_client *c = calloc(1, sizeof(*c));
    if (!c) {
        gh_diag_error(diag, tls->mark, "out of memory");
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->verify = tls->verify;
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (tls->sni.len)
        c->sni = strdup(tls->sni.p);
    if (!c->ctx || (tls->sni.len && !c->sni)) {
        gh_diag_error(diag, tls->mark, "out of memory");
        gh_tls_client_free(c);
        return NULL;
    }
    set_common(c->ctx, TLS1_2_VERSION);
    bool ok = true;
    ERR_clear_error();
    if (!tls->verify) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
        if (tls->ca.len)
            gh_diag_warn(diag, tls->ca_mark, "ca is not used with verify: false");
    } else {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        if (tls->ca.len) {
            ok = readable(diag, cfg, tls->ca, tls->ca_mark, "ca");
            if (ok && SSL_CTX_load_verify_locations(c->ctx, tls->ca.p, NULL) != 1) {
                gh_diag_error(diag, tls->ca_mark, "cannot load ca '%s': %s", shown(cfg, tls->ca),
                              ossl_reason(buf, sizeof(buf)));
                ok = false;
            }
        } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
            gh_diag_error(diag, tls->mark, "cannot load the system's CA certificates: %s",
                          ossl_reason(buf, sizeof(buf)));
            ok = false;
        }
    }
    if (tls->cert.len && !load_pair(c->ctx, cfg, diag, tls->cert, tls->cert_mark, tls->key, tls->key_mark))
        ok = false;
    if (alpn && SSL_CTX_set_alpn_protos(c->ctx, alpn, (unsigned)alpn_len) != 0) {
        gh_diag_error(diag, tls->mark, "out of memory");
        ok = false;
    }
    ERR_clear_error();
    if (!ok) {
        gh_tls_client_free(c);
        return NULL;
    }
    return c;
}

gh_tls_client *gh_tls_client_new(const gh_config *cfg, const gh_upstream_cfg *u, gh_diag *diag)
{
    if (!u->tls) {
        gh_diag_error(diag, u->mark, "upstream has no tls settings");
        return NULL;
    }
    /* wire format: length-prefixed protocol names, ours in preference order */
    static const unsigned char alpn_h1[] = "\x08http/1.1";
    static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1";
    bool h2 = u->protocol == GH_PROTO_H2;
    return client_new(cfg, u->tls, h2 ? alpn_h2 : alpn_h1, h2 ? sizeof(alpn_h2) - 1 : sizeof(alpn_h1) - 1, diag);
}

gh_tls_client *gh_tls_client_new_plain(const gh_config *cfg, const gh_tls_upstream_cfg *tls, gh_diag *diag)
{
    return client_new(cfg, tls, NULL, 0, diag);
}
