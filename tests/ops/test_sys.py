"""test_sys.py - $SYS.broker.stats: the counters published every
stats_interval as a MessagePack map, to "$SYS.>" and the exact topic but not
to patterns whose first token is a wildcard; the figures move with traffic;
stats_interval = 0 turns it off, and a reload changes it live.
"""

import time

from opslib import BrokerTest, FORBIDDEN, main, wait_for

TOPIC = "$SYS.broker.stats"
KEYS = {"version", "backend", "uptime_ms", "connections", "connections_accepted",
        "connections_rejected", "subscriptions", "msgs_in", "bytes_in", "msgs_out", "bytes_out",
        "retained_topics", "retained_bytes", "slow_disconnects", "slow_dropped",
        "protocol_errors", "undelivered", "yields", "memory_budget", "memory_used",
        "memory_output", "memory_input", "memory_subscriptions", "memory_store", "memory_over",
        "memory_times_over", "memory_slow_chosen", "memory_held", "memory_refused_frames",
        "memory_refused_subs", "logins_ok", "logins_failed", "logins_required",
        "login_cache_hits", "tls_handshakes", "tls_handshakes_failed", "tls_handshakes_in_flight",
        "listeners"}


def stats_of(messages):
    """The payloads of the $SYS.broker.stats messages among MESSAGES (msg params)."""
    return [m[2] for m in messages if m[1] == TOPIC]


class SysStatsTest(BrokerTest):
    BROKER = {"stats_interval": "200ms"}

    def test_published_as_a_map(self):
        c = self.client()
        c.sub("$SYS.>")
        c.wait_messages(1)
        sid, topic, payload = c.messages[0][:3]
        self.assertEqual(topic, TOPIC)
        self.assertEqual(set(payload), KEYS)
        self.assertEqual(payload["connections"], 1)
        self.assertEqual(payload["subscriptions"], 1)
        self.assertIsInstance(payload["backend"], str)
        self.assertEqual(set(payload["listeners"]), {"main"})
        main_l = payload["listeners"]["main"]
        self.assertEqual(main_l["address"], self.broker.address("main"))
        self.assertEqual(main_l["active"], 1)
        self.assertEqual(len(c.messages[0]), 3)  # not retained, no opts

    def test_figures_move(self):
        watcher = self.client()
        watcher.sub(TOPIC)
        pub = self.client()
        sink = self.client()
        sink.sub("work")
        for i in range(10):
            pub.pub("work", i)
        sink.wait_messages(10)

        def seen():
            return [s for s in stats_of(watcher.messages) if s["msgs_in"] >= 10]
        wait_for(lambda: watcher.pump_for(0.2) or seen(), what="stats with the traffic")
        s = seen()[-1]
        self.assertEqual(s["msgs_in"], 10)
        self.assertGreaterEqual(s["msgs_out"], 10)  # plus the $SYS deliveries themselves
        self.assertEqual(s["connections"], 3)
        self.assertEqual(s["subscriptions"], 2)
        self.assertEqual(s["listeners"]["main"]["msgs_in"], 10)

    def test_wildcards_do_not_match(self):
        exact = self.client()
        exact.sub(TOPIC)
        wild = self.client()
        wild.sub(">")
        wild.sub("*.broker.stats")
        exact.wait_messages(3)
        wild.ping()  # everything routed before this answer has been read
        self.assertEqual(stats_of(wild.messages), [])
        self.assertEqual(wild.request_error("pub", TOPIC, {})[0], FORBIDDEN)

    def test_interval_reload(self):
        c = self.client()
        c.sub("$SYS.>")
        c.wait_messages(2)
        self.broker.write_config({"stats_interval": "0"})
        self.broker.reload()
        c.ping()
        n = len(stats_of(c.messages))
        c.pump_for(1.0)  # five old intervals
        self.assertLessEqual(len(stats_of(c.messages)), n + 1)  # at most one already in flight
        self.broker.write_config({"stats_interval": "100ms"})
        self.broker.reload()
        c.wait_messages(len(c.messages) + 3)


class SysStatsOffTest(BrokerTest):
    BROKER = {"stats_interval": "0"}

    def test_off(self):
        c = self.client()
        c.sub("$SYS.>")
        c.pump_for(1.0)
        self.assertEqual(stats_of(c.messages), [])
        self.assertIn("stats_interval 0 ms", self.broker.log_text())


class SysStatsDefaultTest(BrokerTest):
    def test_default_interval_is_10s(self):
        self.assertIn("stats_interval 10000 ms", self.broker.log_text())


if __name__ == "__main__":
    main()
