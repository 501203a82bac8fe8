/*
 * cli.h - what the `pigeon` subcommands share: exit codes, the options
 * every subcommand takes, connecting, and reporting errors.
 *
 * Exit codes are a contract with shell scripts (docs/cli.md):
 *
 *   0  success
 *   1  usage: a bad option or argument, invalid JSON, an invalid topic
 *   2  connection: cannot connect, or the connection was lost
 *   3  the broker refused: an error code from the broker (or the same
 *      check made locally, such as a payload over max_payload)
 *   4  timeout: no reply, or not enough messages in time
 *   5  no responders: a request's topic has no subscriber
 *   6  any other failure (I/O, out of memory)
 *   7  error reply: `req` got {"error": ...} from the responder (errreply.h)
 */
#ifndef PIGEON_CLI_H
#define PIGEON_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <getopt.h>
#include <stdint.h>

#include <pigeon.h>

enum cli_exit {
    CLI_OK = 0,
    CLI_USAGE = 1,
    CLI_CONNECTION = 2,
    CLI_BROKER = 3,
    CLI_TIMEOUT = 4,
    CLI_NO_RESPONDERS = 5,
    CLI_OTHER = 6,
    CLI_ERROR_REPLY = 7,
};

#define CLI_DEFAULT_SERVER "127.0.0.1:7400"

/*
 * The options every subcommand that connects takes.  Credentials and TLS
 * (docs/cli.md, Logging in and TLS): a flag wins over its environment
 * variable; PIGEON_PASSWORD is read only with a user, PIGEON_TOKEN only
 * without one.
 */
struct cli_common {
    const char *server;   /* -s/--server, else $PIGEON_SERVER, else the default */
    const char *name;     /* --name: the client name in hello */
    bool quiet;           /* -q/--quiet: no notes on stderr */
    const char *user;     /* --user (NULL: $PIGEON_USER, unless --token) */
    const char *password; /* --password (NULL: $PIGEON_PASSWORD, with a user) */
    const char *token;    /* --token (NULL: $PIGEON_TOKEN, without a user) */
    const char *ca;       /* --ca FILE: the CAs the broker's certificate chains to */
    const char *cert;     /* --cert FILE: a client certificate */
    const char *key;      /* --key FILE: its key (default: in the --cert file) */
    bool insecure;        /* --insecure: do not verify the broker's certificate */
};

/* Fills C with the defaults (and $PIGEON_SERVER). */
void cli_common_init(struct cli_common *c);

/* getopt_long codes of the common options that have no short form. */
enum cli_common_longopt {
    CLI_OPT_USER = 0x100,
    CLI_OPT_PASSWORD,
    CLI_OPT_TOKEN,
    CLI_OPT_CA,
    CLI_OPT_CERT,
    CLI_OPT_KEY,
    CLI_OPT_INSECURE,
};

/* The getopt_long entries of the common options, for each subcommand's table. */
#define CLI_COMMON_LONGOPTS                                                                        \
    {"server", required_argument, NULL, 's'}, {"name", required_argument, NULL, 'N'},              \
        {"quiet", no_argument, NULL, 'q'}, {"user", required_argument, NULL, CLI_OPT_USER},        \
        {"password", required_argument, NULL, CLI_OPT_PASSWORD},                                   \
        {"token", required_argument, NULL, CLI_OPT_TOKEN},                                         \
        {"ca", required_argument, NULL, CLI_OPT_CA},                                               \
        {"cert", required_argument, NULL, CLI_OPT_CERT},                                           \
        {"key", required_argument, NULL, CLI_OPT_KEY},                                             \
        {"insecure", no_argument, NULL, CLI_OPT_INSECURE},                                         \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }
#define CLI_COMMON_SHORTOPTS "s:qh"
#define CLI_COMMON_HELP                                                                            \
    "  -s, --server ADDR    broker address: host:port, [ipv6]:port, host (port 7400),\n"           \
    "                       PORT (127.0.0.1:PORT), unix:/path, or tls://host:port\n"               \
    "                       (default: $PIGEON_SERVER, else " CLI_DEFAULT_SERVER ")\n"              \
    "      --name NAME      client name the broker logs (default: pigeon-cli)\n"                   \
    "      --user USER      log in as USER (default: $PIGEON_USER), with --password\n"             \
    "      --password PW    USER's password (default: $PIGEON_PASSWORD, which other\n"             \
    "                       users cannot see in the process list, unlike this)\n"                  \
    "      --token TOKEN    log in with a token instead (default: $PIGEON_TOKEN)\n"                \
    "      --ca FILE        tls://: the CA certificates (PEM) the broker's certificate\n"          \
    "                       must chain to (default: the system's)\n"                               \
    "      --cert FILE      tls://: a client certificate (PEM); the broker may log in\n"           \
    "                       the user its CN names, with no password\n"                             \
    "      --key FILE       tls://: the certificate's key (default: in the --cert file)\n"         \
    "      --insecure       tls://: do not verify the broker's certificate (tests only)\n"         \
    "  -q, --quiet          no notes on stderr (errors are still reported)\n"                      \
    "  -h, --help           this help\n"

/* Applies common option CH (with ARG) to C. 1 when it was one, else 0. */
int cli_common_option(int ch, const char *arg, struct cli_common *c);

/*
 * Checks C for the subcommand CMD (credentials that go together, TLS
 * options only with a tls:// address) and fills the connection settings
 * of O from it (O from pigeon_options_init).  Returns CLI_OK, or
 * CLI_USAGE after printing why.
 */
int cli_common_apply(const char *cmd, const struct cli_common *c, struct pigeon_options *o);

/* The exit code for a libpigeon error code. */
int cli_exit_for(int err);

/* Prints "pigeon: MESSAGE" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Prints "pigeon: WHAT: <strerror>(: <details>)" and returns the exit code
 * for ERR.  The broker's own words (DETAILS "broker: MESSAGE") print as
 * "pigeon: WHAT (NAME): MESSAGE", NAME the protocol's name of the code:
 * "pigeon: publish refused (forbidden): not allowed to publish to 'x'".
 */
int cli_fail(int err, const char *details, const char *what);

/* A usage error: prints "pigeon CMD: MESSAGE" and a hint, returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Parses a duration: a number of seconds ("2", "0.5") or with a unit
 * ("250ms", "2s", "1m").  Returns milliseconds, or -1 when S is not one.
 */
long cli_parse_duration(const char *s);

/* Parses a non-negative decimal count into *OUT. 0, or -1. */
int cli_parse_count(const char *s, uint64_t *out);

/*
 * Reads all of the file PATH ("-": stdin) into *OUT (malloc'd; the caller
 * frees) and *LEN.  Returns CLI_OK, or an exit code after printing why
 * (CLI_USAGE when it cannot be opened, CLI_OTHER when reading fails).
 */
int cli_read_file(const char *path, uint8_t **out, size_t *len);

/* Checks a topic (PATTERN: a subscription pattern) from the command line. */
int cli_check_topic(const char *cmd, const char *topic, bool pattern);

/* A connection of a subcommand: the blocking client and what the broker said. */
struct cli_conn {
    pigeon_sync *s;      /* owned */
    int async_err;       /* the first `error` notification's code, or 0 */
    char async_msg[256]; /* ... and its message */
    bool quiet;
    bool was_up;    /* a session was established once: a drop is worth a note */
    bool in_outage; /* lost after was_up, and not back yet: noted once */
};

/*
 * Connects with the blocking API for subcommand CMD.  RECONNECT: reconnect
 * if the connection drops (long-running commands), with notes on stderr
 * unless quiet.  Returns 0 and *OUT (the caller's: cli_close), or an exit
 * code after printing why ("pigeon: tls://h:7401: authentication failed
 * (as user 'alice')").
 */
int cli_connect(const char *cmd, const struct cli_common *c, bool reconnect, struct cli_conn **out);

/* Prints why connecting to SERVER failed with ERR (WHY: libpigeon's
 * details) and returns the exit code. */
int cli_connect_failed(const struct cli_common *c, int err, const char *why);

/* Flushes (see pigeon_sync_close) and frees CC. NULL is fine. */
void cli_close(struct cli_conn *cc);

/* Converts the JSON DATA to MessagePack in OUT; on error prints and returns CLI_USAGE. */
struct msgpack_sbuffer;
int cli_json_payload(const char *cmd, const char *data, size_t len, struct msgpack_sbuffer *out);

/* Writes the JSON form of PAYLOAD, plus "\n", to stdout; RAW: the bytes. 0 or CLI_OTHER. */
int cli_print_payload(const void *payload, size_t len, bool raw);

/* The subcommands: argc/argv start at the subcommand's name. */
int cmd_pub(int argc, char **argv);
int cmd_sub(int argc, char **argv);
int cmd_req(int argc, char **argv);
int cmd_reply(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_passwd(int argc, char **argv);

#endif
