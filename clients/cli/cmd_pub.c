/*
 * cmd_pub.c - `pigeon pub TOPIC [DATA]`: publish JSON (or raw MessagePack).
 *
 * Messages go out fire-and-forget, then one ping waits until the broker has
 * handled them all, so that a refusal (an `error` notification) is seen and
 * turned into exit code 3 before the command exits.  --confirm publishes
 * each as a request instead and prints the broker's delivery count.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "cli.h"
#include "json.h"
#include "mpread.h"

#define PUB_MAX_HEADERS 64

static const char pub_help[] =
    "usage: pigeon pub [options] TOPIC [DATA]\n"
    "\n"
    "Publishes DATA, a JSON document, to TOPIC as MessagePack.  DATA '-' reads\n"
    "stdin, one JSON document per line (blank lines are skipped); no DATA\n"
    "publishes null.  Binary and other values JSON cannot show are written as\n"
    "{\"$bin\": \"<base64>\"}, {\"$ext\": [type, \"<base64>\"]}, ... (see docs/cli.md).\n"
    "A DATA that starts with '-' (a negative number) goes after '--'.\n"
    "\n"
    "options:\n"
    "      --retain         keep it as the topic's retained value (null clears it)\n"
    "  -H, --header K=V     attach a header (repeatable)\n"
    "      --reply-to T     set reply_to\n"
    "      --confirm        wait for each message's delivery count, print it\n"
    "      --raw            stdin holds MessagePack objects back to back (DATA "
    "'-')\n" CLI_COMMON_HELP;

struct pub_args {
    struct cli_common common;
    const char *topic;
    const char *data; /* NULL: null */
    struct pigeon_pub_opts opts;
    struct pigeon_header headers[PUB_MAX_HEADERS];
    char *header_copies[PUB_MAX_HEADERS];
    bool confirm;
    bool raw;
};

static void pub_args_free(struct pub_args *a)
{
    for (size_t i = 0; i < a->opts.n_headers; i++)
        free(a->header_copies[i]);
}

/* Adds "K=V" as a header. */
static int pub_add_header(struct pub_args *a, const char *kv)
{
    const char *eq = strchr(kv, '=');

    if (eq == NULL || eq == kv)
        return cli_usage_error("pub", "--header takes KEY=VALUE, not '%s'", kv);
    if (a->opts.n_headers == PUB_MAX_HEADERS)
        return cli_usage_error("pub", "at most %d headers", PUB_MAX_HEADERS);
    char *copy = strdup(kv);
    if (copy == NULL)
        return cli_fail(PIGEON_ENOMEM, NULL, "pub");
    copy[eq - kv] = '\0';
    a->header_copies[a->opts.n_headers] = copy;
    a->headers[a->opts.n_headers].key = copy;
    a->headers[a->opts.n_headers].value = copy + (eq - kv) + 1;
    a->opts.n_headers++;
    a->opts.headers = a->headers;
    return CLI_OK;
}

static int pub_parse(int argc, char **argv, struct pub_args *a)
{
    static const struct option longopts[] = {
        {"retain", no_argument, NULL, 'R'},
        {"header", required_argument, NULL, 'H'},
        {"reply-to", required_argument, NULL, 'r'},
        {"confirm", no_argument, NULL, 'C'},
        {"raw", no_argument, NULL, 'W'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int ch, rc;

    cli_common_init(&a->common);
    optind = 1;
    while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "H:", longopts, NULL)) != -1) {
        if (cli_common_option(ch, optarg, &a->common))
            continue;
        switch (ch) {
        case 'R':
            a->opts.retain = 1;
            break;
        case 'r':
            a->opts.reply_to = optarg;
            break;
        case 'C':
            a->confirm = true;
            break;
        case 'W':
            a->raw = true;
            break;
        case 'H':
            if ((rc = pub_add_header(a, optarg)) != CLI_OK)
                return rc;
            break;
        case 'h':
            fputs(pub_help, stdout);
            return -1;
        default:
            return cli_usage_error("pub", "bad option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("pub", "missing TOPIC");
    if (argc - optind > 2)
        return cli_usage_error("pub", "too many arguments (quote DATA as one argument)");
    a->topic = argv[optind];
    a->data = argc - optind == 2 ? argv[optind + 1] : NULL;
    if (a->raw && (a->data == NULL || strcmp(a->data, "-") != 0))
        return cli_usage_error("pub", "--raw reads stdin: give DATA as '-'");
    if ((rc = cli_check_topic("pub", a->topic, false)) != CLI_OK)
        return rc;
    if (a->opts.reply_to != NULL &&
        (rc = cli_check_topic("pub", a->opts.reply_to, false)) != CLI_OK)
        return rc;
    return CLI_OK;
}

/* Publishes one MessagePack object. */
static int pub_one(struct cli_conn *cc, const struct pub_args *a, const void *data, size_t len)
{
    int err;

    if (a->confirm) {
        uint64_t delivered = 0;
        err = pigeon_sync_publish_confirm(cc->s, a->topic, data, len, &a->opts, 0, &delivered);
        if (err == PIGEON_OK)
            printf("%llu\n", (unsigned long long)delivered);
    } else {
        err = pigeon_sync_publish(cc->s, a->topic, data, len, &a->opts);
    }
    if (err != PIGEON_OK)
        return cli_fail(err, pigeon_errmsg(pigeon_sync_client(cc->s)), "publish");
    return CLI_OK;
}

static int pub_json(struct cli_conn *cc, const struct pub_args *a, const char *json, size_t n)
{
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    int rc = cli_json_payload("pub", json, n, &sb);
    if (rc == CLI_OK)
        rc = pub_one(cc, a, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/*
 * One JSON document per line of stdin.  A line that is not valid stops the
 * run with its stdin line number; the lines before it are published.
 */
static int pub_lines(struct cli_conn *cc, const struct pub_args *a)
{
    char *line = NULL, err[256];
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = CLI_OK;
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    while (rc == CLI_OK && (n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (strspn(line, " \t") == (size_t)n)
            continue;
        msgpack_sbuffer_clear(&sb);
        if (json_line_to_msgpack(line, (size_t)n, &sb, err, sizeof(err)) < 0) {
            fprintf(stderr, "pigeon pub: stdin line %zu: %s\n", lineno, err);
            rc = CLI_USAGE;
        } else {
            rc = pub_one(cc, a, sb.data, sb.size);
        }
    }
    msgpack_sbuffer_destroy(&sb);
    if (rc == CLI_OK && ferror(stdin))
        rc = (cli_warn("read stdin: %s", strerror(errno)), CLI_OTHER);
    free(line);
    return rc;
}

/* MessagePack objects back to back on stdin. */
static int pub_raw(struct cli_conn *cc, const struct pub_args *a)
{
    uint8_t *buf;
    size_t len;
    int rc = cli_read_stdin(&buf, &len);

    if (rc != CLI_OK)
        return rc;
    struct mpread r;
    mpread_init(&r, buf, len);
    while (rc == CLI_OK && mpread_left(&r) > 0) {
        const uint8_t *start = r.p;
        if (!mpread_skip(&r)) {
            rc = cli_usage_error("pub", "stdin is not MessagePack objects back to back");
            break;
        }
        rc = pub_one(cc, a, start, (size_t)(r.p - start));
    }
    free(buf);
    return rc;
}

int cmd_pub(int argc, char **argv)
{
    struct pub_args a;
    struct cli_conn *cc;

    memset(&a, 0, sizeof(a));
    int rc = pub_parse(argc, argv, &a);
    if (rc != CLI_OK) {
        pub_args_free(&a);
        return rc < 0 ? CLI_OK : rc;
    }
    rc = cli_connect(&a.common, false, &cc);
    if (rc != CLI_OK) {
        pub_args_free(&a);
        return rc;
    }
    if (a.raw)
        rc = pub_raw(cc, &a);
    else if (a.data != NULL && strcmp(a.data, "-") == 0)
        rc = pub_lines(cc, &a);
    else
        rc = pub_json(cc, &a, a.data ? a.data : "null", strlen(a.data ? a.data : "null"));
    if (rc == CLI_OK) {
        int err = pigeon_sync_flush(cc->s, 0);
        if (err != PIGEON_OK)
            rc = cli_fail(err, pigeon_errmsg(pigeon_sync_client(cc->s)), "publish");
    }
    if (rc == CLI_OK && cc->async_err != 0)
        rc = cli_fail(cc->async_err, cc->async_msg, "publish refused");
    cli_close(cc);
    pub_args_free(&a);
    if (fflush(stdout) != 0 && rc == CLI_OK)
        rc = CLI_OTHER;
    return rc;
}
