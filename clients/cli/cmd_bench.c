/*
 * cmd_bench.c - `pigeon bench`: throughput, loss and latency of the broker.
 *
 * Threads: one per publisher and one per subscriber, each with its own
 * libpigeon client on its own event_base (the library has no global state,
 * so nothing is shared but a few atomic counters).  The main thread sets
 * every client up (connected, subscribed) before any thread starts, starts
 * them together, prints a progress line, then joins them and reports.
 *
 * Publishers use the asynchronous API in batches: up to BENCH_BATCH
 * publications are encoded into the client's output buffer, then one
 * non-blocking loop turn sends them in one system call.  When the output
 * is full (PIGEON_EFULL) the publisher runs the loop until the socket takes
 * more.  With --rate, each publisher sends what is due and sleeps until the
 * next message is.
 *
 * Every payload is a MessagePack binary of exactly --size bytes whose data
 * starts with the send time (CLOCK_MONOTONIC, ns) and a sequence number;
 * subscribers record now - send time in a histogram (hist.c) for every
 * message.  Latency therefore includes the publisher's batching and any
 * queueing: run with --rate below the saturation point to measure it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "hist.h"

#define BENCH_BATCH        512        /* publications per loop turn */
#define BENCH_MAX_OUTBOUND (1u << 20) /* a publisher's output buffer */
#define BENCH_STAMP        16         /* send time + sequence number */
#define BENCH_STAMP_EVERY  16         /* messages per read of the clock */
#define BENCH_MAX_CLIENTS  1024

static const char bench_help[] =
    "usage: pigeon bench [options]\n"
    "\n"
    "Measures the broker: P publishers send N messages in all to one topic,\n"
    "S subscribers receive them; prints publish and receive throughput\n"
    "(msgs/s, MB/s of payload, 1 MB = 10^6 bytes), loss, and latency\n"
    "percentiles.  Each client is a thread with its own connection.\n"
    "\n"
    "options:\n"
    "  -p, --pubs P         publishers (default 1)\n"
    "  -S, --subs S         subscribers (default 1; 0 measures publishing alone)\n"
    "  -n, --msgs N         messages in all, shared by the publishers (default 1000000)\n"
    "  -z, --size B         payload bytes, at least 18 (default 128)\n"
    "  -r, --rate R         messages per second in all, 0 for as fast as possible (default 0)\n"
    "      --topic T        topic (default bench.<random>)\n"
    "      --queue GROUP    subscribers share the messages as a queue group\n"
    "      --idle T         give up waiting for missing messages after T without any\n"
    "                       (default 10s)\n"
    "      --json           print the results as one JSON object\n"
    "      --progress       a progress line on stderr even when it is not a terminal\n"
    "      --no-progress    no progress line\n" CLI_COMMON_HELP;

struct bench_cfg {
    struct cli_common common;
    struct pigeon_options conn; /* the login and TLS of every client (cli_common_apply) */
    unsigned pubs, subs;
    uint64_t msgs;
    uint64_t size;
    uint64_t rate;
    char topic[128];
    const char *queue;
    long idle_ms;
    bool json;
    int progress; /* -1 auto (a terminal), 0 off, 1 on */
};

struct bench;

struct bench_client {
    struct bench *b;
    unsigned index;
    bool is_pub;
    struct event_base *base; /* owned */
    pigeon_client *c;        /* owned */
    pthread_t thread;
    int err;
    char errmsg[256];
    _Atomic uint64_t count;  /* sent or received so far, for the progress line */
    int64_t t_first, t_last; /* ns: first and last send or receive */
    /* publisher */
    uint64_t n;
    uint8_t *payload;
    int64_t stamp; /* the send time written into payloads; 0: read it again */
    bool flushed;
    /* subscriber */
    uint64_t got;
    struct hist *hist;
    bool subscribed;
};

struct bench {
    struct bench_cfg cfg;
    struct bench_client *clients; /* subs first, then pubs */
    unsigned n_clients;
    _Atomic unsigned pubs_done;
    _Atomic uint64_t received; /* queue mode: across subscribers */
    _Atomic int64_t last_pub_ns;
    _Atomic bool go;
    int64_t t0;
};

/*
 * Times are wall-clock nanoseconds (CLOCK_REALTIME), the clock libevent's
 * cached time is in: a subscriber reads the time its loop woke up at,
 * which costs nothing, instead of asking the kernel for every message (a
 * clock read costs more than the rest of receiving a message on some
 * virtual machines).  A step of the system clock during a run would
 * distort it; NTP slews instead.
 */
static int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* When BASE's loop woke up (or now, outside the loop), in ns. */
static int64_t bench_loop_ns(struct event_base *base)
{
    struct timeval tv;
    event_base_gettimeofday_cached(base, &tv);
    return (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
}

/* ---------------------------------------------------------- options --- */

static int bench_parse_uint(const char *opt, const char *s, uint64_t *out)
{
    if (cli_parse_count(s, out) < 0)
        return cli_usage_error("bench", "%s takes a number, not '%s'", opt, s);
    return CLI_OK;
}

static int bench_parse(int argc, char **argv, struct bench_cfg *cfg)
{
    static const struct option longopts[] = {
        {"pubs", required_argument, NULL, 'p'},
        {"subs", required_argument, NULL, 'S'},
        {"msgs", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 'z'},
        {"rate", required_argument, NULL, 'r'},
        {"topic", required_argument, NULL, 'T'},
        {"queue", required_argument, NULL, 'Q'},
        {"idle", required_argument, NULL, 'I'},
        {"json", no_argument, NULL, 'J'},
        {"progress", no_argument, NULL, 'P'},
        {"no-progress", no_argument, NULL, 'O'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    uint64_t v;
    int ch, rc;

    cli_common_init(&cfg->common);
    cfg->pubs = cfg->subs = 1;
    cfg->msgs = 1000000;
    cfg->size = 128;
    cfg->idle_ms = 10000;
    cfg->progress = -1;
    while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "p:S:n:z:r:", longopts, NULL)) !=
           -1) {
        if (cli_common_option(ch, optarg, &cfg->common))
            continue;
        rc = CLI_OK;
        switch (ch) {
        case 'p':
            if ((rc = bench_parse_uint("--pubs", optarg, &v)) == CLI_OK && (v == 0 || v > 512))
                rc = cli_usage_error("bench", "--pubs takes 1..512");
            cfg->pubs = (unsigned)v;
            break;
        case 'S':
            if ((rc = bench_parse_uint("--subs", optarg, &v)) == CLI_OK && v > 512)
                rc = cli_usage_error("bench", "--subs takes 0..512");
            cfg->subs = (unsigned)v;
            break;
        case 'n':
            rc = bench_parse_uint("--msgs", optarg, &cfg->msgs);
            break;
        case 'z':
            if ((rc = bench_parse_uint("--size", optarg, &cfg->size)) == CLI_OK &&
                (cfg->size < 2 + BENCH_STAMP || cfg->size > (1u << 30)))
                rc = cli_usage_error("bench", "--size takes 18 bytes to 1 GiB");
            break;
        case 'r':
            rc = bench_parse_uint("--rate", optarg, &cfg->rate);
            break;
        case 'T':
            snprintf(cfg->topic, sizeof(cfg->topic), "%s", optarg);
            break;
        case 'Q':
            cfg->queue = optarg;
            break;
        case 'I':
            if ((cfg->idle_ms = cli_parse_duration(optarg)) <= 0)
                rc = cli_usage_error("bench", "--idle takes a duration, not '%s'", optarg);
            break;
        case 'J':
            cfg->json = true;
            break;
        case 'P':
            cfg->progress = 1;
            break;
        case 'O':
            cfg->progress = 0;
            break;
        case 'h':
            fputs(bench_help, stdout);
            return -1;
        default:
            rc = cli_usage_error("bench", "bad option");
        }
        if (rc != CLI_OK)
            return rc;
    }
    if (optind != argc)
        return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
    if (cfg->msgs < cfg->pubs)
        return cli_usage_error("bench", "--msgs must be at least --pubs");
    pigeon_options_init(&cfg->conn);
    if ((rc = cli_common_apply("bench", &cfg->common, &cfg->conn)) != CLI_OK)
        return rc;
    if (cfg->topic[0] == '\0')
        snprintf(cfg->topic, sizeof(cfg->topic), "bench.%08x%04x", (unsigned)time(NULL),
                 (unsigned)getpid() & 0xffff);
    if ((rc = cli_check_topic("bench", cfg->topic, false)) != CLI_OK)
        return rc;
    if (cfg->queue != NULL && (rc = cli_check_topic("bench", cfg->queue, false)) != CLI_OK)
        return rc;
    return CLI_OK;
}

/* ------------------------------------------------------------ set-up --- */

static void bench_fail(struct bench_client *bc, int err, const char *what)
{
    if (bc->err != 0)
        return;
    bc->err = err;
    snprintf(bc->errmsg, sizeof(bc->errmsg), "%s %s %u: %s (%s)", what,
             bc->is_pub ? "publisher" : "subscriber", bc->index, pigeon_strerror(err),
             bc->c ? pigeon_errmsg(bc->c) : "");
}

static void bench_state_cb(pigeon_client *c, enum pigeon_state state, int err, void *arg)
{
    struct bench_client *bc = arg;

    if (state == PIGEON_STATE_CLOSED || state == PIGEON_STATE_DISCONNECTED)
        bench_fail(bc, err, "connection of");
    if (bc->base != NULL && state != PIGEON_STATE_CONNECTING)
        event_base_loopbreak(bc->base);
}

static void bench_sub_done_cb(pigeon_client *c, int err, uint64_t result, void *arg)
{
    struct bench_client *bc = arg;

    if (err != PIGEON_OK)
        bench_fail(bc, err, "subscription of");
    bc->subscribed = true;
    event_base_loopbreak(bc->base);
}

/* Runs BC's loop until DONE is set or an error, for at most 30 s. */
static void bench_wait(struct bench_client *bc, const bool *done, enum pigeon_state want)
{
    int64_t end = bench_now_ns() + 30 * (int64_t)1000000000;
    struct timeval tick = {0, 100000};

    while (bc->err == 0 && !(done ? *done : pigeon_state(bc->c) == want)) {
        if (bench_now_ns() > end) {
            bench_fail(bc, PIGEON_ETIMEDOUT, "setting up");
            return;
        }
        event_base_loopexit(bc->base, &tick);
        event_base_dispatch(bc->base);
    }
}

static void bench_msg_cb(pigeon_client *c, const pigeon_msg *m, void *arg);

/*
 * An event_base with a precise clock: by default libevent reads the coarse
 * monotonic clock (a few ms of resolution), which would blur both the
 * subscribers' receive times and the publishers' --rate pacing.
 */
static struct event_base *bench_base_new(void)
{
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

static int bench_setup_client(struct bench *b, struct bench_client *bc)
{
    struct pigeon_options o = b->cfg.conn;

    o.reconnect = 0;
    o.max_outbound = BENCH_MAX_OUTBOUND;
    o.on_state = bench_state_cb;
    o.state_arg = bc;
    bc->base = bench_base_new();
    if (bc->base == NULL)
        return PIGEON_ENOMEM;
    char why[sizeof(bc->errmsg)] = "";
    o.errbuf = why;
    o.errbuf_len = sizeof(why);
    int err = pigeon_connect(bc->base, b->cfg.common.server, &o, &bc->c);
    if (err != PIGEON_OK) {
        bc->err = err;
        snprintf(bc->errmsg, sizeof(bc->errmsg), "%s", why);
        return err;
    }
    bench_wait(bc, NULL, PIGEON_STATE_CONNECTED);
    if (bc->err != 0 || bc->is_pub)
        return bc->err;
    struct pigeon_sub_opts so = {
        .queue = b->cfg.queue, .on_done = bench_sub_done_cb, .done_arg = bc};
    bc->hist = malloc(sizeof(*bc->hist));
    if (bc->hist == NULL)
        return PIGEON_ENOMEM;
    hist_init(bc->hist);
    err = pigeon_subscribe(bc->c, b->cfg.topic, &so, bench_msg_cb, bc, NULL);
    if (err != PIGEON_OK)
        return err;
    bench_wait(bc, &bc->subscribed, PIGEON_STATE_CONNECTED);
    return bc->err;
}

/* A binary of exactly SIZE encoded bytes; the stamp goes at *STAMP_AT. */
static uint8_t *bench_make_payload(uint64_t size, size_t *stamp_at)
{
    uint8_t *p = calloc(1, size);
    if (p == NULL)
        return NULL;
    if (size - 2 <= 0xff) {
        p[0] = 0xc4;
        p[1] = (uint8_t)(size - 2);
        *stamp_at = 2;
    } else if (size - 3 <= 0xffff) {
        p[0] = 0xc5;
        p[1] = (uint8_t)((size - 3) >> 8);
        p[2] = (uint8_t)(size - 3);
        *stamp_at = 3;
    } else {
        uint64_t n = size - 5;
        p[0] = 0xc6;
        for (int i = 0; i < 4; i++)
            p[1 + i] = (uint8_t)(n >> (24 - 8 * i));
        *stamp_at = 5;
    }
    return p;
}

static void bench_free_client(struct bench_client *bc)
{
    pigeon_close(bc->c);
    if (bc->base != NULL)
        event_base_free(bc->base);
    free(bc->payload);
    free(bc->hist);
}

/* -------------------------------------------------------- publishers --- */

static size_t bench_stamp_offset(uint64_t size)
{
    return size - 2 <= 0xff ? 2 : size - 3 <= 0xffff ? 3 : 5;
}

static void bench_flushed_cb(pigeon_client *c, int err, uint64_t result, void *arg)
{
    struct bench_client *bc = arg;

    if (err != PIGEON_OK)
        bench_fail(bc, err, "flush of");
    bc->flushed = true;
}

/*
 * Publishes message SEQ, waiting for room when the output is full.  The
 * send time is read every BENCH_STAMP_EVERY messages: they leave together
 * at the end of the batch anyway.
 */
static int bench_publish_one(struct bench_client *bc, uint64_t seq, size_t at)
{
    const struct bench_cfg *cfg = &bc->b->cfg;

    for (;;) {
        if (seq % BENCH_STAMP_EVERY == 0 || bc->stamp == 0)
            bc->stamp = bench_now_ns();
        memcpy(bc->payload + at, &bc->stamp, sizeof(bc->stamp));
        memcpy(bc->payload + at + 8, &seq, sizeof(seq));
        int err = pigeon_publish(bc->c, cfg->topic, bc->payload, cfg->size, NULL);
        if (err != PIGEON_EFULL)
            return err;
        event_base_loop(bc->base, EVLOOP_ONCE);
        bc->stamp = 0;
        if (bc->err != 0)
            return bc->err;
    }
}

/* With --rate: sleeps until message I is due (per-publisher rate RATE). */
static void bench_pace(struct bench_client *bc, uint64_t i, double rate)
{
    int64_t due = bc->t_first + (int64_t)((double)i * 1e9 / rate);
    int64_t wait = due - bench_now_ns();

    if (wait <= 0)
        return;
    struct timeval tv = {.tv_sec = (time_t)(wait / 1000000000),
                         .tv_usec = (suseconds_t)(wait % 1000000000 / 1000)};
    event_base_loopexit(bc->base, &tv);
    event_base_dispatch(bc->base); /* sends and reads meanwhile */
}

static void *bench_pub_main(void *arg)
{
    struct bench_client *bc = arg;
    struct bench *b = bc->b;
    double rate = b->cfg.rate > 0 ? (double)b->cfg.rate / b->cfg.pubs : 0;
    size_t at = bench_stamp_offset(b->cfg.size);
    uint64_t i = 0;

    while (!atomic_load(&b->go))
        sched_yield();
    bc->t_first = bench_now_ns();
    while (i < bc->n && bc->err == 0) {
        if (rate > 0) {
            bench_pace(bc, i, rate);
            bc->stamp = 0;
        }
        uint64_t end = i + BENCH_BATCH < bc->n ? i + BENCH_BATCH : bc->n;
        if (rate > 0) {
            uint64_t due = (uint64_t)((double)(bench_now_ns() - bc->t_first) * rate / 1e9) + 1;
            if (due < end)
                end = due > i ? due : i + 1;
        }
        for (; i < end; i++) {
            int err = bench_publish_one(bc, i, at);
            if (err != PIGEON_OK) {
                bench_fail(bc, err, "publish by");
                break;
            }
        }
        event_base_loop(bc->base, EVLOOP_NONBLOCK);
        atomic_store_explicit(&bc->count, i, memory_order_relaxed);
    }
    /* The end: once the broker has answered this ping, it has read everything. */
    int err = bc->err == 0 ? pigeon_flush(bc->c, bench_flushed_cb, bc) : bc->err;
    if (err != PIGEON_OK)
        bench_fail(bc, err, "flush of");
    while (!bc->flushed && bc->err == 0)
        event_base_loop(bc->base, EVLOOP_ONCE);
    bc->t_last = bench_now_ns();
    atomic_store(&b->last_pub_ns, bc->t_last);
    atomic_fetch_add(&b->pubs_done, 1);
    return NULL;
}

/* ------------------------------------------------------- subscribers --- */

static void bench_msg_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    struct bench_client *bc = arg;
    int64_t now = bench_loop_ns(bc->base), sent;
    size_t len;
    const uint8_t *p = pigeon_msg_data(m, &len);
    size_t at = len >= 2 && p[0] == 0xc4 ? 2 : len >= 3 && p[0] == 0xc5 ? 3 : 5;

    if (len < at + BENCH_STAMP)
        return;
    memcpy(&sent, p + at, sizeof(sent));
    hist_add(bc->hist, now > sent ? (uint64_t)(now - sent) : 0);
    if (bc->got++ == 0)
        bc->t_first = now;
    bc->t_last = now;
    if ((bc->got & 1023) == 0)
        atomic_store_explicit(&bc->count, bc->got, memory_order_relaxed);
    if (bc->b->cfg.queue == NULL && bc->got == bc->n)
        event_base_loopbreak(bc->base);
}

/* True when subscriber BC should stop waiting. */
static bool bench_sub_finished(struct bench_client *bc)
{
    struct bench *b = bc->b;

    if (bc->err != 0)
        return true;
    if (b->cfg.queue == NULL ? bc->got >= bc->n : atomic_load(&b->received) >= b->cfg.msgs)
        return true;
    if (atomic_load(&b->pubs_done) < b->cfg.pubs)
        return false;
    int64_t last =
        bc->t_last > atomic_load(&b->last_pub_ns) ? bc->t_last : atomic_load(&b->last_pub_ns);
    return bench_now_ns() - last > b->cfg.idle_ms * (int64_t)1000000;
}

static void *bench_sub_main(void *arg)
{
    struct bench_client *bc = arg;
    struct bench *b = bc->b;
    struct timeval tick = {0, 50000};
    uint64_t reported = 0;

    while (!atomic_load(&b->go))
        sched_yield();
    while (!bench_sub_finished(bc)) {
        event_base_loopexit(bc->base, &tick);
        event_base_dispatch(bc->base);
        if (b->cfg.queue != NULL) {
            atomic_fetch_add(&b->received, bc->got - reported);
            reported = bc->got;
        }
    }
    atomic_store(&bc->count, bc->got);
    return NULL;
}

/* ----------------------------------------------------------- report --- */

struct bench_totals {
    uint64_t sent, received, expected;
    double pub_secs, sub_secs;
    struct hist hist;
};

static void bench_progress(struct bench *b, bool final)
{
    uint64_t sent = 0, got = 0;
    double secs = (double)(bench_now_ns() - b->t0) / 1e9;

    for (unsigned i = 0; i < b->n_clients; i++) {
        uint64_t n = atomic_load_explicit(&b->clients[i].count, memory_order_relaxed);
        if (b->clients[i].is_pub)
            sent += n;
        else
            got += n;
    }
    fprintf(stderr, "\r[%6.1fs] published %" PRIu64 "/%" PRIu64 " (%.0f msgs/s)", secs, sent,
            b->cfg.msgs, secs > 0 ? (double)sent / secs : 0.0);
    if (b->cfg.subs > 0)
        fprintf(stderr, ", received %" PRIu64 " (%.0f msgs/s)", got,
                secs > 0 ? (double)got / secs : 0.0);
    fputs(final || b->cfg.progress == 1 ? "   \n" : "   ", stderr);
}

static void bench_totals(const struct bench *b, struct bench_totals *t)
{
    int64_t pub_end = 0, sub_end = 0;

    memset(t, 0, sizeof(*t));
    hist_init(&t->hist);
    t->expected =
        b->cfg.queue != NULL ? b->cfg.msgs * (b->cfg.subs > 0) : b->cfg.msgs * b->cfg.subs;
    for (unsigned i = 0; i < b->n_clients; i++) {
        const struct bench_client *bc = &b->clients[i];
        if (bc->is_pub) {
            t->sent += atomic_load(&bc->count);
            pub_end = bc->t_last > pub_end ? bc->t_last : pub_end;
        } else {
            t->received += bc->got;
            sub_end = bc->got > 0 && bc->t_last > sub_end ? bc->t_last : sub_end;
            hist_merge(&t->hist, bc->hist);
        }
    }
    t->pub_secs = (double)(pub_end - b->t0) / 1e9;
    t->sub_secs = sub_end > 0 ? (double)(sub_end - b->t0) / 1e9 : 0;
}

static double bench_rate(uint64_t n, double secs)
{
    return secs > 0 ? (double)n / secs : 0;
}

static void bench_print_json(const struct bench *b, const struct bench_totals *t)
{
    const struct hist *h = &t->hist;
    double mb = (double)b->cfg.size / 1e6;

    printf("{\"pubs\":%u,\"subs\":%u,\"msgs\":%" PRIu64 ",\"size\":%" PRIu64 ",\"rate\":%" PRIu64
           ",\"queue\":%s,"
           "\"pub\":{\"msgs\":%" PRIu64 ",\"secs\":%.6f,\"msgs_per_sec\":%.0f,\"mb_per_sec\":%.2f},"
           "\"sub\":{\"expected\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64
           ",\"secs\":%.6f,\"msgs_per_sec\":%.0f,\"mb_per_sec\":%.2f},"
           "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f}}\n",
           b->cfg.pubs, b->cfg.subs, b->cfg.msgs, b->cfg.size, b->cfg.rate,
           b->cfg.queue ? "true" : "false", t->sent, t->pub_secs, bench_rate(t->sent, t->pub_secs),
           bench_rate(t->sent, t->pub_secs) * mb, t->expected, t->received,
           t->expected > t->received ? t->expected - t->received : 0, t->sub_secs,
           bench_rate(t->received, t->sub_secs), bench_rate(t->received, t->sub_secs) * mb,
           (double)hist_percentile(h, 50) / 1e3, (double)hist_percentile(h, 90) / 1e3,
           (double)hist_percentile(h, 99) / 1e3, (double)hist_percentile(h, 99.9) / 1e3,
           (double)h->max / 1e3);
}

static void bench_print_clients(const struct bench *b, bool pubs)
{
    for (unsigned i = 0; i < b->n_clients; i++) {
        const struct bench_client *bc = &b->clients[i];
        if (bc->is_pub != pubs)
            continue;
        uint64_t n = pubs ? atomic_load(&bc->count) : bc->got;
        double secs = (double)(bc->t_last - (pubs ? bc->t_first : b->t0)) / 1e9;
        printf("  [%u] %" PRIu64 " msgs, %.0f msgs/s\n", bc->index + 1, n,
               bc->t_last > 0 ? bench_rate(n, secs) : 0.0);
    }
}

static void bench_print(const struct bench *b, const struct bench_totals *t)
{
    const struct hist *h = &t->hist;
    double mb = (double)b->cfg.size / 1e6;

    printf("pigeon bench: %u publisher%s, %u subscriber%s%s, %" PRIu64 " msgs of %" PRIu64
           " B, topic %s\n",
           b->cfg.pubs, b->cfg.pubs == 1 ? "" : "s", b->cfg.subs, b->cfg.subs == 1 ? "" : "s",
           b->cfg.queue ? " (queue group)" : "", b->cfg.msgs, b->cfg.size, b->cfg.topic);
    printf("Pub: %" PRIu64 " msgs in %.3f s = %.0f msgs/s, %.1f MB/s\n", t->sent, t->pub_secs,
           bench_rate(t->sent, t->pub_secs), bench_rate(t->sent, t->pub_secs) * mb);
    if (b->cfg.pubs > 1)
        bench_print_clients(b, true);
    if (b->cfg.subs == 0)
        return;
    uint64_t lost = t->expected > t->received ? t->expected - t->received : 0;
    printf("Sub: %" PRIu64 " of %" PRIu64 " msgs in %.3f s = %.0f msgs/s, %.1f MB/s; lost %" PRIu64
           " (%.2f%%)\n",
           t->received, t->expected, t->sub_secs, bench_rate(t->received, t->sub_secs),
           bench_rate(t->received, t->sub_secs) * mb, lost,
           t->expected > 0 ? 100.0 * (double)lost / (double)t->expected : 0.0);
    if (b->cfg.subs > 1)
        bench_print_clients(b, false);
    printf("Latency (us): p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
           (double)hist_percentile(h, 50) / 1e3, (double)hist_percentile(h, 90) / 1e3,
           (double)hist_percentile(h, 99) / 1e3, (double)hist_percentile(h, 99.9) / 1e3,
           (double)h->max / 1e3);
}

/* ------------------------------------------------------------- main --- */

static int bench_setup(struct bench *b)
{
    b->n_clients = b->cfg.subs + b->cfg.pubs;
    b->clients = calloc(b->n_clients, sizeof(*b->clients));
    if (b->clients == NULL)
        return cli_fail(PIGEON_ENOMEM, NULL, "bench");
    for (unsigned i = 0; i < b->n_clients; i++) {
        struct bench_client *bc = &b->clients[i];
        bc->b = b;
        bc->is_pub = i >= b->cfg.subs;
        bc->index = bc->is_pub ? i - b->cfg.subs : i;
        if (bc->is_pub) {
            bc->n = b->cfg.msgs / b->cfg.pubs + (bc->index < b->cfg.msgs % b->cfg.pubs);
            size_t at;
            bc->payload = bench_make_payload(b->cfg.size, &at);
            if (bc->payload == NULL)
                return cli_fail(PIGEON_ENOMEM, NULL, "bench");
        } else {
            bc->n = b->cfg.msgs;
        }
        int err = bench_setup_client(b, bc);
        if (err != PIGEON_OK) {
            if (bc->err == 0)
                bench_fail(bc, err, "setting up");
            cli_warn("%s", bc->errmsg);
            return cli_exit_for(bc->err);
        }
    }
    return CLI_OK;
}

static int bench_run(struct bench *b)
{
    bool progress = b->cfg.progress == 1 || (b->cfg.progress < 0 && isatty(STDERR_FILENO));
    unsigned started = 0;

    for (; started < b->n_clients; started++) {
        struct bench_client *bc = &b->clients[started];
        if (pthread_create(&bc->thread, NULL, bc->is_pub ? bench_pub_main : bench_sub_main, bc) !=
            0)
            break;
    }
    b->t0 = bench_now_ns();
    atomic_store(&b->go, true);
    if (started < b->n_clients) {
        cli_warn("cannot start a thread");
        for (unsigned i = 0; i < b->n_clients; i++)
            b->clients[i].err = b->clients[i].err ? b->clients[i].err : PIGEON_ESYS;
    }
    /* The progress line, until every thread is done. */
    for (unsigned joined = 0; joined < started;) {
        struct timespec tick = {0, 200000000};
        for (int k = 0; k < 5 && joined < started; k++) {
            nanosleep(&tick, NULL);
            while (joined < started && pthread_tryjoin_np(b->clients[joined].thread, NULL) == 0)
                joined++;
        }
        if (progress)
            bench_progress(b, joined == started);
    }
    for (unsigned i = 0; i < b->n_clients; i++) {
        if (b->clients[i].err != 0) {
            cli_warn("%s", b->clients[i].errmsg);
            return cli_exit_for(b->clients[i].err);
        }
    }
    return CLI_OK;
}

int cmd_bench(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return cli_fail(PIGEON_ENOMEM, NULL, "bench");
    optind = 1;
    int rc = bench_parse(argc, argv, &b->cfg);
    if (rc == CLI_OK && b->cfg.pubs + b->cfg.subs > BENCH_MAX_CLIENTS)
        rc = cli_usage_error("bench", "at most %d clients", BENCH_MAX_CLIENTS);
    if (rc == CLI_OK)
        rc = bench_setup(b);
    if (rc == CLI_OK)
        rc = bench_run(b);
    if (rc == CLI_OK) {
        struct bench_totals *t = malloc(sizeof(*t));
        if (t == NULL) {
            rc = cli_fail(PIGEON_ENOMEM, NULL, "bench");
        } else {
            bench_totals(b, t);
            if (b->cfg.json)
                bench_print_json(b, t);
            else
                bench_print(b, t);
            free(t);
        }
    }
    for (unsigned i = 0; b->clients != NULL && i < b->n_clients; i++)
        bench_free_client(&b->clients[i]);
    free(b->clients);
    free(b);
    return rc < 0 ? CLI_OK : rc;
}
