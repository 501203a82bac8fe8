"""address.py - the broker addresses the client accepts, parsed.

The same forms, defaults and messages as libpigeon and the CLI, whose
parser is src/common/addr.c (shared with pigeond's `bind`); docs/cli.md
lists them for users:

    host:port     a dotted quad or a host name: "127.0.0.1:7400",
                  "broker.example:7400"
    [v6]:port     an IPv6 address in brackets, optional %zone: "[::1]:7400"
    host, [v6]    the default port, 7400
    port          a bare number N: 127.0.0.1:N
    unix:/path    a unix domain socket (at most 107 bytes of path)
    tls://FORM    any of the TCP forms above, under TLS: "tls://broker.example:7401"

A host name is dot-separated labels of letters, digits, '-' and '_' (1..63
bytes each, 253 in all); a host of only digits and dots must be a dotted
quad.  Ports are 1..65535.  "tls://" (in any case) is the one "NAME://"
prefix there is; any other is refused by name, and so is TLS over a unix
socket (its file mode guards it).

Parsing does no I/O.  An address that is none of these raises BadAddress
(a ValueError) naming the address and what is wrong with it.
"""

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from typing import Optional

from .errors import BadAddress

DEFAULT_PORT = 7400
DEFAULT_SERVER = "127.0.0.1:%d" % DEFAULT_PORT
LOOPBACK = "127.0.0.1"
HOST_MAX = 253
PATH_MAX = 107  # sun_path less its NUL, on Linux
ZONE_MAX = 15   # IF_NAMESIZE - 1

_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,%d}\Z" % ZONE_MAX)


@dataclass(frozen=True)
class Address:
    """Where a broker listens: TCP host and port, or a unix socket path.

    scheme is "" (plain TCP or a unix socket) or "tls" (TCP under TLS).
    """

    host: Optional[str]
    port: Optional[int]
    path: Optional[str]
    scheme: str = ""

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    @property
    def is_tls(self) -> bool:
        return self.scheme == "tls"

    def __str__(self) -> str:
        if self.path is not None:
            return "unix:" + self.path
        prefix = "tls://" if self.is_tls else ""
        if ":" in self.host:
            return "%s[%s]:%d" % (prefix, self.host, self.port)
        return "%s%s:%d" % (prefix, self.host, self.port)


def parse_address(address: Optional[str] = None) -> Address:
    """Parses ADDRESS (see the module's forms).

    None means $PIGEON_SERVER, else 127.0.0.1:7400.  Raises BadAddress
    (a ValueError), TypeError for what is not a str.
    """
    if address is None:
        address = os.environ.get("PIGEON_SERVER") or DEFAULT_SERVER
    if not isinstance(address, str):
        raise TypeError("address must be a str, not %s" % type(address).__name__)
    try:
        return _parse(address)
    except _Bad as e:
        shown = address if len(address) <= 64 else address[:64] + "..."
        raise BadAddress("bad address '%s': %s" % (shown, e)) from None


class _Bad(Exception):
    """What is wrong, before the address is named."""


def _parse(s: str) -> Address:
    if not s:
        raise _Bad("empty address")
    m = _SCHEME.match(s)
    if m and m.group(0).lower() == "tls://":
        return _parse_tls(s[len(m.group(0)):])
    if m:
        raise _Bad("unsupported scheme %r: expected host:port, [v6addr]:port, unix:/path or "
                   "tls://host:port" % m.group(0)[:19])
    if s.startswith("unix:"):
        return _parse_unix(s[5:])
    if s.startswith("["):
        return _parse_v6(s)
    return _parse_host_port(s)


def _parse_tls(rest: str) -> Address:
    """What follows "tls://": a TCP form."""
    if not rest:
        raise _Bad("nothing after tls://: expected tls://host:port")
    if rest.startswith("unix:"):
        raise _Bad("TLS is for TCP: tls://host:port, not a unix socket (its file mode guards it)")
    a = _parse_v6(rest) if rest.startswith("[") else _parse_host_port(rest)
    return Address(a.host, a.port, None, "tls")


def _parse_port(text: str) -> int:
    if not text:
        raise _Bad("missing port after ':'")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise _Bad("the port must be a number from 1 to 65535")
    return int(text)


def _parse_unix(path: str) -> Address:
    if not path:
        raise _Bad("empty unix socket path")
    size = len(path.encode("utf-8", "surrogateescape"))
    if size > PATH_MAX:
        raise _Bad("the socket path is %d bytes, the most a unix socket takes is %d"
                   % (size, PATH_MAX))
    if path.endswith("/"):
        raise _Bad("the socket path names a directory")
    return Address(None, None, path)


def _v6_ok(host: str) -> bool:
    bare, pct, zone = host.partition("%")
    if pct and not _ZONE.match(zone):
        return False
    try:
        ipaddress.IPv6Address(bare)
    except ValueError:
        return False
    return True


def _parse_v6(s: str) -> Address:
    end = s.find("]")
    rest = s[end + 1:] if end >= 0 else None
    if rest is None or (rest and not rest.startswith(":")):
        raise _Bad("expected [v6addr]:port or [v6addr]")
    host = s[1:end]
    if len(host) > HOST_MAX or not _v6_ok(host):
        raise _Bad("not an IPv6 address inside [ ]")
    port = _parse_port(rest[1:]) if rest else DEFAULT_PORT
    return Address(host, port, None)


def _host_ok(host: str) -> bool:
    if host.strip("0123456789.") == "":
        try:
            socket.inet_pton(socket.AF_INET, host)  # the dotted quad inet_pton takes
        except OSError:
            return False
        return True
    return (len(host) <= HOST_MAX and host.isascii()
            and all(_LABEL.match(label) for label in host.split(".")))


def _parse_host_port(s: str) -> Address:
    host, colon, port = s.partition(":")
    if not colon and s.isascii() and s.isdigit():
        return Address(LOOPBACK, _parse_port(s), None)  # a bare port
    if ":" in port:
        raise _Bad("an IPv6 address needs brackets: [addr]:port")
    if not host:
        raise _Bad("missing host before ':'")
    if not _host_ok(host):
        raise _Bad("not an IPv4 address or a host name")
    return Address(host, _parse_port(port) if colon else DEFAULT_PORT, None)


def open_socket(addr: Address, timeout: Optional[float]) -> socket.socket:
    """A connected, blocking stream socket to ADDR (raises OSError)."""
    if addr.is_unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(addr.path)
        except BaseException:
            sock.close()
            raise
    else:
        sock = socket.create_connection((addr.host, addr.port), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock
