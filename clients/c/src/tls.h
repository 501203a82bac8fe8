/*
 * tls.h - TLS for tls:// addresses: a client's OpenSSL context, and TLS on
 * one non-blocking socket.  The transport (transport.c) owns the socket and
 * its events; this module turns its bytes into TLS records and back, and
 * says which way it must wait (read or write) when the socket would block.
 *
 * Verification.  By default the broker's certificate must chain to the CA
 * file given, or to the system's store when none is, and must be for the
 * host connected to: its DNS name (SSL_set1_host, with SNI) or its IP
 * address (X509_VERIFY_PARAM_set1_ip_asc).  `no_verify` turns both off:
 * for tests, never for production.  A client certificate and key are
 * optional; the broker logs a client in as the user its subject CN names.
 *
 * Signals.  OpenSSL's socket BIO writes with write(2), which raises
 * SIGPIPE on a broken connection; this module's BIO sends with
 * MSG_NOSIGNAL instead, so the library still never raises it.
 *
 * Keys are read unencrypted: a passphrase callback that declines is
 * installed, so OpenSSL never prompts on the terminal from inside a
 * library.
 */
#ifndef PIGEON_TLS_H
#define PIGEON_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TLS_ERR_MAX 256 /* room for any message of this module */

/* What a client's TLS connections use (strings borrowed for tls_ctx_new). */
struct tls_settings {
    const char *ca;   /* PEM file of CA certificates; NULL: the system's store */
    const char *cert; /* PEM client certificate (then intermediates), or NULL */
    const char *key;  /* PEM private key of cert; NULL: in cert's file */
    bool no_verify;   /* do not check the broker's certificate at all */
};

struct tls_ctx;
struct tls_conn;

/*
 * Makes a context for SETTINGS: loads the CA file (or the system's store)
 * and the client certificate and key now, so a bad file is reported at
 * once.  Returns 0 and *OUT (the caller's: tls_ctx_free), or -1 with why
 * in ERR (ERRLEN bytes; "cannot load tls_ca 'ca.pem': No such file or
 * directory").
 */
int tls_ctx_new(const struct tls_settings *settings, struct tls_ctx **out, char *err,
                size_t errlen);

/* Frees CTX (after every connection made from it). NULL is fine. */
void tls_ctx_free(struct tls_ctx *ctx);

/* What a call that did not complete waits for. */
enum tls_status {
    TLS_WANT_READ = -1,  /* call again once the socket is readable */
    TLS_WANT_WRITE = -2, /* call again once the socket is writable */
    TLS_FAILED = -3,     /* the connection is unusable: see tls_conn_error */
};

/*
 * Starts TLS as the client on the connected socket FD (borrowed: the
 * caller closes it after tls_conn_free), for HOST (a name or an IP
 * address, checked against the certificate; borrowed for the call).
 * CTX is borrowed and must outlive the connection.  Returns 0 and *OUT
 * (the caller's: tls_conn_free), or -1 when out of memory.
 */
int tls_conn_new(struct tls_ctx *ctx, int fd, const char *host, struct tls_conn **out);

/* Sends close_notify (once the handshake is done; never waits) and frees T. NULL is fine. */
void tls_conn_free(struct tls_conn *t);

/* Takes the handshake a step: 0 once done, else a tls_status. */
int tls_handshake(struct tls_conn *t);

/*
 * Reads up to LEN bytes of plaintext into BUF, as many records as are
 * there.  Returns the bytes read (> 0), 0 at the end of the stream (the
 * broker closed, with or without close_notify: frames are self-delimiting,
 * so a cut cannot pass for data), or a tls_status.
 */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t len);

/*
 * Writes up to LEN bytes of DATA.  Returns the bytes taken (> 0), or a
 * tls_status.  After TLS_WANT_*, call again with at least the bytes that
 * were offered (they may have moved: the buffer may have grown).
 */
ssize_t tls_write(struct tls_conn *t, const void *data, size_t len);

/* True when plaintext or read-ahead bytes wait inside T: read again
 * without waiting for the socket to be readable. */
bool tls_has_pending(const struct tls_conn *t);

/*
 * Why the last call failed (TLS_FAILED): the system's error number when
 * the socket failed (ECONNRESET, ...), else 0 and *WHY (borrowed: valid
 * until T's next call) says what TLS found: "certificate verify failed:
 * unable to get local issuer certificate", "tlsv13 alert certificate
 * required", ...
 */
int tls_conn_error(const struct tls_conn *t, const char **why);

#endif
