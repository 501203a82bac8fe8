"""test_security.py - logins, permissions and TLS, through real sockets.

One users file for every test (passwords hashed by the real `pigeon passwd`,
tokens as their SHA-256):

  alice   password; publish orders.>, _INBOX.> but not orders.admin.>;
          subscribe orders.*.status, orders.eu.>, _INBOX.%u.> but not
          orders.eu.secret.>
  bob     password; publish and subscribe > (no '$' topic: '>' never reaches one)
  svc     token; subscribe svc.requests; no publish grant, but allow_responses
  mon     password; subscribe $SYS.> by name; publish svc.requests

Covered: codes 6 and 7 (and the close), code 8 on pub, on sub and on a
reply_to, coverage of wildcard subscriptions, deny at delivery (retained
replays and queue groups too), %u, allow_responses, '$' topics, tokens,
client certificates (their CN a user), a wrong CA, an expired certificate,
reloads that swap the policy, fail closed, and disconnect removed users, and
a flood of failed logins while an authenticated client pings.
"""

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import harness
from harness import (AUTH_FAILED, AUTH_REQUIRED, FORBIDDEN, BrokerTest, client_tls_context,
                     pki, wait_for)

PIGEON = os.environ.get("PIGEON", os.path.join(os.path.dirname(__file__),
                                               "../../build/clients/cli/pigeon"))
SVC_TOKEN = "svc-token-1f2e3d4c5b6a"


def password_hash(password):
    """The users-file hash of PASSWORD, made by `pigeon passwd` from a pipe."""
    r = subprocess.run([PIGEON, "passwd"], input=password + "\n", capture_output=True, text=True,
                       timeout=60, check=True)
    return r.stdout.strip()


_hashes = {}


def users_text(drop=(), alice_subscribe="orders.*.status, orders.eu.>, _INBOX.%u.>",
               alice_publish="orders.>, _INBOX.>"):
    for who in ("alice", "bob", "mon"):
        if who not in _hashes:
            _hashes[who] = password_hash(who + "-pw")
    users = {
        "alice": ("[user alice]\npassword = %s\npublish = %s\n"
                  "publish_deny = orders.admin.>\nsubscribe = %s\n"
                  "subscribe_deny = orders.eu.secret.>\n"
                  % (_hashes["alice"], alice_publish, alice_subscribe)),
        "bob": "[user bob]\npassword = %s\npublish = >\nsubscribe = >\n" % _hashes["bob"],
        "svc": ("[user svc]\ntoken = sha256:%s\nsubscribe = svc.requests\nallow_responses = yes\n"
                % hashlib.sha256(SVC_TOKEN.encode()).hexdigest()),
        "mon": ("[user mon]\npassword = %s\nsubscribe = $SYS.>\npublish = svc.requests\n"
                % _hashes["mon"]),
    }
    return "".join(text for name, text in users.items() if name not in drop)


class SecurityTest(BrokerTest):
    AUTO_START = False
    LISTENERS = None

    def setUp(self):
        super().setUp()
        d = pki()
        self.users = os.path.join(tempfile_dir(self), "users.conf")
        with open(self.users, "w") as f:
            f.write(users_text())
        listeners = {
            "plain": {"bind": "127.0.0.1:0"},
            "tls": {"bind": "127.0.0.1:0", "tls_cert": os.path.join(d, "server.pem"),
                    "tls_key": os.path.join(d, "server.key"), "tls_ca": os.path.join(d, "ca.pem")},
            "open": {"bind": "unix:" + os.path.join(tempfile_dir(self), "open.sock"),
                     "auth": "none"},
        }
        self.broker = self.start_broker({"log_level": "info", "stats_interval": "100ms"}, listeners,
                                         extra="[auth]\nusers_file = %s\n" % self.users)

    def login(self, user, listener="plain", **kw):
        creds = {"token": SVC_TOKEN} if user == "svc" else {"user": user, "password": user + "-pw"}
        return self.client(name=listener, creds=creds, **kw)


def tempfile_dir(test):
    import tempfile
    if not hasattr(test, "_tmp"):
        test._tmp = tempfile.TemporaryDirectory(prefix="pigeon-sec-")
        test.addCleanup(test._tmp.cleanup)
    return test._tmp.name


class Logins(SecurityTest):
    def test_code_6_before_hello_then_close(self):
        c = self.client(name="plain", hello=False)
        code, message = c.request_error("sub", ">")
        self.assertEqual(code, AUTH_REQUIRED)
        self.assertIn("authentication required", message)
        c.wait_closed()
        # A notification gets an error notification, then the close.
        c = self.client(name="plain", hello=False)
        c.notify("pub", "orders.x", 1)
        self.assertEqual(c.wait_error()[0], AUTH_REQUIRED)
        c.wait_closed()

    def test_code_7_then_close(self):
        cases = [{"user": "alice", "password": "wrong"}, {"user": "nobody", "password": "x"},
                 {"token": "not-a-token"}, {"user": "alice"}, {},
                 {"user": "svc", "token": SVC_TOKEN}]
        for creds in cases:
            with self.subTest(creds=creds):
                c = self.client(name="plain", hello=False)
                code, message = c.request_error("hello", creds)
                self.assertEqual(code, AUTH_FAILED)
                self.assertEqual(message, "authentication failed")
                c.wait_closed()
        self.assertGreaterEqual(self.broker.log_count(r"login failed"), len(cases))

    def test_password_and_token_logins(self):
        a = self.login("alice")
        self.assertEqual(a.hello_result["minor"], 1)
        self.assertEqual(a.hello_result["user"], "alice")
        self.assertEqual(a.ping(), "pong")
        s = self.login("svc")
        self.assertEqual(s.hello_result["user"], "svc")  # a token says who it is only here
        self.assertEqual(s.ping(), "pong")
        self.broker.wait_log(r"client %d \(.*\) is user alice" % a.hello_result["client_id"])
        self.broker.wait_log(r"is user svc")
        self.assertNotIn("alice-pw", self.broker.log_text())
        self.assertNotIn(SVC_TOKEN, self.broker.log_text())

    def test_listener_without_auth(self):
        c = self.client(name="open")  # no credentials: auth = none
        self.assertNotIn("user", c.hello_result)
        sid = c.sub(">")
        self.assertIsInstance(sid, int)
        self.assertEqual(c.request_error("pub", "$SYS.x", 1)[0], FORBIDDEN)

    def test_flood_of_failed_logins_does_not_stall_others(self):
        pinger = self.login("bob")
        stop = threading.Event()
        worst = [0.0]

        def ping():
            while not stop.is_set():
                t0 = time.monotonic()
                pinger.ping()
                worst[0] = max(worst[0], time.monotonic() - t0)
                time.sleep(0.01)
        t = threading.Thread(target=ping, daemon=True)
        t.start()
        socks = []
        hello = harness.request_frame(1, "hello", [{"user": "alice", "password": "guess"}])
        for _ in range(300):
            s = harness.connect_socket(self.broker.address("plain"))
            s.sendall(hello)
            socks.append(s)
        for s in socks:  # each is answered code 7 and closed, after its delay
            data = harness.read_until_closed(s, timeout=harness.DEADLINE * 2)
            self.assertEqual(harness.frames_of(data)[0][2][0], AUTH_FAILED)
            s.close()
        stop.set()
        t.join(harness.DEADLINE)
        print("worst ping during 300 failed logins: %.1f ms" % (worst[0] * 1000))
        # The bar is 100 ms (docs/performance.md); ten times that here, for a loaded machine.
        self.assertLess(worst[0], 1.0)


class Permissions(SecurityTest):
    def test_publish_forbidden_is_code_8_and_stays_open(self):
        a = self.login("alice")
        self.assertEqual(a.pub("orders.eu.new", 1), 0)
        code, message = a.request_error("pub", "metrics.cpu", 1)
        self.assertEqual(code, FORBIDDEN)
        self.assertIn("not allowed to publish to 'metrics.cpu'", message)
        self.assertEqual(a.request_error("pub", "orders.admin.drop", 1)[0], FORBIDDEN)  # deny wins
        a.notify("pub", "metrics.cpu", 1)
        code, message = a.wait_error()
        self.assertEqual(code, FORBIDDEN)
        self.assertIn("metrics.cpu", message)
        self.assertEqual(a.ping(), "pong")

    def test_subscription_must_be_covered(self):
        a = self.login("alice")
        for pattern in ("orders.>", "orders.*", "orders.*.*", ">", "orders.eu", "metrics.>"):
            with self.subTest(pattern=pattern):
                self.assertEqual(a.request_error("sub", pattern)[0], FORBIDDEN)
        for pattern in ("orders.*.status", "orders.eu.status", "orders.eu.>", "orders.eu.*.x"):
            with self.subTest(pattern=pattern):
                self.assertIsInstance(a.sub(pattern), int)

    def test_deny_at_delivery_live_retained_and_groups(self):
        a = self.login("alice")
        b = self.login("bob")
        b.pub("orders.eu.secret.plan", "r-hidden", retain=True)
        b.pub("orders.eu.open", "r-shown", retain=True)
        sid = a.sub("orders.eu.>")  # covered, overlaps the deny: filtered
        a.wait_messages(1)
        b.pub("orders.eu.secret.x", "hidden")
        b.pub("orders.eu.y", "shown")
        a.wait_messages(2)
        a.sync()
        self.assertEqual(sorted((m[1], m[2]) for m in a.messages),
                         [("orders.eu.open", "r-shown"), ("orders.eu.y", "shown")])
        self.assertTrue(all(m[0] == sid for m in a.messages))
        # A queue group: a message denied to alice goes to bob, whose turn it is not.
        a.messages.clear()
        qa = a.sub("orders.eu.>", queue="q")
        qb = b.sub("orders.eu.>", queue="q")
        b.messages.clear()
        for i in range(4):
            b.pub("orders.eu.secret.%d" % i, i)
        b.sync()
        a.sync()
        self.assertEqual([m for m in a.messages if m[0] == qa], [])
        self.assertEqual(len([m for m in b.messages if m[0] == qb]), 4)

    def test_user_token_in_patterns(self):
        a = self.login("alice")
        self.assertIsInstance(a.sub("_INBOX.alice.>"), int)
        self.assertEqual(a.request_error("sub", "_INBOX.bob.>")[0], FORBIDDEN)
        self.assertEqual(a.request_error("sub", "_INBOX.>")[0], FORBIDDEN)

    def test_reply_to_must_be_receivable(self):
        a = self.login("alice")
        self.assertEqual(a.pub("orders.eu.q", 1, reply_to="_INBOX.alice.r1"), 0)
        code, message = a.request_error("pub", "orders.eu.q", 1, {"reply_to": "_INBOX.bob.r1"})
        self.assertEqual(code, FORBIDDEN)
        self.assertIn("replies", message)

    def test_allow_responses_once(self):
        svc = self.login("svc")
        b = self.login("bob")
        svc.sub("svc.requests")
        inbox = b.sub("_INBOX.bob.1")
        self.assertEqual(svc.request_error("pub", "_INBOX.bob.1", "unasked")[0], FORBIDDEN)
        b.pub("svc.requests", "q", reply_to="_INBOX.bob.1")
        svc.wait_messages(1)
        self.assertEqual(svc.pub("_INBOX.bob.1", "answer"), 1)
        b.wait_messages(1)
        self.assertEqual(b.messages, [[inbox, "_INBOX.bob.1", "answer"]])
        # Once only, and never a '$' topic.
        self.assertEqual(svc.request_error("pub", "_INBOX.bob.1", "again")[0], FORBIDDEN)
        mon = self.login("mon")  # may ask for replies on '$SYS.x': it may receive them
        mon.pub("svc.requests", "q2", reply_to="$SYS.x")
        svc.wait_messages(2)
        self.assertEqual(svc.request_error("pub", "$SYS.x", "no")[0], FORBIDDEN)

    def test_system_topics(self):
        mon = self.login("mon")
        b = self.login("bob")
        self.assertIsInstance(mon.sub("$SYS.>"), int)  # granted by name
        self.assertEqual(b.request_error("sub", "$SYS.>")[0], FORBIDDEN)  # '>' does not reach '$'
        sid = b.sub(">")
        mon.wait_messages(1)  # $SYS.broker.stats, every 100 ms
        b.pub("plain.topic", 1)
        b.wait_messages(1)
        b.pump_for(0.3)
        self.assertEqual({m[1] for m in b.messages if m[0] == sid}, {"plain.topic"})
        self.assertEqual(b.request_error("pub", "$SYS.fake", 1)[0], FORBIDDEN)


class Tls(SecurityTest):
    def test_tls_login_and_certificate_user(self):
        # A password login over TLS.
        a = self.login("alice", listener="tls")
        self.assertEqual(a.ping(), "pong")
        # A certificate whose CN is a user: that user, with no hello at all.
        c = self.client(name="tls", hello=False, tls=client_tls_context(cert="alice"))
        self.assertEqual(c.ping(), "pong")
        self.assertIsInstance(c.sub("orders.eu.>"), int)
        self.assertEqual(c.request_error("sub", "orders.>")[0], FORBIDDEN)  # alice's rights
        self.broker.wait_log(r"is user alice \(client certificate\)")
        # Its hello, without credentials, is answered with the user it is.
        h = self.client(name="tls", tls=client_tls_context(cert="alice"))
        self.assertEqual(h.hello_result["user"], "alice")
        # A certificate of no user: the client must log in.
        n = self.client(name="tls", hello=False, tls=client_tls_context(cert="nobody"))
        self.assertEqual(n.request_error("ping")[0], AUTH_REQUIRED)

    def test_wrong_ca_refused(self):
        # The client does not trust the broker's certificate.
        with self.assertRaises(ssl.SSLCertVerificationError):
            harness.connect_socket(self.broker.address("tls"),
                                   tls=client_tls_context(ca="other-ca.pem"))
        # The broker does not trust the client's certificate.
        self.assertRefusedByBroker(client_tls_context(cert="stranger"))

    def test_expired_certificate_refused(self):
        self.assertRefusedByBroker(client_tls_context(cert="expired"))
        self.broker.wait_log(r"disconnected: connection error|disconnected: closed by client")

    def assertRefusedByBroker(self, ctx):
        """TLS 1.3 clients learn of a refused certificate at their first read."""
        try:
            s = harness.connect_socket(self.broker.address("tls"), tls=ctx)
        except (ssl.SSLError, ConnectionResetError):
            return
        try:
            s.sendall(harness.request_frame(1, "ping", []))
            data = s.recv(4096)
            self.assertEqual(data, b"", "the broker answered a client it should refuse")
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass
        finally:
            s.close()

    def test_handshake_flood_does_not_stall_established_clients(self):
        a = self.login("alice", listener="tls")
        host, port = self.broker.address("tls").rsplit(":", 1)
        hello = harness.client_tls_context()
        stalled, full = [], []
        # 200 connections that never finish a handshake (silent, or half a ClientHello) and
        # 100 that complete theirs, all at once, while an established client pings.
        for i in range(200):
            s = socket.create_connection((host, int(port)))
            if i % 2:
                s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a truncated ClientHello
            stalled.append(s)
        worst = 0.0
        for i in range(100):
            t0 = time.monotonic()
            self.assertEqual(a.ping(), "pong")
            worst = max(worst, time.monotonic() - t0)
            s = socket.create_connection((host, int(port)))
            full.append(hello.wrap_socket(s, server_hostname="localhost"))
        print("worst ping during the handshake flood: %.1f ms" % (worst * 1000))
        self.assertLess(worst, 2.0)
        for s in full:
            s.close()
        # The half-finished ones are closed after the handshake timeout (10 s).
        for s in stalled:
            s.settimeout(harness.DEADLINE)
            try:
                self.assertEqual(s.recv(4096), b"")
            except ConnectionResetError:
                pass
            s.close()
        self.assertEqual(a.ping(), "pong")
        self.broker.wait_log(r"disconnected: TLS handshake timeout", count=100)

    def test_plain_client_on_tls_listener(self):
        s = socket.create_connection(("127.0.0.1", self.broker.port("tls")))
        s.sendall(harness.request_frame(1, "ping", []))
        s.settimeout(harness.DEADLINE)
        data = b""
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        self.assertNotIn(b"pong", data)


class Reload(SecurityTest):
    def rewrite(self, text):
        with open(self.users + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.users + ".tmp", self.users)
        self.broker.reload()

    def test_new_permissions_at_once(self):
        a = self.login("alice")
        b = self.login("bob")
        sid = a.sub("orders.eu.>")
        keep = a.sub("orders.*.status")
        self.rewrite(users_text(alice_subscribe="orders.*.status, _INBOX.%u.>"))
        self.broker.wait_log(r"users: loaded 4 users")
        code, message = a.wait_error()
        self.assertEqual(code, FORBIDDEN)
        self.assertIn("subscription %d ('orders.eu.>') is no longer allowed" % sid, message)
        b.pub("orders.eu.z", 1)
        b.pub("orders.x.status", 2)
        a.wait_messages(1)
        a.sync()
        self.assertEqual(a.messages, [[keep, "orders.x.status", 2]])
        self.assertEqual(a.request_error("sub", "orders.eu.>")[0], FORBIDDEN)

    def test_publish_permission_taken_away_for_the_topic_just_published(self):
        a = self.login("alice")
        for i in range(3):  # the same topic again and again: decided once, then remembered
            self.assertEqual(a.pub("orders.eu.new", i), 0)
        self.rewrite(users_text(alice_publish="orders.us.>, _INBOX.>"))
        self.broker.wait_log(r"users: loaded 4 users")
        self.assertEqual(a.request_error("pub", "orders.eu.new", 3)[0], FORBIDDEN)
        self.assertEqual(a.pub("orders.us.new", 4), 0)
        self.assertEqual(a.request_error("pub", "orders.eu.new", 5)[0], FORBIDDEN)

    def test_bad_file_keeps_the_old_policy(self):
        a = self.login("alice")
        self.rewrite(users_text() + "[user broken]\npassword = plain-text-password\n")
        self.broker.wait_log(r"users: .*:\d+: .*; keeping the previous 4 users")
        self.assertEqual(a.ping(), "pong")
        self.assertIsInstance(a.sub("orders.eu.>"), int)
        b = self.login("bob")  # new logins still use the old policy
        self.assertEqual(b.ping(), "pong")
        c = self.client(name="plain", hello=False)
        self.assertEqual(c.request_error("hello", {"user": "broken", "password": "x"})[0],
                         AUTH_FAILED)

    def test_removed_user_is_disconnected(self):
        a = self.login("alice")
        b = self.login("bob")
        self.rewrite(users_text(drop=("bob",)))
        code, message = b.wait_error()
        self.assertEqual(code, AUTH_FAILED)
        self.assertIn("removed", message)
        b.wait_closed()
        self.assertEqual(a.ping(), "pong")
        c = self.client(name="plain", hello=False)
        self.assertEqual(c.request_error("hello", {"user": "bob", "password": "bob-pw"})[0],
                         AUTH_FAILED)

    def test_certificates_reloaded_without_dropping(self):
        a = self.login("alice", listener="tls")
        self.broker.reload()
        self.assertEqual(a.ping(), "pong")
        c = self.login("bob", listener="tls")
        self.assertEqual(c.ping(), "pong")


class SecureDefaults(BrokerTest):
    AUTO_START = False

    def test_open_listener_refused_without_auth(self):
        b = self.start_broker({}, {"pub": {"bind": "0.0.0.0:0"}}, check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.forget_broker(b)
        self.assertIn("listener 'pub' binds 0.0.0.0:0, off loopback, without authentication",
                      b.log_text())

    def test_allow_anonymous_opens_it(self):
        b = self.start_broker({}, {"pub": {"bind": "0.0.0.0:0"}},
                              extra="[auth]\nallow_anonymous = yes\n")
        port = int(b.address("pub").rsplit(":", 1)[1])
        c = self.connect("127.0.0.1:%d" % port)
        self.assertEqual(c.ping(), "pong")


if __name__ == "__main__":
    unittest.main()
