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
 * retain_foreach_match walks the pattern's tokens down the trie, rebuilding
 * each matched topic in a stack buffer (no topic exceeds PROTO_TOPIC_MAX
 * bytes): a literal token follows one child, '*' every child, and '>' hands
 * the whole subtree below the node to the callback.  At depth 0 a wildcard
 * passes over children whose token begins with '$' (the rule of topic.h).
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
    struct rt_node *parent; /* NULL for the root */
    struct hmap children;   /* token -> struct rt_node */
    void *value;            /* NULL: no topic ends here */
    size_t cost;
    uint32_t tlen;
    char token[]; /* the hmap key in parent->children */
};

struct retain_store {
    struct rt_node *root;
    size_t count;   /* nodes with a value */
    size_t n_nodes; /* nodes besides the root */
    uint64_t bytes; /* the values' declared costs */
    uint64_t node_bytes;
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

/* Frees NODE and each ancestor left without value or child, up to the root. */
static void node_prune(struct retain_store *rs, struct rt_node *node)
{
    while (node != rs->root && node->value == NULL && hmap_count(&node->children) == 0) {
        struct rt_node *parent = node->parent;
        hmap_remove(&parent->children, node->token, node->tlen);
        hmap_release(&node->children);
        rs->n_nodes--;
        rs->node_bytes -= node_charge(node->tlen);
        free(node);
        node = parent;
    }
}

static void node_free_tree(struct rt_node *node, void (*free_value)(void *value))
{
    size_t pos = 0;
    struct rt_node *child;

    while ((child = hmap_next(&node->children, &pos, NULL, NULL)) != NULL)
        node_free_tree(child, free_value);
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

/* ------------------------------------------------------------ match ---- */

struct rt_walk {
    const struct topic_token *tok; /* the pattern's tokens */
    size_t n;
    char buf[PROTO_TOPIC_MAX + 1]; /* the topic of the node being visited */
    void (*fn)(const char *topic, size_t len, void *value, void *arg);
    void *arg;
};

/* Appends NODE's token to the topic of length LEN in W's buffer. */
static size_t walk_append(struct rt_walk *w, size_t len, const struct rt_node *node)
{
    if (len > 0)
        w->buf[len++] = '.';
    assert(len + node->tlen <= PROTO_TOPIC_MAX);
    memcpy(w->buf + len, node->token, node->tlen);
    return len + node->tlen;
}

/* Calls back for NODE's value, if any; the topic is NUL-terminated too. */
static void walk_emit(struct rt_walk *w, const struct rt_node *node, size_t len)
{
    if (node->value == NULL)
        return;
    w->buf[len] = '\0';
    w->fn(w->buf, len, node->value, w->arg);
}

/* Calls back for NODE's value, if any, and every value below it. */
static void walk_subtree(struct rt_walk *w, const struct rt_node *node, size_t len)
{
    size_t pos = 0;
    const struct rt_node *child;

    walk_emit(w, node, len);
    while ((child = hmap_next(&node->children, &pos, NULL, NULL)) != NULL)
        walk_subtree(w, child, walk_append(w, len, child));
}

static bool wildcard_skips(const struct rt_node *child, size_t depth)
{
    return depth == 0 && child->tlen > 0 && child->token[0] == '$';
}

/* NODE, whose topic is W->buf[0..LEN), was reached by pattern tokens [0, I). */
static void walk_pattern(struct rt_walk *w, const struct rt_node *node, size_t i, size_t len)
{
    const struct topic_token *t = &w->tok[i];
    size_t pos = 0;
    const struct rt_node *child;

    if (i == w->n) {
        walk_emit(w, node, len);
        return;
    }
    if (t->len == 1 && (t->p[0] == '*' || t->p[0] == '>')) {
        bool fwc = t->p[0] == '>';
        while ((child = hmap_next(&node->children, &pos, NULL, NULL)) != NULL) {
            if (wildcard_skips(child, i))
                continue;
            if (fwc)
                walk_subtree(w, child, walk_append(w, len, child));
            else
                walk_pattern(w, child, i + 1, walk_append(w, len, child));
        }
        return;
    }
    child = hmap_get(&node->children, t->p, t->len);
    if (child != NULL)
        walk_pattern(w, child, i + 1, walk_append(w, len, child));
}

void retain_foreach_match(const struct retain_store *rs, const char *pattern, size_t plen,
                          void (*fn)(const char *topic, size_t len, void *value, void *arg),
                          void *arg)
{
    struct topic_token tok[TOPIC_MAX_TOKENS];
    struct rt_walk w;

    assert(topic_check(pattern, plen, TOPIC_PATTERN) == TOPIC_OK);
    w.tok = tok;
    w.n = topic_tokenize(pattern, plen, tok);
    w.fn = fn;
    w.arg = arg;
    walk_pattern(&w, rs->root, 0, 0);
}
