"""test_memory.py - memory a client can make the broker hold, through RSS.

Each test drives the broker the way an abusive or careless client would and
reads pigeond's VmRSS before and after: retained replays piled up by a
client that subscribes and never reads (and the values they would pin once
replaced), the retained store's trie on very long topics, which
max_retained must count, and the match cache under wide fan-out.  The
broker-wide budget, max_memory, has its own file (test_budget.py).

Runs alone (is_parallel: false in meson.build): RSS means little while other
brokers compete for the machine's memory.  Under ASan the brokers get a
small quarantine, and the bounds some slack for it.
"""

import unittest

import harness
from harness import LIMIT, BrokerTest, request_frame

MB = 1024 * 1024
SLACK_KIB = (32 * MB if harness.SANITIZED else 0) // 1024
ASAN = harness.asan_env(quarantine_size_mb=16) if harness.SANITIZED else None


class MemoryTest(BrokerTest):
    ENV = ASAN

    def settle(self, *clients):
        """Two ping round trips on each of CLIENTS: whatever another client
        had sent before them has been handled by the broker."""
        for c in clients:
            c.sync()
            c.sync()


# ---------------------------------------------------------- retained replays

class ReplayPile(MemoryTest):
    """A client that never reads sends 200 `sub ">"` over 20,000 retained
    values.  Each replay is a cursor over the store, advanced as the output
    drains: the 199 waiting ones hold no list, so nothing piles up and no
    slow consumer is needed.  Once the client reads, every replay arrives
    whole, in the order of the subscriptions."""

    N_VALUES = 20000
    N_SUBS = 200

    def retain_many(self, n):
        p = self.client()
        for i in range(n):
            p.pub_notify("r.%d" % i, i, retain=True)
        p.sync()
        return p


class ReplayPileDrop(ReplayPile):
    BROKER = {"max_payload": "1k", "max_outbound": "1k", "max_retained": "256mb",
              "slow_consumer": "drop", "log_level": "info"}

    def test_waiting_replays_hold_no_lists(self):
        p = self.retain_many(self.N_VALUES)
        base = self.broker.rss_kib()
        lazy = self.client(rcvbuf=4096)
        lazy.send_raw(b"".join(request_frame(1000 + i, "sub", [">"]) for i in range(self.N_SUBS)))
        self.settle(p)
        grown = self.broker.rss_kib() - base
        self.assertLess(grown, 4 * 1024 + SLACK_KIB,
                        "waiting replays grew pigeond's RSS by %d KiB" % grown)
        self.assertEqual(self.broker.log_count(r"slow consumer"), 0)
        self.assertEqual(p.ping(), "pong")


class ReplayPileDisconnect(ReplayPile):
    BROKER = {"max_payload": "1k", "max_outbound": "1k", "max_retained": "256mb",
              "slow_consumer": "disconnect", "log_level": "info"}

    def test_every_replay_arrives_in_order_once_read(self):
        n_values, n_subs = 2000, 5
        self.retain_many(n_values)
        lazy = self.client(rcvbuf=4096)
        lazy.send_raw(b"".join(request_frame(1000 + i, "sub", [">"]) for i in range(n_subs)))
        lazy.pump_until(lambda: len(lazy.messages) >= n_values * n_subs,
                        what="%d replayed messages" % (n_values * n_subs))
        lazy.sync()
        self.assertFalse(lazy.closed)
        self.assertEqual(lazy.errors, [])
        self.assertEqual(len(lazy.messages), n_values * n_subs)
        sids = [m[0] for m in lazy.messages]
        self.assertEqual(sids, sorted(sids), "replays interleaved")
        for sid in set(sids):
            got = sorted(m[2] for m in lazy.messages if m[0] == sid)
            self.assertEqual(got, list(range(n_values)), "sid %d's replay" % sid)
        self.assertEqual(self.broker.log_count(r"slow consumer"), 0)


class ReplacedValuesNotPinned(MemoryTest):
    """A waiting replay must not keep values replaced since it was made:
    40 values of 900 KB wait in a replay to a client that does not read, are
    all replaced, and then 36 MB of other values are retained.  The old
    values' memory must have been freed for them."""

    BROKER = {"max_payload": "1m", "max_outbound": "1m", "max_retained": "256mb",
              "slow_consumer": "drop", "log_level": "info"}

    def test_replaced_values_are_freed(self):
        p = self.client()
        n, size = 40, 900000
        for i in range(n):
            p.pub("old.%02d" % i, b"o" * size, retain=True)
        base = self.broker.rss_kib()
        lazy = self.client(rcvbuf=4096)
        lazy.send_request("sub", "old.>")
        self.settle(p)
        for i in range(n):
            # Delivered live to lazy or dropped, as its queue's room allows
            # (max_outbound must hold a 900 KB value: max_payload <= max_outbound).
            self.assertIn(p.pub("old.%02d" % i, b"new", retain=True), (0, 1))
        for i in range(n):
            p.pub("other.%02d" % i, b"n" * size, retain=True)
        grown = self.broker.rss_kib() - base
        self.assertLess(grown, 20 * 1024 + SLACK_KIB,
                        "replaced values still held: RSS grew by %d KiB" % grown)


# ---------------------------------------------------------- the retained trie

class RetainedTrieCounted(MemoryTest):
    """Values on 126-token topics cost far more in trie nodes than in bytes:
    max_retained must count the nodes, so that it bounds the memory."""

    BROKER = {"max_retained": "4mb", "log_level": "info"}

    def test_long_topics_bounded_by_max_retained(self):
        p = self.client()
        base = self.broker.rss_kib()
        tail = ".x" * 125
        stored = 0
        for i in range(20000):
            err, _ = p.wait_response(p.send_request("pub", "t%04x%s" % (i, tail), 1, {"retain": True}))
            if err is not None:
                self.assertEqual(err[0], LIMIT)
                break
            stored += 1
        self.assertGreater(stored, 0)
        self.assertLess(stored, 20000, "4 MB of max_retained took 20,000 values of 126 tokens")
        grown = self.broker.rss_kib() - base
        # Within a small factor of max_retained (4 MB), plus the allocator's slack.
        self.assertLess(grown, 16 * 1024 + SLACK_KIB,
                        "%d values under max_retained 4mb grew RSS by %d KiB" % (stored, grown))


# ---------------------------------------------------------- the match cache

class MatchCacheBounded(MemoryTest):
    """One connection with 2,000 `>` subscriptions, and 2,000 topics
    published once each: the match cache must not keep 2,000 copies of a
    2,000-item result.  The subscriber's messages are dropped (drop, 1k),
    so that only the cache can grow."""

    BROKER = {"max_subscriptions_per_connection": 5000, "max_payload": "1k", "max_outbound": "1k",
              "slow_consumer": "drop", "log_level": "info"}

    def test_many_wide_results_not_cached(self):
        s = self.client(rcvbuf=4096)
        ids = [s.send_request("sub", ">") for _ in range(2000)]
        s.pump_until(lambda: all(i in s.responses for i in ids), what="the sub responses")
        p = self.client()
        p.sync()
        base = self.broker.rss_kib()
        for i in range(2000):
            p.pub_notify("wide.%d" % i, 1)
        p.sync()
        grown = self.broker.rss_kib() - base
        self.assertLess(grown, 8 * 1024 + SLACK_KIB,
                        "2,000 topics matched by 2,000 subscriptions grew RSS by %d KiB" % grown)


if __name__ == "__main__":
    unittest.main()
