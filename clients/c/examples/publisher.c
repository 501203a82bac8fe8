/*
 * publisher.c - libpigeon example: publish with the blocking API.
 *
 *   publisher [ADDRESS [TOPIC [COUNT]]]     defaults: 127.0.0.1:7400 demo.ticks 10
 *
 * Each message is a map {"n": i, "text": "tick i"} packed with msgpack-c
 * into a msgpack_sbuffer; libpigeon sends those bytes as they are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <pigeon.h>

int main(int argc, char **argv)
{
    const char *address = argc > 1 ? argv[1] : "127.0.0.1:7400";
    const char *topic = argc > 2 ? argv[2] : "demo.ticks";
    int count = argc > 3 ? atoi(argv[3]) : 10;
    pigeon_sync *s;

    /* errbuf: why connecting failed, with the system's reason
     * ("connect to 127.0.0.1:1: Connection refused"). */
    struct pigeon_options opts;
    char why[256];
    pigeon_options_init(&opts);
    opts.errbuf = why;
    opts.errbuf_len = sizeof(why);
    int err = pigeon_sync_connect(address, &opts, 0, &s);
    if (err != PIGEON_OK) {
        fprintf(stderr, "publisher: %s\n", why);
        return 2;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < count && err == PIGEON_OK; i++) {
        char text[32];
        int n = snprintf(text, sizeof(text), "tick %d", i);
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "n", 1);
        msgpack_pack_int(&pk, i);
        msgpack_pack_str_with_body(&pk, "text", 4);
        msgpack_pack_str_with_body(&pk, text, (size_t)n);
        err = pigeon_sync_publish(s, topic, sb.data, sb.size, NULL);
    }
    msgpack_sbuffer_destroy(&sb);
    if (err != PIGEON_OK)
        fprintf(stderr, "publisher: publish: %s (%s)\n", pigeon_strerror(err),
                pigeon_errmsg(pigeon_sync_client(s)));
    else
        printf("published %d messages to %s\n", count, topic);
    pigeon_sync_close(s); /* waits until the broker has them all */
    return err == PIGEON_OK ? 0 : 1;
}
