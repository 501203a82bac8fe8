/*
 * statedb.h - the store's small, changing state in LMDB: durable consumers
 * (their settings and position), their unacked messages with delivery
 * counts, and retained values.
 *
 * Why LMDB here and not the segment log: this state is updated in place
 * (an ack deletes one pending entry among thousands; a retained value is
 * replaced), and LMDB gives that as B-tree transactions that are
 * crash-safe with no recovery step (copy-on-write pages, two meta pages):
 * a commit either happened or did not.  Each commit costs two fdatasyncs
 * (data, then meta); the group commit (commit.h) makes that once per loop
 * iteration for all the acks and retained changes of the iteration.
 *
 * Tables (LMDB named databases), keys and values:
 *
 *   meta       "version" -> "1"
 *   consumers  STREAM \0 DURABLE -> a MessagePack map (consumer.c)
 *   pending    STREAM \0 DURABLE \0 SEQ (8 bytes, big-endian, so entries
 *              sort by seq) -> deliveries (4 bytes, little-endian)
 *   retained   TOPIC -> body_len, opts_len (4 bytes each, LE), body, opts
 *
 * Writes are gathered on the loop as a list of operations
 * (struct statedb_ops) and applied in one write transaction on the commit
 * thread (statedb_apply).  Reads happen at start-up only, on the main
 * thread, before the commit thread runs (statedb_foreach).
 *
 * The map size is managed here: it starts at STATEDB_MAP_MIN or twice the
 * file, and a transaction that finds the map full is retried once the map
 * has been doubled.  An environment that LMDB cannot open as a database
 * (not one, damaged, a version it cannot read) is renamed aside,
 * state.broken-TIME, with an error in the log, and a new one is made.
 */
#ifndef PIGEON_STATEDB_H
#define PIGEON_STATEDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct logger;
struct statedb;

enum statedb_table {
    STATEDB_META,
    STATEDB_CONSUMERS,
    STATEDB_PENDING,
    STATEDB_RETAINED,
    STATEDB_TABLES,
};

#define STATEDB_MAP_MIN ((uint64_t)64 << 20)

/*
 * Opens (or makes) the environment in directory PATH.  FSYNC false opens it
 * with MDB_NOSYNC: commits reach the operating system, not the disk.
 * *MOVED_ASIDE tells whether a damaged one was renamed aside.  Returns 0
 * and *OUT (owned by the caller), or -1 with WHY.
 */
int statedb_open(const char *path, bool fsync, struct logger *log, struct statedb **out,
                 bool *moved_aside, char *why, size_t why_len);

/* Closes DB.  NULL is fine. */
void statedb_close(struct statedb *db);

/*
 * Calls FN for each entry of table T whose key begins with PREFIX (PLEN
 * bytes; 0 for all), in key order; FN's pointers are valid for the call.
 * FN returns 0 to go on, anything else to stop (returned).  Returns 0,
 * FN's value, or -1 (read error, with WHY).  Not while the commit thread
 * may write.
 */
int statedb_foreach(struct statedb *db, enum statedb_table t, const void *prefix, size_t plen,
                    int (*fn)(void *arg, const void *key, size_t klen, const void *val,
                              size_t vlen),
                    void *arg, char *why, size_t why_len);

/* ----------------------------------------------------------- writes ---- */

/* Operations gathered for one transaction.  Zero it to start. */
struct statedb_ops {
    uint8_t *buf; /* owned: the encoded operations */
    size_t len, cap;
    uint32_t n;
};

void statedb_ops_put(struct statedb_ops *o, enum statedb_table t, const void *key, size_t klen,
                     const void *val, size_t vlen);
void statedb_ops_del(struct statedb_ops *o, enum statedb_table t, const void *key, size_t klen);

/* Moves every operation of FROM in front of TO's (FROM is left empty). */
void statedb_ops_prepend(struct statedb_ops *to, struct statedb_ops *from);

/* Frees what O holds and leaves it empty. */
void statedb_ops_release(struct statedb_ops *o);

/*
 * Applies the N lists of operations LISTS, in order, in one write
 * transaction and commits it (the commit thread).  Returns 0, or -1 with
 * WHY; then nothing was applied.  *NS gets the time the commit took.
 */
int statedb_apply(struct statedb *db, const struct statedb_ops *const *lists, size_t n,
                  uint64_t *ns, char *why, size_t why_len);

/* Bytes in the environment's file (for monitoring). */
uint64_t statedb_file_bytes(const struct statedb *db);

#endif
