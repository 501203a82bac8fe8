/*
 * addr.c - parsing and resolving broker addresses (see addr.h for the forms).
 */
#include "addr.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

static int fail(const char **why, const char *reason)
{
    *why = reason;
    return -1;
}

/* Parses the decimal port P (NUL-terminated) into *PORT. */
static int parse_port(const char *p, uint16_t *port, const char **why)
{
    unsigned long v = 0;

    if (*p == '\0')
        return fail(why, "missing port after ':'");
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return fail(why, "port is not a number");
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535)
            return fail(why, "port out of range (1..65535)");
    }
    if (v == 0)
        return fail(why, "port out of range (1..65535)");
    *port = (uint16_t)v;
    return 0;
}

static int parse_unix(const char *path, struct addr *a, const char **why)
{
    size_t n = strlen(path);

    if (n == 0)
        return fail(why, "empty unix socket path");
    if (n >= sizeof(a->path))
        return fail(why, "unix socket path longer than 107 bytes");
    a->kind = ADDR_UNIX;
    memcpy(a->path, path, n + 1);
    return 0;
}

/* "[v6]" or "[v6]:port". */
static int parse_bracketed(const char *s, struct addr *a, const char **why)
{
    const char *close = strchr(s, ']');

    if (close == NULL)
        return fail(why, "missing ']' after an IPv6 address");
    size_t n = (size_t)(close - s - 1);
    if (n == 0)
        return fail(why, "empty IPv6 address");
    if (n > ADDR_HOST_MAX)
        return fail(why, "host name too long");
    memcpy(a->host, s + 1, n);
    a->host[n] = '\0';
    if (strchr(a->host, ':') == NULL)
        return fail(why, "brackets are for IPv6 addresses only");
    if (close[1] == '\0')
        return 0;
    if (close[1] != ':')
        return fail(why, "expected ':port' after ']'");
    return parse_port(close + 2, &a->port, why);
}

int addr_parse(const char *s, struct addr *a, const char **why)
{
    memset(a, 0, sizeof(*a));
    a->kind = ADDR_TCP;
    a->port = PROTO_DEFAULT_PORT;
    if (s == NULL || *s == '\0')
        return fail(why, "empty address");
    if (strncmp(s, "unix:", 5) == 0)
        return parse_unix(s + 5, a, why);
    if (s[0] == '[')
        return parse_bracketed(s, a, why);

    const char *colon = strchr(s, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
        return fail(why, "an IPv6 address needs brackets: [addr]:port");
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (n == 0)
        return fail(why, "missing host before ':'");
    if (n > ADDR_HOST_MAX)
        return fail(why, "host name too long");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch == 0x7f || ch == '/')
            return fail(why, "host contains a space, '/' or a control character");
    }
    memcpy(a->host, s, n);
    a->host[n] = '\0';
    return colon ? parse_port(colon + 1, &a->port, why) : 0;
}

int addr_resolve(const struct addr *a, struct addr_target *out, const char **why)
{
    if (a->kind == ADDR_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&out[0].sa;
        memset(&out[0], 0, sizeof(out[0]));
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, a->path, strlen(a->path) + 1);
        out[0].len = (socklen_t)sizeof(*sun);
        out[0].family = AF_UNIX;
        return 1;
    }

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
    if (rc != 0)
        return fail(why, gai_strerror(rc));
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
    if (n == 0)
        return fail(why, "no usable address");
    return n;
}

void addr_format(const struct addr *a, char *out, size_t outlen)
{
    if (a->kind == ADDR_UNIX)
        snprintf(out, outlen, "unix:%s", a->path);
    else if (strchr(a->host, ':') != NULL)
        snprintf(out, outlen, "[%s]:%u", a->host, a->port);
    else
        snprintf(out, outlen, "%s:%u", a->host, a->port);
}
