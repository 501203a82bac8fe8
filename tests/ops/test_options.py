"""test_options.py - options that tests/integration does not already prove
do what they say: io_backend (every backend this system has, and one it
lacks), log_level at start-up, and the startup summary that reports them.

Where each option is tested, in one place (keep it up to date):

  io_backend         here; reload: test_reload.py
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

from opslib import BrokerTest, main, metrics

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
