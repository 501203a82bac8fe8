"""protocol.py - the wire format: frames out and in, and the values both
clients share with it.  What the frames mean to a client, its session, is
session.py's; neither does I/O.

Layers, top-down: constants; the Message type; encoding frames
(payload checks included); decoding the byte stream into frames; the
reconnect backoff.

A frame is a MessagePack-RPC array (see docs/protocol.md):

    request       [0, msgid, method, params]
    response      [1, msgid, error, result]
    notification  [2, method, params]

Two rules shape this module.  A payload is spliced into a frame as bytes,
so one given raw (already MessagePack) is sent exactly as given; and a
received `msg` is cut out of the stream as bytes, so Message.raw is exactly
what the publisher sent and is decoded only when asked for.
"""

import itertools
import os
import random
import sys
from collections import namedtuple
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import msgpack

from . import topic as _topic
from .errors import BadFrame, BadParams, Forbidden, PayloadError, TooLarge

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2
PROTO_VERSION = 1
MAX_DEPTH = 32
"""Nesting limit of a frame; the frame's array is level 1, params level 2."""
PAYLOAD_MAX_DEPTH = MAX_DEPTH - 2
"""Containers a payload may nest: it sits inside the frame and params."""
DEFAULT_MAX_PAYLOAD = 1 << 20
"""Assumed until hello tells the broker's setting."""
READ_CHUNK = 256 * 1024
"""Bytes asked of the socket per read: large, so big messages take few."""
MSGID_MASK = 0xFFFFFFFF


# ------------------------------------------------------------- messages ----

def unpack(data: bytes) -> Any:
    """Decodes one MessagePack object the way payloads are decoded.

    Raises PayloadError (with .raw) for what MessagePack allows but Python
    cannot hold: a str that is not UTF-8 (UnicodeDecodeError), a map keyed
    by an array or a map (TypeError: unhashable).
    """
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError) as e:
        raise PayloadError("payload of %d bytes cannot be decoded: %s" % (len(data), e),
                           bytes(data)) from e


class Message:
    """One message received on a subscription (or as a reply).

    topic     the topic it was published to
    payload   the payload as a Python object (decoded on first access), or
              the raw bytes where the subscription asked for raw=True
    raw       the payload's exact MessagePack bytes, as the publisher sent
    reply_to  where the publisher wants an answer, or None
    headers   a dict of str to str (empty when there are none)
    retained  True for a retained value replayed at subscribe time
    sid       the subscription's id (Subscription.sid; stable across
              reconnects)

    Immutable in use, so it may be handed between threads.
    """

    __slots__ = ("topic", "raw", "reply_to", "headers", "retained", "sid",
                 "subscription", "_payload", "_raw_mode")

    _UNSET = object()

    def __init__(self, topic: str, raw: bytes, reply_to: Optional[str] = None,
                 headers: Optional[Dict[str, str]] = None, retained: bool = False,
                 sid: Optional[int] = None, subscription: Any = None,
                 raw_mode: bool = False):
        self.topic = topic
        self.raw = raw
        self.reply_to = reply_to
        self.headers = headers if headers is not None else {}
        self.retained = retained
        self.sid = sid
        self.subscription = subscription
        self._payload = Message._UNSET
        self._raw_mode = raw_mode

    @property
    def payload(self) -> Any:
        """The payload, decoded (or raw bytes for a raw=True subscription)."""
        if self._raw_mode:
            return self.raw
        if self._payload is Message._UNSET:
            self._payload = unpack(self.raw)
        return self._payload

    def __repr__(self) -> str:
        extra = ""
        if self.reply_to:
            extra += " reply_to=%r" % self.reply_to
        if self.headers:
            extra += " headers=%r" % self.headers
        if self.retained:
            extra += " retained"
        return "<Message %r %d bytes%s>" % (self.topic, len(self.raw), extra)


def message_from_frame(topic: str, raw: bytes, opts: Any, subscription: Any, sid: int,
                       raw_mode: bool) -> Message:
    """A Message from a `msg` notification's params, for SUBSCRIPTION (whose
    client-side id is SID)."""
    reply_to = headers = None
    retained = False
    if isinstance(opts, dict):
        reply_to = opts.get("reply_to")
        headers = opts.get("headers")
        retained = bool(opts.get("retained", False))
    return Message(topic, raw, reply_to, headers if isinstance(headers, dict) else None,
                   retained, sid, subscription, raw_mode)


# ------------------------------------------------------------- encoding ----

_CONTAINERS = (list, tuple, dict)


def check_depth(obj: Any, limit: int = PAYLOAD_MAX_DEPTH) -> None:
    """Raises BadFrame when OBJ nests containers deeper than LIMIT.

    The broker closes a connection that sends too deep a frame; this keeps
    the connection alive by refusing first.  Scalars cost nothing; a
    container costs a pass over its elements.
    """
    if not isinstance(obj, _CONTAINERS):
        return
    level, depth = [obj], 1  # the containers at DEPTH, one level at a time
    while level:
        if depth > limit:
            raise BadFrame("payload nests deeper than %d levels (the protocol allows %d, "
                           "frame included)" % (limit, MAX_DEPTH))
        level = [x for o in level
                 for x in (itertools.chain(o, o.values()) if isinstance(o, dict) else o)
                 if isinstance(x, _CONTAINERS)]
        depth += 1


def encode_payload(obj: Any) -> bytes:
    """OBJ as MessagePack (bin for bytes, str for str); depth checked.

    Raises TypeError for what MessagePack cannot hold, BadFrame when too
    deep or for a str with no UTF-8 form (a lone surrogate).
    """
    check_depth(obj)
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except UnicodeEncodeError as e:
        raise BadFrame("payload holds a str that is not valid UTF-8 (%s)" % e.reason) from e


def _skip_object(data: memoryview, pos: int) -> Tuple[int, int]:
    """End offset and container depth of the object at DATA[POS:].

    A pure-Python walk (bytes are jumped over, containers counted) used to
    vet payloads given raw.  Raises BadFrame on a truncated or invalid object.
    """
    n = len(data)
    remaining = [1]  # elements still to read at each open container level
    depth = 0
    while remaining:
        if remaining[-1] == 0:
            remaining.pop()
            continue
        remaining[-1] -= 1
        if pos >= n:
            raise BadFrame("truncated MessagePack object")
        b = data[pos]
        pos += 1
        count = 0
        if b <= 0x7F or b >= 0xE0 or 0xC0 <= b <= 0xC3:
            if b == 0xC1:
                raise BadFrame("byte 0xc1 is not MessagePack")
            continue
        if 0xA0 <= b <= 0xBF:
            pos += b & 0x1F
        elif 0x90 <= b <= 0x9F:
            count = b & 0x0F
        elif 0x80 <= b <= 0x8F:
            count = 2 * (b & 0x0F)
        elif b in (0xC4, 0xC5, 0xC6, 0xD9, 0xDA, 0xDB):     # bin, str 8/16/32
            w = 1 << ((b - 0xC4) if b < 0xD9 else (b - 0xD9))
            if pos + w > n:
                raise BadFrame("truncated MessagePack object")
            pos += w + int.from_bytes(data[pos:pos + w], "big")
        elif b in (0xC7, 0xC8, 0xC9):                        # ext 8/16/32
            w = 1 << (b - 0xC7)
            if pos + w > n:
                raise BadFrame("truncated MessagePack object")
            pos += w + 1 + int.from_bytes(data[pos:pos + w], "big")
        elif b in (0xCA, 0xCB):                              # float 32/64
            pos += 4 if b == 0xCA else 8
        elif 0xCC <= b <= 0xD3:                              # (u)int 8..64
            pos += 1 << ((b - 0xCC) & 3)
        elif 0xD4 <= b <= 0xD8:                              # fixext 1..16
            pos += 1 + (1 << (b - 0xD4))
        else:                                                # array, map 16/32
            w = 2 if b in (0xDC, 0xDE) else 4
            if pos + w > n:
                raise BadFrame("truncated MessagePack object")
            count = int.from_bytes(data[pos:pos + w], "big")
            pos += w
            if b in (0xDE, 0xDF):
                count *= 2
        if 0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF:
            remaining.append(count)
            depth = max(depth, len(remaining) - 1)
    if pos > n:
        raise BadFrame("truncated MessagePack object")
    return pos, depth


def check_packed(data: bytes) -> None:
    """Raises BadFrame unless DATA is exactly one MessagePack object that a
    payload may be (no trailing bytes, nesting within the limit).

    A payload given raw is sent as is; a truncated one would swallow the
    frames after it, so it is vetted first.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("a raw payload must be bytes of MessagePack, not %s"
                        % type(data).__name__)
    end, depth = _skip_object(memoryview(data).cast("B"), 0)
    if end != len(data):
        raise BadFrame("raw payload holds %d bytes after its MessagePack object"
                       % (len(data) - end))
    if depth > PAYLOAD_MAX_DEPTH:
        raise BadFrame("payload nests deeper than %d levels" % PAYLOAD_MAX_DEPTH)


def pack(obj: Any) -> bytes:
    """OBJ as MessagePack, for the envelope's own values."""
    return msgpack.packb(obj, use_bin_type=True)


def encode_request(msgid: int, method: str, params: List[Any]) -> bytes:
    return pack([REQUEST, msgid, method, params])


_PUB_NOTIFY = bytes([0x93, NOTIFICATION]) + pack("pub")


def _utf8_ok(s: str) -> bool:
    """True when S has a UTF-8 form: no lone surrogate."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_pub_options(reply_to: Optional[str], headers: Optional[Mapping[str, str]],
                      retain: bool) -> Optional[Dict[str, Any]]:
    """The opts map of a pub, checked; None when there is nothing in it."""
    opts: Dict[str, Any] = {}
    if reply_to is not None:
        _topic.check_topic(reply_to, "reply_to")
        opts["reply_to"] = reply_to
    if headers:
        if not isinstance(headers, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise BadParams("headers must be a mapping of str to str")
        for k, v in headers.items():
            if not (_utf8_ok(k) and _utf8_ok(v)):
                raise BadParams("header %r: %r is not valid UTF-8 (a lone surrogate)"
                                % (k, v if _utf8_ok(k) else k))
        opts["headers"] = dict(headers)
    if retain:
        opts["retain"] = True
    return opts or None


def encode_pub(topic: str, payload: bytes, opts: Optional[Dict[str, Any]],
               msgid: Optional[int], max_payload: int) -> bytes:
    """A pub frame: a notification, or a request when MSGID is given.

    PAYLOAD is MessagePack bytes, spliced in as they are.  Raises TooLarge
    when the frame would pass MAX_PAYLOAD (the broker's limit counts the
    whole frame).
    """
    n = 2 if opts is None else 3
    if msgid is None:
        head = _PUB_NOTIFY + bytes([0x90 | n])
    else:
        head = bytes([0x94, REQUEST]) + pack(msgid) + pack("pub") + bytes([0x90 | n])
    parts = [head, pack(topic), payload]
    if opts is not None:
        parts.append(pack(opts))
    size = len(head) + len(parts[1]) + len(payload) + (len(parts[3]) if opts else 0)
    if size > max_payload:
        raise TooLarge("frame of %d bytes passes the broker's max_payload of %d bytes"
                       % (size, max_payload))
    return b"".join(parts)


def check_queue(queue: str) -> None:
    """A queue group name follows the rules of a topic (the broker: code 3)."""
    if not isinstance(queue, str) or not _topic.is_valid_topic(queue):
        raise BadParams("bad queue group name %r: it follows the rules of a topic" % (queue,))


def sub_params(pattern: str, queue: Optional[str]) -> List[Any]:
    return [pattern, {"queue": queue}] if queue is not None else [pattern]


def hello_params(name: Optional[str], credentials: Mapping[str, Optional[str]]) -> List[Any]:
    info = {"client": name}
    info.update({k: v for k, v in credentials.items() if v is not None})
    return [{k: v for k, v in info.items() if v is not None}]


# ------------------------------------------------------- shared checks ----

def default_name() -> str:
    """A client name for the broker's log: the program and its pid."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return "%s[%d]" % (prog or "python", os.getpid())


def check_publish(topic: str, payload: Any, raw: bool, reply_to: Optional[str],
                  headers: Optional[Mapping[str, str]], retain: bool):
    """Checks a publication; returns (payload bytes, opts) for encode_pub."""
    _topic.check_topic(topic)
    if topic.startswith("$"):
        raise Forbidden("topics beginning with '$' are the broker's own")
    opts = check_pub_options(reply_to, headers, retain)
    if raw:
        check_packed(payload)
        data = bytes(payload)
    else:
        data = encode_payload(payload)
    return data, opts


# ------------------------------------------------------------- decoding ----

class Response(namedtuple("Response", "msgid error result")):
    """A [1, msgid, error, result] frame."""
    __slots__ = ()


class Notification(namedtuple("Notification", "method params")):
    """A [2, method, params] frame other than `msg`."""
    __slots__ = ()


class MsgFrame(namedtuple("MsgFrame", "sid topic raw opts")):
    """A `msg` notification: RAW is the payload's bytes, cut from the stream."""
    __slots__ = ()


class FrameDecoder:
    """Turns the bytes of a connection into frames.

    feed() takes whatever the socket gave and returns the frames it
    completed.  One msgpack.Unpacker walks the stream with its low-level
    calls; each call either completes or, short of bytes, raises OutOfData
    and resumes where it stopped on the next call, so the walk is a
    generator that retries the same call after each feed.  A copy of the
    unconsumed stream is kept beside it so a payload can be cut out as the
    exact bytes between two offsets, never decoded to find its length.

    Raises BadFrame on bytes that are not a frame; the stream is then lost.
    """

    def __init__(self) -> None:
        # surrogateescape: the broker checks topics but not that header
        # strings are UTF-8, so a stray byte there must not cost the stream.
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                          unicode_errors="surrogateescape",
                                          max_buffer_size=0x7FFFFFFF)
        self._buf = bytearray()   # the stream from offset _base on
        self._base = 0
        self._out: List[Any] = []
        self._walk = self._frames()
        next(self._walk)

    def feed(self, data: bytes) -> List[Any]:
        self._buf += data
        self._unpacker.feed(data)
        try:
            next(self._walk)
        except (ValueError, TypeError, msgpack.ExtraData,
                msgpack.FormatError, msgpack.StackError) as e:
            raise BadFrame("bad frame from the broker: %s" % e) from e
        out, self._out = self._out, []
        return out

    def _call(self, fn) -> Iterator[None]:
        """Runs FN until it stops running out of data (yielding in between)."""
        while True:
            try:
                return fn()
            except msgpack.OutOfData:
                yield

    def _frames(self) -> Iterator[None]:
        u, call = self._unpacker, self._call
        yield
        while True:
            n = yield from call(u.read_array_header)
            kind = yield from call(u.unpack)
            if kind == RESPONSE and n == 4:
                msgid = yield from call(u.unpack)
                error = yield from call(u.unpack)
                result = yield from call(u.unpack)
                self._out.append(Response(msgid, error, result))
            elif kind == NOTIFICATION and n == 3:
                method = yield from call(u.unpack)
                if method != "msg":
                    params = yield from call(u.unpack)
                    self._out.append(Notification(method, params))
                else:
                    pn = yield from call(u.read_array_header)
                    if pn not in (3, 4):
                        raise ValueError("msg with %d params" % pn)
                    sid = yield from call(u.unpack)
                    topic = yield from call(u.unpack)
                    start = u.tell()
                    yield from call(u.skip)
                    end = u.tell()
                    opts = (yield from call(u.unpack)) if pn == 4 else None
                    raw = bytes(self._buf[start - self._base:end - self._base])
                    self._out.append(MsgFrame(sid, topic, raw, opts))
            else:
                raise ValueError("not a response or a notification (kind %r, %d elements)"
                                 % (kind, n))
            # Drop what this frame used from the copy of the stream.
            pos = u.tell()
            del self._buf[:pos - self._base]
            self._base = pos


# ------------------------------------------------------------- backoff ----

class Backoff:
    """Delays between reconnect attempts: exponential, capped, with jitter.

    Attempt k (from 0) waits about initial * 2**k, at most max_delay, each
    delay scaled by a random factor in [1 - jitter, 1] so that many clients
    cut off at once do not come back in step.  max_attempts None means no
    limit.
    """

    def __init__(self, initial: float = 0.05, max_delay: float = 5.0,
                 max_attempts: Optional[int] = None, jitter: float = 0.5):
        if initial < 0 or max_delay < 0 or not 0 <= jitter <= 1:
            raise ValueError("bad backoff settings")
        self.initial = initial
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.jitter = jitter
        self._rng = random.Random()

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ATTEMPT (0 for the first)."""
        if attempt == 0:
            return 0.0
        d = min(self.max_delay, self.initial * (2 ** min(attempt - 1, 30)))
        return d * (1 - self.jitter * self._rng.random())

    def exhausted(self, attempt: int) -> bool:
        """True when ATTEMPT would pass max_attempts."""
        return self.max_attempts is not None and attempt >= self.max_attempts


def make_backoff(backoff: Optional[Backoff], max_attempts: Optional[int]) -> Backoff:
    """BACKOFF, or the default one, with MAX_ATTEMPTS when that is given."""
    if backoff is None:
        return Backoff(max_attempts=max_attempts)
    if max_attempts is None:
        return backoff
    return Backoff(backoff.initial, backoff.max_delay, max_attempts, backoff.jitter)
