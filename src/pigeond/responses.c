/*
 * responses.c - a connection's allow_responses grants (see responses.h).
 *
 * A grant is a topic, how many replies it allows, and until when.  The map
 * finds a topic's grant; the list keeps grants in the order of their last
 * note, so the oldest is at its head: the one to forget when the table is
 * full, and the first to expire.  Each note and take first forgets the
 * expired grants at the head, so a table costs O(1) amortised per call and
 * never holds a grant past its time for long.
 */
#include "responses.h"

#include <stdlib.h>
#include <string.h>

#include "topic.h"
#include "xalloc.h"

struct response {
    TAILQ_ENTRY(response) link;
    uint64_t expires_ms;
    uint32_t uses;
    uint32_t len;
    char topic[]; /* the map's key */
};

static size_t response_cost(const struct response *g)
{
    return sizeof(*g) + g->len;
}

void responses_init(struct responses *r, size_t max)
{
    hmap_init(&r->by_topic);
    TAILQ_INIT(&r->order);
    r->max = max;
    r->bytes = 0;
}

static void forget(struct responses *r, struct response *g)
{
    TAILQ_REMOVE(&r->order, g, link);
    hmap_remove(&r->by_topic, g->topic, g->len);
    r->bytes -= response_cost(g);
    free(g);
}

void responses_fini(struct responses *r)
{
    while (!TAILQ_EMPTY(&r->order))
        forget(r, TAILQ_FIRST(&r->order));
    hmap_release(&r->by_topic);
}

/* Forgets the grants whose time is past (the oldest notes come first). */
static void expire(struct responses *r, uint64_t now_ms)
{
    struct response *g;

    while ((g = TAILQ_FIRST(&r->order)) != NULL && g->expires_ms <= now_ms)
        forget(r, g);
}

void responses_note(struct responses *r, const char *topic, size_t len, uint64_t now_ms)
{
    struct response *g;

    if (topic_is_system(topic, len) || r->max == 0)
        return;
    expire(r, now_ms);
    g = hmap_get(&r->by_topic, topic, len);
    if (g != NULL) {
        TAILQ_REMOVE(&r->order, g, link);
    } else {
        if (hmap_count(&r->by_topic) >= r->max)
            forget(r, TAILQ_FIRST(&r->order));
        g = xcalloc(1, sizeof(*g) + len);
        memcpy(g->topic, topic, len);
        g->len = (uint32_t)len;
        hmap_put(&r->by_topic, g->topic, len, g);
        r->bytes += response_cost(g);
    }
    if (g->uses < RESPONSES_USES_MAX)
        g->uses++;
    g->expires_ms = now_ms + RESPONSES_TTL_MS;
    TAILQ_INSERT_TAIL(&r->order, g, link);
}

bool responses_take(struct responses *r, const char *topic, size_t len, uint64_t now_ms)
{
    struct response *g;

    if (topic_is_system(topic, len))
        return false;
    expire(r, now_ms);
    g = hmap_get(&r->by_topic, topic, len);
    if (g == NULL)
        return false;
    if (--g->uses == 0)
        forget(r, g);
    return true;
}

size_t responses_count(const struct responses *r)
{
    return hmap_count(&r->by_topic);
}

size_t responses_bytes(const struct responses *r)
{
    return r->bytes + hmap_bytes(&r->by_topic);
}
