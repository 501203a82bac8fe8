"""test_streams.py - streams, consumers and the durable store, through real sockets.

Every path of docs/protocol.md's "Streams" section: pub requests with
`stream` and `msg_id` (codes 11 and 12), limits and discard, consume with
each start position and a filter, shared durables, ack and nak (with a
delay), redelivery after ack_wait and when a connection closes, max_deliver
and the dead-letter topic, max_pending, stream_info; what survives a
restart (SIGTERM and kill -9), retained values in the store, reloads,
`pigeond --delete-stream` and `--delete-durable`, a disk that refuses writes (RLIMIT_FSIZE), and
the monitoring figures.  Each test starts brokers of its own, each with a
store in its own temp dir.
"""

import http.client
import json
import os
import resource
import signal
import subprocess
import time
import unittest

from harness import (BAD_PARAMS, BAD_TOPIC, DEADLINE, FORBIDDEN, PIGEOND, Broker, BrokerTest,
                     ProtocolError, wait_for)

NO_STREAM, NOT_STORED = 11, 12


def http_get(address, path):
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=DEADLINE)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def metrics(address):
    """{name or name{labels}: value} of /metrics."""
    out = {}
    for line in http_get(address, "/metrics")[1].splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class StreamTest(BrokerTest):
    AUTO_START = False

    def store_broker(self, streams, broker=None, store="", http=False, start=True, env=None):
        """A broker with [store] in its temp dir and STREAMS {name: {key: value}}."""
        b = Broker(broker, None, env=env)
        self.brokers.append(b)
        b.store = os.path.join(b.dir.name, "store")
        b.streams = streams
        b.store_keys = "[store]\ndir = %s\n%s" % (b.store, store)
        b.http = http
        self.rewrite(b, streams)
        if start:
            b.start()
        return b

    def rewrite(self, b, streams, broker=None):
        extra = b.store_keys
        for name, keys in streams.items():
            extra += "[stream %s]\n" % name + "".join("%s = %s\n" % kv for kv in keys.items())
        if b.http:
            extra += "[http]\nbind = 127.0.0.1:0\n"
        b.write_config(broker, None, extra)

    def restart(self, b, sig=signal.SIGTERM):
        code = b.stop(sig)
        if sig == signal.SIGTERM:
            self.assertEqual(code, 0)
        b.log.close()  # start() opens it again
        b.start()

    def pub(self, c, topic, payload, **opts):
        return c.request("pub", topic, payload, opts) if opts else c.request("pub", topic, payload)

    def consume(self, c, stream, **opts):
        return c.request("consume", stream, opts) if opts else c.request("consume", stream)

    def seqs(self, c, n=None, sid=None):
        """The seqs of C's deliveries so far (of SID when given)."""
        return [m[3]["seq"] for m in c.messages if sid is None or m[0] == sid][:n]


class PublishTest(StreamTest):
    def test_pub_result_and_seq(self):
        b = self.store_broker({"orders": {"patterns": "orders.>, billing.invoice.*"}})
        c = self.client(b)
        live = self.client(b)
        live.sub("orders.>")
        self.assertEqual(self.pub(c, "orders.eu.new", {"n": 1}, stream="orders"),
                         {"delivered": 1, "stream": "orders", "seq": 1})
        # Without `stream`, a captured topic is stored too; the result is the 1.0 count.
        self.assertEqual(self.pub(c, "billing.invoice.7", "x"), 0)
        self.assertEqual(self.pub(c, "orders.x", b"\x00\x01", stream="orders")["seq"], 3)
        c.pub_notify("orders.y", 4)  # a notification is stored as well
        c.sync()
        info = c.request("stream_info", "orders")
        self.assertEqual((info["name"], info["messages"], info["first_seq"], info["last_seq"]),
                         ("orders", 4, 1, 4))
        self.assertEqual(info["patterns"], ["orders.>", "billing.invoice.*"])
        self.assertGreater(info["bytes"], 0)
        self.assertEqual(info["consumers"], {})
        self.assertEqual(c.request("stream_info"), [info])
        # A topic no stream captures is routed as before.
        self.assertEqual(self.pub(c, "other", 1), 0)
        live.wait_messages(3)

    def test_no_stream_code_11(self):
        b = self.store_broker({"orders": {"patterns": "orders.>"}, "audit": {"patterns": "audit.*"}})
        c = self.client(b)
        watcher = self.client(b)
        watcher.sub(">")
        for topic, stream in [("other.x", "orders"), ("audit.x", "orders"), ("orders.x", "nope")]:
            err = c.request_error("pub", topic, 1, {"stream": stream})
            self.assertEqual(err[0], NO_STREAM, err)
        # nothing of those was published
        c.pub_notify("orders.x", 1, stream="audit")
        self.assertEqual(c.wait_error()[0], NO_STREAM)
        watcher.sync()
        self.assertEqual(watcher.messages, [])
        self.assertEqual(c.request("stream_info", "orders")["messages"], 0)
        self.assertEqual(c.request_error("consume", "nope")[0], NO_STREAM)
        self.assertEqual(c.request_error("stream_info", "nope")[0], NO_STREAM)
        self.assertEqual(c.request_error("pub", "x", 1, {"stream": "bad.name"})[0], BAD_PARAMS)
        self.assertEqual(c.request_error("pub", "orders.x", 1, {"msg_id": ""})[0], BAD_PARAMS)
        self.assertEqual(c.request_error("pub", "orders.x", 1, {"msg_id": "m" * 129})[0], BAD_PARAMS)

    def test_no_store_code_11(self):
        b = self.start_broker()
        c = self.client(b)
        self.assertEqual(c.request_error("pub", "a", 1, {"stream": "s"})[0], NO_STREAM)
        self.assertEqual(c.request_error("consume", "s")[0], NO_STREAM)
        self.assertEqual(c.request("stream_info"), [])
        self.assertEqual(c.pub("a", 1, retain=True), 0)  # retained in memory, as in 1.0

    def test_discard_new_code_12(self):
        b = self.store_broker({"s": {"patterns": "s.>", "max_messages": 3, "discard": "new"},
                               "t": {"patterns": "t.>", "max_bytes": "1k", "discard": "new"}})
        c = self.client(b)
        live = self.client(b)
        live.sub(">")
        for i in range(3):
            self.assertEqual(self.pub(c, "s.x", i, stream="s")["seq"], i + 1)
        err = c.request_error("pub", "s.x", 3, {"stream": "s"})
        self.assertEqual(err[0], NOT_STORED)
        self.assertIn("full", err[1])
        live.wait_messages(4)  # delivered live all the same
        self.assertEqual(live.messages[-1][2], 3)
        info = c.request("stream_info", "s")
        self.assertEqual((info["messages"], info["last_seq"]), (3, 3))
        seq = 0
        for i in range(20):
            try:
                seq = self.pub(c, "t.x", "v" * 100, stream="t")["seq"]
            except ProtocolError as e:
                self.assertEqual(e.code, NOT_STORED)
                break
        else:
            self.fail("max_bytes never refused")
        self.assertGreater(seq, 3)
        self.assertLessEqual(c.request("stream_info", "t")["bytes"], 1024)

    def test_discard_old_limits(self):
        b = self.store_broker({"n": {"patterns": "n.>", "max_messages": 10},
                               "b": {"patterns": "b.>", "max_bytes": "4k"},
                               "a": {"patterns": "a.>", "max_age": "1s"}})
        c = self.client(b)
        for i in range(25):
            self.pub(c, "n.x", i, stream="n")
        wait_for(lambda: c.request("stream_info", "n")["first_seq"] == 16, what="oldest dropped")
        info = c.request("stream_info", "n")
        self.assertEqual((info["messages"], info["last_seq"]), (10, 25))
        for i in range(100):
            self.pub(c, "b.x", "v" * 100, stream="b")
        wait_for(lambda: c.request("stream_info", "b")["bytes"] <= 4096, what="bytes within max_bytes")
        info = c.request("stream_info", "b")
        self.assertEqual(info["last_seq"], 100)
        self.assertGreater(info["first_seq"], 60)
        self.assertEqual(info["messages"], 101 - info["first_seq"])
        for i in range(5):
            self.pub(c, "a.x", i, stream="a")
        self.assertEqual(c.request("stream_info", "a")["messages"], 5)
        wait_for(lambda: c.request("stream_info", "a")["messages"] == 0, what="aged out")
        info = c.request("stream_info", "a")
        self.assertEqual((info["first_seq"], info["last_seq"]), (6, 5))
        # a seq is never used again, not even by an empty stream after a restart
        self.restart(b)
        c = self.client(b)
        self.assertEqual(self.pub(c, "a.x", 9, stream="a")["seq"], 6)
        self.assertEqual(c.request("stream_info", "n")["first_seq"], 16)

    def test_msg_id_duplicates(self):
        b = self.store_broker({"s": {"patterns": "s.>"}})
        c = self.client(b)
        live = self.client(b)
        live.sub("s.>")
        first = self.pub(c, "s.x", 1, stream="s", msg_id="order-1")
        self.assertEqual(first, {"delivered": 1, "stream": "s", "seq": 1})
        again = self.pub(c, "s.x", 1, stream="s", msg_id="order-1")
        self.assertEqual(again, {"delivered": 0, "stream": "s", "seq": 1, "duplicate": True})
        self.assertEqual(self.pub(c, "s.x", 2, stream="s", msg_id="order-2")["seq"], 2)
        self.assertEqual(self.pub(c, "s.x", 1, msg_id="order-1"), 0)  # without `stream`: a count
        live.sync()
        self.assertEqual(len(live.messages), 2)  # a duplicate is not delivered again
        self.assertEqual(c.request("stream_info", "s")["messages"], 2)
        # the window is rebuilt from the stream at start
        self.restart(b, signal.SIGKILL)
        c = self.client(b)
        self.assertEqual(self.pub(c, "s.x", 1, stream="s", msg_id="order-2")["duplicate"], True)
        self.assertEqual(self.pub(c, "s.x", 3, stream="s", msg_id="order-3")["seq"], 3)

    def test_msg_id_window_expires(self):
        b = self.store_broker({"s": {"patterns": "s.>", "duplicate_window": "300ms"}})
        c = self.client(b)
        self.assertEqual(self.pub(c, "s.x", 1, stream="s", msg_id="m")["seq"], 1)
        time.sleep(0.5)
        self.assertEqual(self.pub(c, "s.x", 1, stream="s", msg_id="m"),
                         {"delivered": 0, "stream": "s", "seq": 2})

    def test_responses_keep_request_order(self):
        b = self.store_broker({"s": {"patterns": "s.>"}})
        c = self.client(b)
        ids = []
        for i in range(200):
            ids.append(c.send_request("pub", "s.x", i, {"stream": "s"}))
            ids.append(c.send_request("ping"))
        c.pump_until(lambda: len(c.responses) == len(ids))
        order = [f[1] for f in c.frames if f[0] == 1]
        self.assertEqual(order[-len(ids):], ids)
        seqs = [c.responses[i][1]["seq"] for i in ids[0::2]]
        self.assertEqual(seqs, list(range(1, 201)))

    def test_own_msg_before_response(self):
        b = self.store_broker({"s": {"patterns": "s.>"}})
        c = self.client(b)
        c.sub("s.>")
        msgid = c.send_request("pub", "s.x", "hi", {"stream": "s"})
        c.pump_until(lambda: msgid in c.responses)
        kinds = [(f[0], f[1]) for f in c.frames[-2:]]
        self.assertEqual(kinds[0], (2, "msg"))
        self.assertEqual(kinds[1], (1, msgid))


class ConsumeTest(StreamTest):
    def setUp(self):
        super().setUp()
        self.b = self.store_broker({"s": {"patterns": "s.>"}})
        self.p = self.client(self.b)

    def fill(self, n, topic="s.x", start=0):
        for i in range(start, start + n):
            self.pub(self.p, topic, i, stream="s")

    def test_delivery_shape(self):
        self.pub(self.p, "s.a", {"k": [1, 2]}, stream="s", reply_to="_INBOX.r", headers={"h": "v"})
        c = self.client(self.b, raw=True)
        sid = self.consume(c, "s")
        m = c.wait_messages(1)[0]
        self.assertEqual(m[0], sid)
        self.assertEqual(m[1], "s.a")
        self.assertEqual(m[2], {"k": [1, 2]})
        opts = m[3]
        self.assertEqual((opts["stream"], opts["seq"], opts["attempt"]), ("s", 1, 1))
        self.assertEqual((opts["reply_to"], opts["headers"]), ("_INBOX.r", {"h": "v"}))
        self.assertAlmostEqual(opts["time"] / 1000.0, time.time(), delta=60)

    def test_start_positions(self):
        self.fill(5, "s.a")
        self.fill(1, "s.b", 5)
        self.fill(2, "s.a", 6)
        c = self.client(self.b)
        all_ = self.consume(c, "s")
        c.wait_messages(8)
        self.assertEqual(self.seqs(c), list(range(1, 9)))
        c2 = self.client(self.b)
        new = self.consume(c2, "s", start="new")
        last = self.consume(c2, "s", start="last")
        last_b = self.consume(c2, "s", start="last", filter="s.b")
        at = self.consume(c2, "s", start=7)
        c2.wait_messages(1 + 1 + 2)
        self.assertEqual(self.seqs(c2, sid=last), [8])
        self.assertEqual(self.seqs(c2, sid=last_b), [6])  # the last s.b message
        self.assertEqual(self.seqs(c2, sid=at), [7, 8])
        self.assertEqual(self.seqs(c2, sid=new), [])
        self.fill(1, "s.b", 8)
        c2.wait_messages(4 + 2)
        self.assertEqual(self.seqs(c2, sid=new), [9])
        self.assertEqual(self.seqs(c2, sid=last_b), [6, 9])
        c.wait_messages(9)
        self.assertEqual(self.seqs(c, sid=all_), list(range(1, 10)))
        # one below first_seq starts at first_seq; 0 and names are refused
        self.assertEqual(self.p.request_error("consume", "s", {"start": 0})[0], BAD_PARAMS)
        self.assertEqual(self.p.request_error("consume", "s", {"start": "first"})[0], BAD_PARAMS)

    def test_filter(self):
        for i in range(30):
            self.pub(self.p, "s.%s.x" % ("eu" if i % 3 == 0 else "us"), i, stream="s")
        c = self.client(self.b)
        self.consume(c, "s", filter="s.eu.*")
        c.wait_messages(10)
        c.pump_for(0.2)
        self.assertEqual(self.seqs(c), list(range(1, 31, 3)))
        self.assertEqual(c.request_error("consume", "s", {"filter": "s..x"})[0], BAD_TOPIC)
        self.assertEqual(c.request_error("consume", "s", {"filter": 5})[0], BAD_PARAMS)

    def test_ack_and_floor(self):
        self.fill(5)
        c = self.client(self.b)
        sid = self.consume(c, "s", durable="d")
        c.wait_messages(5)
        self.assertTrue(c.request("ack", sid, 2))
        self.assertFalse(c.request("ack", sid, 2))   # not pending any more
        self.assertFalse(c.request("ack", sid, 99))  # never delivered
        info = c.request("stream_info", "s")["consumers"]["d"]
        self.assertEqual((info["ack_pending"], info["ack_floor"], info["num_pending"]), (4, 0, 0))
        for s in (1, 3):
            self.assertTrue(c.request("ack", sid, s))
        c.notify("ack", sid, 4)  # as a notification
        c.sync()
        info = c.request("stream_info", "s")["consumers"]["d"]
        self.assertEqual((info["ack_pending"], info["ack_floor"]), (1, 4))
        self.assertTrue(c.request("ack", sid, 5))
        self.assertEqual(c.request("stream_info", "s")["consumers"]["d"]["ack_floor"], 5)
        self.assertEqual(c.request_error("ack", 999, 1)[0], BAD_PARAMS)
        self.assertEqual(c.request_error("ack", sid)[0], BAD_PARAMS)

    def test_durable_shared(self):
        a, b = self.client(self.b), self.client(self.b)
        sa = self.consume(a, "s", durable="work")
        sb = self.consume(b, "s", durable="work")
        self.fill(200)
        seen = {}
        wait_for(lambda: (a.pump_available(), b.pump_available(), len(a.messages) + len(b.messages))[2] >= 200,
                 what="every message to one of the two")
        for c, sid in ((a, sa), (b, sb)):
            for m in c.messages:
                self.assertNotIn(m[3]["seq"], seen)
                seen[m[3]["seq"]] = c
                c.notify("ack", sid, m[3]["seq"])
        self.assertEqual(sorted(seen), list(range(1, 201)))
        self.assertGreater(len(a.messages), 0)
        self.assertGreater(len(b.messages), 0)
        # any member may ack: b acks a message a holds
        self.fill(1, start=200)
        wait_for(lambda: (a.pump_available(), b.pump_available(), len(a.messages) + len(b.messages))[2] >= 201,
                 what="message 201")
        holder = a if a.messages[-1][3]["seq"] == 201 else b
        other, osid = (b, sb) if holder is a else (a, sa)
        self.assertTrue(other.request("ack", osid, 201))
        a.sync()
        b.sync()
        self.assertEqual(a.request("stream_info", "s")["consumers"]["work"]["ack_pending"], 0)

    def test_unacked_redelivered_when_member_leaves(self):
        self.fill(10)
        a = self.client(self.b)
        sa = self.consume(a, "s", durable="w", max_pending=10)
        a.wait_messages(10)
        b = self.client(self.b)
        sb = self.consume(b, "s", durable="w")
        b.pump_for(0.3)
        self.assertEqual(b.messages, [])  # a holds all ten, unacked
        a.request("ack", sa, 1)
        a.close()  # its connection closes with 2..10 unacked
        b.wait_messages(9)
        self.assertEqual(sorted(self.seqs(b)), list(range(2, 11)))
        self.assertEqual({m[3]["attempt"] for m in b.messages}, {2})
        # unsub does the same, at once
        for s in range(2, 11):
            b.notify("ack", sb, s)
        self.fill(3, start=10)
        b.wait_messages(12)
        c = self.client(self.b)
        self.consume(c, "s", durable="w")
        b.request("unsub", sb)
        c.wait_messages(3)
        self.assertEqual(sorted(self.seqs(c)), [11, 12, 13])

    def test_ack_wait_redelivers(self):
        self.fill(2)
        c = self.client(self.b)
        sid = self.consume(c, "s", ack_wait=300)
        c.wait_messages(2)
        c.request("ack", sid, 1)
        c.wait_messages(3)
        m = c.messages[2]
        self.assertEqual((m[3]["seq"], m[3]["attempt"]), (2, 2))
        c.request("ack", sid, 2)
        c.pump_for(0.6)
        self.assertEqual(len(c.messages), 3)

    def test_nak_and_delay(self):
        self.fill(3)
        c = self.client(self.b)
        sid = self.consume(c, "s")
        c.wait_messages(3)
        self.assertTrue(c.request("nak", sid, 1))
        c.wait_messages(4)
        self.assertEqual((c.messages[3][3]["seq"], c.messages[3][3]["attempt"]), (1, 2))
        t0 = time.monotonic()
        self.assertTrue(c.request("nak", sid, 2, 700))
        c.wait_messages(5)
        self.assertGreaterEqual(time.monotonic() - t0, 0.65)
        self.assertEqual(c.messages[4][3]["seq"], 2)
        self.assertFalse(c.request("nak", sid, 42))
        c.notify("nak", sid, 3)
        c.wait_messages(6)
        self.assertEqual(c.request_error("nak", sid, 3, "soon")[0], BAD_PARAMS)

    def test_max_deliver_dead_letter(self):
        self.fill(1, "s.order")
        watcher = self.client(self.b)
        watcher.sub("$SYS.stream.s.dead")
        c = self.client(self.b)
        sid = self.consume(c, "s", durable="d", max_deliver=3, ack_wait=200)
        c.wait_messages(3)
        self.assertEqual([m[3]["attempt"] for m in c.messages], [1, 2, 3])
        dead = watcher.wait_messages(1)[0]
        self.assertEqual(dead[1], "$SYS.stream.s.dead")
        self.assertEqual(dead[2], {"stream": "s", "durable": "d", "seq": 1, "topic": "s.order",
                                   "deliveries": 3})
        c.pump_for(0.5)
        self.assertEqual(len(c.messages), 3)
        info = c.request("stream_info", "s")
        self.assertEqual(info["messages"], 1)  # it stays in the stream
        self.assertEqual((info["consumers"]["d"]["ack_pending"], info["consumers"]["d"]["ack_floor"]), (0, 1))
        self.assertFalse(c.request("ack", sid, 1))

    def test_max_pending(self):
        self.fill(10)
        c = self.client(self.b)
        sid = self.consume(c, "s", max_pending=3)
        c.wait_messages(3)
        c.pump_for(0.3)
        self.assertEqual(self.seqs(c), [1, 2, 3])
        c.request("nak", sid, 1, 60000)  # waiting out a delay still counts
        c.pump_for(0.3)
        self.assertEqual(len(c.messages), 3)
        c.request("ack", sid, 2)
        c.wait_messages(4)
        c.pump_for(0.2)
        self.assertEqual(self.seqs(c), [1, 2, 3, 4])

    def test_durable_options_conflict(self):
        c = self.client(self.b)
        self.consume(c, "s", durable="d", filter="s.a", ack_wait=5000, max_pending=7)
        self.consume(c, "s", durable="d")  # leaving options out takes the stored ones
        self.consume(c, "s", durable="d", ack_wait=5000, filter="s.a")
        for opt, v in (("filter", "s.b"), ("ack_wait", 1000), ("max_pending", 8), ("start", "new"),
                       ("max_deliver", 2)):
            err = c.request_error("consume", "s", {"durable": "d", opt: v})
            self.assertEqual(err[0], BAD_PARAMS, opt)
            self.assertIn(opt, err[1])
        for bad in ({"durable": "a.b"}, {"durable": ""}, {"ack_wait": 0}, {"max_pending": 0},
                    {"bogus": 1}, {"max_deliver": -1}):
            self.assertEqual(c.request_error("consume", "s", bad)[0], BAD_PARAMS, bad)

    def test_pacing(self):
        """A consumer that does not read holds a window, not the stream."""
        b = self.store_broker({"big": {"patterns": "big.>"}}, http=True)
        p = self.client(b)
        chunk = b"x" * 4096
        for i in range(0, 3000, 100):
            ids = [p.send_request("pub", "big.x", chunk, {"stream": "big"}) for _ in range(100)]
            for msgid in ids:
                p.wait_response(msgid)
        c = self.client(b, rcvbuf=4096)
        self.consume(c, "big", max_pending=1000000)
        time.sleep(1.0)
        out = metrics(b.address("[http]"))["pigeon_memory_output_bytes"]
        self.assertLess(out, 1024 * 1024)  # 12 MB stored, at most a window queued
        c.wait_messages(3000, timeout=DEADLINE * 2)
        self.assertEqual(self.seqs(c), list(range(1, 3001)))

    def test_unsub_consumer_and_limits(self):
        c = self.client(self.b)
        sid = self.consume(c, "s")
        self.assertTrue(c.unsub(sid))
        self.assertEqual(c.request_error("unsub", sid)[0], BAD_PARAMS)
        self.assertEqual(c.request_error("consume", "s", [1])[0], BAD_PARAMS)
        self.assertEqual(c.request_error("consume")[0], BAD_PARAMS)


class DurabilityTest(StreamTest):
    def test_state_survives_restarts(self):
        b = self.store_broker({"s": {"patterns": "s.>"}})
        c = self.client(b)
        for i in range(20):
            self.pub(c, "s.x", i, stream="s")
        sid = self.consume(c, "s", durable="d", max_pending=10)
        c.wait_messages(10)
        for s in range(1, 6):
            self.assertTrue(c.request("ack", sid, s))
        c.wait_messages(15)  # 11..15 follow, within max_pending
        for sig in (signal.SIGTERM, signal.SIGKILL):
            self.restart(b, sig)
            c = self.client(b)
            info = c.request("stream_info", "s")
            self.assertEqual((info["messages"], info["last_seq"]), (20, 20))
            self.assertEqual(info["consumers"]["d"]["ack_floor"], 5)
            self.assertEqual(info["consumers"]["d"]["ack_pending"], 10)
            sid = self.consume(c, "s", durable="d")
            c.wait_messages(10)
            # the unacked come again, in order, counting their earlier deliveries
            self.assertEqual(self.seqs(c), list(range(6, 16)))
            attempts = [m[3]["attempt"] for m in c.messages]
            self.assertEqual(attempts, [2] * 10 if sig == signal.SIGTERM else [3] * 10)
            # a request the store answers after its commit: the delivery counts
            # gathered before it are durable too, whatever kills the broker next
            c.pub("fence", 1, retain=True)
            c.close()
        c = self.client(b)
        sid = self.consume(c, "s", durable="d")
        c.wait_messages(10)
        for seq in range(6, 16):
            self.assertTrue(c.request("ack", sid, seq))
        c.wait_messages(15)
        for seq in range(16, 21):
            self.assertTrue(c.request("ack", sid, seq))
        self.restart(b, signal.SIGKILL)
        c = self.client(b)
        info = c.request("stream_info", "s")["consumers"]["d"]
        self.assertEqual((info["ack_floor"], info["ack_pending"], info["num_pending"]), (20, 0, 0))

    def test_sigterm_answers_what_was_read(self):
        """Requests read before SIGTERM are answered before their connection closes."""
        b = self.store_broker({"s": {"patterns": "s.>"}})
        c = self.client(b)
        watch = self.client(b)
        n, payload = 1000, b"p" * 32768
        ids = [c.send_request("pub", "s.x", payload, {"stream": "s"}) for _ in range(n)]
        wait_for(lambda: watch.request("stream_info", "s")["last_seq"] == n, what="all read")
        b.send_signal(signal.SIGTERM)
        c.wait_closed()
        answered = [c.responses[i] for i in ids if i in c.responses]
        self.assertEqual(len(answered), n)
        self.assertEqual([r[1]["seq"] for r in answered], list(range(1, n + 1)))
        self.assertEqual(b.wait_exit(), 0)
        b.log.close()
        b.start()
        self.assertEqual(self.client(b).request("stream_info", "s")["last_seq"], n)

    def test_retained_survives(self):
        b = self.store_broker({})
        c = self.client(b)
        for i in range(100):
            self.assertEqual(c.pub("r.%d" % i, {"v": i}, retain=True, headers={"i": str(i)}), 0)
        c.pub("r.5", None, retain=True)  # cleared
        for sig in (signal.SIGTERM, signal.SIGKILL):
            self.restart(b, sig)
            c = self.client(b)
            c.sub("r.>")
            c.wait_messages(99)
            got = {m[1]: m for m in c.messages}
            self.assertNotIn("r.5", got)
            self.assertEqual(got["r.7"][2], {"v": 7})
            self.assertEqual(got["r.7"][3], {"headers": {"i": "7"}, "retained": True})
            c.close()

    def test_torn_tail_recovered(self):
        b = self.store_broker({"s": {"patterns": "s.>"}})
        c = self.client(b)
        for i in range(50):
            self.pub(c, "s.x", "m%d" % i, stream="s")
        b.stop(signal.SIGKILL)
        b.log.close()
        seg = os.path.join(b.store, "streams", "s", "%020d.seg" % 1)
        with open(seg, "r+b") as f:
            data = f.read().rstrip(b"\0")
            f.seek(len(data) - 10)  # the last record loses its end
            f.write(b"\xff" * 10)
        b.start()
        b.wait_log("cut a torn tail")
        c = self.client(b)
        self.assertEqual(c.request("stream_info", "s")["last_seq"], 49)
        self.assertEqual(self.pub(c, "s.x", "again", stream="s")["seq"], 50)
        self.consume(c, "s")
        c.wait_messages(50)
        self.assertEqual([m[2] for m in c.messages], ["m%d" % i for i in range(49)] + ["again"])

    def test_broken_state_set_aside(self):
        b = self.store_broker({"s": {"patterns": "s.>"}})
        c = self.client(b)
        self.pub(c, "s.x", 1, stream="s")
        c.pub("keep", 1, retain=True)
        b.stop()
        with open(os.path.join(b.store, "state", "data.mdb"), "r+b") as f:
            f.write(b"\x00" * 8192)  # both meta pages gone
        b.log.close()
        b.start()
        b.wait_log("renamed to .*NOT deleted")
        self.assertTrue(any(n.startswith("state.broken-") for n in os.listdir(b.store)))
        c = self.client(b)
        self.assertEqual(c.request("stream_info", "s")["last_seq"], 1)  # the stream is intact

    def test_store_in_use(self):
        b = self.store_broker({"s": {"patterns": "s.>"}})
        other = Broker(None, None)
        self.addCleanup(other.close)
        other.write_config(None, None, b.store_keys)
        other.start(check=False)
        self.assertNotEqual(other.wait_exit(), 0)
        self.assertIn("in use by another pigeond", other.log_text())


class ReloadTest(StreamTest):
    def test_reload_adds_and_changes(self):
        b = self.store_broker({"a": {"patterns": "a.>"}})
        c = self.client(b)
        for i in range(10):
            self.pub(c, "a.x", i, stream="a")
        b.streams = {"a": {"patterns": "a.>, aa.*", "max_messages": 4}, "b": {"patterns": "b.>"}}
        self.rewrite(b, b.streams)
        b.reload()
        b.wait_log("stream b added")
        self.assertEqual(self.pub(c, "b.x", 1, stream="b")["seq"], 1)
        self.assertEqual(self.pub(c, "aa.y", 1, stream="a")["seq"], 11)
        wait_for(lambda: c.request("stream_info", "a")["messages"] == 4, what="new limit applied")
        # removing a section keeps the stream, and says so
        self.rewrite(b, {"b": {"patterns": "b.>"}})
        b.reload()
        b.wait_log("stream a is no longer in the configuration")
        self.assertEqual(self.pub(c, "a.x", 1, stream="a")["seq"], 12)
        # overlapping streams are refused as a whole
        self.rewrite(b, {"b": {"patterns": "b.>"}, "c": {"patterns": "b.x"}})
        b.reload()
        b.wait_log("two streams may not capture one topic")
        self.assertEqual(c.request_error("stream_info", "c")[0], NO_STREAM)

    def test_delete_durable(self):
        b = self.store_broker({"s": {"patterns": "s.>"}})
        c = self.client(b)
        for i in range(5):
            self.pub(c, "s.x", i, stream="s")
        sid = self.consume(c, "s", durable="d", ack_wait=60000)
        self.consume(c, "s", durable="e")
        c.wait_messages(10)
        c.request("ack", sid, 1)
        run = lambda *a: subprocess.run([PIGEOND, "-c", b.conf_path] + list(a), capture_output=True,
                                        text=True, timeout=DEADLINE)
        r = run("--delete-durable", "s/d")  # while pigeond runs
        self.assertEqual(r.returncode, 1)
        self.assertIn("in use", r.stderr)
        b.stop()
        self.assertEqual(run("--delete-durable", "s").returncode, 2)
        r = run("--delete-durable", "s/d")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("durable d of stream s deleted", r.stdout)
        r = run("--delete-durable", "s/d")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no durable d", r.stderr)
        b.log.close()
        b.start()
        c = self.client(b)
        self.assertEqual(list(c.request("stream_info", "s")["consumers"]), ["e"])
        # d's options may now differ (code 3 before), and it starts over, nothing pending
        sid = self.consume(c, "s", durable="d", ack_wait=1000)
        c.wait_messages(5)
        self.assertEqual(self.seqs(c, sid=sid), [1, 2, 3, 4, 5])
        self.assertEqual(c.request("stream_info", "s")["messages"], 5)

    def test_delete_stream(self):
        b = self.store_broker({"a": {"patterns": "a.>"}, "b": {"patterns": "b.>"}})
        c = self.client(b)
        self.pub(c, "a.x", 1, stream="a")
        self.pub(c, "b.x", 1, stream="b")
        self.consume(c, "a", durable="d")
        c.wait_messages(1)
        b.stop()
        run = lambda *a: subprocess.run([PIGEOND, "-c", b.conf_path] + list(a), capture_output=True,
                                        text=True, timeout=DEADLINE)
        r = run("--delete-stream", "a")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("still configured", r.stderr)
        self.rewrite(b, {"b": {"patterns": "b.>"}})
        b.log.close()
        b.start()
        b.wait_log("stream 'a' is on disk but not in the configuration")
        r = run("--delete-stream", "a")  # while pigeond runs
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("in use", r.stderr)
        b.stop()
        r = run("--delete-stream", "a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(b.store, "streams", "a")))
        self.assertEqual(run("--delete-stream", "a").returncode, 1)  # gone
        self.rewrite(b, {"a": {"patterns": "a.>"}, "b": {"patterns": "b.>"}})
        b.log.close()
        b.start()
        c = self.client(b)
        info = c.request("stream_info", "a")
        self.assertEqual((info["messages"], info["consumers"]), (0, {}))
        self.assertEqual(c.request("stream_info", "b")["messages"], 1)


class DiskErrorTest(StreamTest):
    def test_write_errors_code_12(self):
        """A file-size limit makes writes fail as a full disk would (EFBIG)."""
        b = self.store_broker({"s": {"patterns": "s.>"}}, broker={"log_level": "notice"},
                              http=True)
        resource.prlimit(b.pid, resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
        c = self.client(b)
        live = self.client(b)
        live.sub("s.>")
        payload = b"p" * 8000
        last_ok, code = 0, None
        for i in range(400):
            try:
                last_ok = self.pub(c, "s.x", payload, stream="s")["seq"]
            except ProtocolError as e:
                code = e.code
                break
        self.assertEqual(code, NOT_STORED)
        self.assertGreater(last_ok, 10)
        live.wait_messages(last_ok + 1)  # delivered live, stored or not
        m = metrics(b.address("[http]"))
        self.assertEqual(m['pigeon_stream_failing{stream="s"}'], 1)
        self.assertGreaterEqual(m['pigeon_stream_not_stored_total{stream="s"}'], 1)
        b.wait_log("stream s: .*failed.*code 12")
        # retained values: refused with 12 and left as they were
        c.pub("keep", "old", retain=True)
        for i in range(10):
            try:
                c.pub("big.%d" % i, b"n" * 300000, retain=True)
            except ProtocolError as e:
                self.assertEqual(e.code, NOT_STORED)
                break
        else:
            self.fail("the state file never passed the limit")
        err = c.request_error("pub", "keep", b"n" * 300000, {"retain": True})
        self.assertEqual(err[0], NOT_STORED)
        r = self.client(b)
        r.sub("keep")
        self.assertEqual(r.wait_messages(1)[0][2], "old")
        r.sub("big.>")
        r.wait_messages(1 + i)
        r.pump_for(0.3)
        self.assertEqual(sorted(m[1] for m in r.messages[1:]), ["big.%d" % k for k in range(i)])
        # the disk is back: the stream goes on from its last durable seq
        resource.prlimit(b.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        seq = self.pub(c, "s.x", "back", stream="s")["seq"]
        self.assertEqual(seq, last_ok + 1)
        b.wait_log("stream s: the store writes again")
        self.restart(b, signal.SIGKILL)
        c = self.client(b)
        self.consume(c, "s")
        c.wait_messages(seq)
        self.assertEqual(self.seqs(c), list(range(1, seq + 1)))
        self.assertEqual(c.messages[-1][2], "back")


class PermissionTest(StreamTest):
    """Under logins, consume needs subscribe permission for its filter or the stream."""

    def test_consume_needs_subscribe_permission(self):
        from test_security import password_hash  # `pigeon passwd`, as the security tests hash
        users = os.path.join(self.store_dir_for_users(), "users.conf")
        hashes = (password_hash("alice-pw"), password_hash("bob-pw"))
        with open(users, "w") as f:
            f.write("[user alice]\npassword = %s\nsubscribe = orders.eu.>\n"
                    "subscribe_deny = orders.eu.secret.>\npublish = orders.>\n"
                    "[user bob]\npassword = %s\nsubscribe = >\npublish = >\n" % hashes)
        b = self.store_broker({"orders": {"patterns": "orders.>"}, "audit": {"patterns": "audit.>"}},
                              store="[auth]\nusers_file = %s\n" % users)
        alice = self.client(b, creds={"user": "alice", "password": "alice-pw"})
        bob = self.client(b, creds={"user": "bob", "password": "bob-pw"})
        self.pub(bob, "orders.eu.public.x", 1, stream="orders")
        self.assertEqual(alice.request_error("consume", "orders")[0], FORBIDDEN)
        self.assertEqual(alice.request_error("consume", "orders", {"filter": "orders.eu.>"})[0],
                         FORBIDDEN)  # overlaps a deny
        sid = self.consume(alice, "orders", filter="orders.eu.public.>")
        self.assertEqual(alice.wait_messages(1)[0][0], sid)
        # stream_info lists only what the caller may consume
        self.assertEqual(alice.request("stream_info"), [])
        self.assertEqual(alice.request_error("stream_info", "orders")[0], NO_STREAM)
        self.assertEqual(sorted(i["name"] for i in bob.request("stream_info")), ["audit", "orders"])
        self.consume(bob, "orders", durable="all")
        # a reload that takes the permission away ends the consume, as it ends a sub
        with open(users, "w") as f:
            f.write("[user alice]\npassword = %s\nsubscribe = audit.>\npublish = orders.>\n"
                    "[user bob]\npassword = %s\nsubscribe = >\npublish = >\n" % hashes)
        b.reload()
        err = alice.wait_error()
        self.assertEqual(err[0], FORBIDDEN)
        self.assertIn("no longer allowed", err[1])
        self.assertEqual(alice.request_error("ack", sid, 1)[0], BAD_PARAMS)  # the sid is gone
        self.pub(bob, "orders.eu.public.y", 2, stream="orders")
        alice.pump_for(0.3)
        self.assertEqual(len(alice.messages), 1)

    def test_allow_responses_to_a_stored_request(self):
        from test_security import password_hash
        users = os.path.join(self.store_dir_for_users(), "users.conf")
        with open(users, "w") as f:
            f.write("[user worker]\npassword = %s\nsubscribe = jobs.>\nallow_responses = yes\n"
                    "[user boss]\npassword = %s\nsubscribe = _INBOX.boss.>\npublish = jobs.>\n"
                    % (password_hash("worker-pw"), password_hash("boss-pw")))
        b = self.store_broker({"jobs": {"patterns": "jobs.>"}},
                              store="[auth]\nusers_file = %s\n" % users)
        worker = self.client(b, creds={"user": "worker", "password": "worker-pw"})
        boss = self.client(b, creds={"user": "boss", "password": "boss-pw"})
        inbox = boss.sub("_INBOX.boss.1")
        self.pub(boss, "jobs.build", "j1", stream="jobs", reply_to="_INBOX.boss.1")
        self.assertEqual(worker.request_error("pub", "_INBOX.boss.1", "unasked")[0], FORBIDDEN)
        self.consume(worker, "jobs", durable="w")  # delivered from the store, not live
        self.assertEqual(worker.wait_messages(1)[0][3]["reply_to"], "_INBOX.boss.1")
        self.assertEqual(worker.pub("_INBOX.boss.1", "done"), 1)
        self.assertEqual(boss.wait_messages(1), [[inbox, "_INBOX.boss.1", "done"]])
        self.assertEqual(worker.request_error("pub", "_INBOX.boss.1", "again")[0], FORBIDDEN)

    def store_dir_for_users(self):
        import tempfile
        d = tempfile.TemporaryDirectory(prefix="pigeon-users-")
        self.addCleanup(d.cleanup)
        return d.name


class MonitoringTest(StreamTest):
    def test_metrics_and_streams_json(self):
        b = self.store_broker({"s": {"patterns": "s.>"}}, http=True)
        c = self.client(b)
        for i in range(5):
            self.pub(c, "s.x", i, stream="s")
        sid = self.consume(c, "s", durable="d", ack_wait=200)
        c.wait_messages(6)  # 5, and one redelivery
        c.request("ack", sid, 1)
        addr = b.address("[http]")
        m = metrics(addr)
        self.assertEqual(m['pigeon_stream_messages{stream="s"}'], 5)
        self.assertEqual(m['pigeon_stream_first_seq{stream="s"}'], 1)
        self.assertEqual(m['pigeon_stream_last_seq{stream="s"}'], 5)
        self.assertGreater(m['pigeon_stream_bytes{stream="s"}'], 0)
        self.assertGreaterEqual(m['pigeon_stream_fsync_seconds_count{stream="s"}'], 1)
        self.assertGreaterEqual(m['pigeon_stream_write_seconds_count{stream="s"}'], 1)
        self.assertGreaterEqual(m['pigeon_consumer_redeliveries_total{stream="s",durable="d"}'], 1)
        self.assertIn('pigeon_consumer_ack_pending{stream="s",durable="d"}', m)
        self.assertGreater(m["pigeon_memory_store_bytes"], 0)
        self.assertEqual(m["pigeon_store_failing"], 0)
        status, text = http_get(addr, "/streams")
        self.assertEqual(status, 200)
        doc = json.loads(text)
        s = doc["streams"][0]
        self.assertEqual((s["name"], s["messages"], s["last_seq"]), ("s", 5, 5))
        self.assertEqual(s["consumers"][0]["durable"], "d")
        self.assertTrue(doc["fsync"])
        self.assertIn("/streams", http_get(addr, "/")[1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
