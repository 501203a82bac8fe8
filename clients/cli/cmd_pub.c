/*
 * cmd_pub.c - `pigeon pub TOPIC [DATA]`: publish JSON, text, bytes, or raw
 * MessagePack.
 *
 * Where the payloads come from (one source per run):
 *
 *   DATA            one message: a JSON document (--text: a string)
 *   DATA '-'        one message per line of stdin (blank lines skipped)
 *   --file FILE     one message: the whole file, one JSON document of any
 *                   layout (--text: a string; --raw: MessagePack objects)
 *   --binary FILE   one message: the file's bytes as a MessagePack binary
 *   --raw, '-'      stdin holds MessagePack objects back to back
 *
 * FILE '-' is stdin.  Messages go out fire-and-forget, then one ping waits
 * until the broker has handled them all, so that a refusal (an `error`
 * notification) is seen and turned into exit code 3 before the command
 * exits.  --confirm publishes each as a request instead and prints the
 * broker's delivery count.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "cli.h"
#include "json.h"
#include "mpread.h"
#include "utf8.h"

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
    "  -f, --file FILE      publish the content of FILE ('-': stdin) instead of\n"
    "                       DATA: one JSON document of any layout\n"
    "      --text           DATA, each stdin line, or FILE is a plain string,\n"
    "                       sent as a MessagePack string without JSON quoting\n"
    "      --binary FILE    publish the bytes of FILE ('-': stdin) as a\n"
    "                       MessagePack binary (no DATA)\n"
    "      --raw            stdin (DATA '-') or FILE holds MessagePack objects\n"
    "                       back to back, each published as it is\n"
    "      --retain         keep it as the topic's retained value (null clears it)\n"
    "  -H, --header K=V     attach a header (repeatable)\n"
    "      --reply-to T     set reply_to\n"
    "      --confirm        wait for each message's delivery count, print it\n" CLI_COMMON_HELP;

struct pub_args {
    struct cli_common common;
    const char *topic;
    const char *data;   /* NULL: null (or --file, --binary) */
    const char *file;   /* --file, or NULL */
    const char *binary; /* --binary, or NULL */
    struct pigeon_pub_opts opts;
    struct pigeon_header headers[PUB_MAX_HEADERS];
    char *header_copies[PUB_MAX_HEADERS];
    bool confirm;
    bool raw;
    bool text;
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

/* Checks that the sources and modes given go together. */
static int pub_check_sources(const struct pub_args *a)
{
    bool lines = a->data != NULL && strcmp(a->data, "-") == 0;

    if (a->binary != NULL && (a->data != NULL || a->file != NULL || a->text || a->raw))
        return cli_usage_error("pub", "--binary FILE is the payload: no DATA, --file, --text "
                                      "or --raw with it");
    if (a->file != NULL && a->data != NULL)
        return cli_usage_error("pub", "give DATA or --file, not both");
    if (a->raw && a->text)
        return cli_usage_error("pub", "--raw and --text do not go together");
    if (a->raw && !lines && a->file == NULL)
        return cli_usage_error("pub", "--raw reads stdin or a file: give DATA as '-', or --file");
    if (a->text && a->data == NULL && a->file == NULL)
        return cli_usage_error("pub", "--text needs DATA, '-' or --file");
    return CLI_OK;
}

static int pub_parse(int argc, char **argv, struct pub_args *a)
{
    static const struct option longopts[] = {
        {"file", required_argument, NULL, 'f'},
        {"text", no_argument, NULL, 'T'},
        {"binary", required_argument, NULL, 'B'},
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
    while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "H:f:", longopts, NULL)) != -1) {
        if (cli_common_option(ch, optarg, &a->common))
            continue;
        switch (ch) {
        case 'f':
            a->file = optarg;
            break;
        case 'T':
            a->text = true;
            break;
        case 'B':
            a->binary = optarg;
            break;
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
    if ((rc = pub_check_sources(a)) != CLI_OK)
        return rc;
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

/*
 * Converts one payload's TEXT[0..LEN) into SB: a JSON document, or with
 * --text a string.  WHERE names it in messages ("stdin line 3", a file
 * name; NULL for DATA).  CLI_OK, or CLI_USAGE after printing why.
 */
static int pub_convert(const struct pub_args *a, const char *where, const char *text, size_t len,
                       msgpack_sbuffer *sb)
{
    char err[256];
    msgpack_packer pk;

    if (a->text) {
        if (!utf8_valid(text, len)) {
            fprintf(stderr, "pigeon pub: %s%sthe text is not UTF-8 (--binary sends bytes)\n",
                    where ? where : "", where ? ": " : "");
            return CLI_USAGE;
        }
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        if (msgpack_pack_str_with_body(&pk, text, len) < 0)
            return cli_fail(PIGEON_ENOMEM, NULL, "pub");
        return CLI_OK;
    }
    if (where == NULL)
        return cli_json_payload("pub", text, len, sb);
    if (json_to_msgpack(text, len, sb, err, sizeof(err)) < 0) {
        fprintf(stderr, "pigeon pub: %s: %s\n", where, err);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* One payload given as text: DATA, or a whole file (WHERE, as pub_convert). */
static int pub_text(struct cli_conn *cc, const struct pub_args *a, const char *where,
                    const char *text, size_t n)
{
    msgpack_sbuffer sb;

    msgpack_sbuffer_init(&sb);
    int rc = pub_convert(a, where, text, n, &sb);
    if (rc == CLI_OK)
        rc = pub_one(cc, a, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/*
 * One payload per line of stdin: a JSON document (a string with --text).
 * A line that is not valid stops the run with its stdin line number; the
 * lines before it are published.
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
        snprintf(err, sizeof(err), "stdin line %zu", lineno);
        if (a->text)
            rc = pub_convert(a, err, line, (size_t)n, &sb);
        else if (json_line_to_msgpack(line, (size_t)n, &sb, err, sizeof(err)) < 0)
            rc = (fprintf(stderr, "pigeon pub: stdin line %zu: %s\n", lineno, err), CLI_USAGE);
        if (rc == CLI_OK)
            rc = pub_one(cc, a, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    if (rc == CLI_OK && ferror(stdin))
        rc = (cli_warn("read stdin: %s", strerror(errno)), CLI_OTHER);
    free(line);
    return rc;
}

/* MessagePack objects back to back in BUF[0..LEN), from WHERE. */
static int pub_raw(struct cli_conn *cc, const struct pub_args *a, const char *where,
                   const uint8_t *buf, size_t len)
{
    struct mpread r;
    int rc = CLI_OK;

    mpread_init(&r, buf, len);
    while (rc == CLI_OK && mpread_left(&r) > 0) {
        const uint8_t *start = r.p;
        if (!mpread_skip(&r))
            return cli_usage_error("pub", "%s is not MessagePack objects back to back", where);
        rc = pub_one(cc, a, start, (size_t)(r.p - start));
    }
    return rc;
}

/* The bytes BUF[0..LEN) as one MessagePack binary. */
static int pub_bin(struct cli_conn *cc, const struct pub_args *a, const uint8_t *buf, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rc;

    if (len > UINT32_MAX)
        return cli_usage_error("pub", "%s is over 4 GiB, the most a MessagePack binary holds",
                               a->binary);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_bin_with_body(&pk, buf, len) < 0)
        rc = cli_fail(PIGEON_ENOMEM, NULL, "pub");
    else
        rc = pub_one(cc, a, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* A whole file (--file, --binary, or stdin for --raw '-'), read before connecting. */
struct pub_input {
    const char *path; /* NULL: no file to read */
    const char *name; /* for messages: the path, or "stdin" */
    uint8_t *buf;     /* owned */
    size_t len;
};

static int pub_input_read(const struct pub_args *a, struct pub_input *in)
{
    memset(in, 0, sizeof(*in));
    in->path = a->binary != NULL ? a->binary : a->file != NULL ? a->file : a->raw ? "-" : NULL;
    if (in->path == NULL)
        return CLI_OK;
    in->name = strcmp(in->path, "-") == 0 ? "stdin" : in->path;
    return cli_read_file(in->path, &in->buf, &in->len);
}

/* Publishes what A asks for, from IN when it is a file. */
static int pub_run(struct cli_conn *cc, const struct pub_args *a, const struct pub_input *in)
{
    if (a->binary != NULL)
        return pub_bin(cc, a, in->buf, in->len);
    if (a->raw)
        return pub_raw(cc, a, in->name, in->buf, in->len);
    if (a->file != NULL)
        return pub_text(cc, a, in->name, (const char *)in->buf, in->len);
    if (a->data != NULL && strcmp(a->data, "-") == 0)
        return pub_lines(cc, a);
    const char *data = a->data ? a->data : "null";
    return pub_text(cc, a, NULL, data, strlen(data));
}

int cmd_pub(int argc, char **argv)
{
    struct pub_args a;
    struct pub_input in = {0};
    struct cli_conn *cc;

    memset(&a, 0, sizeof(a));
    int rc = pub_parse(argc, argv, &a);
    if (rc == CLI_OK)
        rc = pub_input_read(&a, &in);
    if (rc == CLI_OK)
        rc = cli_connect("pub", &a.common, false, &cc);
    if (rc != CLI_OK) {
        free(in.buf);
        pub_args_free(&a);
        return rc < 0 ? CLI_OK : rc;
    }
    rc = pub_run(cc, &a, &in);
    if (rc == CLI_OK) {
        int err = pigeon_sync_flush(cc->s, 0);
        if (err != PIGEON_OK)
            rc = cli_fail(err, pigeon_errmsg(pigeon_sync_client(cc->s)), "publish");
    }
    if (rc == CLI_OK && cc->async_err != 0)
        rc = cli_fail(cc->async_err, cc->async_msg, "publish refused");
    cli_close(cc);
    free(in.buf);
    pub_args_free(&a);
    if (fflush(stdout) != 0 && rc == CLI_OK)
        rc = CLI_OTHER;
    return rc;
}
