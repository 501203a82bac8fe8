"""test_notify.py - sd_notify without systemd: NOTIFY_SOCKET points at a
datagram socket the test owns, and READY, STATUS, RELOADING, STOPPING and
WATCHDOG must arrive when docs/operations.md says they do.

Built without libsystemd (-Dsystemd=disabled), pigeond must run all the
same and say once that it cannot notify; the notification tests are then
skipped and that one runs instead.
"""

import os
import signal
import unittest

from opslib import HAVE_SYSTEMD, OpsTest, main, wait_for

needs_systemd = unittest.skipUnless(HAVE_SYSTEMD, "built without libsystemd")


class NotifyTest(OpsTest):

    @needs_systemd
    def test_ready_once_listeners_are_bound(self):
        n = self.notify_socket()
        b = self.start_ops_broker(notify=n, listeners={"a": {"bind": "127.0.0.1:0"},
                                                       "b": {"bind": "127.0.0.1:0"}})
        ready = n.wait("READY", "1")
        # READY comes with the figures, and only after every listener is bound.
        self.assertEqual(ready["STATUS"],
                         "0 connections, 0 subscriptions, 0 msgs in, 0 msgs out, 0 retained")
        self.assertEqual(set(b.ports()), {"a", "b"})
        for name in ("a", "b"):
            self.client(broker=b, name=name).ping()
        self.assertEqual(n.count("READY"), 1)
        self.assertIn("systemd notify on", b.log_text())

    @needs_systemd
    def test_status_follows_traffic(self):
        n = self.notify_socket()
        b = self.start_ops_broker(notify=n)
        n.wait("READY", "1")
        sub = self.client(broker=b)
        sub.sub("s.>")
        pub = self.client(broker=b)
        for i in range(3):
            pub.pub("s.x", i)
        sub.wait_messages(3)
        # Refreshed every NOTIFY_STATUS_MS (5 s): poll for it.
        status = n.wait_status(lambda s: s.startswith("2 connections, 1 subscriptions, 3 msgs in, 3 msgs out"))
        self.assertTrue(status.endswith("0 retained"), status)

    @needs_systemd
    def test_reload_is_bracketed(self):
        n = self.notify_socket()
        b = self.start_ops_broker(notify=n)
        n.wait("READY", "1")
        b.reload()
        reloading = n.wait("RELOADING", "1")
        n.wait("READY", "1", count=2)
        kinds = [("RELOADING" in m and "R") or ("READY" in m and "Y") or "" for m in n.all()]
        self.assertEqual("".join(kinds), "YRY")
        # systemd 253's Type=notify-reload wants the time the reload began.
        self.assertRegex(reloading["MONOTONIC_USEC"], r"^[0-9]+$")
        # A reload that fails (a bad file) keeps running and still says READY.
        with open(b.conf_path, "a") as f:
            f.write("[broker]\nnot_an_option = 1\n")
        b.reload()
        n.wait("RELOADING", "1", count=2)
        n.wait("READY", "1", count=3)
        self.assertIn("keeping the running configuration", b.log_text())
        self.client(broker=b).ping()

    @needs_systemd
    def test_stopping_at_shutdown(self):
        n = self.notify_socket()
        b = self.start_ops_broker(notify=n)
        n.wait("READY", "1")
        self.assertEqual(n.count("STOPPING"), 0)
        c = self.client(broker=b)
        c.sub("x")
        b.send_signal(signal.SIGTERM)
        n.wait("STOPPING", "1")
        self.assertEqual(b.wait_exit(), 0)
        self.assertEqual(n.count("STOPPING"), 1)

    @needs_systemd
    def test_status_keeps_draining(self):
        # A subscriber that does not read keeps the drain going past a
        # status tick (5 s): that STATUS= must still say it is draining.
        n = self.notify_socket()
        b = self.start_ops_broker({"drain_timeout": "20s"}, notify=n)
        n.wait("READY", "1")
        slow = self.client(broker=b, rcvbuf=4096)
        slow.sub("x")
        pub = self.client(broker=b)
        for _ in range(64):
            pub.pub_notify("x", b"q" * 65536)
        pub.ping()
        b.send_signal(signal.SIGTERM)
        n.wait("STOPPING", "1")
        stopping = n.index("STOPPING", "1")
        after = wait_for(lambda: [m for m in n.all()[stopping + 1:] if "STATUS" in m],
                         timeout=15, what="a STATUS= after STOPPING=1")
        self.assertTrue(after[0]["STATUS"].startswith("draining connections: "), after[0])
        slow.close()
        self.assertEqual(b.wait_exit(), 0)

    @needs_systemd
    def test_watchdog_pings(self):
        n = self.notify_socket()
        # 400 ms: pings every 200 ms, from the event loop.
        b = self.start_ops_broker(notify=n, watchdog_usec=400000)
        n.wait("READY", "1")
        n.wait("WATCHDOG", "1", count=3)
        self.assertIn("systemd watchdog: 400 ms, pinging every 200 ms", b.log_text())
        # The loop keeps serving between pings.
        self.client(broker=b).ping()
        n.wait("WATCHDOG", "1", count=n.count("WATCHDOG") + 2)

    @needs_systemd
    def test_watchdog_for_another_pid_is_ignored(self):
        n = self.notify_socket()
        # WATCHDOG_PID names some other process: not ours to ping for.
        b = self.start_ops_broker(notify=n, env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
        n.wait("READY", "1")
        self.assertNotIn("systemd watchdog", b.log_text())
        self.assertEqual(n.count("WATCHDOG"), 0)

    @needs_systemd
    def test_missing_notify_socket_is_harmless(self):
        b = self.start_ops_broker(env={"NOTIFY_SOCKET": "/nonexistent/pigeon-notify"},
                                  watchdog_usec=200000)
        self.client(broker=b).ping()
        b.reload()
        self.client(broker=b).ping()

    def test_without_notify_socket(self):
        b = self.start_ops_broker()
        self.assertNotIn("NOTIFY_SOCKET", b.env)
        self.client(broker=b).ping()
        self.assertIn("systemd notify off", b.log_text())

    @unittest.skipIf(HAVE_SYSTEMD, "built with libsystemd")
    def test_built_without_libsystemd(self):
        n = self.notify_socket()
        b = self.start_ops_broker(notify=n, watchdog_usec=200000)
        self.client(broker=b).ping()
        self.assertIn("built without libsystemd", b.log_text())
        self.assertIn("systemd notify off", b.log_text())
        self.assertEqual(n.all(), [])


if __name__ == "__main__":
    # The test's own environment must not leak a real NOTIFY_SOCKET in.
    os.environ.pop("NOTIFY_SOCKET", None)
    os.environ.pop("WATCHDOG_USEC", None)
    os.environ.pop("WATCHDOG_PID", None)
    main()
