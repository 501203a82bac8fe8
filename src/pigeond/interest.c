/*
 * interest.c - the remote-interest index (see interest.h).
 *
 * An entry is one (node, pattern, queue) with its count.  It lives in its
 * node's map, keyed by "pattern" or "pattern\0queue" (the NUL cannot occur
 * in either, so the two forms never collide), and in the shared trie as
 * one sublist item: a plain item for a plain pattern, a group member for a
 * queued one.  The trie groups members by (pattern, queue), so the members
 * of one group are the entries of the nodes that announce it, one each.
 *
 * Routing dedupes nodes with a generation mark: a node reached by several
 * overlapping patterns ("orders.>" and "orders.*") becomes a target once,
 * its count summing the subscriptions of every matching entry.  The
 * scratch arrays of the result grow and are reused, so routing allocates
 * nothing once warm.
 */
#include "interest.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "proto.h"
#include "sublist.h"
#include "topic.h"
#include "xalloc.h"

/* Topics whose match the trie's cache remembers, as the router's does. */
#define INTEREST_MATCH_CACHE 4096

struct in_entry {
    struct interest_node *node;
    struct sublist_entry *se; /* its place in the trie */
    uint32_t count;
    int64_t weight_now;  /* smooth weighted round robin: the member's current weight */
    uint16_t plen, qlen; /* qlen 0: a plain entry */
    char key[];          /* pattern NUL [queue NUL]: the map key and the pick's strings */
};

struct interest_node {
    void *owner;
    struct hmap entries; /* key -> struct in_entry */
    uint64_t mark;       /* the route generation that made it a target */
    uint32_t target;     /* its index among that route's targets */
};

struct interest {
    struct interest_counts counts; /* first: interest.h reads it through the pointer */
    struct sublist *trie;
    size_t n_nodes;
    uint64_t gen; /* bumped by every route */
    struct interest_target *targets;
    size_t cap_targets;
    struct interest_pick *picks;
    size_t cap_picks;
    struct interest_route route;
};

/* ------------------------------------------------------------- entries ---- */

static size_t entry_key_len(const struct in_entry *e)
{
    return e->qlen ? (size_t)e->plen + 1 + e->qlen : e->plen;
}

static void entry_free(struct interest *in, struct in_entry *e)
{
    in->counts.generation++;
    sublist_remove(in->trie, e->se);
    in->counts.entries--;
    free(e);
}

static struct in_entry *entry_new(struct interest *in, struct interest_node *node,
                                  const char *pattern, size_t plen, const char *queue, size_t qlen,
                                  uint32_t count)
{
    struct in_entry *e = xcalloc(1, sizeof(*e) + plen + 1 + qlen + 1);

    e->node = node;
    e->count = count;
    e->plen = (uint16_t)plen;
    e->qlen = (uint16_t)qlen;
    memcpy(e->key, pattern, plen);
    if (qlen)
        memcpy(e->key + plen + 1, queue, qlen);
    e->se = sublist_insert(in->trie, pattern, plen, qlen ? queue : NULL, qlen, e);
    in->counts.entries++;
    return e;
}

int interest_set(struct interest *in, struct interest_node *node, const char *pattern, size_t plen,
                 const char *queue, size_t qlen, uint32_t count)
{
    char key[2 * PROTO_TOPIC_MAX + 1];
    size_t klen = plen;
    struct in_entry *e;

    if (topic_check(pattern, plen, TOPIC_PATTERN) != TOPIC_OK)
        return -1;
    if (queue != NULL && topic_check(queue, qlen, TOPIC_PUBLISH) != TOPIC_OK)
        return -1;
    if (queue == NULL)
        qlen = 0;
    memcpy(key, pattern, plen);
    if (qlen) {
        key[plen] = '\0';
        memcpy(key + plen + 1, queue, qlen);
        klen += 1 + qlen;
    }
    e = hmap_get(&node->entries, key, klen);
    in->counts.generation++;
    if (e != NULL && count > 0) {
        e->count = count;
    } else if (e != NULL) {
        hmap_remove(&node->entries, key, klen);
        entry_free(in, e);
    } else if (count > 0) {
        e = entry_new(in, node, pattern, plen, queue, qlen, count);
        hmap_put(&node->entries, e->key, entry_key_len(e), e);
    }
    return 0;
}

int interest_field_split(const char *field, size_t len, const char **pattern, size_t *plen,
                         const char **queue, size_t *qlen)
{
    const char *sp = memchr(field, ' ', len);

    *pattern = field;
    *queue = NULL;
    *qlen = 0;
    if (sp == NULL) {
        *plen = len;
    } else {
        *plen = (size_t)(sp - field);
        *queue = sp + 1;
        *qlen = len - *plen - 1;
        if (memchr(*queue, ' ', *qlen) != NULL)
            return -1;
    }
    return *plen > 0 && (*queue == NULL || *qlen > 0) ? 0 : -1;
}

int interest_set_field(struct interest *in, struct interest_node *node, const char *field,
                       size_t len, uint32_t count)
{
    const char *pattern, *queue;
    size_t plen, qlen;

    if (interest_field_split(field, len, &pattern, &plen, &queue, &qlen) < 0)
        return -1;
    return interest_set(in, node, pattern, plen, queue, qlen, count);
}

/* --------------------------------------------------------------- nodes ---- */

struct interest_node *interest_node_add(struct interest *in, void *owner)
{
    struct interest_node *node = xcalloc(1, sizeof(*node));

    node->owner = owner;
    hmap_init(&node->entries);
    in->n_nodes++;
    return node;
}

void interest_node_clear(struct interest *in, struct interest_node *node)
{
    size_t pos = 0;
    struct in_entry *e;

    while ((e = hmap_next(&node->entries, &pos, NULL, NULL)) != NULL)
        entry_free(in, e);
    hmap_release(&node->entries);
}

void interest_node_remove(struct interest *in, struct interest_node *node)
{
    if (node == NULL)
        return;
    interest_node_clear(in, node);
    in->n_nodes--;
    free(node);
}

/* ------------------------------------------------------------- routing ---- */

/* NODE's index among this route's targets, adding it the first time. */
static uint32_t route_target(struct interest *in, struct interest_node *node)
{
    if (node->mark == in->gen)
        return node->target;
    if (in->route.n_targets == in->cap_targets) {
        in->cap_targets = in->cap_targets ? in->cap_targets * 2 : 8;
        in->targets = xrealloc(in->targets, in->cap_targets * sizeof(*in->targets));
        in->route.targets = in->targets;
    }
    node->mark = in->gen;
    node->target = (uint32_t)in->route.n_targets++;
    in->targets[node->target] = (struct interest_target){.owner = node->owner, .subs = 0};
    return node->target;
}

/*
 * The member of G whose turn it is: a smooth weighted round robin (each
 * member's current weight grows by its count; the heaviest is picked and
 * pays back the total), weights being member counts.
 */
static struct in_entry *group_pick(struct sublist_group *g)
{
    size_t n = sublist_group_size(g);
    struct in_entry *best = NULL;
    int64_t total = 0;

    for (size_t i = 0; i < n; i++) {
        struct in_entry *e = sublist_group_item(g, i);
        e->weight_now += e->count;
        total += e->count;
        if (best == NULL || e->weight_now > best->weight_now)
            best = e;
    }
    best->weight_now -= total;
    return best;
}

static void route_add_pick(struct interest *in, uint32_t target, const struct in_entry *e)
{
    if (in->route.n_picks == in->cap_picks) {
        in->cap_picks = in->cap_picks ? in->cap_picks * 2 : 4;
        in->picks = xrealloc(in->picks, in->cap_picks * sizeof(*in->picks));
        in->route.picks = in->picks;
    }
    in->picks[in->route.n_picks++] = (struct interest_pick){
        .target = target,
        .pattern = e->key,
        .queue = e->key + e->plen + 1,
    };
}

const struct interest_route *interest_route(struct interest *in, const char *topic, size_t len,
                                            uint32_t hash, interest_local_fn local, void *arg)
{
    const struct sublist_result *res = sublist_match_h(in->trie, topic, len, hash);

    in->route.n_targets = 0;
    in->route.n_picks = 0;
    if (res->n_items == 0 && res->n_groups == 0)
        return &in->route;
    in->gen++;
    for (size_t i = 0; i < res->n_items; i++) {
        const struct in_entry *e = res->items[i];
        uint32_t t = route_target(in, e->node); /* may move in->targets */
        in->targets[t].subs += e->count;
    }
    for (size_t i = 0; i < res->n_groups; i++) {
        struct sublist_group *g = res->groups[i];
        const struct in_entry *any = sublist_group_item(g, 0);
        if (local != NULL && local(arg, any->key, any->key + any->plen + 1))
            continue;
        struct in_entry *e = group_pick(g);
        uint32_t t = route_target(in, e->node);
        in->targets[t].subs++;
        route_add_pick(in, t, e);
    }
    return &in->route;
}

/* ------------------------------------------------------- create/free ---- */

struct interest *interest_new(void)
{
    struct interest *in = xcalloc(1, sizeof(*in));

    in->counts.generation = 1;
    in->trie = sublist_new(INTEREST_MATCH_CACHE);
    return in;
}

void interest_free(struct interest *in)
{
    if (in == NULL)
        return;
    assert(in->n_nodes == 0 && "every node is removed by its owner first");
    sublist_free(in->trie);
    free(in->targets);
    free(in->picks);
    free(in);
}

/* ------------------------------------------------------- introspection ---- */

size_t interest_node_entries(const struct interest_node *node)
{
    return hmap_count(&node->entries);
}

size_t interest_node_count(const struct interest *in)
{
    return in->n_nodes;
}

uint32_t interest_node_get(const struct interest_node *node, const char *field, size_t len)
{
    char key[2 * PROTO_TOPIC_MAX + 2];
    const struct in_entry *e;

    if (len >= sizeof(key))
        return 0;
    memcpy(key, field, len);
    char *sp = memchr(key, ' ', len);
    if (sp != NULL)
        *sp = '\0';
    e = hmap_get(&node->entries, key, len);
    return e != NULL ? e->count : 0;
}
