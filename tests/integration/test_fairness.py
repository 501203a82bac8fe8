"""test_fairness.py - no client's frames can hold the event loop.

The attack of the hardening issue: with a large retained store, one client
pipelines a thousand `sub(">")` + `unsub` pairs in one write, again and
again.  Before, each `sub` gathered every matching retained value at once
(35-40 ms over 400,000 values) and the whole read was handled in one go, so
the loop stopped for tens of seconds.  Now a replay is a cursor advanced a
bounded step at a time, and a connection yields after its share of frames
per wake-up, so another client's `ping` is answered as usual.

The bar (no ping waits 250 ms with 200,000 values) is measured without
sanitizers and recorded in docs/performance.md; this test asserts a bound
eight times looser, so that it holds on a loaded 2-core machine and under
ASan, yet fails by far on the old behaviour (over 10 s per read here).
Runs alone (is_parallel: false in meson.build): it measures latency.
"""

import threading
import time
import unittest

import harness
from harness import BrokerTest, request_frame

N_VALUES = 50000 if harness.SANITIZED else 200000
PAIRS = 1000
BOUND = 2.0  # seconds; the bar is 0.25 on an idle machine without sanitizers


class Attack(BrokerTest):
    BROKER = {"max_retained": "1gb", "log_level": "notice"}

    def fill(self):
        p = self.client()
        batch = []
        for i in range(N_VALUES):
            batch.append(harness.pub_frame_raw("r.%d" % i, harness.pack(i), {"retain": True}))
            if len(batch) == 2000:
                p.send_raw(b"".join(batch))
                batch = []
        p.send_raw(b"".join(batch))
        p.sync()
        return p

    def test_sub_unsub_storm_does_not_stall_pings(self):
        self.fill()
        attacker = self.client(rcvbuf=8192)
        # sid k is made by the k-th sub of the connection, so the unsubs can
        # be written before their subs are answered.
        stop = threading.Event()
        rounds = [0]

        def attack():
            sid = 0
            while not stop.is_set():
                frames = []
                for _ in range(PAIRS):
                    sid += 1
                    frames.append(request_frame(2 * sid, "sub", [">"]))
                    frames.append(request_frame(2 * sid + 1, "unsub", [sid]))
                attacker.try_send_raw(b"".join(frames))
                rounds[0] += 1
                # Read what came back, so that the attacker is no slow consumer.
                attacker.pump_for(0.05)
                attacker.messages.clear()
                attacker.responses.clear()

        t = threading.Thread(target=attack, daemon=True)
        pinger = self.client()
        t.start()
        worst = 0.0
        try:
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                self.assertEqual(pinger.ping(), "pong")
                worst = max(worst, time.monotonic() - t0)
                time.sleep(0.02)
        finally:
            stop.set()
            t.join(harness.DEADLINE)
        print("worst ping %.1f ms over %d attack rounds" % (worst * 1000, rounds[0]))
        self.assertGreater(rounds[0], 1, "the attack never got going")
        self.assertLess(worst, BOUND, "a ping waited %.2f s during the attack" % worst)

    def test_replay_still_whole_after_yields(self):
        """The cursor pauses and resumes many times over 200,000 values: a
        client that reads gets every value once, after its sub response."""
        self.fill()
        c = self.client()
        msgid = c.send_request("sub", ">")
        c.pump_until(lambda: len(c.messages) >= N_VALUES, what="%d replayed values" % N_VALUES,
                     timeout=harness.DEADLINE * 4)
        c.sync()
        self.assertEqual(len(c.messages), N_VALUES)
        self.assertEqual(sorted(m[2] for m in c.messages), list(range(N_VALUES)))
        self.assertIn(msgid, c.responses)


if __name__ == "__main__":
    unittest.main()
