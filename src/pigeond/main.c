/*
 * main.c - pigeond's command line: find the config, check it, run.
 *
 *   pigeond [-c FILE] [-t] [-p FILE] [-V] [-h]
 *
 * Without -c, CONFIG_DEFAULT_PATH (SYSCONFDIR/pigeon/pigeond.conf, where
 * meson installs the sample) is read when it exists and the
 * built-in defaults (one listener on 127.0.0.1:7400) are used when it does
 * not.  pigeond stays in the foreground and logs to stderr: a supervisor
 * (systemd) does the rest.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <msgpack.h>

#include "config.h"
#include "hmap.h"
#include "server.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pigeond [-c FILE] [-t] [-p FILE] [-V] [-h]\n"
            "\n"
            "  -c, --config FILE      read FILE (default %s when it exists,\n"
            "                         else built-in defaults: listen on 127.0.0.1:7400)\n"
            "  -t, --test-config      check the configuration, report every error with its\n"
            "                         line, and exit (0 valid, 1 not)\n"
            "  -p, --ports-file FILE  write \"NAME ADDRESS\" for each bound listener to FILE\n"
            "                         (useful with port 0)\n"
            "  -V, --version          print the version and exit\n"
            "  -h, --help             print this help and exit\n"
            "\n"
            "Signals: SIGHUP rereads the configuration; SIGTERM or SIGINT drain and exit.\n",
            CONFIG_DEFAULT_PATH);
}

struct options {
    const char *config;
    const char *ports_file;
    bool test;
};

/* Returns -1 to go on, else the exit code. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test-config", no_argument, NULL, 't'},
        {"ports-file", required_argument, NULL, 'p'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:tp:Vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 't':
            o->test = true;
            break;
        case 'p':
            o->ports_file = optarg;
            break;
        case 'V':
            printf("pigeond %s (libevent %s, msgpack-c %s)\n", PIGEON_VERSION, event_get_version(),
                   msgpack_version());
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pigeond: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Prints one config error as "pigeond: FILE:LINE: REASON" (no LINE when 0). */
static void print_config_error(const struct config_error *err)
{
    if (err->line > 0)
        fprintf(stderr, "pigeond: %s:%d: %s\n", err->file, err->line, err->reason);
    else
        fprintf(stderr, "pigeond: %s: %s\n", err->file, err->reason);
}

/* Loads the config the options name. Returns 0, or 1 after printing why. */
static int load_config(const struct options *o, struct config **conf, const char **path)
{
    struct config_error err;

    *path = o->config;
    if (*path == NULL && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
        *path = CONFIG_DEFAULT_PATH;
    if (*path == NULL) {
        *conf = config_new_defaults();
        return 0;
    }
    if (config_load_file(*path, conf, &err) < 0) {
        print_config_error(&err);
        return 1;
    }
    return 0;
}

/* -t: checks the file the options name, reporting every error.  Returns the exit code. */
static int check_config(const struct options *o)
{
    enum { MAX_ERRORS = 64 };
    static struct config_error errs[MAX_ERRORS];
    const char *path = o->config;
    size_t n;

    if (path == NULL && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = CONFIG_DEFAULT_PATH;
    if (path == NULL) {
        printf("pigeond: no config file at %s; the built-in defaults are valid\n",
               CONFIG_DEFAULT_PATH);
        return 0;
    }
    if (config_check_file(path, errs, MAX_ERRORS, &n) == 0) {
        printf("pigeond: %s is valid\n", path);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        print_config_error(&errs[i]);
    if (n == MAX_ERRORS)
        fprintf(stderr, "pigeond: %s: stopped after %d errors\n", path, MAX_ERRORS);
    return 1;
}

/*
 * Keys the hash maps (hmap.h) with 16 bytes from the kernel, so that no
 * peer can predict which topics collide.  getrandom blocks only until the
 * kernel's pool is first initialised, early in boot.
 */
static void hash_seed(void)
{
    unsigned char key[HMAP_SEED_BYTES];

    if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
        /* No getrandom (a very old kernel): the clock and pid, better than none. */
        uint64_t mix[2] = {(uint64_t)time(NULL) ^ (uint64_t)clock(), (uint64_t)getpid()};
        memcpy(key, mix, sizeof(key));
    }
    hmap_seed(key);
}

int main(int argc, char **argv)
{
    struct options o = {0};
    struct config *conf;
    const char *path;
    struct server srv;

    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.test)
        return check_config(&o);
    if (load_config(&o, &conf, &path) != 0)
        return 1;
    hash_seed();
    /* Keep glibc from giving the heap's top back and taking it again on
     * every burst (a brk and page faults per read block). */
    mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    if (server_init(&srv, conf, path, o.ports_file) < 0) {
        server_fini(&srv);
        return 1;
    }
    rc = server_run(&srv);
    server_fini(&srv);
    return rc;
}
