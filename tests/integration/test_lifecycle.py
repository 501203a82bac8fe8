"""test_lifecycle.py - the daemon's life: command line, reload, shutdown.

`pigeond -t` and `-V`, the I/O backends, running without any config file,
SIGHUP (log level, limits, idle_timeout, listeners added, removed or failing
to bind, a broken file kept out), and the SIGTERM / SIGINT drain: queued
data first, then EOF, then exit 0; a second signal stops at once.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time

import harness
from harness import LIMIT, BrokerTest, pub_frame_raw



def run_pigeond(*args, timeout=harness.DEADLINE):
    return subprocess.run([harness.PIGEOND] + list(args), capture_output=True, text=True,
                          timeout=timeout)


def default_config_path():
    """The file pigeond reads without -c (SYSCONFDIR/pigeon/pigeond.conf), as -h names it."""
    m = re.search(r"\(default (\S+) when it exists", run_pigeond("-h").stdout)
    assert m, "pigeond -h no longer names its default config file"
    return m.group(1)


class CommandLine(BrokerTest):
    AUTO_START = False

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def setUp(self):
        super().setUp()
        d = tempfile.TemporaryDirectory(prefix="pigeon-cli-")
        self.addCleanup(d.cleanup)
        self.tmp = d.name

    def test_check_good_file(self):
        path = self.write("good.conf", "[broker]\nmax_payload = 64k\nslow_consumer = drop\n"
                                       "[listener a]\nbind = 127.0.0.1:0\n"
                                       "[listener u]\nbind = unix:/tmp/x.sock\nmode = 0600\n")
        r = run_pigeond("-t", "-c", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(path, r.stdout)
        self.assertIn("valid", r.stdout)

    def test_check_sample_config(self):
        sample = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../conf/pigeond.conf")
        r = run_pigeond("-t", "-c", sample)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_bad_files(self):
        cases = [
            ("[broker]\nmax_payload = lots\n", 2, "max_payload"),
            ("[broker]\n\n# comment\nnope = 1\n", 4, "nope"),
            ("[brokr]\n", 1, "brokr"),
            ("[broker]\nlog_level = debug\nlog_level = info\n", 3, "log_level"),
            ("[broker]\nslow_consumer = maybe\n", 2, "slow_consumer"),
            ("[listener a]\nbind = 127.0.0.1:0\nmode = 0600\n", 3, "mode"),
            ("[listener a]\nbind = 127.0.0.1:99999\n", 2, "bind"),
            ("[listener a]\nbind = 127.0.0.1:1\n[listener a]\nbind = 127.0.0.1:2\n", 3, "duplicate"),
            ("[broker]\nidle_timeout = -5s\n", 2, "idle_timeout"),
            ("[broker]\nmax_connections = 0\n", 2, "max_connections"),
        ]
        for i, (text, line, word) in enumerate(cases):
            with self.subTest(text=text):
                path = self.write("bad%d.conf" % i, text)
                r = run_pigeond("-t", "-c", path)
                self.assertEqual(r.returncode, 1)
                m = re.search(r"%s:(\d+): (.+)" % re.escape(path), r.stderr)
                self.assertIsNotNone(m, r.stderr)
                self.assertEqual(int(m.group(1)), line, r.stderr)
                self.assertIn(word, m.group(2))

    def test_check_missing_file(self):
        r = run_pigeond("-t", "-c", os.path.join(self.tmp, "absent.conf"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("absent.conf", r.stderr)

    def test_bad_file_stops_start(self):
        b = self.start_broker(config_text="[broker]\nmax_payload = lots\n", check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.forget_broker(b)
        self.assertRegex(b.log_text(), r"pigeond\.conf:2: ")

    def test_version(self):
        r = run_pigeond("-V")
        self.assertEqual(r.returncode, 0)
        m = re.match(r"pigeond (\d+\.\d+\.\d+\S*) \(libevent [^,]+, msgpack-c [^)]+\)$", r.stdout.strip())
        self.assertIsNotNone(m, r.stdout)
        # The same version the broker tells in hello.
        b = self.start_broker()
        c = self.client(b)
        self.assertEqual(c.hello_result["version"], m.group(1))
        self.assertEqual(run_pigeond("--version").stdout, r.stdout)

    def test_help_and_bad_usage(self):
        r = run_pigeond("-h")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: pigeond", r.stdout)
        r = run_pigeond("--no-such-option")
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)
        r = run_pigeond("stray")
        self.assertEqual(r.returncode, 2)


class Backends(BrokerTest):
    AUTO_START = False

    def test_each_linux_backend(self):
        for backend in ("auto", "epoll", "poll", "select"):
            with self.subTest(backend=backend):
                b = self.start_broker({"io_backend": backend, "log_level": "notice"})
                self.assertRegex(b.log_text(), r"io_backend %s" % ("epoll" if backend == "auto" else backend))
                s = self.client(b)
                p = self.client(b)
                sid = s.sub("be.>")
                self.assertEqual(p.pub("be.x", backend), 1)
                s.wait_messages(1)
                self.assertEqual(s.messages, [[sid, "be.x", backend]])

    def test_missing_backend_refused(self):
        b = self.start_broker({"io_backend": "kqueue"}, check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.assertIn("not available", b.log_text())
        self.forget_broker(b)


class NoConfig(BrokerTest):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        path = default_config_path()
        if os.path.exists(path):
            self.skipTest("%s exists on this host" % path)

    def test_check_without_file(self):
        r = run_pigeond("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("built-in defaults", r.stdout)

    def test_builtin_defaults(self):
        if not harness.port_is_free(7400):
            self.skipTest("port 7400 is in use")
        b = self.start_broker(use_config=False, check=False)
        if not b.running():
            if "Address already in use" in b.log_text():
                self.forget_broker(b)
                self.skipTest("port 7400 was taken meanwhile")
            self.fail("pigeond exited:\n" + b.log_text())
        self.assertEqual(b.ports(), {"default": "127.0.0.1:7400"})
        c = self.client(b)
        self.assertEqual(c.hello_result["max_payload"], 1024 * 1024)
        self.assertIn("built-in defaults", b.log_text())
        # Nothing to reread: SIGHUP names the file it looked for and changes nothing.
        b.reload()
        self.assertIn("SIGHUP: no config file at %s; keeping the built-in defaults"
                      % default_config_path(), b.log_text())
        self.assertEqual(c.ping(), "pong")


# ------------------------------------------------------------------ reload

class Reload(BrokerTest):
    BROKER = {"log_level": "info", "max_subscriptions": 2}

    def test_log_level_applies(self):
        b = self.broker
        c = self.client()
        b.wait_log(r"client %d connected" % c.hello_result["client_id"])
        b.write_config({"log_level": "warning", "max_subscriptions": 2})
        b.reload()
        d = self.client()
        d.sync()
        e = self.client()
        e.sync()
        self.assertEqual(b.log_count(r"client %d connected" % d.hello_result["client_id"]), 0)
        b.write_config({"log_level": "debug", "max_subscriptions": 2})
        b.reload()
        f = self.client()
        b.wait_log(r"client %d connected" % f.hello_result["client_id"])

    def test_limits_apply_live(self):
        b = self.broker
        c = self.client()
        c.sub("a")
        c.sub("b")
        self.assertEqual(c.request_error("sub", "c")[0], LIMIT)
        b.write_config({"log_level": "info", "max_subscriptions": 4, "max_payload": "2k"})
        b.reload()
        # The same connection gets the new limits.
        c.sub("c")
        c.sub("d")
        self.assertEqual(c.request_error("sub", "e")[0], LIMIT)
        self.assertTrue(c.try_send_raw(pub_frame_raw("big", harness.pack(b"x" * 3000), msgid=9)))
        c.wait_closed()
        self.assertEqual([e[0] for e in c.errors], [harness.TOO_LARGE])
        self.assertEqual(self.client().hello_result["max_payload"], 2048)

    def test_idle_timeout_applies_live(self):
        b = self.broker
        silent = self.client()
        silent.sync()
        b.write_config({"log_level": "info", "max_subscriptions": 2, "idle_timeout": "1s"})
        b.reload()
        silent.wait_closed()
        self.assertEqual([e[0] for e in silent.errors], [LIMIT])

    def test_idle_timeout_turned_off_live(self):
        # Turning idle_timeout off must reach connections made before.
        b = self.broker
        b.write_config({"log_level": "info", "max_subscriptions": 2, "idle_timeout": "3s"})
        b.reload()
        silent = self.client()
        connected = time.monotonic()
        b.write_config({"log_level": "info", "max_subscriptions": 2, "idle_timeout": 0})
        b.reload()
        if time.monotonic() - connected > 2.5:
            self.skipTest("the reload took too long on this machine to tell")
        silent.pump_for(7)  # more than twice the old timeout
        self.assertFalse(silent.closed, "closed by the idle_timeout the reload turned off")
        self.assertEqual(silent.errors, [])
        self.assertEqual(silent.ping(), "pong")

    def test_listener_added_and_removed(self):
        b = self.broker
        old = b.address("main")
        on_main = self.client(name="main")
        sid = on_main.sub("l.>")
        b.write_config(self.BROKER, {"main": {"bind": "127.0.0.1:0"}, "extra": {"bind": "127.0.0.1:0"}})
        b.reload()
        ports = b.ports()
        self.assertEqual(set(ports), {"main", "extra"})
        self.assertEqual(ports["main"], old, "an unchanged listener was reopened")
        on_extra = self.client(name="extra")
        self.assertEqual(on_extra.pub("l.1", 1), 1)
        # Remove main: it stops accepting, its connection carries on.
        b.write_config(self.BROKER, {"extra": {"bind": "127.0.0.1:0"}})
        b.reload()
        self.assertEqual(set(b.ports()), {"extra"})
        host, port = old.rsplit(":", 1)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=harness.DEADLINE).close()
        self.assertEqual(on_main.ping(), "pong")
        self.assertEqual(on_extra.pub("l.2", 2), 1)
        on_main.wait_messages(2)
        self.assertEqual(on_main.messages, [[sid, "l.1", 1], [sid, "l.2", 2]])
        self.assertEqual(self.client(name="extra").ping(), "pong")

    def test_listener_on_fixed_port_added(self):
        b = self.broker
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # a port that was free a moment ago
        b.write_config(self.BROKER, {"main": {"bind": "127.0.0.1:0"}, "fixed": {"bind": "127.0.0.1:%d" % port}})
        b.reload()
        if "fixed" not in b.ports():
            self.assertIn("cannot bind", b.log_text())
            self.skipTest("port %d was taken meanwhile" % port)
        self.assertEqual(b.address("fixed"), "127.0.0.1:%d" % port)
        self.assertEqual(self.client(name="fixed").ping(), "pong")

    def test_listener_that_cannot_bind_on_reload(self):
        # A listener that fails to bind is logged; the rest of the reload
        # stands, and a later reload tries it again.
        b = self.broker
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        listeners = {"main": {"bind": "127.0.0.1:0"}, "busy": {"bind": "127.0.0.1:%d" % port}}
        b.write_config({"log_level": "info", "max_subscriptions": 3}, listeners)
        b.reload()
        b.wait_log(r"listener busy .*cannot bind")
        self.assertEqual(set(b.ports()), {"main"})
        c = self.client()
        for i in range(3):
            c.sub("s.%d" % i)  # the new max_subscriptions applies
        taken.close()
        b.reload()
        if "busy" not in b.ports():
            self.skipTest("port %d was taken again meanwhile" % port)
        self.assertEqual(self.client(name="busy").ping(), "pong")

    def test_invalid_file_keeps_running_config(self):
        b = self.broker
        c = self.client()
        ports = b.ports()
        b.write_text("[broker]\nlog_level = info\nmax_subscriptions = many\n[listener other]\nbind = 127.0.0.1:0\n")
        b.reload()
        m = b.wait_log(r"SIGHUP: (.*pigeond\.conf):(\d+): (.*)")
        self.assertEqual(m.group(2), "3")
        self.assertIn("max_subscriptions", m.group(3))
        self.assertIn("keeping the running configuration", m.group(3))
        self.assertEqual(b.ports(), ports)
        c.sub("a")
        c.sub("b")
        self.assertEqual(c.request_error("sub", "c")[0], LIMIT)
        self.assertEqual(self.client().ping(), "pong")
        # A fixed file is taken at the next reload.
        b.write_config({"log_level": "info", "max_subscriptions": 3})
        b.reload()
        c.sub("c")

    def test_missing_file_keeps_running_config(self):
        b = self.broker
        os.unlink(b.conf_path)
        b.reload()
        b.wait_log(r"SIGHUP: .*keeping the running configuration")
        self.assertEqual(self.client().ping(), "pong")


# ---------------------------------------------------------------- shutdown

def big_payload(i, size=64 * 1024):
    return b"\xc6" + struct.pack(">I", size) + struct.pack(">I", i) + bytes(size - 4)


def kernel_send_buffer_max():
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


class Shutdown(BrokerTest):
    AUTO_START = False
    # Messages of 64 KiB queued for a client that does not read: three times
    # what the kernel's socket buffers can take (so most of it stays queued
    # in pigeond), and under max_outbound (64 MB by default).
    N = min(max(256, 3 * kernel_send_buffer_max() // (64 * 1024)), 800)

    def queue_for(self, b, slow):
        """Publishes N large messages for SLOW, which does not read; returns the publisher."""
        p = self.client(b)
        for i in range(self.N):
            p.send_raw(pub_frame_raw("drain", big_payload(i)))
        self.assertEqual(p.pub("drain", "last"), 1)
        return p

    def drain(self, sig):
        b = self.start_broker({"drain_timeout": "60s", "log_level": "info"})
        slow = self.client(b, rcvbuf=64 * 1024)
        sid = slow.sub("drain")
        idle = self.client(b)
        self.queue_for(b, slow)
        address = b.address()
        b.send_signal(sig)
        b.wait_log(r"%s: shutting down" % ("SIGINT" if sig == signal.SIGINT else "SIGTERM"))
        # No more connections are taken while it drains.
        host, port = address.rsplit(":", 1)
        with self.assertRaises(OSError):
            socket.create_connection((host, int(port)), timeout=harness.DEADLINE).close()
        self.assertTrue(b.running(), "pigeond exited before its clients had their data")
        # The one with data queued gets all of it, then EOF.
        slow.wait_closed(timeout=harness.DEADLINE * 2)
        self.assertEqual(len(slow.messages), self.N + 1)
        self.assertEqual([struct.unpack(">I", m[2][:4])[0] for m in slow.messages[:-1]], list(range(self.N)))
        self.assertEqual(slow.messages[-1], [sid, "drain", "last"])
        self.assertEqual(slow.errors, [])
        idle.wait_closed()
        self.assertEqual(b.wait_exit(), 0)
        self.assertIn("stopped", b.log_text())

    def test_sigterm_drains_then_exits_0(self):
        self.drain(signal.SIGTERM)

    def test_sigint_same_as_sigterm(self):
        self.drain(signal.SIGINT)

    def test_no_clients_exits_at_once(self):
        b = self.start_broker({"drain_timeout": "1h"})
        b.send_signal(signal.SIGTERM)
        self.assertEqual(b.wait_exit(), 0)

    def test_drain_timeout_0_closes_at_once(self):
        b = self.start_broker({"drain_timeout": 0, "log_level": "info"})
        stuck = self.client(b, rcvbuf=64 * 1024)
        stuck.sub("drain")
        self.queue_for(b, stuck)
        b.send_signal(signal.SIGTERM)
        self.assertEqual(b.wait_exit(), 0)
        stuck.wait_closed()  # what was queued is dropped
        self.assertLess(len(stuck.messages), self.N + 1)

    def test_loss_at_drain_timeout_is_told_and_logged(self):
        # 50,000 messages of 1 KB (far more than the kernel's buffers hold)
        # for a client that reads none of them until drain_timeout has
        # passed: it is told how many it will not get, right behind the one
        # message in flight, and the log says the same.
        b = self.start_broker({"drain_timeout": "1s", "log_level": "info"})
        slow = self.client(b, rcvbuf=16 * 1024)
        slow.sub("drain")
        cid = slow.hello_result["client_id"]
        p = self.client(b)
        total = 50000
        pad = b"x" * 1000
        frames = [pub_frame_raw("drain", harness.pack([i, pad])) for i in range(total)]
        for i in range(0, total, 5000):
            p.send_raw(b"".join(frames[i:i + 5000]))
        p.sync()
        b.send_signal(signal.SIGTERM)
        b.wait_log(r"SIGTERM: shutting down")
        time.sleep(1.3)  # drain_timeout passes; the grace to read the error begins
        slow.wait_closed()
        self.assertEqual(b.wait_exit(), 0)
        self.assertEqual(len(slow.errors), 1, "one error notification")
        code, message = slow.errors[0]
        self.assertEqual(code, harness.SLOW_CONSUMER)
        m = re.fullmatch(r"server shutting down, and drain_timeout passed: (\d+) queued messages "
                         r"not delivered", message)
        self.assertIsNotNone(m, message)
        lost = int(m.group(1))
        self.assertGreater(lost, total // 2)
        self.assertEqual(len(slow.messages) + lost, total, "received + told lost == published")
        self.assertEqual([x[2][0] for x in slow.messages], list(range(len(slow.messages))))
        log = b.log_text()
        self.assertRegex(log, r"client %d \(.*\) disconnected: server shutting down; .* "
                              r"undelivered %d," % (cid, lost))
        self.assertIn("stopped: %d queued messages were not delivered, to 1 clients" % lost, log)

    def test_exits_within_drain_timeout(self):
        # A client that never reads cannot hold the broker past drain_timeout.
        b = self.start_broker({"drain_timeout": "1s", "log_level": "info"})
        stuck = self.client(b, rcvbuf=64 * 1024)
        stuck.sub("drain")
        self.queue_for(b, stuck)
        b.send_signal(signal.SIGTERM)
        self.assertEqual(b.wait_exit(), 0)

    def second_signal(self, sig):
        b = self.start_broker({"drain_timeout": "1h", "log_level": "info"})
        stuck = self.client(b, rcvbuf=64 * 1024)
        stuck.sub("drain")
        self.queue_for(b, stuck)
        b.send_signal(sig)
        b.wait_log(r"shutting down")
        self.assertTrue(b.running())
        b.send_signal(sig)
        self.assertEqual(b.wait_exit(), 0)
        self.assertRegex(b.log_text(), r"second (SIGTERM|SIGINT): stopping now")

    def test_second_sigterm_stops_at_once(self):
        self.second_signal(signal.SIGTERM)

    def test_second_sigint_stops_at_once(self):
        self.second_signal(signal.SIGINT)

    def test_sighup_while_draining(self):
        b = self.start_broker({"drain_timeout": "1h", "log_level": "info"})
        address = b.address()
        stuck = self.client(b, rcvbuf=64 * 1024)
        stuck.sub("drain")
        self.queue_for(b, stuck)
        b.send_signal(signal.SIGTERM)
        b.wait_log(r"shutting down")
        # A reload while draining takes the file but opens no listener.
        b.reload()
        self.assertTrue(b.running())
        host, port = address.rsplit(":", 1)
        with self.assertRaises(OSError):
            socket.create_connection((host, int(port)), timeout=harness.DEADLINE).close()
        b.send_signal(signal.SIGTERM)
        self.assertEqual(b.wait_exit(), 0)

    def test_sigterm_then_sigint(self):
        b = self.start_broker({"drain_timeout": "1h", "log_level": "info"})
        stuck = self.client(b, rcvbuf=64 * 1024)
        stuck.sub("drain")
        self.queue_for(b, stuck)
        b.send_signal(signal.SIGTERM)
        b.wait_log(r"shutting down")
        b.send_signal(signal.SIGINT)
        self.assertEqual(b.wait_exit(), 0)


if __name__ == "__main__":
    harness.main()
