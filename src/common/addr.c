/*
 * addr.c - parsing and resolving addresses (see addr.h for the forms and
 * the roles).
 *
 * The parser reads top-down: a scheme prefix ("tls://", to connect), then
 * one of three shapes chosen by the first bytes: "unix:", '[', or a host
 * and port.  Messages are the daemon's historical ones where they existed
 * (tests/unit_config.c matches them), so `pigeond -t` reads as before.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <net/if.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto.h"

#define ADDR_LOOPBACK "127.0.0.1"

/* ------------------------------------------------------------ helpers --- */

/* Writes the message FMT into WHY; returns -1. */
__attribute__((format(printf, 3, 4))) static int addr_fail(char *why, size_t why_len,
                                                           const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return -1;
}

static bool addr_all_digits(const char *s, size_t len)
{
    return len > 0 && strspn(s, "0123456789") >= len;
}

/* A host name: dot-separated labels of letters, digits, '-' and '_'. */
static bool addr_hostname_ok(const char *h)
{
    size_t len = strlen(h), label = 0;

    if (len == 0 || len > ADDR_HOST_MAX)
        return false;
    for (const char *c = h;; c++) {
        if (*c == '.' || *c == '\0') {
            if (label == 0 || label > 63)
                return false;
            if (*c == '\0')
                return true;
            label = 0;
        } else if (isalnum((unsigned char)*c) || *c == '-' || *c == '_') {
            label++;
        } else {
            return false;
        }
    }
}

/* A host of digits and dots is a dotted quad; anything else a host name. */
static bool addr_host_ok(const char *h)
{
    struct in_addr a4;

    if (h[strspn(h, "0123456789.")] == '\0')
        return inet_pton(AF_INET, h, &a4) == 1;
    return addr_hostname_ok(h);
}

/* An IPv6 address, with an optional "%zone" (an interface name or number). */
static bool addr_v6_ok(const char *h)
{
    char bare[INET6_ADDRSTRLEN];
    struct in6_addr a6;
    const char *pct = strchr(h, '%');
    size_t n = pct != NULL ? (size_t)(pct - h) : strlen(h);

    if (n == 0 || n >= sizeof(bare))
        return false;
    memcpy(bare, h, n);
    bare[n] = '\0';
    if (inet_pton(AF_INET6, bare, &a6) != 1)
        return false;
    if (pct == NULL)
        return true;
    size_t zone = strlen(pct + 1);
    if (zone == 0 || zone >= IF_NAMESIZE)
        return false;
    for (const char *c = pct + 1; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && !strchr("-_.", *c))
            return false;
    return true;
}

/* The decimal port P (NUL-terminated) into *PORT; 0 only to listen. */
static int addr_parse_port(const char *p, enum addr_role role, uint16_t *port, char *why,
                           size_t why_len)
{
    unsigned long v = 0;
    unsigned long lowest = role == ADDR_LISTEN ? 0 : 1;

    if (*p == '\0')
        return addr_fail(why, why_len, "missing port after ':'");
    for (const char *c = p; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') {
            v = 65536;
            break;
        }
        v = v * 10 + (unsigned long)(*c - '0');
        if (v > 65535)
            break;
    }
    if (v < lowest || v > 65535)
        return addr_fail(why, why_len, "the port must be a number from %lu to 65535", lowest);
    *port = (uint16_t)v;
    return 0;
}

/* ------------------------------------------------------------ the forms --- */

/*
 * A "NAME://" prefix at S.  "tls://" (any case) to connect sets A's scheme
 * and returns the prefix's length; any other, or "tls://" to listen, is
 * refused by name (-1).  0 when S has none: a "1x://" is no scheme name,
 * and the shapes below say what is wrong with it.
 */
static int addr_parse_scheme(const char *s, enum addr_role role, struct addr *a, char *why,
                             size_t why_len)
{
    const char *sep = strstr(s, "://");
    size_t n = sep != NULL ? (size_t)(sep - s) : 0;

    if (n == 0 || !isalpha((unsigned char)s[0]) ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") < n)
        return 0;
    if (n == 3 && strncasecmp(s, "tls", 3) == 0) {
        if (role == ADDR_LISTEN)
            return addr_fail(why, why_len,
                             "tls:// is for clients: a listener speaks TLS when it has tls_cert "
                             "and tls_key");
        a->scheme = ADDR_SCHEME_TLS;
        return (int)n + 3;
    }
    return addr_fail(
        why, why_len, "unsupported scheme '%.*s://': expected %s", (int)(n > 16 ? 16 : n), s,
        role == ADDR_LISTEN ? "host:port, [v6addr]:port or unix:/path"
                            : "host:port, [v6addr]:port, unix:/path or tls://host:port");
}

/* "unix:PATH": the part after "unix:" into A. */
static int addr_parse_unix(const char *path, enum addr_role role, struct addr *a, char *why,
                           size_t why_len)
{
    size_t len = strlen(path);

    if (role == ADDR_LISTEN && path[0] != '/')
        return addr_fail(why, why_len,
                         "a unix socket path must be absolute: unix:/run/pigeon/pigeond.sock");
    if (len == 0)
        return addr_fail(why, why_len, "empty unix socket path");
    if (len > ADDR_PATH_MAX)
        return addr_fail(why, why_len,
                         "the socket path is %zu bytes, the most a unix socket takes is %zu", len,
                         ADDR_PATH_MAX);
    if (path[len - 1] == '/')
        return addr_fail(why, why_len, "the socket path names a directory");
    a->kind = ADDR_UNIX;
    memcpy(a->path, path, len + 1);
    return 0;
}

/* "[v6]:port", or "[v6]" to connect, into A. */
static int addr_parse_v6(const char *s, enum addr_role role, struct addr *a, char *why,
                         size_t why_len)
{
    const char *rb = strchr(s, ']');
    const char *expected =
        role == ADDR_LISTEN ? "expected [v6addr]:port" : "expected [v6addr]:port or [v6addr]";

    if (rb == NULL || (rb[1] != ':' && (rb[1] != '\0' || role == ADDR_LISTEN)))
        return addr_fail(why, why_len, "%s", expected);
    size_t n = (size_t)(rb - s - 1);
    if (n > ADDR_HOST_MAX)
        return addr_fail(why, why_len, "not an IPv6 address inside [ ]");
    memcpy(a->host, s + 1, n);
    a->host[n] = '\0';
    if (!addr_v6_ok(a->host))
        return addr_fail(why, why_len, "not an IPv6 address inside [ ]");
    a->kind = ADDR_TCP;
    return rb[1] == ':' ? addr_parse_port(rb + 2, role, &a->port, why, why_len) : 0;
}

/* A bare number N: 127.0.0.1:N to connect; to listen, say to name the host. */
static int addr_parse_bare_port(const char *s, enum addr_role role, struct addr *a, char *why,
                                size_t why_len)
{
    if (role == ADDR_LISTEN)
        return addr_fail(why, why_len,
                         "expected host:port, [v6addr]:port or unix:/path, e.g. " ADDR_LOOPBACK
                         ":%.5s for loopback only",
                         s);
    a->kind = ADDR_TCP;
    memcpy(a->host, ADDR_LOOPBACK, sizeof(ADDR_LOOPBACK));
    return addr_parse_port(s, role, &a->port, why, why_len);
}

/* "host:port", or "host" to connect, into A. */
static int addr_parse_host_port(const char *s, enum addr_role role, struct addr *a, char *why,
                                size_t why_len)
{
    const char *colon = strchr(s, ':');
    size_t n = colon != NULL ? (size_t)(colon - s) : strlen(s);

    if (colon == NULL && addr_all_digits(s, n))
        return addr_parse_bare_port(s, role, a, why, why_len);
    if (colon == NULL && role == ADDR_LISTEN)
        return addr_fail(why, why_len, "expected host:port, [v6addr]:port or unix:/path");
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
        return addr_fail(why, why_len, "an IPv6 address needs brackets: [addr]:port");
    if (n == 0)
        return addr_fail(why, why_len,
                         role == ADDR_LISTEN
                             ? "missing host: 0.0.0.0 listens on every IPv4 address, [::] on IPv6"
                             : "missing host before ':'");
    if (n > ADDR_HOST_MAX)
        return addr_fail(why, why_len, "not an IPv4 address or a host name");
    memcpy(a->host, s, n);
    a->host[n] = '\0';
    if (!addr_host_ok(a->host))
        return addr_fail(why, why_len, "not an IPv4 address or a host name");
    a->kind = ADDR_TCP;
    return colon != NULL ? addr_parse_port(colon + 1, role, &a->port, why, why_len) : 0;
}

int addr_parse(const char *s, enum addr_role role, struct addr *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    out->scheme = ADDR_SCHEME_PLAIN;
    out->port = PROTO_DEFAULT_PORT;
    if (s == NULL || *s == '\0')
        return addr_fail(why, why_len, "empty address");
    int used = addr_parse_scheme(s, role, out, why, why_len);
    if (used < 0)
        return -1;
    s += used;
    if (out->scheme == ADDR_SCHEME_TLS && *s == '\0')
        return addr_fail(why, why_len, "nothing after tls://: expected tls://host:port");
    if (strncmp(s, "unix:", 5) == 0) {
        if (out->scheme == ADDR_SCHEME_TLS)
            return addr_fail(why, why_len,
                             "TLS is for TCP: tls://host:port, not a unix socket (its file mode "
                             "guards it)");
        return addr_parse_unix(s + 5, role, out, why, why_len);
    }
    if (s[0] == '[')
        return addr_parse_v6(s, role, out, why, why_len);
    return addr_parse_host_port(s, role, out, why, why_len);
}

/* ------------------------------------------------------------ resolving --- */

static int addr_resolve_unix(const struct addr *a, struct addr_target *out)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out[0].sa;

    memset(&out[0], 0, sizeof(out[0]));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, a->path, strlen(a->path) + 1);
    out[0].len = (socklen_t)sizeof(*sun);
    out[0].family = AF_UNIX;
    return 1;
}

int addr_resolve(const struct addr *a, struct addr_target *out, const char **why)
{
    if (a->kind == ADDR_UNIX)
        return addr_resolve_unix(a, out);

    struct addrinfo hints, *res = NULL;
    char port[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    snprintf(port, sizeof(port), "%u", a->port);
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc == EAI_BADFLAGS || (rc != 0 && rc != EAI_SYSTEM && rc != EAI_MEMORY)) {
        /* AI_ADDRCONFIG hides loopback on hosts with no configured address. */
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(a->host, port, &hints, &res);
    }
    if (rc != 0) {
        *why = gai_strerror(rc);
        return -1;
    }
    int n = 0;
    for (const struct addrinfo *ai = res; ai != NULL && n < ADDR_MAX_TARGETS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(out[n].sa))
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(&out[n].sa, ai->ai_addr, ai->ai_addrlen);
        out[n].len = ai->ai_addrlen;
        out[n].family = ai->ai_family;
        n++;
    }
    freeaddrinfo(res);
    if (n == 0) {
        *why = "no usable address";
        return -1;
    }
    return n;
}

void addr_format(const struct addr *a, char *out, size_t outlen)
{
    const char *scheme = a->scheme == ADDR_SCHEME_TLS ? "tls://" : "";

    if (a->kind == ADDR_UNIX)
        snprintf(out, outlen, "unix:%s", a->path);
    else if (strchr(a->host, ':') != NULL)
        snprintf(out, outlen, "%s[%s]:%u", scheme, a->host, a->port);
    else
        snprintf(out, outlen, "%s%s:%u", scheme, a->host, a->port);
}
