"""test_crash.py - kill -9 at random moments during acked publishing and acking.

Each round starts pigeond on the same store, publishes to a stream with pub
requests (a window of them in flight) while a durable consumer acks what it
receives with ack requests, and kills the broker with SIGKILL at a random
moment.  After every restart it checks the contract of docs/protocol.md:

  - every publication that was answered is in the stream exactly once, at
    the seq its answer named, and the stream's seqs run in order with no
    gap and no payload twice;
  - no ack that was answered `true` is undone: the durable never delivers
    an acked seq again, and its ack floor never goes back.

Rounds: PIGEON_CRASH_ROUNDS (default 8, which CI runs; the soak script,
tests/crash_soak.sh, runs hundreds).  The random seed is printed, and
PIGEON_CRASH_SEED replays a run.
"""

import os
import random
import signal
import sys
import time
import unittest

from harness import Broker, BrokerTest, Client, DEADLINE, wait_for

ROUNDS = int(os.environ.get("PIGEON_CRASH_ROUNDS", "8"))
SEED = int(os.environ.get("PIGEON_CRASH_SEED", str(int(time.time() * 1000) % 1000000)))
WINDOW = 32


class CrashTest(BrokerTest):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        self.rng = random.Random(SEED)
        sys.stderr.write("test_crash: seed %d (PIGEON_CRASH_SEED replays it), %d rounds\n"
                         % (SEED, ROUNDS))
        self.b = Broker({"log_level": "notice"}, None)
        self.brokers.append(self.b)
        self.store = os.path.join(self.b.dir.name, "store")
        self.b.write_config({"log_level": "notice"}, None,
                            "[store]\ndir = %s\nfsync = %s\n[stream c]\npatterns = c.>\n"
                            % (self.store, self.FSYNC))
        self.acked_pubs = {}     # seq -> payload, answered
        self.acked_acks = set()  # seqs whose ack request was answered true
        self.floor = 0           # the highest ack floor seen
        self.sent = 0

    FSYNC = "yes"

    # -------------------------------------------------------------- one round
    def run_round(self, n):
        self.b.start()
        pub = Client(self.b.address())
        con = Client(self.b.address())
        sid = con.request("consume", "c", {"durable": "d", "max_pending": 200, "ack_wait": 60000})
        inflight = {}   # msgid -> payload
        acking = {}     # msgid -> seq
        kill_at = time.monotonic() + self.rng.uniform(0.05, 0.6)
        try:
            while time.monotonic() < kill_at:
                while len(inflight) < WINDOW:
                    self.sent += 1
                    payload = "r%d-m%d" % (n, self.sent)
                    inflight[pub.send_request("pub", "c.x", payload, {"stream": "c"})] = payload
                pub.pump_available()
                self.take_pub_answers(pub, inflight)
                con.pump_available()
                for m in con.messages:
                    acking[con.send_request("ack", sid, m[3]["seq"])] = m[3]["seq"]
                con.messages.clear()
                self.take_ack_answers(con, acking)
                time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.b.stop(signal.SIGKILL)
        self.b.log.close()
        # Answers that reached the sockets before the kill count.
        for c in (pub, con):
            try:
                c.pump_until(lambda: False, timeout=2)
            except AssertionError:
                pass
        self.take_pub_answers(pub, inflight)
        self.take_ack_answers(con, acking)
        pub.close()
        con.close()

    def take_pub_answers(self, pub, inflight):
        for msgid in list(inflight):
            if msgid in pub.responses:
                err, res = pub.responses.pop(msgid)
                payload = inflight.pop(msgid)
                self.assertIsNone(err, err)
                self.assertNotIn(res["seq"], self.acked_pubs, "seq %d answered twice" % res["seq"])
                self.acked_pubs[res["seq"]] = payload

    def take_ack_answers(self, con, acking):
        for msgid in list(acking):
            if msgid in con.responses:
                err, res = con.responses.pop(msgid)
                seq = acking.pop(msgid)
                self.assertIsNone(err, err)
                if res is True:
                    self.acked_acks.add(seq)

    # ------------------------------------------------------------ the checks
    def check(self):
        self.b.start()
        c = Client(self.b.address())
        try:
            info = c.request("stream_info", "c")
            total = info["last_seq"]
            self.assertGreaterEqual(total, max(self.acked_pubs, default=0))
            # the whole stream, through a consumer of this connection
            c.request("consume", "c", {"start": "all", "max_pending": 1000000})
            c.wait_messages(total, timeout=DEADLINE * 4)
            seqs = [m[3]["seq"] for m in c.messages]
            self.assertEqual(seqs, list(range(1, total + 1)), "seqs out of order or missing")
            payloads = [m[2] for m in c.messages]
            self.assertEqual(len(set(payloads)), len(payloads), "a message stored twice")
            for seq, payload in self.acked_pubs.items():
                self.assertEqual(payloads[seq - 1], payload, "acked seq %d lost or changed" % seq)
            # no acked ack undone
            d = info["consumers"]["d"]
            self.assertGreaterEqual(d["ack_floor"], self.floor, "the ack floor went back")
            self.floor = d["ack_floor"]
            con = Client(self.b.address())
            sid = con.request("consume", "c", {"durable": "d"})
            con.pump_for(0.5)
            again = {m[3]["seq"] for m in con.messages} & self.acked_acks
            self.assertEqual(again, set(), "acked seqs delivered again")
            # none below the ack floor either
            self.assertTrue(all(m[3]["seq"] > d["ack_floor"] for m in con.messages))
            # nothing acked is pending: ack them all again, each must be false
            for seq in sorted(self.acked_acks)[-50:]:
                self.assertFalse(con.request("ack", sid, seq), "acked seq %d pending again" % seq)
            con.close()
        finally:
            c.close()
        code = self.b.stop()
        self.b.log.close()
        self.assertEqual(code, 0, self.b.log_text()[-3000:])

    def test_kill_during_acked_publishing_and_acking(self):
        for n in range(ROUNDS):
            self.run_round(n)
            self.check()
        sys.stderr.write("test_crash: fsync %s: %d rounds, %d publications answered of %d sent, "
                         "%d acks answered true\n" % (self.FSYNC, ROUNDS, len(self.acked_pubs),
                                                       self.sent, len(self.acked_acks)))
        self.assertGreater(len(self.acked_pubs), ROUNDS)
        self.assertGreater(len(self.acked_acks), 0)
        log = self.b.log_text()
        self.assertNotIn("set aside", log)
        self.assertNotIn("renamed to", log)
        self.b.start()  # BrokerTest stops it with SIGTERM and checks its exit


class CrashNoSyncTest(CrashTest):
    """fsync = no promises the same against a crash of pigeond (not of the machine)."""
    FSYNC = "no"


if __name__ == "__main__":
    unittest.main(verbosity=2)
