/*
 * acl.c - compiled permissions: four pattern tries per user, the decisions
 * they answer, and the per-connection decision cache (see acl.h).
 *
 * The rules, first.  Tokens of a pattern are literals, '*' (exactly one
 * token) or, last only, '>' (one token or more).  A pattern matches a topic
 * as topic.h says, with the '$' rule: a pattern whose first token is '*' or
 * '>' matches no topic whose first token starts with '$'.
 *
 * COVERS.  Pattern A covers pattern P when every topic P matches also
 * matches A.  Walking both a token at a time, from i = 0:
 *
 *   A[i] is '>'     covers when P has a token at i (any: literal, '*', '>'),
 *                   unless i = 0 and P[0] is a literal starting with '$';
 *   A[i] is '*'     P[i] must be a literal or '*' (a '>' may match several
 *                   tokens), and at i = 0 not a literal starting with '$';
 *   A[i] literal    P[i] must be the same literal;
 *   A has ended     P must have ended too (else P matches longer topics).
 *
 *   orders.>  covers  orders.*  orders.eu.>  orders.eu  orders.>
 *   orders.*  covers  orders.eu  orders.*      but not orders.> (it misses
 *                                                orders.eu.new) nor orders
 *   >         covers  *.x  a.>                 but not $SYS.x
 *   *.x       does not cover $SYS.x;  $SYS.>  covers  $SYS.broker.*
 *
 * OVERLAPS.  Patterns A and B overlap when some topic matches both:
 *
 *   either is '>' at i         overlap when the other has a token at i,
 *                              unless i = 0 and the other's is a literal
 *                              starting with '$';
 *   both literals              they must be equal;
 *   '*' and a literal          fine, but at i = 0 not a '$' literal;
 *   '*' and '*'                fine;
 *   one has ended              overlap only when both have.
 *
 *   orders.>   overlaps  orders.secret.>   (orders.secret.x)
 *   orders.*   does not overlap  orders.secret.>  (two tokens against three or more)
 *   *.b        overlaps  a.*   (a.b);  >  does not overlap  $SYS.x
 *
 * A subscription with pattern P is DENIED unless one subscribe-allow pattern
 * covers it (the union of several never counts: "a.b" and "a.c" together
 * do not cover "a.*"), and FILTERED when it overlaps a subscribe-deny
 * pattern.  Both are defined over topics of any length.  At the 255-byte
 * limit that can only err on the safe side: a pattern so long that its '>'
 * could stand for one token only is treated as matching longer topics (it
 * may be DENIED though every real topic it matches is allowed), and an
 * overlap may be found that no topic of 255 bytes or fewer has (a FILTERED
 * subscription whose deliveries are then each checked and all pass).
 *
 * The tries.  Each list is a trie of pattern tokens, as in sublist.c: a
 * node stands for a pattern prefix, its literal next tokens in an hmap (the
 * key borrowed from the child's copy of its token), its '*' next token a
 * pointer, and `end` / `fwc` mark a pattern ending there or continuing
 * with '>' (which gets no node).  Every node lies on some pattern's path,
 * so a child always leads to at least one pattern.  The walks:
 *
 *   match(T)     does any pattern match topic T: at each depth the literal
 *                child and the '*' child; 'fwc' of every node passed;
 *   covers(P)    does any pattern cover P: a literal of P follows the
 *                literal child and '*'; a '*' of P only '*'; a '>' of P
 *                only an 'fwc';
 *   overlaps(P)  does any pattern overlap P: as covers, but a '*' of P
 *                follows every child, and a '>' of P overlaps any child.
 *
 * Each walk is depth-first and stops at the first yes.  match and covers
 * visit at most two children per node reached, and a node is reached at
 * most once per walk (its depth and prefix fix its path); overlaps may visit
 * every node at the depth of a '*' in P, which is bounded by the deny list
 * and runs once per subscription.
 */
#include "acl.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "topic.h"
#include "xalloc.h"

#define USER_TOKEN     "%u"
#define USER_TOKEN_LEN 2

/* ------------------------------------------------------------ types ---- */

struct acl_node {
    struct hmap children;  /* literal token -> struct acl_node; key: child->tok */
    struct acl_node *star; /* the '*' child, or NULL */
    bool end;              /* a pattern ends at this node */
    bool fwc;              /* a pattern ends here with '>' */
    uint32_t len;
    char tok[]; /* this node's token (not NUL-terminated); empty at the root */
};

struct acl {
    struct acl_node *root[ACL_LIST_N]; /* owned; each allocated on first add */
    size_t count[ACL_LIST_N];
    uint64_t id;
};

/* The last acl id handed out.  Atomic so that acls may be built on any thread. */
static _Atomic uint64_t acl_last_id;

/* ------------------------------------------------------------- trie ---- */

static struct acl_node *node_new(const char *tok, size_t len)
{
    struct acl_node *n = xcalloc(1, sizeof(*n) + len);

    memcpy(n->tok, tok, len);
    n->len = (uint32_t)len;
    return n;
}

static void node_free(struct acl_node *n)
{
    size_t pos = 0;
    struct acl_node *child;

    if (n == NULL)
        return;
    while ((child = hmap_next(&n->children, &pos, NULL, NULL)) != NULL)
        node_free(child);
    hmap_release(&n->children);
    node_free(n->star);
    free(n);
}

static bool tok_is(const struct topic_token *t, char c)
{
    return t->len == 1 && t->p[0] == c;
}

/* True for a literal first token that starts with '$' (the '$' rule). */
static bool tok_dollar(const struct topic_token *t)
{
    return t->len > 0 && t->p[0] == '$';
}

/* The child of N for token T ('*' or a literal), made when MAKE. */
static struct acl_node *node_child(struct acl_node *n, const struct topic_token *t, bool make)
{
    struct acl_node *c;

    if (tok_is(t, '*')) {
        if (n->star == NULL && make)
            n->star = node_new(t->p, t->len);
        return n->star;
    }
    c = hmap_get(&n->children, t->p, t->len);
    if (c == NULL && make) {
        c = node_new(t->p, t->len);
        hmap_put(&n->children, c->tok, c->len, c);
    }
    return c;
}

/* Adds the pattern of N tokens TOKS under ROOT.  True when it was new. */
static bool trie_add(struct acl_node *root, const struct topic_token *toks, size_t n)
{
    struct acl_node *nd = root;
    bool fwc = tok_is(&toks[n - 1], '>'), fresh;

    for (size_t i = 0; i < n - fwc; i++)
        nd = node_child(nd, &toks[i], true);
    fresh = fwc ? !nd->fwc : !nd->end;
    if (fwc)
        nd->fwc = true;
    else
        nd->end = true;
    return fresh;
}

/*
 * Does a pattern below ND match the topic's tokens T[I..N)?  DOLLAR: the
 * topic's first token starts with '$' (no wildcard reaches it at depth 0).
 */
static bool trie_match(const struct acl_node *nd, const struct topic_token *t, size_t i, size_t n,
                       bool dollar)
{
    bool wild = !(i == 0 && dollar);
    const struct acl_node *c;

    if (nd == NULL)
        return false;
    if (i == n)
        return nd->end;
    if (wild && nd->fwc)
        return true; /* a token or more remains */
    c = hmap_get(&nd->children, t[i].p, t[i].len);
    if (c != NULL && trie_match(c, t, i + 1, n, dollar))
        return true;
    return wild && trie_match(nd->star, t, i + 1, n, dollar);
}

/* Does one pattern below ND cover the pattern P[I..N)?  DOLLAR: P[0] is a '$' literal. */
static bool trie_covers(const struct acl_node *nd, const struct topic_token *p, size_t i, size_t n,
                        bool dollar)
{
    bool wild = !(i == 0 && dollar);
    const struct acl_node *c;

    if (nd == NULL)
        return false;
    if (i == n)
        return nd->end;
    if (wild && nd->fwc)
        return true;
    if (tok_is(&p[i], '>'))
        return false; /* only a '>' covers a '>' */
    if (tok_is(&p[i], '*'))
        return trie_covers(nd->star, p, i + 1, n, dollar);
    c = hmap_get(&nd->children, p[i].p, p[i].len);
    if (c != NULL && trie_covers(c, p, i + 1, n, dollar))
        return true;
    return wild && trie_covers(nd->star, p, i + 1, n, dollar);
}

/* True when ND has a child a '>' or '*' of P at depth I can meet. */
static bool node_has_wild_reach(const struct acl_node *nd, size_t i)
{
    size_t pos = 0;
    const struct acl_node *c;

    if (nd->fwc || nd->star != NULL)
        return true;
    if (i > 0)
        return hmap_count(&nd->children) > 0;
    while ((c = hmap_next(&nd->children, &pos, NULL, NULL)) != NULL)
        if (c->tok[0] != '$')
            return true;
    return false;
}

/* Does a pattern below ND overlap the pattern P[I..N)?  DOLLAR: P[0] is a '$' literal. */
static bool trie_overlaps(const struct acl_node *nd, const struct topic_token *p, size_t i,
                          size_t n, bool dollar)
{
    bool wild = !(i == 0 && dollar);
    const struct acl_node *c;
    size_t pos = 0;

    if (nd == NULL)
        return false;
    if (i == n)
        return nd->end;
    if (tok_is(&p[i], '>'))
        return node_has_wild_reach(nd, i);
    if (wild && nd->fwc)
        return true;
    if (wild && trie_overlaps(nd->star, p, i + 1, n, dollar))
        return true;
    if (!tok_is(&p[i], '*')) {
        c = hmap_get(&nd->children, p[i].p, p[i].len);
        return c != NULL && trie_overlaps(c, p, i + 1, n, dollar);
    }
    while ((c = hmap_next(&nd->children, &pos, NULL, NULL)) != NULL)
        if (!(i == 0 && c->tok[0] == '$') && trie_overlaps(c, p, i + 1, n, dollar))
            return true;
    return false;
}

/* ---------------------------------------------------------- compile ---- */

struct acl *acl_new(void)
{
    struct acl *acl = xcalloc(1, sizeof(*acl));

    acl->id = atomic_fetch_add(&acl_last_id, 1) + 1;
    return acl;
}

void acl_free(struct acl *acl)
{
    if (acl == NULL)
        return;
    for (int l = 0; l < ACL_LIST_N; l++)
        node_free(acl->root[l]);
    free(acl);
}

uint64_t acl_id(const struct acl *acl)
{
    return acl->id;
}

size_t acl_count(const struct acl *acl, enum acl_list list)
{
    return acl->count[list];
}

/*
 * Writes PATTERN with each "%u" token replaced by USER into BUF (SIZE
 * bytes).  Returns the length, or -1 with WHY set.  A result longer than a
 * topic may be is left to topic_check, which names the fault.
 */
static int expand_user(const char *pattern, size_t len, const char *user, char *buf, size_t size,
                       char *why, size_t why_len)
{
    size_t ulen = strlen(user), out = 0, i = 0;

    while (i <= len) {
        const char *dot = memchr(pattern + i, '.', len - i);
        size_t end = dot ? (size_t)(dot - pattern) : len;
        const char *tok = pattern + i;
        size_t tlen = end - i;
        if (tlen == USER_TOKEN_LEN && memcmp(tok, USER_TOKEN, USER_TOKEN_LEN) == 0) {
            tok = user;
            tlen = ulen;
        } else if (memmem(tok, tlen, USER_TOKEN, USER_TOKEN_LEN) != NULL) {
            snprintf(why, why_len, "%%u must be a whole token, as in _INBOX.%%u.>");
            return -1;
        }
        if (out + tlen + 1 > size) {
            snprintf(why, why_len, "longer than 255 bytes once %%u is replaced");
            return -1;
        }
        memcpy(buf + out, tok, tlen);
        out += tlen;
        if (end < len)
            buf[out++] = '.';
        i = end + 1;
    }
    return (int)out;
}

int acl_add(struct acl *acl, enum acl_list list, const char *pattern, size_t len, const char *user,
            char *why, size_t why_len)
{
    char buf[PROTO_TOPIC_MAX + 1];
    struct topic_token toks[TOPIC_MAX_TOKENS];
    enum topic_error err;
    int n;

    if (len > PROTO_TOPIC_MAX) {
        snprintf(why, why_len, "%s", topic_strerror(TOPIC_ERR_TOO_LONG));
        return -1;
    }
    n = expand_user(pattern, len, user, buf, sizeof(buf), why, why_len);
    if (n < 0)
        return -1;
    err = topic_check(buf, (size_t)n, TOPIC_PATTERN);
    if (err != TOPIC_OK) {
        snprintf(why, why_len, "%s", topic_strerror(err));
        return -1;
    }
    if (acl->root[list] == NULL)
        acl->root[list] = node_new("", 0);
    if (trie_add(acl->root[list], toks, topic_tokenize(buf, (size_t)n, toks)))
        acl->count[list]++;
    return 0;
}

/* -------------------------------------------------------- decisions ---- */

/* Does a pattern of LIST match the checked topic TOPIC? */
static bool list_match(const struct acl *acl, enum acl_list list, const char *topic, size_t len)
{
    struct topic_token toks[TOPIC_MAX_TOKENS];
    size_t n;

    if (acl->root[list] == NULL)
        return false;
    n = topic_tokenize(topic, len, toks);
    return trie_match(acl->root[list], toks, 0, n, topic_is_system(topic, len));
}

bool acl_may_publish(const struct acl *acl, const char *topic, size_t len)
{
    return list_match(acl, ACL_PUBLISH, topic, len) &&
           !list_match(acl, ACL_PUBLISH_DENY, topic, len);
}

bool acl_may_receive(const struct acl *acl, const char *topic, size_t len)
{
    return list_match(acl, ACL_SUBSCRIBE, topic, len) &&
           !list_match(acl, ACL_SUBSCRIBE_DENY, topic, len);
}

bool acl_may_reply_to(const struct acl *acl, const char *topic, size_t len)
{
    return list_match(acl, ACL_SUBSCRIBE, topic, len);
}

enum acl_sub acl_check_subscribe(const struct acl *acl, const char *pattern, size_t len)
{
    struct topic_token toks[TOPIC_MAX_TOKENS];
    size_t n = topic_tokenize(pattern, len, toks);
    bool dollar = tok_dollar(&toks[0]); /* a wildcard has no '$' */

    if (!trie_covers(acl->root[ACL_SUBSCRIBE], toks, 0, n, dollar))
        return ACL_SUB_DENIED;
    if (trie_overlaps(acl->root[ACL_SUBSCRIBE_DENY], toks, 0, n, dollar))
        return ACL_SUB_FILTERED;
    return ACL_SUB_ALLOWED;
}

const char *acl_sub_name(enum acl_sub d)
{
    switch (d) {
    case ACL_SUB_DENIED:
        return "denied";
    case ACL_SUB_ALLOWED:
        return "allowed";
    case ACL_SUB_FILTERED:
        return "filtered";
    }
    return "unknown";
}

/* ------------------------------------------------------------ cache ---- */

struct acl_cache_slot {
    char *topic;   /* owned copy, or NULL for an empty slot */
    uint8_t len;   /* topics are at most 255 bytes */
    uint8_t known; /* CACHE_PUB, CACHE_RECV: which decision is filled */
    uint8_t allow; /* the same bits: which of them is yes */
};

#define CACHE_PUB  1u
#define CACHE_RECV 2u

_Static_assert(PROTO_TOPIC_MAX <= UINT8_MAX, "cache slots store a topic's length in a byte");
_Static_assert((ACL_CACHE_SLOTS & (ACL_CACHE_SLOTS - 1)) == 0, "slots: a power of two");

void acl_cache_init(struct acl_cache *c)
{
    memset(c, 0, sizeof(*c));
}

static void cache_empty(struct acl_cache *c)
{
    if (c->slots == NULL)
        return;
    for (size_t i = 0; i < ACL_CACHE_SLOTS; i++) {
        free(c->slots[i].topic);
        c->slots[i].topic = NULL;
    }
}

void acl_cache_fini(struct acl_cache *c)
{
    cache_empty(c);
    free(c->slots);
    acl_cache_init(c);
}

/* The slot for TOPIC (whose hmap_hash is HASH), made to hold it (its decisions unknown if it
 * held another). */
static struct acl_cache_slot *cache_slot(struct acl_cache *c, const struct acl *acl,
                                         const char *topic, size_t len, uint32_t hash)
{
    struct acl_cache_slot *s;

    if (c->acl_id != acl->id) {
        cache_empty(c);
        c->acl_id = acl->id;
    }
    if (c->slots == NULL)
        c->slots = xcalloc(ACL_CACHE_SLOTS, sizeof(*c->slots));
    s = &c->slots[hash & (ACL_CACHE_SLOTS - 1)];
    if (s->topic != NULL && s->len == len && memcmp(s->topic, topic, len) == 0)
        return s;
    free(s->topic);
    s->topic = xmalloc(len ? len : 1);
    memcpy(s->topic, topic, len);
    s->len = (uint8_t)len;
    s->known = s->allow = 0;
    return s;
}

/* The decision BIT for TOPIC: from C, else from DECIDE and kept. */
static bool cache_decide(struct acl_cache *c, const struct acl *acl, const char *topic, size_t len,
                         uint32_t hash, unsigned bit,
                         bool (*decide)(const struct acl *, const char *, size_t))
{
    struct acl_cache_slot *s = cache_slot(c, acl, topic, len, hash);

    if (s->known & bit) {
        c->hits++;
        return (s->allow & bit) != 0;
    }
    c->misses++;
    s->known |= (uint8_t)bit;
    if (decide(acl, topic, len))
        s->allow |= (uint8_t)bit;
    return (s->allow & bit) != 0;
}

bool acl_cache_may_publish(struct acl_cache *c, const struct acl *acl, const char *topic,
                           size_t len)
{
    return acl_cache_may_publish_h(c, acl, topic, len, hmap_hash(topic, len));
}

bool acl_cache_may_publish_h(struct acl_cache *c, const struct acl *acl, const char *topic,
                             size_t len, uint32_t hash)
{
    return cache_decide(c, acl, topic, len, hash, CACHE_PUB, acl_may_publish);
}

bool acl_cache_may_receive(struct acl_cache *c, const struct acl *acl, const char *topic,
                           size_t len)
{
    return cache_decide(c, acl, topic, len, hmap_hash(topic, len), CACHE_RECV, acl_may_receive);
}
