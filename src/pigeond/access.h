/*
 * access.h - who a client is, and what it may do: logins and permissions
 * on a session.
 *
 * Where the listener requires a login (config_listener_authenticates), a
 * session starts anonymous and locked: any method but `hello` gets code 6
 * and the connection closes (access_gate).  A `hello` with credentials is
 * checked by the authenticator (auth.h) off the loop; meanwhile the
 * connection's input is held (CONN_HOLD_SESSION), so no frame after the
 * hello runs before it is decided.  Success makes the user the session's
 * and answers the hello; failure answers code 7 and closes.  A TLS client
 * whose verified certificate's subject CN names a user is that user at once,
 * with or without a hello.
 *
 * Permissions are the user's compiled acl (acl.h), asked through the
 * session's decision cache: a pub to a topic not granted gets code 8 (the
 * connection stays), as does one whose reply_to no subscribe pattern
 * covers; a sub with a pattern no single subscribe-allow pattern covers
 * gets code 8; a sub that is covered but overlaps a subscribe-deny pattern
 * is made "filtered", and each delivery to it (retained replays too) asks
 * access_may_receive.  A user with allow_responses may answer a request it
 * received (responses.h).  A session without a user (no login required)
 * may do everything but publish to '$' topics, as before.
 *
 * A reload of the users file (access_refresh) gives each session its
 * user's new permissions at once, re-checks its subscriptions (one no
 * longer allowed is removed, with an error notification saying so), and
 * closes the sessions whose user is gone or whose password or token
 * changed.
 */
#ifndef PIGEON_ACCESS_H
#define PIGEON_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"

struct auth;
struct auth_creds;
struct router_msg;
struct sub;

/*
 * Called before each frame's method runs.  True when it may run; false when
 * the session is locked and the method is not `hello` (code 6 sent, the
 * connection closing).  IS_HELLO: the frame is a hello.
 */
bool access_gate_locked(struct session *s, bool is_hello, bool is_request, uint32_t msgid);
static inline bool access_gate(struct session *s, bool is_hello, bool is_request, uint32_t msgid)
{
    return !s->locked || access_gate_locked(s, is_hello, is_request, msgid);
}

/*
 * A hello carrying CREDS (borrowed for the call), msgid MSGID: where a
 * login is required, starts its check and returns true (the answer comes
 * later: the hello result, or code 7 and a close); else returns false and
 * the caller answers the hello with access_answer_hello (credentials are
 * ignored).
 */
bool access_hello(struct session *s, uint32_t msgid, const struct auth_creds *creds);

/*
 * Answers S's hello (msgid MSGID) with its result: the client_id, the
 * limits, and the user S logged in as (a password, a token or a
 * certificate), when it did.
 */
void access_answer_hello(struct session *s, uint32_t msgid);

/* Cancels a check under way (the connection is closing).  Safe when none is. */
void access_end(struct session *s);

/*
 * True when S may publish to TOPIC (checked; HASH is its hmap_hash, and
 * TOPIC is the session's last, session_topic_same or _keep just before);
 * false: code 8.  The caller has refused
 * '$' topics already (they are no client's).  Inline: with no login
 * required it is one test on the publish path, and a publisher repeating
 * an allowed topic is two (session.h, pub_ok).
 */
bool access_may_publish_checked(struct session *s, const char *topic, size_t len, uint32_t hash);
static inline bool access_may_publish(struct session *s, const char *topic, size_t len,
                                      uint32_t hash)
{
    return s->acl == NULL || s->pub_ok || access_may_publish_checked(s, topic, len, hash);
}

/* True when S may ask for replies on REPLY_TO (checked): one of its subscribe patterns covers it.
 */
bool access_may_reply_to(struct session *s, const char *topic, size_t len);

/*
 * Decides SUB (its pattern checked), made by S: false when it is not
 * allowed (code 8); else true, with SUB->filtered set when its deliveries
 * must be checked one by one.
 */
bool access_check_sub(struct session *s, struct sub *sub);

/* True when SUB may receive a message on TOPIC (LEN bytes): always unless filtered. */
bool access_may_receive(struct sub *sub, const char *topic, size_t len);

/* A message M was delivered to S: an allow_responses user may answer its reply_to. */
void access_delivered(struct session *s, const struct router_msg *m);

/*
 * The same for a stored message (a stream delivery), whose reply_to is in
 * its msg OPTS map (OLEN bytes, as sent).
 */
void access_delivered_opts(struct session *s, const uint8_t *opts, size_t olen);

/*
 * The users policy was replaced (AUTH NULL: logins are off now), and S's
 * listener now does or does not REQUIRE a login: S takes its user's new
 * permissions, or is closed when its user is gone or its credential
 * changed, or when it must now log in and has not.
 */
void access_refresh(struct session *s, struct auth *auth, bool require);

/* The name S logged in as, or NULL. */
const char *access_user_name(const struct session *s);

#endif
