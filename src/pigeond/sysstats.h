/*
 * sysstats.h - the broker's counters published on $SYS.broker.stats.
 *
 * Every stats_interval (config.h; 0 turns it off) a timer on the broker's
 * loop gathers a snapshot (stats.h) and publishes it through the router,
 * like any message, as a MessagePack map (stats_pack).  Topics beginning
 * with '$' are the broker's own: clients cannot publish there, and only
 * "$SYS.>" or the exact topic subscribes to it ('*' and '>' as a first
 * token do not match '$' topics).  The message is not retained.
 */
#ifndef PIGEON_SYSSTATS_H
#define PIGEON_SYSSTATS_H

struct server;
struct sysstats;

#define SYSSTATS_TOPIC "$SYS.broker.stats"

/*
 * Starts publishing every SRV->conf->stats_interval_ms (SRV borrowed; it
 * outlives the result).  Returns the publisher (owned by the caller), or
 * NULL after logging why (libevent could not make a timer).
 */
struct sysstats *sysstats_new(struct server *srv);

/* Re-arms the timer for the current config's interval (after a reload). */
void sysstats_apply_config(struct sysstats *s);

/* Publishes one snapshot now.  Returns the number of deliveries. */
long sysstats_publish(struct sysstats *s);

/* Stops the timer and frees S.  NULL is fine. */
void sysstats_free(struct sysstats *s);

#endif
