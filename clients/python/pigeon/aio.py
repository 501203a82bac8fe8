"""aio.py - the asyncio client: the blocking client's verbs, as coroutines.

    async with pigeon.aio.connect("127.0.0.1:7400") as c:
        await c.publish("orders.new", {"id": 1})
        async for msg in c.subscribe("orders.>"):
            print(msg.topic, msg.payload)

The session's state and rules are session.py's (shared with the blocking
client); this file is the asyncio I/O around them.  Under TLS (tls://
addresses) asyncio's own TLS carries the streams, with the context
tls.client_context made.

Tasks.  Each connection has a reader task that cuts frames, hands them to
the session, resolves the futures of calls and queues messages on their
subscriptions.  A supervisor
task pings the broker when the client has been silent for ping_interval
and, with reconnect on, brings the connection back after a loss.

Frames are written whole with StreamWriter.write, which never yields, so
frames from concurrent tasks never interleave and no lock is needed; each
write is followed by drain() so a fast publisher waits for the socket.

Not thread-safe: use an AsyncClient, its subscriptions and its messages
from the event loop that made it (as with any asyncio object).
"""

import asyncio
import ssl
import time
import warnings
from typing import Any, Callable, Mapping, Optional

from . import protocol as proto
from . import tls
from .errors import (AuthError, BadParams, ClientClosed, ConnectError, ConnectionLost,
                     PigeonError, TimeoutError, TlsError)
from .protocol import Backoff, Message
from .session import (CLOSED, CONNECTED, DEFAULT_MAX_BUFFER, DEFAULT_MAX_PENDING,
                      DEFAULT_PING_INTERVAL, DEFAULT_TIMEOUT, LOST, RECONNECTING, Link, OnDone,
                      Session, SessionFacade, SubscriptionQueue, log, run)
from .topic import check_pattern


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


class _Waiter:
    """A waiter (session.py) for a task: a Future, and the connection a
    request's message went out on."""

    __slots__ = ("future", "conn")

    def __init__(self) -> None:
        self.future = asyncio.get_running_loop().create_future()
        self.conn: Optional[_AConn] = None

    def finish(self, error: Optional[BaseException], result: Any = None) -> None:
        _finish(self.future, error, result)


class _AConn(Link):
    """One connection's life: the session's Link, plus its streams and reader task."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gen: int):
        super().__init__(gen)
        self.reader = reader
        self.writer = writer
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


class AsyncSubscription(SubscriptionQueue):
    """A subscription: `async for msg in sub`, or `await sub.next_msg(t)`.

    As the blocking Subscription: .sid stable across reconnects, .dropped
    counts messages dropped past max_pending, `async with` unsubscribes.
    """

    def __init__(self, client: "AsyncClient", sid: int, pattern: str, queue: Optional[str],
                 raw: bool, max_pending: Optional[int]):
        super().__init__(sid, pattern, queue, raw, max_pending)
        self._client = client
        self._event = asyncio.Event()

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


class AsyncClient(SessionFacade):
    """A connection to a Pigeon broker for asyncio; see connect()."""

    _repr_name = "aio.AsyncClient"

    def __init__(self, address: Optional[str] = None, *, name: Optional[str] = None,
                 timeout: float = DEFAULT_TIMEOUT, reconnect: bool = False,
                 max_attempts: Optional[int] = None, backoff: Optional[Backoff] = None,
                 ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
                 max_buffer: int = DEFAULT_MAX_BUFFER, buffer_full: str = "raise",
                 max_pending: Optional[int] = DEFAULT_MAX_PENDING,
                 on_error: Optional[Callable[[PigeonError], None]] = None,
                 token: Optional[str] = None, user: Optional[str] = None,
                 password: Optional[str] = None, ssl_context: Optional[ssl.SSLContext] = None,
                 ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None, insecure: bool = False):
        self._session = Session(address, name=name, timeout=timeout, reconnect=reconnect,
                                max_attempts=max_attempts, backoff=backoff,
                                ping_interval=ping_interval, max_buffer=max_buffer,
                                buffer_full=buffer_full, max_pending=max_pending,
                                on_error=on_error, token=token, user=user, password=password,
                                changed=self._state_changed)
        self._ssl = tls.client_context(self._session.address, ssl_context, ca, cert, key,
                                       insecure)
        self._changed = asyncio.Event()   # set, and replaced, on each state change
        self._inbox_lock = asyncio.Lock()
        self._supervisor: Optional[asyncio.Task] = None

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _state_changed(self) -> None:
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
        s = self._session
        timeout = s.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        token, reply_to = s.new_reply_to()
        data, opts = proto.check_publish(topic, payload, raw, reply_to, headers, False)
        frame = proto.encode_pub(topic, data, opts, None, self.max_payload)
        await self._ensure_inbox(deadline - time.monotonic())
        waiter = _Waiter()
        s.await_reply(token, waiter)
        try:
            # As Client.request_msg: a request on a live connection, a
            # notification when buffered.
            conn = await self._send_or_buffer(
                frame, lambda msgid: proto.encode_pub(topic, data, opts, msgid, self.max_payload),
                s.reply_pub_done(token, waiter, topic))
            if conn is not None:
                waiter.conn = conn
                if not conn.alive:
                    waiter.finish(ConnectionLost("connection lost awaiting a reply", conn.error))
            return await _wait(waiter.future, deadline - time.monotonic(),
                               "no reply on %s within %gs" % (topic, timeout))
        finally:
            s.drop_reply(token)

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
        s = self._session
        if s.state == CLOSED:
            return
        conn = s.link if s.state == CONNECTED else None
        if conn is not None:
            try:
                await self._call_on(conn, "ping", [], min(timeout, s.timeout))
            except PigeonError:
                pass
        if s.state == CLOSED:
            return
        conn, effects = s.close()
        run(effects)
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
        s = self._session
        attempt = 0
        while True:
            try:
                await self._establish()
                break
            except (AuthError, TlsError):
                self._set_lost(None)  # what no retry can fix
                raise
            except (OSError, PigeonError) as e:
                attempt += 1
                if not s.reconnect or s.backoff.exhausted(attempt):
                    self._set_lost(None)
                    raise ConnectError("cannot connect to %s: %s" % (s.address, e)) from e
                log.info("cannot connect to %s (%s); retrying", s.address, e)
                await asyncio.sleep(s.backoff.delay(attempt))
                if s.state == CLOSED:
                    raise ClientClosed("client closed") from None
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        return self

    async def _open(self):
        """Streams to the broker, under TLS for tls:// (the handshake done);
        raises ConnectError, TlsError."""
        s = self._session
        limit = 4 * proto.READ_CHUNK
        if s.address.is_unix:
            opening = asyncio.open_unix_connection(s.address.path, limit=limit)
        elif self._ssl is not None:
            opening = asyncio.open_connection(s.address.host, s.address.port, limit=limit,
                                              ssl=self._ssl,
                                              server_hostname=tls.server_hostname(s.address),
                                              ssl_handshake_timeout=s.timeout)
        else:
            opening = asyncio.open_connection(s.address.host, s.address.port, limit=limit)
        try:
            return await asyncio.wait_for(opening, s.timeout)
        except asyncio.TimeoutError as e:
            raise ConnectError("timed out") from e
        except ssl.SSLError as e:
            raise tls.handshake_error(s.address, e) from e
        except OSError as e:
            raise ConnectError(str(e)) from e

    async def _hello(self, conn: "_AConn") -> Any:
        """As Client._hello: the reader's TlsError wins over a failed write."""
        s = self._session
        try:
            return await self._call_on(conn, "hello", s.hello_params(), s.timeout)
        except AuthError as e:
            raise s.hello_refused(e) from None
        except ConnectionLost:
            if self._ssl is not None and conn.task is not None:
                await asyncio.wait([conn.task], timeout=s.timeout)
            if conn.tls_error is not None:
                raise conn.tls_error from None
            raise

    async def _establish(self) -> None:
        s = self._session
        reader, writer = await self._open()
        conn = _AConn(reader, writer, s.next_gen())
        if s.state == CLOSED:
            conn.abort()
            raise ClientClosed("client closed")
        s.link = conn
        conn.task = asyncio.get_running_loop().create_task(self._read_loop(conn))
        try:
            s.hello_done(await self._hello(conn))
            if s.state == CLOSED:
                raise ClientClosed("client closed")
            if not conn.alive:
                raise ConnectionLost("connection lost during set-up", conn.error)
            # No await from here to CONNECTED: nothing can slip in between.
            conn.write(s.resume(conn, _Waiter))
            s.set_state(CONNECTED)
        except BaseException:
            await conn.close()
            raise
        try:
            await conn.writer.drain()
        except ConnectionError as e:
            self._lost(conn, e)

    # ----------------------------------------------------------- writing

    async def _send_or_buffer(self, frame: bytes, build: Optional[Callable[[int], bytes]] = None,
                              on_done: Optional[OnDone] = None) -> Optional[_AConn]:
        """As Client._send_or_buffer: with BUILD, a live connection gets
        BUILD(msgid), whose response goes to ON_DONE only (no future, so a
        refusal nobody awaits is not an unretrieved exception)."""
        s = self._session
        s.check_usable()
        conn = s.link
        if s.state != CONNECTED:
            s.buffer_frame(frame)
            return None
        if build is not None:
            msgid = s.next_msgid()
            frame = build(msgid)
            s.register(conn, msgid, None, on_done)
        conn.write(frame)
        try:
            await conn.writer.drain()
        except ConnectionError as e:
            # Written to the transport: whether it left is unknown, so it is
            # not sent again (at most once).
            self._lost(conn, e)
            if s.state != RECONNECTING:
                raise ConnectionLost("connection lost while publishing", conn.error) from e
        return conn

    async def _wait_connected(self, deadline: float) -> _AConn:
        s = self._session
        while True:
            s.check_usable()
            if s.state == CONNECTED:
                return s.link
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("not connected to %s" % (s.address,))
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def _call(self, method: Optional[str], params: Any, timeout: Optional[float],
                    build: Optional[Callable[[int], bytes]] = None) -> Any:
        s = self._session
        timeout = s.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        conn = await self._wait_connected(deadline)
        msgid = s.next_msgid()
        frame = build(msgid) if build else proto.encode_request(msgid, method, params)
        waiter = _Waiter()
        s.register(conn, msgid, waiter)
        return await self._send_and_wait(conn, msgid, waiter, frame, deadline, method or "pub")

    async def _call_on(self, conn: _AConn, method: str, params: Any, timeout: float) -> Any:
        s = self._session
        if not conn.alive:
            raise ConnectionLost("connection lost", conn.error)
        msgid = s.next_msgid()
        waiter = _Waiter()
        s.register(conn, msgid, waiter)
        return await self._send_and_wait(conn, msgid, waiter,
                                         proto.encode_request(msgid, method, params),
                                         time.monotonic() + timeout, method)

    async def _send_and_wait(self, conn: _AConn, msgid: int, waiter: _Waiter, frame: bytes,
                             deadline: float, what: str) -> Any:
        conn.write(frame)
        try:
            await conn.writer.drain()
        except ConnectionError as e:
            self._lost(conn, e)
        try:
            return await _wait(waiter.future, deadline - time.monotonic(),
                               "no response to %s within the timeout" % what)
        except TimeoutError:
            self._session.forget(conn, msgid)
            raise

    # ---------------------------------------------------- subscriptions

    async def _subscribe(self, pattern: str, queue: Optional[str], raw: bool,
                         max_pending: Optional[int],
                         timeout: Optional[float]) -> AsyncSubscription:
        s = self._session
        timeout = s.timeout if timeout is None else timeout
        s.check_usable()
        sub = AsyncSubscription(self, s.next_sid(), pattern, queue, raw, max_pending)
        s.add_sub(sub)
        if s.state != CONNECTED:
            return sub  # the reconnect will make it
        conn = s.link
        frame = s.sub_frame(conn, sub, _Waiter())
        try:
            await self._send_and_wait(conn, sub._msgid, sub._call, frame,
                                      time.monotonic() + timeout, "sub " + pattern)
        except ConnectionLost:
            if s.state == RECONNECTING:
                return sub
            s.remove_sub(sub)
            raise
        except TimeoutError:
            s.remove_sub(sub)
            sub._end(None, discard=True)
            raise
        return sub

    async def _unsubscribe(self, sub: AsyncSubscription, timeout: Optional[float]) -> None:
        s = self._session
        timeout = s.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not s.remove_sub(sub):
            sub._end(None, discard=True)
            return
        sub._end(None, discard=True)
        if sub._call is not None:
            try:
                await _wait(sub._call.future, deadline - time.monotonic(), "sub")
            except PigeonError:
                return
        target = s.unsub_target(sub)
        if target is None:
            return
        conn, sid = target
        try:
            await self._call_on(conn, "unsub", [sid], max(0.0, deadline - time.monotonic()))
        except (ConnectionLost, BadParams):
            pass
        s.unsubscribed(conn, sid)

    async def _ensure_inbox(self, timeout: float) -> None:
        s = self._session
        async with self._inbox_lock:
            if s.inbox is None or not s.inbox.active:
                s.inbox = await self._subscribe(s.inbox_pattern(), None, False, None, timeout)

    # ----------------------------------------------------------- reading

    async def _read_loop(self, conn: _AConn) -> None:
        exc: Optional[BaseException] = None
        try:
            while True:
                data = await conn.reader.read(proto.READ_CHUNK)
                if not data:
                    break
                run(self._session.receive(conn, conn.decoder.feed(data)))
        except asyncio.CancelledError:
            raise
        except ssl.SSLError as e:  # an alert: say the broker refused our certificate
            exc = conn.tls_error = tls.stream_error(self._session.address, e)
        except (OSError, PigeonError) as e:
            exc = e
        except Exception as e:
            log.exception("pigeon reader failed")
            exc = e
        finally:
            self._lost(conn, exc)

    def _lost(self, conn: _AConn, exc: Optional[BaseException]) -> None:
        was_alive, effects = self._session.lose(conn, exc)
        if not was_alive:
            return
        conn.abort()
        run(effects)

    def _set_lost(self, error: Optional[ConnectionLost]) -> None:
        run(self._session.set_lost(error))

    # ------------------------------------------------------- supervisor

    async def _supervise(self) -> None:
        s = self._session
        while True:
            if s.state in (CLOSED, LOST):
                return
            if s.state == RECONNECTING:
                await self._reconnect()
                continue
            conn, changed = s.link, self._changed
            if s.ping_interval is None:
                await changed.wait()
                continue
            due = conn.last_send + s.ping_interval - time.monotonic()
            if due > 0:
                try:
                    await asyncio.wait_for(changed.wait(), due)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await self._call_on(conn, "ping", [], s.timeout)
            except TimeoutError:
                log.warning("pigeon %s: no pong within %gs; reconnecting", s.address, s.timeout)
                conn.abort()
            except PigeonError:
                pass

    async def _reconnect(self) -> None:
        s = self._session
        attempt = 0
        last: Optional[BaseException] = None
        while s.state == RECONNECTING:
            if s.backoff.exhausted(attempt):
                self._set_lost(ConnectionLost(
                    "gave up reconnecting to %s after %d attempts" % (s.address, attempt),
                    last if isinstance(last, PigeonError) else None))
                return
            delay = s.backoff.delay(attempt)
            if delay > 0:
                await asyncio.sleep(delay)
                if s.state != RECONNECTING:
                    return
            attempt += 1
            try:
                await self._establish()
                s.reconnects += 1
                log.info("pigeon %s: reconnected", s.address)
                return
            except AuthError as e:  # the same credentials would be refused again
                log.warning("pigeon %s: %s; giving up", s.address, e)
                self._set_lost(ConnectionLost("login to %s refused" % (s.address,), e))
                return
            except (OSError, PigeonError) as e:
                last = e
                log.debug("pigeon %s: reconnect attempt %d failed: %s", s.address, attempt, e)


def connect(address: Optional[str] = None, **options: Any) -> _Connecting:
    """Connects to a broker: `c = await connect(...)` or
    `async with connect(...) as c`.  Options as for pigeon.connect()."""
    return _Connecting(AsyncClient(address, **options))
