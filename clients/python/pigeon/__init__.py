"""pigeon - the Python client of Pigeon, a MessagePack pub/sub broker.

    import pigeon

    with pigeon.connect("127.0.0.1:7400") as c:
        c.publish("orders.new", {"id": 1})
        for msg in c.subscribe("orders.>"):
            print(msg.topic, msg.payload)

pigeon.connect() makes a blocking, thread-safe Client; pigeon.aio.connect()
an asyncio AsyncClient with the same verbs as coroutines.  Payloads are any
MessagePack-able Python object (None, bool, int, float, str, bytes, list,
tuple, dict, msgpack.ExtType), or exact MessagePack bytes with raw=True.
Errors are PigeonError subclasses (pigeon.errors).  "tls://host:port"
connects over TLS (the ssl module); user= and password=, or token=, log in.
Needs only the standard library and msgpack.
"""

from . import address, aio, errors, topic
from .address import Address, parse_address
from .aio import AsyncClient, AsyncSubscription
from .client import Client, Subscription, connect
from .errors import (AuthError, AuthFailed, AuthRequired, BadAddress, BadFrame, BadParams,
                     BadTopic, BufferFull, ClientClosed, ConnectError, ConnectionLost, Forbidden,
                     LimitError, NoResponders, PayloadError, PigeonError,  # noqa: F401
                     SlowConsumer, TimeoutError, TlsError, TooLarge, UnknownMethod)
from .protocol import Backoff, Message
from .topic import check_pattern, check_topic, matches

__version__ = "0.1.0"

# TimeoutError stays out of __all__: a star import would shadow the builtin.
__all__ = [
    "connect", "Client", "Subscription", "Message", "Backoff", "aio", "AsyncClient",
    "AsyncSubscription", "errors", "topic", "address", "Address", "parse_address", "check_topic",
    "check_pattern", "matches", "PigeonError", "BadAddress", "BadFrame", "UnknownMethod",
    "BadParams", "BadTopic", "TooLarge", "AuthError", "AuthRequired", "AuthFailed", "Forbidden",
    "SlowConsumer", "LimitError", "ConnectError", "TlsError", "ConnectionLost", "ClientClosed",
    "BufferFull", "PayloadError", "NoResponders",
]
