"""test_budget.py - the broker-wide memory budget, [broker] max_memory.

The per-connection caps (max_outbound, max_payload) leave the broker's
memory unbounded when many connections stay within theirs.  These tests
make pigeond hold memory the three ways the hardening issue measured, with
max_memory = 128mb, and read its peak resident memory (VmHWM): it must stay
under 192 MB, and a ping from a bystander must be answered meanwhile.

  NeverReadingFlood  30 subscribers that never read, under a 1 KB flood
                     (1.7 GB before): the biggest queues are cut first.
  PartialFrames      800 connections each sending all but the last byte of
                     a 1 MB frame (1.5 GB at 1,500 before): past the budget
                     new partial frames are refused with error 10.
  PublisherPushback  retained values past a small budget: the publisher
                     stops being read, a new sub gets error 10, and both
                     end once the memory is given back.

Runs alone (is_parallel: false in meson.build): RSS means little while
other brokers compete for the machine.
"""

import threading
import time
import unittest

import harness
from harness import LIMIT, SLOW_CONSUMER, BrokerTest, pub_frame_raw

MB = 1024 * 1024
# ASan's shadow memory and quarantine come on top of what pigeond holds.
RSS_BOUND_KIB = (192 + (96 if harness.SANITIZED else 0)) * 1024
# The bar is 1 s, measured on a quiet machine and recorded in
# docs/performance.md; twice that here, so that a loaded 2-core machine
# passes, while a broker that stops reading for good still fails.
PING_BOUND = 6.0 if harness.SANITIZED else 2.0
# meson test sets MALLOC_PERTURB_, which makes glibc write over every block
# it hands out or takes back: memory allocated and never touched (the unused
# end of a buffer) would count as resident.  Off here, as in production.
ENV = dict(harness.asan_env(quarantine_size_mb=16) if harness.SANITIZED else {},
           MALLOC_PERTURB_="0")


def peak_rss_kib(broker):
    with open("/proc/%d/status" % broker.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pigeond")


class Pinger(threading.Thread):
    """Pings every 50 ms from its own connection; keeps the worst round trip."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.worst = 0.0
        self.count = 0
        self.stop = threading.Event()
        self.failure = None

    def run(self):
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                if self.client.ping() != "pong":
                    raise AssertionError("ping not answered pong")
                self.worst = max(self.worst, time.monotonic() - t0)
                self.count += 1
                time.sleep(0.05)
        except Exception as e:  # reported by finish()
            self.failure = e

    def finish(self, test):
        self.stop.set()
        self.join(harness.DEADLINE)
        test.assertIsNone(self.failure)
        test.assertGreater(self.count, 0)
        test.assertLess(self.worst, PING_BOUND, "a ping waited %.2f s" % self.worst)


class BudgetTest(BrokerTest):
    ENV = ENV


class NeverReadingFlood(BudgetTest):
    BROKER = {"max_memory": "128mb", "log_level": "info"}
    SUBSCRIBERS = 30
    FLOOD = 400 * MB
    SIZE = 1024

    def test_flood_stays_within_budget(self):
        subs = []
        for _ in range(self.SUBSCRIBERS):
            s = self.client(rcvbuf=4096)
            s.sub("flood")
            subs.append(s)
        pinger = Pinger(self.client())
        pinger.start()
        pub = self.client()
        frame = pub_frame_raw("flood", harness.pack(b"x" * self.SIZE))
        batch = frame * (256 * 1024 // len(frame))
        sent = 0
        while sent < self.FLOOD:
            pub.send_raw(batch)
            sent += len(batch)
        pub.sync()
        pinger.finish(self)
        peak = peak_rss_kib(self.broker)
        print("peak RSS %d KiB, worst ping %.1f ms" % (peak, pinger.worst * 1000))
        self.assertLess(peak, RSS_BOUND_KIB, "pigeond's peak RSS was %d KiB" % peak)
        # The budget cut the biggest queues: error 9 with the count of what was lost.
        self.broker.wait_log(r"memory budget: used \d+ of max_memory 134217728")
        self.broker.wait_log(r"slow consumer \(max_memory\), disconnecting")
        # A client that never reads cannot read the error either once its
        # socket is full; one that had room got it.
        cut = 0
        for s in subs:
            s.pump_for(0.2)
            if s.closed:
                cut += 1
            for code, message in s.errors:
                self.assertEqual(code, SLOW_CONSUMER)
                self.assertRegex(message, r"max_memory: \d+ queued messages not delivered")
        self.assertGreater(cut, 0)
        self.assertEqual(pub.ping(), "pong")


class PartialFrames(BudgetTest):
    BROKER = {"max_memory": "128mb", "max_payload": "2mb", "max_connections": 2000,
              "log_level": "info"}
    CONNS = 800

    def test_partial_frames_refused_past_budget(self):
        pinger = Pinger(self.client())
        pinger.start()
        body = harness.pack(b"p" * MB)
        frame = pub_frame_raw("partial", body)
        head = frame[:-1]  # all but the last byte: never complete
        socks = []
        refused = 0
        for _ in range(self.CONNS):
            s = harness.connect_socket(self.broker.address())
            socks.append(s)
            try:
                s.sendall(head)
            except (BrokenPipeError, ConnectionResetError):
                refused += 1
        time.sleep(0.5)
        pinger.finish(self)
        peak = peak_rss_kib(self.broker)
        errors = 0
        for s in socks:
            s.setblocking(False)
            try:
                data = s.recv(4096)
            except (BlockingIOError, ConnectionResetError):
                data = b""
            if b"broker memory full (max_memory)" in data:
                errors += 1
            s.close()
        print("peak RSS %d KiB, %d refused with error 10, worst ping %.1f ms"
              % (peak, errors, pinger.worst * 1000))
        self.assertLess(peak, RSS_BOUND_KIB, "pigeond's peak RSS was %d KiB" % peak)
        self.assertGreater(errors, self.CONNS // 2, "few partial frames were refused")
        self.assertGreater(self.broker.log_count(r"disconnected: memory budget"), self.CONNS // 2)


class PublisherPushback(BudgetTest):
    BROKER = {"max_memory": "16mb", "max_retained": "1gb", "max_payload": "1mb",
              "log_level": "info"}

    def test_publisher_held_then_released(self):
        p = self.client()
        value = harness.pack(b"v" * (512 * 1024))
        n = 40  # 20 MB of retained values: past the 16 MB budget
        data = b"".join(pub_frame_raw("big.%d" % i, value, {"retain": True}, msgid=100 + i)
                        for i in range(n))
        # Sent from a thread: the broker stops reading it, so TCP pushes back
        # and the send blocks until the memory is given back.
        sender = threading.Thread(target=p.send_raw, args=(data,), daemon=True)
        sender.start()
        self.addCleanup(sender.join, harness.DEADLINE)
        # The publisher stops being read once the store passes the budget:
        # some of its requests wait unanswered.
        p.pump_for(1.0)
        answered = sum(1 for i in range(n) if 100 + i in p.responses)
        self.assertLess(answered, n, "the publisher was never held")
        # A bystander is still served, but a new subscription is refused.
        c = self.client()
        self.assertEqual(c.ping(), "pong")
        code, why = c.request_error("sub", "anything")
        self.assertEqual((code, why), (LIMIT, "broker memory full (max_memory)"))
        # Clearing values gives the memory back: the publisher is read again
        # (and fills the store again, to be held again until the next clear),
        # and in the end every request of it is answered.
        end = time.monotonic() + harness.DEADLINE
        while not all(100 + i in p.responses for i in range(n)):
            self.assertLess(time.monotonic(), end, "the publisher's requests stayed unanswered")
            for i in range(n):
                c.pub("big.%d" % i, None, retain=True)
            p.pump_for(0.2)
        for i in range(n):
            c.pub("big.%d" % i, None, retain=True)
        self.assertIsInstance(c.sub("anything"), int)
        self.broker.wait_log(r"memory budget: back under max_memory")


if __name__ == "__main__":
    unittest.main()
