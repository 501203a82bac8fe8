"""test_session.py - the session core (pigeon/session.py) alone, with no
socket, thread or event loop: frames in, effects and frames out.  What
both clients share is checked here once; test_client.py and test_aio.py
check it again through each client against a real broker."""

import unittest

import support  # noqa: F401

import msgpack

import pigeon
from pigeon import protocol as proto, session


class Waiter:
    """A waiter that records how it was finished."""

    def __init__(self):
        self.conn = None
        self.done = []

    def finish(self, error, result=None):
        self.done.append((error, result))


class Sub(session.SubscriptionQueue):
    def _deliver(self, msg):
        self._push(msg)

    def _end(self, error=None, discard=False):
        self._stop(error, discard)


def response(msgid, error=None, result=None):
    return proto.Response(msgid, error, result)


def msg(sid, topic, payload, opts=None):
    return proto.MsgFrame(sid, topic, msgpack.packb(payload), opts)


def decode(frame):
    return msgpack.unpackb(frame, raw=False)


class SessionCore(unittest.TestCase):
    def setUp(self):
        self.changes = 0
        self.s = session.Session("127.0.0.1:1", name="t", changed=self.count_change)
        self.link = session.Link(self.s.next_gen())
        self.s.link = self.link

    def count_change(self):
        self.changes += 1

    def connected(self):
        self.s.hello_done({"max_payload": 1 << 20, "client_id": 3})
        self.s.set_state(session.CONNECTED)

    def test_subscription_gets_its_sid_before_its_messages(self):
        sub = Sub(self.s.next_sid(), "a.*", None, False, None)
        self.s.add_sub(sub)
        w = Waiter()
        frame = decode(self.s.sub_frame(self.link, sub, w))
        self.assertEqual(frame[:3], [0, sub._msgid, "sub"])
        self.assertEqual(frame[3], ["a.*"])
        # The answer and a first message in one read: the sid is recorded
        # while the frames are handled, so the message finds its subscription.
        effects = self.s.receive(self.link, [response(sub._msgid, None, 42),
                                             msg(42, "a.b", {"n": 1})])
        self.assertEqual(sub.pending, 0)  # nothing runs until the effects do
        session.run(effects)
        self.assertEqual(w.done, [(None, 42)])
        self.assertEqual((sub._conn, sub._server_sid), (self.link, 42))
        self.assertEqual(sub._msgs[0].payload, {"n": 1})
        self.assertEqual(self.s.receive(self.link, [msg(99, "a.c", 1)]), [])  # unknown sid

    def test_refused_subscription_ends(self):
        sub = Sub(self.s.next_sid(), "a", None, False, None)
        self.s.add_sub(sub)
        self.s.sub_frame(self.link, sub, Waiter())
        session.run(self.s.receive(self.link, [response(sub._msgid, [10, "too many"])]))
        self.assertFalse(sub.active)
        self.assertIsInstance(sub._error, pigeon.LimitError)
        self.assertEqual(self.s.subs, {})

    def test_reply_through_the_inbox(self):
        inbox = Sub(self.s.next_sid(), self.s.inbox_pattern(), None, False, None)
        self.s.add_sub(inbox)
        self.s.inbox = inbox
        self.s.sub_frame(self.link, inbox, Waiter())
        session.run(self.s.receive(self.link, [response(inbox._msgid, None, 5)]))
        token, reply_to = self.s.new_reply_to()
        self.assertEqual(reply_to, self.s.inbox_prefix + "." + token)
        w = Waiter()
        self.s.await_reply(token, w)
        session.run(self.s.receive(self.link, [msg(5, reply_to, "answer"),
                                               msg(5, reply_to, "second")]))
        self.assertEqual(len(w.done), 1)
        self.assertEqual(w.done[0][1].payload, "answer")
        self.assertEqual(self.s.replies, {})
        self.assertEqual(inbox.pending, 0)  # replies do not queue on the inbox

    def test_request_pub_to_nobody_ends_the_request(self):
        token, _ = self.s.new_reply_to()
        w = Waiter()
        self.s.await_reply(token, w)
        msgid = self.s.next_msgid()
        self.s.register(self.link, msgid, None, self.s.reply_pub_done(token, w, "svc.x"))
        session.run(self.s.receive(self.link, [response(msgid, None, 0)]))
        self.assertIsInstance(w.done[0][0], pigeon.NoResponders)
        self.assertEqual(self.s.replies, {})

    def test_error_notification_is_reported(self):
        seen = []
        self.s.on_error = seen.append
        effects = self.s.receive(self.link, [proto.Notification("error", [9, "slow"])])
        self.assertEqual(seen, [])
        session.run(effects)
        self.assertIsInstance(seen[0], pigeon.SlowConsumer)
        self.assertIs(self.link.error, seen[0])

    def test_buffer_and_resume(self):
        kept = msgpack.packb([2, "pub", ["t", 1]])  # 10 bytes
        self.s.max_buffer = len(kept) + 2
        self.s.buffer_frame(kept)
        with self.assertRaises(pigeon.BufferFull):
            self.s.buffer_frame(b"123")
        self.s.buffer_full = "drop"
        self.s.buffer_frame(b"123")
        self.assertEqual(self.s.dropped_publishes, 1)
        sub = Sub(self.s.next_sid(), "r", "q", False, None)
        self.s.add_sub(sub)
        self.s.hello_done({"max_payload": 1 << 20})
        data = self.s.resume(self.link, Waiter)
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data)
        frames = list(unpacker)
        self.assertEqual(frames[0][2:], ["sub", ["r", {"queue": "q"}]])
        self.assertEqual(frames[1:], [[2, "pub", ["t", 1]]])  # the buffered frame, after
        self.assertEqual((list(self.s.buffer), self.s.buffered), ([], 0))

    def test_losing_the_link(self):
        self.s.reconnect = True
        self.connected()
        sub = Sub(self.s.next_sid(), "a", None, False, None)
        self.s.add_sub(sub)
        call, reply = Waiter(), Waiter()
        self.s.register(self.link, self.s.next_msgid(), call)
        reply.conn = self.link
        self.s.await_reply("1", reply)
        alive, effects = self.s.lose(self.link, None)
        self.assertTrue(alive)
        self.assertEqual(self.s.state, session.RECONNECTING)
        session.run(effects)
        for w in (call, reply):
            self.assertIsInstance(w.done[0][0], pigeon.ConnectionLost)
        self.assertTrue(sub.active)  # made again on the next link
        self.assertEqual(self.s.lose(self.link, None), (False, []))
        # Giving up ends every subscription.
        session.run(self.s.set_lost(None))
        self.assertEqual(self.s.state, session.LOST)
        self.assertIsInstance(sub._error, pigeon.ConnectionLost)
        with self.assertRaises(pigeon.ConnectionLost):
            self.s.check_usable()

    def test_losing_without_reconnect_is_final(self):
        self.s.reconnect = False
        self.connected()
        alive, effects = self.s.lose(self.link, None)
        self.assertTrue(alive)
        self.assertEqual(self.s.state, session.LOST)
        self.assertGreater(self.changes, 1)  # CONNECTED, then LOST: whoever waits is woken

    def test_close(self):
        self.connected()
        sub = Sub(self.s.next_sid(), "a", None, False, None)
        self.s.add_sub(sub)
        w = Waiter()
        self.s.register(self.link, self.s.next_msgid(), w)
        self.s.buffer.append(b"x")
        link, effects = self.s.close()
        self.assertIs(link, self.link)
        session.run(effects)
        self.assertIsInstance(w.done[0][0], pigeon.ClientClosed)
        self.assertFalse(sub.active)
        self.assertEqual(self.s.buffer, session.deque())
        with self.assertRaises(pigeon.ClientClosed):
            self.s.check_usable()



class Logins(unittest.TestCase):
    """The credentials in every hello, the login's words, the user's inbox."""

    def test_hello_carries_the_credentials(self):
        s = session.Session("tls://h:1", name="t", user="alice", password="pw")
        self.assertEqual(s.hello_params(), [{"client": "t", "user": "alice", "password": "pw"}])
        self.assertEqual(s.hello_params(), s.hello_params())  # the same on every connection
        s = session.Session("h:1", name="t", token="tok")
        self.assertEqual(s.hello_params(), [{"client": "t", "token": "tok"}])

    def test_refused_login_says_which_credentials(self):
        cases = [({"user": "alice", "password": "secret"}, "as user 'alice'"),
                 ({"user": "alice"}, "as user 'alice', with no password"),
                 ({"token": "t0ken"}, "with a token"),
                 ({}, "with no credentials: give user= and password=, or token=")]
        for creds, says in cases:
            with self.subTest(creds=creds):
                s = session.Session("h:1", **creds)
                err = s.hello_refused(pigeon.errors.error_for(7, "authentication failed"))
                self.assertIsInstance(err, pigeon.AuthFailed)
                self.assertIsInstance(err, pigeon.AuthError)
                self.assertEqual(err.message, "authentication failed (%s)" % says)
                for secret in ("secret", "t0ken"):
                    self.assertNotIn(secret, str(err))
        other = pigeon.errors.error_for(3, "bad params")
        self.assertIs(session.Session("h:1").hello_refused(other), other)

    def test_inbox_is_the_users_own(self):
        s = session.Session("h:1", user="alice", password="pw")
        self.assertRegex(s.inbox_pattern(), r"^_INBOX\.alice\.[0-9a-f]{22}\.\*$")
        self.assertRegex(session.Session("h:1", token="t").inbox_pattern(),
                         r"^_INBOX\.[0-9a-f]{22}\.\*$")
        # A name no broker accepts cannot be a topic token: left out.
        self.assertRegex(session.Session("h:1", user="a b", password="pw").inbox_pattern(),
                         r"^_INBOX\.[0-9a-f]{22}\.\*$")

    def test_auth_errors(self):
        self.assertTrue(issubclass(pigeon.AuthRequired, pigeon.AuthError))
        self.assertTrue(issubclass(pigeon.AuthFailed, pigeon.AuthError))
        self.assertTrue(issubclass(pigeon.AuthError, pigeon.PigeonError))
        self.assertTrue(issubclass(pigeon.Forbidden, pigeon.PigeonError))
        self.assertTrue(issubclass(pigeon.TlsError, pigeon.ConnectError))
        self.assertIsInstance(pigeon.errors.error_for(6, "x"), pigeon.AuthRequired)
        self.assertIsInstance(pigeon.errors.error_for(8, "x"), pigeon.Forbidden)


if __name__ == "__main__":
    support.main()
