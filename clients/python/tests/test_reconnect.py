"""test_reconnect.py - both clients through broker restarts, outages and
keepalives.

A test that restarts the broker binds it to an explicit free port, so the
new pigeond listens where the old one did.  Nothing asserts on timing: each
test waits (polling, with generous deadlines) for the outcome it checks.
"""

import asyncio
import signal
import threading
import time
import unittest

import support
from support import DEADLINE, AioBrokerCase, Broker, BrokerCase, wait_for

import pigeon
from pigeon import aio

FAST = pigeon.Backoff(initial=0.02, max_delay=0.5)


def on_port(port):
    """LISTENERS for one TCP listener on PORT."""
    return {"main": {"bind": "127.0.0.1:%d" % port}}


class FixedPort(BrokerCase):
    def setUp(self):
        self.LISTENERS = on_port(support.free_port())
        super().setUp()


class AioFixedPort(AioBrokerCase):
    def setUp(self):
        self.LISTENERS = on_port(support.free_port())
        super().setUp()


# ------------------------------------------------------------ blocking ----

class ServerDownAtConnect(unittest.TestCase):
    def test_without_reconnect_fails_at_once(self):
        with self.assertRaises(pigeon.ConnectError):
            pigeon.connect("127.0.0.1:%d" % support.free_port(), timeout=DEADLINE)

    def test_max_attempts(self):
        with self.assertRaises(pigeon.ConnectError) as cm:
            pigeon.connect("127.0.0.1:%d" % support.free_port(), reconnect=True,
                           max_attempts=3, backoff=FAST, timeout=DEADLINE)
        self.assertIn("refused", str(cm.exception))

    def test_with_reconnect_connects_once_the_broker_appears(self):
        port = support.free_port()
        result = {}

        def connect():
            try:
                result["client"] = pigeon.connect("127.0.0.1:%d" % port, reconnect=True,
                                                  backoff=FAST, timeout=DEADLINE)
            except Exception as e:  # reported below
                result["error"] = e
        t = threading.Thread(target=connect)
        t.start()
        time.sleep(0.3)  # let a few attempts fail (the test passes either way)
        broker = Broker(listeners=on_port(port)).start()
        try:
            t.join(DEADLINE)
            self.assertFalse(t.is_alive())
            self.assertNotIn("error", result)
            c = result["client"]
            self.assertGreaterEqual(c.ping(), 0)
            c.close()
        finally:
            broker.close()


class Restart(FixedPort):
    def test_subscription_resumes(self):
        c = self.connect(reconnect=True, backoff=FAST)
        sub = c.subscribe("feed.>")
        q = c.subscribe("jobs", queue="workers")
        c.publish("feed.a", "before")
        self.assertEqual(sub.next_msg(DEADLINE).payload, "before")
        sid, first_id = sub.sid, c.client_id

        self.restart_broker()
        wait_for(lambda: c.reconnects >= 1 and c.is_connected, what="the reconnect")

        p = self.connect()
        wait_for(lambda: p.publish("feed.b", "after", confirm=True) == 1,
                 what="the subscription re-made")
        msg = sub.next_msg(DEADLINE)
        self.assertEqual((msg.payload, msg.sid), ("after", sid))
        self.assertIs(msg.subscription, sub)
        self.assertEqual(p.publish("jobs", 1, confirm=True), 1)  # the queue group too
        self.assertEqual(q.next_msg(DEADLINE).payload, 1)
        self.assertTrue(sub.active)
        self.assertIsInstance(c.client_id, int)
        self.assertIsNotNone(first_id)

    def test_iterator_survives_sigterm_restart(self):
        c = self.connect(reconnect=True, backoff=FAST)
        sub = c.subscribe("t")
        got = []
        t = threading.Thread(target=lambda: got.extend(m.payload for m in sub))
        t.start()
        self.restart_broker(signal.SIGTERM)
        p = self.connect()
        wait_for(lambda: p.publish("t", "x", confirm=True) == 1, what="re-subscribed")
        wait_for(lambda: got == ["x"], what="the message through the iterator")
        c.close()
        t.join(DEADLINE)
        self.assertFalse(t.is_alive())

    def test_requests_after_restart(self):
        server = self.connect(reconnect=True, backoff=FAST)
        svc = server.subscribe("svc.echo")

        def serve():
            for msg in svc:
                server.reply(msg, msg.payload)
        threading.Thread(target=serve, daemon=True).start()
        c = self.connect(reconnect=True, backoff=FAST)
        self.assertEqual(c.request("svc.echo", 1, timeout=DEADLINE), 1)
        self.restart_broker()
        wait_for(lambda: c.reconnects and server.reconnects and c.is_connected
                 and server.is_connected, what="both reconnected")
        # The responder's subscription is re-made asynchronously: retry until
        # it is (each try is a fresh request on the re-made inbox).
        wait_for(lambda: self._try_request(c), what="a reply after the restart")

    @staticmethod
    def _try_request(c):
        try:
            return c.request("svc.echo", 2, timeout=0.5) == 2
        except (TimeoutError, pigeon.NoResponders):
            return False

    def test_publications_buffered_while_down(self):
        c = self.connect(reconnect=True, backoff=FAST)
        sub = c.subscribe("buf")
        self.broker.stop(signal.SIGKILL)
        wait_for(lambda: c.state == "reconnecting", what="the loss noticed")
        for i in range(10):
            self.assertIsNone(c.publish("buf", i))
        sub2 = c.subscribe("buf.more")  # made on the new connection
        self.broker.log.close()
        self.broker.start()
        # Subscriptions are re-made before the buffer is flushed: the client
        # receives its own buffered publications, in order.
        self.assertEqual([sub.next_msg(DEADLINE).payload for _ in range(10)], list(range(10)))
        self.assertEqual(c.publish("buf.more", 1, confirm=True), 1)
        self.assertEqual(sub2.next_msg(DEADLINE).payload, 1)

    def test_unsubscribed_while_down_is_not_made_again(self):
        c = self.connect(reconnect=True, backoff=FAST)
        gone, kept = c.subscribe("gone"), c.subscribe("kept")
        self.broker.stop(signal.SIGKILL)
        wait_for(lambda: c.state == "reconnecting", what="the loss noticed")
        gone.unsubscribe()
        self.broker.log.close()
        self.broker.start()
        self.assertEqual(c.publish("kept", 1, confirm=True, timeout=DEADLINE), 1)
        self.assertEqual(c.publish("gone", 1, confirm=True), 0)
        self.assertEqual(kept.next_msg(DEADLINE).payload, 1)
        self.assertEqual(list(gone), [])

    def test_refused_on_the_new_broker(self):
        """A subscription the new broker refuses ends with the broker's error;
        the others carry on."""
        c = self.connect(reconnect=True, backoff=FAST)
        first, second = c.subscribe("one"), c.subscribe("two")
        self.broker.write_config({"max_subscriptions": 1}, self.LISTENERS)
        self.restart_broker()
        with self.assertRaises(pigeon.LimitError):
            second.next_msg(DEADLINE)
        self.assertFalse(second.active)
        self.assertEqual(c.publish("one", 1, confirm=True, timeout=DEADLINE), 1)
        self.assertEqual(first.next_msg(DEADLINE).payload, 1)

    def test_calls_wait_for_the_reconnect(self):
        c = self.connect(reconnect=True, backoff=FAST)
        c.subscribe("w")
        self.broker.stop(signal.SIGKILL)
        wait_for(lambda: c.state == "reconnecting", what="the loss noticed")
        with self.assertRaises(TimeoutError):
            c.ping(timeout=0.1)  # nobody there yet
        self.broker.log.close()
        self.broker.start()
        self.assertEqual(c.publish("w", 1, confirm=True, timeout=DEADLINE), 1)
        self.assertGreaterEqual(c.ping(timeout=DEADLINE), 0)

    def test_buffer_full_raises(self):
        c = self.connect(reconnect=True, backoff=FAST, max_buffer=1000)
        self.broker.stop(signal.SIGKILL)
        wait_for(lambda: c.state == "reconnecting", what="the loss noticed")
        with self.assertRaises(pigeon.BufferFull):
            for _ in range(100):
                c.publish("x", b"y" * 100)

    def test_buffer_full_drops(self):
        c = self.connect(reconnect=True, backoff=FAST, max_buffer=1000, buffer_full="drop")
        self.broker.stop(signal.SIGKILL)
        wait_for(lambda: c.state == "reconnecting", what="the loss noticed")
        for _ in range(100):
            c.publish("x", b"y" * 100)
        self.assertGreater(c.dropped_publishes, 80)

    def test_request_in_flight_fails_fast(self):
        c = self.connect(reconnect=True, backoff=FAST)
        c.subscribe("keep")  # delivered to, never answered
        result = {}

        def ask():
            try:
                c.request("keep", 1, timeout=DEADLINE * 4)
            except Exception as e:
                result["error"] = e
        t = threading.Thread(target=ask)
        t.start()
        wait_for(lambda: c._replies and all(call.conn is not None for call in c._replies.values()),
                 what="the request sent")
        self.broker.stop(signal.SIGKILL)
        t.join(DEADLINE * 2)
        self.assertIsInstance(result.get("error"), pigeon.ConnectionLost)

    def test_without_reconnect_the_iterator_raises(self):
        c = self.connect()
        sub = c.subscribe("t")
        self.broker.stop(signal.SIGKILL)
        with self.assertRaises(pigeon.ConnectionLost):
            sub.next_msg(DEADLINE)
        self.assertEqual(c.state, "lost")
        with self.assertRaises(pigeon.ConnectionLost):
            c.publish("t", 1)
        with self.assertRaises(pigeon.ConnectionLost):
            c.subscribe("t")

    def test_gives_up_after_max_attempts(self):
        c = self.connect(reconnect=True, backoff=FAST, max_attempts=2)
        sub = c.subscribe("t")
        self.broker.stop(signal.SIGKILL)
        with self.assertRaises(pigeon.ConnectionLost) as cm:
            sub.next_msg(DEADLINE)
        self.assertIn("gave up", str(cm.exception))
        self.assertEqual(c.state, "lost")


class Keepalive(BrokerCase):
    BROKER = {"idle_timeout": "2s"}

    def test_pings_keep_an_idle_client(self):
        c = self.connect(ping_interval=0.1)
        sub = c.subscribe("idle")
        first = c.client_id
        # Three idle timeouts' worth of silence from the program.
        end = time.monotonic() + 6
        while time.monotonic() < end:
            time.sleep(0.2)
        self.assertTrue(c.is_connected)
        self.assertEqual((c.client_id, c.reconnects), (first, 0))
        c.publish("idle", 1)
        self.assertEqual(sub.next_msg(DEADLINE).payload, 1)

    def test_idle_timeout_without_pings(self):
        c = self.connect(ping_interval=None)
        sub = c.subscribe("idle")
        with self.assertRaises(pigeon.ConnectionLost) as cm:
            sub.next_msg(DEADLINE)
        self.assertIsInstance(cm.exception.reason, pigeon.LimitError)


class DeadBroker(FixedPort):
    def test_silent_broker_is_detected(self):
        """A broker that stops answering (SIGSTOP) is noticed by the
        keepalive's missing pong; the client reconnects when it is back."""
        c = self.connect(reconnect=True, backoff=FAST, ping_interval=0.1, timeout=1.0)
        sub = c.subscribe("t")
        self.broker.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: c.state == "reconnecting", what="the dead connection noticed")
        finally:
            self.broker.send_signal(signal.SIGCONT)
        wait_for(lambda: c.is_connected and c.reconnects >= 1, what="the reconnect")
        p = self.connect()
        wait_for(lambda: p.publish("t", "back", confirm=True) >= 1, what="re-subscribed")
        self.assertEqual(sub.next_msg(DEADLINE).payload, "back")


# ------------------------------------------------------------- asyncio ----

class AioServerDown(unittest.IsolatedAsyncioTestCase):
    async def test_without_reconnect(self):
        with self.assertRaises(pigeon.ConnectError):
            await aio.connect("127.0.0.1:%d" % support.free_port(), timeout=DEADLINE)

    async def test_with_reconnect_connects_once_the_broker_appears(self):
        port = support.free_port()
        task = asyncio.create_task(self._connect(port))
        await asyncio.sleep(0.3)
        broker = Broker(listeners=on_port(port)).start()
        try:
            c = await asyncio.wait_for(task, DEADLINE)
            self.assertGreaterEqual(await c.ping(), 0)
            await c.close()
        finally:
            broker.close()

    @staticmethod
    async def _connect(port):
        return await aio.connect("127.0.0.1:%d" % port, reconnect=True, backoff=FAST,
                                 timeout=DEADLINE)


class AioRestart(AioFixedPort):
    async def test_subscription_resumes(self):
        c = await self.aconnect(reconnect=True, backoff=FAST)
        sub = await c.subscribe("feed.>")
        got = []

        async def consume():
            async for msg in sub:
                got.append(msg)
        task = asyncio.create_task(consume())
        self.restart_broker()
        await self.poll(lambda: c.reconnects >= 1 and c.is_connected, "the reconnect")
        p = await self.aconnect()
        while await p.publish("feed.x", "after", confirm=True) != 1:
            await asyncio.sleep(0.02)
        await self.poll(lambda: got, "the message")
        self.assertEqual((got[0].payload, got[0].sid), ("after", sub.sid))
        await c.close()
        await asyncio.wait_for(task, DEADLINE)

    async def test_publications_buffered_while_down(self):
        c = await self.aconnect(reconnect=True, backoff=FAST)
        sub = await c.subscribe("buf")
        self.broker.stop(signal.SIGKILL)
        await self.poll(lambda: c.state == "reconnecting", "the loss noticed")
        for i in range(10):
            await c.publish("buf", i)
        self.broker.log.close()
        self.broker.start()
        self.assertEqual([(await sub.next_msg(DEADLINE)).payload for _ in range(10)],
                         list(range(10)))
        self.assertGreaterEqual(await c.ping(timeout=DEADLINE), 0)

    async def test_requests_after_restart(self):
        server = await self.aconnect(reconnect=True, backoff=FAST)
        svc = await server.subscribe("svc.echo")

        async def serve():
            async for msg in svc:
                await server.reply(msg, msg.payload)
        task = asyncio.create_task(serve())
        c = await self.aconnect(reconnect=True, backoff=FAST)
        self.assertEqual(await c.request("svc.echo", 1, timeout=DEADLINE), 1)
        self.restart_broker()
        await self.poll(lambda: c.reconnects and server.reconnects and c.is_connected
                        and server.is_connected, "both reconnected")
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while True:
            try:
                self.assertEqual(await c.request("svc.echo", 2, timeout=0.5), 2)
                break
            except (TimeoutError, pigeon.NoResponders):
                self.assertLess(loop.time(), end, "no reply after the restart")
        task.cancel()

    async def test_buffer_full(self):
        c = await self.aconnect(reconnect=True, backoff=FAST, max_buffer=1000)
        self.broker.stop(signal.SIGKILL)
        await self.poll(lambda: c.state == "reconnecting", "the loss noticed")
        with self.assertRaises(pigeon.BufferFull):
            for _ in range(100):
                await c.publish("x", b"y" * 100)

    async def test_without_reconnect_the_iterator_raises(self):
        c = await self.aconnect()
        sub = await c.subscribe("t")
        self.broker.stop(signal.SIGKILL)
        with self.assertRaises(pigeon.ConnectionLost):
            await sub.next_msg(DEADLINE)
        self.assertEqual(c.state, "lost")
        with self.assertRaises(pigeon.ConnectionLost):
            await c.publish("t", 1)


class AioKeepalive(AioBrokerCase):
    BROKER = {"idle_timeout": "2s"}

    async def test_pings_keep_an_idle_client(self):
        c = await self.aconnect(ping_interval=0.1)
        first = c.client_id
        await asyncio.sleep(6)
        self.assertTrue(c.is_connected)
        self.assertEqual((c.client_id, c.reconnects), (first, 0))

    async def test_idle_timeout_without_pings(self):
        c = await self.aconnect(ping_interval=None)
        sub = await c.subscribe("idle")
        with self.assertRaises(pigeon.ConnectionLost) as cm:
            await sub.next_msg(DEADLINE)
        self.assertIsInstance(cm.exception.reason, pigeon.LimitError)


if __name__ == "__main__":
    support.main()
