"""test_aio.py - every verb of the asyncio client against a real pigeond."""

import asyncio
import gc
import os
import unittest

import support
from support import DEADLINE, EVERY_TYPE, AioBrokerCase, FakeBroker, same

import msgpack

import pigeon
from pigeon import aio


class Basics(AioBrokerCase):
    async def test_hello(self):
        c = await self.aconnect(name="aio-worker")
        self.assertEqual(c.server_info["server"], "pigeond")
        self.assertIsInstance(c.client_id, int)
        self.assertEqual(c.max_payload, 1 << 20)
        self.assertTrue(c.is_connected)
        await self.poll(lambda: '"aio-worker"' in self.broker.log_text(), "name in log")

    async def test_async_with_connect(self):
        async with aio.connect(self.broker.address(), timeout=DEADLINE) as c:
            self.assertGreaterEqual(await c.ping(), 0)
        self.assertEqual(c.state, "closed")
        with self.assertRaises(pigeon.ClientClosed):
            await c.publish("a", 1)
        await c.close()

    async def test_publish_subscribe(self):
        c = await self.aconnect()
        sub = await c.subscribe("orders.>")
        self.assertIsNone(await c.publish("orders.new", {"id": 1}, headers={"k": "v"},
                                          reply_to="r.1"))
        msg = await sub.next_msg(DEADLINE)
        self.assertEqual((msg.topic, msg.payload, msg.headers, msg.reply_to, msg.retained),
                         ("orders.new", {"id": 1}, {"k": "v"}, "r.1", False))
        self.assertEqual(msg.raw, msgpack.packb({"id": 1}))
        self.assertEqual(msg.sid, sub.sid)

    async def test_async_for_directly(self):
        c = await self.aconnect()
        got = []

        async def consume():
            async for msg in c.subscribe("it.*"):
                got.append(msg.payload)
                if len(got) == 3:
                    return
        task = asyncio.create_task(consume())
        await self.poll(lambda: any(s.pattern == "it.*" and s._server_sid
                                    for s in c._subs.values()), "the subscription")
        for i in range(3):
            await c.publish("it.x", i)
        await asyncio.wait_for(task, DEADLINE)
        self.assertEqual(got, [0, 1, 2])

    async def test_async_with_subscribe(self):
        c = await self.aconnect()
        async with c.subscribe("cm") as sub:
            self.assertEqual(await c.publish("cm", 1, confirm=True), 1)
            self.assertEqual((await sub.next_msg(DEADLINE)).payload, 1)
        self.assertFalse(sub.active)
        self.assertEqual(await c.publish("cm", 2, confirm=True), 0)

    async def test_confirm_and_unsubscribe(self):
        c = await self.aconnect()
        self.assertEqual(await c.publish("n", 0, confirm=True), 0)
        sub = await c.subscribe("n")
        self.assertEqual(await c.publish("n", 0, confirm=True), 1)
        await sub.unsubscribe()
        self.assertEqual([m async for m in sub], [])
        self.assertEqual(await c.publish("n", 0, confirm=True), 0)
        await c.unsubscribe(sub)  # idempotent

    async def test_next_msg_timeout(self):
        c = await self.aconnect()
        sub = await c.subscribe("quiet")
        with self.assertRaises(TimeoutError):
            await sub.next_msg(0.05)

    async def test_close_ends_iteration(self):
        c = await self.aconnect()
        sub = await c.subscribe("x")
        task = asyncio.create_task(self._drain(sub))
        await c.publish("x", 1, confirm=True)
        await self.poll(lambda: sub.pending == 0, "the message taken")
        await c.close()
        got = await asyncio.wait_for(task, DEADLINE)
        self.assertEqual([m.payload for m in got], [1])

    @staticmethod
    async def _drain(sub):
        return [m async for m in sub]

    async def test_queue_group_and_retain(self):
        a, b = await self.aconnect(), await self.aconnect()
        qa = await a.subscribe("w", queue="g")
        qb = await b.subscribe("w", queue="g")
        for i in range(20):
            self.assertEqual(await a.publish("w", i, confirm=True), 1)
        await self.poll(lambda: qa.pending + qb.pending == 20, "all work")
        got = sorted([(await qa.next_msg(0)).payload for _ in range(qa.pending)]
                     + [(await qb.next_msg(0)).payload for _ in range(qb.pending)])
        self.assertEqual(got, list(range(20)))
        await a.publish("cfg", "v1", retain=True, confirm=True)
        sub = await b.subscribe("cfg")
        msg = await sub.next_msg(DEADLINE)
        self.assertEqual((msg.payload, msg.retained), ("v1", True))

    async def test_ping(self):
        c = await self.aconnect()
        self.assertGreaterEqual(await c.ping(), 0)


class RequestReply(AioBrokerCase):
    async def serve(self, c, pattern, fn):
        sub = await c.subscribe(pattern)

        async def loop():
            async for msg in sub:
                await c.reply(msg, fn(msg.payload), headers={"by": "aio"})
        return asyncio.create_task(loop())

    async def test_request(self):
        server, c = await self.aconnect(), await self.aconnect()
        task = await self.serve(server, "svc.echo", lambda p: {"echo": p})
        self.assertEqual(await c.request("svc.echo", [1], timeout=DEADLINE), {"echo": [1]})
        reply = await c.request_msg("svc.echo", 2, timeout=DEADLINE)
        self.assertEqual(reply.headers, {"by": "aio"})
        task.cancel()

    async def test_many_concurrent(self):
        server, c = await self.aconnect(), await self.aconnect()
        task = await self.serve(server, "svc.sq", lambda p: p * p)
        results = await asyncio.gather(*(c.request("svc.sq", i, timeout=DEADLINE)
                                         for i in range(100)))
        self.assertEqual(results, [i * i for i in range(100)])
        self.assertEqual(len([s for s in c._subs.values() if s.pattern.startswith("_INBOX.")]), 1)
        task.cancel()

    async def test_timeout(self):
        c = await self.aconnect()
        await c.subscribe("silent")  # someone gets it, nobody answers
        with self.assertRaises(TimeoutError) as cm:
            await c.request("silent", 1, timeout=0.2)
        self.assertIsInstance(cm.exception, pigeon.TimeoutError)
        self.assertGreaterEqual(await c.ping(), 0)

    async def test_no_responders_at_once(self):
        c = await self.aconnect()
        with self.assertRaises(pigeon.NoResponders) as cm:
            await c.request("nobody", 1, timeout=DEADLINE)
        self.assertIn("nobody", str(cm.exception))
        self.assertEqual(c._replies, {})
        self.assertGreaterEqual(await c.ping(), 0)

    async def test_reply_needs_reply_to(self):
        c = await self.aconnect()
        sub = await c.subscribe("plain")
        await c.publish("plain", 1)
        with self.assertRaises(pigeon.BadParams):
            await c.reply(await sub.next_msg(DEADLINE), 2)


class Payloads(AioBrokerCase):
    async def test_every_type_round_trip(self):
        c = await self.aconnect()
        sub = await c.subscribe("types")
        for name, value in EVERY_TYPE:
            await c.publish("types", value)
        for name, value in EVERY_TYPE:
            with self.subTest(name):
                msg = await sub.next_msg(DEADLINE)
                self.assertTrue(same(msg.payload, value), (name, msg.payload))

    async def test_raw(self):
        c = await self.aconnect()
        sub = await c.subscribe("raw", raw=True)
        odd = b"\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"  # 1.5, float64
        odd2 = b"\xcd\x00\x01"                          # 1 as a uint16
        await c.publish("raw", odd2, raw=True)
        self.assertEqual((await sub.next_msg(DEADLINE)).payload, odd2)
        await c.publish("raw", odd, raw=True)
        msg = await sub.next_msg(DEADLINE)
        self.assertEqual(msg.raw, odd)
        with self.assertRaises(pigeon.BadFrame):
            await c.publish("raw", b"\x92\x01", raw=True)

    async def test_large_and_too_large(self):
        c = await self.aconnect()
        sub = await c.subscribe("big")
        blob = os.urandom(c.max_payload - 64)
        await c.publish("big", blob)
        self.assertEqual((await sub.next_msg(DEADLINE)).payload, blob)
        with self.assertRaises(pigeon.TooLarge):
            await c.publish("big", blob + b"x" * 64)
        self.assertGreaterEqual(await c.ping(), 0)


class Errors(AioBrokerCase):
    BROKER = {"max_retained": 0, "max_subscriptions": 2}

    async def test_bad_topic_and_params(self):
        c = await self.aconnect()
        with self.assertRaises(pigeon.BadTopic):
            await c.publish("a..b", 1)
        with self.assertRaises(pigeon.BadTopic):
            await c.subscribe("a.>.b")
        with self.assertRaises(pigeon.BadParams):
            await c.subscribe("a", queue="x y")
        with self.assertRaises(pigeon.Forbidden):
            await c.publish("$SYS.x", 1)

    async def test_broker_errors(self):
        seen = []
        c = await self.aconnect(on_error=seen.append)
        with self.assertRaises(pigeon.LimitError):
            await c.publish("r", 1, retain=True, confirm=True)
        await c.subscribe("a")
        await c.subscribe("b")
        with self.assertRaises(pigeon.LimitError):
            await c.subscribe("c")
        await c.publish("r", 1, retain=True)
        await self.poll(lambda: seen, "the error notification")
        self.assertIsInstance(seen[0], pigeon.LimitError)


class Forgotten(AioBrokerCase):
    async def test_subscribe_never_awaited_warns(self):
        c = await self.aconnect()
        with self.assertWarnsRegex(RuntimeWarning, "never awaited"):
            c.subscribe("forgotten")
            gc.collect()
        self.assertEqual(await c.publish("forgotten", 1, confirm=True), 0)

    async def test_connect_never_awaited_warns(self):
        with self.assertWarnsRegex(RuntimeWarning, "never awaited"):
            aio.connect(self.broker.address())
            gc.collect()


class ConnectFailures(unittest.IsolatedAsyncioTestCase):
    async def test_nobody_listening(self):
        with self.assertRaises(pigeon.ConnectError) as cm:
            await aio.connect("127.0.0.1:%d" % support.free_port(), timeout=DEADLINE)
        self.assertIsInstance(cm.exception, ConnectionError)

    async def test_fatal_error_ends_subscription(self):
        def script(conn, unpacker):
            for frame in unpacker:
                pass
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                unpacker.feed(data)
                for frame in unpacker:
                    if frame[0] == 0 and frame[2] == "sub":
                        conn.sendall(msgpack.packb([1, frame[1], None, 5]))
                        conn.sendall(msgpack.packb([2, "msg", [5, "t", "hi"]]))
                        conn.sendall(msgpack.packb([2, "error", [10, "idle timeout"]]))
                        return
        fake = FakeBroker(script)
        c = await aio.connect(fake.address, timeout=DEADLINE)
        sub = await c.subscribe("t")
        self.assertEqual((await sub.next_msg(DEADLINE)).payload, "hi")
        with self.assertRaises(pigeon.ConnectionLost) as cm:
            await sub.next_msg(DEADLINE)
        self.assertIsInstance(cm.exception.reason, pigeon.LimitError)
        self.assertEqual(c.state, "lost")
        await c.close()
        fake.close()


if __name__ == "__main__":
    support.main()
