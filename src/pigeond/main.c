/*
 * main.c - pigeond's command line: find the config, check it, run.
 *
 *   pigeond [-c FILE] [-t] [-p PORT]... [-b ADDR]... [--ports-file FILE]
 *           [--pid-file FILE] [-V] [-h]
 *   pigeond [-c FILE] --delete-stream NAME
 *   pigeond [-c FILE] --delete-durable STREAM/DURABLE
 *
 * Without -c, CONFIG_DEFAULT_PATH (SYSCONFDIR/pigeon/pigeond.conf, where
 * meson installs the sample) is read when it exists and the
 * built-in defaults (one listener on 127.0.0.1:7400) are used when it does
 * not.  -p PORT listens on 127.0.0.1:PORT, as nats-server -p and
 * mosquitto -p do; -b ADDR anywhere a [listener] bind may say.  Given
 * either, they replace the file's listeners, at start and at every reload
 * (config_set_listeners, config_keep_arg_listeners).  pigeond stays in the
 * foreground and logs to stderr: a supervisor (systemd) does the rest.
 *
 * --delete-stream is the one way to delete a stream's data: with pigeond
 * stopped and the stream's section gone from the file (store.h).
 * --delete-durable forgets one durable consumer (its position and unacked
 * set), with pigeond stopped: the way to change a durable's options.
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
#include "runfile.h"
#include "server.h"
#include "store.h"
#include "users.h"

/* Listeners the command line may give (-p and -b together). */
#define MAX_ARG_LISTENERS 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pigeond [-c FILE] [-t] [-p PORT] [-b ADDR] [--ports-file FILE]\n"
            "               [--pid-file FILE] [-V] [-h]\n"
            "\n"
            "  -c, --config FILE      read FILE (default %s when it exists,\n"
            "                         else built-in defaults: listen on 127.0.0.1:7400)\n"
            "  -t, --test-config      check the configuration, report every error with its\n"
            "                         line, and exit (0 valid, 1 not)\n"
            "  -p, --port PORT        listen on 127.0.0.1:PORT (0: any free port)\n"
            "  -b, --bind ADDR        listen on ADDR: host:port, [v6addr]:port or unix:/path\n"
            "                         -p and -b may be repeated; given, they replace the\n"
            "                         config's [listener] sections, at reloads too\n"
            "      --ports-file FILE  write \"NAME ADDRESS\" for each bound listener to FILE\n"
            "                         (useful with port 0)\n"
            "      --pid-file FILE    write pigeond's pid to FILE once it listens; removed\n"
            "                         at exit\n"
            "      --delete-stream NAME  delete stream NAME's messages and durable consumers\n"
            "                         from the config's [store], and exit; pigeond must be\n"
            "                         stopped and [stream NAME] gone from the config\n"
            "      --delete-durable STREAM/DURABLE  forget durable consumer DURABLE of\n"
            "                         STREAM (its position and unacked messages), and exit;\n"
            "                         pigeond must be stopped\n"
            "  -V, --version          print the version and exit\n"
            "  -h, --help             print this help and exit\n"
            "\n"
            "Signals: SIGHUP rereads the configuration; SIGTERM or SIGINT drain and exit.\n",
            CONFIG_DEFAULT_PATH);
}

struct options {
    const char *config;
    const char *ports_file;
    const char *pid_file;
    const char *delete_stream;
    const char *delete_durable;
    bool test;
    /* -p and -b in order, as bind values; the -p ones point into port_binds */
    const char *binds[MAX_ARG_LISTENERS];
    size_t n_binds;
    char port_binds[MAX_ARG_LISTENERS][32];
};

/* Long options with no short form. */
enum { OPT_PORTS_FILE = 256, OPT_PID_FILE, OPT_DELETE_STREAM, OPT_DELETE_DURABLE };

/* -p PORT as the bind value "127.0.0.1:PORT"; 0, or -1 after printing why. */
static int add_port(struct options *o, const char *arg)
{
    size_t len = strlen(arg);
    unsigned long port;

    if (len == 0 || len > 5 || strspn(arg, "0123456789") != len ||
        (port = strtoul(arg, NULL, 10)) > 65535) {
        fprintf(stderr,
                "pigeond: -p '%s': expected a port number from 0 to 65535 "
                "(the ports file is --ports-file FILE)\n",
                arg);
        return -1;
    }
    snprintf(o->port_binds[o->n_binds], sizeof(o->port_binds[0]), "127.0.0.1:%lu", port);
    o->binds[o->n_binds] = o->port_binds[o->n_binds];
    o->n_binds++;
    return 0;
}

/* Adds one -p or -b; 0, or -1 after printing why. */
static int add_listener(struct options *o, int ch, const char *arg)
{
    if (o->n_binds == MAX_ARG_LISTENERS) {
        fprintf(stderr, "pigeond: at most %d listeners with -p and -b\n", MAX_ARG_LISTENERS);
        return -1;
    }
    if (ch == 'p')
        return add_port(o, arg);
    o->binds[o->n_binds++] = arg;
    return 0;
}

/* Returns -1 to go on, else the exit code. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test-config", no_argument, NULL, 't'},
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"ports-file", required_argument, NULL, OPT_PORTS_FILE},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"delete-stream", required_argument, NULL, OPT_DELETE_STREAM},
        {"delete-durable", required_argument, NULL, OPT_DELETE_DURABLE},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:tp:b:Vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 't':
            o->test = true;
            break;
        case 'p':
        case 'b':
            if (add_listener(o, ch, optarg) < 0)
                return 2;
            break;
        case OPT_PORTS_FILE:
            o->ports_file = optarg;
            break;
        case OPT_PID_FILE:
            o->pid_file = optarg;
            break;
        case OPT_DELETE_STREAM:
            o->delete_stream = optarg;
            break;
        case OPT_DELETE_DURABLE:
            o->delete_durable = optarg;
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

/*
 * Gives CONF the command line's listeners, if any: 0, or -1 after printing
 * why.  With CONF NULL, only checks them (for -t).
 */
static int apply_arg_listeners(const struct options *o, struct config *conf)
{
    struct config *scratch = conf != NULL ? conf : config_new_defaults();
    char why[256];
    int rc = 0;

    if (o->n_binds > 0 &&
        config_set_listeners(scratch, o->binds, o->n_binds, why, sizeof(why)) < 0) {
        fprintf(stderr, "pigeond: -p/-b %s\n", why);
        rc = -1;
    }
    if (conf == NULL)
        config_unref(scratch);
    return rc;
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
/* Prints N errors of FILE as "pigeond: FILE:LINE: REASON", and a line when MAX cut them short. */
static void print_errors(const char *file, const struct config_error *errs, size_t n, size_t max)
{
    for (size_t i = 0; i < n; i++)
        print_config_error(&errs[i]);
    if (n == max)
        fprintf(stderr, "pigeond: %s: stopped after %zu errors\n", file, max);
}

/* -t: checks the users file the config at PATH names, if any.  Returns the exit code. */
static int check_users_file(const char *path)
{
    enum { MAX_ERRORS = 64 };
    static struct config_error errs[MAX_ERRORS];
    struct config *conf;
    size_t n;

    if (config_load_file(path, &conf, NULL) < 0)
        return 1; /* just checked: cannot happen but for a race */
    const char *users = conf->auth.users_file;
    int rc = 0;
    if (users != NULL && users_check_file(users, errs, MAX_ERRORS, &n) == 0) {
        printf("pigeond: %s is valid\n", users);
    } else if (users != NULL) {
        print_errors(users, errs, n, MAX_ERRORS);
        rc = 1;
    }
    config_unref(conf);
    return rc;
}

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
        if (o->n_binds > 0)
            printf("pigeond: -p/-b replace its [listener] sections\n");
        return check_users_file(path);
    }
    print_errors(path, errs, n, MAX_ERRORS);
    return 1;
}

/* --delete-durable STREAM/DURABLE: returns the exit code. */
static int delete_durable(const struct options *o)
{
    struct config *conf;
    const char *path, *slash = strchr(o->delete_durable, '/');
    char why[512], stream[65];

    if (slash == NULL || (size_t)(slash - o->delete_durable) >= sizeof(stream)) {
        fprintf(stderr, "pigeond: --delete-durable %s: give STREAM/DURABLE\n", o->delete_durable);
        return 2;
    }
    memcpy(stream, o->delete_durable, (size_t)(slash - o->delete_durable));
    stream[slash - o->delete_durable] = 0;
    if (load_config(o, &conf, &path) != 0)
        return 1;
    int rc = store_delete_durable(conf, stream, slash + 1, why, sizeof(why));
    if (rc < 0)
        fprintf(stderr, "pigeond: --delete-durable %s: %s\n", o->delete_durable, why);
    else
        printf("pigeond: durable %s of stream %s deleted from %s\n", slash + 1, stream,
               conf->store.dir);
    config_unref(conf);
    return rc < 0 ? 1 : 0;
}

/* --delete-stream NAME: returns the exit code. */
static int delete_stream(const struct options *o)
{
    struct config *conf;
    const char *path;
    char why[512];

    if (load_config(o, &conf, &path) != 0)
        return 1;
    int rc = store_delete_stream(conf, o->delete_stream, why, sizeof(why));
    if (rc < 0)
        fprintf(stderr, "pigeond: --delete-stream %s: %s\n", o->delete_stream, why);
    else
        printf("pigeond: stream %s deleted from %s\n", o->delete_stream, conf->store.dir);
    config_unref(conf);
    return rc < 0 ? 1 : 0;
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

/* --pid-file: "PID\n", written as safely as the ports file.  0, or -1 after logging why. */
static int write_pid_file(struct server *srv, const char *path)
{
    char text[32], why[4200];
    int len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());

    if (runfile_write(path, text, (size_t)len, why, sizeof(why)) < 0) {
        log_error(&srv->log, "pid file: %s", why);
        return -1;
    }
    return 0;
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
    if (apply_arg_listeners(&o, NULL) < 0)
        return 2;
    if (o.test)
        return check_config(&o);
    if (o.delete_stream != NULL)
        return delete_stream(&o);
    if (o.delete_durable != NULL)
        return delete_durable(&o);
    if (load_config(&o, &conf, &path) != 0)
        return 1;
    if (apply_arg_listeners(&o, conf) < 0) { /* checked above: cannot fail */
        config_unref(conf);
        return 2;
    }
    hash_seed();
    /* Keep glibc from giving the heap's top back and taking it again on
     * every burst (a brk and page faults per burst of small allocations),
     * but give allocations of 256 KiB and more their own mappings: the
     * read blocks (pooled by the loop) and the input of large frames still
     * arriving, which the memory budget counts and frees; kept in the heap,
     * their freed memory stayed resident, 50 MB over a 128 MB budget. */
    mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    if (server_init(&srv, conf, path, o.ports_file) < 0 ||
        (o.pid_file != NULL && write_pid_file(&srv, o.pid_file) < 0)) {
        server_fini(&srv);
        return 1;
    }
    rc = server_run(&srv);
    server_fini(&srv);
    if (o.pid_file != NULL)
        unlink(o.pid_file);
    return rc;
}
