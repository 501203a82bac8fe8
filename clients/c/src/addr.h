/*
 * addr.h - the broker addresses a client accepts, parsed and resolved.
 *
 *   "host:port"     IPv4 dotted quad or a host name, e.g. "127.0.0.1:7400",
 *                   "broker.example:7400"
 *   "[ipv6]:port"   brackets required: "[::1]:7400"
 *   "host", "[ipv6]" the default port, 7400
 *   "unix:/path"    a Unix domain socket (at most 107 bytes of path)
 *
 * The same forms pigeond's `bind` takes, so an address can be copied from
 * the broker's config or ports file.  Parsing is pure (no system call) so
 * that it can be tested alone; addr_resolve then asks getaddrinfo.
 */
#ifndef PIGEON_ADDR_H
#define PIGEON_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define ADDR_HOST_MAX 255

enum addr_kind {
    ADDR_TCP,
    ADDR_UNIX,
};

struct addr {
    enum addr_kind kind;
    char host[ADDR_HOST_MAX + 1];                           /* TCP: without brackets */
    uint16_t port;                                          /* TCP */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* UNIX */
};

/*
 * Parses S into A.  Returns 0, or -1 with *WHY set to a static phrase
 * ("port out of range", ...).  S is borrowed for the call.
 */
int addr_parse(const char *s, struct addr *a, const char **why);

/* One resolved socket address. */
struct addr_target {
    struct sockaddr_storage sa;
    socklen_t len;
    int family;
};

#define ADDR_MAX_TARGETS 8

/*
 * Resolves A into up to ADDR_MAX_TARGETS targets, in getaddrinfo's order.
 * Returns their number (>= 1), or -1 with *WHY set to a static phrase
 * (gai_strerror's, for a name that does not resolve).
 */
int addr_resolve(const struct addr *a, struct addr_target *out, const char **why);

/* Writes A back as text into OUT (OUTLEN bytes), for messages. */
void addr_format(const struct addr *a, char *out, size_t outlen);

#endif
