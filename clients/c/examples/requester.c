/*
 * requester.c - libpigeon example: request/reply with the blocking API.
 *
 *   requester [ADDRESS [TOPIC [TEXT]]]    defaults: 127.0.0.1:7400 demo.echo hello
 *
 * Sends the string TEXT to TOPIC and prints the answer (see responder.c).
 */
#include <stdio.h>
#include <string.h>

#include <msgpack.h>
#include <pigeon.h>

int main(int argc, char **argv)
{
    const char *address = argc > 1 ? argv[1] : "127.0.0.1:7400";
    const char *topic = argc > 2 ? argv[2] : "demo.echo";
    const char *text = argc > 3 ? argv[3] : "hello";
    pigeon_sync *s;
    pigeon_msg *reply;

    /* errbuf: why connecting failed, with the system's reason
     * ("connect to 127.0.0.1:1: Connection refused"). */
    struct pigeon_options opts;
    char why[256];
    pigeon_options_init(&opts);
    opts.errbuf = why;
    opts.errbuf_len = sizeof(why);
    int err = pigeon_sync_connect(address, &opts, 0, &s);
    if (err != PIGEON_OK) {
        fprintf(stderr, "requester: %s\n", why);
        return 2;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, text, strlen(text));
    err = pigeon_sync_request(s, topic, sb.data, sb.size, 5000, &reply);
    msgpack_sbuffer_destroy(&sb);
    if (err != PIGEON_OK) {
        fprintf(stderr, "requester: %s\n", pigeon_strerror(err));
    } else {
        msgpack_zone zone;
        msgpack_object obj;
        msgpack_zone_init(&zone, 1024);
        if (pigeon_msg_unpack(reply, &zone, &obj) == PIGEON_OK) {
            msgpack_object_print(stdout, obj);
            printf("\n");
        }
        msgpack_zone_destroy(&zone);
        pigeon_msg_free(reply);
    }
    pigeon_sync_close(s);
    return err == PIGEON_OK ? 0 : 1;
}
