/*
 * common.c - what the subcommands share (see cli.h): exit codes, messages,
 * argument parsing, logging in and TLS, connecting, printing payloads.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <msgpack.h>

#include "json.h"
#include "topic.h"

/* The environment variable NAME, or NULL when it is unset or empty. */
static const char *cli_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

void cli_common_init(struct cli_common *c)
{
    const char *env = cli_env("PIGEON_SERVER");

    memset(c, 0, sizeof(*c));
    c->server = env != NULL ? env : CLI_DEFAULT_SERVER;
    c->name = "pigeon-cli";
}

int cli_exit_for(int err)
{
    switch (err) {
    case PIGEON_OK:
        return CLI_OK;
    case PIGEON_EINVAL:
    case PIGEON_EADDRESS:
        return CLI_USAGE;
    case PIGEON_ECONNECT:
    case PIGEON_ECONNLOST:
    case PIGEON_ENOTCONN:
    case PIGEON_EPROTO:
    case PIGEON_ETLS:
        return CLI_CONNECTION;
    case PIGEON_ETIMEDOUT:
        return CLI_TIMEOUT;
    case PIGEON_ENORESPONDERS:
        return CLI_NO_RESPONDERS;
    default:
        return err > 0 ? CLI_BROKER : CLI_OTHER;
    }
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;

    fputs("pigeon: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The protocol's name of broker code ERR, from pigeon_strerror's "phrase (name)". */
static const char *cli_code_name(int err, char *buf, size_t len)
{
    const char *s = pigeon_strerror(err), *open = strrchr(s, '('), *close = strrchr(s, ')');

    if (open == NULL || close == NULL || close < open)
        return s;
    snprintf(buf, len, "%.*s", (int)(close - open - 1), open + 1);
    return buf;
}

int cli_fail(int err, const char *details, const char *what)
{
    static const char broker[] = "broker: ";
    char name[64];

    if (err > 0 && details != NULL && strncmp(details, broker, sizeof(broker) - 1) == 0)
        cli_warn("%s (%s): %s", what, cli_code_name(err, name, sizeof(name)),
                 details + sizeof(broker) - 1);
    else if (details != NULL && *details != '\0')
        cli_warn("%s: %s: %s", what, pigeon_strerror(err), details);
    else
        cli_warn("%s: %s", what, pigeon_strerror(err));
    return cli_exit_for(err);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "pigeon %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'pigeon %s --help')\n", cmd);
    return CLI_USAGE;
}

long cli_parse_duration(const char *s)
{
    char *end;

    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !(v >= 0) || !isfinite(v))
        return -1;
    double ms;
    if (*end == '\0' || strcmp(end, "s") == 0)
        ms = v * 1000;
    else if (strcmp(end, "ms") == 0)
        ms = v;
    else if (strcmp(end, "m") == 0)
        ms = v * 60000;
    else
        return -1;
    return ms > 1e12 ? -1 : (long)ms;
}

/* Reads all of F into *OUT (malloc'd) and *LEN: 0, or -1 with errno set. */
static int cli_slurp(FILE *f, uint8_t **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap);

    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *p = realloc(buf, cap * 2);
            if (p == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    if (buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        errno = e != 0 ? e : EIO;
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

int cli_read_file(const char *path, uint8_t **out, size_t *len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "stdin" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");

    if (f == NULL) {
        cli_warn("cannot open %s: %s", name, strerror(errno));
        return CLI_USAGE;
    }
    errno = 0;
    int rc = cli_slurp(f, out, len);
    int e = errno;
    if (!is_stdin)
        fclose(f);
    if (rc < 0) {
        cli_warn("read %s: %s", name, strerror(e));
        return CLI_OTHER;
    }
    return CLI_OK;
}

int cli_parse_count(const char *s, uint64_t *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int cli_check_topic(const char *cmd, const char *topic, bool pattern)
{
    enum topic_error te =
        topic_check(topic, strlen(topic), pattern ? TOPIC_PATTERN : TOPIC_PUBLISH);
    if (te == TOPIC_OK)
        return CLI_OK;
    return cli_usage_error(cmd, "invalid %s '%s': %s", pattern ? "pattern" : "topic", topic,
                           topic_strerror(te));
}

/* ------------------------------------------------------------ connecting --- */

/*
 * Notes on an outage: one line when the session is lost, one when it is
 * back.  Every failed attempt in between also moves the client to
 * DISCONNECTED; those stay quiet, so a long outage is two lines, not one
 * per attempt.  A failed first attempt is no outage at all: cli_connect
 * reports it and exits, there is no reconnecting to announce.
 */
static void cli_state_cb(pigeon_client *c, enum pigeon_state state, int err, void *arg)
{
    struct cli_conn *cc = arg;

    if (state == PIGEON_STATE_CONNECTED) {
        if (cc->in_outage && !cc->quiet)
            cli_warn("reconnected");
        cc->was_up = true;
        cc->in_outage = false;
    } else if (state == PIGEON_STATE_DISCONNECTED && cc->was_up && !cc->in_outage) {
        cc->in_outage = true;
        if (!cc->quiet)
            cli_warn("disconnected: %s (%s); reconnecting", pigeon_strerror(err), pigeon_errmsg(c));
    }
}

static void cli_error_cb(pigeon_client *c, int err, const char *message, void *arg)
{
    struct cli_conn *cc = arg;

    if (cc->async_err == 0) {
        cc->async_err = err;
        snprintf(cc->async_msg, sizeof(cc->async_msg), "%s", message);
    }
}

/* ------------------------------------------------------ logging in, TLS --- */

static bool cli_is_tls(const char *server)
{
    return strncasecmp(server, "tls://", 6) == 0;
}

/* The credentials of C into O: a user and password, or a token (cli.h). */
static int cli_apply_login(const char *cmd, const struct cli_common *c, struct pigeon_options *o)
{
    const char *user = c->user != NULL ? c->user : c->token == NULL ? cli_env("PIGEON_USER") : NULL;

    if (user != NULL) {
        if (c->token != NULL)
            return cli_usage_error(cmd, "--user and --token: log in with one or the other");
        o->user = user;
        o->password = c->password != NULL ? c->password : cli_env("PIGEON_PASSWORD");
        if (o->password == NULL)
            return cli_usage_error(cmd,
                                   "user '%s' needs a password: --password, or "
                                   "$PIGEON_PASSWORD",
                                   user);
        return CLI_OK;
    }
    if (c->password != NULL)
        return cli_usage_error(cmd, "--password is for a user: give --user too");
    o->token = c->token != NULL ? c->token : cli_env("PIGEON_TOKEN");
    return CLI_OK;
}

/* The TLS options of C into O: only for a tls:// address. */
static int cli_apply_tls(const char *cmd, const struct cli_common *c, struct pigeon_options *o)
{
    if ((c->ca != NULL || c->cert != NULL || c->key != NULL || c->insecure) &&
        !cli_is_tls(c->server))
        return cli_usage_error(cmd,
                               "--ca, --cert, --key and --insecure are for TLS: the "
                               "broker's address must be tls://HOST:PORT, not '%s'",
                               c->server);
    if (c->key != NULL && c->cert == NULL)
        return cli_usage_error(cmd, "--key is the key of --cert: give the certificate too");
    if (c->insecure && c->ca != NULL)
        return cli_usage_error(cmd, "--ca and --insecure: verify against the CA, or not at all");
    o->tls_ca = c->ca;
    o->tls_cert = c->cert;
    o->tls_key = c->key;
    o->tls_no_verify = c->insecure;
    return CLI_OK;
}

int cli_common_apply(const char *cmd, const struct cli_common *c, struct pigeon_options *o)
{
    int rc = cli_apply_login(cmd, c, o);

    if (rc == CLI_OK)
        rc = cli_apply_tls(cmd, c, o);
    o->client_name = c->name;
    return rc;
}

int cli_connect_failed(const struct cli_common *c, int err, const char *why)
{
    if (why == NULL || *why == '\0')
        why = pigeon_strerror(err);
    if (err == PIGEON_ERR_AUTH_FAILED || err == PIGEON_ERR_AUTH_REQUIRED)
        cli_warn("%s: %s", c->server, why); /* libpigeon's words do not name the broker */
    else if (err == PIGEON_ETLS && c->ca == NULL && strstr(why, "certificate verify failed"))
        cli_warn("%s (--ca FILE gives the CA that signed the broker's certificate)", why);
    else
        cli_warn("%s", why);
    return cli_exit_for(err);
}

int cli_connect(const char *cmd, const struct cli_common *common, bool reconnect,
                struct cli_conn **out)
{
    struct pigeon_options o;

    pigeon_options_init(&o);
    int rc = cli_common_apply(cmd, common, &o);
    if (rc != CLI_OK)
        return rc;
    struct cli_conn *cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        return cli_fail(PIGEON_ENOMEM, NULL, "connect");
    cc->quiet = common->quiet;
    o.reconnect = reconnect;
    o.on_state = cli_state_cb;
    o.state_arg = cc;
    o.on_error = cli_error_cb;
    o.error_arg = cc;
    char why[300] = "";
    o.errbuf = why;
    o.errbuf_len = sizeof(why);
    int err = pigeon_sync_connect(common->server, &o, 0, &cc->s);
    if (err != PIGEON_OK) {
        /* "connect to ADDR: Connection refused", "bad address 'ADDR': ..." */
        free(cc);
        return cli_connect_failed(common, err, why);
    }
    *out = cc;
    return CLI_OK;
}

void cli_close(struct cli_conn *cc)
{
    if (cc == NULL)
        return;
    pigeon_sync_close(cc->s);
    free(cc);
}

/* -------------------------------------------------------------- payloads --- */

int cli_json_payload(const char *cmd, const char *data, size_t len, struct msgpack_sbuffer *out)
{
    char err[256];

    if (json_to_msgpack(data, len, out, err, sizeof(err)) < 0) {
        fprintf(stderr, "pigeon %s: %s\n", cmd, err);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static int cli_write_all(const void *p, size_t n)
{
    if (fwrite(p, 1, n, stdout) != n) {
        cli_warn("write to stdout: %s", strerror(errno));
        return CLI_OTHER;
    }
    return CLI_OK;
}

int cli_print_payload(const void *payload, size_t len, bool raw)
{
    struct strbuf sb;

    if (raw)
        return cli_write_all(payload, len);
    strbuf_init(&sb);
    int rc = json_from_msgpack(payload, len, &sb) < 0 || strbuf_add(&sb, "\n", 1) < 0
                 ? CLI_OTHER
                 : cli_write_all(sb.data, sb.len);
    strbuf_free(&sb);
    return rc;
}

int cli_common_option(int ch, const char *arg, struct cli_common *c)
{
    switch (ch) {
    case 's':
        c->server = arg;
        return 1;
    case 'N':
        c->name = arg;
        return 1;
    case 'q':
        c->quiet = true;
        return 1;
    case CLI_OPT_USER:
        c->user = arg;
        return 1;
    case CLI_OPT_PASSWORD:
        c->password = arg;
        return 1;
    case CLI_OPT_TOKEN:
        c->token = arg;
        return 1;
    case CLI_OPT_CA:
        c->ca = arg;
        return 1;
    case CLI_OPT_CERT:
        c->cert = arg;
        return 1;
    case CLI_OPT_KEY:
        c->key = arg;
        return 1;
    case CLI_OPT_INSECURE:
        c->insecure = true;
        return 1;
    default:
        return 0;
    }
}
