"""errors.py - the exceptions the Pigeon client raises.

Every exception is a PigeonError, with .code (the protocol's error code, or
None for faults on the client's side of the wire) and .message.  The broker's
codes (the error table of the protocol) map to one class each; error_for()
makes the right one from a [code, message] pair.

Several classes also derive from the builtin that a Python programmer would
catch anyway: a bad topic is a ValueError, a timeout a TimeoutError, a lost
connection a ConnectionError.  So `except TimeoutError` works with no import
from this package.
"""

import builtins
from typing import Dict, Optional, Type


class PigeonError(Exception):
    """Base of every error this package raises.

    .code is the protocol's error code (1..10) when the broker or the
    protocol's rules name one, else None; .message is the human text.
    """

    code: Optional[int] = None

    def __init__(self, message: str, code: Optional[int] = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return "%s (code %d)" % (self.message, self.code)


# ------------------------------------------------ the protocol's codes ----

class BadFrame(PigeonError, ValueError):
    """Code 1: not MessagePack, a frame of the wrong shape, or nesting deeper
    than 32 levels.  The broker closes the connection after it."""
    code = 1


class UnknownMethod(PigeonError):
    """Code 2: a method the broker does not have."""
    code = 2


class BadParams(PigeonError, ValueError):
    """Code 3: params of the wrong type or count (also a bad queue name or
    bad headers, caught before sending)."""
    code = 3


class BadTopic(PigeonError, ValueError):
    """Code 4: a topic, pattern or reply_to that breaks the topic rules."""
    code = 4


class TooLarge(PigeonError, ValueError):
    """Code 5: a frame above the broker's max_payload.  The client checks
    before sending, so the connection survives."""
    code = 5


class AuthError(PigeonError):
    """Codes 6 and 7: the broker refused the login (fatal: it closes the
    connection).  connect() raises it at once, and a reconnect that meets
    it gives up: the same credentials would be refused again.  The message
    is the broker's, then which credentials were sent (never their value):
    "authentication failed (as user 'alice')"."""


class AuthRequired(AuthError):
    """Code 6: the broker wants a hello with credentials first."""
    code = 6


class AuthFailed(AuthError):
    """Code 7: wrong or missing credentials."""
    code = 7


class Forbidden(PigeonError):
    """Code 8: the user may not do this: publish to the topic, subscribe
    with the pattern, ask for replies on the reply_to; or anyone publishing
    to a '$' topic.  The message is the broker's and names the topic ("not
    allowed to publish to 'orders.admin.x'"); the connection stays open."""
    code = 8


class SlowConsumer(PigeonError):
    """Code 9: this connection read too slowly; messages were lost."""
    code = 9


class LimitError(PigeonError):
    """Code 10: a configured limit (subscriptions, connections, the
    retained store, the idle timeout)."""
    code = 10


# ------------------------------------------------ the client's own ----

class BadAddress(PigeonError, ValueError):
    """An address that is none of the forms pigeon.address lists: the
    message names it and says what is wrong."""


class ConnectError(PigeonError, builtins.ConnectionError):
    """The broker could not be reached (no one listening, no such host)."""


class TlsError(ConnectError):
    """TLS failed (tls:// addresses): the broker's certificate did not
    verify (an unknown CA, a name it is not for), the handshake failed, the
    broker refused this client's certificate, or a CA, certificate or key
    file could not be loaded.  The message says which.  Not retried before
    a first connection was made: a wrong CA or name does not fix itself."""


class ConnectionLost(PigeonError, builtins.ConnectionError):
    """The connection broke while a call was in flight, or for good.

    .reason is the broker's error that preceded the close (say a
    SlowConsumer or the idle timeout's LimitError), or None.
    """

    def __init__(self, message: str, reason: Optional[PigeonError] = None):
        if reason is not None:
            message = "%s: %s" % (message, reason)
        super().__init__(message)
        self.reason = reason
        self.__cause__ = reason


class ClientClosed(PigeonError):
    """The client (or the subscription) was closed by this program."""


class TimeoutError(PigeonError, builtins.TimeoutError):  # noqa: A001
    """No answer in time: a request without a reply, a call without a
    response.  Also a builtins.TimeoutError."""


class BufferFull(PigeonError):
    """A publication while disconnected found the reconnect buffer full."""


class NoResponders(PigeonError):
    """A request reached no subscriber: the broker delivered it to nobody,
    so no reply can come.  Raised at once, not after the timeout (libpigeon's
    PIGEON_ENORESPONDERS, the CLI's exit code 5)."""


class PayloadError(PigeonError, ValueError):
    """A received payload that is valid MessagePack but has no Python
    value: a str that is not UTF-8, or a map with an array or map as a key.
    .raw holds the payload's bytes as the publisher sent them (read them as
    they are, or decode with msgpack yourself, e.g. with raw=True)."""

    def __init__(self, message: str, raw: bytes):
        super().__init__(message)
        self.raw = raw


_BY_CODE: Dict[int, Type[PigeonError]] = {
    cls.code: cls
    for cls in (BadFrame, UnknownMethod, BadParams, BadTopic, TooLarge,
                AuthRequired, AuthFailed, Forbidden, SlowConsumer, LimitError)
}

FATAL_CODES = frozenset((1, 5, 6, 7))
"""Codes after which the broker always closes the connection."""


def error_for(code: object, message: object) -> PigeonError:
    """The exception for a protocol error [code, message] from the broker.

    An unknown code gives a plain PigeonError carrying it, so that a newer
    broker's codes still reach the program intact.
    """
    text = message if isinstance(message, str) else repr(message)
    if isinstance(code, int) and not isinstance(code, bool):
        cls = _BY_CODE.get(code)
        if cls is not None:
            return cls(text)
        return PigeonError(text, code)
    return PigeonError("malformed error %r: %s" % (code, text))
