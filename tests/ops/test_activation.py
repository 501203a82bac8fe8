"""test_activation.py - socket activation without systemd: the test binds
listening sockets and passes them to pigeond as systemd does (descriptors
3, 4, ..., LISTEN_PID naming pigeond itself, LISTEN_FDS, LISTEN_FDNAMES),
then checks that pigeond serves on them instead of binding, matches them to
[listener NAME] sections by name and else by address, refuses a socket no
listener wants, and keeps them across reloads.

Built without libsystemd, pigeond must refuse passed sockets instead.
"""

import os
import socket
import tempfile
import unittest

from opslib import HAVE_SYSTEMD, OpsTest, listening_socket, main

needs_systemd = unittest.skipUnless(HAVE_SYSTEMD, "built without libsystemd")


def tcp_address(s):
    host, port = s.getsockname()[:2]
    return "%s:%d" % (host, port)


class ActivationTest(OpsTest):

    def socket(self, *a):
        s = listening_socket(*a)
        self.addCleanup(s.close)
        return s

    def unix_path(self):
        d = tempfile.TemporaryDirectory(prefix="pigeon-act-")
        self.addCleanup(d.cleanup)
        return os.path.join(d.name, "p.sock")

    @needs_systemd
    def test_by_name(self):
        s = self.socket()
        # Port 0 in the file: only the name can match it.
        b = self.start_ops_broker(listen_fds=[(s, "main")])
        self.assertEqual(b.address("main"), tcp_address(s))
        self.client(broker=b).ping()
        self.assertRegex(b.log_text(), r"listeners main=%s\(systemd\)" % tcp_address(s))
        self.assertIn("socket activation 1 fds", b.log_text())

    @needs_systemd
    def test_by_address_when_unnamed(self):
        s = self.socket()
        # The same address as the socket's: binding it again would fail (EADDRINUSE),
        # so serving on it proves pigeond took the socket.
        b = self.start_ops_broker(listeners={"main": {"bind": tcp_address(s)}},
                                  listen_fds=[(s, None)])
        self.assertEqual(b.address("main"), tcp_address(s))
        self.client(broker=b).ping()

    @needs_systemd
    def test_socket_unit_name_matches_by_address(self):
        s = self.socket()
        # systemd's default FileDescriptorName is the socket unit's name.
        b = self.start_ops_broker(listeners={"main": {"bind": tcp_address(s)}},
                                  listen_fds=[(s, "pigeond.socket")])
        self.client(broker=b).ping()

    @needs_systemd
    def test_unix_socket_by_path(self):
        path = self.unix_path()
        s = self.socket(socket.AF_UNIX, path)
        b = self.start_ops_broker(listeners={"local": {"bind": "unix:" + path}},
                                  listen_fds=[(s, "pigeond.socket")])
        self.assertEqual(b.address("local"), "unix:" + path)
        self.client(broker=b, name="local").ping()
        self.assertEqual(b.stop(), 0)
        # systemd's socket file: pigeond neither replaced nor removed it.
        self.assertTrue(os.path.exists(path))
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)  # still listening: systemd's descriptor stayed open
        c.close()

    @needs_systemd
    def test_listener_without_socket_binds_itself(self):
        s = self.socket()
        b = self.start_ops_broker(listeners={"act": {"bind": "127.0.0.1:0"},
                                             "own": {"bind": "127.0.0.1:0"}},
                                  listen_fds=[(s, "act")])
        self.assertEqual(b.address("act"), tcp_address(s))
        self.assertNotEqual(b.address("own"), tcp_address(s))
        self.client(broker=b, name="act").ping()
        self.client(broker=b, name="own").ping()

    @needs_systemd
    def test_two_sockets(self):
        s1, s2 = self.socket(), self.socket()
        b = self.start_ops_broker(listeners={"one": {"bind": "127.0.0.1:0"},
                                             "two": {"bind": tcp_address(s2)}},
                                  listen_fds=[(s1, "one"), (s2, "unknown")])
        self.assertEqual(b.address("one"), tcp_address(s1))
        self.assertEqual(b.address("two"), tcp_address(s2))
        self.client(broker=b, name="one").ping()
        self.client(broker=b, name="two").ping()

    @needs_systemd
    def test_unmatched_socket_refuses_to_start(self):
        s, stray = self.socket(), self.socket()
        b = self.start_ops_broker(listen_fds=[(s, "main"), (stray, "stray")], check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.forget_broker(b)
        self.assertIn("fd 4 'stray' (%s) matches no [listener NAME]" % tcp_address(stray),
                      b.log_text())

    @needs_systemd
    def test_not_a_listening_socket(self):
        a, peer = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(peer.close)
        b = self.start_ops_broker(listen_fds=[(a, "main")], check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.forget_broker(b)
        self.assertIn("is not a listening stream socket", b.log_text())

    @needs_systemd
    def test_wrong_kind(self):
        s = self.socket()
        b = self.start_ops_broker(listeners={"local": {"bind": "unix:" + self.unix_path()}},
                                  listen_fds=[(s, "local")], check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.forget_broker(b)
        self.assertIn("is %s, not a unix socket" % tcp_address(s), b.log_text())

    @needs_systemd
    def test_reload_keeps_and_retakes_the_socket(self):
        s = self.socket()
        listeners = {"main": {"bind": "127.0.0.1:0"}, "act": {"bind": "127.0.0.1:0"}}
        b = self.start_ops_broker(listeners=listeners, listen_fds=[(s, "act")])
        held = self.client(broker=b, name="act")
        held.ping()

        # A reload that keeps the listener leaves its socket alone.
        b.write_config(listeners=dict(listeners, other={"bind": "127.0.0.1:0"}))
        b.reload()
        self.assertEqual(b.address("act"), tcp_address(s))
        self.client(broker=b, name="act").ping()
        held.ping()

        # Dropping the listener closes pigeond's copy only; the socket is kept ...
        b.write_config(listeners={"main": {"bind": "127.0.0.1:0"}})
        b.reload()
        self.assertNotIn("act", b.ports())
        self.assertIn("fd 3 'act' (%s) matches no [listener NAME]" % tcp_address(s), b.log_text())
        held.ping()  # its connections stay

        # ... so that adding it back serves on the very same socket.
        b.write_config(listeners=listeners)
        b.reload()
        self.assertEqual(b.address("act"), tcp_address(s))
        self.client(broker=b, name="act").ping()

    @unittest.skipIf(HAVE_SYSTEMD, "built with libsystemd")
    def test_refused_without_libsystemd(self):
        s = self.socket()
        b = self.start_ops_broker(listen_fds=[(s, "main")], check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.forget_broker(b)
        self.assertIn("built without libsystemd", b.log_text())

    def test_listen_fds_for_another_pid_are_ignored(self):
        # LISTEN_PID names another process (a parent's leftovers): not ours.
        b = self.start_ops_broker(env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
        self.client(broker=b).ping()
        self.assertIn("socket activation 0 fds", b.log_text())


if __name__ == "__main__":
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(k, None)
    main()
