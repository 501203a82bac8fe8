/*
 * xbench.c - throughput and latency between two pigeond nodes of a cluster
 * (or within one node): publishers on one broker, subscribers on another.
 *
 * A benchmark, not a test (docs/performance.md quotes it).  Build and run:
 *
 *   cc -O2 -pthread -o /tmp/xbench tests/bench/xbench.c
 *   /tmp/xbench --pub 127.0.0.1:17401 --sub 127.0.0.1:17402 --subs 8
 *
 * Subscribers connect to --sub and subscribe to one topic; the tool then
 * publishes probes (as `pub` requests) on --pub until their result counts
 * every subscriber, so the interest has reached the publishing node; then
 * each publisher sends --msgs messages as `pub` notifications, 64 frames
 * per write, unthrottled or at --rate msgs/s.  Each payload is a bin of
 * --size bytes carrying its send time (CLOCK_MONOTONIC: both ends run on
 * this machine), its publisher and its sequence number, so the subscribers
 * count what was lost or reordered and measure one-way latency.
 *
 * The result line: publish rate, delivered msgs/s over all subscribers
 * (from the first send to the last delivery), lost and reordered counts,
 * and latency p50/p90/p99 in microseconds (meaningful at a fixed rate;
 * unthrottled runs measure queues).  Loopback only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH     64
#define READ_BUF  (256 * 1024)
#define PROBE_PUB 0xffffffffu
#define MAX_PUBS  64
#define MAX_SUBS  256

struct opts {
    char pub_host[64], sub_host[64];
    int pub_port, sub_port;
    int pubs, subs;
    long msgs;
    int size;
    double rate; /* per publisher; 0: unthrottled */
    const char *topic;
    int idle_ms;
};

static struct opts o = {
    .pubs = 1, .subs = 1, .msgs = 1000000, .size = 128, .topic = "bench.x", .idle_ms = 3000};

struct sub {
    pthread_t th;
    int fd;
    uint64_t got, reordered, probes;
    int64_t last_seq[MAX_PUBS];
    uint64_t *lat; /* ns */
    size_t nlat, cap_lat;
    uint64_t first_ns, last_ns;
};

static struct sub subs[MAX_SUBS];
static atomic_int subs_ready;
static atomic_bool go;
static uint64_t t_start_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int dial(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        die("socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        c += w;
        n -= (size_t)w;
    }
}

/* ----------------------------------------------------------- MessagePack */

static size_t put_str(uint8_t *b, const char *s)
{
    size_t n = strlen(s);
    b[0] = (uint8_t)(0xa0 | n); /* topics here are short */
    memcpy(b + 1, s, n);
    return 1 + n;
}

/* [2, "pub", [topic, bin(payload)]]: the frame, with the payload's bytes at *PAYLOAD. */
static size_t pub_frame(uint8_t *b, uint32_t pub, uint32_t seq, uint64_t t, uint8_t **payload)
{
    size_t n = 0;
    b[n++] = 0x93;
    b[n++] = 0x02;
    n += put_str(b + n, "pub");
    b[n++] = 0x92;
    n += put_str(b + n, o.topic);
    b[n++] = 0xc5; /* bin16 */
    b[n++] = (uint8_t)(o.size >> 8);
    b[n++] = (uint8_t)o.size;
    *payload = b + n;
    memcpy(b + n, &t, 8);
    memcpy(b + n + 8, &pub, 4);
    memcpy(b + n + 12, &seq, 4);
    memset(b + n + 16, 'x', (size_t)o.size - 16);
    return n + (size_t)o.size;
}

static uint64_t be(const uint8_t *p, int w)
{
    uint64_t v = 0;
    for (int i = 0; i < w; i++)
        v = v << 8 | p[i];
    return v;
}

/* Bytes of the object at P (at most N available), or 0 when cut. */
static size_t mp_len(const uint8_t *p, size_t n)
{
    size_t i = 0, pending = 1;
    while (pending > 0) {
        if (i >= n)
            return 0;
        uint8_t t = p[i];
        pending--;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            i += 1;
        } else if (t >= 0x80 && t <= 0x8f) {
            pending += 2u * (t & 15);
            i += 1;
        } else if (t >= 0x90 && t <= 0x9f) {
            pending += t & 15;
            i += 1;
        } else if (t >= 0xa0 && t <= 0xbf) {
            i += 1u + (t & 31);
        } else {
            static const int8_t fixed[] = {[0xcc - 0xc0] = 2, [0xcd - 0xc0] = 3, [0xce - 0xc0] = 5,
                                           [0xcf - 0xc0] = 9, [0xd0 - 0xc0] = 2, [0xd1 - 0xc0] = 3,
                                           [0xd2 - 0xc0] = 5, [0xd3 - 0xc0] = 9, [0xca - 0xc0] = 5,
                                           [0xcb - 0xc0] = 9};
            int w = t == 0xc4 || t == 0xd9   ? 1
                    : t == 0xc5 || t == 0xda ? 2
                    : t == 0xc6 || t == 0xdb ? 4
                                             : 0;
            if (w) {
                if (i + 1 + (size_t)w > n)
                    return 0;
                i += 1 + (size_t)w + be(p + i + 1, w);
            } else if (t == 0xdc || t == 0xdd || t == 0xde || t == 0xdf) {
                int aw = t == 0xdc || t == 0xde ? 2 : 4;
                if (i + 1 + (size_t)aw > n)
                    return 0;
                pending += be(p + i + 1, aw) * (t >= 0xde ? 2 : 1);
                i += 1 + (size_t)aw;
            } else if (t - 0xc0 < (int)sizeof(fixed) && fixed[t - 0xc0]) {
                i += (size_t)fixed[t - 0xc0];
            } else {
                fprintf(stderr, "xbench: unexpected byte 0x%02x\n", t);
                exit(1);
            }
        }
    }
    return i <= n ? i : 0;
}

/* A msg frame's payload bytes (bin), or NULL for any other frame. */
static const uint8_t *msg_payload(const uint8_t *f, size_t len)
{
    if (len < 8 || f[0] != 0x93 || f[1] != 0x02 || memcmp(f + 2, "\xa3msg", 4) != 0)
        return NULL;
    const uint8_t *p = f + 7;
    p += mp_len(p, len - 7);               /* sid */
    p += mp_len(p, len - (size_t)(p - f)); /* topic */
    if (*p == 0xc4)
        return p + 2;
    if (*p == 0xc5)
        return p + 3;
    return NULL;
}

/* -------------------------------------------------------------- threads */

static void sub_take(struct sub *s, const uint8_t *pl, uint64_t now)
{
    uint64_t t;
    uint32_t pub, seq;

    memcpy(&t, pl, 8);
    memcpy(&pub, pl + 8, 4);
    memcpy(&seq, pl + 12, 4);
    if (pub == PROBE_PUB) {
        s->probes++;
        return;
    }
    if (pub >= MAX_PUBS)
        return;
    if ((int64_t)seq <= s->last_seq[pub])
        s->reordered++;
    s->last_seq[pub] = seq;
    if (s->got++ == 0)
        s->first_ns = now;
    s->last_ns = now;
    if (s->nlat < s->cap_lat)
        s->lat[s->nlat++] = now - t;
}

static void *sub_thread(void *arg)
{
    struct sub *s = arg;
    uint8_t *buf = malloc(READ_BUF);
    size_t have = 0;
    uint8_t req[300];
    size_t n = 0;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};

    req[n++] = 0x94;
    req[n++] = 0x00;
    req[n++] = 0x01;
    n += put_str(req + n, "sub");
    req[n++] = 0x91;
    n += put_str(req + n, o.topic);
    write_all(s->fd, req, n);
    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool ready = false;
    uint64_t idle_since = now_ns();
    for (;;) {
        ssize_t r = read(s->fd, buf + have, READ_BUF - have);
        uint64_t now = now_ns();
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (atomic_load(&go) && now - idle_since > (uint64_t)o.idle_ms * 1000000u)
                    break;
                if (s->got >= (uint64_t)o.pubs * (uint64_t)o.msgs)
                    break;
                continue;
            }
            break;
        }
        idle_since = now;
        have += (size_t)r;
        size_t at = 0, fl;
        while ((fl = mp_len(buf + at, have - at)) > 0) {
            const uint8_t *pl = msg_payload(buf + at, fl);
            if (pl != NULL)
                sub_take(s, pl, now);
            else if (!ready && buf[at] == 0x94 && buf[at + 1] == 0x01) {
                ready = true;
                atomic_fetch_add(&subs_ready, 1);
            }
            at += fl;
        }
        memmove(buf, buf + at, have - at);
        have -= at;
        if (s->got >= (uint64_t)o.pubs * (uint64_t)o.msgs)
            break;
    }
    free(buf);
    return NULL;
}

struct pub {
    pthread_t th;
    int fd;
    uint32_t id;
    uint64_t sent, t0, t1;
};

static void *pub_thread(void *arg)
{
    struct pub *p = arg;
    size_t frame = 48 + (size_t)o.size; /* headers and a topic of at most 31 bytes */
    uint8_t *buf = malloc(BATCH * frame);
    uint64_t interval = o.rate > 0 ? (uint64_t)(1e9 / o.rate) : 0;
    uint64_t next = now_ns();

    p->t0 = now_ns();
    for (long i = 0; i < o.msgs;) {
        size_t n = 0;
        int k = 0;
        for (; k < BATCH && i < o.msgs && (interval == 0 || k == 0); k++, i++) {
            uint8_t *pl;
            n += pub_frame(buf + n, p->id, (uint32_t)i, 0, &pl);
            uint64_t t = now_ns();
            memcpy(pl, &t, 8);
        }
        write_all(p->fd, buf, n);
        p->sent += (uint64_t)k;
        if (interval) {
            next += interval;
            uint64_t now = now_ns();
            if (next > now) {
                struct timespec ts = {.tv_sec = (time_t)((next - now) / 1000000000u),
                                      .tv_nsec = (long)((next - now) % 1000000000u)};
                nanosleep(&ts, NULL);
            }
        }
    }
    p->t1 = now_ns();
    free(buf);
    return NULL;
}

/* Sends a probe as a pub request on FD until its result counts every subscriber. */
static void wait_interest(int fd)
{
    uint8_t f[512], r[4096];
    uint32_t id = 0;

    for (int tries = 0; tries < 500; tries++) {
        size_t n = 0;
        uint8_t *pl;
        f[n++] = 0x94;
        f[n++] = 0x00;
        f[n++] = 0xcd;
        f[n++] = (uint8_t)(++id >> 8);
        f[n++] = (uint8_t)id;
        n += put_str(f + n, "pub");
        f[n++] = 0x92;
        n += put_str(f + n, o.topic);
        f[n++] = 0xc4;
        f[n++] = 16;
        pl = f + n;
        uint64_t t = 0;
        uint32_t pub = PROBE_PUB, seq = 0;
        memcpy(pl, &t, 8);
        memcpy(pl + 8, &pub, 4);
        memcpy(pl + 12, &seq, 4);
        n += 16;
        write_all(fd, f, n);
        ssize_t got = read(fd, r, sizeof(r)); /* [1, id, nil, count]: the last byte, a fixint */
        if (got >= 5 && r[got - 1] <= 0x7f && r[got - 1] >= o.subs)
            return;
        usleep(10000);
    }
    fprintf(stderr, "xbench: the publishing node never saw every subscriber\n");
    exit(1);
}

/* ----------------------------------------------------------------- main */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void parse_addr(const char *s, char *host, int *port)
{
    const char *c = strrchr(s, ':');
    if (c == NULL || (size_t)(c - s) >= 64) {
        fprintf(stderr, "xbench: address HOST:PORT expected, not %s\n", s);
        exit(2);
    }
    memcpy(host, s, (size_t)(c - s));
    host[c - s] = '\0';
    *port = atoi(c + 1);
    if (strncmp(host, "127.", 4) != 0) {
        fprintf(stderr, "xbench: loopback only\n");
        exit(2);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: xbench --pub HOST:PORT --sub HOST:PORT [--pubs P] [--subs S]\n"
                    "              [--msgs N] [--size B] [--rate R] [--topic T]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"pub", 1, 0, 'p'},  {"sub", 1, 0, 's'},   {"pubs", 1, 0, 'P'},
        {"subs", 1, 0, 'S'}, {"msgs", 1, 0, 'n'},  {"size", 1, 0, 'z'},
        {"rate", 1, 0, 'r'}, {"topic", 1, 0, 't'}, {0, 0, 0, 0}};
    int ch;
    bool have_pub = false, have_sub = false;

    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            parse_addr(optarg, o.pub_host, &o.pub_port);
            have_pub = true;
            break;
        case 's':
            parse_addr(optarg, o.sub_host, &o.sub_port);
            have_sub = true;
            break;
        case 'P':
            o.pubs = atoi(optarg);
            break;
        case 'S':
            o.subs = atoi(optarg);
            break;
        case 'n':
            o.msgs = atol(optarg);
            break;
        case 'z':
            o.size = atoi(optarg);
            break;
        case 'r':
            o.rate = atof(optarg);
            break;
        case 't':
            o.topic = optarg;
            break;
        default:
            usage();
        }
    }
    if (!have_pub || !have_sub || o.pubs < 1 || o.pubs > MAX_PUBS || o.subs < 1 ||
        o.subs > MAX_SUBS || o.size < 16 || o.size > 60000 || o.msgs < 1 || strlen(o.topic) > 31)
        usage();

    for (int j = 0; j < o.subs; j++) {
        struct sub *s = &subs[j];
        s->fd = dial(o.sub_host, o.sub_port);
        for (int i = 0; i < MAX_PUBS; i++)
            s->last_seq[i] = -1;
        s->cap_lat = (size_t)o.pubs * (size_t)o.msgs;
        s->lat = malloc(s->cap_lat * sizeof(*s->lat));
        pthread_create(&s->th, NULL, sub_thread, s);
    }
    while (atomic_load(&subs_ready) < o.subs)
        usleep(1000);
    struct pub pubs[MAX_PUBS] = {{0}};
    for (int i = 0; i < o.pubs; i++) {
        pubs[i].fd = dial(o.pub_host, o.pub_port);
        pubs[i].id = (uint32_t)i;
    }
    wait_interest(pubs[0].fd);
    usleep(200000); /* the probes drain */
    atomic_store(&go, true);
    t_start_ns = now_ns();
    for (int i = 0; i < o.pubs; i++)
        pthread_create(&pubs[i].th, NULL, pub_thread, &pubs[i]);
    for (int i = 0; i < o.pubs; i++)
        pthread_join(pubs[i].th, NULL);
    for (int j = 0; j < o.subs; j++)
        pthread_join(subs[j].th, NULL);

    uint64_t sent = 0, pub_end = 0, got = 0, reordered = 0, last = 0, nlat = 0;
    for (int i = 0; i < o.pubs; i++) {
        sent += pubs[i].sent;
        pub_end = pubs[i].t1 > pub_end ? pubs[i].t1 : pub_end;
    }
    for (int j = 0; j < o.subs; j++) {
        got += subs[j].got;
        reordered += subs[j].reordered;
        last = subs[j].last_ns > last ? subs[j].last_ns : last;
        nlat += subs[j].nlat;
    }
    uint64_t *all = malloc((nlat ? nlat : 1) * sizeof(*all)), k = 0;
    for (int j = 0; j < o.subs; j++) {
        memcpy(all + k, subs[j].lat, subs[j].nlat * sizeof(*all));
        k += subs[j].nlat;
    }
    qsort(all, nlat, sizeof(*all), cmp_u64);
    double pub_s = (double)(pub_end - t_start_ns) / 1e9, all_s = (double)(last - t_start_ns) / 1e9;
    printf("pubs=%d subs=%d size=%d rate=%.0f sent=%llu delivered=%llu lost=%lld reordered=%llu "
           "publish=%.0f/s delivered=%.0f/s p50=%.1fus p90=%.1fus p99=%.1fus\n",
           o.pubs, o.subs, o.size, o.rate, (unsigned long long)sent, (unsigned long long)got,
           (long long)(sent * (uint64_t)o.subs - got), (unsigned long long)reordered,
           (double)sent / pub_s, (double)got / all_s, nlat ? (double)all[nlat / 2] / 1e3 : 0.0,
           nlat ? (double)all[nlat * 9 / 10] / 1e3 : 0.0,
           nlat ? (double)all[nlat * 99 / 100] / 1e3 : 0.0);
    return got == sent * (uint64_t)o.subs && reordered == 0 ? 0 : 1;
}
