/*
 * consumer.h - acknowledged delivery from a stream: a consumer's position,
 * its unacked messages, redelivery, and the connections that share it.
 *
 * A consumer reads its stream in order from its cursor (messages its
 * filter matches, durable ones only) and hands each to one of its members
 * (the `consume` subscriptions of one or more connections), round robin
 * among those with room.  A delivered message is pending until acked.  It
 * is delivered again:
 *
 *   - ack_wait after its delivery, if not acked;
 *   - after a nak, at once or after the nak's delay;
 *   - at once, to another member, when the member holding it goes (unsub,
 *     or its connection closes), and after a restart.
 *
 * After max_deliver deliveries without an ack it is given up: it leaves
 * the pending set (it counts as acked for the ack floor) and
 * {stream, durable, seq, topic, deliveries} is published to
 * $SYS.stream.<stream>.dead.  max_pending bounds the pending set (naked
 * messages waiting out their delay included): past it, no new message is
 * delivered until an ack.  Redeliveries go first, lowest seq first, then
 * new messages in stream order.
 *
 * Pacing.  A member takes a message only while its connection's output
 * holds less than CONSUMER_WINDOW bytes (one larger message goes when it
 * is empty), like a retained replay, and one pump step delivers at most
 * CONSUMER_STEP messages: so a consumer of a stream of millions queues a
 * window, not the stream, and the loop stays fair.  The pump runs again
 * when an output drains, an ack frees room, the stream gets durable
 * messages, or a timer fires.
 *
 * Durable consumers (with a `durable` name) persist, in the same group
 * commit as everything else (statedb.h): their settings and cursor, and
 * each pending message with its delivery count.  An ack's answer waits for
 * its commit.  A consumer without a name lives and dies with its one
 * connection, and nothing of it is stored.
 *
 * The pending set is an array sorted by seq (first deliveries come in seq
 * order, so they are appended), with acked entries marked and compacted
 * away; two binary heaps with lazy deletion order the redeliveries (by
 * seq) and the timers (by due time).
 */
#ifndef PIGEON_CONSUMER_H
#define PIGEON_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encode.h"

struct consumer;
struct session;
struct stream;

#define CONSUMER_WINDOW          (256 * 1024)
#define CONSUMER_STEP            256
#define CONSUMER_SCAN_STEP       4096 /* records a step may pass over that the filter skips */
#define CONSUMER_ACK_WAIT_MS     30000
#define CONSUMER_MAX_PENDING     1000
#define CONSUMER_MAX_PENDING_MAX 1000000
#define CONSUMER_DELAY_MAX_MS    ((uint64_t)24 * 3600 * 1000)

enum consumer_start {
    CONSUMER_START_ALL,
    CONSUMER_START_NEW,
    CONSUMER_START_LAST,
    CONSUMER_START_SEQ,
};

/* `consume` opts as decoded; has_* says what was given explicitly.  Strings are borrowed. */
struct consumer_opts {
    const char *durable; /* NULL: a consumer of this connection only */
    size_t durable_len;
    const char *filter; /* a checked pattern, or NULL */
    size_t filter_len;
    enum consumer_start start;
    uint64_t start_seq;
    uint64_t ack_wait_ms, max_deliver, max_pending;
    bool has_start, has_filter, has_ack_wait, has_max_deliver, has_max_pending;
};

/* One connection's `consume` subscription.  Owned by its consumer; listed by its session. */
struct member {
    struct member *next_in_session; /* the session's list (session.c) */
    struct member *next;            /* the consumer's list */
    struct consumer *cons;          /* borrowed */
    struct session *sess;           /* borrowed */
    uint32_t sid;
    uint8_t prefix_len;
    uint8_t prefix[ENCODE_MSG_PREFIX_MAX];
    uint32_t held;   /* messages it holds unacked */
    bool wants_room; /* the pump stopped for lack of room in its output */
};

/*
 * Consumes stream ST for session S under SID: the durable O->durable,
 * made if new (from O and the defaults), or a new consumer of S's own.
 * Returns 0 and *OUT (owned by the consumer; listed by the caller in S),
 * or -PROTO_ERR_BAD_PARAMS with WHY when O explicitly differs
 * from the durable's stored settings.  The first deliveries follow in a
 * later step (after the caller's response).
 */
int consumer_attach(struct stream *st, struct session *s, uint32_t sid,
                    const struct consumer_opts *o, struct member **out, char *why, size_t why_len);

/*
 * Ends member M: its unacked messages go to the durable's other members at
 * once; a consumer of one connection ends with it.  M is freed.
 */
void consumer_detach(struct member *m);

/* Results of consumer_ack and consumer_nak. */
enum consumer_ack {
    CONSUMER_NOT_PENDING, /* false */
    CONSUMER_DONE,        /* true, now */
    CONSUMER_STORED,      /* true, once the gathered commit is durable */
};

/* Acks SEQ on M's consumer. */
enum consumer_ack consumer_ack(struct member *m, uint64_t seq);

/* Naks SEQ on M's consumer: delivered again after DELAY_MS (0: at once). */
enum consumer_ack consumer_nak(struct member *m, uint64_t seq, uint64_t delay_ms);

/* Delivers what it can now (the store's pump; see the top). */
void consumer_pump(struct consumer *c);

/* The session of M has drained its output: its consumer may go on. */
void consumer_member_drained(struct member *m);

/* ------------------------------------------------- from stream and store */

/* The stream has durable messages up to its durable_last now. */
void consumer_durable(struct consumer *c);

/* The stream dropped everything below FIRST_SEQ (limits). */
void consumer_stream_dropped(struct consumer *c, uint64_t first_seq);

/*
 * A durable loaded at start: its settings and cursor from VAL (the
 * consumers table's value, VLEN bytes), and none pending yet.  Returns 0,
 * or -1 when VAL cannot be read (the durable is skipped, logged).
 */
int consumer_load(struct stream *st, const char *durable, size_t dlen, const void *val,
                  size_t vlen);

/* A pending entry of durable DURABLE loaded at start: ready for redelivery. */
void consumer_load_pending(struct stream *st, const char *durable, size_t dlen, uint64_t seq,
                           uint32_t deliveries);

/* Writes C's record (settings, cursor) into the gathered operations (store's dirty list). */
void consumer_persist(struct consumer *c);

/* Frees C, its members included (shutdown, or the stream closing). */
void consumer_free(struct consumer *c);

/* ------------------------------------------------------------ queries */

struct consumer *consumer_next(const struct consumer *c);    /* in its stream's list */
struct stream *consumer_stream(const struct consumer *c);
const char *consumer_filter(const struct consumer *c); /* NULL: the whole stream */
const char *consumer_durable_name(const struct consumer *c); /* NULL for one connection's */
uint64_t consumer_num_pending(const struct consumer *c);     /* stored, not yet delivered */
uint64_t consumer_ack_pending(const struct consumer *c);     /* delivered, not acked */
uint64_t consumer_ack_floor(const struct consumer *c);
uint64_t consumer_redelivered(const struct consumer *c); /* redeliveries, in all */
uint64_t consumer_delivered(const struct consumer *c);   /* deliveries, in all */
uint64_t consumer_dead(const struct consumer *c);        /* given up, in all */
uint32_t consumer_member_count(const struct consumer *c);
uint64_t consumer_memory(const struct consumer *c);

/* Marks a pump step as needed (the store runs it in a later loop iteration). */
void consumer_schedule(struct consumer *c);

#endif
