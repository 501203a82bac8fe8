/*
 * responder.c - libpigeon example: answer requests with the asynchronous API.
 *
 *   responder [ADDRESS [TOPIC [COUNT]]]    defaults: 127.0.0.1:7400 demo.echo 0 (forever)
 *
 * Answers each request with {"echo": <the request's payload>, "n": <count>}.
 * The request's payload bytes are copied into the answer as they are,
 * without decoding them: MessagePack values concatenate.  Joins the queue
 * group "responders", so several responders share the work.
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
    msgpack_sbuffer sb;
};

static void on_request(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    struct app *app = arg;
    msgpack_packer pk;
    size_t len;
    const void *data = pigeon_msg_data(m, &len);

    msgpack_sbuffer_clear(&app->sb);
    msgpack_packer_init(&pk, &app->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "echo", 4);
    msgpack_sbuffer_write(&app->sb, data, len); /* the request's object, verbatim */
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_long(&pk, ++app->count);
    int err = pigeon_reply(c, m, app->sb.data, app->sb.size);
    if (err != PIGEON_OK)
        fprintf(stderr, "responder: reply: %s\n", pigeon_strerror(err));
}

static void on_flushed(pigeon_client *c, int err, uint64_t result, void *arg)
{
    (void)c;
    (void)err;
    (void)result;
    event_base_loopbreak(arg);
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
    const char *topic = argc > 2 ? argv[2] : "demo.echo";
    struct app app = {.want = argc > 3 ? atol(argv[3]) : 0};
    struct pigeon_sub_opts so = {.queue = "responders"};
    pigeon_client *c;

    msgpack_sbuffer_init(&app.sb);
    app.base = event_base_new();
    if (app.base == NULL)
        return 1;
    struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, app.base);
    if (sigint == NULL || event_add(sigint, NULL) < 0)
        return 1;
    struct pigeon_options opts;
    char why[256];
    pigeon_options_init(&opts);
    opts.errbuf = why; /* why pigeon_connect failed, if it does */
    opts.errbuf_len = sizeof(why);
    int err = pigeon_connect(app.base, address, &opts, &c);
    if (err != PIGEON_OK) {
        fprintf(stderr, "responder: %s\n", why);
        return 1;
    }
    err = pigeon_subscribe(c, topic, &so, on_request, &app, NULL);
    if (err != PIGEON_OK) {
        fprintf(stderr, "responder: subscribe: %s (%s)\n", pigeon_strerror(err), pigeon_errmsg(c));
        return 1;
    }
    while (app.want == 0 || app.count < app.want) {
        if (event_base_loop(app.base, EVLOOP_ONCE) != 0 || event_base_got_break(app.base))
            break;
    }
    /* Answer everything before leaving: a ping behind the replies. */
    if (app.want > 0 && pigeon_flush(c, on_flushed, app.base) == PIGEON_OK)
        event_base_dispatch(app.base);
    pigeon_close(c);
    event_free(sigint);
    event_base_free(app.base);
    msgpack_sbuffer_destroy(&app.sb);
    return 0;
}
