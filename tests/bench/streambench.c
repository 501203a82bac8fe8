/*
 * streambench.c - load for pigeond's streams: acked publishing with a
 * window of pub requests in flight, and consuming with acks.
 *
 *   streambench pub     [-a ADDR] [-s STREAM] [-t TOPIC] [-n N] [-w W] [-b BYTES]
 *   streambench consume [-a ADDR] [-s STREAM] [-n N] [-d DURABLE] [-x MAX_PENDING]
 *                       [-k request|notify]
 *
 * pub keeps W pub requests with {stream: STREAM} unanswered on one
 * connection (a new one goes out as each answer comes back, the way Redis
 * clients pipeline XADD), N of them in all, each a binary payload of BYTES,
 * and checks every answer is {delivered, stream, seq} with seqs in order.
 * consume reads N deliveries from a consumer (durable DURABLE, or one of
 * the connection's own with -d ''), acking each with an ack request (the
 * answer waits for the ack's commit) or notification, and checks that the
 * seqs come in order.  Each prints one line: messages, seconds, messages/s,
 * and for pub the latency of the answers (p50, p99).
 *
 * A benchmark, not a test: docs/performance.md has the commands and the
 * figures.  Speaks the protocol from docs/protocol.md with msgpack-c only;
 * no libpigeon (it measures the broker, and the client library is built on
 * top of this branch).  ADDR is HOST:PORT (default 127.0.0.1:7400).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

struct opts {
    const char *mode, *addr, *stream, *topic, *durable, *ack;
    long n, window, bytes, max_pending;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "streambench: %s\n", what);
    exit(1);
}

static int dial(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int one = 1;

    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        die("ADDR must be HOST:PORT");
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        die("cannot resolve ADDR");
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0)
        die("cannot connect");
    freeaddrinfo(res);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write failed");
        p += w;
        n -= (size_t)w;
    }
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Reads more bytes into U; false at EOF. */
static bool feed(int fd, msgpack_unpacker *u)
{
    if (msgpack_unpacker_buffer_capacity(u) < 65536 && !msgpack_unpacker_reserve_buffer(u, 65536))
        die("out of memory");
    ssize_t n = read(fd, msgpack_unpacker_buffer(u), msgpack_unpacker_buffer_capacity(u));
    if (n <= 0)
        return false;
    msgpack_unpacker_buffer_consumed(u, (size_t)n);
    return true;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ pub */

static void send_pub(int fd, msgpack_sbuffer *sb, const struct opts *o, uint32_t msgid,
                     const char *payload)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, msgid);
    pack_str(&pk, "pub");
    msgpack_pack_array(&pk, 3);
    pack_str(&pk, o->topic);
    msgpack_pack_bin(&pk, (size_t)o->bytes);
    msgpack_pack_bin_body(&pk, payload, (size_t)o->bytes);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "stream");
    pack_str(&pk, o->stream);
}

static int run_pub(const struct opts *o)
{
    int fd = dial(o->addr);
    char *payload = malloc((size_t)o->bytes);
    double *lat = malloc(sizeof(double) * (size_t)o->n),
           *sent = malloc(sizeof(double) * (size_t)o->n);
    msgpack_sbuffer sb, batch;
    msgpack_unpacker u;
    msgpack_unpacked res;
    long out = 0, done = 0;
    uint64_t last_seq = 0;

    if (payload == NULL || lat == NULL || sent == NULL)
        die("out of memory");
    memset(payload, 'x', (size_t)o->bytes);
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&batch);
    msgpack_unpacker_init(&u, 1 << 20);
    msgpack_unpacked_init(&res);
    double t0 = now_s();
    while (done < o->n) {
        msgpack_sbuffer_clear(&batch);
        while (out < o->n && out - done < o->window) {
            send_pub(fd, &sb, o, (uint32_t)out, payload);
            msgpack_sbuffer_write(&batch, sb.data, sb.size);
            sent[out++] = now_s();
        }
        if (batch.size > 0)
            send_all(fd, batch.data, batch.size);
        if (!feed(fd, &u))
            die("connection closed");
        while (msgpack_unpacker_next(&u, &res) == MSGPACK_UNPACK_SUCCESS) {
            const msgpack_object *f = &res.data;
            if (f->type != MSGPACK_OBJECT_ARRAY || f->via.array.size != 4 ||
                f->via.array.ptr[0].via.u64 != 1)
                continue;
            if (f->via.array.ptr[2].type != MSGPACK_OBJECT_NIL) {
                msgpack_object_print(stderr, *f);
                die("\npub failed");
            }
            const msgpack_object *seq = map_get(&f->via.array.ptr[3], "seq");
            if (seq == NULL || seq->via.u64 <= last_seq)
                die("answers out of order, or without seq");
            last_seq = seq->via.u64;
            uint64_t id = f->via.array.ptr[1].via.u64;
            lat[done++] = now_s() - sent[id];
        }
    }
    double t = now_s() - t0;
    qsort(lat, (size_t)o->n, sizeof(*lat), cmp_double);
    printf("pub: %ld msgs of %ld B, window %ld, in %.3f s: %.0f msgs/s; answer p50 %.3f ms, p99 "
           "%.3f ms; last seq %llu\n",
           o->n, o->bytes, o->window, t, (double)o->n / t, lat[o->n / 2] * 1e3,
           lat[o->n * 99 / 100] * 1e3, (unsigned long long)last_seq);
    msgpack_unpacked_destroy(&res);
    msgpack_unpacker_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&batch);
    free(payload);
    free(lat);
    free(sent);
    close(fd);
    return 0;
}

/* -------------------------------------------------------------- consume */

static void send_consume(int fd, const struct opts *o)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bool durable = o->durable[0] != '\0';

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 0xffffffffu);
    pack_str(&pk, "consume");
    msgpack_pack_array(&pk, 2);
    pack_str(&pk, o->stream);
    msgpack_pack_map(&pk, durable ? 2 : 1);
    pack_str(&pk, "max_pending");
    msgpack_pack_uint64(&pk, (uint64_t)o->max_pending);
    if (durable) {
        pack_str(&pk, "durable");
        pack_str(&pk, o->durable);
    }
    send_all(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void pack_ack(msgpack_sbuffer *batch, const struct opts *o, uint64_t sid, uint64_t seq,
                     uint32_t msgid)
{
    msgpack_packer pk;
    bool req = strcmp(o->ack, "request") == 0;

    msgpack_packer_init(&pk, batch, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, req ? 4 : 3);
    msgpack_pack_uint8(&pk, req ? 0 : 2);
    if (req)
        msgpack_pack_uint32(&pk, msgid);
    pack_str(&pk, "ack");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, sid);
    msgpack_pack_uint64(&pk, seq);
}

static int run_consume(const struct opts *o)
{
    int fd = dial(o->addr);
    msgpack_sbuffer batch;
    msgpack_unpacker u;
    msgpack_unpacked res;
    long got = 0, answered = 0, acks = 0;
    uint64_t sid = 0, last = 0;
    bool want_answers = strcmp(o->ack, "request") == 0;
    double t0 = 0;

    msgpack_sbuffer_init(&batch);
    msgpack_unpacker_init(&u, 1 << 20);
    msgpack_unpacked_init(&res);
    send_consume(fd, o);
    while (got < o->n || (want_answers && answered < acks)) {
        if (!feed(fd, &u))
            die("connection closed");
        msgpack_sbuffer_clear(&batch);
        while (msgpack_unpacker_next(&u, &res) == MSGPACK_UNPACK_SUCCESS) {
            const msgpack_object *f = &res.data;
            if (f->type != MSGPACK_OBJECT_ARRAY || f->via.array.size < 3)
                continue;
            if (f->via.array.ptr[0].via.u64 == 1) { /* a response */
                if (f->via.array.ptr[2].type != MSGPACK_OBJECT_NIL) {
                    msgpack_object_print(stderr, *f);
                    die("\nrequest failed");
                }
                if (f->via.array.ptr[1].via.u64 == 0xffffffffu) {
                    sid = f->via.array.ptr[3].via.u64;
                    t0 = now_s();
                } else {
                    answered++;
                }
                continue;
            }
            const msgpack_object *params = &f->via.array.ptr[2];
            if (params->type != MSGPACK_OBJECT_ARRAY || params->via.array.size != 4)
                continue;
            const msgpack_object *seq = map_get(&params->via.array.ptr[3], "seq");
            if (seq == NULL)
                die("a delivery without seq");
            if (seq->via.u64 <= last)
                fprintf(stderr, "streambench: seq %llu after %llu (a redelivery)\n",
                        (unsigned long long)seq->via.u64, (unsigned long long)last);
            last = seq->via.u64;
            got++;
            if (strcmp(o->ack, "none") != 0) {
                pack_ack(&batch, o, sid, seq->via.u64, (uint32_t)acks);
                acks++;
            }
        }
        if (batch.size > 0)
            send_all(fd, batch.data, batch.size);
    }
    double t = now_s() - t0;
    printf(
        "consume: %ld msgs, acks by %s, max_pending %ld, in %.3f s: %.0f msgs/s; last seq %llu\n",
        got, o->ack, o->max_pending, t, (double)got / t, (unsigned long long)last);
    msgpack_unpacked_destroy(&res);
    msgpack_unpacker_destroy(&u);
    msgpack_sbuffer_destroy(&batch);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.addr = "127.0.0.1:7400",
                     .stream = "bench",
                     .topic = "bench.x",
                     .durable = "bench",
                     .ack = "request",
                     .n = 1000000,
                     .window = 64,
                     .bytes = 128,
                     .max_pending = 1000};
    int ch;

    if (argc < 2 || (strcmp(argv[1], "pub") != 0 && strcmp(argv[1], "consume") != 0)) {
        fprintf(stderr, "usage: streambench pub|consume [-a ADDR] [-s STREAM] [-t TOPIC] [-n N] "
                        "[-w WINDOW] [-b BYTES] [-d DURABLE] [-x MAX_PENDING] "
                        "[-k request|notify|none]\n");
        return 2;
    }
    o.mode = argv[1];
    optind = 2;
    while ((ch = getopt(argc, argv, "a:s:t:n:w:b:d:x:k:")) != -1) {
        switch (ch) {
        case 'a':
            o.addr = optarg;
            break;
        case 's':
            o.stream = optarg;
            break;
        case 't':
            o.topic = optarg;
            break;
        case 'n':
            o.n = atol(optarg);
            break;
        case 'w':
            o.window = atol(optarg);
            break;
        case 'b':
            o.bytes = atol(optarg);
            break;
        case 'd':
            o.durable = optarg;
            break;
        case 'x':
            o.max_pending = atol(optarg);
            break;
        case 'k':
            o.ack = optarg;
            break;
        default:
            return 2;
        }
    }
    if (o.n <= 0 || o.window <= 0 || o.bytes < 0 || o.max_pending <= 0)
        die("N, WINDOW and MAX_PENDING must be positive");
    return strcmp(o.mode, "pub") == 0 ? run_pub(&o) : run_consume(&o);
}
