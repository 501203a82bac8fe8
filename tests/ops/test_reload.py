"""test_reload.py - SIGHUP applies every live option, for the reloads that
tests/integration/test_lifecycle.py does not already cover (log_level,
max_subscriptions, max_payload, listeners added and removed there;
stats_interval in test_sys.py; [http] in test_http.py).

Each test starts with a value under which the behaviour cannot happen within
the test's deadline, reloads to one under which it must, and waits for it.
ReloadLog checks what a reload logs: one line per setting it changed, in the
file's own units, and for a file it cannot use (a FIFO too, which must not
block the loop) the reason, with no line number when there is none.
"""

import os
import re
import signal
import stat
import tempfile

from opslib import BrokerTest, LIMIT, SLOW_CONSUMER, main, wait_for

CHUNK = 16 * 1024


class ReloadTest(BrokerTest):

    def reload_with(self, **broker):
        self.broker.write_config(dict(self.BROKER or {}, **broker), self.LISTENERS)
        self.broker.reload()

    def flood_until(self, pub, pred, what):
        """Publishes CHUNK-sized messages to 'slow' in batches until PRED()."""
        def step():
            for _ in range(16):
                pub.pub_notify("slow", b"z" * CHUNK)
            pub.ping()
            return pred()
        wait_for(step, what=what)


class OutboundAndPolicy(ReloadTest):
    BROKER = {"max_outbound": "1g", "slow_consumer": "disconnect", "log_level": "info"}

    def test_max_outbound_and_slow_consumer_live(self):
        b = self.broker
        slow = self.client(rcvbuf=4096)
        slow.sub("slow")
        pub = self.client()
        # Under 1g nothing is slow.  At 64k with "drop", the subscriber is kept
        # and its messages dropped ...
        self.reload_with(max_outbound="64k", max_payload="32k", slow_consumer="drop")
        self.flood_until(pub, lambda: b.log_count(r"slow consumer, dropping messages") > 0,
                         "messages dropped under the reloaded limit")
        self.assertEqual(b.log_count(r"slow consumer, disconnecting"), 0)
        # ... and with "disconnect" it is closed.
        self.reload_with(max_outbound="64k", max_payload="32k", slow_consumer="disconnect")
        self.flood_until(pub, lambda: b.log_count(r"slow consumer, disconnecting") > 0,
                         "a disconnect under the reloaded policy")
        slow.wait_closed()
        # One notice per episode of drops, then the fatal one.
        self.assertGreaterEqual(len(slow.errors), 2)
        self.assertEqual({e[0] for e in slow.errors}, {SLOW_CONSUMER})
        self.assertIn("dropping", slow.errors[0][1])
        self.assertNotIn("dropping", slow.errors[-1][1])
        self.assertEqual(pub.ping(), "pong")


class IdleTimeout(ReloadTest):
    BROKER = {"idle_timeout": "0"}

    def test_idle_timeout_live(self):
        quiet = self.client()
        talker = self.client()
        # 0 never closes; the reload arms the new timeout on open connections too.
        self.reload_with(idle_timeout="1s")
        quiet.wait_closed()
        self.assertEqual(quiet.errors[0][0], LIMIT)
        self.assertIn("idle timeout", quiet.errors[0][1])
        # A fresh client is closed as well.
        late = self.client()
        late.wait_closed()
        self.assertTrue(talker.closed or talker.sock is not None)


class DrainTimeout(ReloadTest):
    BROKER = {"drain_timeout": "1h", "log_level": "info"}

    def test_drain_timeout_live(self):
        slow = self.client(rcvbuf=4096)
        slow.sub("slow")
        pub = self.client()
        for _ in range(256):  # 4 MB: more than the socket buffers hold
            pub.pub_notify("slow", b"d" * CHUNK)
        pub.ping()
        self.reload_with(drain_timeout="1s")
        self.broker.send_signal(signal.SIGTERM)
        # Under 1h it would wait for the reader; under 1s it gives up and exits 0.
        self.assertEqual(self.broker.wait_exit(), 0)


class MaxRetained(ReloadTest):
    BROKER = {"max_retained": "0"}

    def test_max_retained_live(self):
        c = self.client()
        self.assertEqual(c.request_error("pub", "r.a", 1, {"retain": True})[0], LIMIT)
        self.reload_with(max_retained="1mb")
        c.pub("r.a", 1, retain=True)
        late = self.client()
        late.sub("r.>")
        self.assertEqual(late.wait_messages(1)[0][1:3], ["r.a", 1])
        # Back to 0: new retained messages are refused; the one kept stays.
        self.reload_with(max_retained="0")
        self.assertEqual(c.request_error("pub", "r.b", 2, {"retain": True})[0], LIMIT)
        again = self.client()
        again.sub("r.>")
        self.assertEqual([m[1] for m in again.wait_messages(1)], ["r.a"])


class MaxConnections(ReloadTest):
    BROKER = {"max_connections": 1}

    def test_max_connections_live(self):
        first = self.client()
        refused = self.client(hello=False)
        refused.wait_closed()
        self.assertEqual(refused.errors[0][0], LIMIT)
        self.reload_with(max_connections=3)
        self.client().ping()
        self.client().ping()
        refused = self.client(hello=False)
        refused.wait_closed()
        self.assertEqual(refused.errors[0][0], LIMIT)
        self.assertEqual(first.ping(), "pong")


class IoBackendNeedsRestart(ReloadTest):
    BROKER = {"io_backend": "poll"}

    def test_io_backend_not_live(self):
        self.reload_with(io_backend="epoll")
        self.broker.wait_log(r"SIGHUP: io_backend epoll takes effect at the next start")
        self.assertEqual(self.client().ping(), "pong")


class UnixModeLive(ReloadTest):

    def setUp(self):
        d = tempfile.TemporaryDirectory(prefix="pigeon-mode-")
        self.addCleanup(d.cleanup)
        self.path = os.path.join(d.name, "p.sock")
        self.LISTENERS = {"local": {"bind": "unix:" + self.path, "mode": "0600"}}
        super().setUp()

    def test_mode_live(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        kept = self.client(name="local")
        self.LISTENERS = {"local": {"bind": "unix:" + self.path, "mode": "0640"}}
        self.reload_with()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.client(name="local").ping()
        self.assertEqual(kept.ping(), "pong")


class ReloadLog(ReloadTest):
    BROKER = {"log_level": "info"}

    def reloaded(self, count):
        return self.broker.wait_log(r"SIGHUP: configuration reloaded from .* \((\d+) settings? "
                                    r"changed\)", count=count)

    def test_changes_logged(self):
        b = self.broker
        b.write_config({"log_level": "info", "max_outbound": "8mb", "idle_timeout": "90s"},
                       {"main": {"bind": "127.0.0.1:0"}, "extra": {"bind": "127.0.0.1:0"}})
        b.reload()
        self.assertEqual(self.reloaded(1).group(1), "3")
        log = b.log_text()
        self.assertIn("SIGHUP: max_outbound 64mb -> 8mb\n", log)
        self.assertIn("SIGHUP: idle_timeout 5m -> 90s\n", log)
        self.assertIn("SIGHUP: [listener extra] added: bind 127.0.0.1:0\n", log)
        b.write_config({"log_level": "info", "max_outbound": "8mb", "idle_timeout": "90s"},
                       extra="[http]\nbind = 127.0.0.1:0\n")
        b.reload()
        self.assertEqual(self.reloaded(2).group(1), "2")
        log = b.log_text()
        self.assertIn("SIGHUP: [listener extra] removed (bind 127.0.0.1:0)\n", log)
        self.assertIn("SIGHUP: [http] added: bind 127.0.0.1:0\n", log)
        b.reload()  # the same file again: nothing to say
        self.assertEqual(self.reloaded(3).group(1), "0")

    def test_fifo_does_not_block(self):
        b = self.broker
        os.unlink(b.conf_path)
        os.mkfifo(b.conf_path)
        b.reload()
        b.wait_log(r"SIGHUP: %s: not a regular file; keeping the running configuration$"
                   % re.escape(b.conf_path))
        self.client().ping()  # the loop goes on

    def test_missing_file_no_line_zero(self):
        b = self.broker
        os.unlink(b.conf_path)
        b.reload()
        b.wait_log(r"SIGHUP: %s: cannot open: No such file or directory; keeping the running "
                   r"configuration$" % re.escape(b.conf_path))
        self.assertNotIn(b.conf_path + ":0:", b.log_text())
        self.client().ping()


if __name__ == "__main__":
    main()
