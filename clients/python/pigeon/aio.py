"""aio.py - the asyncio client: the blocking client's verbs, as coroutines.

    async with pigeon.aio.connect("127.0.0.1:7400") as c:
        await c.publish("orders.new", {"id": 1})
        async for msg in c.subscribe("orders.>"):
            print(msg.topic, msg.payload)

Tasks.  Each connection has a reader task that cuts frames, resolves the
futures of calls and queues messages on their subscriptions.  A supervisor
task pings the broker when the client has been silent for ping_interval
and, with reconnect on, brings the connection back after a loss.

Frames are written whole with StreamWriter.write, which never yields, so
frames from concurrent tasks never interleave and no lock is needed; each
write is followed by drain() so a fast publisher waits for the socket.

Not thread-safe: use an AsyncClient, its subscriptions and its messages
from the event loop that made it (as with any asyncio object).
"""

import asyncio
import itertools
import logging
import secrets
import time
import warnings
from collections import deque
from typing import Any, Callable, Deque, Dict, Mapping, Optional, Tuple

from . import protocol as proto
from .address import parse_address
from .client import (CLOSED, CONNECTED, CONNECTING, DEFAULT_MAX_BUFFER, DEFAULT_MAX_PENDING,
                     DEFAULT_PING_INTERVAL, DEFAULT_TIMEOUT, LOST, RECONNECTING,
                     _SubscriptionQueue, request_pub_failure)
from .errors import (AuthFailed, AuthRequired, BadParams, BufferFull, ClientClosed,
                     ConnectError, ConnectionLost, PigeonError, TimeoutError, error_for)
from .protocol import Backoff, Message
from .topic import check_pattern

log = logging.getLogger("pigeon")


async def _wait(fut: "asyncio.Future", timeout: float, what: str) -> Any:
    """Awaits FUT for up to TIMEOUT seconds (FUT is not cancelled on timeout)."""
    try:
        return await asyncio.wait_for(asyncio.shield(fut), max(0.0, timeout))
    except asyncio.TimeoutError:
        raise TimeoutError(what) from None


def _finish(fut: "asyncio.Future", error: Optional[BaseException], result: Any = None) -> None:
    if not fut.done():
        if error is not None:
            fut.set_exception(error)
            fut.exception()  # retrieved: no "never retrieved" warning if unawaited
        else:
            fut.set_result(result)


class _AConn:
    """One connection's life: its streams, reader task and the state tied to it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gen: int):
        self.reader = reader
        self.writer = writer
        self.gen = gen
        self.decoder = proto.FrameDecoder()
        self.pending: Dict[int, asyncio.Future] = {}
        self.on_done: Dict[int, Callable[[Any, Any], None]] = {}
        self.subs: Dict[int, AsyncSubscription] = {}
        self.last_send = time.monotonic()
        self.error: Optional[PigeonError] = None
        self.alive = True
        self.task: Optional[asyncio.Task] = None

    def write(self, data: bytes) -> None:
        self.writer.write(data)
        self.last_send = time.monotonic()

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()

    async def close(self) -> None:
        self.abort()
        task = self.task
        if task is not None and task is not asyncio.current_task():
            try:
                await task
            except BaseException:
                pass


class AsyncSubscription(_SubscriptionQueue):
    """A subscription: `async for msg in sub`, or `await sub.next_msg(t)`.

    As the blocking Subscription: .sid stable across reconnects, .dropped
    counts messages dropped past max_pending, `async with` unsubscribes.
    """

    def __init__(self, client: "AsyncClient", sid: int, pattern: str, queue: Optional[str],
                 raw: bool, max_pending: Optional[int]):
        super().__init__(sid, pattern, queue, raw, max_pending)
        self._client = client
        self._event = asyncio.Event()
        self._call: Optional[asyncio.Future] = None
        self._msgid = 0
        self._conn: Optional[_AConn] = None
        self._server_sid: Optional[int] = None

    def _deliver(self, msg: Message) -> None:
        if self._push(msg):
            self._event.set()

    def _end(self, error: Optional[PigeonError] = None, discard: bool = False) -> None:
        if self._stop(error, discard):
            self._event.set()

    async def next_msg(self, timeout: Optional[float] = None) -> Message:
        """The next message; raises TimeoutError, ClientClosed once ended,
        or the error that ended it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._msgs:
            if self._ended:
                raise self._error or ClientClosed("subscription %d (%s) is closed"
                                                  % (self.sid, self.pattern))
            self._event.clear()
            if deadline is None:
                await self._event.wait()
                continue
            try:
                await asyncio.wait_for(self._event.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise TimeoutError("no message on %s within %gs"
                                   % (self.pattern, timeout)) from None
        return self._msgs.popleft()

    def __aiter__(self) -> "AsyncSubscription":
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.next_msg()
        except ClientClosed:
            raise StopAsyncIteration from None

    async def unsubscribe(self, timeout: Optional[float] = None) -> None:
        await self._client._unsubscribe(self, timeout)

    async def __aenter__(self) -> "AsyncSubscription":
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self.unsubscribe()
        except PigeonError:
            pass

    def __repr__(self) -> str:
        q = " queue=%s" % self.queue if self.queue else ""
        return "<AsyncSubscription %d %s%s%s>" % (self.sid, self.pattern, q,
                                                  "" if self.active else " closed")


class _Subscribing:
    """What AsyncClient.subscribe returns: await it for the subscription,
    `async for` over it, or `async with` it (unsubscribing on exit)."""

    def __init__(self, start, pattern: str):
        self._start = start
        self._pattern = pattern
        self._started = False
        self._sub: Optional[AsyncSubscription] = None

    async def _get(self) -> AsyncSubscription:
        self._started = True
        if self._sub is None:
            self._sub = await self._start()
        return self._sub

    def __del__(self) -> None:
        # As Python does for a coroutine never awaited: a forgotten await
        # would otherwise subscribe to nothing, silently.
        if not self._started:
            warnings.warn("subscribe(%r) was never awaited" % self._pattern, RuntimeWarning,
                          stacklevel=2)

    def __await__(self):
        return self._get().__await__()

    def __aiter__(self) -> "_Subscribing":
        return self

    async def __anext__(self) -> Message:
        return await (await self._get()).__anext__()

    async def __aenter__(self) -> AsyncSubscription:
        return await self._get()

    async def __aexit__(self, *exc) -> None:
        if self._sub is not None:
            await self._sub.__aexit__(*exc)


class _Connecting:
    """What aio.connect returns: await it, or `async with` it."""

    def __init__(self, client: "AsyncClient"):
        self._client = client
        self._started = False

    def __await__(self):
        self._started = True
        return self._client._start().__await__()

    async def __aenter__(self) -> "AsyncClient":
        self._started = True
        return await self._client._start()

    def __del__(self) -> None:
        if not self._started:
            warnings.warn("pigeon.aio.connect(%r) was never awaited" % str(self._client.address),
                          RuntimeWarning, stacklevel=2)

    async def __aexit__(self, *exc) -> None:
        await self._client.close()


class AsyncClient:
    """A connection to a Pigeon broker for asyncio; see connect()."""

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
        self.reconnects = 0
        self.dropped_publishes = 0

        self._state = CONNECTING
        self._changed = asyncio.Event()   # replaced on each state change
        self._conn: Optional[_AConn] = None
        self._gen = itertools.count(1)
        self._msgids = itertools.count(1)
        self._sids = itertools.count(1)
        self._subs: Dict[int, AsyncSubscription] = {}
        self._buffer: Deque[bytes] = deque()
        self._buffered = 0
        self._lost_error: Optional[ConnectionLost] = None
        self._inbox: Optional[AsyncSubscription] = None
        self._inbox_lock = asyncio.Lock()
        self._inbox_prefix = "_INBOX." + secrets.token_hex(11)
        self._tokens = itertools.count(1)
        self._replies: Dict[str, asyncio.Future] = {}
        self._reply_conn: Dict[str, _AConn] = {}
        self._supervisor: Optional[asyncio.Task] = None

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

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "<pigeon.aio.AsyncClient %s %s>" % (self.address, self._state)

    def _set_state(self, state: str) -> None:
        self._state = state
        self._changed.set()
        self._changed = asyncio.Event()

    # ----------------------------------------------------------- verbs

    async def publish(self, topic: str, payload: Any = None, *,
                      reply_to: Optional[str] = None,
                      headers: Optional[Mapping[str, str]] = None, retain: bool = False,
                      raw: bool = False, confirm: bool = False,
                      timeout: Optional[float] = None) -> Optional[int]:
        """As Client.publish: confirm=True returns the delivery count."""
        data, opts = proto.check_publish(topic, payload, raw, reply_to, headers, retain)
        if confirm:
            return await self._call(None, None, timeout,
                                    lambda msgid: proto.encode_pub(topic, data, opts, msgid,
                                                                   self.max_payload))
        await self._send_or_buffer(proto.encode_pub(topic, data, opts, None, self.max_payload))
        return None

    def subscribe(self, pattern: str, *, queue: Optional[str] = None, raw: bool = False,
                  max_pending: Optional[int] = None,
                  timeout: Optional[float] = None) -> _Subscribing:
        """As Client.subscribe.  `sub = await c.subscribe(p)`, or directly
        `async for msg in c.subscribe(p)`, or `async with c.subscribe(p) as sub`."""
        check_pattern(pattern)
        if queue is not None:
            proto.check_queue(queue)
        mp = self.max_pending if max_pending is None else max_pending
        return _Subscribing(lambda: self._subscribe(pattern, queue, raw, mp, timeout), pattern)

    async def unsubscribe(self, sub: AsyncSubscription, timeout: Optional[float] = None) -> None:
        await self._unsubscribe(sub, timeout)

    async def request(self, topic: str, payload: Any = None, *,
                      timeout: Optional[float] = None,
                      headers: Optional[Mapping[str, str]] = None, raw: bool = False) -> Any:
        """As Client.request: the first reply's payload, or TimeoutError."""
        msg = await self.request_msg(topic, payload, timeout=timeout, headers=headers, raw=raw)
        return msg.raw if raw else msg.payload

    async def request_msg(self, topic: str, payload: Any = None, *,
                          timeout: Optional[float] = None,
                          headers: Optional[Mapping[str, str]] = None,
                          raw: bool = False) -> Message:
        """As Client.request_msg: the whole reply Message."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        token = str(next(self._tokens))
        data, opts = proto.check_publish(topic, payload, raw, self._inbox_prefix + "." + token,
                                         headers, False)
        frame = proto.encode_pub(topic, data, opts, None, self.max_payload)
        await self._ensure_inbox(deadline - time.monotonic())
        fut = asyncio.get_running_loop().create_future()

        def pub_done(err: Any, result: Any) -> None:
            failure = request_pub_failure(topic, err, result)
            if failure is not None and self._replies.get(token) is fut:
                del self._replies[token]
                _finish(fut, failure)

        self._replies[token] = fut
        try:
            # As Client.request_msg: a request on a live connection, a
            # notification when buffered.
            conn = await self._send_or_buffer(
                frame, lambda msgid: proto.encode_pub(topic, data, opts, msgid, self.max_payload),
                pub_done)
            if conn is not None:
                self._reply_conn[token] = conn
                if not conn.alive:
                    _finish(fut, ConnectionLost("connection lost awaiting a reply", conn.error))
            return await _wait(fut, deadline - time.monotonic(),
                               "no reply on %s within %gs" % (topic, timeout))
        finally:
            self._replies.pop(token, None)
            self._reply_conn.pop(token, None)

    async def reply(self, msg: Message, payload: Any = None, *,
                    headers: Optional[Mapping[str, str]] = None, raw: bool = False) -> None:
        """Publishes PAYLOAD to MSG.reply_to (raises BadParams without one)."""
        if not msg.reply_to:
            raise BadParams("message on %s has no reply_to" % msg.topic)
        await self.publish(msg.reply_to, payload, headers=headers, raw=raw)

    async def ping(self, timeout: Optional[float] = None) -> float:
        """Round trip in seconds; also a barrier (see Client.ping)."""
        t0 = time.monotonic()
        await self._call("ping", [], timeout)
        return time.monotonic() - t0

    flush = ping

    async def close(self, timeout: float = 5.0) -> None:
        """Flushes (a ping, up to TIMEOUT), then closes.  Idempotent."""
        if self._state == CLOSED:
            return
        conn = self._conn if self._state == CONNECTED else None
        if conn is not None:
            try:
                await self._call_on(conn, "ping", [], min(timeout, self.timeout))
            except PigeonError:
                pass
        if self._state == CLOSED:
            return
        self._set_state(CLOSED)
        conn = self._conn
        closed = ClientClosed("client closed")
        for fut in self._replies.values():
            _finish(fut, closed)
        if conn is not None:
            for fut in conn.pending.values():
                _finish(fut, closed)
            conn.pending.clear()
        for sub in list(self._subs.values()):
            sub._end(None, discard=True)
        self._subs.clear()
        if self._buffer:
            log.warning("closing with %d buffered publications unsent", len(self._buffer))
        self._buffer.clear()
        self._buffered = 0
        if conn is not None:
            await conn.close()
        sup = self._supervisor
        if sup is not None and sup is not asyncio.current_task():
            sup.cancel()
            try:
                await sup
            except BaseException:
                pass

    # ------------------------------------------------ connection set-up

    async def _start(self) -> "AsyncClient":
        attempt = 0
        while True:
            try:
                await self._establish()
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
                await asyncio.sleep(self.backoff.delay(attempt))
                if self._state == CLOSED:
                    raise ClientClosed("client closed") from None
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        return self

    async def _establish(self) -> None:
        limit = 4 * proto.READ_CHUNK
        try:
            if self.address.is_unix:
                opening = asyncio.open_unix_connection(self.address.path, limit=limit)
            else:
                opening = asyncio.open_connection(self.address.host, self.address.port,
                                                  limit=limit)
            reader, writer = await asyncio.wait_for(opening, self.timeout)
        except asyncio.TimeoutError as e:
            raise ConnectError("timed out") from e
        except OSError as e:
            raise ConnectError(str(e)) from e
        conn = _AConn(reader, writer, next(self._gen))
        if self._state == CLOSED:
            conn.abort()
            raise ClientClosed("client closed")
        self._conn = conn
        conn.task = asyncio.get_running_loop().create_task(self._read_loop(conn))
        try:
            info = await self._call_on(conn, "hello",
                                       proto.hello_params(self.name, self._credentials),
                                       self.timeout)
            if not isinstance(info, dict):
                raise PigeonError("hello answered %r" % (info,))
            self.server_info = info
            if self._state == CLOSED:
                raise ClientClosed("client closed")
            if not conn.alive:
                raise ConnectionLost("connection lost during set-up", conn.error)
            # No await from here to CONNECTED: nothing can slip in between.
            frames = [self._sub_frame(conn, sub) for sub in self._subs.values()]
            frames += self._take_buffer()
            conn.write(b"".join(frames))
            self._set_state(CONNECTED)
        except BaseException:
            await conn.close()
            raise
        try:
            await conn.writer.drain()
        except ConnectionError as e:
            self._lost(conn, e)

    def _take_buffer(self) -> list:
        frames = [f for f in self._buffer if len(f) <= self.max_payload]
        if len(frames) != len(self._buffer):
            log.warning("dropped %d buffered publications above the new max_payload",
                        len(self._buffer) - len(frames))
        self._buffer.clear()
        self._buffered = 0
        return frames

    def _register(self, conn: _AConn,
                  on_done: Optional[Callable[[Any, Any], None]] = None
                  ) -> Tuple[int, asyncio.Future]:
        msgid = next(self._msgids) & proto.MSGID_MASK
        fut = asyncio.get_running_loop().create_future()
        conn.pending[msgid] = fut
        if on_done is not None:
            conn.on_done[msgid] = on_done
        return msgid, fut

    def _sub_frame(self, conn: _AConn, sub: AsyncSubscription) -> bytes:
        msgid, fut = self._register(conn, lambda err, sid: self._sub_done(conn, sub, err, sid))
        sub._call, sub._msgid = fut, msgid
        return proto.encode_request(msgid, "sub", proto.sub_params(sub.pattern, sub.queue))

    def _sub_done(self, conn: _AConn, sub: AsyncSubscription, err: Any, sid: Any) -> None:
        if err is not None:
            if self._subs.get(sub.sid) is sub:
                del self._subs[sub.sid]
            sub._end(error_for(*err) if isinstance(err, list) and len(err) == 2
                     else PigeonError("sub failed: %r" % (err,)))
            return
        conn.subs[sid] = sub
        sub._conn, sub._server_sid = conn, sid

    # ----------------------------------------------------------- writing

    def _check_usable(self) -> None:
        if self._state == CLOSED:
            raise ClientClosed("client closed")
        if self._state == LOST:
            raise self._lost_error or ConnectionLost("not connected")

    def _buffer_frame(self, frame: bytes) -> None:
        if self._buffered + len(frame) > self.max_buffer:
            if self.buffer_full == "raise":
                raise BufferFull("reconnect buffer full (%d bytes queued, max_buffer %d)"
                                 % (self._buffered, self.max_buffer))
            self.dropped_publishes += 1
            return
        self._buffer.append(frame)
        self._buffered += len(frame)

    async def _send_or_buffer(self, frame: bytes, build: Optional[Callable[[int], bytes]] = None,
                              on_done: Optional[Callable[[Any, Any], None]] = None
                              ) -> Optional[_AConn]:
        """As Client._send_or_buffer: with BUILD, a live connection gets
        BUILD(msgid), whose response goes to ON_DONE only (no future, so a
        refusal nobody awaits is not an unretrieved exception)."""
        self._check_usable()
        conn = self._conn
        if self._state != CONNECTED:
            self._buffer_frame(frame)
            return None
        if build is not None:
            msgid = next(self._msgids) & proto.MSGID_MASK
            frame = build(msgid)
            conn.on_done[msgid] = on_done
        conn.write(frame)
        try:
            await conn.writer.drain()
        except ConnectionError as e:
            # Written to the transport: whether it left is unknown, so it is
            # not sent again (at most once).
            self._lost(conn, e)
            if self._state != RECONNECTING:
                raise ConnectionLost("connection lost while publishing", conn.error) from e
        return conn

    async def _wait_connected(self, deadline: float) -> _AConn:
        while True:
            self._check_usable()
            if self._state == CONNECTED:
                return self._conn
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("not connected to %s" % (self.address,))
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def _call(self, method: Optional[str], params: Any, timeout: Optional[float],
                    build: Optional[Callable[[int], bytes]] = None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        conn = await self._wait_connected(deadline)
        msgid = next(self._msgids) & proto.MSGID_MASK
        frame = build(msgid) if build else proto.encode_request(msgid, method, params)
        fut = asyncio.get_running_loop().create_future()
        conn.pending[msgid] = fut
        return await self._send_and_wait(conn, msgid, fut, frame, deadline, method or "pub")

    async def _call_on(self, conn: _AConn, method: str, params: Any, timeout: float) -> Any:
        if not conn.alive:
            raise ConnectionLost("connection lost", conn.error)
        msgid, fut = self._register(conn)
        return await self._send_and_wait(conn, msgid, fut,
                                         proto.encode_request(msgid, method, params),
                                         time.monotonic() + timeout, method)

    async def _send_and_wait(self, conn: _AConn, msgid: int, fut: asyncio.Future, frame: bytes,
                             deadline: float, what: str) -> Any:
        conn.write(frame)
        try:
            await conn.writer.drain()
        except ConnectionError as e:
            self._lost(conn, e)
        try:
            return await _wait(fut, deadline - time.monotonic(),
                               "no response to %s within the timeout" % what)
        except TimeoutError:
            conn.pending.pop(msgid, None)
            conn.on_done.pop(msgid, None)
            raise

    # ---------------------------------------------------- subscriptions

    async def _subscribe(self, pattern: str, queue: Optional[str], raw: bool,
                         max_pending: Optional[int],
                         timeout: Optional[float]) -> AsyncSubscription:
        timeout = self.timeout if timeout is None else timeout
        self._check_usable()
        sub = AsyncSubscription(self, next(self._sids), pattern, queue, raw, max_pending)
        self._subs[sub.sid] = sub
        if self._state != CONNECTED:
            return sub  # the reconnect will make it
        conn = self._conn
        frame = self._sub_frame(conn, sub)
        try:
            await self._send_and_wait(conn, sub._msgid, sub._call, frame,
                                      time.monotonic() + timeout, "sub " + pattern)
        except ConnectionLost:
            if self._state == RECONNECTING:
                return sub
            self._subs.pop(sub.sid, None)
            raise
        except TimeoutError:
            self._subs.pop(sub.sid, None)
            sub._end(None, discard=True)
            raise
        return sub

    async def _unsubscribe(self, sub: AsyncSubscription, timeout: Optional[float]) -> None:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if self._subs.get(sub.sid) is not sub:
            sub._end(None, discard=True)
            return
        del self._subs[sub.sid]
        sub._end(None, discard=True)
        if sub._call is not None:
            try:
                await _wait(sub._call, deadline - time.monotonic(), "sub")
            except PigeonError:
                return
        conn, sid = sub._conn, sub._server_sid
        if conn is not self._conn or self._state != CONNECTED or sid is None:
            return
        try:
            await self._call_on(conn, "unsub", [sid], max(0.0, deadline - time.monotonic()))
        except (ConnectionLost, BadParams):
            pass
        conn.subs.pop(sid, None)

    async def _ensure_inbox(self, timeout: float) -> None:
        async with self._inbox_lock:
            if self._inbox is None or not self._inbox.active:
                self._inbox = await self._subscribe(self._inbox_prefix + ".*", None, False,
                                                    None, timeout)

    # ----------------------------------------------------------- reading

    async def _read_loop(self, conn: _AConn) -> None:
        exc: Optional[BaseException] = None
        try:
            while True:
                data = await conn.reader.read(proto.READ_CHUNK)
                if not data:
                    break
                for frame in conn.decoder.feed(data):
                    self._dispatch(conn, frame)
        except asyncio.CancelledError:
            raise
        except (OSError, PigeonError) as e:
            exc = e
        except Exception as e:
            log.exception("pigeon reader failed")
            exc = e
        finally:
            self._lost(conn, exc)

    def _dispatch(self, conn: _AConn, frame: Any) -> None:
        if isinstance(frame, proto.MsgFrame):
            self._on_msg(conn, frame)
        elif isinstance(frame, proto.Response):
            fut = conn.pending.pop(frame.msgid, None)
            on_done = conn.on_done.pop(frame.msgid, None)
            if on_done is not None:
                on_done(frame.error, frame.result)
            if fut is None:
                return
            if frame.error is None:
                _finish(fut, None, frame.result)
            elif isinstance(frame.error, list) and len(frame.error) == 2:
                _finish(fut, error_for(*frame.error))
            else:
                _finish(fut, PigeonError("malformed error %r" % (frame.error,)))
        elif frame.method == "error":
            p = frame.params
            err = (error_for(p[0], p[1]) if isinstance(p, list) and len(p) == 2
                   else PigeonError("malformed error notification %r" % (p,)))
            conn.error = err
            self._report(err)
        else:
            log.debug("ignoring notification %r", frame.method)

    def _on_msg(self, conn: _AConn, f: proto.MsgFrame) -> None:
        sub = conn.subs.get(f.sid)
        if sub is None:
            return
        msg = proto.message_from_frame(f.topic, f.raw, f.opts, sub, sub.sid, sub.raw)
        if sub is self._inbox:
            fut = self._replies.pop(f.topic[len(self._inbox_prefix) + 1:], None)
            if fut is not None:
                _finish(fut, None, msg)
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

    def _lost(self, conn: _AConn, exc: Optional[BaseException]) -> None:
        if not conn.alive:
            return
        conn.alive = False
        reason = conn.error
        if reason is None and isinstance(exc, PigeonError):
            reason = exc
        lost = ConnectionLost("connection to %s lost" % (self.address,), reason)
        for fut in conn.pending.values():
            _finish(fut, lost)
        conn.pending.clear()
        conn.on_done.clear()
        for token, c in list(self._reply_conn.items()):
            if c is conn and token in self._replies:
                _finish(self._replies[token], lost)
        conn.abort()
        if conn is self._conn and self._state == CONNECTED:
            log.info("pigeon %s: connection lost (%s)", self.address, reason or exc)
            if self.reconnect:
                self._set_state(RECONNECTING)
            else:
                self._set_lost(lost)

    def _set_lost(self, error: Optional[ConnectionLost]) -> None:
        if self._state == CLOSED:
            return
        self._lost_error = error or ConnectionLost("not connected to %s" % (self.address,))
        for sub in list(self._subs.values()):
            sub._end(self._lost_error)
        self._subs.clear()
        self._buffer.clear()
        self._buffered = 0
        for fut in self._replies.values():
            _finish(fut, self._lost_error)
        self._set_state(LOST)

    # ------------------------------------------------------- supervisor

    async def _supervise(self) -> None:
        while True:
            if self._state in (CLOSED, LOST):
                return
            if self._state == RECONNECTING:
                await self._reconnect()
                continue
            conn, changed = self._conn, self._changed
            if self.ping_interval is None:
                await changed.wait()
                continue
            due = conn.last_send + self.ping_interval - time.monotonic()
            if due > 0:
                try:
                    await asyncio.wait_for(changed.wait(), due)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await self._call_on(conn, "ping", [], self.timeout)
            except TimeoutError:
                log.warning("pigeon %s: no pong within %gs; reconnecting", self.address,
                            self.timeout)
                conn.abort()
            except PigeonError:
                pass

    async def _reconnect(self) -> None:
        attempt = 0
        last: Optional[BaseException] = None
        while self._state == RECONNECTING:
            if self.backoff.exhausted(attempt):
                self._set_lost(ConnectionLost(
                    "gave up reconnecting to %s after %d attempts" % (self.address, attempt),
                    last if isinstance(last, PigeonError) else None))
                return
            delay = self.backoff.delay(attempt)
            if delay > 0:
                await asyncio.sleep(delay)
                if self._state != RECONNECTING:
                    return
            attempt += 1
            try:
                await self._establish()
                self.reconnects += 1
                log.info("pigeon %s: reconnected", self.address)
                return
            except (OSError, PigeonError) as e:
                last = e
                log.debug("pigeon %s: reconnect attempt %d failed: %s", self.address,
                          attempt, e)


def connect(address: Optional[str] = None, **options: Any) -> _Connecting:
    """Connects to a broker: `c = await connect(...)` or
    `async with connect(...) as c`.  Options as for pigeon.connect()."""
    return _Connecting(AsyncClient(address, **options))
