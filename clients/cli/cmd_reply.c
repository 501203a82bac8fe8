/*
 * cmd_reply.c - `pigeon reply TOPIC CMD...`: answer requests with a command.
 *
 * For each request on TOPIC, CMD runs with the request's payload as one
 * line of JSON on its stdin; its whole stdout, parsed as JSON, is the
 * answer.  Requests are handled one at a time, in order.  A command that
 * fails (non-zero exit) or prints something that is not JSON gets a warning
 * on stderr, and the requester gets an error reply (errreply.h) at once
 * rather than waiting out its timeout; use a queue group to run several
 * responders side by side.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "cli.h"
#include "errreply.h"
#include "json.h"
#include "proc.h"

static const char reply_help[] =
    "usage: pigeon reply [options] TOPIC CMD [ARG...]\n"
    "\n"
    "Answers requests on TOPIC (a pattern: '*' and '>' allowed).  For each\n"
    "request, runs CMD with the request's payload as one line of JSON on its\n"
    "stdin and answers with its stdout, parsed as JSON.  CMD sees the request's\n"
    "topic and reply_to in $PIGEON_TOPIC and $PIGEON_REPLY_TO.  When CMD exits\n"
    "non-zero or prints something that is not JSON, the requester gets the\n"
    "error reply {\"error\": \"<what went wrong>\"} (a warning goes to stderr) and\n"
    "the next request is handled.  Options go before CMD: from CMD on, every\n"
    "argument is CMD's ('--' also ends options).\n"
    "\n"
    "options:\n"
    "      --queue GROUP    join a queue group, to share requests with other responders\n"
    "  -n, --count N        exit after handling N requests\n" CLI_COMMON_HELP;

struct reply_args {
    struct cli_common common;
    const char *topic;
    const char *queue;
    uint64_t count;
    char **cmd;
};

/* Parses options from ARGV[1] up to the first operand (or "--"). */
static int reply_options(int argc, char **argv, struct reply_args *a)
{
    static const struct option longopts[] = {
        {"queue", required_argument, NULL, 'Q'},
        {"count", required_argument, NULL, 'n'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int ch;

    /* '+': stop at the first operand, so that CMD's own options stay CMD's. */
    while ((ch = getopt_long(argc, argv, "+" CLI_COMMON_SHORTOPTS "n:", longopts, NULL)) != -1) {
        if (cli_common_option(ch, optarg, &a->common))
            continue;
        switch (ch) {
        case 'Q':
            a->queue = optarg;
            break;
        case 'n':
            if (cli_parse_count(optarg, &a->count) < 0 || a->count == 0)
                return cli_usage_error("reply", "--count takes a positive number, not '%s'",
                                       optarg);
            break;
        case 'h':
            fputs(reply_help, stdout);
            return -1;
        default:
            return cli_usage_error("reply", "bad option");
        }
    }
    return CLI_OK;
}

/* Options may come before and after TOPIC; CMD starts at the next operand. */
static int reply_parse(int argc, char **argv, struct reply_args *a)
{
    int rc;

    cli_common_init(&a->common);
    optind = 0;
    if ((rc = reply_options(argc, argv, a)) != CLI_OK)
        return rc;
    if (optind >= argc)
        return cli_usage_error("reply", "missing TOPIC");
    a->topic = argv[optind];
    int rest_argc = argc - optind;
    char **rest = argv + optind; /* rest[0], TOPIC, stands for the program name */
    optind = 0;
    if ((rc = reply_options(rest_argc, rest, a)) != CLI_OK)
        return rc;
    if (optind >= rest_argc)
        return cli_usage_error("reply", "missing CMD");
    a->cmd = rest + optind;
    if ((rc = cli_check_topic("reply", a->topic, true)) != CLI_OK)
        return rc;
    if (a->queue != NULL && (rc = cli_check_topic("reply", a->queue, false)) != CLI_OK)
        return rc;
    return CLI_OK;
}

/* Sends the answer PAYLOAD[0..LEN) to M's reply_to; warns when it cannot. */
static void reply_send(struct cli_conn *cc, const pigeon_msg *m, const void *payload, size_t len)
{
    int rc = pigeon_sync_reply(cc->s, m, payload, len);
    if (rc != PIGEON_OK)
        cli_warn("answer: %s (%s)", pigeon_strerror(rc), pigeon_errmsg(pigeon_sync_client(cc->s)));
}

/*
 * The request M could not be answered, for WHY (printf-style): a warning
 * here, and the error reply to the requester, so that it need not wait for
 * its timeout.
 */
__attribute__((format(printf, 3, 4))) static void
reply_fail(struct cli_conn *cc, const pigeon_msg *m, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    msgpack_sbuffer sb;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    cli_warn("%s: error reply sent", why);
    msgpack_sbuffer_init(&sb);
    if (errreply_pack(&sb, why, strlen(why)) == 0)
        reply_send(cc, m, sb.data, sb.size);
    else
        cli_warn("out of memory for the error reply");
    msgpack_sbuffer_destroy(&sb);
}

/* Runs the command on the request IN (its JSON line) and answers M. */
static void reply_run(struct cli_conn *cc, const struct reply_args *a, const pigeon_msg *m,
                      const struct strbuf *in)
{
    struct strbuf out;
    msgpack_sbuffer sb;
    char err[256];
    struct proc_env env[2] = {{"PIGEON_TOPIC", pigeon_msg_topic(m, NULL)},
                              {"PIGEON_REPLY_TO", pigeon_msg_reply_to(m)}};

    strbuf_init(&out);
    msgpack_sbuffer_init(&sb);
    int status = proc_run(a->cmd, env, 2, in->data, in->len, &out);
    if (status < 0 || status == 127)
        reply_fail(cc, m, "command '%s' could not be run", a->cmd[0]);
    else if (status != 0)
        reply_fail(cc, m, "command '%s' exited with status %d", a->cmd[0], status);
    else if (json_to_msgpack(out.data ? out.data : "", out.len, &sb, err, sizeof(err)) < 0)
        reply_fail(cc, m, "command '%s' printed no JSON (%s)", a->cmd[0], err);
    else
        reply_send(cc, m, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    strbuf_free(&out);
}

/* Answers request M. Warnings only: never fatal. */
static void reply_handle(struct cli_conn *cc, const struct reply_args *a, const pigeon_msg *m)
{
    struct strbuf in;
    size_t plen;
    const void *payload = pigeon_msg_data(m, &plen);

    if (pigeon_msg_reply_to(m) == NULL) {
        cli_warn("a message on '%s' has no reply_to: ignored", pigeon_msg_topic(m, NULL));
        return;
    }
    strbuf_init(&in);
    if (json_from_msgpack(payload, plen, &in) < 0 || strbuf_add(&in, "\n", 1) < 0)
        reply_fail(cc, m, "the request cannot be shown as JSON");
    else
        reply_run(cc, a, m, &in);
    strbuf_free(&in);
}

int cmd_reply(int argc, char **argv)
{
    struct reply_args a;
    struct cli_conn *cc;
    pigeon_msg *m;

    memset(&a, 0, sizeof(a));
    int rc = reply_parse(argc, argv, &a);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    /* A command that exits without reading its input must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if ((rc = cli_connect("reply", &a.common, true, &cc)) != CLI_OK)
        return rc;
    int err = pigeon_sync_subscribe(cc->s, a.topic, a.queue, 0, NULL);
    if (err != PIGEON_OK) {
        rc = cli_fail(err, pigeon_errmsg(pigeon_sync_client(cc->s)), "subscribe");
        cli_close(cc);
        return rc;
    }
    if (!a.common.quiet)
        cli_warn("answering requests on '%s'", a.topic);
    for (uint64_t n = 0; a.count == 0 || n < a.count; n++) {
        err = pigeon_sync_next(cc->s, -1, &m);
        if (err != PIGEON_OK) {
            rc = cli_fail(err, pigeon_errmsg(pigeon_sync_client(cc->s)), "receive");
            break;
        }
        reply_handle(cc, &a, m);
        pigeon_msg_free(m);
    }
    cli_close(cc);
    return rc;
}
