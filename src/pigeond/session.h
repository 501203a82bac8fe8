/*
 * session.h - one client's protocol state, and the delivery API.
 *
 * A session is everything the broker knows about a client beyond bytes:
 * who it is (its client_id, the name it gave, later its user and
 * permissions), what it subscribed to, the retained replays still owed to
 * its new subscriptions, and (with streams) its consumers.  It is embedded
 * in its connection (conn.h), which carries its frames; nothing outside
 * session.c edits its lists.
 *
 * The router reaches subscribers through these calls only:
 *
 *   session_deliver         queue one message for one subscription (the
 *                           slow-consumer policy applied when it does not
 *                           fit);
 *   session_accepts         whether a message would be taken: it fits, and
 *                           the member may receive it (queue groups pick
 *                           such a member);
 *   session_slow            apply the slow-consumer policy to N messages;
 *   session_offer_retained  one value of a retained replay, when it fits.
 *
 * Retained replays.  A new subscription's retained values are found a few
 * at a time through a cursor over the retained store (retain.h), as the
 * connection's output drains: each step visits at most
 * SESSION_REPLAY_VISITS nodes of the store and queues at most
 * SESSION_REPLAY_WINDOW bytes, and the next step runs in a later loop
 * iteration.  So a `sub` over a store of millions costs the subscriber's
 * own time, never a stall of the loop, and a waiting replay holds a cursor
 * (a few dozen bytes), not a list.  Replays of one session go out in the
 * order the subscriptions were made.
 *
 * Consumers (streams, consumer.h).  A `consume` subscription is a member
 * of a consumer; the session lists its members (sids share the space of
 * subscriptions, and `unsub` ends either).  Stored messages reach the
 * connection through session_offer_stored, paced by its output like a
 * replay (session_stored_room).
 *
 * Replies that wait for the store.  A request answered only once the store
 * has made something durable (store.h) takes a place in the session's
 * reply queue (session_reply_defer); while that queue is not empty, every
 * other frame the connection is sent but `msg` (responses, errors) queues
 * behind it (session_reply_hold, called by conn.c), so that responses
 * keep the order of their requests.  Past max_outbound bytes held, the
 * connection is not read until the queue empties.
 */
#ifndef PIGEON_SESSION_H
#define PIGEON_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "acl.h"
#include "encode.h"
#include "hmap.h"
#include "responses.h"
#include "retain.h"

struct auth_req;
struct block;
struct conn;
struct member;
struct user;
struct replay;
struct session_reply;
struct router;
struct router_msg;
struct sublist_entry;

/* Store nodes one replay step may visit, and bytes it may leave queued. */
#define SESSION_REPLAY_VISITS 1024
#define SESSION_REPLAY_WINDOW (256 * 1024)

/* One subscription.  Owned by its session's subs array. */
struct sub {
    struct session *sess;        /* the subscriber; borrowed (it owns this sub) */
    struct sublist_entry *entry; /* its place in the router's index */
    uint32_t sid;
    uint8_t prefix_len;
    uint8_t prefix[ENCODE_MSG_PREFIX_MAX]; /* the msg prefix with this sid */
    char *pattern;                         /* owned, NUL-terminated */
    char *queue;                           /* owned, or NULL */
    struct replay *replay;                 /* its retained replay still under way, or NULL */
    bool filtered; /* overlaps a subscribe-deny pattern: each delivery is checked (access.h) */
};

/* The longest topic a session keeps as its last (session_topic_keep). */
#define SESSION_PUB_TOPIC_MAX 64

struct session {
    struct conn *conn;     /* borrowed: the connection that embeds this session */
    struct router *router; /* borrowed */
    uint64_t id;           /* the client_id, unique in this server's life */
    char *client_name;     /* from hello, or NULL; owned */
    bool hello_done;
    /* Identity and permissions (access.h): */
    bool locked;           /* its listener requires a login, and none happened yet */
    struct user *user;     /* who it logged in as, or NULL; holds a reference */
    const struct acl *acl; /* the user's permissions (borrowed from user), or NULL: none checked */
    struct acl_cache acl_cache; /* its recent decisions */
    struct responses responses; /* replies it may send without a publish permission */
    struct auth_req *auth_req;  /* a hello being checked, or NULL */
    uint32_t auth_msgid;        /* that hello's msgid */
    bool dropping;       /* dropping messages (slow_consumer = drop) until the output drains */
    bool published;      /* published since the memory budget last looked (budget.c) */
    bool replay_waiting; /* the head replay waits for the output to drain */
    struct sub **subs;   /* owned array of owned subs, sorted by sid */
    uint32_t n_subs, cap_subs;
    uint32_t next_sid;
    struct replay *replays;       /* under way, oldest first; owned */
    struct replay **replays_tail; /* where the next one goes */
    struct member *members; /* consume subscriptions (consumer.h); each owned by its consumer */
    uint32_t n_members;
    struct session_reply *replies;       /* waiting for the store, oldest first; owned */
    struct session_reply **replies_tail; /* where the next one goes */
    uint64_t replies_bytes;              /* held behind them */
    /*
     * The topic this session last published to and its hmap_hash: a
     * publisher mostly repeats its topic, and a memcmp costs less than
     * checking the topic again and SipHash (session_topic_same, _keep).
     * pub_topic_len 0: none kept.  pub_ok: that topic is allowed by the
     * session's permissions (access.h), so a repeated publication skips
     * the permission cache too.
     */
    uint32_t pub_hash;
    bool pub_ok;
    uint8_t pub_topic_len;
    char pub_topic[SESSION_PUB_TOPIC_MAX];
};

/*
 * True when TOPIC (LEN bytes) is the one S last published to: checked then
 * (topic_check, the '$' rule), and its hash is s->pub_hash.
 */
static inline bool session_topic_same(const struct session *s, const char *topic, size_t len)
{
    /* pub_topic_len 0 means none kept: an empty topic is never "the same". */
    return len != 0 && len == s->pub_topic_len && memcmp(topic, s->pub_topic, len) == 0;
}

/* Keeps TOPIC (checked: a valid topic, not a '$' one) as S's last; returns its hmap_hash. */
static inline uint32_t session_topic_keep(struct session *s, const char *topic, size_t len)
{
    uint32_t h = hmap_hash(topic, len);
    s->pub_ok = false;
    s->pub_topic_len = 0;
    if (len <= SESSION_PUB_TOPIC_MAX) {
        memcpy(s->pub_topic, topic, len);
        s->pub_topic_len = (uint8_t)len;
        s->pub_hash = h;
    }
    return h;
}

/* Sets S up for connection C, routed by R (both borrowed), as client ID. */
void session_init(struct session *s, struct conn *c, struct router *r, uint64_t id);

/* Drops S's replays and subscriptions and frees what it owns.  Idempotent. */
void session_fini(struct session *s);

/* ------------------------------------------------------- subscriptions */

/*
 * Subscribes S to PATTERN (checked), in queue group QUEUE when not NULL.
 * Returns 0 and *OUT (borrowed; S owns it), or -PROTO_ERR_LIMIT with WHY
 * (static) saying which limit: subscriptions per connection or in all, or
 * the broker's memory budget.
 */
int session_subscribe(struct session *s, const char *pattern, size_t plen, const char *queue,
                      size_t qlen, struct sub **out, const char **why);

/* Removes subscription SID.  0, or -1 when S has no such sid. */
int session_unsubscribe(struct session *s, uint64_t sid);

/*
 * Starts SUB's retained replay, sent after its `sub` response (call after
 * queueing it).  Queue-group subscriptions get none: the group shares work,
 * and a replay would hand the same value to each member that joins.
 */
void session_replay_start(struct sub *sub);

/* Goes on with S's replays (its output drained, or a later wake-up). */
void session_continue(struct session *s);

/* True while S has a replay under way. */
static inline bool session_replaying(const struct session *s)
{
    return s->replays != NULL;
}

/* ------------------------------------------------------------ consumers */

struct consumer_opts;
struct stream;

/*
 * Consumes stream ST with O for S (consumer.h): a new sid, sharing the
 * limits of subscriptions.  Returns 0 and *SID, or -code with WHY.
 */
int session_consume(struct session *s, struct stream *st, const struct consumer_opts *o,
                    uint32_t *sid, char *why, size_t why_len);

/* The consume subscription SID of S, or NULL. */
struct member *session_member(const struct session *s, uint64_t sid);

/* M's consumer freed it: S lets go of it (no detach). */
void session_member_forget(struct session *s, struct member *m);

/*
 * Permissions for streams: may S consume ST through FILTER (FLEN bytes; NULL
 * for the whole stream: each of its patterns)?  With a user, the filter (or
 * each pattern) must be covered by one of its subscribe-allow patterns and
 * overlap none of its subscribe-deny patterns (docs/protocol.md); without
 * one, every client may.  Asked by consume (code 8) and stream_info (streams
 * not listed).
 */
bool session_may_consume(const struct session *s, const struct stream *st, const char *filter,
                         size_t flen);

/*
 * S's permissions changed (a reload): its consume subscriptions no longer
 * allowed end, each with an error notification (code 8), as subscriptions do.
 */
void session_recheck_consumers(struct session *s);

/* True when a stored message of LEN bytes (prefix included) may go to S now. */
bool session_stored_room(const struct session *s, size_t len);

/*
 * Queues a stored message for S (a consumer's delivery): OPTS is its msg
 * opts map, whose reply_to an allow_responses user may then answer once.
 * False when S's connection is closing.
 */
bool session_offer_stored(struct session *s, const uint8_t *prefix, size_t plen,
                          const uint8_t *body, size_t blen, const uint8_t *opts, size_t olen);

/* ---------------------------------------------------- replies held back */

/*
 * A place for a response the store gives later, at the end of S's reply
 * queue.  Owned by S until S ends; then by whoever fills it, which frees
 * it (session_reply_fill).
 */
struct session_reply *session_reply_defer(struct session *s);

/*
 * Fills R with FRAME (copied) and sends what the queue lets go; frees R
 * when its session has ended.
 */
void session_reply_fill(struct session_reply *r, const void *frame, size_t len);

/* conn.c's check: when S's reply queue is not empty, holds FRAME behind it and returns true. */
bool session_reply_hold(struct session *s, const void *frame, size_t len);

/* ------------------------------------------------------------ delivery */

/* Queues message M for SUB, or applies the slow-consumer policy.  True when queued. */
bool session_deliver(struct sub *sub, const struct router_msg *m);

/*
 * True when SUB would take message M now: it fits its queue, and its
 * permissions let it receive M's topic (queue groups pick such a member).
 */
bool session_accepts(const struct sub *sub, const struct router_msg *m);

/*
 * Offers SUB a retained value for its replay: BODY_LEN bytes of topic and
 * payload then OPTS_LEN bytes of opts, in BLK.  False when its output has
 * no room in the replay window now (the value is offered again later).
 */
bool session_offer_retained(struct sub *sub, struct block *blk, size_t body_len, size_t opts_len);

/*
 * Applies the slow-consumer policy to N messages that do not fit S's
 * queue: drops and counts them (error 9 once per episode), or sends error 9
 * and closes.  Returns false (nothing was queued).
 */
bool session_slow(struct session *s, uint64_t n);

/*
 * The memory budget chose S as a slow consumer (its queue is among the
 * biggest while the broker is over max_memory).  Under slow_consumer =
 * drop it starts dropping; if it was dropping already and still holds its
 * queue, or under disconnect, it is closed and its queue freed at once.
 */
void session_slow_memory(struct session *s);

/* S's output has drained completely: a dropping episode ends, replays go on. */
void session_drained(struct session *s);

#endif
