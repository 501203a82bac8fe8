/*
 * addr.h - Pigeon's addresses: where pigeond listens (`bind`) and where a
 * client connects (libpigeon, the CLI), parsed by one grammar.
 *
 * The forms:
 *
 *   host:port      a dotted quad or a host name, then a port:
 *                  "127.0.0.1:7400", "broker.example:7400"
 *   [v6]:port      an IPv6 address in brackets, with an optional zone:
 *                  "[::1]:7400", "[fe80::1%eth0]:7400"
 *   host, [v6]     no port: the default port, 7400            (connect only)
 *   port           a bare number N: 127.0.0.1:N                (connect only)
 *   unix:/path     a unix domain socket, at most 107 bytes of path
 *   tls://FORM     any TCP form above, under TLS               (connect only)
 *
 * A host name is dot-separated labels of letters, digits, '-' and '_'
 * (1..63 bytes each, 253 in all); a host of only digits and dots must be a
 * dotted quad.  A port is decimal.
 *
 *   valid:    "127.0.0.1:7400"  "localhost"  "[::1]"  "21400"  "unix:/run/p.sock"
 *             "tls://broker.example:7400"  "tls://[::1]:7401"
 *   invalid:  "::1:7400" (brackets)  "127.1:7400" (not a dotted quad)
 *             "[127.0.0.1]:1" (not IPv6)  ":7400" (no host)  "a b:1"  "h:65536"
 *             "tls://unix:/p.sock" (TLS is for TCP)  "tcp://h:1" (no such scheme)
 *
 * Roles.  What an address means differs between the two ends, so the
 * caller says which it parses:
 *
 *                              ADDR_CONNECT          ADDR_LISTEN
 *   no port ("host", "[v6]")   port 7400             refused: say which port
 *   a bare number N            127.0.0.1:N           refused: say which host
 *   port 0                     refused               the system picks a port
 *   unix:relative/path         from the working dir  refused: must be absolute
 *   tls://...                  TCP under TLS         refused: a listener speaks
 *                                                    TLS by its tls_cert/tls_key
 *
 * Schemes.  A "NAME://" prefix names a transport other than plain TCP or
 * unix sockets.  "tls://" (in any case) is the one there is: the clients
 * connect over TCP and speak TLS on it (unix sockets are guarded by their
 * file mode, so TLS on them is refused).  Any other prefix is refused by
 * name.  The scheme goes into struct addr's scheme field; the rest of the
 * address is parsed as without it.
 *
 * Parsing is pure (no system call, no allocation), so it can be tested
 * alone; addr_resolve then asks getaddrinfo.  Shared by pigeond's config
 * (bind) and libpigeon; the Python client implements the same forms in
 * clients/python/pigeon/address.py.
 */
#ifndef PIGEON_ADDR_H
#define PIGEON_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define ADDR_HOST_MAX 253 /* the longest host name; IPv6 with a zone fits too */
#define ADDR_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1) /* 107 on Linux */
#define ADDR_WHY_MAX  128 /* room for any message of addr_parse */

enum addr_role {
    ADDR_CONNECT, /* a broker to connect to: the clients */
    ADDR_LISTEN,  /* a socket to listen on: pigeond's bind */
};

enum addr_scheme {
    ADDR_SCHEME_PLAIN, /* no prefix: plain TCP, or a unix socket */
    ADDR_SCHEME_TLS,   /* "tls://": TCP under TLS (ADDR_CONNECT only) */
};

enum addr_kind {
    ADDR_TCP,
    ADDR_UNIX,
};

struct addr {
    enum addr_scheme scheme;
    enum addr_kind kind;
    char host[ADDR_HOST_MAX + 1]; /* TCP: without brackets */
    uint16_t port;                /* TCP */
    char path[ADDR_PATH_MAX + 1]; /* UNIX */
};

/*
 * Parses S (borrowed for the call) as an address for ROLE into *OUT.
 * Returns 0, or -1 with a phrase saying what is wrong in WHY (WHY_LEN
 * bytes; ADDR_WHY_MAX is always enough), such as "the port must be a
 * number from 1 to 65535".  The phrase does not repeat S: the caller
 * names the address ("bad address '...': ...").
 */
int addr_parse(const char *s, enum addr_role role, struct addr *out, char *why, size_t why_len);

/* One resolved socket address. */
struct addr_target {
    struct sockaddr_storage sa;
    socklen_t len;
    int family;
};

#define ADDR_MAX_TARGETS 8

/*
 * Resolves A into up to ADDR_MAX_TARGETS targets (OUT), in getaddrinfo's
 * order.  Returns their number (>= 1), or -1 with *WHY set to a static
 * phrase (gai_strerror's, for a name that does not resolve).
 */
int addr_resolve(const struct addr *a, struct addr_target *out, const char **why);

/* Writes A back as text into OUT (OUTLEN bytes), for messages: "tls://" first
 * for ADDR_SCHEME_TLS. */
void addr_format(const struct addr *a, char *out, size_t outlen);

#endif
