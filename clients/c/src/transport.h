/*
 * transport.h - one socket to the broker: connecting, reading whole frames,
 * writing the output in batches.  The client (client.c) owns policy:
 * what to send, when to reconnect; this is only the transport.  (Named
 * apart from pigeond's `struct conn`, the broker's side of a connection.)
 *
 * States: IDLE (no socket), CONNECTING, HANDSHAKING (tls:// only: the TCP
 * connection is made, the TLS handshake under way), UP, and FAILING (the
 * socket is closed and the `down` handler is about to run).  Handlers are never
 * called from inside a transport_* call: a failure met while writing on the
 * caller's behalf is reported from the event loop, so no user callback
 * ever runs inside pigeon_publish and the like.
 *
 * Reading: one read() of up to 256 KiB per wake-up into a contiguous input
 * buffer; the shared frame scanner finds each frame's end without looking
 * at a byte twice, and every complete frame is handed up where it lies.
 * Frames over max_in are refused from their header (PIGEON_EPROTO).  The
 * owner may take the common frames in one pass instead (`quick`); a frame
 * it cannot take whole is scanned, so the bound holds for every frame that
 * is still arriving.
 *
 * Writing: frames are appended to transport_out(); transport_kick
 * schedules one send() for the end of the current loop turn, so a burst of
 * publications goes out in one system call, or sends at once when 64 KiB
 * are waiting.
 * send() uses MSG_NOSIGNAL: no SIGPIPE, and no signal handler needed.
 *
 * TLS.  A transport made with a TLS context speaks TLS on every socket it
 * opens (tls.c does the records); the seam is two functions, one that
 * reads plaintext and one that writes it, each over the plain socket or
 * TLS.  Everything above them (frames, batching, the states) is the same
 * for both.  A TLS call may need the other direction first (a write that
 * waits for a read, or the reverse): that is remembered and retried from
 * the other event.  Failures of TLS itself (the handshake, a certificate,
 * an alert) are PIGEON_ETLS; a socket that fails under TLS is the same
 * PIGEON_ECONNLOST as without it.
 */
#ifndef PIGEON_TRANSPORT_H
#define PIGEON_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "buf.h"

struct event_base;
struct tls_ctx;
struct transport;

struct transport_handlers {
    /* The socket is connected; nothing has been sent yet. */
    void (*up)(void *arg);
    /* A complete frame, borrowed for the call.  Return false to stop
     * reading now (the owner dropped the connection or is closing). */
    bool (*frame)(void *arg, const uint8_t *frame, size_t len);
    /* The attempt failed or the connection ended: ERR is a PIGEON_E* code,
     * WHY a phrase (borrowed for the call).  The transport is IDLE again. */
    void (*down)(void *arg, int err, const char *why);
    /*
     * Optional fast path, tried at each frame boundary with every byte read
     * so far (DATA, AVAIL; borrowed for the call): when they start with a
     * complete frame the owner can parse in one pass, it handles it and sets
     * *USED to its length; otherwise it sets *USED to 0 and the frame goes
     * through the scanner and `frame` as usual.  Returns false as `frame`.
     */
    bool (*quick)(void *arg, const uint8_t *data, size_t avail, size_t *used);
};

/*
 * Creates an idle transport on BASE (borrowed).  H is copied; ARG is passed to
 * the handlers.  TLS (borrowed, must outlive the transport) is NULL for
 * plain sockets, or the context every connection speaks TLS with.
 * Returns 0 and *OUT (the caller's: transport_free), or PIGEON_ENOMEM.
 */
int transport_new(struct event_base *base, const struct transport_handlers *h, void *arg,
                  uint32_t max_in, struct tls_ctx *tls, struct transport **out);

/* Closes the socket without calling any handler and frees C. NULL is fine. */
void transport_free(struct transport *c);

/*
 * Starts connecting an IDLE transport to A (borrowed for the call; resolved
 * now; its host is the name a TLS certificate must carry).  The outcome
 * comes through `up` (after the TLS handshake, under TLS) or `down`.  Returns 0, or
 * PIGEON_ENOMEM (the transport stays IDLE, no handler runs).
 */
int transport_open(struct transport *c, const struct addr *a);

/* Closes the socket, if any, without calling a handler; C is IDLE, its
 * buffers empty. */
void transport_drop(struct transport *c);

bool transport_is_up(const struct transport *c);
bool transport_is_idle(const struct transport *c);

/* The output buffer (borrowed): append whole frames, then transport_kick. */
struct buf *transport_out(struct transport *c);

/* Schedules sending what transport_out holds (see the top). */
void transport_kick(struct transport *c);

/* Sends what the socket takes now, e.g. before closing. */
void transport_write_now(struct transport *c);

/* Monotonic ms of the last byte received and sent on this connection. */
int64_t transport_last_rx(const struct transport *c);
int64_t transport_last_tx(const struct transport *c);

#endif
