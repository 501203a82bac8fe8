/*
 * commit.h - the group commit's threads: what one loop iteration gathered
 * for the store is written and synced off the loop, and the loop hears
 * when it is done.
 *
 * A commit job has two independent parts, each run by a thread of its own
 * so that their syncs overlap:
 *
 *   log    the segment writes of every stream (seglog_job_run each, then
 *          one fdatasync per file written);
 *   state  one LMDB transaction over the gathered operations
 *          (statedb_apply: two fdatasyncs, data then meta).
 *
 * They are independent because nothing in one depends on the other being
 * durable first: an ack names a message that is durable already (consumers
 * only get durable messages), and retained values live only in LMDB.
 *
 * One job is out at a time.  The thread that finishes last writes a byte
 * to a pipe that libevent watches on the loop, and the loop's callback
 * (DONE_CB) gets the job back with both outcomes: so the loop never waits
 * for the disk, and everything a job touches is handed over and back
 * through the mutexes and the pipe (no field is shared while it runs).
 */
#ifndef PIGEON_COMMIT_H
#define PIGEON_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct commit;
struct seglog_job;
struct statedb;
struct statedb_ops;

/* One job: the caller owns it and what it points to, from submit to done. */
struct commit_job {
    struct seglog_job **logs; /* segment jobs, run in this order; may be 0 of them */
    size_t n_logs;
    struct statedb_ops **ops; /* lists applied in order, in one transaction; none: no transaction */
    size_t n_ops;
    bool fsync; /* sync what is written (the [store] fsync setting) */
    /* The state part's outcome, set by the state thread: */
    int state_err; /* 0, or -1 with state_why */
    char state_why[160];
    uint64_t state_ns;
    uint64_t log_ns; /* the log part's time in all */
};

/*
 * Starts the two threads for DB (borrowed; outlives the commit), reporting
 * each finished job to DONE_CB(job, ARG) on BASE's loop.  Returns 0 and
 * *OUT, or -1 with WHY.
 */
int commit_new(struct event_base *base, struct statedb *db,
               void (*done_cb)(struct commit_job *job, void *arg), void *arg, struct commit **out,
               char *why, size_t why_len);

/* Stops the threads (after the job out, if any, has run: see commit_wait) and frees C. */
void commit_free(struct commit *c);

/* True while a job is out. */
bool commit_busy(const struct commit *c);

/* Hands JOB to the threads.  Not while busy. */
void commit_submit(struct commit *c, struct commit_job *job);

/*
 * Blocks until the job out, if any, is done, and calls DONE_CB for it here
 * (at shutdown, when the loop no longer runs).
 */
void commit_wait(struct commit *c);

#endif
