/*
 * subscriber.c - libpigeon example: subscribe with the asynchronous API on
 * a libevent event_base.
 *
 *   subscriber [ADDRESS [PATTERN [COUNT]]]   defaults: 127.0.0.1:7400 demo.> 0 (forever)
 *
 * Prints each message's topic and payload (decoded with msgpack-c) and
 * exits after COUNT messages, or on Ctrl-C.  Stopping the loop is not
 * enough to stop at COUNT: messages already read in the same batch would
 * still be delivered, so the COUNTth message also unsubscribes (after
 * which the callback is not called again, even for those).  The client
 * reconnects and subscribes again by itself if the broker restarts.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <msgpack.h>
#include <pigeon.h>

struct app {
    struct event_base *base;
    long count, want;
    uint64_t sid;
};

static void on_message(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    struct app *app = arg;
    msgpack_zone zone;
    msgpack_object obj;

    msgpack_zone_init(&zone, 1024);
    printf("%s ", pigeon_msg_topic(m, NULL));
    if (pigeon_msg_unpack(m, &zone, &obj) == PIGEON_OK)
        msgpack_object_print(stdout, obj);
    printf("%s\n", pigeon_msg_retained(m) ? " (retained)" : "");
    fflush(stdout);
    msgpack_zone_destroy(&zone);
    if (++app->count == app->want) {
        pigeon_unsubscribe(c, app->sid);
        event_base_loopbreak(app->base);
    }
}

static void on_state(pigeon_client *c, enum pigeon_state state, int err, void *arg)
{
    (void)arg;
    if (state == PIGEON_STATE_CONNECTED)
        fprintf(stderr, "subscriber: connected\n");
    else if (err != PIGEON_OK)
        fprintf(stderr, "subscriber: %s (%s)\n", pigeon_strerror(err), pigeon_errmsg(c));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    const char *address = argc > 1 ? argv[1] : "127.0.0.1:7400";
    const char *pattern = argc > 2 ? argv[2] : "demo.>";
    struct app app = {.want = argc > 3 ? atol(argv[3]) : 0};
    struct pigeon_options opts;
    pigeon_client *c;

    app.base = event_base_new();
    if (app.base == NULL)
        return 1;
    struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, app.base);
    if (sigint == NULL || event_add(sigint, NULL) < 0)
        return 1;
    pigeon_options_init(&opts);
    opts.client_name = "subscriber-example";
    opts.on_state = on_state;
    char why[256];
    opts.errbuf = why; /* why pigeon_connect failed, if it does */
    opts.errbuf_len = sizeof(why);
    int err = pigeon_connect(app.base, address, &opts, &c);
    if (err != PIGEON_OK) {
        fprintf(stderr, "subscriber: %s\n", why);
        return 1;
    }
    err = pigeon_subscribe(c, pattern, NULL, on_message, &app, &app.sid);
    if (err != PIGEON_OK) {
        fprintf(stderr, "subscriber: subscribe: %s (%s)\n", pigeon_strerror(err), pigeon_errmsg(c));
        return 1;
    }
    event_base_dispatch(app.base);
    pigeon_close(c);
    event_free(sigint);
    event_base_free(app.base);
    return 0;
}
