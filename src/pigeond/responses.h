/*
 * responses.h - the replies a connection may send without a publish
 * permission: allow_responses.
 *
 * A user configured with `allow_responses = yes` may publish to the
 * reply_to of a request it received, once, within RESPONSES_TTL_MS of its
 * delivery, without a publish permission for that topic, and never to a
 * '$' topic (docs/security.md).  The session notes each reply_to as it
 * delivers a message that carries one (responses_note), and asks when the
 * user publishes to a topic its acl refuses (responses_take): a yes uses
 * the grant up.  The same reply_to delivered twice (two subscriptions, or
 * two requests) may be answered twice.
 *
 * Bounds: at most MAX topics per connection (given at init); noting one
 * more forgets the oldest.  Grants past their time are forgotten as the
 * table is used.  responses_bytes() is what the table holds, for the
 * memory budget.  Each grant keeps its own copy of the topic.
 *
 * Embedded in the connection (hence public); treat the fields as private.
 * One table per connection, used by one thread; the clock is the caller's
 * (monotonic milliseconds), so tests can drive it.
 */
#ifndef PIGEON_RESPONSES_H
#define PIGEON_RESPONSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "hmap.h"

#define RESPONSES_TTL_MS   60000
#define RESPONSES_USES_MAX 255 /* deliveries of one reply_to counted at most */

struct response;

struct responses {
    struct hmap by_topic;                      /* topic -> struct response; key: its copy */
    TAILQ_HEAD(response_list, response) order; /* oldest note first */
    size_t max;                                /* topics at most */
    size_t bytes;                              /* what the grants hold */
};

/* Makes R empty, holding at most MAX topics (allocates nothing). */
void responses_init(struct responses *r, size_t max);

/* Frees every grant; R is empty and reusable. */
void responses_fini(struct responses *r);

/*
 * A message with reply_to TOPIC (LEN bytes, a checked topic, copied) was
 * delivered at NOW_MS: one more reply to it is allowed until NOW_MS +
 * RESPONSES_TTL_MS.  A '$' topic is ignored.
 */
void responses_note(struct responses *r, const char *topic, size_t len, uint64_t now_ms);

/*
 * True when a reply to TOPIC is allowed at NOW_MS: a grant is used up.
 * False for a '$' topic, an unknown one, or one whose time is past.
 */
bool responses_take(struct responses *r, const char *topic, size_t len, uint64_t now_ms);

/* Topics with a grant now (expired ones not yet forgotten included). */
size_t responses_count(const struct responses *r);

/* Bytes the grants hold: their structs, topics and map. */
size_t responses_bytes(const struct responses *r);

#endif
