/*
 * budget.h - the broker-wide memory budget, [broker] max_memory.
 *
 * Every other cap is per connection (max_outbound, max_payload,
 * max_subscriptions_per_connection), and many connections within their caps
 * can still exhaust the machine.  The budget adds up, broker-wide, what
 * clients make the broker hold:
 *
 *   output         bytes queued for clients (conn.queued) and the
 *                  bookkeeping of their frames;
 *   input          bytes read and kept between reads: frames still
 *                  arriving, and frames waiting for a later wake-up;
 *   retained       the retained store (router_retained_bytes);
 *   subscriptions  each subscription and its share of the index
 *                  (router_sub_bytes);
 *   store          what the durable store holds in memory: streams'
 *                  indexes and block caches, msg_ids of the duplicate
 *                  windows, consumers' pending sets, batches not yet
 *                  synced (store_memory).
 *
 * When the sum passes max_memory, budget_check acts in this order:
 *
 *   1. the slow-consumer policy is applied to the biggest output queues
 *      first, until what they hold covers the excess (to 90% of the
 *      budget): under `disconnect` they are closed and their queues freed
 *      at once; under `drop` they start dropping, and one still holding
 *      its queue at the next check is closed.  While over, every queue
 *      is capped at the smallest chosen one (the loop's out_limit);
 *   2. if that is not enough, connections that publish stop being read
 *      (TCP pushes back on them) until usage is below 90% again;
 *   3. if still over, new partial frames (a read that leaves a frame
 *      unfinished) and new subscriptions are refused with error 10.
 *
 * max_memory = auto (the default) is half the memory available to the
 * process: the lowest memory.max of its cgroup and the cgroup's ancestors
 * (systemd's MemoryMax=; the shipped unit sets 75% of RAM), else the
 * machine's physical memory.  What the budget leaves out (connections'
 * own structures, read buffers, the match cache, malloc's overhead) is the
 * reason for the headroom; docs/operations.md gives the measured ratio.
 */
#ifndef PIGEON_BUDGET_H
#define PIGEON_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

struct server;
struct event;

struct budget {
    uint64_t limit;         /* bytes; max_memory, resolved when auto */
    bool is_auto;           /* max_memory = auto */
    bool over;              /* usage was above the limit at the last check */
    bool refusing;          /* step 3 is in force */
    uint32_t paused;        /* publishers held by step 2 */
    int64_t last_enforce_ms; /* when steps 1-3 last ran */
    struct event *timer;    /* checks again while over or holding publishers */
    /* Totals, for /metrics: */
    uint64_t times_over;     /* times usage went above the limit */
    uint64_t slow_chosen;    /* connections step 1 chose */
    uint64_t refused_frames; /* partial frames refused (step 3) */
    uint64_t refused_subs;   /* subscriptions refused (step 3) */
};

/* Usage now, by part. */
struct budget_usage {
    uint64_t output, input, retained, subscriptions, store;
    uint64_t total;
};

/* Sets the budget up from SRV's config (its timer on SRV's loop).  0, or -1 after logging. */
int budget_init(struct server *srv);

/* Frees what budget_init made. */
void budget_fini(struct server *srv);

/* Takes a reloaded max_memory (auto is worked out again). */
void budget_apply_config(struct server *srv);

/*
 * Compares usage with the limit and enforces it (see the top).  Cheap when
 * under: a few additions.  Called after each flush, and by a timer while
 * over.
 */
void budget_check(struct server *srv);

/* True while step 3 is in force: refuse new partial frames and subscriptions. */
bool budget_refusing(const struct server *srv);

/* Counts a refusal of step 3. */
void budget_refused_frame(struct server *srv);
void budget_refused_sub(struct server *srv);

/* Usage now. */
void budget_usage(struct server *srv, struct budget_usage *out);

/*
 * What max_memory = auto comes to on this machine: half of the lowest
 * cgroup memory.max on the way up from this process's cgroup, or of the
 * physical memory when no cgroup sets one.
 */
uint64_t budget_auto_limit(void);

#endif
