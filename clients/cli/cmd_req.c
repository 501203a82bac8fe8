/*
 * cmd_req.c - `pigeon req TOPIC [DATA]`: send a request, print the reply.
 *
 * An error reply (errreply.h), which `pigeon reply` sends when its command
 * fails, goes to stderr with exit code 7 instead of stdout.
 */
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "cli.h"
#include "errreply.h"
#include "json.h"
#include "mpread.h"

#define REQ_DEFAULT_TIMEOUT_MS 5000

static const char req_help[] =
    "usage: pigeon req [options] TOPIC [DATA]\n"
    "\n"
    "Sends DATA (JSON, as for pub; '-' reads one document from stdin; none is\n"
    "null) to TOPIC as a request and prints the reply's payload as one line of\n"
    "JSON.  Exit code 4 when no reply came in time, 5 when nobody subscribes\n"
    "to TOPIC, 7 when the reply is an error reply ({\"error\": ...}, as pigeon\n"
    "reply sends when its command fails), which goes to stderr.\n"
    "\n"
    "options:\n"
    "  -t, --timeout T      how long to wait (default 5s; e.g. 2, 500ms, 1m)\n"
    "      --raw            write the reply's MessagePack bytes instead\n" CLI_COMMON_HELP;

struct req_args {
    struct cli_common common;
    const char *topic;
    const char *data;
    long timeout_ms;
    bool raw;
};

static int req_parse(int argc, char **argv, struct req_args *a)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"raw", no_argument, NULL, 'W'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int ch;

    cli_common_init(&a->common);
    a->timeout_ms = REQ_DEFAULT_TIMEOUT_MS;
    optind = 1;
    while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "t:", longopts, NULL)) != -1) {
        if (cli_common_option(ch, optarg, &a->common))
            continue;
        switch (ch) {
        case 'W':
            a->raw = true;
            break;
        case 't':
            a->timeout_ms = cli_parse_duration(optarg);
            if (a->timeout_ms <= 0 || a->timeout_ms > 86400000)
                return cli_usage_error("req", "--timeout takes a duration, not '%s'", optarg);
            break;
        case 'h':
            fputs(req_help, stdout);
            return -1;
        default:
            return cli_usage_error("req", "bad option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("req", "missing TOPIC");
    if (argc - optind > 2)
        return cli_usage_error("req", "too many arguments (quote DATA as one argument)");
    a->topic = argv[optind];
    a->data = argc - optind == 2 ? argv[optind + 1] : "null";
    return cli_check_topic("req", a->topic, false);
}

static int req_payload(const struct req_args *a, msgpack_sbuffer *sb)
{
    uint8_t *text = NULL;
    size_t len = 0;

    if (strcmp(a->data, "-") != 0)
        return cli_json_payload("req", a->data, strlen(a->data), sb);
    int rc = cli_read_file("-", &text, &len);
    if (rc != CLI_OK)
        return rc;
    rc = cli_json_payload("req", (const char *)text, len, sb);
    free(text);
    return rc;
}

/* Prints the error reply whose value is VALUE[0..LEN) on stderr; CLI_ERROR_REPLY. */
static int req_error_reply(const struct req_args *a, const void *value, size_t len)
{
    struct mpread r;
    const char *text;
    uint32_t tlen;
    struct strbuf sb;

    mpread_init(&r, value, len);
    if (mpread_str(&r, &text, &tlen)) {
        cli_warn("error reply from '%s': %.*s", a->topic, (int)tlen, text);
        return CLI_ERROR_REPLY;
    }
    strbuf_init(&sb);
    if (json_from_msgpack(value, len, &sb) < 0)
        cli_warn("error reply from '%s'", a->topic);
    else
        cli_warn("error reply from '%s': %.*s", a->topic, (int)sb.len, sb.data);
    strbuf_free(&sb);
    return CLI_ERROR_REPLY;
}

/* Prints the reply M: its payload on stdout, or an error reply on stderr. */
static int req_print(const struct req_args *a, const pigeon_msg *m)
{
    size_t len, vlen;
    const void *data = pigeon_msg_data(m, &len), *value;

    if (errreply_find(data, len, &value, &vlen))
        return req_error_reply(a, value, vlen);
    return cli_print_payload(data, len, a->raw);
}

int cmd_req(int argc, char **argv)
{
    struct req_args a;
    struct cli_conn *cc;
    msgpack_sbuffer sb;
    pigeon_msg *reply;

    memset(&a, 0, sizeof(a));
    int rc = req_parse(argc, argv, &a);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    msgpack_sbuffer_init(&sb);
    rc = req_payload(&a, &sb);
    if (rc == CLI_OK)
        rc = cli_connect("req", &a.common, false, &cc);
    if (rc != CLI_OK) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    int err = pigeon_sync_request(cc->s, a.topic, sb.data, sb.size, (int)a.timeout_ms, &reply);
    msgpack_sbuffer_destroy(&sb);
    if (err == PIGEON_OK) {
        rc = req_print(&a, reply);
        pigeon_msg_free(reply);
    } else if (err == PIGEON_ETIMEDOUT) {
        cli_warn("no reply from '%s' within %ld ms", a.topic, a.timeout_ms);
        rc = CLI_TIMEOUT;
    } else if (err == PIGEON_ENORESPONDERS) {
        cli_warn("no responders: nobody subscribes to '%s'", a.topic);
        rc = CLI_NO_RESPONDERS;
    } else {
        rc = cli_fail(err, pigeon_errmsg(pigeon_sync_client(cc->s)), "request");
    }
    cli_close(cc);
    if (fflush(stdout) != 0 && rc == CLI_OK)
        rc = CLI_OTHER;
    return rc;
}
