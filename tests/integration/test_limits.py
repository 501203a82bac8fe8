"""test_limits.py - the broker's limits, and the load that tests them.

Slow consumers (100 MB published to a subscriber that never reads, under
both policies), a client that pipelines requests without reading the
responses, max_payload, max_connections, max_subscriptions (per connection
and broker-wide), idle_timeout,
and 10,000 clients connecting at once.  Memory is checked through the
broker's VmRSS.

This file runs alone (is_parallel: false in meson.build): the floods and
the 10,000 connections would starve the other files' brokers.
"""

import os
import resource
import selectors
import socket
import struct
import time
import unittest

import harness
from harness import LIMIT, SLOW_CONSUMER, TOO_LARGE, BrokerTest, pub_frame_raw, request_frame

MB = 1024 * 1024
CHUNK = 64 * 1024                 # payload bytes per flood message
FLOOD = 100 * MB                  # bytes published per flood
WINDOW = 24                       # flood messages the fast subscriber may lag behind


def rss_bound_kib(max_outbound, base_kib):
    """The most RSS a broker may use while one client's queue is full.

    Twice the outbound limit plus 30 MB, over what the broker used before.
    Under ASan freed memory sits in quarantine first: the brokers of this
    file run with a 16 MB one (ASAN below) and are given 32 MB more.
    """
    slack = 30 * MB + (32 * MB if harness.SANITIZED else 0)
    return base_kib + (2 * max_outbound + slack) // 1024


ASAN = harness.asan_env(quarantine_size_mb=16) if harness.SANITIZED else None


class LimitsTest(BrokerTest):
    """Brokers of this file: small ASan quarantine, so RSS means something."""

    ENV = ASAN


# ------------------------------------------------------------ slow consumers

class Flood:
    """Publishes FLOOD bytes to 'flood' while a fast subscriber keeps up.

    The publisher never lets the fast subscriber fall more than WINDOW
    messages behind, so only the subscriber that does not read at all can
    pass max_outbound.  A ping round trip on another connection every 50
    messages shows the broker still serves others.  Returns (sequence numbers
    the fast subscriber got, peak RSS in KiB, RSS before the flood).
    """

    MAX_OUTBOUND = 8 * MB

    def run_flood(self, fast, pinger, pub):
        b = self.broker
        base = b.rss_kib()
        peak = base
        body = bytes(CHUNK - 8)
        n = FLOOD // CHUNK
        seqs = []

        def drain():
            for m in fast.messages:
                seqs.append(struct.unpack(">Q", m[2][:8])[0])
            fast.messages.clear()

        sent = 0
        while sent < n:
            while sent < n and sent - len(seqs) < WINDOW:
                payload = b"\xc6" + struct.pack(">I", CHUNK) + struct.pack(">Q", sent) + body
                pub.send_raw(pub_frame_raw("flood", payload))
                sent += 1
                if sent % 50 == 0:
                    pinger.assert_pong()
            fast.pump_until(lambda: (drain() or True) and sent - len(seqs) < WINDOW // 2,
                            what="the fast subscriber (%d of %d)" % (len(seqs), sent))
            peak = max(peak, b.rss_kib())
        fast.pump_until(lambda: (drain() or True) and len(seqs) >= n, what="the flood's end")
        peak = max(peak, b.rss_kib())
        return seqs, peak, base

    def start_flood(self):
        slow = self.client(rcvbuf=64 * 1024)
        slow_sid = slow.sub("flood")
        fast = self.client()
        fast.sub("flood")
        pinger = self.client()
        pub = self.client()
        seqs, peak, base = self.run_flood(fast, pinger, pub)
        n = FLOOD // CHUNK
        self.assertEqual(seqs, list(range(n)), "the reading subscriber lost or reordered messages")
        self.assertLess(peak, rss_bound_kib(self.MAX_OUTBOUND, base),
                        "pigeond's RSS reached %d KiB (was %d KiB before the flood)" % (peak, base))
        return slow, slow_sid, pinger, pub

    @staticmethod
    def slow_seqs(slow):
        return [struct.unpack(">Q", m[2][:8])[0] for m in slow.messages]


class SlowConsumerDisconnect(Flood, LimitsTest):
    BROKER = {"max_outbound": "8mb", "slow_consumer": "disconnect", "drain_timeout": "10m",
              "log_level": "info"}

    def test_flood_disconnects_slow_subscriber(self):
        slow, sid, pinger, pub = self.start_flood()
        self.broker.wait_log(r"slow consumer, disconnecting")
        # Now read: what was queued, then error 9, then the end.
        slow.wait_closed(timeout=harness.DEADLINE * 2)
        self.assertEqual(slow.errors[0][0], SLOW_CONSUMER)
        self.assertEqual(len(slow.errors), 1)
        self.assertEqual(slow.frames[-1][:2], [harness.NOTIFICATION, "error"])
        seqs = self.slow_seqs(slow)
        self.assertGreater(len(seqs), 0)
        self.assertLess(len(seqs), FLOOD // CHUNK)
        self.assertEqual(seqs, list(range(len(seqs))), "messages before the disconnect were lost")
        self.assertEqual(pinger.ping(), "pong")
        self.assertEqual(pub.pub("flood", 1), 1)  # only the fast subscriber is left


class SlowConsumerDrop(Flood, LimitsTest):
    BROKER = {"max_outbound": "8mb", "slow_consumer": "drop", "log_level": "info"}

    def test_flood_drops_for_slow_subscriber(self):
        slow, sid, pinger, pub = self.start_flood()
        self.broker.wait_log(r"slow consumer, dropping messages")
        # While it drops, a pub request does not count it (docs/protocol.md):
        # 900 KiB cannot fit where a 64 KiB message did not.
        self.assertEqual(pub.pub("flood", b"\xff" * (900 * 1024)), 1)
        # The slow subscriber is still connected: a ping comes back after
        # everything that was queued for it.
        slow.assert_pong()
        self.assertFalse(slow.closed)
        self.assertEqual([e[0] for e in slow.errors], [SLOW_CONSUMER], "error 9 exactly once")
        seqs = self.slow_seqs(slow)
        self.assertGreater(len(seqs), 0)
        self.assertLess(len(seqs), FLOOD // CHUNK, "nothing was dropped")
        self.assertEqual(seqs, sorted(set(seqs)), "kept messages out of order or repeated")
        # The episode is over once it has drained: it gets messages again.
        slow.messages.clear()
        self.assertEqual(pub.pub("flood", "after"), 2)
        slow.wait_messages(1)
        self.assertEqual(slow.messages, [[sid, "flood", "after"]])
        # The drops were counted: the disconnect line reports them.
        cid = slow.hello_result["client_id"]
        slow.close()
        m = self.broker.wait_log(r"client %d \(.*\) disconnected: .* dropped (\d+)," % cid)
        self.assertEqual(int(m.group(1)), FLOOD // CHUNK - len(seqs) + 1)  # + the 900 KiB one


class PipelinedRequests(LimitsTest):
    BROKER = {"max_outbound": "1mb", "log_level": "info"}

    def test_client_not_reading_responses_stops_being_read(self):
        b = self.broker
        c = self.client(hello=False, rcvbuf=64 * 1024)
        other = self.client()
        s = self.client()
        s_sid = s.sub("others")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
        ping = request_frame(1, "ping", [])           # 9 bytes
        c.sock.sendall(ping)                          # learn the response's size
        pong = b""
        while not harness.frames_of(pong):
            pong += c.sock.recv(64)
        self.assertEqual(harness.unpack(pong), [1, 1, None, "pong"])
        pong_len = len(pong)
        c.sock.setblocking(False)
        block = memoryview(ping * (MB // len(ping)))
        cap = 200 * MB
        base = peak = b.rss_kib()
        sent = off = 0
        stalled_since = None
        checks = 0
        sel = selectors.DefaultSelector()
        sel.register(c.sock, selectors.EVENT_WRITE)
        while sent < cap:
            try:
                k = c.sock.send(block[off:])
                sent += k
                off = (off + k) % len(block)
                stalled_since = None
                continue
            except BlockingIOError:
                pass
            now = time.monotonic()
            if stalled_since is None:
                stalled_since = now
                # While it is blocked, the broker serves everyone else.
                other.assert_pong()
                s.messages.clear()
                self.assertEqual(other.pub("others", checks), 1)
                s.wait_messages(1)
                self.assertEqual(s.messages, [[s_sid, "others", checks]])
                checks += 1
                peak = max(peak, b.rss_kib())
            elif now - stalled_since > 3:
                break  # three seconds without taking a byte: no longer read
            sel.select(0.2)
        sel.close()
        self.assertLess(sent, cap, "pigeond kept reading requests whose responses were not read")
        peak = max(peak, b.rss_kib())
        self.assertLess(peak, rss_bound_kib(MB, base))
        self.assertEqual(other.ping(), "pong")
        # Every whole request is answered once the client reads, in order.
        c.sock.setblocking(True)
        c.sock.settimeout(harness.DEADLINE)
        want = (sent // len(ping)) * pong_len
        got = 0
        first = b""
        while got < want:
            data = c.sock.recv(4 * MB)
            self.assertTrue(data, "closed after %d of %d response bytes" % (got, want))
            if len(first) < pong_len:
                first += data[:pong_len]
            got += len(data)
        self.assertEqual(got, want)
        self.assertEqual(harness.unpack(first[:pong_len]), [1, 1, None, "pong"])
        # And it is read again: the rest of the request cut short, then one more.
        rest = -sent % len(ping)
        c.sock.sendall(ping[len(ping) - rest:] + request_frame(77, "ping", []))
        frames = []
        data = b""
        while len(frames) < (2 if rest else 1):
            data += c.sock.recv(64)
            frames = harness.frames_of(data)
        self.assertEqual(frames[-1], [1, 77, None, "pong"])
        if rest:
            self.assertEqual(frames[0], [1, 1, None, "pong"])


class QueueGroupSlowMember(LimitsTest):
    BROKER = {"max_outbound": "1mb", "slow_consumer": "disconnect", "log_level": "info"}

    def test_full_member_is_passed_over(self):
        # A group member whose queue is full is passed over for one with room,
        # so a group with one stuck member loses nothing and nobody is cut off.
        slow = self.client(rcvbuf=64 * 1024)
        fast = self.client()
        pace = self.client()   # a plain subscriber: the publisher keeps pace with it
        slow.request("sub", "qg", {"queue": "g"})
        fast.request("sub", "qg", {"queue": "g"})
        pace.sub("qg")
        p = self.client()
        n, size, window = 1000, 32 * 1024, 12  # 32 MB: far more than the stuck member can hold
        sent = 0
        while sent < n:
            while sent < n and sent - len(pace.messages) < window:
                p.send_raw(pub_frame_raw("qg", b"\xc5" + struct.pack(">H", size) + struct.pack(">I", sent) +
                                         bytes(size - 4)))
                sent += 1
            pace.pump_until(lambda: sent - len(pace.messages) < window // 2, what="the pace subscriber")
            fast.pump_available()
        self.assertEqual(p.pub("qg", "end"), 2)
        pace.wait_messages(n + 1)
        slow.sync()
        fast.sync()
        self.assertEqual(slow.errors + fast.errors, [])
        seq = lambda c: [struct.unpack(">I", m[2][:4])[0] for m in c.messages if m[2] != "end"]
        got = sorted(seq(slow) + seq(fast))
        self.assertEqual(got, list(range(n)), "a message was lost or delivered twice")
        self.assertLess(len(seq(slow)), n // 2, "the full member was not passed over")
        self.assertEqual(self.broker.log_count(r"slow consumer"), 0)


class RetainedReplayOverOutbound(LimitsTest):
    BROKER = {"max_outbound": "1mb", "max_retained": "128mb", "log_level": "info"}

    # A replay larger than max_outbound is paced by the output draining: a
    # subscriber that reads gets all of it, and is no slow consumer.
    def test_replay_larger_than_max_outbound(self):
        p = self.client()
        for i in range(40):
            p.pub("rr.%d" % i, b"x" * 60000, retain=True)
        c = self.client()
        c.sub("rr.>")
        c.wait_messages(40)
        c.sync()
        self.assertEqual(c.errors, [])
        self.assertEqual(sorted(m[1] for m in c.messages), sorted("rr.%d" % i for i in range(40)))
        self.assertTrue(all(m[3] == {"retained": True} for m in c.messages))
        self.assertEqual(self.broker.log_count(r"slow consumer"), 0)

    # A value replaced while the replay waits goes out live, and the stale
    # one is not sent after it.  36 MB of replay cannot all sit in socket
    # buffers, so most of it is still waiting when every value is replaced.
    def test_replaced_value_is_not_replayed_stale(self):
        p = self.client()
        n, size = 40, 900000
        for i in range(n):
            p.pub("rs.%02d" % i, b"old" + b"x" * size, retain=True)
        c = self.client()
        sid = c.request("sub", "rs.>")  # then not read for a while
        for i in range(n):
            self.assertEqual(p.pub("rs.%02d" % i, b"new", retain=True), 1)
        c.pump_until(lambda: sum(1 for m in c.messages if m[2] == b"new") == n,
                     what="every live value")
        c.sync()
        per_topic = {}
        for m in c.messages:
            self.assertEqual(m[0], sid)
            retained = len(m) > 3 and m[3].get("retained", False)
            per_topic.setdefault(m[1], []).append((m[2][:3], retained))
        skipped = 0
        for i in range(n):
            seq = per_topic["rs.%02d" % i]
            # The live value is the last word; a replay may only precede it.
            self.assertEqual(seq[-1], (b"new", False))
            self.assertIn(seq[:-1], ([], [(b"old", True)]))
            skipped += seq[:-1] == []
        self.assertGreater(skipped, n // 2, "stale replays were sent after live values")

    # Unsubscribing, or leaving, with a replay waiting frees it cleanly.
    def test_unsub_and_close_with_replay_waiting(self):
        p = self.client()
        for i in range(40):
            p.pub("ru.%d" % i, b"x" * 60000, retain=True)
        c = self.client()
        sid = c.request("sub", "ru.>")
        c2 = self.client()
        c2.request("sub", "ru.>")
        self.assertTrue(c.request("unsub", sid))
        c2.close()
        self.assertEqual(p.ping(), "pong")


# ------------------------------------------------------------ static limits

class MaxPayload(LimitsTest):
    BROKER = {"max_payload": "4k"}

    def frame_of_size(self, size, msgid):
        head = pub_frame_raw("mp", b"", msgid=msgid)
        n = size - len(head) - 3  # a bin16 header
        frame = pub_frame_raw("mp", b"\xc5" + struct.pack(">H", n) + b"p" * n, msgid=msgid)
        self.assertEqual(len(frame), size)
        return frame

    def test_exactly_at_limit_is_accepted(self):
        s = self.client()
        s.sub("mp")
        p = self.client()
        self.assertEqual(p.hello_result["max_payload"], 4096)
        p.send_raw(self.frame_of_size(4096, 3))
        self.assertEqual(p.wait_response(3), (None, 1))
        s.wait_messages(1)
        self.assertEqual(len(s.messages[0][2]), 4096 - len(pub_frame_raw("mp", b"", msgid=3)) - 3)

    def test_one_byte_over_is_fatal(self):
        s = self.client()
        s.sub("mp")
        p = self.client()
        p.try_send_raw(self.frame_of_size(4097, 3))
        p.wait_closed()
        self.assertEqual([e[0] for e in p.errors], [TOO_LARGE])
        self.assertNotIn(3, p.responses)
        s.sync()
        self.assertEqual(s.messages, [])


class MaxConnections(LimitsTest):
    BROKER = {"max_connections": 3}

    def test_extra_connection_gets_error_10(self):
        a = self.client()
        self.client()
        self.client()
        extra = self.raw_socket()
        frames = harness.frames_of(harness.read_until_closed(extra))
        self.assertEqual(len(frames), 1)
        self.assertEqual(frames[0][:2], [harness.NOTIFICATION, "error"])
        self.assertEqual(frames[0][2][0], LIMIT)
        self.assertEqual(a.ping(), "pong")
        # A place frees up when one leaves.
        a.close()

        def connects():
            try:
                c = self.broker.client()
            except (AssertionError, OSError):
                return None
            self.clients.append(c)
            return c
        c = harness.wait_for(connects, what="a connection to be accepted again")
        self.assertEqual(c.ping(), "pong")


class MaxSubscriptions(LimitsTest):
    BROKER = {"max_subscriptions_per_connection": 3}

    def test_limit_per_connection(self):
        c = self.client()
        sids = [c.sub("s.%d" % i) for i in range(3)]
        code, _ = c.request_error("sub", "s.x")
        self.assertEqual(code, LIMIT)
        self.assertEqual(c.request_error("sub", "s.y", {"queue": "q"})[0], LIMIT)
        self.assertEqual(c.ping(), "pong")
        # The failed sub made no subscription; the others still deliver.
        p = self.client()
        self.assertEqual(p.pub("s.x", 1), 0)
        self.assertEqual(p.pub("s.0", 1), 1)
        # Another connection has its own count; an unsub frees a place.
        self.assertIsInstance(p.sub("s.x"), int)
        c.unsub(sids[0])
        self.assertIsInstance(c.sub("s.x"), int)


class MaxSubscriptionsBroker(LimitsTest):
    BROKER = {"max_subscriptions": 5}

    def test_limit_over_all_connections(self):
        a, b = self.client(), self.client()
        sids = [a.sub("a.%d" % i) for i in range(3)] + [b.sub("b.%d" % i) for i in range(2)]
        self.assertEqual(len(sids), 5)
        code, why = b.request_error("sub", "b.x")
        self.assertEqual(code, LIMIT)
        self.assertIn("max_subscriptions", why)
        self.assertEqual(a.request_error("sub", "a.x", {"queue": "q"})[0], LIMIT)
        # A place freed on one connection is another's to take.
        a.unsub(sids[0])
        self.assertIsInstance(b.sub("b.x"), int)
        self.assertEqual(a.request_error("sub", "a.x")[0], LIMIT)
        # A closed connection gives back all of its places.
        a.close()
        b.pump_until(lambda: self.broker.log_count(r"disconnected: closed by client") >= 1,
                     what="a's close")
        self.assertIsInstance(b.sub("b.y"), int)
        self.assertIsInstance(b.sub("b.z"), int)


class IdleTimeout(LimitsTest):
    BROKER = {"idle_timeout": "2s", "log_level": "info"}

    def test_silent_client_closed_pinging_client_survives(self):
        silent = self.client()
        busy = self.client()
        cid = silent.hello_result["client_id"]
        end = time.monotonic() + harness.DEADLINE
        while not silent.closed:
            self.assertLess(time.monotonic(), end, "the silent client was not closed")
            busy.assert_pong()
            silent.pump_for(0.2)
        self.assertEqual([e[0] for e in silent.errors], [LIMIT])
        self.assertEqual(busy.ping(), "pong")
        self.broker.wait_log(r"client %d \(.*\) disconnected: idle timeout" % cid)


# -------------------------------------------------------------- many clients

class TenThousandClients(LimitsTest):
    N = 10000
    BROKER = {"max_connections": 12000, "log_level": "info"}

    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < self.N + 500:
            self.skipTest("ulimit -n %d is too low for %d clients" % (hard, self.N))
        if soft != resource.RLIM_INFINITY and soft < self.N + 500:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        super().setUp()

    def test_10k_clients_at_once(self):
        host, port = self.broker.address().rsplit(":", 1)
        addr = (host, int(port))
        ping = request_frame(1, "ping", [])
        pong = [1, 1, None, "pong"]
        sel = selectors.DefaultSelector()
        socks = {}
        bufs = {}
        done = 0
        retries = 0

        def start(i):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(addr)
            self.assertIn(err, (0, 115), os.strerror(err))  # EINPROGRESS
            socks[i] = s
            bufs[i] = b""
            sel.register(s, selectors.EVENT_WRITE, i)

        try:
            for i in range(self.N):
                start(i)
            end = time.monotonic() + harness.DEADLINE * 4
            while done < self.N:
                self.assertLess(time.monotonic(), end, "%d of %d clients got pong" % (done, self.N))
                for key, ev in sel.select(1.0):
                    i, s = key.data, key.fileobj
                    if ev & selectors.EVENT_WRITE:
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            # The kernel's accept queue overflowed: try again.
                            sel.unregister(s)
                            s.close()
                            retries += 1
                            self.assertLess(retries, self.N, "connections keep failing: %s" % os.strerror(err))
                            start(i)
                            continue
                        s.send(ping)
                        sel.modify(s, selectors.EVENT_READ, i)
                        continue
                    data = s.recv(4096)
                    self.assertTrue(data, "client %d was closed: %r" % (i, harness.frames_of(bufs[i])))
                    bufs[i] += data
                    frames = harness.frames_of(bufs[i])
                    if frames:
                        self.assertEqual(frames, [pong])
                        sel.unregister(s)
                        done += 1
            # A newcomer is served while they are all connected.
            c = self.client()
            self.assertEqual(c.ping(), "pong")
            rss_all = self.broker.rss_kib()
        finally:
            sel.close()
            for s in socks.values():
                s.close()
        # All of them close; the broker notices every one and is still fine.
        self.broker.wait_log(r"disconnected: closed by client", count=self.N, timeout=harness.DEADLINE * 4)
        self.assertEqual(c.ping(), "pong")
        d = self.client()
        self.assertEqual(d.ping(), "pong")
        self.assertGreater(rss_all, 0)


if __name__ == "__main__":
    harness.main()
