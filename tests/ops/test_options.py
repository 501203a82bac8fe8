"""test_options.py - options that tests/integration does not already prove
do what they say: io_backend (every backend this system has, and one it
lacks), log_level at start-up, and the startup summary that reports them.

Where each option is tested, in one place (keep it up to date):

  io_backend         here (select's FD_SETSIZE too); reload: test_reload.py
  log_level          here; reload: integration/test_lifecycle.py
  max_payload        integration/test_limits.py; reload: test_lifecycle.py
  max_connections    integration/test_limits.py; reload: test_reload.py
  max_subscriptions  integration/test_limits.py; reload: test_lifecycle.py
  max_outbound       integration/test_limits.py; reload: test_reload.py
  slow_consumer      integration/test_limits.py; reload: test_reload.py
  max_retained       integration/test_routing.py; reload: test_reload.py
  idle_timeout       integration/test_limits.py; reload: test_reload.py
  drain_timeout      integration/test_lifecycle.py; reload: test_reload.py
  stats_interval     test_sys.py (reload too)
  [listener] bind    integration/*; reload: test_lifecycle.py
  [listener] mode    integration/test_robustness.py; reload: test_reload.py
  [http] bind, max_clients, timeout   test_http.py (reload too)
"""

import re
import resource
import socket

from opslib import BrokerTest, http_get, main, metrics, wait_for
from harness import connect_socket  # noqa: E402  (on the path opslib sets)

# libevent's method names on Linux; kqueue is the BSDs' and macOS's.
LINUX_BACKENDS = ("epoll", "poll", "select")


class IoBackend(BrokerTest):
    AUTO_START = False

    def test_each_backend_serves(self):
        for backend in LINUX_BACKENDS:
            with self.subTest(backend=backend):
                b = self.start_broker({"io_backend": backend},
                                      extra="[http]\nbind = 127.0.0.1:0\n")
                m = re.search(r"started: io_backend (.+?), max_payload", b.log_text())
                self.assertTrue(m.group(1).startswith(backend), m.group(1))
                sub = self.client(broker=b)
                sub.sub("t")
                pub = self.client(broker=b)
                self.assertEqual(pub.pub("t", backend), 1)
                sub.wait_messages(1)
                info = [k for k in metrics(b.address("[http]")) if k.startswith("pigeon_info")]
                self.assertIn('io_backend="%s' % backend, info[0])

    def test_auto_picks_epoll(self):
        b = self.start_broker({"io_backend": "auto"})
        self.assertRegex(b.log_text(), r"started: io_backend epoll")

    def test_missing_backend_stops_start(self):
        b = self.start_broker({"io_backend": "kqueue"}, check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.forget_broker(b)
        self.assertIn("io_backend kqueue: the configured io_backend is not available", b.log_text())


class SelectDescriptorCeiling(BrokerTest):
    """Under select nothing may reach FD_SETSIZE (1024 with glibc): libevent
    would FD_SET it and glibc abort the daemon.  Past it, broker connections
    are refused with error 10 and the HTTP endpoint stops accepting."""

    AUTO_START = False
    N = 1100            # connections opened: past FD_SETSIZE, with margin
    NOFILE = 4096       # pigeond's descriptor limit, far above FD_SETSIZE

    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = self.N + 256
        if soft < want:
            if hard != resource.RLIM_INFINITY and hard < want:
                self.skipTest("descriptor limit %d too low to open %d sockets" % (hard, self.N))
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))

    def start_select(self):
        return self.start_broker({"io_backend": "select", "max_connections": 5000,
                                  "log_level": "info"}, nofile=self.NOFILE,
                                 # every test connection comes from 127.0.0.1: lift the
                                 # per-address cap so that the descriptor ceiling bites
                                 extra="[http]\nbind = 127.0.0.1:0\nmax_clients = 5000\n"
                                       "max_clients_per_address = 5000\n")

    def open_many(self, address):
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(self.N):
            socks.append(connect_socket(address))
        return socks

    def check_serves(self, b):
        sub = self.client(broker=b)
        sub.sub("t")
        pub = self.client(broker=b)
        self.assertEqual(pub.pub("t", "after"), 1)
        sub.wait_messages(1)
        status, _, body = http_get(b.address("[http]"), "/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))

    def test_broker_connections_past_fd_setsize_refused(self):
        b = self.start_select()
        socks = self.open_many(b.address())
        b.wait_log(r"refused a connection: io_backend select: descriptor \d+ is beyond FD_SETSIZE")
        b.wait_log(r"http: accepting paused: no descriptor below FD_SETSIZE")
        self.assertTrue(b.running(), b.log_text()[-3000:])
        # The refused ones got error 10 and EOF; pick one from the end.
        data = b""
        socks[-1].settimeout(10)
        while True:
            chunk = socks[-1].recv(4096)
            if not chunk:
                break
            data += chunk
        self.assertIn(b"io_backend select", data)
        for s in socks[:100]:
            s.close()
        b.wait_log(r"http: accepting resumed")
        self.check_serves(b)

    def test_http_connections_past_fd_setsize_wait(self):
        b = self.start_select()
        socks = self.open_many(b.address("[http]"))
        b.wait_log(r"http: accepting paused: no descriptor below FD_SETSIZE")
        self.assertTrue(b.running(), b.log_text()[-3000:])
        for s in socks:
            s.close()
        wait_for(lambda: b.log_count(r"http: accepting resumed") >= 1, what="http to resume")
        self.assertTrue(b.running(), b.log_text()[-3000:])
        self.check_serves(b)


class LogLevelAtStart(BrokerTest):
    BROKER = {"log_level": "warning"}

    def test_quieter_levels_dropped(self):
        c = self.client()
        c.sub("x")
        c.close()
        self.broker.stop()
        log = self.broker.log_text()
        self.assertNotIn(" info ", log)
        self.assertNotIn(" notice ", log)
        self.assertNotIn("connected from", log)


class StartupSummary(BrokerTest):
    BROKER = {"max_payload": "64k", "max_connections": 77, "slow_consumer": "drop",
              "idle_timeout": "90s", "drain_timeout": "2s", "stats_interval": "1m"}
    LISTENERS = {"one": {"bind": "127.0.0.1:0"}, "two": {"bind": "127.0.0.1:0"}}

    def test_summary_names_version_backend_listeners_limits(self):
        log = self.broker.log_text()
        m = re.search(r"notice pigeond (\S+) started: (.*)", log)
        self.assertIsNotNone(m, log)
        summary = m.group(2)
        for part in ("io_backend epoll", "max_payload 65536", "max_connections 77",
                     "slow_consumer drop", "idle_timeout 90000 ms", "drain_timeout 2000 ms",
                     "stats_interval 60000 ms", "http off", "systemd notify off",
                     "one=%s" % self.broker.address("one"), "two=%s" % self.broker.address("two"),
                     "config %s" % self.broker.conf_path):
            self.assertIn(part, summary)


if __name__ == "__main__":
    main()
