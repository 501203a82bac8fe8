/*
 * tls.c - TLS for tls:// addresses (see tls.h).
 *
 * Layers, top-down: a BIO that sends without SIGPIPE; contexts; one
 * connection's handshake, reads and writes; what a failure means in words.
 *
 * Non-blocking throughout: every SSL call either completes or says, through
 * SSL_get_error, which way the socket must become ready first; the
 * transport waits for that with its events and calls again.  Reads use
 * read-ahead (OpenSSL takes what the socket has, not one record header at
 * a time), so bytes can wait inside OpenSSL with the socket drained:
 * tls_has_pending tells the transport to read again without an event.
 *
 * Unclean closes.  A broker that goes away without close_notify (killed,
 * restarted) is an ordinary end of stream here, as pigeond treats its
 * clients (SSL_OP_IGNORE_UNEXPECTED_EOF): frames are self-delimiting, so
 * a cut-off stream cannot be mistaken for a complete one.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "addr.h"

/* Bytes OpenSSL reads ahead per read(): several records per system call. */
#define TLS_READ_AHEAD (64 * 1024)

struct tls_ctx {
    SSL_CTX *ssl;           /* owned */
    BIO_METHOD *bio_method; /* owned: tls_bio_* below */
    bool no_verify;
};

/* The socket under one connection, as the BIO sees it. */
struct tls_io {
    int fd;     /* borrowed */
    bool eof;   /* recv() returned 0 */
    int syserr; /* the last failed send() or recv(), else 0 */
};

struct tls_conn {
    SSL *ssl; /* owned; owns the BIO */
    struct tls_io io;
    bool verify; /* the broker's certificate is checked (not no_verify) */
    bool handshaken;
    bool failed; /* a TLS_FAILED was returned: every later call fails the same */
    int syserr;  /* why, when the socket failed */
    char host[ADDR_HOST_MAX + 1];
    char why[TLS_ERR_MAX];
};

/* ------------------------------------------------------------ the BIO --- */

static int tls_bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    struct tls_io *io = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do {
        n = send(io->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        *written = (size_t)n;
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_write(b);
    else
        io->syserr = errno;
    return 0;
}

static int tls_bio_read(BIO *b, char *buf, size_t len, size_t *readbytes)
{
    struct tls_io *io = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do {
        n = recv(io->fd, buf, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        *readbytes = (size_t)n;
        return 1;
    }
    if (n == 0)
        io->eof = true; /* BIO_eof: OpenSSL reads it as the end of the stream */
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_read(b);
    else
        io->syserr = errno;
    return 0;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    const struct tls_io *io = BIO_get_data(b);

    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* nothing is buffered here */
    case BIO_CTRL_EOF:
        return io != NULL && io->eof;
    default:
        return 0;
    }
}

static int tls_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *tls_bio_method_new(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pigeon socket");

    if (m == NULL)
        return NULL;
    if (BIO_meth_set_write_ex(m, tls_bio_write) != 1 ||
        BIO_meth_set_read_ex(m, tls_bio_read) != 1 || BIO_meth_set_ctrl(m, tls_bio_ctrl) != 1 ||
        BIO_meth_set_create(m, tls_bio_create) != 1) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ----------------------------------------------------------- contexts --- */

/* Writes "WHAT 'PATH': REASON" into ERR, REASON from OpenSSL's queue (emptied). */
static int tls_load_failed(char *err, size_t errlen, const char *what, const char *path)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    snprintf(err, errlen, "cannot load %s '%s': %s", what, path,
             reason != NULL ? reason : "not in PEM format?");
    ERR_clear_error();
    return -1;
}

/* Checks that PATH can be opened, so a missing file is named in plain words. */
static int tls_check_file(char *err, size_t errlen, const char *what, const char *path)
{
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(err, errlen, "cannot load %s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* Declines every passphrase: a library must never prompt on the terminal. */
static int tls_no_passphrase_cb(char *buf, int size, int rwflag, void *arg)
{
    return 0;
}

/* The CAs the broker's certificate must chain to. */
static int tls_ctx_load_ca(SSL_CTX *ssl, const char *ca, char *err, size_t errlen)
{
    if (ca == NULL) {
        if (SSL_CTX_set_default_verify_paths(ssl) != 1)
            return tls_load_failed(err, errlen, "the system's CA store", "default paths");
        return 0;
    }
    if (tls_check_file(err, errlen, "CA file", ca) < 0)
        return -1;
    if (SSL_CTX_load_verify_locations(ssl, ca, NULL) != 1)
        return tls_load_failed(err, errlen, "CA file", ca);
    return 0;
}

/* The client certificate CERT and its key KEY (NULL: in CERT's file). */
static int tls_ctx_load_cert(SSL_CTX *ssl, const char *cert, const char *key, char *err,
                             size_t errlen)
{
    if (key == NULL)
        key = cert;
    if (tls_check_file(err, errlen, "certificate file", cert) < 0 ||
        tls_check_file(err, errlen, "key file", key) < 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(ssl, cert) != 1)
        return tls_load_failed(err, errlen, "certificate file", cert);
    if (SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_error()) != X509_R_KEY_VALUES_MISMATCH)
        return tls_load_failed(err, errlen, "key file (unencrypted PEM)", key);
    if (ERR_peek_error() != 0 || SSL_CTX_check_private_key(ssl) != 1) {
        snprintf(err, errlen, "key file '%s' does not match certificate file '%s'", key, cert);
        ERR_clear_error();
        return -1;
    }
    return 0;
}

int tls_ctx_new(const struct tls_settings *st, struct tls_ctx **out, char *err, size_t errlen)
{
    struct tls_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL || (ctx->ssl = SSL_CTX_new(TLS_client_method())) == NULL ||
        (ctx->bio_method = tls_bio_method_new()) == NULL) {
        snprintf(err, errlen, "out of memory for TLS");
        ERR_clear_error();
        tls_ctx_free(ctx);
        return -1;
    }
    SSL_CTX *ssl = ctx->ssl;
    ctx->no_verify = st->no_verify;
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ssl, 1);
    SSL_CTX_set_default_read_buffer_len(ssl, TLS_READ_AHEAD);
    SSL_CTX_set_default_passwd_cb(ssl, tls_no_passphrase_cb);
    SSL_CTX_set_verify(ssl, st->no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if ((!st->no_verify && tls_ctx_load_ca(ssl, st->ca, err, errlen) < 0) ||
        (st->cert != NULL && tls_ctx_load_cert(ssl, st->cert, st->key, err, errlen) < 0)) {
        tls_ctx_free(ctx);
        return -1;
    }
    *out = ctx;
    return 0;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl);
    BIO_meth_free(ctx->bio_method);
    free(ctx);
}

/* --------------------------------------------------------- connections --- */

/* HOST without an IPv6 zone into BARE; true when it is an IP address. */
static bool tls_host_is_ip(const char *host, char *bare, size_t len)
{
    unsigned char a[sizeof(struct in6_addr)];
    size_t n = strcspn(host, "%");

    snprintf(bare, len, "%.*s", (int)n, host);
    return inet_pton(AF_INET, bare, a) == 1 || inet_pton(AF_INET6, bare, a) == 1;
}

/* Names the broker's certificate must carry: T->host, as a DNS name or an IP. */
static int tls_conn_expect_host(struct tls_conn *t)
{
    char bare[ADDR_HOST_MAX + 1];

    if (tls_host_is_ip(t->host, bare, sizeof(bare)))
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), bare) == 1 ? 0 : -1;
    return SSL_set1_host(t->ssl, t->host) == 1 ? 0 : -1;
}

int tls_conn_new(struct tls_ctx *ctx, int fd, const char *host, struct tls_conn **out)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    BIO *bio = NULL;
    char bare[ADDR_HOST_MAX + 1];

    if (t == NULL)
        return -1;
    t->io.fd = fd;
    t->verify = !ctx->no_verify;
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->ssl = SSL_new(ctx->ssl);
    if (t->ssl != NULL)
        bio = BIO_new(ctx->bio_method);
    if (bio == NULL)
        goto fail;
    BIO_set_data(bio, &t->io);
    SSL_set_bio(t->ssl, bio, bio); /* the SSL owns it now */
    if (!tls_host_is_ip(host, bare, sizeof(bare)) && SSL_set_tlsext_host_name(t->ssl, host) != 1)
        goto fail; /* SNI: a name, never an address */
    if (!ctx->no_verify && tls_conn_expect_host(t) < 0)
        goto fail;
    SSL_set_connect_state(t->ssl);
    *out = t;
    return 0;
fail:
    ERR_clear_error();
    tls_conn_free(t);
    return -1;
}

void tls_conn_free(struct tls_conn *t)
{
    if (t == NULL)
        return;
    if (t->ssl != NULL && t->handshaken && !t->failed)
        SSL_shutdown(t->ssl); /* close_notify, best effort: never waits */
    ERR_clear_error();
    SSL_free(t->ssl);
    free(t);
}

bool tls_has_pending(const struct tls_conn *t)
{
    return !t->failed && SSL_has_pending(t->ssl);
}

int tls_conn_error(const struct tls_conn *t, const char **why)
{
    *why = t->why;
    return t->syserr;
}

/* ------------------------------------------------------------ failures --- */

/* Adds a hint to REASON, OpenSSL's, where it is cryptic about a common mistake. */
static const char *tls_hint(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return "";
    switch (ERR_GET_REASON(e)) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
        return " (does the broker speak TLS on this port?)";
    default:
        return "";
    }
}

/* Says why the certificate check failed, with the host where it is the name. */
static void tls_describe_verify(struct tls_conn *t, long vr)
{
    const char *what = X509_verify_cert_error_string(vr);

    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
        snprintf(t->why, sizeof(t->why),
                 "certificate verify failed: %s (the certificate is not "
                 "for '%.64s')",
                 what, t->host);
    else
        snprintf(t->why, sizeof(t->why), "certificate verify failed: %s", what);
}

/*
 * Fills T->why from a failed certificate check or OpenSSL's queue (emptied).
 * The check's result counts only in a handshake that verifies: without
 * verification OpenSSL still records what it found, and goes on.
 */
static void tls_describe(struct tls_conn *t)
{
    long vr = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_error();

    if (t->verify && !t->handshaken && vr != X509_V_OK) {
        tls_describe_verify(t, vr);
    } else if (e != 0) {
        const char *reason = ERR_reason_error_string(e);
        if (reason != NULL)
            snprintf(t->why, sizeof(t->why), "%s%s", reason, tls_hint(e));
        else
            snprintf(t->why, sizeof(t->why), "TLS error %lu", e);
    } else {
        snprintf(t->why, sizeof(t->why), "TLS failed");
    }
    ERR_clear_error();
}

/* Marks T failed (for good) and returns TLS_FAILED. */
static int tls_fail(struct tls_conn *t, int syserr)
{
    t->failed = true;
    t->syserr = syserr;
    if (syserr != 0)
        snprintf(t->why, sizeof(t->why), "%s", strerror(syserr));
    else
        tls_describe(t);
    return TLS_FAILED;
}

/*
 * What a failed SSL call with return value RC means: a tls_status, or 0 at
 * the end of the stream (the broker closed).
 */
static int tls_outcome(struct tls_conn *t, int rc)
{
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        if (t->io.syserr != 0)
            return tls_fail(t, t->io.syserr);
        if (ERR_peek_error() == 0) {
            ERR_clear_error();
            return 0; /* an end of stream OpenSSL did not classify */
        }
        return tls_fail(t, 0);
    default:
        return tls_fail(t, 0);
    }
}

/* ------------------------------------------------------------ the I/O --- */

int tls_handshake(struct tls_conn *t)
{
    if (t->failed)
        return TLS_FAILED;
    if (t->handshaken)
        return 0;
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->handshaken = true;
        return 0;
    }
    int st = tls_outcome(t, rc);
    if (st != 0)
        return st;
    t->failed = true;
    snprintf(t->why, sizeof(t->why), "the broker closed the connection during the handshake");
    return TLS_FAILED;
}

ssize_t tls_read(struct tls_conn *t, void *buf, size_t len)
{
    size_t got = 0, n;

    if (t->failed)
        return TLS_FAILED;
    while (got < len) {
        ERR_clear_error();
        if (SSL_read_ex(t->ssl, (char *)buf + got, len - got, &n) == 1) {
            got += n;
            continue;
        }
        int st = tls_outcome(t, 0);
        /* Hand up what was read first; the end or the failure is reported
         * by the next call (T->failed keeps a failure). */
        return got > 0 ? (ssize_t)got : st;
    }
    return (ssize_t)got;
}

ssize_t tls_write(struct tls_conn *t, const void *data, size_t len)
{
    size_t put = 0, n;

    if (t->failed)
        return TLS_FAILED;
    while (put < len) {
        ERR_clear_error();
        if (SSL_write_ex(t->ssl, (const char *)data + put, len - put, &n) == 1) {
            put += n;
            continue;
        }
        int st = tls_outcome(t, 0);
        if (st == 0) { /* writing after the broker's close_notify */
            t->failed = true;
            t->syserr = EPIPE;
            snprintf(t->why, sizeof(t->why), "%s", strerror(EPIPE));
            st = TLS_FAILED;
        }
        return put > 0 && st != TLS_FAILED ? (ssize_t)put : st;
    }
    return (ssize_t)put;
}
