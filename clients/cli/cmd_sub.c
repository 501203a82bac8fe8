/*
 * cmd_sub.c - `pigeon sub PATTERN`: print messages as JSON lines.
 *
 * One line per message: {"topic": ..., "payload": ...} plus reply_to,
 * headers and retained when the message has them.  Output is flushed
 * whenever no further message is waiting, so a pipe sees each line at
 * once without a write per line under load.  The client reconnects and
 * subscribes again if the broker goes away.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "json.h"

static const char sub_help[] =
    "usage: pigeon sub [options] PATTERN\n"
    "\n"
    "Subscribes to PATTERN ('*' matches one token, '>' one or more at the end)\n"
    "and prints each message as one line of JSON:\n"
    "  {\"topic\": \"...\", \"payload\": ..., \"reply_to\": \"...\", \"headers\": {...},\n"
    "   \"retained\": true}    (the last three only when present)\n"
    "A note 'subscribed to PATTERN' goes to stderr once the broker has accepted.\n"
    "\n"
    "options:\n"
    "      --queue GROUP    join a queue group: each message goes to one member\n"
    "  -n, --count N        exit after N messages\n"
    "  -t, --timeout T      exit after T (e.g. 5, 2.5s, 500ms, 1m); with --count,\n"
    "                       fewer than N messages by then is exit code 4\n"
    "      --raw            write each payload's MessagePack bytes instead\n" CLI_COMMON_HELP;

struct sub_args {
    struct cli_common common;
    const char *pattern;
    const char *queue;
    uint64_t count;  /* 0: no limit */
    long timeout_ms; /* -1: none */
    bool raw;
};

static int sub_parse(int argc, char **argv, struct sub_args *a)
{
    static const struct option longopts[] = {
        {"queue", required_argument, NULL, 'Q'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"raw", no_argument, NULL, 'W'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int ch, rc;

    cli_common_init(&a->common);
    a->timeout_ms = -1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "n:t:", longopts, NULL)) != -1) {
        if (cli_common_option(ch, optarg, &a->common))
            continue;
        switch (ch) {
        case 'Q':
            a->queue = optarg;
            break;
        case 'W':
            a->raw = true;
            break;
        case 'n':
            if (cli_parse_count(optarg, &a->count) < 0 || a->count == 0)
                return cli_usage_error("sub", "--count takes a positive number, not '%s'", optarg);
            break;
        case 't':
            if ((a->timeout_ms = cli_parse_duration(optarg)) < 0)
                return cli_usage_error("sub", "--timeout takes a duration, not '%s'", optarg);
            break;
        case 'h':
            fputs(sub_help, stdout);
            return -1;
        default:
            return cli_usage_error("sub", "bad option");
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("sub", argc - optind < 1 ? "missing PATTERN" : "too many arguments");
    a->pattern = argv[optind];
    if ((rc = cli_check_topic("sub", a->pattern, true)) != CLI_OK)
        return rc;
    if (a->queue != NULL && (rc = cli_check_topic("sub", a->queue, false)) != CLI_OK)
        return rc;
    return CLI_OK;
}

/* Appends the headers of M as a JSON object. */
static int sub_add_headers(struct strbuf *sb, const pigeon_msg *m)
{
    if (strbuf_add(sb, ",\"headers\":{", 12) < 0)
        return -1;
    for (size_t i = 0; i < pigeon_msg_header_count(m); i++) {
        const char *k, *v;
        size_t kl, vl;
        pigeon_msg_header_at(m, i, &k, &kl, &v, &vl);
        if ((i > 0 && strbuf_add(sb, ",", 1) < 0) || json_add_string(sb, k, kl) < 0 ||
            strbuf_add(sb, ":", 1) < 0 || json_add_string(sb, v, vl) < 0)
            return -1;
    }
    return strbuf_add(sb, "}", 1);
}

/* Builds M's JSON line into SB. */
static int sub_format(struct strbuf *sb, const pigeon_msg *m)
{
    size_t tlen, plen;
    const char *topic = pigeon_msg_topic(m, &tlen);
    const void *payload = pigeon_msg_data(m, &plen);
    const char *reply_to = pigeon_msg_reply_to(m);

    if (strbuf_add(sb, "{\"topic\":", 9) < 0 || json_add_string(sb, topic, tlen) < 0 ||
        strbuf_add(sb, ",\"payload\":", 11) < 0 || json_from_msgpack(payload, plen, sb) < 0)
        return -1;
    if (reply_to != NULL && (strbuf_add(sb, ",\"reply_to\":", 12) < 0 ||
                             json_add_string(sb, reply_to, strlen(reply_to)) < 0))
        return -1;
    if (pigeon_msg_header_count(m) > 0 && sub_add_headers(sb, m) < 0)
        return -1;
    if (pigeon_msg_retained(m) && strbuf_add(sb, ",\"retained\":true", 16) < 0)
        return -1;
    return strbuf_add(sb, "}\n", 2);
}

static int sub_print(const pigeon_msg *m, bool raw)
{
    struct strbuf sb;
    size_t plen;
    const void *payload = pigeon_msg_data(m, &plen);

    if (raw)
        return fwrite(payload, 1, plen, stdout) == plen ? CLI_OK : CLI_OTHER;
    strbuf_init(&sb);
    int rc = sub_format(&sb, m) < 0                         ? CLI_OTHER
             : fwrite(sb.data, 1, sb.len, stdout) == sb.len ? CLI_OK
                                                            : CLI_OTHER;
    strbuf_free(&sb);
    return rc;
}

/* The time left before the deadline, for pigeon_sync_next (-1: none). */
static int sub_wait_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - clock_now_ms();
    return left > 0 ? (int)(left > 86400000 ? 86400000 : left) : 0;
}

static int sub_loop(struct cli_conn *cc, const struct sub_args *a)
{
    int64_t deadline = a->timeout_ms >= 0 ? clock_now_ms() + a->timeout_ms : -1;
    uint64_t got = 0;
    pigeon_msg *m;

    while (a->count == 0 || got < a->count) {
        int err = pigeon_sync_next(cc->s, 0, &m);
        if (err == PIGEON_ETIMEDOUT) {
            if (fflush(stdout) != 0)
                return CLI_OTHER;
            int wait = sub_wait_ms(deadline);
            err = wait == 0 ? PIGEON_ETIMEDOUT : pigeon_sync_next(cc->s, wait, &m);
        }
        if (err == PIGEON_ETIMEDOUT)
            return a->count > 0 ? CLI_TIMEOUT : CLI_OK;
        if (err != PIGEON_OK)
            return cli_fail(err, pigeon_errmsg(pigeon_sync_client(cc->s)), "receive");
        int rc = sub_print(m, a->raw);
        pigeon_msg_free(m);
        if (rc != CLI_OK) {
            cli_warn("write to stdout failed");
            return rc;
        }
        got++;
    }
    return CLI_OK;
}

int cmd_sub(int argc, char **argv)
{
    struct sub_args a;
    struct cli_conn *cc;

    memset(&a, 0, sizeof(a));
    int rc = sub_parse(argc, argv, &a);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if ((rc = cli_connect(&a.common, true, &cc)) != CLI_OK)
        return rc;
    int err = pigeon_sync_subscribe(cc->s, a.pattern, a.queue, 0, NULL);
    if (err != PIGEON_OK) {
        rc = cli_fail(err, pigeon_errmsg(pigeon_sync_client(cc->s)), "subscribe");
    } else {
        if (!a.common.quiet)
            cli_warn("subscribed to '%s'%s%s", a.pattern, a.queue ? " in queue group " : "",
                     a.queue ? a.queue : "");
        rc = sub_loop(cc, &a);
    }
    if (fflush(stdout) != 0 && rc == CLI_OK)
        rc = CLI_OTHER;
    cli_close(cc);
    return rc;
}
