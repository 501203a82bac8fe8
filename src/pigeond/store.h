/*
 * store.h - the durable store: streams, durable consumers and retained
 * values under [store] dir, and the group commit that makes them durable.
 *
 * Layout of the directory (docs/durability.md has the whole story):
 *
 *   LOCK               held (flock) by the pigeond using the store
 *   state/             LMDB: durable consumers, pending sets, retained values (statedb.h)
 *   streams/NAME/      one stream's segment files (seglog.h)
 *
 * The group commit.  Everything a loop iteration asks of the store
 * (records appended to streams, retained values set or cleared, consumer
 * positions, deliveries and acks) is gathered into one batch.  When the
 * iteration's callbacks are done (an event made active on the first
 * change), the batch goes to the commit threads (commit.h) as one job:
 * one write and one fdatasync per stream file touched, and one LMDB
 * transaction.  While it runs, the next batch gathers; when it is done, the
 * loop answers the requests it covers (pub requests to captured topics or
 * with retain, ack requests of durables), lets consumers see the new
 * messages, and sends the next batch.  So the number of syncs follows the
 * disk's speed, not the message rate, and no loop callback ever waits for
 * the disk.
 *
 * Answers.  A request the store must answer later gets a placeholder in
 * its session's reply queue (session_reply_defer); every later response of
 * that connection waits behind it, so responses keep the order of the
 * requests.  A publication the store could not keep (a full stream with
 * discard = new, a disk error) is answered with code 12: it was delivered
 * live, but neither the stream nor the retained value changed (a retained
 * change is undone).
 *
 * Disk errors.  A failed commit fails what it covered (code 12), rolls the
 * affected stream back to its durable end, and the store tries again with
 * the next batch; the log says so once per episode, and /metrics shows it
 * (pigeon_stream_failing, pigeon_store_failing).  Live delivery goes on.
 */
#ifndef PIGEON_STORE_H
#define PIGEON_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <msgpack.h>

struct config;
struct consumer;
struct logger;
struct router_msg;
struct server;
struct session;
struct statedb_ops;
struct stream;

struct store;

/* Longest msg_id accepted (bytes). */
#define STORE_MSG_ID_MAX 128
/* Bytes of gathered records past which publishers to streams are not read until a commit. */
#define STORE_GATHER_MAX ((uint64_t)64 << 20)

/*
 * Opens the store CONF's [store] section names, for SRV: locks the
 * directory, opens the state (LMDB) and every configured stream, loads
 * durable consumers and retained values (into SRV's router), and starts
 * the commit threads.  Returns 0 and *OUT (owned by the caller; NULL when
 * [store] is off), or -1 after logging why.
 */
int store_open(struct server *srv, const struct config *conf, struct store **out);

/*
 * Commits what is gathered, waits for it, and frees the store (at
 * shutdown, once no connection is left).  NULL is fine.
 */
void store_close(struct store *st);

/*
 * At shutdown, before connections close: commits what is gathered and
 * waits for it (blocking the loop for a sync or two), so that every request
 * read so far is answered while its connection can still take the answer.
 */
void store_drain(struct store *st);

/*
 * Takes a reloaded config: new streams are opened, existing ones take
 * their new limits and patterns; a stream missing from CONF keeps running
 * (removing one is an explicit step: pigeond --delete-stream).  A changed
 * dir waits for a restart; fsync changes at once.
 */
void store_apply_config(struct store *st, const struct config *conf);

/*
 * `pigeond --delete-stream NAME`: removes stream NAME (its files, its
 * durables) from the store of CONF, which must not be in use and must not
 * configure NAME.  Returns 0, or -1 with WHY.
 */
int store_delete_stream(const struct config *conf, const char *name, char *why, size_t why_len);

/*
 * `pigeond --delete-durable STREAM/DURABLE`: forgets durable consumer
 * DURABLE of STREAM (its record and its pending table) in the store of
 * CONF, which must not be in use.  The stream's messages stay.  Returns 0,
 * or -1 with WHY (also when there is no such durable).
 */
int store_delete_durable(const struct config *conf, const char *stream, const char *durable,
                         char *why, size_t why_len);

/* --------------------------------------------------------- publishing */

/* A publication's 1.1 opts; strings borrowed, NULL when not given. */
struct store_pub {
    const char *stream;
    uint32_t stream_len;
    const char *msg_id;
    uint32_t msg_id_len;
};

/*
 * Publishes M from session S through the store: routes it live
 * (router_publish), appends it to the stream that captures its topic,
 * mirrors a retained change, and answers a request (IS_REQUEST, MSGID)
 * once all that is durable.  Returns:
 *
 *   0          done; the store answers (now or after the commit)
 *   1          not the store's (no stream captures it, no retain):
 *              nothing was done, route and answer it as usual
 *   -code      fail the call with that code and WHY (static): 11 (a
 *              named stream that does not capture the topic: nothing was
 *              published), 12 (delivered live, not stored), 10
 *              (max_retained: nothing was published)
 */
int store_publish(struct store *st, struct session *s, const struct router_msg *m,
                  const struct store_pub *p, bool is_request, uint32_t msgid, const char **why);

/*
 * The broker's own publication (a dead letter): routed live, and appended
 * to a stream that captures its topic.  TOPIC is the topic; PAYLOAD the
 * packed payload.
 */
void store_publish_internal(struct store *st, const char *topic, size_t tlen, const void *payload,
                            size_t plen);

/*
 * A message M from another node of the cluster (router_publish with
 * `remote` set): when a stream here captures its topic, routes it live and
 * appends it (no one waits for an answer: a failure is counted in the
 * stream's not_stored) and returns true; false when no stream captures it
 * (route it as usual).
 */
bool store_publish_remote(struct store *st, const struct router_msg *m);

/*
 * True while a stream's gathered records are over STORE_GATHER_MAX: the
 * backplane, which cannot be answered later, is not read meanwhile.
 */
bool store_gather_full(const struct store *st);

/*
 * Holds the streams' patterns as cluster interest (router_interest_hold),
 * releasing what this store held before, so that messages published on
 * any node reach this one and are captured (docs/scale-out.md, Streams).
 * Called once the router has its cluster, and by store_apply_config.
 */
void store_hold_interest(struct store *st);

/* ------------------------------------------------------- for consumers */

/*
 * Answers request MSGID of S with `true` once the gathered commit is
 * durable (or code 12 if it fails): an ack of a durable.
 */
void store_reply_when_stored(struct store *st, struct session *s, uint32_t msgid);

/* Publishes a dead letter for SEQ of stream SM (consumer DURABLE, or NULL). */
void store_publish_dead(struct store *st, struct stream *sm, const char *durable, uint64_t seq,
                        const char *topic, uint32_t tlen, uint32_t deliveries);

/* The stream named NAME (LEN bytes), or NULL. */
struct stream *store_stream(struct store *st, const char *name, size_t len);
size_t store_stream_count(const struct store *st);
struct stream *store_stream_at(struct store *st, size_t i);

/* Packs stream SM's info map (stream_info's result) with PK. */
void store_pack_stream_info(struct store *st, struct stream *sm, msgpack_packer *pk);

/* Session S is ending: it is no longer held for the store. */
void store_session_gone(struct store *st, struct session *s);

/* ------------------------------------------- for streams and consumers */

struct logger *store_logger(struct store *st);
struct event_base *store_base(struct store *st);
/* Something was gathered: commit it at the end of this loop iteration. */
void store_touch(struct store *st);
/* The operations being gathered for LMDB (consumer state). */
struct statedb_ops *store_ops(struct store *st);
/* A buffer to encode into, valid until the next call. */
msgpack_sbuffer *store_scratch(struct store *st);
/* Runs consumer_pump(C) in a later loop iteration. */
void store_queue_pump(struct store *st, struct consumer *c);
/* Writes C's record (consumer_persist) with the next commit. */
void store_queue_dirty(struct store *st, struct consumer *c);
/* C is being freed: forget it. */
void store_consumer_gone(struct store *st, struct consumer *c);

/* --------------------------------------------------------- monitoring */

/* Memory the store holds (streams' indexes and caches, gathered batches, consumers). */
uint64_t store_memory(struct store *st);

/* Appends the store's Prometheus families to OUT.  0, or -1. */
int store_format_metrics(struct store *st, struct evbuffer *out);

/* GET /streams: every stream with its figures and consumers.  A new reference. */
json_t *store_streams_json(struct store *st);

#endif
