/*
 * main.c - `pigeon`, the command line client of the Pigeon broker.
 *
 *   pigeon pub TOPIC [DATA]       publish JSON, text or bytes
 *   pigeon sub PATTERN            print messages as JSON lines
 *   pigeon req TOPIC [DATA]       request/reply
 *   pigeon reply TOPIC CMD...     answer requests with a command
 *   pigeon bench                  measure the broker
 *   pigeon passwd [--token]       credentials for pigeond's users file
 *
 * Each subcommand is a file (cmd_*.c) with its own options and --help;
 * the exit codes they share are in cli.h and docs/cli.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char main_help[] =
    "usage: pigeon COMMAND [options] [arguments]\n"
    "\n"
    "The command line client of the Pigeon MessagePack pub/sub broker.\n"
    "\n"
    "commands:\n"
    "  pub TOPIC [DATA]       publish DATA (JSON, text, a file; '-' for stdin) to TOPIC\n"
    "  sub PATTERN            print the messages matching PATTERN as JSON lines\n"
    "  req TOPIC [DATA]       send a request and print the reply\n"
    "  reply TOPIC CMD...     answer requests on TOPIC with the output of CMD\n"
    "  bench                  measure throughput and latency\n"
    "  passwd [--token]       make a password hash or a token for the users file\n"
    "\n"
    "'pigeon COMMAND --help' describes each.  The broker's address comes from\n"
    "-s/--server, else $PIGEON_SERVER, else " CLI_DEFAULT_SERVER " (tls://host:port\n"
    "for TLS); a login from --user and --password, or --token (else $PIGEON_USER,\n"
    "$PIGEON_PASSWORD, $PIGEON_TOKEN).\n"
    "\n"
    "exit codes: 0 ok, 1 usage or bad input, 2 connection, 3 refused by the\n"
    "broker, 4 timeout, 5 no responders, 6 other errors, 7 an error reply.\n";

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"pub", cmd_pub},     {"sub", cmd_sub},     {"req", cmd_req},
    {"reply", cmd_reply}, {"bench", cmd_bench}, {"passwd", cmd_passwd},
};

/*
 * Takes -s/--server given before the command: it becomes $PIGEON_SERVER,
 * which every command reads (and its own -s overrides).  Returns the
 * number of arguments used.
 */
static int main_server_option(int argc, char **argv)
{
    const char *addr = NULL;
    int used = 0;

    if (argc > 2 && (strcmp(argv[1], "-s") == 0 || strcmp(argv[1], "--server") == 0)) {
        addr = argv[2];
        used = 2;
    } else if (argc > 1 && strncmp(argv[1], "--server=", 9) == 0) {
        addr = argv[1] + 9;
        used = 1;
    } else if (argc > 1 && strncmp(argv[1], "-s", 2) == 0 && argv[1][2] != '\0') {
        addr = argv[1] + 2;
        used = 1;
    }
    if (addr != NULL)
        setenv("PIGEON_SERVER", addr, 1);
    return used;
}

int main(int argc, char **argv)
{
    int used = main_server_option(argc, argv);

    argv[used] = argv[0];
    argc -= used;
    argv += used;
    if (argc < 2) {
        fputs(main_help, stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            char *help_argv[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(argv[2], commands[i].name) == 0)
                    return commands[i].run(2, help_argv);
        }
        fputs(main_help, stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("pigeon %s\n", PIGEON_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "pigeon: unknown command '%s'\n\n%s", argv[1], main_help);
    return CLI_USAGE;
}
