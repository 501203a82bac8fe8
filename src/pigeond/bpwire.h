/*
 * bpwire.h - what nodes of a cluster say to each other through the
 * backplane (Redis): the bytes of each kind of message, written and read.
 *
 * Everything is MessagePack, and everything read is first bounded by the
 * frame scanner (frame.h), as client frames are: a node trusts its peers
 * to mean well, not to be free of bugs, and a malformed message is
 * dropped and counted rather than handed to msgpack-c or to a subscriber.
 *
 * Messages, on a node's own channel: a batch, one Redis PUBLISH carrying
 * every message a publishing node had for that node in one loop iteration
 * (a batch is at most BPWIRE_BATCH_MAX bytes, plus one record):
 *
 *     [1, origin]                      the header: format version, sender
 *     [flags, topic, payload, opts, groups]   one record per message
 *     ...
 *
 *   topic and payload are the publisher's bytes, untouched, so the
 *   receiving node delivers them as a local `msg` body without decoding
 *   the payload; opts is the `msg` opts map (reply_to, headers) or nil;
 *   groups is nil, or a flat array [pattern, queue, pattern, queue, ...]
 *   of the queue groups whose turn the sender gave to the receiver.
 *
 * Retained values, in the hash {P}:retained (topic -> record) and on the
 * channel {P}:retained (seq then record): a record whose flags say
 * BPWIRE_RETAINED, whose opts are those a replay carries (retained: true),
 * and whose payload nil clears the topic.
 *
 * Control, on the channel {P}:ctl (cluster.c says when each is sent):
 *
 *     ["hb",    node, instance, version]
 *     ["hello", node, instance, version]
 *     ["delta", node, instance, version, [field, count, field, count, ...]]
 *     ["bye",   node, instance]
 *
 *   a field is "pattern" or "pattern queue" (interest.h); a count of 0
 *   removes it.  No credentials ever appear in any of these.
 */
#ifndef PIGEON_BPWIRE_H
#define PIGEON_BPWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "mpread.h"

#define BPWIRE_VERSION 1

/* A batch is sent once it reaches this many bytes (and at the end of each loop iteration). */
#define BPWIRE_BATCH_MAX (64 * 1024)

/* Record flags. */
#define BPWIRE_RETAINED 0x01 /* a retained value (store it), not a live message */

/* One message read from a batch or a retained record.  Pointers borrow the bytes read. */
struct bpwire_record {
    uint8_t flags;
    const char *topic; /* checked as a published topic */
    uint32_t topic_len;
    const uint8_t *body; /* topic and payload, encoded, adjacent */
    size_t body_len;
    bool payload_nil;
    const uint8_t *opts; /* a map, or NULL */
    size_t opts_len;
    const uint8_t *groups; /* the first pattern of the groups array, or NULL */
    size_t groups_len;
    uint32_t n_groups; /* (pattern, queue) pairs */
};

/* --------------------------------------------------------------- batches */

/*
 * Starts a batch in BUF (emptied) from node ORIGIN, after HEADROOM bytes
 * left for the caller (the header of the command that carries the batch,
 * written there once the batch's length is known): the batch's bytes
 * start at buf->data + HEADROOM.
 */
void bpwire_batch_begin(msgpack_sbuffer *buf, size_t headroom, const char *origin, size_t olen);

/*
 * Appends one record: FLAGS, BODY (topic and payload as published), OPTS
 * (a map, or NULL), and N_GROUPS groups, GROUPS[2i] a pattern and
 * GROUPS[2i + 1] its queue (NUL-terminated).
 */
void bpwire_record_write(msgpack_sbuffer *buf, uint8_t flags, const uint8_t *body, size_t body_len,
                         const uint8_t *opts, size_t opts_len, const char *const *groups,
                         size_t n_groups);

/*
 * Opens the batch DATA[0..LEN): checks its header and sets R on the first
 * record and *ORIGIN (borrowed) to the sender.  0, or -1 with *WHY (static).
 */
int bpwire_batch_open(const void *data, size_t len, struct mpread *r, const char **origin,
                      uint32_t *olen, const char **why);

/*
 * Reads the record at R (at most MAX_RECORD bytes) into *OUT and moves R
 * past it.  1 when a record was read, 0 at the end, -1 with *WHY (static)
 * when the rest cannot be trusted.
 */
int bpwire_record_read(struct mpread *r, uint32_t max_record, struct bpwire_record *out,
                       const char **why);

/*
 * Walks a record's groups: CUR starts as mpread_init(cur, rec->groups,
 * rec->groups_len); each call sets *PATTERN and *QUEUE (borrowed, not
 * NUL-terminated) to the next pair and returns true; false after the last.
 */
bool bpwire_groups_next(struct mpread *cur, const char **pattern, uint32_t *plen,
                        const char **queue, uint32_t *qlen);

/*
 * The reply_to of REC's opts: *S (borrowed, not NUL-terminated) and *LEN.
 * False when it has none.  The receiving node needs it for what a reply
 * may do (access.h: allow_responses), not to deliver it.
 */
bool bpwire_record_reply_to(const struct bpwire_record *rec, const char **s, uint32_t *len);

/* ------------------------------------------------------ retained values */

/*
 * Reads a message of the retained channel: the sequence number Redis gave
 * the change, then a record with BPWIRE_RETAINED.  0, or -1 with *WHY.
 */
int bpwire_retained_read(const void *data, size_t len, uint32_t max_record, uint64_t *seq,
                         struct bpwire_record *out, const char **why);

/* Reads a record of the retained hash (no sequence number).  0, or -1 with *WHY. */
int bpwire_retained_value_read(const void *data, size_t len, uint32_t max_record,
                               struct bpwire_record *out, const char **why);

/* --------------------------------------------------------------- control */

enum bpwire_ctl_kind {
    BPWIRE_HB,
    BPWIRE_HELLO,
    BPWIRE_DELTA,
    BPWIRE_BYE,
};

struct bpwire_ctl {
    enum bpwire_ctl_kind kind;
    const char *node; /* borrowed */
    uint32_t node_len;
    uint64_t instance;
    uint64_t version;      /* not in bye */
    struct mpread changes; /* delta: the field/count pairs */
    uint32_t n_changes;
};

/* Writes hb, hello or bye (VERSION ignored for bye) into BUF (emptied). */
void bpwire_ctl_write(msgpack_sbuffer *buf, enum bpwire_ctl_kind kind, const char *node,
                      size_t nlen, uint64_t instance, uint64_t version);

/* Writes the head of a delta of N_CHANGES changes into BUF (emptied); bpwire_change_write each. */
void bpwire_delta_begin(msgpack_sbuffer *buf, const char *node, size_t nlen, uint64_t instance,
                        uint64_t version, size_t n_changes);
void bpwire_change_write(msgpack_sbuffer *buf, const char *field, size_t flen, uint32_t count);

/* Reads a control message.  0, or -1 with *WHY (static). */
int bpwire_ctl_read(const void *data, size_t len, struct bpwire_ctl *out, const char **why);

/* The next change of a delta (CUR starts as ctl->changes).  False after the last or when bad. */
bool bpwire_change_next(struct mpread *cur, const char **field, uint32_t *flen, uint32_t *count);

#endif
