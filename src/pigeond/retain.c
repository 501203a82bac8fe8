/*
 * retain.c - the retained store: a trie of topic tokens whose nodes may hold
 * a value (see retain.h for the contract).
 *
 * A node stands for one topic prefix; its children are an hmap from the next
 * token to the child (the key borrowed from the child's copy of its token),
 * and it holds a value when a topic ends there.  Published topics have no
 * wildcards, so unlike the subscription trie there is no '*' child.
 *
 * Invariants: every node but the root holds a value or has a child (a clear
 * frees the node and every ancestor it leaves empty); count is the number of
 * nodes with a value, bytes the sum of their declared costs, and node_bytes
 * the sum of node_charge() over every node but the root.
 *
 * A node's charge is an estimate of what it really takes, fixed by its token
 * length so that creating and pruning it add and give back the same amount:
 * its allocation, malloc's header and rounding, and its share of its parent's
 * child map (RT_NODE_OVERHEAD).  Measured on topics of 126 one-byte tokens
 * (4,655 tiny values fill 64 MiB), the broker's RSS grew by 56 MiB: the
 * charge errs high, by about 13%.
 *
 * Walks.  A node's children are also linked in a list, in the order they
 * were made, so that a walk can stand on a node and find the next one
 * however the store changed since: a cursor (retain.h) pins the node it
 * stands on, and a pinned node is pruned only once it is let go.  Walking a
 * pattern, a literal token follows one child (an hmap lookup), '*' every
 * child in list order, and '>' the whole subtree below.  At depth 0 a
 * wildcard passes over children whose token begins with '$' (the rule of
 * topic.h).  Every set stamps the node with the next sequence number, so a
 * cursor offers only the values set before it began: one appended behind
 * it in the list, replaced, or set anew went to the subscriber live.
 * retain_foreach_match is a cursor walked to the end at once, with each
 * topic rebuilt from its node's ancestors.
 */
#include "retain.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "topic.h"
#include "xalloc.h"

struct rt_node {
    struct rt_node *parent;      /* NULL for the root */
    struct hmap children;        /* token -> struct rt_node */
    struct rt_node *first, *last; /* the children again, in the order made */
    struct rt_node *next, *prev;  /* siblings, in parent's list */
    void *value;                 /* NULL: no topic ends here */
    size_t cost;
    uint64_t seq;  /* when the value was set (retain_store.next_seq) */
    uint32_t pins; /* cursors standing here: not pruned while above 0 */
    uint32_t tlen;
    char token[]; /* the hmap key in parent->children */
};

struct retain_store {
    struct rt_node *root;
    size_t count;   /* nodes with a value */
    size_t n_nodes; /* nodes besides the root */
    uint64_t bytes; /* the values' declared costs */
    uint64_t node_bytes;
    uint64_t next_seq; /* stamps the next value set */
};

/*
 * Charged per node beyond its allocation: malloc's header and rounding (16
 * bytes), and about two 24-byte slots of its parent's child map, which
 * keeps a load between 3/8 and 3/4 (hmap.h).
 */
#define RT_NODE_OVERHEAD 64

/* ------------------------------------------------------------ nodes ---- */

static size_t node_size(uint32_t tlen)
{
    size_t size = offsetof(struct rt_node, token) + tlen;
    return size > sizeof(struct rt_node) ? size : sizeof(struct rt_node);
}

/* What a node with a token of TLEN bytes is charged in retain_bytes. */
static size_t node_charge(uint32_t tlen)
{
    return node_size(tlen) + RT_NODE_OVERHEAD;
}

static struct rt_node *node_new(struct retain_store *rs, struct rt_node *parent, const char *tok,
                                uint32_t tlen)
{
    struct rt_node *node = xcalloc(1, node_size(tlen));

    node->parent = parent;
    node->tlen = tlen;
    memcpy(node->token, tok, tlen);
    if (parent != NULL) {
        node->prev = parent->last;
        if (parent->last != NULL)
            parent->last->next = node;
        else
            parent->first = node;
        parent->last = node;
    }
    rs->n_nodes++;
    rs->node_bytes += node_charge(tlen);
    return node;
}

/*
 * The deepest node on the path of TOK[0..N) that exists; *DEPTH gets how
 * many tokens it stands for (N when the whole topic has a node).
 */
static struct rt_node *node_descend(const struct retain_store *rs, const struct topic_token *tok,
                                    size_t n, size_t *depth)
{
    struct rt_node *node = rs->root, *child;
    size_t i;

    for (i = 0; i < n; i++) {
        if ((child = hmap_get(&node->children, tok[i].p, tok[i].len)) == NULL)
            break;
        node = child;
    }
    *depth = i;
    return node;
}

/* The node for checked TOPIC, or NULL when it has none. */
static struct rt_node *node_find(const struct retain_store *rs, const char *topic, size_t len)
{
    struct topic_token tok[TOPIC_MAX_TOKENS];
    size_t n = topic_tokenize(topic, len, tok), depth;
    struct rt_node *node = node_descend(rs, tok, n, &depth);

    return depth == n ? node : NULL;
}

/* The node for checked TOPIC, created with its missing ancestors. */
static struct rt_node *node_make(struct retain_store *rs, const char *topic, size_t len)
{
    struct topic_token tok[TOPIC_MAX_TOKENS];
    size_t n = topic_tokenize(topic, len, tok), i;
    struct rt_node *node = node_descend(rs, tok, n, &i);

    for (; i < n; i++) {
        struct rt_node *child = node_new(rs, node, tok[i].p, tok[i].len);
        hmap_put(&node->children, child->token, child->tlen, child);
        node = child;
    }
    return node;
}

static void node_unlink(struct rt_node *node)
{
    struct rt_node *parent = node->parent;

    if (node->prev != NULL)
        node->prev->next = node->next;
    else
        parent->first = node->next;
    if (node->next != NULL)
        node->next->prev = node->prev;
    else
        parent->last = node->prev;
}

/* Frees NODE and each ancestor left without value, child or pin, up to the root. */
static void node_prune(struct retain_store *rs, struct rt_node *node)
{
    while (node != rs->root && node->value == NULL && node->first == NULL && node->pins == 0) {
        struct rt_node *parent = node->parent;
        hmap_remove(&parent->children, node->token, node->tlen);
        node_unlink(node);
        hmap_release(&node->children);
        rs->n_nodes--;
        rs->node_bytes -= node_charge(node->tlen);
        free(node);
        node = parent;
    }
}

static void node_free_tree(struct rt_node *node, void (*free_value)(void *value))
{
    struct rt_node *child, *next;

    assert(node->pins == 0); /* every cursor was released */
    for (child = node->first; child != NULL; child = next) {
        next = child->next;
        node_free_tree(child, free_value);
    }
    hmap_release(&node->children);
    if (node->value != NULL && free_value != NULL)
        free_value(node->value);
    free(node);
}

/* -------------------------------------------------------------- API ---- */

struct retain_store *retain_new(void)
{
    struct retain_store *rs = xcalloc(1, sizeof *rs);

    rs->root = node_new(rs, NULL, "", 0);
    rs->n_nodes = 0; /* the root is not counted, nor charged */
    rs->node_bytes = 0;
    return rs;
}

void retain_free(struct retain_store *rs, void (*free_value)(void *value))
{
    if (rs == NULL)
        return;
    node_free_tree(rs->root, free_value);
    free(rs);
}

void *retain_set(struct retain_store *rs, const char *topic, size_t len, void *value, size_t cost)
{
    struct rt_node *node;
    void *old;

    assert(value != NULL && topic_check(topic, len, TOPIC_PUBLISH) == TOPIC_OK);
    node = node_make(rs, topic, len);
    old = node->value;
    if (old != NULL)
        rs->bytes -= node->cost;
    else
        rs->count++;
    node->value = value;
    node->cost = cost;
    node->seq = rs->next_seq++;
    rs->bytes += cost;
    return old;
}

uint64_t retain_bytes_if_set(const struct retain_store *rs, const char *topic, size_t len,
                             size_t cost)
{
    struct topic_token tok[TOPIC_MAX_TOKENS];
    size_t n, i;
    uint64_t after = retain_bytes(rs) + cost;

    assert(topic_check(topic, len, TOPIC_PUBLISH) == TOPIC_OK);
    n = topic_tokenize(topic, len, tok);
    const struct rt_node *node = node_descend(rs, tok, n, &i);
    if (i == n)
        return after - (node->value != NULL ? node->cost : 0);
    for (; i < n; i++)
        after += node_charge((uint32_t)tok[i].len);
    return after;
}

void *retain_clear(struct retain_store *rs, const char *topic, size_t len)
{
    struct rt_node *node = node_find(rs, topic, len);
    void *old;

    if (node == NULL || node->value == NULL)
        return NULL;
    old = node->value;
    rs->bytes -= node->cost;
    rs->count--;
    node->value = NULL;
    node->cost = 0;
    node_prune(rs, node);
    return old;
}

void *retain_get(const struct retain_store *rs, const char *topic, size_t len)
{
    const struct rt_node *node = node_find(rs, topic, len);
    return node ? node->value : NULL;
}

size_t retain_cost(const struct retain_store *rs, const char *topic, size_t len)
{
    const struct rt_node *node = node_find(rs, topic, len);
    return node && node->value ? node->cost : 0;
}

size_t retain_count(const struct retain_store *rs)
{
    return rs->count;
}

uint64_t retain_bytes(const struct retain_store *rs)
{
    return rs->bytes + rs->node_bytes;
}

uint64_t retain_node_bytes(const struct retain_store *rs)
{
    return rs->node_bytes;
}

size_t retain_node_count(const struct retain_store *rs)
{
    return rs->n_nodes;
}

/* ------------------------------------------------------------ walks ---- */

/* A pattern split into tokens, with how each depth of the trie is walked. */
struct rt_pattern {
    struct topic_token tok[TOPIC_MAX_TOKENS];
    size_t n;
    bool fwc; /* the last token is '>' */
};

/* Which children of a node at some depth the pattern reaches. */
enum rt_reach {
    RT_REACH_NONE, /* none: the pattern ends here */
    RT_REACH_ONE,  /* the one whose token is the pattern's next (a literal) */
    RT_REACH_ALL,  /* every one: '*', or within or at a '>' */
};

static void pattern_split(struct rt_pattern *p, const char *pattern, size_t plen)
{
    assert(topic_check(pattern, plen, TOPIC_PATTERN) == TOPIC_OK);
    p->n = topic_tokenize(pattern, plen, p->tok);
    p->fwc = p->tok[p->n - 1].len == 1 && p->tok[p->n - 1].p[0] == '>';
}

static enum rt_reach pattern_reach(const struct rt_pattern *p, size_t depth)
{
    if (p->fwc && depth + 1 >= p->n)
        return RT_REACH_ALL;
    if (depth >= p->n)
        return RT_REACH_NONE;
    if (p->tok[depth].len == 1 && p->tok[depth].p[0] == '*')
        return RT_REACH_ALL;
    return RT_REACH_ONE;
}

/* Whether a node at DEPTH the walk reached matches the whole pattern. */
static bool pattern_ends(const struct rt_pattern *p, size_t depth)
{
    return p->fwc ? depth >= p->n : depth == p->n;
}

/* A wildcard at the first token does not reach '$' topics (topic.h). */
static struct rt_node *skip_system(struct rt_node *node, size_t depth)
{
    while (depth == 0 && node != NULL && node->tlen > 0 && node->token[0] == '$')
        node = node->next;
    return node;
}

/* The first child of NODE (at DEPTH) the pattern reaches, or NULL. */
static struct rt_node *reach_first(const struct rt_pattern *p, struct rt_node *node, size_t depth)
{
    switch (pattern_reach(p, depth)) {
    case RT_REACH_ONE:
        return hmap_get(&node->children, p->tok[depth].p, p->tok[depth].len);
    case RT_REACH_ALL:
        return skip_system(node->first, depth);
    default:
        return NULL;
    }
}

/* The next sibling of NODE (at DEPTH, below its parent) the pattern reaches, or NULL. */
static struct rt_node *reach_next(const struct rt_pattern *p, struct rt_node *node, size_t depth)
{
    if (pattern_reach(p, depth - 1) != RT_REACH_ALL)
        return NULL; /* a literal reaches one child only */
    return skip_system(node->next, depth - 1);
}

/* Moves CUR's pin from where it stands to NODE (which may be freed then). */
static void cursor_move(struct retain_store *rs, struct retain_cursor *cur, struct rt_node *node)
{
    struct rt_node *old = cur->at;

    cur->at = node;
    if (node != NULL)
        node->pins++;
    if (old != NULL) {
        old->pins--;
        node_prune(rs, old);
    }
}

/* Steps CUR to the next node in depth-first order the pattern reaches; false when none. */
static bool cursor_advance(struct retain_store *rs, struct retain_cursor *cur,
                           const struct rt_pattern *p)
{
    struct rt_node *next = reach_first(p, cur->at, cur->depth);

    if (next != NULL) {
        cursor_move(rs, cur, next);
        cur->depth++;
        cur->offered = false;
        return true;
    }
    while (cur->depth > 0) {
        next = reach_next(p, cur->at, cur->depth);
        if (next != NULL) {
            cursor_move(rs, cur, next);
            cur->offered = false;
            return true;
        }
        cursor_move(rs, cur, cur->at->parent); /* visited before its children */
        cur->depth--;
    }
    return false;
}

void retain_cursor_init(struct retain_store *rs, struct retain_cursor *cur)
{
    memset(cur, 0, sizeof *cur);
    cur->before = rs->next_seq;
}

void retain_cursor_release(struct retain_store *rs, struct retain_cursor *cur)
{
    cursor_move(rs, cur, NULL);
    cur->done = true;
}

enum retain_walk retain_cursor_walk(struct retain_store *rs, struct retain_cursor *cur,
                                    const char *pattern, size_t plen, size_t *budget,
                                    bool (*fn)(void *value, void *arg), void *arg)
{
    struct rt_pattern p;

    if (cur->done)
        return RETAIN_WALK_DONE;
    if (*budget == 0)
        return RETAIN_WALK_BUDGET;
    pattern_split(&p, pattern, plen);
    if (cur->at == NULL) {
        cursor_move(rs, cur, rs->root); /* the root holds no value */
        cur->offered = true;
    }
    for (;;) {
        struct rt_node *node = cur->at;
        if (!cur->offered) {
            if (node->value != NULL && node->seq < cur->before && pattern_ends(&p, cur->depth) &&
                !fn(node->value, arg))
                return RETAIN_WALK_REFUSED;
            cur->offered = true;
            if (--*budget == 0)
                return RETAIN_WALK_BUDGET;
        }
        if (!cursor_advance(rs, cur, &p)) {
            retain_cursor_release(rs, cur);
            return RETAIN_WALK_DONE;
        }
    }
}

/* ----------------------------------------------------------- foreach ---- */

struct rt_foreach {
    struct retain_cursor cur;
    void (*fn)(const char *topic, size_t len, void *value, void *arg);
    void *arg;
};

/* Rebuilds the topic of the node CUR stands on into BUF; returns its length. */
static size_t cursor_topic(const struct retain_cursor *cur, char *buf)
{
    const struct rt_node *chain[TOPIC_MAX_TOKENS];
    size_t n = 0, len = 0;

    for (const struct rt_node *node = cur->at; node->parent != NULL; node = node->parent)
        chain[n++] = node;
    while (n > 0) {
        const struct rt_node *node = chain[--n];
        if (len > 0)
            buf[len++] = '.';
        memcpy(buf + len, node->token, node->tlen);
        len += node->tlen;
    }
    buf[len] = '\0';
    return len;
}

static bool foreach_offer_cb(void *value, void *arg)
{
    struct rt_foreach *f = arg;
    char topic[PROTO_TOPIC_MAX + 1];
    size_t len = cursor_topic(&f->cur, topic);

    f->fn(topic, len, value, f->arg);
    return true;
}

void retain_foreach_match(struct retain_store *rs, const char *pattern, size_t plen,
                          void (*fn)(const char *topic, size_t len, void *value, void *arg),
                          void *arg)
{
    struct rt_foreach f = {.fn = fn, .arg = arg};
    size_t budget = SIZE_MAX;

    retain_cursor_init(rs, &f.cur);
    while (retain_cursor_walk(rs, &f.cur, pattern, plen, &budget, foreach_offer_cb, &f) !=
           RETAIN_WALK_DONE)
        budget = SIZE_MAX;
}
