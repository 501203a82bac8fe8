/*
 * users.h - the users file, compiled into an immutable policy.
 *
 * The users file is INI, one section per user (docs/security.md):
 *
 *   [user alice]
 *   password = $y$j9T$...          ; a hash made by `pigeon passwd`
 *   publish = orders.>, _INBOX.>
 *   subscribe = orders.*.status, _INBOX.%u.>
 *   publish_deny = orders.admin.>
 *   subscribe_deny = orders.secret.>
 *   allow_responses = yes
 *
 *   [user svc]
 *   token = sha256:...             ; made by `pigeon passwd --token`
 *   publish = metrics.>
 *
 * A name is 1..64 bytes of A-Z a-z 0-9 _ -.  A user has exactly one
 * credential: `password`, a crypt(3) hash (yescrypt $y$, bcrypt $2b$ $2a$
 * $2y$, gost-yescrypt $gy$, scrypt $7$; a plain password or a weaker method
 * is an error), or `token`, "sha256:" and the 64 hex digits of the token's
 * SHA-256.  The four lists take comma-separated patterns (acl.h); a list
 * key may be given again to continue a list too long for one line.  Unknown
 * sections and keys, duplicate users, a second password or token, a bad
 * name, hash, token or pattern are errors, each reported as FILE:LINE:
 * reason.  The same token for two users is an error too.
 *
 * A policy is parsed and checked completely before it is handed out, so
 * the caller (auth.h) swaps the whole policy at once or keeps the old one.
 *
 * Ownership.  A `struct users` and each `struct user` in it are
 * reference-counted and never change once loaded, so any thread may read
 * them.  A policy holds a reference on each of its users; a user does not
 * hold its policy, so a session may keep its user (user_ref) while the
 * policy it came from is replaced and freed.  Pointers returned by the
 * lookups are borrowed from the policy: take a reference to keep one past
 * the policy's own.  Reference counts are atomic.
 */
#ifndef PIGEON_USERS_H
#define PIGEON_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct acl;
struct user;
struct users;

#define USERS_NAME_MAX    64
#define USERS_FILE_MAX    (16u * 1024 * 1024)
#define USERS_TOKEN_BYTES 32 /* SHA-256 digest */

/*
 * Reads and checks the users file PATH.  0 and *OUT (the caller's
 * reference), or -1 with the first error in *ERR (FILE:LINE: reason, line 0
 * when the file could not be read) and *OUT untouched.  Only a regular file
 * of at most USERS_FILE_MAX bytes is read (never blocks: see inifile.h).
 */
int users_load(const char *path, struct users **out, struct config_error *err);

/* As users_load, from TEXT (NAME in messages).  For tests. */
int users_load_string(const char *text, const char *name, struct users **out,
                      struct config_error *err);

/*
 * Checks PATH as users_load does, but reports every error (for `pigeond
 * -t`): up to MAX into ERRS, sorted by line, their count in *N.  0 (valid,
 * *N is 0) or -1.  An error in a section header hides that section's keys'.
 */
int users_check_file(const char *path, struct config_error *errs, size_t max, size_t *n);

/* Takes a reference to U; returns it. */
struct users *users_ref(struct users *u);

/* Drops a reference; the last frees the policy and its references to its users. NULL is fine. */
void users_unref(struct users *u);

/* The file the policy was read from (borrowed from U). */
const char *users_path(const struct users *u);

/* Users in U, and the I-th in file order (borrowed from U). */
size_t users_count(const struct users *u);
struct user *users_at(const struct users *u, size_t i);

/* The user called NAME (LEN bytes), borrowed from U, or NULL. */
struct user *users_find(const struct users *u, const char *name, size_t len);

/*
 * The user whose token is TOKEN (LEN bytes, as the client sent it),
 * borrowed from U, or NULL: the SHA-256 of TOKEN looked up in a hash map,
 * and the stored digest compared with it in constant time.
 */
struct user *users_find_token(const struct users *u, const char *token, size_t len);

/* ------------------------------------------------------------ a user ---- */

/* Takes a reference to USER; returns it. */
struct user *user_ref(struct user *user);

/* Drops a reference; the last frees USER and its acl.  NULL is fine. */
void user_unref(struct user *user);

/* Its name, NUL-terminated (borrowed from USER). */
const char *user_name(const struct user *user);

/* Its password's crypt hash (borrowed from USER), or NULL for a token user. */
const char *user_password_hash(const struct user *user);

/* True for a user whose credential is a token. */
bool user_has_token(const struct user *user);

/* Its compiled permissions (borrowed from USER; "%u" already replaced). */
const struct acl *user_acl(const struct user *user);

/* Whether it may answer the reply_to of a request it received (allow_responses). */
bool user_allow_responses(const struct user *user);

/* The line of its [user NAME] header. */
int user_line(const struct user *user);

/* True when A and B have the same name and the same credential (hash or token digest). */
bool user_same_credentials(const struct user *a, const struct user *b);

/* -------------------------------------------------------- credentials ---- */

/*
 * Checks that HASH could be a stored password: a crypt(3) hash of an
 * accepted method, well formed (its syntax only: nothing is hashed).  0,
 * or -1 with a reason in WHY.
 */
int users_hash_check(const char *hash, char *why, size_t why_len);

/* The SHA-256 of TOKEN (LEN bytes) into DIGEST. */
void users_token_digest(const char *token, size_t len, unsigned char digest[USERS_TOKEN_BYTES]);

#endif
