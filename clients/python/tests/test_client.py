"""test_client.py - every verb of the blocking client against a real pigeond."""

import os
import threading
import unittest
from unittest import mock

import support
from support import DEADLINE, EVERY_TYPE, BrokerCase, FakeBroker, same, wait_for

import msgpack

import pigeon


class Hello(BrokerCase):
    def test_server_info(self):
        c = self.connect(name="billing-worker")
        info = c.server_info
        self.assertEqual(info["server"], "pigeond")
        self.assertEqual(info["proto"], 1)
        self.assertIsInstance(c.client_id, int)
        self.assertEqual(c.max_payload, 1 << 20)
        self.assertTrue(c.is_connected)
        self.assertEqual(c.state, "connected")
        wait_for(lambda: '"billing-worker"' in self.broker.log_text(), what="name in log")

    def test_default_name_and_address_from_env(self):
        with mock.patch.dict(os.environ, {"PIGEON_SERVER": self.broker.address()}):
            c = pigeon.connect(timeout=DEADLINE)
        self.pigeons.append(c)
        self.assertGreaterEqual(c.ping(), 0)
        wait_for(lambda: "test_client.py[%d]" % os.getpid() in self.broker.log_text(),
                 what="default name in log")

    def test_context_manager_closes(self):
        with pigeon.connect(self.broker.address(), timeout=DEADLINE) as c:
            c.publish("a", 1)
        self.assertEqual(c.state, "closed")
        with self.assertRaises(pigeon.ClientClosed):
            c.publish("a", 1)
        c.close()  # idempotent


class PubSub(BrokerCase):
    def test_publish_subscribe(self):
        c = self.connect()
        sub = c.subscribe("orders.>")
        self.assertIsNone(c.publish("orders.new", {"id": 1}))
        msg = sub.next_msg(DEADLINE)
        self.assertEqual(msg.topic, "orders.new")
        self.assertEqual(msg.payload, {"id": 1})
        self.assertEqual(msg.raw, msgpack.packb({"id": 1}))
        self.assertEqual((msg.reply_to, msg.headers, msg.retained), (None, {}, False))
        self.assertEqual(msg.sid, sub.sid)
        self.assertIs(msg.subscription, sub)

    def test_two_clients_and_iteration(self):
        pub, sub_client = self.connect(), self.connect()
        sub = sub_client.subscribe("jobs.*")
        for i in range(5):
            self.assertEqual(pub.publish("jobs.run", i, confirm=True), 1)
        got = []
        for msg in sub:
            got.append(msg.payload)
            if len(got) == 5:
                break
        self.assertEqual(got, list(range(5)))

    def test_wildcards_and_system_topics(self):
        c = self.connect()
        star, full, exact = c.subscribe("a.*.c"), c.subscribe(">"), c.subscribe("a.b.c")
        self.assertEqual(c.publish("a.b.c", 1, confirm=True), 3)
        self.assertEqual(c.publish("a.c", 2, confirm=True), 1)  # only '>'
        self.assertEqual(star.next_msg(DEADLINE).payload, 1)
        self.assertEqual(exact.next_msg(DEADLINE).payload, 1)
        self.assertEqual([full.next_msg(DEADLINE).payload for _ in range(2)], [1, 2])
        self.assertEqual(star.pending + exact.pending + full.pending, 0)

    def test_confirm_counts(self):
        c = self.connect()
        self.assertEqual(c.publish("n.x", 0, confirm=True), 0)
        c.subscribe("n.x")
        c.subscribe("n.>")
        self.assertEqual(c.publish("n.x", 0, confirm=True), 2)

    def test_headers_and_reply_to(self):
        c = self.connect()
        sub = c.subscribe("h")
        c.publish("h", "x", headers={"trace": "abc", "é": "ü"}, reply_to="back.here")
        msg = sub.next_msg(DEADLINE)
        self.assertEqual(msg.headers, {"trace": "abc", "é": "ü"})
        self.assertEqual(msg.reply_to, "back.here")

    def test_header_not_utf8_is_refused(self):
        c = self.connect()
        sub = c.subscribe("h")
        raw = self.broker.client()
        # pub "h", payload 1, headers {"k": b"\xff"} sent as a str (not UTF-8),
        # as request 9: the broker refuses it (code 3) and delivers nothing,
        # so no subscriber's decoder ever sees the malformed string.
        raw.send_raw(b"\x94\x00\x09\xa3pub\x93\xa1h\x01\x81\xa7headers\x81\xa1k\xa1\xff")
        err, result = raw.wait_response(9)
        self.assertEqual(err[0], pigeon.BadParams.code)
        self.assertIsNone(result)
        c.publish("h", 2)
        self.assertEqual(sub.next_msg(DEADLINE).payload, 2)
        raw.close()

    def test_bare_port_address(self):
        # "PORT" is 127.0.0.1:PORT, not the IPv4 address the number spells.
        port = str(self.broker.port())
        with pigeon.connect(port) as c:
            self.assertEqual(str(c.address), "127.0.0.1:" + port)
            self.assertEqual(c.publish("bare", 1, confirm=True), 0)

    def test_lone_surrogate_is_the_clients_own_error(self):
        # A str with no UTF-8 form is refused before anything is sent, with
        # a PigeonError, not a bare UnicodeEncodeError; the connection lives.
        c = self.connect()
        sub = c.subscribe("s")
        for headers in ({"k": "\ud800"}, {"\udc80": "v"}, {"ok": "fine", "k": "a\udfffb"}):
            with self.subTest(headers=headers):
                with self.assertRaises(pigeon.BadParams) as cm:
                    c.publish("s", 1, headers=headers)
                self.assertIn("not valid UTF-8", str(cm.exception))
                with self.assertRaises(pigeon.BadParams):
                    c.request("s", 1, headers=headers, timeout=DEADLINE)
        for payload in ("\ud800", {"k": ["x\udcff"]}, {"\ud800": 1}):
            with self.subTest(payload=payload), self.assertRaises(pigeon.BadFrame):
                c.publish("s", payload)
        c.publish("s", 2, headers={"k": "\u00e9"})
        msg = sub.next_msg(DEADLINE)
        self.assertEqual((msg.payload, msg.headers), (2, {"k": "\u00e9"}))

    def test_own_publications_in_order(self):
        c = self.connect()
        sub = c.subscribe("seq")
        for i in range(1000):
            c.publish("seq", i)
        self.assertEqual([sub.next_msg(DEADLINE).payload for _ in range(1000)], list(range(1000)))

    def test_unsubscribe(self):
        c = self.connect()
        sub = c.subscribe("u")
        c.publish("u", 1, confirm=True)
        sub.unsubscribe()
        self.assertFalse(sub.active)
        self.assertEqual(list(sub), [])  # iteration ends; queued messages dropped
        with self.assertRaises(pigeon.ClientClosed):
            sub.next_msg(0)
        self.assertEqual(c.publish("u", 2, confirm=True), 0)
        sub.unsubscribe()  # idempotent
        c.unsubscribe(sub)

    def test_subscription_context_manager(self):
        c = self.connect()
        with c.subscribe("cm") as sub:
            c.publish("cm", 1)
            self.assertEqual(sub.next_msg(DEADLINE).payload, 1)
        self.assertEqual(c.publish("cm", 2, confirm=True), 0)

    def test_next_msg_timeout(self):
        c = self.connect()
        sub = c.subscribe("quiet")
        with self.assertRaises(TimeoutError):
            sub.next_msg(0.05)
        with self.assertRaises(pigeon.TimeoutError):
            sub.next_msg(0)

    def test_close_ends_iteration(self):
        c = self.connect()
        sub = c.subscribe("x")
        got = []
        t = threading.Thread(target=lambda: got.extend(sub))
        t.start()
        c.publish("x", 1, confirm=True)
        wait_for(lambda: got, what="the message")
        c.close()
        t.join(DEADLINE)
        self.assertFalse(t.is_alive())
        self.assertEqual(got[0].payload, 1)

    def test_max_pending_drops_and_counts(self):
        c = self.connect()
        sub = c.subscribe("flood", max_pending=5)
        for i in range(20):
            c.publish("flood", i)
        c.ping()  # barrier: all 20 were routed
        wait_for(lambda: sub.pending + sub.dropped == 20, what="20 messages")
        self.assertEqual((sub.pending, sub.dropped), (5, 15))
        self.assertEqual([sub.next_msg(0).payload for _ in range(5)], [0, 1, 2, 3, 4])

    def test_ping(self):
        c = self.connect()
        self.assertGreaterEqual(c.ping(), 0.0)
        self.assertGreaterEqual(c.flush(), 0.0)


class Retained(BrokerCase):
    def test_retain_replay_and_clear(self):
        c = self.connect()
        c.publish("cfg.a", {"v": 1}, retain=True, headers={"k": "v"}, confirm=True)
        sub = c.subscribe("cfg.>")
        msg = sub.next_msg(DEADLINE)
        self.assertEqual((msg.payload, msg.retained, msg.headers), ({"v": 1}, True, {"k": "v"}))
        c.publish("cfg.a", {"v": 2})
        live = sub.next_msg(DEADLINE)
        self.assertEqual((live.payload, live.retained), ({"v": 2}, False))
        c.publish("cfg.a", None, retain=True, confirm=True)  # clears (and is delivered)
        self.assertIsNone(sub.next_msg(DEADLINE).payload)
        again = c.subscribe("cfg.>")
        c.publish("cfg.marker", 0)
        self.assertEqual(again.next_msg(DEADLINE).topic, "cfg.marker")  # no replay left


class QueueGroups(BrokerCase):
    def test_each_message_to_one_member(self):
        a, b, watcher = self.connect(), self.connect(), self.connect()
        qa = a.subscribe("work.>", queue="workers")
        qb = b.subscribe("work.>", queue="workers")
        every = watcher.subscribe("work.>")
        p = self.connect()
        n = 40
        for i in range(n):
            self.assertEqual(p.publish("work.item", i, confirm=True), 2)  # group once + watcher
        seen = [every.next_msg(DEADLINE).payload for _ in range(n)]
        self.assertEqual(seen, list(range(n)))
        wait_for(lambda: qa.pending + qb.pending == n, what="all work delivered")
        got = [qa.next_msg(0).payload for _ in range(qa.pending)]
        got += [qb.next_msg(0).payload for _ in range(qb.pending)]
        self.assertEqual(sorted(got), list(range(n)))
        self.assertGreater(qa.sid, 0)

    def test_bad_queue_name(self):
        c = self.connect()
        with self.assertRaises(pigeon.BadParams):
            c.subscribe("a", queue="no spaces")
        with self.assertRaises(pigeon.BadParams):
            c.subscribe("a", queue="")


class RequestReply(BrokerCase):
    def serve(self, client, pattern, fn):
        sub = client.subscribe(pattern)

        def loop():
            for msg in sub:
                client.reply(msg, fn(msg), headers={"served-by": "test"})
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return sub

    def test_request(self):
        server, c = self.connect(), self.connect()
        self.serve(server, "svc.echo", lambda m: {"echo": m.payload})
        self.assertEqual(c.request("svc.echo", [1, "two"], timeout=DEADLINE),
                         {"echo": [1, "two"]})
        reply = c.request_msg("svc.echo", 3, timeout=DEADLINE)
        self.assertEqual(reply.payload, {"echo": 3})
        self.assertEqual(reply.headers, {"served-by": "test"})

    def test_one_shared_inbox(self):
        server, c = self.connect(), self.connect()
        self.serve(server, "svc.n", lambda m: m.payload * 2)
        for i in range(5):
            self.assertEqual(c.request("svc.n", i, timeout=DEADLINE), 2 * i)
        inboxes = [s for s in c._subs.values() if s.pattern.startswith("_INBOX.")]
        self.assertEqual(len(inboxes), 1)

    def test_concurrent_requests_from_threads(self):
        server, c = self.connect(), self.connect()
        self.serve(server, "svc.sq", lambda m: m.payload ** 2)
        results, errors = {}, []

        def worker(k):
            try:
                for i in range(20):
                    results[(k, i)] = c.request("svc.sq", k * 100 + i, timeout=DEADLINE)
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE * 2)
        self.assertEqual(errors, [])
        self.assertEqual(results, {(k, i): (k * 100 + i) ** 2
                                   for k in range(6) for i in range(20)})

    def test_timeout(self):
        c = self.connect()
        c.subscribe("silent")  # someone gets it, nobody answers
        with self.assertRaises(TimeoutError) as cm:
            c.request("silent", 1, timeout=0.2)
        self.assertIsInstance(cm.exception, pigeon.TimeoutError)
        self.assertIsNone(cm.exception.code)
        self.assertGreaterEqual(c.ping(), 0)  # still usable

    def test_no_responders_at_once(self):
        c = self.connect()
        # A timeout would be a TimeoutError, after DEADLINE: this comes at once.
        with self.assertRaises(pigeon.NoResponders) as cm:
            c.request("nobody.home", 1, timeout=DEADLINE)
        self.assertIsInstance(cm.exception, pigeon.PigeonError)
        self.assertIn("nobody.home", str(cm.exception))
        self.assertEqual(c._replies, {})
        self.assertGreaterEqual(c.ping(), 0)  # still usable

    def test_late_reply_is_dropped(self):
        server, c = self.connect(), self.connect()
        held = []
        sub = server.subscribe("svc.slow")
        with self.assertRaises(TimeoutError):
            c.request("svc.slow", "first", timeout=0.2)
        held.append(sub.next_msg(DEADLINE))
        self.serve(server, "svc.fast", lambda m: "fast")
        server.reply(held[0], "too late")
        self.assertEqual(c.request("svc.fast", None, timeout=DEADLINE), "fast")

    def test_reply_needs_reply_to(self):
        c = self.connect()
        sub = c.subscribe("plain")
        c.publish("plain", 1)
        with self.assertRaises(pigeon.BadParams):
            c.reply(sub.next_msg(DEADLINE), 2)

    def test_raw_request(self):
        server, c = self.connect(), self.connect()
        sub = server.subscribe("svc.raw", raw=True)

        def loop():
            for msg in sub:
                server.reply(msg, msg.payload, raw=True)  # echoes the exact bytes
        threading.Thread(target=loop, daemon=True).start()
        odd = b"\xd1\x00\x07"  # 7 as an int16
        self.assertEqual(c.request("svc.raw", odd, raw=True, timeout=DEADLINE), odd)


class Payloads(BrokerCase):
    def test_every_type_round_trip(self):
        c = self.connect()
        sub = c.subscribe("types")
        for name, value in EVERY_TYPE:
            c.publish("types", value)
        for name, value in EVERY_TYPE:
            with self.subTest(name):
                msg = sub.next_msg(DEADLINE)
                self.assertTrue(same(msg.payload, value), (name, msg.payload))
                self.assertEqual(msg.raw, msgpack.packb(value, use_bin_type=True))

    def test_tuple_becomes_list(self):
        c = self.connect()
        sub = c.subscribe("t")
        c.publish("t", (1, (2, 3)))
        self.assertEqual(sub.next_msg(DEADLINE).payload, [1, [2, 3]])

    def test_raw_is_never_re_encoded(self):
        c = self.connect()
        sub = c.subscribe("raw.>", raw=True)
        decoded = c.subscribe("raw.>")
        odd = [b"\xcf\x00\x00\x00\x00\x00\x00\x00\x05",   # 5 as a uint64
               b"\xca\x3f\xc0\x00\x00",                    # 1.5 as a float32
               b"\xda\x00\x02hi",                           # "hi" as a str16
               b"\xde\x00\x01\xa1k\xd0\x01"]                # {"k": 1}, map16, int8
        for raw in odd:
            c.publish("raw.in", raw, raw=True)
        for raw in odd:
            msg = sub.next_msg(DEADLINE)
            self.assertEqual((msg.payload, msg.raw), (raw, raw))
        self.assertEqual([decoded.next_msg(DEADLINE).payload for _ in odd],
                         [5, 1.5, "hi", {"k": 1}])
        # Forwarding msg.raw keeps the bytes too.
        fwd = c.subscribe("fwd", raw=True)
        c.publish("fwd", msg.raw, raw=True)
        self.assertEqual(fwd.next_msg(DEADLINE).raw, odd[-1])

    def test_undecodable_payloads_raise_payload_error(self):
        # Valid MessagePack that Python cannot hold: a str that is not UTF-8,
        # and maps keyed by an array and by a map (unhashable).
        bad = [b"\xa2\xff\xfe", b"\x81\x91\x01\x02", b"\x81\x80\x01"]
        c = self.connect()
        sub = c.subscribe("undecodable")
        for raw in bad:
            c.publish("undecodable", raw, raw=True)
        for raw in bad:
            msg = sub.next_msg(DEADLINE)
            with self.subTest(raw=raw), self.assertRaises(pigeon.PayloadError) as cm:
                msg.payload
            self.assertIsInstance(cm.exception, pigeon.PigeonError)
            self.assertIsInstance(cm.exception, ValueError)
            self.assertEqual(cm.exception.raw, raw)
            self.assertEqual(msg.raw, raw)
        # A reply likewise: request() raises it, request_msg() and raw=True don't.
        server = self.connect()
        srv = server.subscribe("svc.bad")

        def loop():
            for m in srv:
                server.reply(m, bad[m.payload], raw=True)
        threading.Thread(target=loop, daemon=True).start()
        for i, raw in enumerate(bad):
            with self.subTest(reply=raw), self.assertRaises(pigeon.PayloadError) as cm:
                c.request("svc.bad", i, timeout=DEADLINE)
            self.assertEqual(cm.exception.raw, raw)
        self.assertEqual(c.request_msg("svc.bad", 0, timeout=DEADLINE).raw, bad[0])

    def test_bad_raw_refused_before_sending(self):
        c = self.connect()
        for bad in (b"", b"\x92\x01", b"\x01\x02", "str"):
            with self.subTest(bad=bad), self.assertRaises((pigeon.BadFrame, TypeError)):
                c.publish("x", bad, raw=True)
        self.assertGreaterEqual(c.ping(), 0)

    def test_large_near_limit(self):
        c = self.connect()
        sub = c.subscribe("big", raw=True)
        limit = c.max_payload
        blob = os.urandom(limit - 64)
        packed = msgpack.packb(blob)
        c.publish("big", blob)
        msg = sub.next_msg(DEADLINE)
        self.assertEqual(msg.raw, packed)
        self.assertEqual(msgpack.unpackb(msg.raw), blob)

    def test_too_large_without_round_trip(self):
        c = self.connect()
        with self.assertRaises(pigeon.TooLarge) as cm:
            c.publish("big", b"x" * c.max_payload)
        self.assertEqual(cm.exception.code, 5)
        with self.assertRaises(pigeon.TooLarge):
            c.publish("big", b"x" * c.max_payload, confirm=True)
        with self.assertRaises(pigeon.TooLarge):
            c.request("big", b"x" * c.max_payload, timeout=1)
        self.assertGreaterEqual(c.ping(), 0)  # the connection survived
        self.assertTrue(c.is_connected)

    def test_too_deep_without_round_trip(self):
        c = self.connect()
        c.publish("deep", support.nested_list(30, 1), confirm=True)
        with self.assertRaises(pigeon.BadFrame):
            c.publish("deep", support.nested_list(31, 1))
        self.assertGreaterEqual(c.ping(), 0)

    def test_not_serialisable(self):
        c = self.connect()
        with self.assertRaises(TypeError):
            c.publish("x", object())
        with self.assertRaises((OverflowError, TypeError, ValueError)):
            c.publish("x", 2**64)
        self.assertGreaterEqual(c.ping(), 0)


class Errors(BrokerCase):
    BROKER = {"max_retained": 0, "max_subscriptions": 3}

    def test_bad_topic(self):
        c = self.connect()
        with self.assertRaises(pigeon.BadTopic):
            c.publish("a..b", 1)
        with self.assertRaises(pigeon.BadTopic):
            c.subscribe("a.>.b")
        with self.assertRaises(pigeon.BadTopic):
            c.publish("a", 1, reply_to="r.*")
        with self.assertRaises(pigeon.BadTopic):
            c.request("a.*", 1)
        with self.assertRaises(pigeon.BadParams):
            c.publish("a", 1, headers={"n": 1})
        with self.assertRaises(pigeon.Forbidden):
            c.publish("$SYS.x", 1)

    def test_broker_errors_mapped(self):
        c = self.connect()
        with self.assertRaises(pigeon.LimitError) as cm:  # retained store off
            c.publish("r", 1, retain=True, confirm=True)
        self.assertEqual(cm.exception.code, 10)
        subs = [c.subscribe("s.%d" % i) for i in range(3)]
        with self.assertRaises(pigeon.LimitError):
            c.subscribe("s.extra")
        self.assertEqual(len(c._subs), 3)  # the failed one is not kept
        subs[0].unsubscribe()
        c.subscribe("s.again")

    def test_error_notification_to_on_error(self):
        seen = []
        c = self.connect(on_error=seen.append)
        c.publish("r", 1, retain=True)  # a notification: fails asynchronously
        wait_for(lambda: seen, what="the error notification")
        self.assertIsInstance(seen[0], pigeon.LimitError)
        self.assertGreaterEqual(c.ping(), 0)


class Addresses(BrokerCase):
    def test_unix_socket(self):
        path = os.path.join(self.broker.dir.name, "p.sock")
        self.broker.write_config(listeners={"tcp": {"bind": "127.0.0.1:0"},
                                            "local": {"bind": "unix:" + path}})
        self.broker.reload()
        wait_for(lambda: os.path.exists(path), what="the unix socket")
        c = self.connect("unix:" + path)
        sub = c.subscribe("u")
        c.publish("u", "over unix")
        self.assertEqual(sub.next_msg(DEADLINE).payload, "over unix")

    @unittest.skipUnless(support.has_ipv6(), "no IPv6 loopback")
    def test_ipv6(self):
        self.broker.write_config(listeners={"v4": {"bind": "127.0.0.1:0"},
                                            "v6": {"bind": "[::1]:0"}})
        self.broker.reload()
        wait_for(lambda: "v6" in self.broker.ports(), what="the IPv6 listener")
        port = self.broker.port("v6")
        c = self.connect("[::1]:%d" % port)
        self.assertGreaterEqual(c.ping(), 0)


class ConnectFailures(unittest.TestCase):
    def test_nobody_listening(self):
        port = support.free_port()
        with self.assertRaises(pigeon.ConnectError) as cm:
            pigeon.connect("127.0.0.1:%d" % port, timeout=DEADLINE)
        self.assertIsInstance(cm.exception, ConnectionError)
        self.assertIn("127.0.0.1:%d" % port, str(cm.exception))

    def test_no_such_socket(self):
        with self.assertRaises(pigeon.ConnectError):
            pigeon.connect("unix:/nonexistent/pigeond.sock", timeout=DEADLINE)

    def test_bad_address(self):
        with self.assertRaises(ValueError):
            pigeon.connect("::1:7400")

    def test_broker_error_then_close(self):
        """A fatal error notification ends the subscription with its reason."""
        def script(conn, unpacker):
            for frame in unpacker_frames(conn, unpacker):
                if frame[0] == 0 and frame[2] == "sub":
                    conn.sendall(msgpack.packb([1, frame[1], None, 1]))
                    conn.sendall(msgpack.packb([2, "msg", [1, "t", "hi"]]))
                    conn.sendall(msgpack.packb([2, "error", [9, "slow consumer"]]))
                    return
        fake = FakeBroker(script)
        seen = []
        c = pigeon.connect(fake.address, timeout=DEADLINE, on_error=seen.append)
        self.assertEqual(c.max_payload, 4096)
        sub = c.subscribe("t")
        self.assertEqual(sub.next_msg(DEADLINE).payload, "hi")
        with self.assertRaises(pigeon.ConnectionLost) as cm:
            sub.next_msg(DEADLINE)
        self.assertIsInstance(cm.exception.reason, pigeon.SlowConsumer)
        self.assertIsInstance(seen[0], pigeon.SlowConsumer)
        self.assertEqual(c.state, "lost")
        with self.assertRaises(pigeon.ConnectionLost):
            c.publish("t", 1)
        c.close()
        fake.close()


def unpacker_frames(conn, unpacker):
    """Frames from CONN until it closes (for FakeBroker scripts)."""
    while True:
        for frame in unpacker:
            yield frame
        data = conn.recv(65536)
        if not data:
            return
        unpacker.feed(data)


class Threads(BrokerCase):
    def test_shared_client(self):
        c, watcher = self.connect(), self.connect()
        sub = watcher.subscribe("t.>")
        n, k = 300, 4
        errors = []

        def worker(i):
            try:
                for j in range(n):
                    if j % 10 == 0:
                        c.publish("t.%d" % i, j, confirm=True)
                    else:
                        c.publish("t.%d" % i, j)
            except Exception as e:
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE * 2)
        self.assertEqual(errors, [])
        per = {i: [] for i in range(k)}
        for _ in range(n * k):
            msg = sub.next_msg(DEADLINE)
            per[int(msg.topic[2:])].append(msg.payload)
        self.assertEqual(per, {i: list(range(n)) for i in range(k)})

    def test_consumers_share_a_subscription(self):
        c = self.connect()
        sub = c.subscribe("q")
        got, lock = [], threading.Lock()

        def consume():
            for msg in sub:
                with lock:
                    got.append(msg.payload)
        threads = [threading.Thread(target=consume) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(300):
            c.publish("q", i)
        wait_for(lambda: len(got) == 300, what="300 messages")
        sub.unsubscribe()
        for t in threads:
            t.join(DEADLINE)
        self.assertEqual(sorted(got), list(range(300)))


if __name__ == "__main__":
    support.main()
