/*
 * users.c - the users file: parsing, checking, and the compiled policy
 * (see users.h for the format and the ownership rules).
 *
 * One path serves start-up, `pigeond -t` and SIGHUP: the text is read whole
 * (inifile.h), parsed into a fresh policy, and handed out only when nothing
 * failed, so a reload that fails leaves the caller's policy untouched.
 *
 * Keys live in one table, keys[]: name and setter.  A user is added to the
 * name map at its header (so a duplicate is caught there) and its token
 * digest to the token map when the key is read; its acl is compiled as the
 * list keys come (acl_add, "%u" replaced by the name from the header).
 *
 * Nothing echoes a credential's value in an error: a `password` or `token`
 * line that is wrong may hold a plain password or a raw token.
 *
 * A password hash is checked for its syntax only: the method is one we
 * accept (memory-hard yescrypt, gost-yescrypt and scrypt, and bcrypt for
 * hashes brought from elsewhere), libxcrypt's crypt_checksalt accepts its
 * setting, and the hash after the last '$' has its method's length in
 * crypt's base-64 alphabet.  Hashing a test password to prove a hash would
 * cost 10 to 50 ms per user and prove no more.
 */
#include "users.h"

#include <crypt.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "acl.h"
#include "hmap.h"
#include "inifile.h"
#include "xalloc.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define TOKEN_PREFIX     "sha256:"
#define TOKEN_PREFIX_LEN 7
#define SECTION_USER     "user"

/* ------------------------------------------------------------ types ---- */

struct user {
    atomic_uint refs;
    char *name; /* owned */
    char *hash; /* owned crypt hash, or NULL */
    bool has_token;
    unsigned char token[USERS_TOKEN_BYTES]; /* SHA-256 of the token, when has_token */
    struct acl *acl;                        /* owned */
    bool allow_responses;
    int line;      /* of the [user NAME] header */
    int cred_line; /* of its password or token, 0 before one */
};

struct users {
    atomic_uint refs;
    char *path;         /* owned */
    struct user **list; /* owned array; a reference on each user */
    size_t n, cap;
    struct hmap by_name;  /* name -> user; key: user->name */
    struct hmap by_token; /* digest -> user; key: user->token */
};

/* ------------------------------------------------------------ users ---- */

struct user *user_ref(struct user *user)
{
    atomic_fetch_add(&user->refs, 1);
    return user;
}

void user_unref(struct user *user)
{
    if (user == NULL || atomic_fetch_sub(&user->refs, 1) != 1)
        return;
    free(user->name);
    if (user->hash != NULL) {
        OPENSSL_cleanse(user->hash, strlen(user->hash));
        free(user->hash);
    }
    acl_free(user->acl);
    free(user);
}

const char *user_name(const struct user *user)
{
    return user->name;
}

const char *user_password_hash(const struct user *user)
{
    return user->hash;
}

bool user_has_token(const struct user *user)
{
    return user->has_token;
}

const struct acl *user_acl(const struct user *user)
{
    return user->acl;
}

bool user_allow_responses(const struct user *user)
{
    return user->allow_responses;
}

int user_line(const struct user *user)
{
    return user->line;
}

bool user_same_credentials(const struct user *a, const struct user *b)
{
    if (strcmp(a->name, b->name) != 0 || a->has_token != b->has_token)
        return false;
    if (a->has_token)
        return memcmp(a->token, b->token, USERS_TOKEN_BYTES) == 0;
    return a->hash != NULL && b->hash != NULL && strcmp(a->hash, b->hash) == 0;
}

static struct user *user_new(const char *name, size_t len, int line)
{
    struct user *user = xcalloc(1, sizeof(*user));

    atomic_init(&user->refs, 1);
    user->name = xstrndup(name, len);
    user->acl = acl_new();
    user->line = line;
    return user;
}

/* ----------------------------------------------------------- policy ---- */

struct users *users_ref(struct users *u)
{
    atomic_fetch_add(&u->refs, 1);
    return u;
}

void users_unref(struct users *u)
{
    if (u == NULL || atomic_fetch_sub(&u->refs, 1) != 1)
        return;
    hmap_release(&u->by_name);
    hmap_release(&u->by_token);
    for (size_t i = 0; i < u->n; i++)
        user_unref(u->list[i]);
    free(u->list);
    free(u->path);
    free(u);
}

const char *users_path(const struct users *u)
{
    return u->path;
}

size_t users_count(const struct users *u)
{
    return u->n;
}

struct user *users_at(const struct users *u, size_t i)
{
    return i < u->n ? u->list[i] : NULL;
}

struct user *users_find(const struct users *u, const char *name, size_t len)
{
    return hmap_get(&u->by_name, name, len);
}

void users_token_digest(const char *token, size_t len, unsigned char digest[USERS_TOKEN_BYTES])
{
    unsigned int n = 0;

    if (EVP_Digest(token, len, digest, &n, EVP_sha256(), NULL) != 1 || n != USERS_TOKEN_BYTES)
        abort(); /* SHA-256 of bytes in memory cannot fail */
}

/*
 * The map finds the candidate by the digest's bytes.  Its own compare runs
 * over SHA-256 digests of what the client sent, so its timing tells at most
 * how many leading bytes of SHA-256(guess) match a stored digest: no help
 * towards a token.  The decision itself is the constant-time compare.
 */
struct user *users_find_token(const struct users *u, const char *token, size_t len)
{
    unsigned char digest[USERS_TOKEN_BYTES];
    struct user *user;

    users_token_digest(token, len, digest);
    user = hmap_get(&u->by_token, digest, sizeof(digest));
    if (user == NULL || CRYPTO_memcmp(user->token, digest, sizeof(digest)) != 0)
        return NULL;
    return user;
}

static struct users *users_new(const char *path)
{
    struct users *u = xcalloc(1, sizeof(*u));

    atomic_init(&u->refs, 1);
    u->path = xstrdup(path);
    return u;
}

static void users_add(struct users *u, struct user *user)
{
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 8;
        u->list = xrealloc(u->list, u->cap * sizeof(*u->list));
    }
    u->list[u->n++] = user;
    hmap_put(&u->by_name, user->name, strlen(user->name), user);
}

/* ------------------------------------------------------ credentials ---- */

/* The methods a stored password may use; HASH_LEN: characters after the last '$'. */
#define BCRYPT_HASH_LEN 53 /* salt and hash after "$2b$NN$" */
#define CRYPT_HASH_LEN  43 /* yescrypt's, scrypt's */

static const struct hash_method {
    const char *prefix;
    const char *name;
    size_t hash_len;
} hash_methods[] = {
    {"$y$", "yescrypt", CRYPT_HASH_LEN}, {"$gy$", "gost-yescrypt", CRYPT_HASH_LEN},
    {"$7$", "scrypt", CRYPT_HASH_LEN},   {"$2b$", "bcrypt", BCRYPT_HASH_LEN},
    {"$2a$", "bcrypt", BCRYPT_HASH_LEN}, {"$2y$", "bcrypt", BCRYPT_HASH_LEN},
};

static bool crypt_b64(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '/'))
            return false;
    }
    return true;
}

/* bcrypt's "$2b$NN$": a cost of 04 to 31 (crypt_checksalt lets any two digits pass). */
static bool bcrypt_cost_ok(const char *hash)
{
    int cost = (hash[4] - '0') * 10 + (hash[5] - '0');

    return hash[4] >= '0' && hash[4] <= '9' && hash[5] >= '0' && hash[5] <= '9' && hash[6] == '$' &&
           cost >= 4 && cost <= 31;
}

int users_hash_check(const char *hash, char *why, size_t why_len)
{
    const struct hash_method *m = NULL;
    const char *last;
    size_t len = strlen(hash);

    if (hash[0] != '$') {
        snprintf(why, why_len,
                 "not a password hash (a plain password?): make one with `pigeon passwd`");
        return -1;
    }
    for (size_t i = 0; i < ARRAY_SIZE(hash_methods) && m == NULL; i++)
        if (strncmp(hash, hash_methods[i].prefix, strlen(hash_methods[i].prefix)) == 0)
            m = &hash_methods[i];
    if (m == NULL) {
        const char *end = strchr(hash + 1, '$');
        int plen = end ? (int)(end - hash + 1) : 1;
        snprintf(why, why_len,
                 "hash method '%.*s' is not accepted: use yescrypt ($y$, from `pigeon passwd`) "
                 "or bcrypt ($2b$)",
                 plen > 8 ? 8 : plen, hash);
        return -1;
    }
    last = strrchr(hash, '$');
    if (len >= CRYPT_OUTPUT_SIZE || crypt_checksalt(hash) != CRYPT_SALT_OK ||
        strlen(last + 1) != m->hash_len || !crypt_b64(last + 1, m->hash_len) ||
        last - hash < (ptrdiff_t)strlen(m->prefix) ||
        (m->hash_len == BCRYPT_HASH_LEN && !bcrypt_cost_ok(hash))) {
        snprintf(why, why_len, "malformed %s hash", m->name);
        return -1;
    }
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "sha256:" and 64 hex digits into DIGEST: 0, or -1. */
static int token_parse(const char *v, unsigned char digest[USERS_TOKEN_BYTES])
{
    if (strncmp(v, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0 ||
        strlen(v) != TOKEN_PREFIX_LEN + 2 * USERS_TOKEN_BYTES)
        return -1;
    v += TOKEN_PREFIX_LEN;
    for (size_t i = 0; i < USERS_TOKEN_BYTES; i++) {
        int hi = hex_digit(v[2 * i]), lo = hex_digit(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        digest[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* ------------------------------------------------------------ parse ---- */

struct parse {
    struct inifile f;
    struct users *u;  /* being built; freed by the caller on failure */
    struct user *cur; /* the section's user, or NULL (none yet, or a bad header) */
    bool in_section;  /* a header was read (good or bad) */
    int key_line[8];  /* where each key of this section was set, 0 if not */
};

struct key_def;

/* Sets a key from VALUE (non-empty) on P->cur: 0, or -1 after reporting. */
typedef int (*key_set_fn)(struct parse *p, const struct key_def *k, const char *value);

struct key_def {
    const char *name;
    key_set_fn set;
    enum acl_list list; /* the list keys' list */
    bool repeat;        /* may be given again: the values add up */
};

/* Which credential P->cur has already, and where, for the error of a second one. */
static bool credential_clash(struct parse *p)
{
    struct user *user = p->cur;

    if (user->cred_line == 0) {
        user->cred_line = p->f.line;
        return false;
    }
    inifile_fail(&p->f, p->f.line,
                 "user '%s' has a %s already (line %d): give a password or a token, once",
                 user->name, user->has_token ? "token" : "password", user->cred_line);
    return true;
}

static int set_password(struct parse *p, const struct key_def *k, const char *value)
{
    char why[160];

    (void)k;
    if (users_hash_check(value, why, sizeof(why)) < 0) {
        inifile_fail(&p->f, p->f.line, "bad password for user '%s': %s", p->cur->name, why);
        return -1;
    }
    if (credential_clash(p))
        return -1;
    p->cur->hash = xstrdup(value);
    return 0;
}

static int set_token(struct parse *p, const struct key_def *k, const char *value)
{
    struct user *other;

    (void)k;
    if (token_parse(value, p->cur->token) < 0) {
        inifile_fail(&p->f, p->f.line,
                     "bad token for user '%s': expected sha256: and 64 hex digits, "
                     "made by `pigeon passwd --token`",
                     p->cur->name);
        return -1;
    }
    if (credential_clash(p))
        return -1;
    other = hmap_get(&p->u->by_token, p->cur->token, USERS_TOKEN_BYTES);
    if (other != NULL) {
        inifile_fail(&p->f, p->f.line, "user '%s' has the same token as user '%s' (line %d)",
                     p->cur->name, other->name, other->cred_line);
        return -1;
    }
    p->cur->has_token = true;
    hmap_put(&p->u->by_token, p->cur->token, USERS_TOKEN_BYTES, p->cur);
    return 0;
}

static const char *skip_blank(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Adds each comma-separated pattern of VALUE to the user's list K->list. */
static int set_list(struct parse *p, const struct key_def *k, const char *value)
{
    const char *s = value;
    char why[160];

    for (;;) {
        const char *comma = strchr(s, ','), *end;
        s = skip_blank(s);
        end = comma ? comma : s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end == s) {
            inifile_fail(&p->f, p->f.line, "empty pattern in %s: patterns are separated by ','",
                         k->name);
            return -1;
        }
        if (acl_add(p->cur->acl, k->list, s, (size_t)(end - s), p->cur->name, why, sizeof(why)) <
            0) {
            int n = (int)(end - s);
            inifile_fail(&p->f, p->f.line, "bad pattern '%.*s%s' in %s: %s", n > 64 ? 64 : n, s,
                         n > 64 ? "..." : "", k->name, why);
            return -1;
        }
        if (comma == NULL)
            return 0;
        s = comma + 1;
    }
}

static int set_allow_responses(struct parse *p, const struct key_def *k, const char *value)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
            p->cur->allow_responses = strcmp(value, yes[i]) == 0;
            return 0;
        }
    }
    inifile_fail(&p->f, p->f.line, "bad %s '%.32s': expected yes or no", k->name, value);
    return -1;
}

static const struct key_def keys[] = {
    {"password", set_password, ACL_PUBLISH, false},
    {"token", set_token, ACL_PUBLISH, false},
    {"publish", set_list, ACL_PUBLISH, true},
    {"subscribe", set_list, ACL_SUBSCRIBE, true},
    {"publish_deny", set_list, ACL_PUBLISH_DENY, true},
    {"subscribe_deny", set_list, ACL_SUBSCRIBE_DENY, true},
    {"allow_responses", set_allow_responses, ACL_PUBLISH, false},
};

_Static_assert(ARRAY_SIZE(keys) <= ARRAY_SIZE(((struct parse *)0)->key_line),
               "key_line is too small for keys[]");

static const struct key_def *key_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* The section that ends here: its user needs a credential. */
static void section_finish(struct parse *p)
{
    if (p->cur != NULL && p->cur->cred_line == 0)
        inifile_fail(&p->f, p->cur->line,
                     "user '%s' has no password or token: add password = (from `pigeon passwd`) "
                     "or token = (from `pigeon passwd --token`)",
                     p->cur->name);
    p->cur = NULL;
}

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > USERS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* "[user NAME]": starts NAME's section (a new user), or reports why not. */
static void section_cb(struct inifile *f, const char *name, size_t len)
{
    struct parse *p = f->arg;
    const size_t kw = sizeof(SECTION_USER) - 1;
    struct user *dup;

    section_finish(p);
    p->in_section = true;
    memset(p->key_line, 0, sizeof(p->key_line));
    if (len < kw || memcmp(name, SECTION_USER, kw) != 0 ||
        (len > kw && name[kw] != ' ' && name[kw] != '\t')) {
        inifile_fail(f, f->line, "unknown section [%.*s]: expected [user NAME]",
                     (int)(len > 64 ? 64 : len), name);
        return;
    }
    for (name += kw, len -= kw; len && (*name == ' ' || *name == '\t'); len--)
        name++;
    if (!name_ok(name, len)) {
        if (len == 0)
            inifile_fail(f, f->line, "a user section needs a name: [user NAME]");
        else
            inifile_fail(f, f->line, "bad user name '%.*s': use 1 to %d of A-Z a-z 0-9 _ -",
                         (int)(len > 64 ? 64 : len), name, USERS_NAME_MAX);
        return;
    }
    dup = users_find(p->u, name, len);
    if (dup != NULL) {
        inifile_fail(f, f->line, "duplicate user '%s' (first at line %d)", dup->name, dup->line);
        return;
    }
    p->cur = user_new(name, len, f->line);
    users_add(p->u, p->cur);
}

static void key_cb(struct inifile *f, const char *name, const char *value)
{
    struct parse *p = f->arg;
    const struct key_def *k;

    if (!p->in_section) {
        inifile_fail(f, f->line, "key '%.64s' is outside any section: put it under [user NAME]",
                     name);
        return;
    }
    if (p->cur == NULL) /* a bad header, reported: its keys are not checked */
        return;
    k = key_find(name);
    if (k == NULL) {
        inifile_fail(f, f->line,
                     "unknown key '%.64s' in [user %s]: expected password, token, publish, "
                     "subscribe, publish_deny, subscribe_deny or allow_responses",
                     name, p->cur->name);
        return;
    }
    if (p->key_line[k - keys] && !k->repeat) {
        inifile_fail(f, f->line, "duplicate key '%s' in [user %s] (first at line %d)", name,
                     p->cur->name, p->key_line[k - keys]);
        return;
    }
    p->key_line[k - keys] = f->line;
    if (value[0] == '\0') {
        inifile_fail(f, f->line, "missing value for '%s'", name);
        return;
    }
    k->set(p, k, value);
}

/* The one path: LEN bytes of TEXT, named NAME, into a new checked policy. */
static int users_parse_text(const char *text, size_t len, const char *name, struct users **out,
                            struct config_error *err, struct config_error *errs, size_t max_errs,
                            size_t *n_errs)
{
    struct parse p = {
        .f = {
            .section = section_cb, .key = key_cb, .err = err, .errs = errs, .max_errs = max_errs}};

    p.f.arg = &p;
    p.u = users_new(name);
    inifile_parse(&p.f, text, len);
    if (inifile_going(&p.f))
        section_finish(&p);
    if (errs != NULL)
        *n_errs = inifile_errors_sort(&p.f);
    if (p.f.failed) {
        users_unref(p.u);
        return -1;
    }
    *out = p.u;
    return 0;
}

int users_load_string(const char *text, const char *name, struct users **out,
                      struct config_error *err)
{
    struct config_error scratch;

    if (err == NULL)
        err = &scratch;
    if (name == NULL)
        name = "<string>";
    inifile_error_begin(err, name);
    return users_parse_text(text, strlen(text), name, out, err, NULL, 0, NULL);
}

/* users_load, collecting every error into ERRS when it is not NULL. */
static int users_load_errs(const char *path, struct users **out, struct config_error *err,
                           struct config_error *errs, size_t max_errs, size_t *n_errs)
{
    char *text;
    size_t len;
    int rc;

    inifile_error_begin(err, path);
    if (inifile_read(path, USERS_FILE_MAX, &text, &len, err) < 0)
        return -1;
    rc = users_parse_text(text, len, path, out, err, errs, max_errs, n_errs);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

int users_load(const char *path, struct users **out, struct config_error *err)
{
    struct config_error scratch;

    return users_load_errs(path, out, err != NULL ? err : &scratch, NULL, 0, NULL);
}

int users_check_file(const char *path, struct config_error *errs, size_t max, size_t *n)
{
    struct users *u = NULL;
    struct config_error first;

    *n = 0;
    if (users_load_errs(path, &u, &first, errs, max, n) == 0) {
        users_unref(u);
        return 0;
    }
    if (*n == 0 && max > 0) { /* the file could not be read: one error, not tied to a line */
        errs[0] = first;
        *n = 1;
    }
    return -1;
}
