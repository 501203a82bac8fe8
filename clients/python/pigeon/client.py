"""client.py - the blocking client: connect(), Client, Subscription.

    with pigeon.connect("127.0.0.1:7400") as c:
        c.publish("orders.new", {"id": 1})
        for msg in c.subscribe("orders.>"):
            print(msg.topic, msg.payload)

The session's state and rules are session.py's (shared with the asyncio
client); this file is the blocking I/O around them.  Under TLS (tls://
addresses) a connection's socket is a tls.TlsSocket, which the reader and
the writers share as they share a plain one.

Threads.  Each connection has a reader thread that owns the socket's input:
it cuts frames, hands them to the session (under _lock), then wakes the
calls waiting for a response and queues messages on their subscriptions
(with no lock: session.py's effects).  A supervisor thread pings the broker when the
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

import ssl
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Optional

from . import protocol as proto
from . import tls
from .address import open_socket
from .errors import (AuthError, BadParams, ClientClosed, ConnectError, ConnectionLost,
                     PigeonError, TimeoutError, TlsError)
from .protocol import Backoff, Message
from .session import (CLOSED, CONNECTED, CONNECTING, DEFAULT_MAX_BUFFER,  # noqa: F401
                      DEFAULT_MAX_PENDING, DEFAULT_PING_INTERVAL, DEFAULT_TIMEOUT, LOST,
                      RECONNECTING, Link, OnDone, Session, SessionFacade, SubscriptionQueue,
                      log, run)
from .topic import check_pattern


# --------------------------------------------------------------- calls ----

class _Call:
    """A waiter (session.py) for a thread: one call waiting for its answer,
    a response or a reply message.  .conn is the connection a request's
    message went out on."""

    __slots__ = ("event", "error", "result", "conn")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: Optional[BaseException] = None
        self.result: Any = None
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


class _Conn(Link):
    """One socket's life: the session's Link, plus the socket and its reader thread."""

    def __init__(self, sock, gen: int):
        super().__init__(gen)
        self.sock = sock
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

class Subscription(SubscriptionQueue):
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

class Client(SessionFacade):
    """A connection to a Pigeon broker.  Make one with pigeon.connect().

    See connect() for the options.  server_info holds the broker's hello
    result (server, version, proto, client_id, max_payload).
    """

    _repr_name = "Client"

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
        self._wlock = threading.Lock()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # Every call on the session is made with _lock held (its `changed`
        # is this condition's notify_all).
        self._session = Session(address, name=name, timeout=timeout, reconnect=reconnect,
                                max_attempts=max_attempts, backoff=backoff,
                                ping_interval=ping_interval, max_buffer=max_buffer,
                                buffer_full=buffer_full, max_pending=max_pending,
                                on_error=on_error, token=token, user=user, password=password,
                                changed=self._cond.notify_all)
        self._ssl = tls.client_context(self._session.address, ssl_context, ca, cert, key,
                                       insecure)
        self._inbox_lock = threading.Lock()
        self._supervisor: Optional[threading.Thread] = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
        s = self._session
        timeout = s.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        token, reply_to = s.new_reply_to()
        data, opts = proto.check_publish(topic, payload, raw, reply_to, headers, False)
        frame = proto.encode_pub(topic, data, opts, None, self.max_payload)
        self._ensure_inbox(deadline - time.monotonic())
        call = _Call()
        with self._lock:
            s.await_reply(token, call)
        try:
            # On a live connection the pub is a request, so that a refusal
            # or a delivery to nobody ends the wait at once; buffered for a
            # reconnect it stays a notification, and only the timeout ends it.
            conn = self._send_or_buffer(
                frame, lambda msgid: proto.encode_pub(topic, data, opts, msgid, self.max_payload),
                s.reply_pub_done(token, call, topic))
            with self._lock:
                call.conn = conn
                if conn is not None and not conn.alive:
                    call.finish(ConnectionLost("connection lost awaiting a reply", conn.error))
            return call.wait(deadline - time.monotonic(),
                             "no reply on %s within %gs" % (topic, timeout))
        finally:
            with self._lock:
                s.drop_reply(token)

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
        s = self._session
        with self._lock:
            if s.state == CLOSED:
                return
            conn = s.link if s.state == CONNECTED else None
        if conn is not None:
            try:
                self._call_on(conn, "ping", [], min(timeout, s.timeout))
            except PigeonError:
                pass
        with self._lock:
            if s.state == CLOSED:
                return
            conn, effects = s.close()
        run(effects)
        if conn is not None:
            conn.close()
        sup = self._supervisor
        if sup is not None and sup is not threading.current_thread():
            sup.join()

    # ------------------------------------------------ connection set-up

    def _start(self) -> "Client":
        """Makes the first connection (retrying per backoff with reconnect)."""
        s = self._session
        attempt = 0
        while True:
            try:
                self._establish()
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
                with self._lock:
                    if s.state == CLOSED:
                        raise ClientClosed("client closed") from None
                    self._cond.wait(s.backoff.delay(attempt))
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name="pigeon-supervisor")
        self._supervisor.start()
        return self

    def _establish(self) -> None:
        """Connects, says hello, re-subscribes and flushes the buffer.

        Raises OSError or PigeonError; the state is CONNECTED on return.
        """
        s = self._session
        sock = self._open()
        conn = _Conn(sock, s.next_gen())
        conn.thread = threading.Thread(target=self._read_loop, args=(conn,), daemon=True,
                                       name="pigeon-reader-%d" % conn.gen)
        conn.thread.start()  # before close() can see conn, so it can always join it
        with self._lock:
            closed = s.state == CLOSED
            if not closed:
                s.link = conn
        if closed:
            conn.close()
            raise ClientClosed("client closed")
        try:
            s.hello_done(self._hello(conn))
            with self._wlock:
                with self._lock:
                    if s.state == CLOSED:
                        raise ClientClosed("client closed")
                    if not conn.alive:
                        raise ConnectionLost("connection lost during set-up", conn.error)
                    data = s.resume(conn, _Call)
                self._write(conn, data)
                with self._lock:
                    if not conn.alive:
                        raise ConnectionLost("connection lost during set-up", conn.error)
                    s.set_state(CONNECTED)
        except BaseException:
            conn.close()
            raise

    def _open(self):
        """A connected socket to the broker, under TLS for tls:// (the
        handshake done); raises ConnectError, TlsError."""
        s = self._session
        try:
            sock = open_socket(s.address, s.timeout)
        except OSError as e:
            raise ConnectError(str(e)) from e
        if self._ssl is None:
            return sock
        try:
            wrapped = tls.TlsSocket(sock, self._ssl, s.address)
            wrapped.handshake(s.timeout, proto.READ_CHUNK)
            return wrapped
        except TlsError:
            sock.close()
            raise
        except OSError as e:  # the socket's own failure, a timeout
            sock.close()
            raise ConnectError("TLS handshake with %s: %s" % (s.address, e)) from e
        except BaseException:
            sock.close()
            raise

    def _hello(self, conn: _Conn) -> Any:
        """Says hello on CONN: its result, or the refusal.  A broker that
        refuses this client's certificate (TLS 1.3 says so after the
        handshake) sends an alert and closes: the hello's write may fail
        first, but the reader reads the alert, and its TlsError is the one
        raised."""
        s = self._session
        try:
            return self._call_on(conn, "hello", s.hello_params(), s.timeout)
        except AuthError as e:
            raise s.hello_refused(e) from None
        except ConnectionLost:
            if self._ssl is not None and conn.thread is not threading.current_thread():
                conn.thread.join(s.timeout)  # the socket is shut down: it ends soon
            if conn.tls_error is not None:
                raise conn.tls_error from None
            raise

    # ----------------------------------------------------------- writing

    def _write(self, conn: _Conn, data: bytes) -> None:
        """Writes DATA whole (with _wlock held); raises OSError."""
        conn.sock.sendall(data)
        conn.last_send = time.monotonic()

    def _send_or_buffer(self, frame: bytes, build: Optional[Callable[[int], bytes]] = None,
                        on_done: Optional[OnDone] = None) -> Optional[_Conn]:
        """Writes a notification FRAME now, or buffers it while reconnecting.

        With BUILD, what is written on a live connection is BUILD(msgid)
        instead, a request whose response goes to ON_DONE (the session's);
        FRAME is still what is buffered.  Returns the connection it was
        written to, or None when buffered.
        """
        s = self._session
        with self._wlock:
            with self._lock:
                s.check_usable()
                conn = s.link
                if s.state != CONNECTED:
                    s.buffer_frame(frame)
                    return None
                out = frame
                if build is not None:
                    msgid = s.next_msgid()
                    out = build(msgid)
                    s.register(conn, msgid, None, on_done)
            try:
                self._write(conn, out)
                return conn
            except OSError as e:
                self._lost(conn, e)
                with self._lock:
                    if s.state == RECONNECTING:
                        # The broker never got the whole frame: safe to resend.
                        s.buffer_frame(frame)
                        return None
                raise ConnectionLost("connection lost while publishing", conn.error) from e

    def _wait_connected(self, deadline: float) -> _Conn:
        s = self._session
        with self._lock:
            while True:
                s.check_usable()
                if s.state == CONNECTED:
                    return s.link
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("not connected to %s" % (s.address,))
                self._cond.wait(left)

    def _call(self, method: Optional[str], params: Any, timeout: Optional[float],
              build: Optional[Callable[[int], bytes]] = None) -> Any:
        """A request on the live connection (waiting for one while
        reconnecting); returns its result or raises its error.

        BUILD, when given, makes the frame from the msgid instead.
        """
        s = self._session
        timeout = s.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            conn = self._wait_connected(deadline)
            with self._wlock:
                with self._lock:
                    if conn is not s.link or s.state != CONNECTED:
                        continue
                    msgid = s.next_msgid()
                    frame = build(msgid) if build else proto.encode_request(msgid, method, params)
                    call = _Call()
                    s.register(conn, msgid, call)
                try:
                    self._write(conn, frame)
                except OSError as e:
                    self._lost(conn, e)
            return self._await(conn, msgid, call, deadline, method or "pub")

    def _call_on(self, conn: _Conn, method: str, params: Any, timeout: float) -> Any:
        """A request on CONN whatever the client's state (set-up, pings)."""
        s = self._session
        with self._wlock:
            with self._lock:
                if not conn.alive:
                    raise ConnectionLost("connection lost", conn.error)
                msgid = s.next_msgid()
                call = _Call()
                s.register(conn, msgid, call)
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
                self._session.forget(conn, msgid)
            raise

    # ---------------------------------------------------- subscriptions

    def _subscribe(self, pattern: str, queue: Optional[str], raw: bool,
                   max_pending: Optional[int], timeout: Optional[float]) -> Subscription:
        s = self._session
        timeout = s.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        sub = Subscription(self, s.next_sid(), pattern, queue, raw, max_pending)
        with self._wlock:
            with self._lock:
                s.check_usable()
                s.add_sub(sub)
                conn = s.link if s.state == CONNECTED else None
                if conn is not None:
                    call = _Call()
                    frame = s.sub_frame(conn, sub, call)
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
                if s.state == RECONNECTING:
                    return sub  # made again on the new connection
                s.remove_sub(sub)
            raise
        except TimeoutError:
            with self._lock:
                s.remove_sub(sub)
            sub._end(None, discard=True)
            raise
        return sub

    def _unsubscribe(self, sub: Subscription, timeout: Optional[float]) -> None:
        s = self._session
        timeout = s.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            if not s.remove_sub(sub):
                sub._end(None, discard=True)
                return
            call = sub._call
        sub._end(None, discard=True)
        if call is not None:
            try:
                call.wait(deadline - time.monotonic(), "sub")
            except PigeonError:
                return  # never made, or its connection is gone
        with self._lock:
            target = s.unsub_target(sub)
        if target is None:
            return
        conn, sid = target
        try:
            self._call_on(conn, "unsub", [sid], max(0.0, deadline - time.monotonic()))
        except (ConnectionLost, BadParams):
            pass
        with self._lock:
            s.unsubscribed(conn, sid)

    def _ensure_inbox(self, timeout: float) -> None:
        """Subscribes to this client's reply inbox once."""
        s = self._session
        with self._inbox_lock:
            if s.inbox is None or not s.inbox.active:
                s.inbox = self._subscribe(s.inbox_pattern(), None, False, None, timeout)

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
                frames = conn.decoder.feed(view[:n])
                with self._lock:
                    effects = self._session.receive(conn, frames)
                run(effects)
        except (OSError, PigeonError) as e:
            exc = e
            if isinstance(e, TlsError):
                conn.tls_error = e
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

    def _lost(self, conn: _Conn, exc: Optional[BaseException]) -> None:
        """CONN is gone: fail what waited on it and start reconnecting."""
        with self._lock:
            was_alive, effects = self._session.lose(conn, exc)
        if not was_alive:
            return
        conn.abort()
        run(effects)

    def _set_lost(self, error: Optional[ConnectionLost]) -> None:
        with self._lock:
            effects = self._session.set_lost(error)
        run(effects)

    # ------------------------------------------------------- supervisor

    def _supervise(self) -> None:
        """Pings when the client has been silent; reconnects after a loss."""
        s = self._session
        while True:
            with self._lock:
                while True:
                    if s.state in (CLOSED, LOST):
                        return
                    if s.state == RECONNECTING:
                        break
                    conn = s.link
                    if s.ping_interval is None:
                        self._cond.wait()
                        continue
                    due = conn.last_send + s.ping_interval - time.monotonic()
                    if due <= 0:
                        break
                    self._cond.wait(due)
                state = s.state
            if state == RECONNECTING:
                self._reconnect()
            else:
                self._keepalive(conn)

    def _keepalive(self, conn: _Conn) -> None:
        s = self._session
        try:
            self._call_on(conn, "ping", [], s.timeout)
        except TimeoutError:
            log.warning("pigeon %s: no pong within %gs; reconnecting", s.address, s.timeout)
            conn.abort()
        except PigeonError:
            pass  # the reader reports the loss

    def _reconnect(self) -> None:
        s = self._session
        attempt = 0
        last: Optional[BaseException] = None
        while True:
            with self._lock:
                if s.state != RECONNECTING:
                    return
                if s.backoff.exhausted(attempt):
                    break
                delay = s.backoff.delay(attempt)
                if delay > 0:
                    self._cond.wait(delay)
                    if s.state != RECONNECTING:
                        return
            attempt += 1
            try:
                self._establish()
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
        self._set_lost(ConnectionLost("gave up reconnecting to %s after %d attempts"
                                      % (s.address, attempt),
                                      last if isinstance(last, PigeonError) else None))


def connect(address: Optional[str] = None, *, name: Optional[str] = None,
            timeout: float = DEFAULT_TIMEOUT, reconnect: bool = False,
            max_attempts: Optional[int] = None, backoff: Optional[Backoff] = None,
            ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
            max_buffer: int = DEFAULT_MAX_BUFFER, buffer_full: str = "raise",
            max_pending: Optional[int] = DEFAULT_MAX_PENDING,
            on_error: Optional[Callable[[PigeonError], None]] = None,
            token: Optional[str] = None, user: Optional[str] = None,
            password: Optional[str] = None, ssl_context: Optional[ssl.SSLContext] = None,
            ca: Optional[str] = None, cert: Optional[str] = None, key: Optional[str] = None,
            insecure: bool = False) -> Client:
    """Connects to a broker and says hello; returns a Client.

    address        "host:port", "host", "[v6]:port" or "unix:/path", or a
                   TCP form after "tls://" for TLS; None means
                   $PIGEON_SERVER, else "127.0.0.1:7400"
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
    user, password the login (or token): sent in hello on every connection,
    token          reconnects included.  Off this machine, use tls:// so
                   they do not cross the network in clear
    ssl_context    tls:// only: an ssl.SSLContext of the program's own,
                   used as it is; or, to have one made:
    ca             a PEM file of the CAs the broker's certificate must chain
                   to (default: the system's)
    cert, key      a client certificate (and its key, if not in the same
                   PEM file); a broker may log in the user its CN names
    insecure       True: do not verify the broker's certificate (tests only)

    Raises ConnectError when the broker cannot be reached (after the
    attempts allowed), AuthError (AuthFailed) for a refused login, TlsError
    when TLS fails (a certificate that does not verify, a file that cannot
    be loaded), ValueError for TLS options with a plain address.
    """
    return Client(address, name=name, timeout=timeout, reconnect=reconnect,
                  max_attempts=max_attempts, backoff=backoff, ping_interval=ping_interval,
                  max_buffer=max_buffer, buffer_full=buffer_full, max_pending=max_pending,
                  on_error=on_error, token=token, user=user, password=password,
                  ssl_context=ssl_context, ca=ca, cert=cert, key=key,
                  insecure=insecure)._start()
