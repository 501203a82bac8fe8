/*
 * sublist.c - the subscription index: a token trie plus a match cache (see
 * sublist.h for the contract).
 *
 * The trie.  A node stands for one pattern prefix.  Its literal next tokens
 * are an hmap (token -> child, the key borrowed from the child's own copy of
 * its token), its '*' next token a plain pointer, and a pattern ending at the
 * node ends either there ("a.b") or with '>' after it ("a.b.>"): a '>' never
 * gets a node of its own.  So each node carries two ends, each with a list of
 * plain entries and the queue groups of that end (name -> group, in a small
 * side table allocated only for nodes that have groups).  A node with no
 * child, entry or group is freed at once, walking up, so the trie never holds
 * more nodes than the live patterns need; the root is never freed.
 *
 * Matching a topic of N tokens visits, at each depth, at most the literal
 * child and the '*' child of each node reached, and collects the '>' end of
 * every node passed and the plain end of the nodes reached at depth N.  A
 * node is reached at most once (its depth and prefix fix its path), so every
 * entry and group appears once.  The '$' rule is checked at depth 0 only.
 *
 * The cache.  sublist_match first looks the topic up in an hmap of recent
 * results, each one allocation holding the result arrays and the topic (the
 * hmap key).  A hit whose generation equals the index's is returned as is:
 * one hash, one probe, no allocation.  Every insert and remove bumps the
 * generation, which voids every cached result at once in O(1); a stale
 * entry is rebuilt in place when its topic is next published.  A miss walks
 * the trie into scratch arrays owned by the index (grown, never shrunk, so a
 * miss allocates only the cached copy) and caches the result.  When the cache
 * holds cache_max topics, a sweep keeps at most half of them, chosen among
 * those hit since the previous sweep (second chance; their mark is cleared),
 * and frees the rest, stale ones always.  One-off topics (reply inboxes) are
 * thus evicted and hot topics survive, at a cost amortised to O(1) per miss.
 * A result of more than SUBLIST_CACHE_RESULT_MAX entries is not cached (a
 * stale copy of it is dropped): it is returned from the scratch arrays, as
 * with no cache.  That bounds the cache in bytes, not just in topics, at
 * about cache_max * (64 + 8 * SUBLIST_CACHE_RESULT_MAX + PROTO_TOPIC_MAX),
 * some 3.4 MiB for the broker's 4096 topics, where one connection with
 * 2,000 '>' subscriptions publishing to 2,000 topics once made it 31 MiB.
 *
 * Because cached results are freed by later matches, a result is borrowed
 * only until the next call that may change the index or the cache.
 *
 * Memory per subscription on a fresh topic "a.b.<n>": one node (60 bytes plus
 * the token), one hmap slot in the parent (24 bytes at a load between 3/8
 * and 3/4), and one entry (40 bytes): about 170 bytes measured with malloc's
 * own overhead, for 10,000 such subscriptions.  Nothing is preallocated per
 * node: a leaf's child map and group table stay NULL.
 */
#include "sublist.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "topic.h"
#include "xalloc.h"

/* ------------------------------------------------------------ types ---- */

/* Where a pattern ends at its node: exactly there, or with a '>' after it. */
enum sl_end {
    SL_END_EXACT = 0,
    SL_END_FWC = 1,
};

struct sublist_entry {
    struct sl_node *node;
    void *item; /* opaque, never dereferenced */
    union {
        struct { /* a plain entry: in node->plain[end] */
            struct sublist_entry *next, **pprev;
        } plain;
        struct { /* a queue member: group->members[idx] */
            struct sublist_group *group;
            uint32_t idx;
        } queue;
    } u;
    uint8_t end; /* enum sl_end */
    bool queued;
};

struct sublist_group {
    struct sl_node *node;
    struct sublist_entry **members;
    uint32_t n_members, cap_members;
    uint32_t next; /* round-robin cursor: the member to try first */
    uint8_t end;   /* enum sl_end */
    uint32_t nlen;
    char name[]; /* the hmap key in node->groups->by_end[end] */
};

/* A node's queue groups, allocated with its first group. */
struct sl_groups {
    struct hmap by_end[2]; /* name -> struct sublist_group, by enum sl_end */
};

struct sl_node {
    struct sl_node *parent;         /* NULL for the root */
    struct hmap children;           /* literal token -> struct sl_node */
    struct sl_node *star;           /* the '*' child, or NULL */
    struct sublist_entry *plain[2]; /* plain entries, by enum sl_end */
    struct sl_groups *groups;       /* NULL when the node has no group */
    uint32_t tlen;
    char token[]; /* the hmap key in parent->children */
};

/*
 * A cached match: this header, then the item pointers, then the group
 * pointers, then the topic's bytes (the cache's key), in one allocation.
 */
struct sl_cached {
    struct sublist_result res;
    uint64_t memo; /* the caller's word (res.memo points here) */
    uint64_t gen;  /* sl->gen when it was built */
    uint32_t hash; /* of the topic, kept for the sweep */
    uint8_t tlen;  /* topics have at most PROTO_TOPIC_MAX bytes */
    bool hot;      /* hit since the last sweep */
};

/* Where a miss collects its result; reused, so that a miss allocates once. */
struct sl_scratch {
    void **items;
    struct sublist_group **groups;
    size_t n_items, cap_items;
    size_t n_groups, cap_groups;
};

struct sublist {
    struct sl_node *root;
    size_t count;      /* entries */
    size_t n_nodes;    /* nodes besides the root */
    uint64_t gen;      /* bumped by every insert and remove */
    struct hmap cache; /* topic -> struct sl_cached */
    size_t cache_max;
    size_t cache_bytes; /* what the cached results' allocations take */
    struct sl_scratch scratch;
    struct sublist_result uncached; /* the result when cache_max is 0 */
};

/* ------------------------------------------------------------ nodes ---- */

static struct sl_node *node_new(struct sublist *sl, struct sl_node *parent, const char *tok,
                                uint32_t tlen)
{
    size_t size = offsetof(struct sl_node, token) + tlen;
    struct sl_node *node = xcalloc(1, size > sizeof *node ? size : sizeof *node);

    node->parent = parent;
    node->tlen = tlen;
    memcpy(node->token, tok, tlen);
    sl->n_nodes++;
    return node;
}

static bool token_is_star(const struct topic_token *tok)
{
    return tok->len == 1 && tok->p[0] == '*';
}

static bool token_is_fwc(const struct topic_token *tok)
{
    return tok->len == 1 && tok->p[0] == '>';
}

/* PARENT's child for TOK ('*' or a literal), created when missing. */
static struct sl_node *node_child(struct sublist *sl, struct sl_node *parent,
                                  const struct topic_token *tok)
{
    uint32_t h;
    struct sl_node *child;

    if (token_is_star(tok)) {
        if (parent->star == NULL)
            parent->star = node_new(sl, parent, tok->p, tok->len);
        return parent->star;
    }
    h = hmap_hash(tok->p, tok->len);
    child = hmap_get_h(&parent->children, tok->p, tok->len, h);
    if (child == NULL) {
        child = node_new(sl, parent, tok->p, tok->len);
        hmap_put_h(&parent->children, child->token, child->tlen, h, child);
    }
    return child;
}

static bool node_is_empty(const struct sl_node *node)
{
    return hmap_count(&node->children) == 0 && node->star == NULL &&
           node->plain[SL_END_EXACT] == NULL && node->plain[SL_END_FWC] == NULL &&
           node->groups == NULL;
}

/* Frees NODE and each ancestor left empty, up to the root. */
static void node_prune(struct sublist *sl, struct sl_node *node)
{
    while (node != sl->root && node_is_empty(node)) {
        struct sl_node *parent = node->parent;
        if (parent->star == node)
            parent->star = NULL;
        else
            hmap_remove(&parent->children, node->token, node->tlen);
        hmap_release(&node->children);
        free(node);
        sl->n_nodes--;
        node = parent;
    }
}

/* ------------------------------------------------------------ groups ---- */

static struct sublist_group *group_get(struct sl_node *node, enum sl_end end, const char *name,
                                       size_t nlen)
{
    struct sublist_group *g;
    uint32_t h = hmap_hash(name, nlen);

    if (node->groups == NULL)
        node->groups = xcalloc(1, sizeof *node->groups);
    g = hmap_get_h(&node->groups->by_end[end], name, nlen, h);
    if (g == NULL) {
        assert(nlen <= UINT32_MAX);
        g = xcalloc(1, sizeof *g + nlen);
        g->node = node;
        g->end = (uint8_t)end;
        g->nlen = (uint32_t)nlen;
        memcpy(g->name, name, nlen);
        hmap_put_h(&node->groups->by_end[end], g->name, g->nlen, h, g);
    }
    return g;
}

static void group_join(struct sublist_group *g, struct sublist_entry *e)
{
    if (g->n_members == g->cap_members) {
        g->cap_members = g->cap_members ? g->cap_members * 2 : 2;
        g->members = xrealloc(g->members, g->cap_members * sizeof *g->members);
    }
    e->queued = true;
    e->u.queue.group = g;
    e->u.queue.idx = g->n_members;
    g->members[g->n_members++] = e;
}

static void group_free(struct sublist_group *g)
{
    if (g == NULL)
        return;
    free(g->members);
    free(g);
}

/* Takes E out of its group; frees the group, and the node's table, when empty. */
static void group_leave(struct sublist_entry *e)
{
    struct sublist_group *g = e->u.queue.group;
    struct sl_node *node = g->node;
    struct sublist_entry *last = g->members[--g->n_members];

    g->members[e->u.queue.idx] = last; /* swap-remove: order is not promised */
    last->u.queue.idx = e->u.queue.idx;
    if (g->n_members > 0) {
        if (g->n_members < g->cap_members / 4) {
            g->cap_members /= 2;
            g->members = xrealloc(g->members, g->cap_members * sizeof *g->members);
        }
        return;
    }
    hmap_remove(&node->groups->by_end[g->end], g->name, g->nlen);
    group_free(g);
    if (hmap_count(&node->groups->by_end[0]) == 0 && hmap_count(&node->groups->by_end[1]) == 0) {
        free(node->groups);
        node->groups = NULL;
    }
}

void *sublist_group_pick(struct sublist_group *g, bool (*ready)(void *item, void *arg), void *arg)
{
    uint32_t n = g->n_members, start = g->next < n ? g->next : 0;

    assert(n > 0);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = start + k < n ? start + k : start + k - n;
        void *item = g->members[i]->item;
        if (ready == NULL || ready(item, arg)) {
            g->next = i + 1;
            return item;
        }
    }
    g->next = start + 1; /* none ready: take the next in turn anyway */
    return g->members[start]->item;
}

size_t sublist_group_size(const struct sublist_group *g)
{
    return g->n_members;
}

void *sublist_group_item(const struct sublist_group *g, size_t i)
{
    assert(i < g->n_members);
    return g->members[i]->item;
}

/* ------------------------------------------------------- insert/remove ---- */

static void plain_push(struct sublist_entry **head, struct sublist_entry *e)
{
    e->queued = false;
    e->u.plain.next = *head;
    e->u.plain.pprev = head;
    if (*head != NULL)
        (*head)->u.plain.pprev = &e->u.plain.next;
    *head = e;
}

static void plain_unlink(struct sublist_entry *e)
{
    *e->u.plain.pprev = e->u.plain.next;
    if (e->u.plain.next != NULL)
        e->u.plain.next->u.plain.pprev = e->u.plain.pprev;
}

struct sublist_entry *sublist_insert(struct sublist *sl, const char *pattern, size_t plen,
                                     const char *queue, size_t qlen, void *item)
{
    struct topic_token tok[TOPIC_MAX_TOKENS];
    size_t n;
    enum sl_end end = SL_END_EXACT;
    struct sl_node *node = sl->root;
    struct sublist_entry *e = xcalloc(1, sizeof *e);

    assert(topic_check(pattern, plen, TOPIC_PATTERN) == TOPIC_OK);
    n = topic_tokenize(pattern, plen, tok);
    if (token_is_fwc(&tok[n - 1])) {
        end = SL_END_FWC;
        n--;
    }
    for (size_t i = 0; i < n; i++)
        node = node_child(sl, node, &tok[i]);
    e->node = node;
    e->item = item;
    e->end = (uint8_t)end;
    if (queue != NULL)
        group_join(group_get(node, end, queue, qlen), e);
    else
        plain_push(&node->plain[end], e);
    sl->count++;
    sl->gen++;
    return e;
}

void sublist_remove(struct sublist *sl, struct sublist_entry *e)
{
    struct sl_node *node = e->node;

    if (e->queued)
        group_leave(e);
    else
        plain_unlink(e);
    free(e);
    sl->count--;
    sl->gen++;
    node_prune(sl, node);
}

/* ------------------------------------------------------------ match ---- */

static void scratch_add_item(struct sl_scratch *s, void *item)
{
    if (s->n_items == s->cap_items) {
        s->cap_items = s->cap_items ? s->cap_items * 2 : 16;
        s->items = xrealloc(s->items, s->cap_items * sizeof *s->items);
    }
    s->items[s->n_items++] = item;
}

static void scratch_add_group(struct sl_scratch *s, struct sublist_group *g)
{
    if (s->n_groups == s->cap_groups) {
        s->cap_groups = s->cap_groups ? s->cap_groups * 2 : 4;
        s->groups = xrealloc(s->groups, s->cap_groups * sizeof *s->groups);
    }
    s->groups[s->n_groups++] = g;
}

/* Adds everything ending at NODE's END to S. */
static void collect_end(const struct sl_node *node, enum sl_end end, struct sl_scratch *s)
{
    for (const struct sublist_entry *e = node->plain[end]; e != NULL; e = e->u.plain.next)
        scratch_add_item(s, e->item);
    if (node->groups != NULL) {
        size_t pos = 0;
        struct sublist_group *g;
        while ((g = hmap_next(&node->groups->by_end[end], &pos, NULL, NULL)) != NULL)
            scratch_add_group(s, g);
    }
}

struct sl_walk {
    const struct topic_token *tok;
    size_t n;    /* tokens in the topic */
    bool system; /* the topic begins with '$' */
    struct sl_scratch *out;
};

/* NODE was reached having consumed I tokens. */
static void match_node(const struct sl_walk *w, const struct sl_node *node, size_t i)
{
    const struct sl_node *child;

    if (i == w->n) {
        collect_end(node, SL_END_EXACT, w->out);
        return;
    }
    /* The '$' rule: no wildcard as the first token of a '$' topic. */
    if (i > 0 || !w->system) {
        collect_end(node, SL_END_FWC, w->out); /* '>' takes tokens i..n-1 */
        if (node->star != NULL)
            match_node(w, node->star, i + 1);
    }
    child = hmap_get(&node->children, w->tok[i].p, w->tok[i].len);
    if (child != NULL)
        match_node(w, child, i + 1);
}

/* Walks the trie for TOPIC into sl->scratch. */
static void match_walk(struct sublist *sl, const char *topic, size_t len)
{
    struct topic_token tok[TOPIC_MAX_TOKENS];
    struct sl_walk w = {
        .tok = tok,
        .n = topic_tokenize(topic, len, tok),
        .system = topic_is_system(topic, len),
        .out = &sl->scratch,
    };

    sl->scratch.n_items = 0;
    sl->scratch.n_groups = 0;
    match_node(&w, sl->root, 0);
}

static size_t cached_size(size_t n_items, size_t n_groups, size_t tlen)
{
    return sizeof(struct sl_cached) + n_items * sizeof(void *) +
           n_groups * sizeof(struct sublist_group *) + tlen;
}

/* A cached copy of sl->scratch for TOPIC. */
static struct sl_cached *cached_new(struct sublist *sl, const char *topic, size_t len,
                                    uint32_t hash)
{
    const struct sl_scratch *s = &sl->scratch;
    size_t isize = s->n_items * sizeof *s->items, gsize = s->n_groups * sizeof *s->groups;
    struct sl_cached *c = xmalloc(cached_size(s->n_items, s->n_groups, len));
    void **items = (void **)(c + 1);
    struct sublist_group **groups = (struct sublist_group **)((char *)items + isize);
    char *key = (char *)groups + gsize;

    assert(len <= PROTO_TOPIC_MAX);
    if (isize)
        memcpy(items, s->items, isize);
    if (gsize)
        memcpy(groups, s->groups, gsize);
    memcpy(key, topic, len);
    c->res.items = items;
    c->res.n_items = s->n_items;
    c->res.groups = groups;
    c->res.n_groups = s->n_groups;
    c->memo = 0;
    c->res.memo = &c->memo;
    c->gen = sl->gen;
    c->hash = hash;
    c->tlen = (uint8_t)len;
    c->hot = false;
    sl->cache_bytes += cached_size(s->n_items, s->n_groups, len);
    return c;
}

/* Frees C, which has left (or is leaving) the cache.  NULL is fine. */
static void cached_free(struct sublist *sl, struct sl_cached *c)
{
    if (c == NULL)
        return;
    sl->cache_bytes -= cached_size(c->res.n_items, c->res.n_groups, c->tlen);
    free(c);
}

static const char *cached_topic(const struct sl_cached *c)
{
    return (const char *)(c->res.groups + c->res.n_groups);
}

/*
 * Makes room in a full cache: keeps at most cache_max / 2 entries, those
 * hit since the last sweep (clearing their mark), and frees the others.
 * The survivors move to a fresh map sized for a full cache, rather than
 * the victims being removed one by one: that would shrink the map step by
 * step only for it to grow back as the cache refills.
 */
static void cache_sweep(struct sublist *sl)
{
    struct hmap keep = HMAP_INIT;
    size_t max_keep = sl->cache_max / 2, pos = 0;
    struct sl_cached *c;

    hmap_reserve(&keep, hmap_count(&sl->cache)); /* that is, cache_max */
    while ((c = hmap_next(&sl->cache, &pos, NULL, NULL)) != NULL) {
        if (c->hot && c->gen == sl->gen && hmap_count(&keep) < max_keep) {
            c->hot = false;
            hmap_put_h(&keep, cached_topic(c), c->tlen, c->hash, c);
        } else {
            cached_free(sl, c);
        }
    }
    hmap_release(&sl->cache);
    sl->cache = keep;
}

/* The result in sl->scratch, as it is: valid until the next match. */
static const struct sublist_result *scratch_result(struct sublist *sl)
{
    sl->uncached.items = sl->scratch.items;
    sl->uncached.n_items = sl->scratch.n_items;
    sl->uncached.groups = sl->scratch.groups;
    sl->uncached.n_groups = sl->scratch.n_groups;
    sl->uncached.memo = NULL;
    return &sl->uncached;
}

/*
 * The slow path: walks the trie and caches the result (replacing STALE),
 * unless it is too large to cache (then STALE is dropped).
 */
static const struct sublist_result *match_miss(struct sublist *sl, const char *topic, size_t len,
                                               uint32_t hash, struct sl_cached *stale)
{
    struct sl_cached *c;

    match_walk(sl, topic, len);
    if (sl->scratch.n_items + sl->scratch.n_groups > SUBLIST_CACHE_RESULT_MAX) {
        if (stale != NULL) {
            hmap_remove_h(&sl->cache, topic, len, hash);
            cached_free(sl, stale);
        }
        return scratch_result(sl);
    }
    if (stale == NULL && hmap_count(&sl->cache) >= sl->cache_max)
        cache_sweep(sl);
    c = cached_new(sl, topic, len, hash);
    /* The new entry's copy of the topic becomes the key; STALE's key is
     * still compared against during the put, so it is freed after. */
    hmap_put_h(&sl->cache, cached_topic(c), len, hash, c);
    cached_free(sl, stale);
    return &c->res;
}

static const struct sublist_result *match_uncached(struct sublist *sl, const char *topic,
                                                   size_t len)
{
    match_walk(sl, topic, len);
    return scratch_result(sl);
}

const struct sublist_result *sublist_match(struct sublist *sl, const char *topic, size_t len)
{
    if (sl->cache_max == 0)
        return match_uncached(sl, topic, len);
    return sublist_match_h(sl, topic, len, hmap_hash(topic, len));
}

const struct sublist_result *sublist_match_h(struct sublist *sl, const char *topic, size_t len,
                                             uint32_t h)
{
    struct sl_cached *c;

    if (sl->cache_max == 0)
        return match_uncached(sl, topic, len);
    c = hmap_get_h(&sl->cache, topic, len, h);
    if (c != NULL && c->gen == sl->gen) {
        if (!c->hot)
            c->hot = true; /* written once per sweep, not on every hit */
        return &c->res;
    }
    return match_miss(sl, topic, len, h, c);
}

/* ------------------------------------------------------ create/free ---- */

struct sublist *sublist_new(size_t cache_max)
{
    struct sublist *sl = xcalloc(1, sizeof *sl);

    sl->root = node_new(sl, NULL, "", 0);
    sl->n_nodes = 0; /* the root is not counted */
    sl->cache_max = cache_max;
    return sl;
}

static void plain_free_all(struct sublist_entry *e)
{
    while (e != NULL) {
        struct sublist_entry *next = e->u.plain.next;
        free(e);
        e = next;
    }
}

static void groups_free(struct sl_groups *groups)
{
    if (groups == NULL)
        return;
    for (int end = 0; end < 2; end++) {
        size_t pos = 0;
        struct sublist_group *g;
        while ((g = hmap_next(&groups->by_end[end], &pos, NULL, NULL)) != NULL) {
            for (uint32_t i = 0; i < g->n_members; i++)
                free(g->members[i]);
            group_free(g);
        }
        hmap_release(&groups->by_end[end]);
    }
    free(groups);
}

/* Frees NODE and its subtree (recursion depth: at most TOPIC_MAX_TOKENS). */
static void node_free_tree(struct sl_node *node)
{
    size_t pos = 0;
    struct sl_node *child;

    while ((child = hmap_next(&node->children, &pos, NULL, NULL)) != NULL)
        node_free_tree(child);
    hmap_release(&node->children);
    if (node->star != NULL)
        node_free_tree(node->star);
    plain_free_all(node->plain[SL_END_EXACT]);
    plain_free_all(node->plain[SL_END_FWC]);
    groups_free(node->groups);
    free(node);
}

static void cache_free(struct sublist *sl)
{
    size_t pos = 0;
    struct sl_cached *c;

    while ((c = hmap_next(&sl->cache, &pos, NULL, NULL)) != NULL)
        cached_free(sl, c);
    hmap_release(&sl->cache);
}

void sublist_free(struct sublist *sl)
{
    if (sl == NULL)
        return;
    node_free_tree(sl->root);
    cache_free(sl);
    free(sl->scratch.items);
    free(sl->scratch.groups);
    free(sl);
}

/* ------------------------------------------------------- introspection ---- */

size_t sublist_count(const struct sublist *sl)
{
    return sl->count;
}

size_t sublist_node_count(const struct sublist *sl)
{
    return sl->n_nodes;
}

size_t sublist_cache_count(const struct sublist *sl)
{
    return hmap_count(&sl->cache);
}

size_t sublist_cache_bytes(const struct sublist *sl)
{
    return sl->cache_bytes;
}
