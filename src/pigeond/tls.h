/*
 * tls.h - TLS for listeners: a context per listener, and the TLS transport.
 *
 * The transport (transport.h) drives OpenSSL 3 on the connection's socket
 * itself: SSL_accept, SSL_read and SSL_write on a non-blocking descriptor,
 * each saying through *want whether it waits for the socket to be readable
 * or writable.  The handshake runs inside the first reads and writes; the
 * connection never sees a byte before it is done.  libevent's
 * bufferevent_openssl is not used: a connection reads into its loop's read
 * block and writes its own evbuffer, which a bufferevent cannot share.
 *
 * Versions: TLS 1.2 and 1.3 only.  Ciphers: OpenSSL's defaults for those
 * versions (its DEFAULT list: forward-secret AEAD suites first), not
 * narrowed here; docs/security.md lists what that means.  Renegotiation is
 * off, so a write never waits for a read.
 *
 * Records.  A connection's output is a chain of small copies and of
 * references to shared blocks; writing each chain as a record would make
 * many small records (libevent 2.1's bufferevent_openssl does exactly that
 * with reference-shared fan-out).  The transport coalesces: it writes up to
 * TLS_RECORD bytes at a time, gathered from as many chains as it takes, so
 * records are full whatever the output's shape.
 *
 * A context holds the listener's certificate, key and, when client
 * certificates are asked for, the CA that must have signed them.  A reload
 * makes a new context and swaps it in: connections already open keep the
 * one they started with (OpenSSL counts its references), new ones get the
 * new certificate, and nothing is dropped.
 *
 * Handshake cost.  A handshake costs the loop real CPU (a signature and a
 * key exchange), so handshake steps are rationed per loop: past
 * TLS_HANDSHAKES_PER_WINDOW in TLS_WINDOW_NS, a connection still
 * handshaking waits for the next window (its socket stays readable, so it
 * is offered again at the next poll).  Connections that are handshaking
 * are counted (tls_handshakes_in_flight), and the connection closes one
 * that has not finished within CONN_HANDSHAKE_MS (conn.h).  The server
 * refuses new TLS connections while TLS_MAX_IN_FLIGHT handshakes are under
 * way, so half-finished handshakes cannot pile up.
 */
#ifndef PIGEON_TLS_H
#define PIGEON_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/util.h>

struct transport;

/* The largest TLS record's plaintext: what one SSL_write is given at most. */
#define TLS_RECORD (16 * 1024)

/* Handshakes under way at most; past it new TLS connections are refused (error 10). */
#define TLS_MAX_IN_FLIGHT 1024

/* Handshake steps the loop may take per window of time. */
#define TLS_WINDOW_NS             (5 * 1000 * 1000)
#define TLS_HANDSHAKES_PER_WINDOW 16

struct tls_ctx;

/* What a listener's TLS is made of: paths, borrowed for the call. */
struct tls_files {
    const char *cert; /* PEM: the certificate, then any intermediates */
    const char *key;  /* PEM: its private key */
    const char *ca;   /* PEM: CAs that client certificates must chain to, or NULL */
};

/*
 * Makes a context from FILES: loads and checks the certificate against the
 * key.  Returns 0 and *OUT (owned by the caller), or -1 with a reason in
 * ERR (OpenSSL's own words included).
 */
int tls_ctx_new(const struct tls_files *files, struct tls_ctx **out, char *err, size_t errlen);

/* Drops the caller's reference to CTX (transports made from it hold their own). NULL is fine. */
void tls_ctx_free(struct tls_ctx *ctx);

/* True when CTX asks clients for a certificate (a CA was given). */
bool tls_ctx_verifies_clients(const struct tls_ctx *ctx);

/*
 * A TLS transport over the accepted socket FD (non-blocking; owned from here
 * on, closed on every path), from PEER.  NULL when OpenSSL could not make
 * the session (FD closed).
 */
struct transport *tls_transport_new(struct tls_ctx *ctx, evutil_socket_t fd,
                                    const struct sockaddr *peer, socklen_t peerlen);

/* True when T is a TLS transport. */
bool tls_is(const struct transport *t);

/*
 * The subject CN of the client certificate T's peer presented and the
 * context's CA verified, or NULL (none, or not verified).  Borrowed for T's
 * life.  Valid once the handshake is done (transport ready).
 */
const char *tls_peer_cn(const struct transport *t);

/* Handshakes under way now, over all TLS transports of the process. */
uint64_t tls_handshakes_in_flight(void);

/* Handshakes finished, and failed, since start. */
uint64_t tls_handshakes_done(void);
uint64_t tls_handshakes_failed(void);

#endif
