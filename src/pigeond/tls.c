/*
 * tls.c - TLS contexts and the TLS transport (see tls.h).
 *
 * Layers, top-down: OpenSSL's errors in words; contexts; the transport's
 * operations (handshake, read, write, close); making a transport.
 *
 * State: a context is made and freed on the main loop (start, reload); the
 * handshake ration lives in the context and is touched only by the loop
 * its listener accepts on.  The counters are process-wide and atomic.
 *
 * Unclean closes.  OpenSSL 3 reports a peer that closes the TCP connection
 * without close_notify as an error (SSL_R_UNEXPECTED_EOF_WHILE_READING;
 * libevent#1212 trips on it).  For a broker that is an ordinary close: the
 * frames are self-delimiting, so truncation cannot be mistaken for data.
 * SSL_OP_IGNORE_UNEXPECTED_EOF makes it a clean end of stream.
 */
#include "tls.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "transport.h"
#include "xalloc.h"

struct tls_ctx {
    uint32_t refs; /* the listener's, and each transport's (main loop only) */
    SSL_CTX *ssl;  /* holds one reference; each SSL made from it another */
    bool verify_clients;
    uint64_t window_ns; /* the handshake ration's current window */
    uint32_t in_window; /* handshake steps taken in it */
};

struct tls_transport {
    struct transport t; /* first: a struct transport * is a struct tls_transport * */
    struct tls_ctx *ctx; /* holds a reference: the listener may swap its context */
    SSL *ssl;            /* owned */
    bool handshaken;
    bool failed;
    char cn[65]; /* the verified client certificate's CN, or "" */
};

static _Atomic uint64_t hs_in_flight, hs_done, hs_failed;

static const struct transport_ops tls_ops;

/* ------------------------------------------------------------- errors ---- */

/* Appends OpenSSL's queued errors to ERR (after WHAT), and clears the queue. */
static void tls_error(char *err, size_t errlen, const char *what)
{
    unsigned long e;
    size_t used = (size_t)snprintf(err, errlen, "%s", what);

    while ((e = ERR_get_error()) != 0 && used + 3 < errlen) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        used += (size_t)snprintf(err + used, errlen - used, ": %s", buf);
    }
    ERR_clear_error();
}

/* ----------------------------------------------------------- contexts ---- */

int tls_ctx_new(const struct tls_files *files, struct tls_ctx **out, char *err, size_t errlen)
{
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    char what[512];

    if (ssl == NULL) {
        tls_error(err, errlen, "cannot create an OpenSSL context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_SERVER);
    if (SSL_CTX_use_certificate_chain_file(ssl, files->cert) != 1) {
        snprintf(what, sizeof(what), "tls_cert %s", files->cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl, files->key, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "tls_key %s", files->key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ssl) != 1) {
        snprintf(what, sizeof(what), "tls_key %s does not match tls_cert %s", files->key,
                 files->cert);
        goto fail;
    }
    if (files->ca != NULL) {
        if (SSL_CTX_load_verify_locations(ssl, files->ca, NULL) != 1) {
            snprintf(what, sizeof(what), "tls_ca %s", files->ca);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(files->ca);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(ssl, names);
        /* Asked for, and checked when given; a client without one may still
         * authenticate with hello (the listener's auth decides). */
        SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    }
    struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));
    ctx->refs = 1;
    ctx->ssl = ssl;
    ctx->verify_clients = files->ca != NULL;
    *out = ctx;
    return 0;
fail:
    tls_error(err, errlen, what);
    SSL_CTX_free(ssl);
    return -1;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (ctx == NULL || --ctx->refs > 0)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

bool tls_ctx_verifies_clients(const struct tls_ctx *ctx)
{
    return ctx->verify_clients;
}

/* True when the ration lets CTX take one more handshake step now. */
static bool tls_ration_ok(struct tls_ctx *ctx)
{
    uint64_t now = clock_now_ns();

    if (now - ctx->window_ns >= TLS_WINDOW_NS) {
        ctx->window_ns = now;
        ctx->in_window = 0;
    }
    if (ctx->in_window >= TLS_HANDSHAKES_PER_WINDOW)
        return false;
    ctx->in_window++;
    return true;
}

/* ---------------------------------------------------------- transport ---- */

static struct tls_transport *tls_of(struct transport *t)
{
    return (struct tls_transport *)t;
}

/* The CN of the verified peer certificate, into TT->cn. */
static void tls_take_cn(struct tls_transport *tt)
{
    X509 *cert = SSL_get1_peer_certificate(tt->ssl);

    tt->cn[0] = '\0';
    if (cert == NULL)
        return;
    if (SSL_get_verify_result(tt->ssl) == X509_V_OK) {
        X509_NAME *subject = X509_get_subject_name(cert);
        int n = X509_NAME_get_text_by_NID(subject, NID_commonName, tt->cn, sizeof(tt->cn));
        if (n < 0 || (size_t)n >= sizeof(tt->cn) || memchr(tt->cn, '\0', (size_t)n) != NULL)
            tt->cn[0] = '\0'; /* none, too long, or with a NUL inside: no name */
    }
    X509_free(cert);
}

/* What a failed SSL call with return value RC means: AGAIN (with *WANT), CLOSED or FAILED. */
static ssize_t tls_outcome(struct tls_transport *tt, int rc, short *want)
{
    switch (SSL_get_error(tt->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        *want = EV_READ;
        return TRANSPORT_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = EV_WRITE;
        return TRANSPORT_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return TRANSPORT_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (errno == EAGAIN || errno == EINTR) {
            *want = EV_READ;
            return TRANSPORT_AGAIN;
        }
        ERR_clear_error();
        return errno == 0 ? TRANSPORT_CLOSED : TRANSPORT_FAILED;
    default:
        ERR_clear_error();
        return TRANSPORT_FAILED;
    }
}

/* Takes the handshake one step.  0 once done, else AGAIN (with *WANT) or FAILED. */
static ssize_t tls_handshake(struct tls_transport *tt, short *want)
{
    if (tt->handshaken)
        return 0;
    if (!tls_ration_ok(tt->ctx)) {
        *want = EV_READ; /* offered again at the next poll */
        return TRANSPORT_AGAIN;
    }
    int rc = SSL_accept(tt->ssl);
    if (rc == 1) {
        tt->handshaken = true;
        atomic_fetch_sub(&hs_in_flight, 1);
        atomic_fetch_add(&hs_done, 1);
        tls_take_cn(tt);
        return 0;
    }
    ssize_t r = tls_outcome(tt, rc, want);
    if (r != TRANSPORT_AGAIN) {
        r = TRANSPORT_FAILED; /* even a clean close: the handshake did not happen */
        if (!tt->failed) {
            tt->failed = true;
            atomic_fetch_sub(&hs_in_flight, 1);
            atomic_fetch_add(&hs_failed, 1);
        }
    }
    return r;
}

static ssize_t tls_read(struct transport *t, void *buf, size_t len, short *want)
{
    struct tls_transport *tt = tls_of(t);
    ssize_t r = tls_handshake(tt, want);

    if (r < 0)
        return r;
    int n = SSL_read(tt->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    return n > 0 ? n : tls_outcome(tt, n, want);
}

/*
 * Writes up to MAX bytes of OUT, TLS_RECORD at a time: each is made
 * contiguous first (evbuffer_pullup copies only when it spans chains), so
 * every record is full however the output is cut into chains.
 */
static ssize_t tls_write(struct transport *t, struct evbuffer *out, size_t max, short *want)
{
    struct tls_transport *tt = tls_of(t);
    size_t done = 0;
    ssize_t r = tls_handshake(tt, want);

    if (r == TRANSPORT_AGAIN)
        return 0;
    if (r < 0)
        return r;
    while (done < max) {
        size_t left = evbuffer_get_length(out);
        size_t n = left < TLS_RECORD ? left : TLS_RECORD;
        if (n > max - done)
            n = max - done;
        if (n == 0)
            break;
        const unsigned char *p = evbuffer_pullup(out, (ev_ssize_t)n);
        int w = SSL_write(tt->ssl, p, (int)n);
        if (w <= 0) {
            r = tls_outcome(tt, w, want);
            return r == TRANSPORT_AGAIN ? (ssize_t)done : TRANSPORT_FAILED;
        }
        evbuffer_drain(out, (size_t)w);
        done += (size_t)w;
    }
    *want = EV_WRITE;
    return (ssize_t)done;
}

static size_t tls_pending(const struct transport *t)
{
    const struct tls_transport *tt = (const struct tls_transport *)t;
    return tt->handshaken ? (size_t)SSL_pending(tt->ssl) : 0;
}

static bool tls_ready(const struct transport *t)
{
    return ((const struct tls_transport *)t)->handshaken;
}

static void tls_shutdown(struct transport *t)
{
    struct tls_transport *tt = tls_of(t);

    if (tt->handshaken) {
        SSL_shutdown(tt->ssl); /* close_notify, best effort: never waits */
        ERR_clear_error();
    }
}

static void tls_free(struct transport *t)
{
    struct tls_transport *tt = tls_of(t);

    if (!tt->handshaken && !tt->failed)
        atomic_fetch_sub(&hs_in_flight, 1);
    SSL_free(tt->ssl);
    tls_ctx_free(tt->ctx);
    evutil_closesocket(t->fd);
    free(tt);
}

static void tls_describe(const struct transport *t, char *buf, size_t len)
{
    const struct tls_transport *tt = (const struct tls_transport *)t;

    if (!tt->handshaken) {
        snprintf(buf, len, "TLS handshake");
        return;
    }
    snprintf(buf, len, "%s %s%s%s", SSL_get_version(tt->ssl), SSL_get_cipher_name(tt->ssl),
             tt->cn[0] ? " cn=" : "", tt->cn);
}

static const struct transport_ops tls_ops = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .pending = tls_pending,
    .ready = tls_ready,
    .shutdown = tls_shutdown,
    .free = tls_free,
    .describe = tls_describe,
};

struct transport *tls_transport_new(struct tls_ctx *ctx, evutil_socket_t fd,
                                    const struct sockaddr *peer, socklen_t peerlen)
{
    SSL *ssl = SSL_new(ctx->ssl);

    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        evutil_closesocket(fd);
        return NULL;
    }
    struct transport *plain = transport_socket_new(fd, peer, peerlen, NULL);
    struct tls_transport *tt = xcalloc(1, sizeof(*tt));
    tt->t = *plain; /* the fd, the peer's words, TCP_NODELAY set */
    free(plain);
    tt->t.ops = &tls_ops;
    tt->ctx = ctx;
    ctx->refs++;
    tt->ssl = ssl;
    SSL_set_accept_state(ssl);
    atomic_fetch_add(&hs_in_flight, 1);
    return &tt->t;
}

bool tls_is(const struct transport *t)
{
    return t->ops == &tls_ops;
}

const char *tls_peer_cn(const struct transport *t)
{
    const struct tls_transport *tt = (const struct tls_transport *)t;
    return tls_is(t) && tt->cn[0] ? tt->cn : NULL;
}

uint64_t tls_handshakes_in_flight(void)
{
    return atomic_load(&hs_in_flight);
}

uint64_t tls_handshakes_done(void)
{
    return atomic_load(&hs_done);
}

uint64_t tls_handshakes_failed(void)
{
    return atomic_load(&hs_failed);
}
