"""session.py - the client's session: its state and its rules, with no I/O.

A session outlives connections.  It holds the options and the state
(connecting, connected, reconnecting, lost, closed), the subscriptions
(made again on every connection), the publications buffered while
reconnecting, and the requests waiting for a reply in the client's inbox;
and for each connection, a Link: its frame decoder, the requests waiting
for a response, and the broker's ids for the subscriptions.  It decides
what each frame from the broker means, what a new connection sends, and
what a lost one fails.

It does no I/O, never blocks and never waits: the blocking client
(client.py: threads, a lock) and the asyncio client (aio.py: tasks) own
the sockets, the waiting and the timers, and drive one Session each.

Waiters.  Whoever waits for a response or a reply hands the session a
waiter: an object with finish(error, result=None) and a `conn` attribute
(the Link a request's message went out on; None while it is buffered).
Each client has its own kind (a threading.Event, an asyncio.Future).

Effects.  What wakes a waiter or runs a program's code (finishing a waiter,
queueing a message on a subscription, ending one, calling on_error) is not
done by the session but returned as a list of callables, for the client to
run() once it holds no lock: the blocking client calls the session with its
lock held, and must never run a program's callback under it.  Callbacks the
session keeps for itself (a response's on_done) do run at once, in order
with the frames, since they record state later frames depend on (the sid
of a subscription, before its first message).
"""

import itertools
import logging
import re
import secrets
import time
from collections import deque
from functools import partial
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from . import protocol as proto
from .address import Address, parse_address
from .errors import (AuthError, BufferFull, ClientClosed, ConnectionLost, NoResponders,
                     PigeonError, error_for)
from .protocol import Backoff, Message

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

# A user name the broker accepts, and thus a topic token (docs/security.md).
_USER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")

Effects = List[Callable[[], None]]
OnDone = Callable[[Any, Any], Effects]


def run(effects: Effects) -> None:
    """Runs what a session call decided (see the top)."""
    for effect in effects:
        effect()


def response_error(error: Any) -> Optional[PigeonError]:
    """The exception for a response's error element; None for success."""
    if error is None:
        return None
    if isinstance(error, list) and len(error) == 2:
        return error_for(*error)
    return PigeonError("malformed error %r" % (error,))


def request_pub_failure(topic: str, err: Any, result: Any) -> Optional[PigeonError]:
    """What ends a request at once, given the broker's response to its pub
    (sent as a request): its refusal, or NoResponders for a delivery count
    of zero.  None when someone got it, so a reply may come."""
    if err is not None:
        return response_error(err)
    if result == 0:
        return NoResponders("no responders on %s" % topic)
    return None


# ---------------------------------------------------------------- links ----

class Link:
    """One connection's protocol state.  The clients' connection classes
    add the socket (or streams) and the reader to it."""

    def __init__(self, gen: int):
        self.gen = gen
        self.decoder = proto.FrameDecoder()
        self.pending: Dict[int, Any] = {}       # msgid -> waiter
        self.on_done: Dict[int, OnDone] = {}    # msgid -> the session's own callback
        self.subs: Dict[int, "SubscriptionQueue"] = {}  # the broker's sid -> subscription
        self.last_send = time.monotonic()
        self.error: Optional[PigeonError] = None  # the broker's last error notification
        self.tls_error: Optional[PigeonError] = None  # TLS failing under the reader (an alert)
        self.alive = True


# -------------------------------------------------------- subscriptions ----

class SubscriptionQueue:
    """What both clients' subscriptions share: who they are, where they are
    on the wire, and the queue of messages received and not yet taken,
    bounded by max_pending.  The subclasses add how a reader waits for it
    (a Condition; an asyncio.Event) and hold whatever lock that needs
    around _push and _stop."""

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
        # On the wire (the session's; in the blocking client, under its lock).
        self._call: Any = None                # the waiter of the latest sub request
        self._msgid = 0                       # ... and its msgid
        self._conn: Optional[Link] = None     # the link _server_sid is on
        self._server_sid: Optional[int] = None

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

    def _deliver(self, msg: Message) -> None:
        raise NotImplementedError

    def _end(self, error: Optional[PigeonError] = None, discard: bool = False) -> None:
        raise NotImplementedError

    @property
    def active(self) -> bool:
        """False once unsubscribed, closed or lost for good."""
        return not self._ended

    @property
    def pending(self) -> int:
        """Messages received and not yet taken."""
        return len(self._msgs)


# -------------------------------------------------------------- session ----

class Session:
    """The state of one client (see the top).  CHANGED is called whenever
    the state changes, so the client can wake whoever waits for it (with
    the blocking client's lock held, as every call is)."""

    def __init__(self, address: Optional[str] = None, *, name: Optional[str] = None,
                 timeout: float = DEFAULT_TIMEOUT, reconnect: bool = False,
                 max_attempts: Optional[int] = None, backoff: Optional[Backoff] = None,
                 ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
                 max_buffer: int = DEFAULT_MAX_BUFFER, buffer_full: str = "raise",
                 max_pending: Optional[int] = DEFAULT_MAX_PENDING,
                 on_error: Optional[Callable[[PigeonError], None]] = None,
                 token: Optional[str] = None, user: Optional[str] = None,
                 password: Optional[str] = None,
                 changed: Callable[[], None] = lambda: None):
        if buffer_full not in ("raise", "drop"):
            raise ValueError("buffer_full must be 'raise' or 'drop'")
        self.address: Address = parse_address(address)
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
        self._changed = changed

        self.server_info: Dict[str, Any] = {}
        self.reconnects = 0           # successful reconnections so far
        self.dropped_publishes = 0    # publications dropped by buffer_full="drop"

        self.state = CONNECTING
        self.link: Optional[Link] = None  # the current connection
        self.subs: Dict[int, SubscriptionQueue] = {}  # by sid: made again on each link
        self.buffer: Deque[bytes] = deque()           # publications while not connected
        self.buffered = 0
        self.lost_error: Optional[ConnectionLost] = None
        self.inbox: Optional[SubscriptionQueue] = None
        # A user's own inboxes: a broker grants them with _INBOX.%u.> (docs/security.md),
        # so that no user can read another's replies.
        self.inbox_prefix = self._inbox_for(user)
        self.replies: Dict[str, Any] = {}  # request token -> waiter
        self._gens = itertools.count(1)
        self._msgids = itertools.count(1)
        self._sids = itertools.count(1)
        self._tokens = itertools.count(1)

    # ------------------------------------------------------------ state

    @property
    def max_payload(self) -> int:
        """The broker's frame limit in bytes (from hello)."""
        return int(self.server_info.get("max_payload", proto.DEFAULT_MAX_PAYLOAD))

    def set_state(self, state: str) -> None:
        self.state = state
        self._changed()

    def check_usable(self) -> None:
        """Raises unless the client can still be used."""
        if self.state == CLOSED:
            raise ClientClosed("client closed")
        if self.state == LOST:
            raise self.lost_error or ConnectionLost("not connected")

    def next_gen(self) -> int:
        return next(self._gens)

    def next_sid(self) -> int:
        return next(self._sids)

    def next_msgid(self) -> int:
        return next(self._msgids) & proto.MSGID_MASK

    # ------------------------------------------------- requests on a link

    def register(self, link: Link, msgid: int, waiter: Any,
                 on_done: Optional[OnDone] = None) -> None:
        """Request MSGID went out on LINK: WAITER (None: nobody) gets its
        response, and ON_DONE (the session's own) sees it first."""
        if waiter is not None:
            link.pending[msgid] = waiter
        if on_done is not None:
            link.on_done[msgid] = on_done

    def forget(self, link: Link, msgid: int) -> None:
        """Nobody waits for MSGID's response any more (a timeout)."""
        link.pending.pop(msgid, None)
        link.on_done.pop(msgid, None)

    # ---------------------------------------------------- subscriptions

    def add_sub(self, sub: SubscriptionQueue) -> None:
        self.subs[sub.sid] = sub

    def remove_sub(self, sub: SubscriptionQueue) -> bool:
        """Takes SUB out of the session; False when it was not in it."""
        if self.subs.get(sub.sid) is not sub:
            return False
        del self.subs[sub.sid]
        return True

    def sub_frame(self, link: Link, sub: SubscriptionQueue, waiter: Any) -> bytes:
        """A sub request for SUB on LINK, WAITER registered for its answer."""
        msgid = self.next_msgid()
        self.register(link, msgid, waiter, lambda err, sid: self._sub_done(link, sub, err, sid))
        sub._call, sub._msgid = waiter, msgid
        return proto.encode_request(msgid, "sub", proto.sub_params(sub.pattern, sub.queue))

    def _sub_done(self, link: Link, sub: SubscriptionQueue, err: Any, sid: Any) -> Effects:
        if err is not None:
            self.remove_sub(sub)
            return [partial(sub._end, error_for(*err) if isinstance(err, list) and len(err) == 2
                            else PigeonError("sub failed: %r" % (err,)))]
        link.subs[sid] = sub
        sub._conn, sub._server_sid = link, sid
        return []

    def unsub_target(self, sub: SubscriptionQueue) -> Optional[Tuple[Link, int]]:
        """Where SUB's unsub goes: its link and the broker's sid, or None
        when it is on no live connection (nothing to tell the broker)."""
        link, sid = sub._conn, sub._server_sid
        if link is not self.link or self.state != CONNECTED or sid is None:
            return None
        return link, sid

    def unsubscribed(self, link: Link, sid: int) -> None:
        link.subs.pop(sid, None)

    # ---------------------------------------- publications while down

    def buffer_frame(self, frame: bytes) -> None:
        """Keeps FRAME for after the reconnect; raises BufferFull, or
        counts it dropped, when max_buffer would be passed."""
        if self.buffered + len(frame) > self.max_buffer:
            if self.buffer_full == "raise":
                raise BufferFull("reconnect buffer full (%d bytes queued, max_buffer %d)"
                                 % (self.buffered, self.max_buffer))
            self.dropped_publishes += 1
            return
        self.buffer.append(frame)
        self.buffered += len(frame)

    def take_buffer(self) -> List[bytes]:
        """The buffered frames that fit the broker's limit; empties the buffer."""
        frames = [f for f in self.buffer if len(f) <= self.max_payload]
        if len(frames) != len(self.buffer):
            log.warning("dropped %d buffered publications above the new max_payload",
                        len(self.buffer) - len(frames))
        self.buffer.clear()
        self.buffered = 0
        return frames

    # ------------------------------------------- requests and the inbox

    def inbox_pattern(self) -> str:
        return self.inbox_prefix + ".*"

    def new_reply_to(self) -> Tuple[str, str]:
        """A fresh request token, and the inbox topic its reply comes to."""
        token = str(next(self._tokens))
        return token, self.inbox_prefix + "." + token

    def await_reply(self, token: str, waiter: Any) -> None:
        self.replies[token] = waiter

    def drop_reply(self, token: str) -> None:
        self.replies.pop(token, None)

    def reply_pub_done(self, token: str, waiter: Any, topic: str) -> OnDone:
        """The on_done of a request's pub: a refusal, or no one to deliver
        it to, ends WAITER at once."""
        def pub_done(err: Any, result: Any) -> Effects:
            failure = request_pub_failure(topic, err, result)
            if failure is None or self.replies.get(token) is not waiter:
                return []
            del self.replies[token]
            return [partial(waiter.finish, failure)]
        return pub_done

    # --------------------------------------------------- a new connection

    def hello_params(self) -> List[Any]:
        """The hello's params: the name, and the credentials, on every connection."""
        return proto.hello_params(self.name, self._credentials)

    def hello_refused(self, err: PigeonError) -> PigeonError:
        """The error to raise for a hello the broker refused with ERR: a
        refused login says which credentials were sent (never their value)."""
        if not isinstance(err, AuthError):
            return err
        c = self._credentials
        if c["token"] is not None:
            who = "with a token"
        elif c["user"] is not None:
            who = "as user %r%s" % (c["user"], "" if c["password"] is not None
                                    else ", with no password")
        else:
            who = "with no credentials: give user= and password=, or token="
        refused = type(err)("%s (%s)" % (err.message, who))
        refused.__cause__ = err
        return refused

    @staticmethod
    def _inbox_for(user: Optional[str]) -> str:
        """A fresh inbox prefix: `_INBOX.<user>.<hex>` for a user, else `_INBOX.<hex>`."""
        named = isinstance(user, str) and _USER_NAME.match(user)
        return "_INBOX." + ("%s." % user if named else "") + secrets.token_hex(11)

    def hello_done(self, info: Any) -> None:
        """Keeps hello's result; raises PigeonError when it is not one.

        A client that logged in with a token or a certificate learns its user
        here and moves its inbox under `_INBOX.<user>.`, as one that gave its
        name has from the start, unless the inbox is subscribed already."""
        if not isinstance(info, dict):
            raise PigeonError("hello answered %r" % (info,))
        self.server_info = info
        user = info.get("user")
        if user and self._credentials["user"] is None and self.inbox is None:
            self.inbox_prefix = self._inbox_for(user)

    def resume(self, link: Link, new_waiter: Callable[[], Any]) -> bytes:
        """What LINK sends once hello is answered, before it is CONNECTED: a
        sub for every subscription (each with a NEW_WAITER()), then the
        publications buffered meanwhile, which the broker thus routes with
        the subscriptions (the inbox's too) in place."""
        frames = [self.sub_frame(link, sub, new_waiter()) for sub in self.subs.values()]
        frames += self.take_buffer()
        return b"".join(frames)

    # ----------------------------------------------- frames from the broker

    def receive(self, link: Link, frames: List[Any]) -> Effects:
        """FRAMES (from LINK's decoder), in order."""
        effects: Effects = []
        for frame in frames:
            effects += self._dispatch(link, frame)
        return effects

    def _dispatch(self, link: Link, frame: Any) -> Effects:
        if isinstance(frame, proto.MsgFrame):
            return self._on_msg(link, frame)
        if isinstance(frame, proto.Response):
            waiter = link.pending.pop(frame.msgid, None)
            on_done = link.on_done.pop(frame.msgid, None)
            effects = on_done(frame.error, frame.result) if on_done is not None else []
            if waiter is not None:
                error = response_error(frame.error)
                effects.append(partial(waiter.finish, error, None if error else frame.result))
            return effects
        if frame.method == "error":
            p = frame.params
            err = (error_for(p[0], p[1]) if isinstance(p, list) and len(p) == 2
                   else PigeonError("malformed error notification %r" % (p,)))
            link.error = err
            return [partial(self.report, err)]
        log.debug("ignoring notification %r", frame.method)
        return []

    def _on_msg(self, link: Link, f: proto.MsgFrame) -> Effects:
        sub = link.subs.get(f.sid)
        if sub is None:
            return []
        if sub is self.inbox:
            waiter = self.replies.pop(f.topic[len(self.inbox_prefix) + 1:], None)
            if waiter is None:
                return []  # late, or a second reply
            msg = proto.message_from_frame(f.topic, f.raw, f.opts, sub, sub.sid, sub.raw)
            return [partial(waiter.finish, None, msg)]
        msg = proto.message_from_frame(f.topic, f.raw, f.opts, sub, sub.sid, sub.raw)
        return [partial(sub._deliver, msg)]

    def report(self, err: PigeonError) -> None:
        """An error not tied to a call: to on_error, else to the log."""
        if self.on_error is None:
            log.warning("pigeon %s: %s", self.address, err)
            return
        try:
            self.on_error(err)
        except Exception:
            log.exception("pigeon on_error callback failed")

    # ------------------------------------------------- losing, closing

    def lose(self, link: Link, exc: Optional[BaseException]) -> Tuple[bool, Effects]:
        """LINK is gone (EXC: why, if known): fails what waited on it, and
        moves to RECONNECTING or LOST when it was the live connection.
        Returns False (and nothing to do) when it was gone already."""
        if not link.alive:
            return False, []
        link.alive = False
        reason = link.error
        if reason is None and isinstance(exc, PigeonError):
            reason = exc
        lost = ConnectionLost("connection to %s lost" % (self.address,), reason)
        waiters = list(link.pending.values())
        link.pending.clear()
        link.on_done.clear()
        for token in [t for t, w in self.replies.items() if w.conn is link]:
            waiters.append(self.replies.pop(token))  # popped: no reply can finish it too
        effects: Effects = [partial(w.finish, lost) for w in waiters]
        if link is self.link and self.state == CONNECTED:
            log.info("pigeon %s: connection lost (%s)", self.address, reason or exc)
            if self.reconnect:
                self.set_state(RECONNECTING)
            else:
                effects += self.set_lost(lost)
        else:
            self._changed()
        return True, effects

    def set_lost(self, error: Optional[ConnectionLost]) -> Effects:
        """Lost for good: every subscription and reply ends with ERROR."""
        if self.state == CLOSED:
            return []
        self.lost_error = error or ConnectionLost("not connected to %s" % (self.address,))
        subs = list(self.subs.values())
        self.subs.clear()
        self.buffer.clear()
        self.buffered = 0
        effects: Effects = [partial(w.finish, self.lost_error) for w in self.replies.values()]
        effects += [partial(sub._end, self.lost_error) for sub in subs]
        self.set_state(LOST)
        return effects

    def close(self) -> Tuple[Optional[Link], Effects]:
        """Moves to CLOSED: every waiter fails with ClientClosed, every
        subscription ends.  Returns the link, for the client to close."""
        self.set_state(CLOSED)
        link = self.link
        waiters = list(self.replies.values())
        if link is not None:
            waiters += link.pending.values()
            link.pending.clear()
        subs = list(self.subs.values())
        self.subs.clear()
        if self.buffer:
            log.warning("closing with %d buffered publications unsent", len(self.buffer))
        self.buffer.clear()
        self.buffered = 0
        effects: Effects = [partial(w.finish, ClientClosed("client closed")) for w in waiters]
        effects += [partial(sub._end, None, True) for sub in subs]
        return link, effects


# --------------------------------------------------------------- facade ----

def _setting(name: str, doc: str) -> property:
    def get(self: "SessionFacade") -> Any:
        return getattr(self._session, name)

    def put(self: "SessionFacade", value: Any) -> None:
        setattr(self._session, name, value)
    return property(get, put, doc=doc)


def _reading(name: str, doc: str) -> property:
    return property(lambda self: getattr(self._session, name), doc=doc)


class SessionFacade:
    """The public face both clients give their session: settings and state
    read (and settings written) through to self._session."""

    _session: Session

    address = _reading("address", "Where the broker is (an Address).")
    server_info = _reading("server_info", "The broker's hello result (server, version, proto, "
                                          "client_id, max_payload).")
    reconnects = _reading("reconnects", "Successful reconnections so far.")
    dropped_publishes = _reading("dropped_publishes",
                                 'Publications dropped by buffer_full="drop".')
    max_payload = _reading("max_payload", "The broker's frame limit in bytes (from hello).")
    name = _setting("name", "The client's name in the broker's log.")
    timeout = _setting("timeout", "Default seconds for connecting and for any call.")
    reconnect = _setting("reconnect", "Whether a lost connection is brought back.")
    backoff = _setting("backoff", "The Backoff between reconnect attempts.")
    ping_interval = _setting("ping_interval", "Seconds without sending before a ping.")
    max_buffer = _setting("max_buffer", "Bytes of publications kept while reconnecting.")
    buffer_full = _setting("buffer_full", '"raise" or "drop" when that buffer is full.')
    max_pending = _setting("max_pending", "Unread messages kept per subscription.")
    on_error = _setting("on_error", "Called with broker errors not tied to a call.")

    # For introspection (the tests look): the session's tables.
    _subs = _reading("subs", "Subscriptions by sid.")
    _replies = _reading("replies", "Requests waiting for a reply, by token.")

    @property
    def client_id(self) -> Optional[int]:
        """The broker's id for this connection (changes on reconnect)."""
        return self._session.server_info.get("client_id")

    @property
    def is_connected(self) -> bool:
        return self._session.state == CONNECTED

    @property
    def state(self) -> str:
        """connecting, connected, reconnecting, lost or closed."""
        return self._session.state

    def __repr__(self) -> str:
        return "<pigeon.%s %s %s>" % (self._repr_name, self._session.address,
                                      self._session.state)

    _repr_name = "Client"
