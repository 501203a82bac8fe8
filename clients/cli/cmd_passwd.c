/*
 * cmd_passwd.c - `pigeon passwd`: the credentials of pigeond's users file.
 *
 *   pigeon passwd            reads a password and prints its yescrypt hash,
 *                            the value of a user's `password =` line
 *   pigeon passwd --token    prints a new random 256-bit token (for the
 *                            client) and the `token = sha256:...` line
 *                            (for the users file)
 *
 * From a terminal the password is asked twice, without echo (the terminal's
 * settings are restored on any exit, Ctrl-C included); from a pipe one line
 * is read and its newline dropped.  The hash is libxcrypt's yescrypt
 * ("$y$", memory-hard) at its default cost, with a salt from the OS's
 * random source; a token is 32 bytes from getrandom written as 64 hex
 * digits, and the users file keeps only the SHA-256 of those digits.  No
 * broker is contacted.  Secrets are wiped from memory once used.
 */
#include <crypt.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cli.h"

/* The longest password crypt(3) hashes (pigeond's AUTH_PASSWORD_MAX too). */
#define PASSWD_MAX   (CRYPT_MAX_PASSPHRASE_SIZE - 1)
#define TOKEN_BYTES  32
#define DIGEST_BYTES 32

static const char passwd_help[] =
    "usage: pigeon passwd [--token]\n"
    "\n"
    "Makes the credentials of a user in pigeond's users file.\n"
    "\n"
    "Without options, reads a password and prints its yescrypt hash: the value\n"
    "of the user's 'password =' line.  From a terminal it asks twice without\n"
    "echo; from a pipe it reads one line.  At most 511 bytes, not empty.\n"
    "\n"
    "options:\n"
    "      --token          print a new random 256-bit token on the first line\n"
    "                       (the client sends it in hello) and the users file's\n"
    "                       line 'token = sha256:...' on the second; nothing is\n"
    "                       read\n"
    "  -h, --help           this help\n";

/* -------------------------------------------------------- the terminal ---- */

static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;

static void tty_restore(void)
{
    if (tio_saved) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        tio_saved = 0;
    }
}

/* Ctrl-C or a kill while echo is off: restore the terminal, then die of the signal. */
static void restore_signal_cb(int sig)
{
    tty_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int tty_echo_off(void)
{
    struct termios tio;

    if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
        return -1;
    tio = saved_tio;
    tio.c_lflag &= ~(tcflag_t)ECHO;
    tio.c_lflag |= ECHONL;
    tio_saved = 1;
    signal(SIGINT, restore_signal_cb);
    signal(SIGTERM, restore_signal_cb);
    signal(SIGHUP, restore_signal_cb);
    signal(SIGQUIT, restore_signal_cb);
    return tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio);
}

/* ---------------------------------------------------------- the input ---- */

/*
 * Reads one line of stdin into BUF (SIZE >= PASSWD_MAX + 2 bytes), without
 * its "\n" or "\r\n".  Returns its length, or -1 after saying why.  A NUL
 * byte is refused: crypt(3) would hash only what comes before it.
 */
static long read_line(char *buf, size_t size)
{
    size_t len = 0;
    int c;

    while ((c = getc(stdin)) != EOF && c != '\n') {
        if (c == '\0') {
            cli_warn("passwd: the password has a NUL byte");
            return -1;
        }
        if (len + 1 >= size) {
            cli_warn("passwd: the password is longer than %d bytes", PASSWD_MAX);
            return -1;
        }
        buf[len++] = (char)c;
    }
    buf[len] = '\0';
    if (c == EOF && ferror(stdin)) {
        cli_warn("passwd: cannot read the password: %s", strerror(errno));
        return -1;
    }
    if (c == EOF && len == 0) {
        cli_warn("passwd: no password given");
        return -1;
    }
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    if (len > PASSWD_MAX) {
        cli_warn("passwd: the password is longer than %d bytes", PASSWD_MAX);
        return -1;
    }
    if (len == 0) {
        cli_warn("passwd: the password is empty");
        return -1;
    }
    return (long)len;
}

/* Asks for the password on the terminal, twice: 0, or -1 after saying why. */
static int ask_twice(char *pw, char *again, size_t size)
{
    int rc = -1;

    if (tty_echo_off() < 0) {
        cli_warn("passwd: cannot turn off the terminal's echo: %s", strerror(errno));
        tty_restore();
        return -1;
    }
    fputs("Password: ", stderr);
    fflush(stderr);
    if (read_line(pw, size) >= 0) {
        fputs("Again: ", stderr);
        fflush(stderr);
        if (read_line(again, size) >= 0) {
            if (strcmp(pw, again) == 0)
                rc = 0;
            else
                cli_warn("passwd: the passwords differ");
        }
    }
    tty_restore();
    return rc;
}

/* ------------------------------------------------------------ outputs ---- */

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Prints the yescrypt hash of PW. */
static int print_hash(const char *pw)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char *h;
    int rc = CLI_OTHER;

    if (cd == NULL)
        return cli_fail(PIGEON_ENOMEM, NULL, "passwd");
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) == NULL)
        cli_warn("passwd: cannot make a salt: %s", strerror(errno));
    else if ((h = crypt_r(pw, setting, cd)) == NULL || h[0] == '*')
        cli_warn("passwd: cannot hash the password: %s", strerror(errno));
    else if (printf("%s\n", h) < 0 || fflush(stdout) != 0)
        cli_warn("passwd: cannot write: %s", strerror(errno));
    else
        rc = CLI_OK;
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return rc;
}

/* Prints a new token, and the users file's line for it. */
static int print_token(void)
{
    unsigned char raw[TOKEN_BYTES], digest[DIGEST_BYTES];
    char token[2 * TOKEN_BYTES + 1], digest_hex[2 * DIGEST_BYTES + 1];
    unsigned int n = 0;
    int rc = CLI_OTHER;

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        cli_warn("passwd: cannot read random bytes: %s", strerror(errno));
        return CLI_OTHER;
    }
    hex(raw, sizeof(raw), token);
    if (EVP_Digest(token, strlen(token), digest, &n, EVP_sha256(), NULL) != 1 ||
        n != DIGEST_BYTES) {
        cli_warn("passwd: cannot hash the token");
    } else {
        hex(digest, sizeof(digest), digest_hex);
        if (printf("%s\ntoken = sha256:%s\n", token, digest_hex) < 0 || fflush(stdout) != 0)
            cli_warn("passwd: cannot write: %s", strerror(errno));
        else
            rc = CLI_OK;
        if (rc == CLI_OK && isatty(STDERR_FILENO))
            fputs("(the first line is the token for the client; the second goes in the "
                  "user's section of the users file)\n",
                  stderr);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(token, sizeof(token));
    return rc;
}

/* ---------------------------------------------------------- the command ---- */

int cmd_passwd(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"token", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char pw[PASSWD_MAX + 2], again[PASSWD_MAX + 2];
    bool token = false;
    int ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 't':
            token = true;
            break;
        case 'h':
            fputs(passwd_help, stdout);
            return CLI_OK;
        default:
            return cli_usage_error("passwd", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("passwd", "no arguments expected: the password is read from "
                                         "stdin, never taken from the command line");
    if (token)
        return print_token();
    if (isatty(STDIN_FILENO))
        rc = ask_twice(pw, again, sizeof(pw));
    else
        rc = read_line(pw, sizeof(pw)) < 0 ? -1 : 0;
    if (rc == 0)
        rc = print_hash(pw);
    else
        rc = CLI_USAGE;
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(again, sizeof(again));
    return rc;
}
