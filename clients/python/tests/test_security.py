"""test_security.py - both clients against a pigeond that requires logins
and speaks TLS.

Covered, for the blocking and the asyncio client: a password login over
TLS with the CA verified (by IP address and by name), a token login, a
client certificate whose CN is a user (no password; from files and from a
program's own ssl_context), a wrong password (AuthFailed, an AuthError,
raised at once even with reconnect on), a forbidden publication and
subscription (Forbidden, with the broker's words; the connection stays),
request/reply through the user's own inbox, a wrong CA, a name the
certificate lacks, a plain listener, insecure=True, a broker restart (the
client logs in again), a login refused on reconnect (given up), threads
publishing through one TLS connection while it reads, and the options
refused before connecting.

The certificates are tests/integration/certs.py's (the openssl command);
password hashes come from the real `pigeon passwd` ($PIGEON).
"""

import asyncio
import hashlib
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest

import support
from support import DEADLINE, AioBrokerCase, BrokerCase, wait_for

import pigeon
from pigeon import aio

sys.path.insert(0, support.HARNESS_DIR)  # harness.pki() imports certs from there

PIGEON_CLI = os.environ.get("PIGEON", os.path.join(support.HERE, "..", "..", "..", "build",
                                                   "clients", "cli", "pigeon"))
SVC_TOKEN = "svc-token-5e6f7a8b9c0d"
FAST = pigeon.Backoff(initial=0.02, max_delay=0.5)

_hashes = {}


def password_hash(password):
    """The users file's hash of PASSWORD, from `pigeon passwd` on a pipe."""
    if password not in _hashes:
        r = subprocess.run([PIGEON_CLI, "passwd"], input=password + "\n", capture_output=True,
                           text=True, timeout=60, check=True)
        _hashes[password] = r.stdout.strip()
    return _hashes[password]


def users_text(alice_password="alice-pw"):
    """alice (a password) and svc (a token) may publish and subscribe under
    orders, and subscribe to their own inboxes too; alice may not publish
    under orders.admin."""
    return ("[user alice]\npassword = %s\npublish = orders.>, _INBOX.>\n"
            "publish_deny = orders.admin.>\nsubscribe = orders.>, _INBOX.%%u.>\n"
            "[user svc]\ntoken = sha256:%s\npublish = orders.>\nsubscribe = orders.>, _INBOX.%%u.>\n"
            % (password_hash(alice_password), hashlib.sha256(SVC_TOKEN.encode()).hexdigest()))


def pki_file(name):
    return os.path.join(support.harness.pki(), name)


class Secure:
    """What both kinds of test case add to support's: a pigeond that
    requires logins, with listeners `plain`, `tls` (127.0.0.1, client
    certificates verified against ca.pem) and `other` (the same certificate
    on 127.0.0.2, an address it does not name).  TLS_PORT 0: any."""

    BROKER = {"log_level": "info"}
    TLS_PORT = 0

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="pigeon-pysec-")
        self.addCleanup(self.dir.cleanup)
        self.users = os.path.join(self.dir.name, "users.ini")
        self.write_users(users_text())
        cert = {"tls_cert": pki_file("server.pem"), "tls_key": pki_file("server.key")}
        self.LISTENERS = {
            "plain": {"bind": "127.0.0.1:0"},
            "tls": dict(bind="127.0.0.1:%d" % self.TLS_PORT, tls_ca=pki_file("ca.pem"), **cert),
            "other": dict(bind="127.0.0.2:0", **cert),
        }
        self.EXTRA = "[auth]\nusers_file = %s\n" % self.users
        super().setUp()

    def write_users(self, text):
        with open(self.users + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.users + ".tmp", self.users)

    def tls(self, name="tls"):
        return "tls://" + self.broker.address(name)


ALICE = dict(user="alice", password="alice-pw")


class SecureCase(Secure, BrokerCase):
    def connect(self, address=None, **kw):
        return super().connect(address or self.tls(), **kw)

    def round_trip(self, c, topic):
        sub = c.subscribe(topic)
        self.assertEqual(c.publish(topic, {"n": 1}, confirm=True), 1)
        self.assertEqual(sub.next_msg(DEADLINE).payload, {"n": 1})
        sub.unsubscribe()


class AioSecureCase(Secure, AioBrokerCase):
    async def aconnect(self, address=None, **kw):
        return await super().aconnect(address or self.tls(), **kw)

    async def round_trip(self, c, topic):
        sub = await c.subscribe(topic)
        self.assertEqual(await c.publish(topic, {"n": 1}, confirm=True), 1)
        self.assertEqual((await sub.next_msg(DEADLINE)).payload, {"n": 1})
        await sub.unsubscribe()


# ------------------------------------------------------------ blocking ----

class Logins(SecureCase):
    def test_password_over_tls_by_address_and_name(self):
        c = self.connect(ca=pki_file("ca.pem"), **ALICE)
        self.round_trip(c, "orders.ip")
        port = self.broker.port("tls")
        c = self.connect("tls://localhost:%d" % port, ca=pki_file("ca.pem"), **ALICE)
        self.round_trip(c, "orders.name")
        self.assertGreaterEqual(self.broker.log_count(r"is user alice"), 2)

    def test_token(self):
        c = self.connect(ca=pki_file("ca.pem"), token=SVC_TOKEN)
        self.round_trip(c, "orders.token")
        self.broker.wait_log(r"is user svc")

    def test_wrong_password_raises_at_once(self):
        for kw in ({}, {"reconnect": True, "backoff": FAST}):
            with self.subTest(**kw):
                with self.assertRaises(pigeon.AuthFailed) as cm:
                    self.connect(ca=pki_file("ca.pem"), user="alice", password="wrong", **kw)
                self.assertIsInstance(cm.exception, pigeon.AuthError)
                self.assertIsInstance(cm.exception, pigeon.PigeonError)
                self.assertEqual(cm.exception.code, 7)
                self.assertIn("authentication failed", str(cm.exception))
                self.assertIn("as user 'alice'", str(cm.exception))
                self.assertNotIn("wrong", str(cm.exception))  # never the password
        with self.assertRaises(pigeon.AuthError) as cm:
            self.connect(ca=pki_file("ca.pem"))
        self.assertIn("no credentials", str(cm.exception))

    def test_forbidden(self):
        errors = []
        c = self.connect(ca=pki_file("ca.pem"), on_error=errors.append, **ALICE)
        with self.assertRaises(pigeon.Forbidden) as cm:
            c.publish("orders.admin.x", 1, confirm=True)
        self.assertEqual(cm.exception.code, 8)
        self.assertIn("not allowed to publish to 'orders.admin.x'", str(cm.exception))
        with self.assertRaises(pigeon.Forbidden) as cm:
            c.subscribe("secret.>")
        self.assertIn("not allowed to subscribe to 'secret.>'", str(cm.exception))
        c.publish("orders.admin.y", 1)  # fire and forget: on_error hears of it
        c.ping()
        wait_for(lambda: errors, what="the error notification")
        self.assertIsInstance(errors[0], pigeon.Forbidden)
        self.assertIn("orders.admin.y", str(errors[0]))
        self.round_trip(c, "orders.still")  # the connection stays

    def test_request_reply_in_the_users_inbox(self):
        server = self.connect(ca=pki_file("ca.pem"), **ALICE)
        svc = server.subscribe("orders.echo")

        def serve():
            for msg in svc:
                server.reply(msg, msg.payload)
        threading.Thread(target=serve, daemon=True).start()
        c = self.connect(ca=pki_file("ca.pem"), **ALICE)
        self.assertEqual(c.request("orders.echo", "hi", timeout=DEADLINE), "hi")
        # A token names no user: the broker's hello result does, and the inbox follows it.
        t = self.connect(ca=pki_file("ca.pem"), token=SVC_TOKEN)
        self.assertEqual(t.server_info["user"], "svc")
        self.assertEqual(t.request("orders.echo", "tok", timeout=DEADLINE), "tok")

    def test_threads_publish_through_tls_while_it_reads(self):
        c = self.connect(ca=pki_file("ca.pem"), **ALICE)
        sub = c.subscribe("orders.bulk", max_pending=0)
        blob = bytes(range(256)) * 64  # 16 KiB: records and frames cut differently
        n, per = 4, 300

        def publish(k):
            for i in range(per):
                c.publish("orders.bulk", [k, i, blob])
        threads = [threading.Thread(target=publish, args=(k,)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE)
        seen = {k: [] for k in range(n)}
        for _ in range(n * per):
            k, i, data = sub.next_msg(DEADLINE).payload
            self.assertEqual(data, blob)
            seen[k].append(i)
        self.assertEqual(seen, {k: list(range(per)) for k in range(n)})  # each in order
        big = os.urandom(900 * 1000)
        c.publish("orders.bulk", big)
        self.assertEqual(sub.next_msg(DEADLINE).payload, big)


class Certificates(SecureCase):
    def test_wrong_ca_and_names(self):
        with self.assertRaises(pigeon.TlsError) as cm:
            self.connect(ca=pki_file("other-ca.pem"), **ALICE)
        self.assertIsInstance(cm.exception, pigeon.ConnectError)
        self.assertIn("certificate verify failed", str(cm.exception))
        with self.assertRaises(pigeon.TlsError) as cm:  # the system's store
            self.connect(**ALICE)
        self.assertIn("certificate verify failed", str(cm.exception))
        with self.assertRaises(pigeon.TlsError) as cm:  # the right CA, not its address
            self.connect(self.tls("other"), ca=pki_file("ca.pem"), **ALICE)
        self.assertIn("IP address mismatch", str(cm.exception))
        with self.assertRaises(pigeon.TlsError) as cm:
            self.connect("tls://" + self.broker.address("plain"), ca=pki_file("ca.pem"))
        self.assertIn("speak TLS", str(cm.exception))
        # Not retried before a first connection: a wrong CA does not fix itself.
        with self.assertRaises(pigeon.TlsError):
            self.connect(ca=pki_file("other-ca.pem"), reconnect=True, backoff=FAST, **ALICE)

    def test_insecure(self):
        for name in ("tls", "other"):
            with self.subTest(listener=name):
                self.round_trip(self.connect(self.tls(name), insecure=True, **ALICE),
                                "orders.insecure")

    def test_client_certificate_is_the_user(self):
        c = self.connect(ca=pki_file("ca.pem"), cert=pki_file("alice.pem"),
                         key=pki_file("alice.key"))
        self.round_trip(c, "orders.cert")
        with self.assertRaises(pigeon.Forbidden):
            c.publish("orders.admin.c", 1, confirm=True)  # alice's rights
        # A program's own context.
        ctx = ssl.create_default_context(cafile=pki_file("ca.pem"))
        ctx.load_cert_chain(pki_file("alice.pem"), pki_file("alice.key"))
        self.round_trip(self.connect(ssl_context=ctx), "orders.ctx")
        self.assertGreaterEqual(self.broker.log_count(r"is user alice \(client certificate\)"),
                                2)

    def test_a_certificate_the_broker_refuses(self):
        # TLS 1.3 learns of it after the handshake: the broker's alert
        # (TlsError), or, when the broker's close resets the connection
        # before the alert is read, a plain lost connection.
        with self.assertRaises(pigeon.ConnectError):
            self.connect(ca=pki_file("ca.pem"), cert=pki_file("stranger.pem"),
                         key=pki_file("stranger.key"))

    def test_options_refused(self):
        plain = self.broker.address("plain")
        cases = [
            (dict(ca=pki_file("ca.pem")), ValueError, "are for tls:// addresses", plain),
            (dict(insecure=True), ValueError, "are for tls:// addresses", plain),
            (dict(ssl_context=ssl.create_default_context()), ValueError, "tls://", plain),
            (dict(key=pki_file("alice.key")), ValueError, "give the certificate", None),
            (dict(ca=pki_file("ca.pem"), insecure=True), ValueError, "not at all", None),
            (dict(ssl_context=ssl.create_default_context(), ca=pki_file("ca.pem")), ValueError,
             "not both", None),
            (dict(ca="/nonexistent/ca.pem"), pigeon.TlsError, "No such file", None),
            (dict(ca=pki_file("ca.pem"), cert=pki_file("alice.pem"), key=pki_file("nobody.key")),
             pigeon.TlsError, "alice.pem", None),
        ]
        for kw, exc, says, address in cases:
            with self.subTest(kw=kw):
                with self.assertRaises(exc) as cm:
                    self.connect(address, **kw)
                self.assertIn(says, str(cm.exception))
        with self.assertRaises(pigeon.BadAddress) as cm:
            pigeon.connect("tls://unix:/tmp/x.sock")
        self.assertIn("TLS is for TCP", str(cm.exception))


class Reconnect(SecureCase):
    def setUp(self):
        self.TLS_PORT = support.free_port()
        super().setUp()

    def test_logs_in_again_after_a_restart(self):
        c = self.connect(ca=pki_file("ca.pem"), reconnect=True, backoff=FAST, **ALICE)
        sub = c.subscribe("orders.r")
        self.restart_broker()
        wait_for(lambda: c.reconnects >= 1 and c.is_connected, what="the reconnect")
        p = self.connect(ca=pki_file("ca.pem"), token=SVC_TOKEN)
        # The subscription is made again, which only a logged-in client may do.
        wait_for(lambda: p.publish("orders.r", "after", confirm=True) == 1,
                 what="the subscription made again")
        self.assertEqual(sub.next_msg(DEADLINE).payload, "after")
        self.assertGreaterEqual(self.broker.log_count(r"is user alice"), 2)

    def test_gives_up_when_the_login_is_refused(self):
        c = self.connect(ca=pki_file("ca.pem"), reconnect=True, backoff=FAST, **ALICE)
        sub = c.subscribe("orders.g")
        self.write_users(users_text(alice_password="changed"))
        self.restart_broker()
        with self.assertRaises(pigeon.ConnectionLost) as cm:
            sub.next_msg(DEADLINE)
        self.assertIsInstance(cm.exception.reason, pigeon.AuthFailed)
        self.assertEqual(c.state, "lost")


# ------------------------------------------------------------- asyncio ----

class AioSecurity(AioSecureCase):
    async def test_password_token_and_certificate(self):
        c = await self.aconnect(ca=pki_file("ca.pem"), **ALICE)
        await self.round_trip(c, "orders.aio")
        c = await self.aconnect(ca=pki_file("ca.pem"), token=SVC_TOKEN)
        await self.round_trip(c, "orders.aio.token")
        c = await self.aconnect(ca=pki_file("ca.pem"), cert=pki_file("alice.pem"),
                                key=pki_file("alice.key"))
        await self.round_trip(c, "orders.aio.cert")
        c = await self.aconnect(self.tls("other"), insecure=True, **ALICE)
        await self.round_trip(c, "orders.aio.insecure")

    async def test_refusals(self):
        with self.assertRaises(pigeon.AuthFailed) as cm:
            await self.aconnect(ca=pki_file("ca.pem"), user="alice", password="wrong",
                                reconnect=True, backoff=FAST)
        self.assertIn("as user 'alice'", str(cm.exception))
        with self.assertRaises(pigeon.TlsError) as cm:
            await self.aconnect(ca=pki_file("other-ca.pem"), **ALICE)
        self.assertIn("certificate verify failed", str(cm.exception))
        with self.assertRaises(pigeon.TlsError) as cm:
            await self.aconnect(self.tls("other"), ca=pki_file("ca.pem"), **ALICE)
        self.assertIn("IP address mismatch", str(cm.exception))
        with self.assertRaises(pigeon.ConnectError):  # as in test_a_certificate_the_broker_refuses
            await self.aconnect(ca=pki_file("ca.pem"), cert=pki_file("stranger.pem"),
                                key=pki_file("stranger.key"))
        with self.assertRaises(ValueError):
            aio.AsyncClient(self.broker.address("plain"), ca=pki_file("ca.pem"))

    async def test_forbidden_and_the_users_inbox(self):
        c = await self.aconnect(ca=pki_file("ca.pem"), **ALICE)
        with self.assertRaises(pigeon.Forbidden) as cm:
            await c.publish("orders.admin.x", 1, confirm=True)
        self.assertIn("not allowed to publish to 'orders.admin.x'", str(cm.exception))
        svc = await c.subscribe("orders.echo")

        async def serve():
            async for msg in svc:
                await c.reply(msg, msg.payload)
        task = asyncio.get_running_loop().create_task(serve())
        self.assertEqual(await c.request("orders.echo", [1, 2], timeout=DEADLINE), [1, 2])
        await svc.unsubscribe()
        await task


class AioReconnect(AioSecureCase):
    def setUp(self):
        self.TLS_PORT = support.free_port()
        super().setUp()

    async def poll_async(self, pred, what):
        """Awaits until the coroutine PRED() is true (fails after DEADLINE)."""
        end = asyncio.get_running_loop().time() + DEADLINE
        while not await pred():
            self.assertLess(asyncio.get_running_loop().time(), end, "timed out: " + what)
            await asyncio.sleep(0.02)

    async def test_logs_in_again_after_a_restart(self):
        c = await self.aconnect(ca=pki_file("ca.pem"), reconnect=True, backoff=FAST, **ALICE)
        sub = await c.subscribe("orders.ar")
        self.restart_broker()
        p = await self.aconnect(ca=pki_file("ca.pem"), token=SVC_TOKEN)

        async def delivered():
            return c.reconnects >= 1 and await p.publish("orders.ar", 1, confirm=True) == 1
        await self.poll_async(delivered, "the subscription made again")
        self.assertEqual((await sub.next_msg(DEADLINE)).payload, 1)
        self.assertGreaterEqual(self.broker.log_count(r"is user alice"), 2)


if __name__ == "__main__":
    support.main()
