"""test_cli_security.py - the `pigeon` command line against a pigeond that
requires logins and speaks TLS.

Covered: --user/--password and $PIGEON_USER/$PIGEON_PASSWORD, --token and
$PIGEON_TOKEN, tls:// in -s and in $PIGEON_SERVER, --ca verification (a
wrong CA, no CA, a name the certificate lacks), --insecure, --cert/--key
logging in the user the certificate names, the words and exit codes of a
refused login and of a forbidden publication and subscription, sub
reconnecting (and logging in again) after a broker restart, bench over TLS,
and the option combinations refused before connecting.

The broker and the certificates come from tests/integration (harness.py,
certs.py: the openssl command); the password hash from this CLI's own
`pigeon passwd`.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.environ.get("PIGEON_HARNESS_DIR",
                                  os.path.join(os.path.dirname(__file__), "../../../tests/integration")))
import harness  # noqa: E402
from test_cli import BROKER, CLI, CONNECTION, OK, USAGE, CliBase  # noqa: E402

SVC_TOKEN = "svc-token-cli-0a1b2c3d"


def pki_file(name):
    return os.path.join(harness.pki(), name)


def password_hash(password):
    r = subprocess.run([CLI, "passwd"], input=password + "\n", capture_output=True, text=True,
                       timeout=60, check=True)
    return r.stdout.strip()


class SecureCliBase(CliBase):
    """A broker with listeners `plain`, `tls` (client certificates verified
    against ca.pem) and `other` (127.0.0.2, an address the certificate does
    not name); logins required.  $PIGEON_SERVER is the `tls` listener."""

    TLS_PORT = 0

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="pigeon-clisec-")
        self.addCleanup(self.dir.cleanup)
        users = os.path.join(self.dir.name, "users.ini")
        with open(users, "w") as f:
            f.write("[user alice]\npassword = %s\npublish = orders.>, _INBOX.>\n"
                    "publish_deny = orders.admin.>\nsubscribe = orders.>, _INBOX.%%u.>\n"
                    "[user svc]\ntoken = sha256:%s\npublish = orders.>\nsubscribe = orders.>\n"
                    % (password_hash("alice-pw"), hashlib.sha256(SVC_TOKEN.encode()).hexdigest()))
        cert = {"tls_cert": pki_file("server.pem"), "tls_key": pki_file("server.key")}
        listeners = {
            "plain": {"bind": "127.0.0.1:0"},
            "tls": dict(bind="127.0.0.1:%d" % self.TLS_PORT, tls_ca=pki_file("ca.pem"), **cert),
            "other": dict(bind="127.0.0.2:0", **cert),
        }
        self.broker = harness.Broker({"log_level": "info"}, listeners,
                                     extra="[auth]\nusers_file = %s\n" % users).start()
        self.addr = "tls://" + self.broker.address("tls")
        self.procs = []
        self.clients = []

    def alice(self, **extra):
        """The environment of alice logging in over TLS with the test CA."""
        return self.env(PIGEON_USER="alice", PIGEON_PASSWORD="alice-pw", **extra)

    def run_ok(self, *args, env=None):
        r = self.run_cli(*args, env=env)
        self.assertEqual(r.returncode, OK, r.stderr)
        return r

    def run_fails(self, code, says, *args, env=None):
        r = self.run_cli(*args, env=env)
        self.assertEqual(r.returncode, code, r.stderr)
        self.assertIn(says, r.stderr.decode())
        self.assertEqual(r.stdout, b"")
        return r


class Logins(SecureCliBase):
    def test_password_flags_and_environment(self):
        ca = pki_file("ca.pem")
        r = self.run_ok("pub", "--ca", ca, "--user", "alice", "--password", "alice-pw",
                        "--confirm", "orders.a", "1")
        self.assertEqual(r.stdout, b"0\n")
        sub = self.start_cli("sub", "--ca", ca, "--count", "1", "orders.b", env=self.alice())
        self.run_ok("pub", "--ca", ca, "orders.b", '{"x": 1}', env=self.alice())
        code, out, err = self.finish(sub)
        self.assertEqual((code, self.lines(out)), (OK, [{"topic": "orders.b",
                                                         "payload": {"x": 1}}]), err)
        # By name: the certificate names localhost too; -s before the command.
        by_name = "tls://localhost:%d" % self.broker.port("tls")
        self.run_ok("-s", by_name, "pub", "--ca", ca, "orders.c", "1", env=self.alice())
        self.assertGreaterEqual(self.broker.log_count(r"is user alice"), 3)

    def test_request_reply_in_the_users_inbox(self):
        ca = pki_file("ca.pem")
        rep = self.start_cli("reply", "--ca", ca, "--count", "1", "orders.echo", "cat",
                             ready="answering", env=self.alice())
        r = self.run_ok("req", "--ca", ca, "orders.echo", '{"q": 1}', env=self.alice())
        self.assertEqual(json.loads(r.stdout), {"q": 1})
        self.assertEqual(self.finish(rep)[0], OK)

    def test_token(self):
        ca = pki_file("ca.pem")
        self.run_ok("pub", "--ca", ca, "--token", SVC_TOKEN, "orders.t", "1")
        self.run_ok("pub", "--ca", ca, "orders.t", "2", env=self.env(PIGEON_TOKEN=SVC_TOKEN))
        # A user on the command line wins over $PIGEON_TOKEN.
        self.run_ok("pub", "--ca", ca, "--user", "alice", "--password", "alice-pw", "orders.t",
                    "3", env=self.env(PIGEON_TOKEN=SVC_TOKEN))
        self.assertGreaterEqual(self.broker.log_count(r"is user svc"), 2)

    def test_refused_login(self):
        ca = pki_file("ca.pem")
        for args in (["pub", "orders.x", "1"], ["sub", "orders.x"], ["req", "orders.x", "1"],
                     ["reply", "orders.x", "cat"]):
            with self.subTest(args=args):
                r = self.run_fails(BROKER, "authentication failed (as user 'alice')",
                                   args[0], "--ca", ca, "--user", "alice", "--password", "nope",
                                   *args[1:])
                self.assertEqual(r.stderr.decode(), "pigeon: %s: authentication failed (as user "
                                 "'alice')\n" % self.addr)
                self.assertNotIn(b"nope", r.stderr)
        self.run_fails(BROKER, "authentication failed (with no credentials", "pub", "--ca", ca,
                       "orders.x", "1")

    def test_forbidden(self):
        ca = pki_file("ca.pem")
        r = self.run_fails(BROKER, "not allowed to publish to 'orders.admin.x'", "pub", "--ca", ca,
                           "orders.admin.x", "1", env=self.alice())
        self.assertTrue(r.stderr.startswith(b"pigeon: publish refused (forbidden): "), r.stderr)
        r = self.run_fails(BROKER, "not allowed to publish to 'orders.admin.y'", "pub", "--ca", ca,
                           "--confirm", "orders.admin.y", "1", env=self.alice())
        self.run_fails(BROKER, "not allowed to subscribe to 'secret.>'", "sub", "--ca", ca,
                       "secret.>", env=self.alice())
        self.run_fails(BROKER, "not allowed to publish to 'orders.admin.z'", "req", "--ca", ca,
                       "orders.admin.z", "1", env=self.alice())


class Certificates(SecureCliBase):
    def test_verification(self):
        self.run_fails(CONNECTION, "certificate verify failed", "pub", "--ca",
                       pki_file("other-ca.pem"), "orders.v", "1", env=self.alice())
        r = self.run_fails(CONNECTION, "certificate verify failed", "pub", "orders.v", "1",
                           env=self.alice())
        self.assertIn("--ca FILE", r.stderr.decode())  # the hint, when no CA was given
        other = "tls://" + self.broker.address("other")
        self.run_fails(CONNECTION, "IP address mismatch", "pub", "-s", other, "--ca",
                       pki_file("ca.pem"), "orders.v", "1", env=self.alice())
        plain = "tls://" + self.broker.address("plain")
        self.run_fails(CONNECTION, "speak TLS", "pub", "-s", plain, "--ca", pki_file("ca.pem"),
                       "orders.v", "1", env=self.alice())
        self.run_fails(CONNECTION, "cannot load CA file '/nonexistent/ca.pem'", "pub", "--ca",
                       "/nonexistent/ca.pem", "orders.v", "1", env=self.alice())

    def test_insecure(self):
        for name in ("tls", "other"):
            with self.subTest(listener=name):
                self.run_ok("pub", "-s", "tls://" + self.broker.address(name), "--insecure",
                            "--confirm", "orders.i", "1", env=self.alice())

    def test_client_certificate_is_the_user(self):
        ca = pki_file("ca.pem")
        self.run_ok("pub", "--ca", ca, "--cert", pki_file("alice.pem"), "--key",
                    pki_file("alice.key"), "--confirm", "orders.cert", "1")
        self.run_fails(BROKER, "not allowed to publish to 'orders.admin.c'", "pub", "--ca", ca,
                       "--cert", pki_file("alice.pem"), "--key", pki_file("alice.key"),
                       "--confirm", "orders.admin.c", "1")
        self.broker.wait_log(r"is user alice \(client certificate\)")

    def test_options_refused_before_connecting(self):
        plain = self.broker.address("plain")
        ca = pki_file("ca.pem")
        cases = [
            (["pub", "-s", plain, "--ca", ca, "a", "1"], "are for TLS: the broker's address "
             "must be tls://HOST:PORT, not '%s'" % plain),
            (["sub", "-s", plain, "--insecure", "a"], "are for TLS"),
            (["pub", "--user", "alice", "a", "1"], "user 'alice' needs a password"),
            (["pub", "--password", "pw", "a", "1"], "--password is for a user"),
            (["pub", "--user", "alice", "--password", "pw", "--token", "t", "a", "1"],
             "log in with one or the other"),
            (["pub", "--key", pki_file("alice.key"), "a", "1"], "give the certificate too"),
            (["pub", "--ca", ca, "--insecure", "a", "1"], "not at all"),
            (["bench", "-s", plain, "--ca", ca, "--msgs", "1"], "are for TLS"),
        ]
        for args, says in cases:
            with self.subTest(args=args):
                r = self.run_fails(USAGE, says, *args)
                self.assertTrue(r.stderr.startswith(("pigeon %s: " % args[0]).encode()), r.stderr)
        r = self.run_cli("pub", "--help")
        for flag in (b"--user", b"--password", b"--token", b"--ca", b"--cert", b"--key",
                     b"--insecure", b"tls://"):
            self.assertIn(flag, r.stdout)


class Reconnect(SecureCliBase):
    def setUp(self):
        self.TLS_PORT = free_port()
        super().setUp()

    def test_sub_logs_in_again_after_a_restart(self):
        ca = pki_file("ca.pem")
        sub = self.start_cli("sub", "--ca", ca, "--count", "2", "orders.r", env=self.alice())
        self.run_ok("pub", "--ca", ca, "orders.r", "1", env=self.alice())
        self.broker.stop(signal.SIGKILL)
        self.wait_stderr(sub, "reconnecting")
        self.broker.log.close()
        self.broker.start()
        self.wait_stderr(sub, "reconnected")
        self.run_ok("pub", "--ca", ca, "orders.r", "2", env=self.alice())
        code, out, err = self.finish(sub)
        self.assertEqual((code, [m["payload"] for m in self.lines(out)]), (OK, [1, 2]), err)
        self.assertGreaterEqual(self.broker.log_count(r"is user alice"), 3)


class Bench(SecureCliBase):
    def test_bench_over_tls(self):
        r = self.run_ok("bench", "--ca", pki_file("ca.pem"), "--topic", "orders.bench",
                        "--msgs", "20000", "--subs", "2", "--json", env=self.alice())
        res = json.loads(r.stdout)
        self.assertEqual((res["sub"]["expected"], res["sub"]["received"]), (40000, 40000))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    unittest.main(verbosity=2)
