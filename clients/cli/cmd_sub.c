/*
 * cmd_sub.c - `pigeon sub PATTERN`: print messages as JSON lines, or as a
 * template says (subfmt.h).
 *
 * By default one line per message: {"topic": ..., "payload": ...} plus
 * reply_to, headers and retained when the message has them.  Output is
 * flushed whenever no further message is waiting, so a pipe sees each line
 * at once without a write per line under load.  The client reconnects and
 * subscribes again if the broker goes away.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "subfmt.h"

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
    "  -v, --verbose        print the topic, a space and the payload's JSON\n"
    "  -F, --format FMT     print the template FMT for each message, with its\n"
    "                       fields expanded: {topic} {payload} {time} {sid}\n"
    "                       {headers} {reply_to} {retained}; {{ and }} are\n"
    "                       braces; \\n \\t \\\\ a line end, a tab, a backslash\n"
    "      --pretty         indent the JSON: the whole line, or the payload\n"
    "                       and headers of -v and --format\n"
    "      --raw            write each payload's MessagePack bytes instead\n" CLI_COMMON_HELP;

struct sub_args {
    struct cli_common common;
    const char *pattern;
    const char *queue;
    uint64_t count;       /* 0: no limit */
    long timeout_ms;      /* -1: none */
    const char *template; /* -v or --format; NULL: the JSON line */
    bool verbose;
    bool pretty;
    bool raw;
    struct subfmt fmt; /* compiled from the above; owned */
};

/* Checks the output options together, and compiles the template. */
static int sub_output(struct sub_args *a)
{
    char err[192];

    if (a->verbose && a->template != NULL)
        return cli_usage_error("sub", "-v and --format do not go together");
    if (a->raw && (a->verbose || a->template != NULL || a->pretty))
        return cli_usage_error("sub", "--raw writes bytes: no -v, --format or --pretty");
    if (a->verbose)
        a->template = SUBFMT_VERBOSE;
    if (subfmt_compile(&a->fmt, a->template, a->pretty, err, sizeof(err)) < 0)
        return cli_usage_error("sub", "--format '%s': %s", a->template, err);
    return CLI_OK;
}

static int sub_parse(int argc, char **argv, struct sub_args *a)
{
    static const struct option longopts[] = {
        {"queue", required_argument, NULL, 'Q'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"raw", no_argument, NULL, 'W'},
        {"verbose", no_argument, NULL, 'v'},
        {"format", required_argument, NULL, 'F'},
        {"pretty", no_argument, NULL, 'P'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int ch, rc;

    cli_common_init(&a->common);
    a->timeout_ms = -1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "n:t:vF:", longopts, NULL)) != -1) {
        if (cli_common_option(ch, optarg, &a->common))
            continue;
        switch (ch) {
        case 'Q':
            a->queue = optarg;
            break;
        case 'W':
            a->raw = true;
            break;
        case 'v':
            a->verbose = true;
            break;
        case 'F':
            a->template = optarg;
            break;
        case 'P':
            a->pretty = true;
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
    return sub_output(a);
}

static int sub_print(const struct sub_args *a, const pigeon_msg *m)
{
    struct strbuf sb;
    size_t plen;
    const void *payload = pigeon_msg_data(m, &plen);

    if (a->raw)
        return fwrite(payload, 1, plen, stdout) == plen ? CLI_OK : CLI_OTHER;
    strbuf_init(&sb);
    int rc = subfmt_render(&a->fmt, m, &sb) < 0             ? CLI_OTHER
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
        int rc = sub_print(a, m);
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
    if (rc == CLI_OK)
        rc = cli_connect("sub", &a.common, true, &cc);
    if (rc != CLI_OK) {
        subfmt_free(&a.fmt);
        return rc < 0 ? CLI_OK : rc;
    }
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
    subfmt_free(&a.fmt);
    return rc;
}
