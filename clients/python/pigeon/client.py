"""client.py - the blocking client: connect(), Client, Subscription.

    with pigeon.connect("127.0.0.1:7400") as c:
        c.publish("orders.new", {"id": 1})
        for msg in c.subscribe("orders.>"):
            print(msg.topic, msg.payload)

Threads.  Each connection has a reader thread that owns the socket's input:
it cuts frames, completes calls waiting for a response, and queues messages
on their subscriptions.  A supervisor thread pings the broker when the
client has been silent for ping_interval and, with reconnect on, brings the
connection back after a loss.  Program threads write frames themselves,
whole and one at a time under a write lock.

Locks, always taken in this order: _wlock (the socket's output; held while
writing) then _lock (the client's state; never held during I/O) then a
subscription's own condition.  The reader thread takes only _lock, briefly,
so it never waits for a writer: while a writer is stuck because the broker
stopped reading, the reader keeps draining what the broker sends, which is
what lets the broker read again.

Thread safety: a Client may be shared by any number of threads; every
method is safe to call from any of them.  A Subscription may be iterated by
several threads at once (each message goes to one of them).  A Message is
not changed after it is made.
"""

import itertools
import logging
import secrets
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterator, Mapping, Optional

from . import protocol as proto
from .address import open_socket, parse_address
from .errors import (AuthFailed, AuthRequired, BadParams, BufferFull, ClientClosed,
                     ConnectError, ConnectionLost, NoResponders, PigeonError, TimeoutError,
                     error_for)
from .protocol import Backoff, Message
from .topic import check_pattern

log = logging.getLogger("pigeon")

# Client states.
CONNECTING = "connecting"      # the first connection is being made
CONNECTED = "connected"        # hello done, subscriptions in place
RECONNECTING = "reconnecting"  # lost; the supervisor is bringing it back
LOST = "lost"                  # lost for good (reconnect off, or gave up)
CLOSED = "closed"              # close() was called

DEFAULT_TIMEOUT = 10.0
DEFAULT_PING_INTERVAL = 60.0
DEFAULT_MAX_BUFFER = 8 << 20
DEFAULT_MAX_PENDING = 65536


# --------------------------------------------------------------- calls ----

class _Call:
    """One call waiting for its answer: a response, or a reply message.

    ON_DONE, when given, runs in the reader thread with the client's _lock
    held as soon as the response is read: that is where a sub's sid is
    recorded, before any message for it can be dispatched.
    """

    __slots__ = ("event", "error", "result", "on_done", "conn")

    def __init__(self, on_done: Optional[Callable[[Any, Any], None]] = None):
        self.event = threading.Event()
        self.error: Optional[BaseException] = None
        self.result: Any = None
        self.on_done = on_done
        self.conn: Optional[_Conn] = None

    def finish(self, error: Optional[BaseException], result: Any = None) -> None:
        if not self.event.is_set():
            self.error, self.result = error, result
            self.event.set()

    def wait(self, timeout: float, what: str) -> Any:
        if not self.event.wait(max(0.0, timeout)):
            raise TimeoutError(what)
        if self.error is not None:
            raise self.error
        return self.result


def request_pub_failure(topic: str, err: Any, result: Any) -> Optional[PigeonError]:
    """What ends a request at once, given the broker's response to its pub
    (sent as a request): its refusal, or NoResponders for a delivery count
    of zero.  None when someone got it, so a reply may come."""
    if err is not None:
        if isinstance(err, list) and len(err) == 2:
            return error_for(*err)
        return PigeonError("malformed error %r" % (err,))
    if result == 0:
        return NoResponders("no responders on %s" % topic)
    return None


class _Conn:
    """One socket's life: its reader thread and the state tied to it."""

    def __init__(self, sock, gen: int):
        self.sock = sock
        self.gen = gen
        self.decoder = proto.FrameDecoder()
        self.pending: Dict[int, _Call] = {}     # msgid -> call
        self.subs: Dict[int, Subscription] = {}  # the broker's sid -> subscription
        self.last_send = time.monotonic()
        self.error: Optional[PigeonError] = None  # the broker's last error notification
        self.alive = True
        self.thread: Optional[threading.Thread] = None

    def abort(self) -> None:
        """Shuts the socket down: the reader wakes and reports the loss."""
        try:
            self.sock.shutdown(2)  # SHUT_RDWR
        except OSError:
            pass

    def close(self) -> None:
        """Aborts and waits for the reader, which closes the socket."""
        self.abort()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()


# -------------------------------------------------------- subscriptions ----

class _SubscriptionQueue:
    """What both clients' subscriptions share: who they are, and the queue of
    messages received and not yet taken, bounded by max_pending.  The
    subclasses add how a reader waits for it (a Condition; an asyncio.Event)
    and hold whatever lock that needs around _push and _stop."""

    def __init__(self, sid: int, pattern: str, queue: Optional[str], raw: bool,
                 max_pending: Optional[int]):
        self.sid = sid
        self.pattern = pattern
        self.queue = queue
        self.raw = raw
        self.max_pending = max_pending
        self.dropped = 0
        self._msgs: Deque[Message] = deque()
        self._ended = False
        self._error: Optional[PigeonError] = None
        self._dropping = False

    def _push(self, msg: Message) -> bool:
        """Queues MSG; False when it was not (ended, or dropped past max_pending)."""
        if self._ended:
            return False
        if self.max_pending and len(self._msgs) >= self.max_pending:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.warning("subscription %d (%s): %d messages queued unread; dropping",
                            self.sid, self.pattern, len(self._msgs))
            return False
        self._dropping = False
        self._msgs.append(msg)
        return True

    def _stop(self, error: Optional[PigeonError], discard: bool) -> bool:
        """Ends the queue (emptied when DISCARD); False when it had ended already."""
        if self._ended:
            return False
        self._ended = True
        self._error = error
        if discard:
            self._msgs.clear()
        return True

    @property
    def active(self) -> bool:
        """False once unsubscribed, closed or lost for good."""
        return not self._ended

    @property
    def pending(self) -> int:
        """Messages received and not yet taken."""
        return len(self._msgs)


class Subscription(_SubscriptionQueue):
    """A subscription: iterate it for Messages.

        for msg in sub:            # blocks; ends after unsubscribe()/close()
            ...
        msg = sub.next_msg(timeout=1.0)   # raises TimeoutError

    .sid is the client's id for it, stable across reconnects (the broker's
    sid may change on each connection).  Where the connection is lost for
    good, iteration raises ConnectionLost once the queued messages are read.
    Messages that arrive while max_pending are queued are dropped and
    counted in .dropped.  Using it as a context manager unsubscribes on exit.
    """

    def __init__(self, client: "Client", sid: int, pattern: str, queue: Optional[str],
                 raw: bool, max_pending: Optional[int]):
        super().__init__(sid, pattern, queue, raw, max_pending)
        self._client = client
        self._cond = threading.Condition()
        # On the wire; guarded by the client's _lock.
        self._call: Optional[_Call] = None   # the latest sub request
        self._conn: Optional[_Conn] = None    # the connection _server_sid is on
        self._server_sid: Optional[int] = None

    # Reader thread side.
    def _deliver(self, msg: Message) -> None:
        with self._cond:
            if self._push(msg):
                self._cond.notify()

    def _end(self, error: Optional[PigeonError] = None, discard: bool = False) -> None:
        with self._cond:
            if self._stop(error, discard):
                self._cond.notify_all()

    # Program side.

    def next_msg(self, timeout: Optional[float] = None) -> Message:
        """The next message; waits up to TIMEOUT seconds (None: no limit).

        Raises TimeoutError, ClientClosed once unsubscribed or closed, or
        the error that ended the subscription (ConnectionLost, ...).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._msgs:
                if self._ended:
                    raise self._error or ClientClosed("subscription %d (%s) is closed"
                                                      % (self.sid, self.pattern))
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("no message on %s within %gs" % (self.pattern, timeout))
                self._cond.wait(left)
            return self._msgs.popleft()

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        try:
            return self.next_msg()
        except ClientClosed:
            raise StopIteration from None

    def unsubscribe(self, timeout: Optional[float] = None) -> None:
        """Ends the subscription (idempotent); queued messages are dropped."""
        self._client._unsubscribe(self, timeout)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.unsubscribe()
        except PigeonError:
            pass

    def __repr__(self) -> str:
        q = " queue=%s" % self.queue if self.queue else ""
        return "<Subscription %d %s%s%s>" % (self.sid, self.pattern, q,
                                             "" if self.active else " closed")


# --------------------------------------------------------------- client ----

class Client:
    """A connection to a Pigeon broker.  Make one with pigeon.connect().

    See connect() for the options.  server_info holds the broker's hello
    result (server, version, proto, client_id, max_payload).
    """

    def __init__(self, address: Optional[str] = None, *, name: Optional[str] = None,
                 timeout: float = DEFAULT_TIMEOUT, reconnect: bool = False,
                 max_attempts: Optional[int] = None, backoff: Optional[Backoff] = None,
                 ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
                 max_buffer: int = DEFAULT_MAX_BUFFER, buffer_full: str = "raise",
                 max_pending: Optional[int] = DEFAULT_MAX_PENDING,
                 on_error: Optional[Callable[[PigeonError], None]] = None,
                 token: Optional[str] = None, user: Optional[str] = None,
                 password: Optional[str] = None):
        if buffer_full not in ("raise", "drop"):
            raise ValueError("buffer_full must be 'raise' or 'drop'")
        self.address = parse_address(address)
        self.name = name if name is not None else proto.default_name()
        self.timeout = timeout
        self.reconnect = reconnect
        self.backoff = proto.make_backoff(backoff, max_attempts)
        self.ping_interval = ping_interval or None
        self.max_buffer = max_buffer
        self.buffer_full = buffer_full
        self.max_pending = max_pending
        self.on_error = on_error
        self._credentials = {"token": token, "user": user, "password": password}

        self.server_info: Dict[str, Any] = {}
        self.reconnects = 0           # successful reconnections so far
        self.dropped_publishes = 0    # publications dropped by buffer_full="drop"

        self._wlock = threading.Lock()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._state = CONNECTING
        self._conn: Optional[_Conn] = None
        self._gen = itertools.count(1)
        self._msgids = itertools.count(1)
        self._sids = itertools.count(1)
        self._subs: Dict[int, Subscription] = {}
        self._buffer: Deque[bytes] = deque()
        self._buffered = 0
        self._lost_error: Optional[ConnectionLost] = None
        self._inbox_lock = threading.Lock()
        self._inbox: Optional[Subscription] = None
        self._inbox_prefix = "_INBOX." + secrets.token_hex(11)
        self._tokens = itertools.count(1)
        self._replies: Dict[str, _Call] = {}
        self._supervisor: Optional[threading.Thread] = None

    # ------------------------------------------------------- properties

    @property
    def max_payload(self) -> int:
        """The broker's frame limit in bytes (from hello)."""
        return int(self.server_info.get("max_payload", proto.DEFAULT_MAX_PAYLOAD))

    @property
    def client_id(self) -> Optional[int]:
        """The broker's id for this connection (changes on reconnect)."""
        return self.server_info.get("client_id")

    @property
    def is_connected(self) -> bool:
        return self._state == CONNECTED

    @property
    def state(self) -> str:
        """connecting, connected, reconnecting, lost or closed."""
        return self._state

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<pigeon.Client %s %s>" % (self.address, self._state)

    # ----------------------------------------------------------- verbs

    def publish(self, topic: str, payload: Any = None, *, reply_to: Optional[str] = None,
                headers: Optional[Mapping[str, str]] = None, retain: bool = False,
                raw: bool = False, confirm: bool = False,
                timeout: Optional[float] = None) -> Optional[int]:
        """Publishes PAYLOAD (any MessagePack-able object) to TOPIC.

        raw=True: PAYLOAD is already MessagePack bytes and is sent as is.
        retain=True keeps it as the topic's last value (None clears it).
        confirm=True sends it as a request and returns how many
        subscriptions it was delivered to; otherwise it returns None as
        soon as the frame is written (or buffered, while reconnecting).
        Raises BadTopic, Forbidden, TooLarge, BadFrame (too deep), TypeError
        (not MessagePack-able), BufferFull, ConnectionLost, ClientClosed.
        """
        data, opts = proto.check_publish(topic, payload, raw, reply_to, headers, retain)
        if confirm:
            return self._call(None, None, timeout,
                              lambda msgid: proto.encode_pub(topic, data, opts, msgid,
                                                             self.max_payload))
        self._send_or_buffer(proto.encode_pub(topic, data, opts, None, self.max_payload))
        return None

    def subscribe(self, pattern: str, *, queue: Optional[str] = None, raw: bool = False,
                  max_pending: Optional[int] = None,
                  timeout: Optional[float] = None) -> Subscription:
        """Subscribes to PATTERN ('*' one token, '>' the rest); returns the
        Subscription to iterate.

        queue names a queue group: each message goes to one member.
        raw=True makes msg.payload the raw MessagePack bytes.  max_pending
        bounds the unread messages (None: the client's; 0: no bound).  While
        reconnecting it returns at once; the subscription is made on the
        new connection.  Raises BadTopic, BadParams, LimitError, ...
        """
        check_pattern(pattern)
        if queue is not None:
            proto.check_queue(queue)
        return self._subscribe(pattern, queue, raw,
                               self.max_pending if max_pending is None else max_pending,
                               timeout)

    def unsubscribe(self, sub: Subscription, timeout: Optional[float] = None) -> None:
        """Ends SUB (the same as sub.unsubscribe())."""
        self._unsubscribe(sub, timeout)

    def request(self, topic: str, payload: Any = None, *, timeout: Optional[float] = None,
                headers: Optional[Mapping[str, str]] = None, raw: bool = False) -> Any:
        """Publishes PAYLOAD with a reply_to and returns the first reply's
        payload (decoded; bytes with raw=True, which also means PAYLOAD is
        raw).  Raises TimeoutError when none comes within TIMEOUT seconds.
        """
        msg = self.request_msg(topic, payload, timeout=timeout, headers=headers, raw=raw)
        return msg.raw if raw else msg.payload

    def request_msg(self, topic: str, payload: Any = None, *, timeout: Optional[float] = None,
                    headers: Optional[Mapping[str, str]] = None, raw: bool = False) -> Message:
        """Like request(), but returns the whole reply Message (headers too)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        token = str(next(self._tokens))
        data, opts = proto.check_publish(topic, payload, raw, self._inbox_prefix + "." + token,
                                         headers, False)
        frame = proto.encode_pub(topic, data, opts, None, self.max_payload)
        self._ensure_inbox(deadline - time.monotonic())
        call = _Call()

        def pub_done(err: Any, result: Any) -> None:  # reader thread, _lock held
            failure = request_pub_failure(topic, err, result)
            if failure is not None and self._replies.get(token) is call:
                del self._replies[token]
                call.finish(failure)

        with self._lock:
            self._replies[token] = call
        try:
            # On a live connection the pub is a request, so that a refusal
            # or a delivery to nobody ends the wait at once; buffered for a
            # reconnect it stays a notification, and only the timeout ends it.
            conn = self._send_or_buffer(
                frame, lambda msgid: proto.encode_pub(topic, data, opts, msgid, self.max_payload),
                pub_done)
            with self._lock:
                call.conn = conn
                if conn is not None and not conn.alive:
                    call.finish(ConnectionLost("connection lost awaiting a reply", conn.error))
            return call.wait(deadline - time.monotonic(),
                             "no reply on %s within %gs" % (topic, timeout))
        finally:
            with self._lock:
                self._replies.pop(token, None)

    def reply(self, msg: Message, payload: Any = None, *,
              headers: Optional[Mapping[str, str]] = None, raw: bool = False) -> None:
        """Publishes PAYLOAD to MSG.reply_to (raises BadParams without one)."""
        if not msg.reply_to:
            raise BadParams("message on %s has no reply_to" % msg.topic)
        self.publish(msg.reply_to, payload, headers=headers, raw=raw)

    def ping(self, timeout: Optional[float] = None) -> float:
        """Round trip to the broker; returns it in seconds.

        Also a barrier: when it returns, the broker has handled everything
        this client sent before.
        """
        t0 = time.monotonic()
        self._call("ping", [], timeout)
        return time.monotonic() - t0

    flush = ping

    def close(self, timeout: float = 5.0) -> None:
        """Flushes (a ping, up to TIMEOUT), then closes.  Idempotent.

        Subscriptions end (their iterators stop); publications still
        buffered for a reconnect are dropped.
        """
        with self._lock:
            if self._state == CLOSED:
                return
            conn = self._conn if self._state == CONNECTED else None
        if conn is not None:
            try:
                self._call_on(conn, "ping", [], min(timeout, self.timeout))
            except PigeonError:
                pass
        with self._lock:
            self._state = CLOSED
            conn = self._conn
            subs = list(self._subs.values())
            self._subs.clear()
            calls = list(self._replies.values())
            if conn is not None:
                calls += conn.pending.values()
                conn.pending.clear()
            if self._buffer:
                log.warning("closing with %d buffered publications unsent", len(self._buffer))
            self._buffer.clear()
            self._buffered = 0
            self._cond.notify_all()
        for call in calls:
            call.finish(ClientClosed("client closed"))
        for sub in subs:
            sub._end(None, discard=True)
        if conn is not None:
            conn.close()
        sup = self._supervisor
        if sup is not None and sup is not threading.current_thread():
            sup.join()

    # ------------------------------------------------ connection set-up

    def _start(self) -> "Client":
        """Makes the first connection (retrying per backoff with reconnect)."""
        attempt = 0
        while True:
            try:
                self._establish()
                break
            except (AuthFailed, AuthRequired):
                self._set_lost(None)
                raise
            except (OSError, PigeonError) as e:
                attempt += 1
                if not self.reconnect or self.backoff.exhausted(attempt):
                    self._set_lost(None)
                    raise ConnectError("cannot connect to %s: %s" % (self.address, e)) from e
                log.info("cannot connect to %s (%s); retrying", self.address, e)
                with self._lock:
                    if self._state == CLOSED:
                        raise ClientClosed("client closed") from None
                    self._cond.wait(self.backoff.delay(attempt))
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name="pigeon-supervisor")
        self._supervisor.start()
        return self

    def _establish(self) -> None:
        """Connects, says hello, re-subscribes and flushes the buffer.

        Raises OSError or PigeonError; the state is CONNECTED on return.
        """
        try:
            sock = open_socket(self.address, self.timeout)
        except OSError as e:
            raise ConnectError(str(e)) from e
        conn = _Conn(sock, next(self._gen))
        conn.thread = threading.Thread(target=self._read_loop, args=(conn,), daemon=True,
                                       name="pigeon-reader-%d" % conn.gen)
        conn.thread.start()  # before close() can see conn, so it can always join it
        with self._lock:
            closed = self._state == CLOSED
            if not closed:
                self._conn = conn
        if closed:
            conn.close()
            raise ClientClosed("client closed")
        try:
            info = self._call_on(conn, "hello",
                                 proto.hello_params(self.name, self._credentials),
                                 self.timeout)
            if not isinstance(info, dict):
                raise PigeonError("hello answered %r" % (info,))
            self.server_info = info
            with self._wlock:
                with self._lock:
                    if self._state == CLOSED:
                        raise ClientClosed("client closed")
                    if not conn.alive:
                        raise ConnectionLost("connection lost during set-up", conn.error)
                    frames = [self._sub_frame(conn, sub) for sub in self._subs.values()]
                    frames += self._take_buffer()
                    data = b"".join(frames)
                self._write(conn, data)
                with self._lock:
                    if not conn.alive:
                        raise ConnectionLost("connection lost during set-up", conn.error)
                    self._state = CONNECTED
                    self._cond.notify_all()
        except BaseException:
            conn.close()
            raise

    def _take_buffer(self) -> list:
        """The buffered frames that fit the broker's limit (with _lock held)."""
        frames = [f for f in self._buffer if len(f) <= self.max_payload]
        if len(frames) != len(self._buffer):
            log.warning("dropped %d buffered publications above the new max_payload",
                        len(self._buffer) - len(frames))
        self._buffer.clear()
        self._buffered = 0
        return frames

    def _sub_frame(self, conn: _Conn, sub: Subscription) -> bytes:
        """A sub request for SUB on CONN, its call registered (with _lock held)."""
        msgid = next(self._msgids) & proto.MSGID_MASK
        call = _Call(lambda err, result: self._sub_done(conn, sub, err, result))
        conn.pending[msgid] = call
        sub._call = call
        return proto.encode_request(msgid, "sub", proto.sub_params(sub.pattern, sub.queue))

    def _sub_done(self, conn: _Conn, sub: Subscription, err: Any, sid: Any) -> None:
        """A sub's response, in the reader thread with _lock held."""
        if err is not None:
            if self._subs.get(sub.sid) is sub:
                del self._subs[sub.sid]
            sub._end(error_for(*err) if isinstance(err, list) and len(err) == 2
                     else PigeonError("sub failed: %r" % (err,)))
            return
        conn.subs[sid] = sub
        sub._conn, sub._server_sid = conn, sid

    # ----------------------------------------------------------- writing

    def _write(self, conn: _Conn, data: bytes) -> None:
        """Writes DATA whole (with _wlock held); raises OSError."""
        conn.sock.sendall(data)
        conn.last_send = time.monotonic()

    def _buffer_frame(self, frame: bytes) -> None:
        """Keeps FRAME for after the reconnect (with _lock held)."""
        if self._buffered + len(frame) > self.max_buffer:
            if self.buffer_full == "raise":
                raise BufferFull("reconnect buffer full (%d bytes queued, max_buffer %d)"
                                 % (self._buffered, self.max_buffer))
            self.dropped_publishes += 1
            return
        self._buffer.append(frame)
        self._buffered += len(frame)

    def _send_or_buffer(self, frame: bytes, build: Optional[Callable[[int], bytes]] = None,
                        on_done: Optional[Callable[[Any, Any], None]] = None
                        ) -> Optional[_Conn]:
        """Writes a notification FRAME now, or buffers it while reconnecting.

        With BUILD, what is written on a live connection is BUILD(msgid)
        instead, a request whose response goes to ON_DONE (in the reader
        thread, with _lock held); FRAME is still what is buffered.
        Returns the connection it was written to, or None when buffered.
        """
        with self._wlock:
            with self._lock:
                self._check_usable()
                conn = self._conn
                if self._state != CONNECTED:
                    self._buffer_frame(frame)
                    return None
                out = frame
                if build is not None:
                    msgid = next(self._msgids) & proto.MSGID_MASK
                    out = build(msgid)
                    conn.pending[msgid] = _Call(on_done)
            try:
                self._write(conn, out)
                return conn
            except OSError as e:
                self._lost(conn, e)
                with self._lock:
                    if self._state == RECONNECTING:
                        # The broker never got the whole frame: safe to resend.
                        self._buffer_frame(frame)
                        return None
                raise ConnectionLost("connection lost while publishing", conn.error) from e

    def _check_usable(self) -> None:
        """Raises unless the client can still be used (with _lock held)."""
        if self._state == CLOSED:
            raise ClientClosed("client closed")
        if self._state == LOST:
            raise self._lost_error or ConnectionLost("not connected")

    def _wait_connected(self, deadline: float) -> _Conn:
        with self._lock:
            while True:
                self._check_usable()
                if self._state == CONNECTED:
                    return self._conn
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("not connected to %s" % (self.address,))
                self._cond.wait(left)

    def _call(self, method: Optional[str], params: Any, timeout: Optional[float],
              build: Optional[Callable[[int], bytes]] = None) -> Any:
        """A request on the live connection (waiting for one while
        reconnecting); returns its result or raises its error.

        BUILD, when given, makes the frame from the msgid instead.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            conn = self._wait_connected(deadline)
            with self._wlock:
                with self._lock:
                    if conn is not self._conn or self._state != CONNECTED:
                        continue
                    msgid = next(self._msgids) & proto.MSGID_MASK
                    frame = build(msgid) if build else proto.encode_request(msgid, method, params)
                    call = _Call()
                    conn.pending[msgid] = call
                try:
                    self._write(conn, frame)
                except OSError as e:
                    self._lost(conn, e)
            return self._await(conn, msgid, call, deadline, method or "pub")

    def _call_on(self, conn: _Conn, method: str, params: Any, timeout: float) -> Any:
        """A request on CONN whatever the client's state (set-up, pings)."""
        with self._wlock:
            with self._lock:
                if not conn.alive:
                    raise ConnectionLost("connection lost", conn.error)
                msgid = next(self._msgids) & proto.MSGID_MASK
                call = _Call()
                conn.pending[msgid] = call
            try:
                self._write(conn, proto.encode_request(msgid, method, params))
            except OSError as e:
                self._lost(conn, e)
        return self._await(conn, msgid, call, time.monotonic() + timeout, method)

    def _await(self, conn: _Conn, msgid: int, call: _Call, deadline: float, what: str) -> Any:
        try:
            return call.wait(deadline - time.monotonic(), "no response to %s within the timeout"
                             % what)
        except TimeoutError:
            with self._lock:
                conn.pending.pop(msgid, None)
            raise

    # ---------------------------------------------------- subscriptions

    def _subscribe(self, pattern: str, queue: Optional[str], raw: bool,
                   max_pending: Optional[int], timeout: Optional[float],
                   inbox: bool = False) -> Subscription:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        sub = Subscription(self, next(self._sids), pattern, queue, raw, max_pending)
        with self._wlock:
            with self._lock:
                self._check_usable()
                self._subs[sub.sid] = sub
                conn = self._conn if self._state == CONNECTED else None
                if conn is not None:
                    frame = self._sub_frame(conn, sub)
                    call = sub._call
            if conn is not None:
                try:
                    self._write(conn, frame)
                except OSError as e:
                    self._lost(conn, e)
        if conn is None:
            return sub  # the reconnect will make it
        try:
            call.wait(deadline - time.monotonic(), "no response to sub %s" % pattern)
        except ConnectionLost:
            with self._lock:
                if self._state == RECONNECTING:
                    return sub  # made again on the new connection
                self._subs.pop(sub.sid, None)
            raise
        except TimeoutError:
            with self._lock:
                self._subs.pop(sub.sid, None)
            sub._end(None, discard=True)
            raise
        return sub

    def _unsubscribe(self, sub: Subscription, timeout: Optional[float]) -> None:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._subs.get(sub.sid) is not sub:
                sub._end(None, discard=True)
                return
            del self._subs[sub.sid]
            call = sub._call
        sub._end(None, discard=True)
        if call is not None:
            try:
                call.wait(deadline - time.monotonic(), "sub")
            except PigeonError:
                return  # never made, or its connection is gone
        with self._lock:
            conn, sid = sub._conn, sub._server_sid
            if conn is not self._conn or self._state != CONNECTED or sid is None:
                return
        try:
            self._call_on(conn, "unsub", [sid], max(0.0, deadline - time.monotonic()))
        except (ConnectionLost, BadParams):
            pass
        with self._lock:
            conn.subs.pop(sid, None)

    def _ensure_inbox(self, timeout: float) -> None:
        """Subscribes to this client's reply inbox once."""
        with self._inbox_lock:
            if self._inbox is None or not self._inbox.active:
                self._inbox = self._subscribe(self._inbox_prefix + ".*", None, False, None,
                                              timeout)

    # ----------------------------------------------------------- reading

    def _read_loop(self, conn: _Conn) -> None:
        """The reader thread of CONN: frames in, until the socket ends."""
        buf = bytearray(proto.READ_CHUNK)
        view = memoryview(buf)
        exc: Optional[BaseException] = None
        try:
            while True:
                n = conn.sock.recv_into(buf)
                if n == 0:
                    break
                for frame in conn.decoder.feed(view[:n]):
                    self._dispatch(conn, frame)
        except (OSError, PigeonError) as e:
            exc = e
        except Exception as e:  # a bug: report it, and treat the stream as lost
            log.exception("pigeon reader failed")
            exc = e
        finally:
            view.release()
            self._lost(conn, exc)
            # The socket is shut down, so a writer holding _wlock fails fast;
            # closing under it means no thread is inside a call on the fd.
            with self._wlock:
                conn.sock.close()

    def _dispatch(self, conn: _Conn, frame: Any) -> None:
        if isinstance(frame, proto.MsgFrame):
            self._on_msg(conn, frame)
        elif isinstance(frame, proto.Response):
            with self._lock:
                call = conn.pending.pop(frame.msgid, None)
                if call is None:
                    return
                if call.on_done is not None:
                    call.on_done(frame.error, frame.result)
            if frame.error is None:
                call.finish(None, frame.result)
            elif isinstance(frame.error, list) and len(frame.error) == 2:
                call.finish(error_for(*frame.error))
            else:
                call.finish(PigeonError("malformed error %r" % (frame.error,)))
        elif frame.method == "error":
            p = frame.params
            err = (error_for(p[0], p[1]) if isinstance(p, list) and len(p) == 2
                   else PigeonError("malformed error notification %r" % (p,)))
            conn.error = err
            self._report(err)
        else:
            log.debug("ignoring notification %r", frame.method)

    def _on_msg(self, conn: _Conn, f: proto.MsgFrame) -> None:
        with self._lock:
            sub = conn.subs.get(f.sid)
            if sub is None:
                return
            if sub is self._inbox:
                call = self._replies.pop(f.topic[len(self._inbox_prefix) + 1:], None)
                if call is None:
                    return  # late, or a second reply
        msg = proto.message_from_frame(f.topic, f.raw, f.opts, sub, sub.sid, sub.raw)
        if sub is self._inbox:
            call.finish(None, msg)
        else:
            sub._deliver(msg)

    def _report(self, err: PigeonError) -> None:
        if self.on_error is None:
            log.warning("pigeon %s: %s", self.address, err)
            return
        try:
            self.on_error(err)
        except Exception:
            log.exception("pigeon on_error callback failed")

    def _lost(self, conn: _Conn, exc: Optional[BaseException]) -> None:
        """CONN is gone: fail what waited on it and start reconnecting."""
        with self._lock:
            if not conn.alive:
                return
            conn.alive = False
            reason = conn.error
            if reason is None and isinstance(exc, PigeonError):
                reason = exc
            lost = ConnectionLost("connection to %s lost" % (self.address,), reason)
            calls = list(conn.pending.values())
            conn.pending.clear()
            for token in [t for t, c in self._replies.items() if c.conn is conn]:
                calls.append(self._replies.pop(token))  # popped: _on_msg can't finish it too
            subs = []
            current = conn is self._conn
            if current and self._state == CONNECTED:
                if self.reconnect:
                    self._state = RECONNECTING
                else:
                    subs = self._set_lost_locked(lost)
            self._cond.notify_all()
        conn.abort()
        for call in calls:
            call.finish(lost)
        for sub in subs:
            sub._end(lost)
        if current and exc is not None or reason is not None:
            log.info("pigeon %s: connection lost (%s)", self.address, reason or exc)

    def _set_lost_locked(self, error: Optional[ConnectionLost]) -> list:
        """Moves to LOST for good (with _lock held); returns the subs to end."""
        self._state = LOST
        self._lost_error = error or ConnectionLost("not connected to %s" % (self.address,))
        subs = list(self._subs.values())
        self._subs.clear()
        self._buffer.clear()
        self._buffered = 0
        for call in self._replies.values():
            call.finish(self._lost_error)
        self._cond.notify_all()
        return subs

    def _set_lost(self, error: Optional[ConnectionLost]) -> None:
        with self._lock:
            if self._state == CLOSED:
                return
            subs = self._set_lost_locked(error)
        for sub in subs:
            sub._end(self._lost_error)

    # ------------------------------------------------------- supervisor

    def _supervise(self) -> None:
        """Pings when the client has been silent; reconnects after a loss."""
        while True:
            with self._lock:
                while True:
                    if self._state in (CLOSED, LOST):
                        return
                    if self._state == RECONNECTING:
                        break
                    conn = self._conn
                    if self.ping_interval is None:
                        self._cond.wait()
                        continue
                    due = conn.last_send + self.ping_interval - time.monotonic()
                    if due <= 0:
                        break
                    self._cond.wait(due)
                state = self._state
            if state == RECONNECTING:
                self._reconnect()
            else:
                self._keepalive(conn)

    def _keepalive(self, conn: _Conn) -> None:
        try:
            self._call_on(conn, "ping", [], self.timeout)
        except TimeoutError:
            log.warning("pigeon %s: no pong within %gs; reconnecting", self.address,
                        self.timeout)
            conn.abort()
        except PigeonError:
            pass  # the reader reports the loss

    def _reconnect(self) -> None:
        attempt = 0
        last: Optional[BaseException] = None
        while True:
            with self._lock:
                if self._state != RECONNECTING:
                    return
                if self.backoff.exhausted(attempt):
                    break
                delay = self.backoff.delay(attempt)
                if delay > 0:
                    self._cond.wait(delay)
                    if self._state != RECONNECTING:
                        return
            attempt += 1
            try:
                self._establish()
                self.reconnects += 1
                log.info("pigeon %s: reconnected", self.address)
                return
            except (OSError, PigeonError) as e:
                last = e
                log.debug("pigeon %s: reconnect attempt %d failed: %s", self.address,
                          attempt, e)
        self._set_lost(ConnectionLost("gave up reconnecting to %s after %d attempts"
                                      % (self.address, attempt),
                                      last if isinstance(last, PigeonError) else None))


def connect(address: Optional[str] = None, *, name: Optional[str] = None,
            timeout: float = DEFAULT_TIMEOUT, reconnect: bool = False,
            max_attempts: Optional[int] = None, backoff: Optional[Backoff] = None,
            ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
            max_buffer: int = DEFAULT_MAX_BUFFER, buffer_full: str = "raise",
            max_pending: Optional[int] = DEFAULT_MAX_PENDING,
            on_error: Optional[Callable[[PigeonError], None]] = None,
            token: Optional[str] = None, user: Optional[str] = None,
            password: Optional[str] = None) -> Client:
    """Connects to a broker and says hello; returns a Client.

    address        "host:port", "host", "[v6]:port" or "unix:/path"; None
                   means $PIGEON_SERVER, else "127.0.0.1:7400"
    name           the client's name in the broker's log
    timeout        default seconds for connecting and for any call
    reconnect      survive a lost connection: reconnect with backoff,
                   re-subscribe, buffer publications meanwhile.  Also
                   retries the first connection until the broker appears.
    max_attempts   connection attempts per outage (None: no limit)
    backoff        a Backoff (initial, max_delay, max_attempts, jitter)
    ping_interval  ping after this many seconds without sending (None: off)
    max_buffer     bytes of publications kept while reconnecting
    buffer_full    "raise" (BufferFull) or "drop" when that is full
    max_pending    unread messages kept per subscription; more are dropped
                   and counted in Subscription.dropped (None or 0: no limit)
    on_error       called with broker errors not tied to a call (from the
                   reader thread); by default they are logged
    token, user, password   sent in hello; reserved for authentication,
                   which the broker does not have yet

    Raises ConnectError when the broker cannot be reached (after the
    attempts allowed), AuthFailed for bad credentials.
    """
    return Client(address, name=name, timeout=timeout, reconnect=reconnect,
                  max_attempts=max_attempts, backoff=backoff, ping_interval=ping_interval,
                  max_buffer=max_buffer, buffer_full=buffer_full, max_pending=max_pending,
                  on_error=on_error, token=token, user=user, password=password)._start()
