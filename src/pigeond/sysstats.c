/*
 * sysstats.c - $SYS.broker.stats (see sysstats.h).
 *
 * The message is built as a publisher's would be: the topic and the payload
 * encoded back to back make the body router_publish forwards byte for byte.
 * Its buffer is this module's own, reused from tick to tick.
 */
#include "sysstats.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <msgpack.h>

#include "router.h"
#include "server.h"
#include "stats.h"
#include "xalloc.h"

struct sysstats {
    struct server *srv;   /* borrowed */
    struct event *timer;  /* owned; pending while the interval is not 0 */
    uint32_t interval_ms; /* the interval it is armed with */
    msgpack_sbuffer buf;  /* the body being built */
};

static void sysstats_timer_cb(evutil_socket_t fd, short what, void *arg);

long sysstats_publish(struct sysstats *s)
{
    struct stats_snapshot snap;
    msgpack_packer pk;
    const size_t tlen = strlen(SYSSTATS_TOPIC);

    msgpack_sbuffer_clear(&s->buf);
    msgpack_packer_init(&pk, &s->buf, msgpack_sbuffer_write);
    msgpack_pack_str(&pk, tlen);
    msgpack_pack_str_body(&pk, SYSSTATS_TOPIC, tlen);
    size_t topic_at = s->buf.size - tlen;
    stats_gather(s->srv, &snap);
    stats_pack(&snap, &pk);
    stats_release(&snap);

    struct router_msg m = {
        .topic = s->buf.data + topic_at,
        .topic_len = tlen,
        .body = (const uint8_t *)s->buf.data,
        .body_len = s->buf.size,
    };
    return router_publish(s->srv->router, s->srv->conf, &m);
}

static void sysstats_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sysstats_publish(arg);
}

void sysstats_apply_config(struct sysstats *s)
{
    uint32_t ms = s->srv->conf->stats_interval_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    if (ms == s->interval_ms)
        return; /* a reload that keeps the interval keeps the rhythm */
    s->interval_ms = ms;
    event_del(s->timer);
    if (ms > 0)
        event_add(s->timer, &tv);
}

struct sysstats *sysstats_new(struct server *srv)
{
    struct sysstats *s = xcalloc(1, sizeof(*s));

    s->srv = srv;
    msgpack_sbuffer_init(&s->buf);
    s->timer = event_new(srv->loop.base, -1, EV_PERSIST, sysstats_timer_cb, s);
    if (s->timer == NULL) {
        log_error(&srv->log, "cannot create the %s timer", SYSSTATS_TOPIC);
        sysstats_free(s);
        return NULL;
    }
    sysstats_apply_config(s);
    return s;
}

void sysstats_free(struct sysstats *s)
{
    if (s == NULL)
        return;
    if (s->timer != NULL)
        event_free(s->timer);
    msgpack_sbuffer_destroy(&s->buf);
    free(s);
}
