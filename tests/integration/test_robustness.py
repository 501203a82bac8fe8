"""test_robustness.py - hostile and unlucky input, and the other listeners.

Garbage, frames split at every byte boundary, clients that vanish in the
middle of a frame or reset the connection, a publisher that is its own slow
consumer, running out of descriptors, client text in the log, random frames
from many clients at once; then the Unix socket listener (mode, stale file,
a file that is not a socket, reload) and IPv6.
After each, the broker must still serve a normal client, and it must exit
cleanly with no sanitizer report (BrokerTest.tearDown).
"""

import os
import random
import socket
import stat
import struct
import tempfile
import threading
import time
import unittest

import harness
from harness import BAD_FRAME, BrokerTest, pack, pub_frame_raw, raw_msg, request_frame

FUZZ_SEED = int(os.environ.get("PIGEON_FUZZ_SEED", "0")) or random.SystemRandom().randrange(1, 2 ** 31)


class Garbage(BrokerTest):
    def test_garbage_then_close_others_unaffected(self):
        s = self.client()
        sid = s.sub("g")
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\x01\x02", b"\xc1\xc1",
                     bytes(range(256)), b"\xff" * 64, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
            with self.subTest(junk=junk[:8]):
                g = self.client()
                g.try_send_raw(junk)
                g.wait_closed()
                self.assertEqual([e[0] for e in g.errors], [BAD_FRAME])
        p = self.client()
        self.assertEqual(p.pub("g", 1), 1)
        s.wait_messages(1)
        self.assertEqual(s.messages, [[sid, "g", 1]])
        self.broker.wait_log(r"disconnected: bad frame", count=6)


def split_frame():
    """A pub request with opts whose every part has a multi-byte header to split."""
    payload = (b"\xde\x00\x03" + b"\xd9\x01a" + b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00" +
               b"\xa1b" + b"\xc5\x00\x04\x00\x01\x02\x03" +
               b"\xa1c" + b"\xdc\x00\x03\xcb" + struct.pack(">d", 1.5) + b"\xd8\x01" + bytes(16) +
               b"\xc9\x00\x00\x00\x02\x05xy")
    opts = pack({"reply_to": "_INBOX.split", "headers": {"k": "v" * 40}})
    frame = (b"\xdc\x00\x04" + b"\x00" + b"\xce\x00\x00\x30\x39" + b"\xd9\x03pub" +
             b"\xdd\x00\x00\x00\x03" + b"\xd9\x07split.t" + payload + opts)
    return frame, 12345, payload


class Split(BrokerTest):
    def test_every_split_point(self):
        """Each split point on its own connection: first part, a pause, the rest."""
        frame, msgid, payload = split_frame()
        clients = []
        for k in range(1, len(frame)):
            c = self.client(raw=True)
            c.sub("split.t")
            clients.append(c)
        for k, c in enumerate(clients, 1):
            c.send_raw(frame[:k])
        time.sleep(0.2)  # lets the broker read the first parts on their own
        for k, c in enumerate(clients, 1):
            c.send_raw(frame[k:])
        for k, c in enumerate(clients, 1):
            with self.subTest(split=k):
                self.assertEqual(c.wait_response(msgid), (None, len(clients)))
        for c in clients:
            # Every client gets every client's message, all with the same payload.
            c.wait_messages(len(clients))
            self.assertTrue(all(raw_msg(m)[2] == payload for m in c.raw_messages))

    def test_trickle_one_byte_at_a_time(self):
        """The frame repeated, each time sent in pieces of another size."""
        frame, msgid, payload = split_frame()
        c = self.client(raw=True)
        sid = c.sub("split.t")
        rounds = 0
        for size in (1, 2, 3, 5, 7, 11, 13, 64):
            for i in range(0, len(frame), size):
                c.send_raw(frame[i:i + size])
                time.sleep(0.001)
            rounds += 1
            self.assertEqual(c.wait_response(msgid), (None, 1))
        c.wait_messages(rounds)
        for m in c.raw_messages:
            got_sid, _, got, opts = raw_msg(m)
            self.assertEqual((got_sid, got), (sid, payload))
            self.assertEqual(harness.unpack(opts)["reply_to"], "_INBOX.split")

    def test_one_stream_split_everywhere(self):
        """One long stream: the frame N times, cut after byte k of the k-th copy."""
        frame, msgid, payload = split_frame()
        c = self.client(raw=True)
        c.sub("split.t")
        n = len(frame)
        for k in range(1, n):
            c.send_raw(frame[:k])
            time.sleep(0.002)
            c.send_raw(frame[k:])
        c.pump_until(lambda: len(c.raw_messages) >= n - 1, what="%d messages" % (n - 1))
        c.sync()
        self.assertEqual(len(c.raw_messages), n - 1)
        self.assertTrue(all(raw_msg(m)[2] == payload for m in c.raw_messages))


class Chunks(BrokerTest):
    def test_chunks_straddle_frames(self):
        """Many frames of mixed sizes, sent in random chunks that cut across them."""
        rng = random.Random(FUZZ_SEED)
        s = self.client(raw=True)
        s.sub("chunk.>")
        p = self.client()
        payloads = []
        frames = []
        for i in range(120):
            size = rng.choice([0, 3, 100, 5000, 9000, 70000, 200000])
            payload = b"\xc6" + struct.pack(">I", size + 4) + struct.pack(">I", i) + rng.randbytes(size)
            payloads.append(payload)
            frames.append(pub_frame_raw("chunk.%d" % (i % 5), payload, {"headers": {"n": str(i)}} if i % 3 else None))
        stream = b"".join(frames)
        off = 0
        while off < len(stream):
            n = rng.choice([1, 2, 7, 100, 4096, 65536, 300000])
            p.send_raw(stream[off:off + n])
            off += n
            if rng.random() < 0.3:
                time.sleep(0.001)
            s.pump_available()
        self.assertEqual(p.pub("chunk.end", 1), 1)
        s.wait_messages(121)
        for i, m in enumerate(s.raw_messages[:120]):
            _, topic, payload, opts = raw_msg(m)
            self.assertEqual(harness.unpack(topic), "chunk.%d" % (i % 5))
            self.assertTrue(payload == payloads[i], "payload %d differs (seed %d)" % (i, FUZZ_SEED))
            self.assertEqual(opts is not None, i % 3 != 0)


class MidFrameDisconnect(BrokerTest):
    BROKER = {"log_level": "info"}

    def test_close_mid_frame(self):
        s = self.client()
        sid = s.sub("mid")
        cases = [
            pub_frame_raw("mid", pack({"a": 1}), msgid=1)[:7],
            pub_frame_raw("mid", b"\xc6" + struct.pack(">I", 500000) + b"x" * 500000, msgid=2)[:250000],
            b"\x94",
            b"\x94\x00\xce\x00",  # inside a header
        ]
        for data in cases:
            with self.subTest(length=len(data)):
                c = self.client()
                cid = c.hello_result["client_id"]
                c.send_raw(data)
                c.close()
                self.broker.wait_log(r"client %d \(.*\) disconnected: closed by client" % cid)
        p = self.client()
        self.assertEqual(p.pub("mid", 1), 1)
        s.wait_messages(1)
        self.assertEqual(s.messages, [[sid, "mid", 1]])


class ResetByPeer(BrokerTest):
    BROKER = {"log_level": "info"}

    def test_reset_right_after_a_bad_frame(self):
        # The broker answers a frame and refuses the next after the peer has
        # already reset the connection: the final write fails inside the
        # close.  (This once queued the connection to be freed twice.)
        s = self.client()
        sid = s.sub("rst")
        host, port = self.broker.address().rsplit(":", 1)
        linger = struct.pack("ii", 1, 0)
        for i in range(200):
            r = socket.create_connection((host, int(port)), timeout=harness.DEADLINE)
            try:
                r.sendall(request_frame(1, "ping", []) + (b"\xc1" if i % 2 else b"\x94\x00\xcf" + b"\xff" * 8))
            except (BrokenPipeError, ConnectionResetError):
                pass
            r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)  # close sends RST
            r.close()
        self.broker.wait_log(r"disconnected: ", count=200)
        self.assertTrue(self.broker.running())
        p = self.client()
        self.assertEqual(p.pub("rst", 1), 1)
        s.wait_messages(1)
        self.assertEqual(s.messages, [[sid, "rst", 1]])

    def test_reset_with_output_queued(self):
        # A subscriber resets while messages are queued for it.
        p = self.client()
        host, port = self.broker.address().rsplit(":", 1)
        linger = struct.pack("ii", 1, 0)
        for i in range(50):
            r = socket.create_connection((host, int(port)), timeout=harness.DEADLINE)
            r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            r.sendall(request_frame(1, "sub", ["rq"]))
            harness.wait_for(lambda: p.pub("rq", 0) >= 1, what="the subscription")
            p.send_raw(pub_frame_raw("rq", pack(b"z" * 50000)) * 10)
            r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            r.close()
        harness.wait_for(lambda: p.pub("rq", 0) == 0, what="the subscribers to go")
        self.assertEqual(p.ping(), "pong")


class OwnSlowConsumer(BrokerTest):
    BROKER = {"max_outbound": "1mb", "drain_timeout": "1s", "log_level": "info"}

    def test_publisher_that_never_reads_its_own_messages(self):
        # It is a slow consumer of its own publications: closed in the middle
        # of handling its own input, which must be safe.
        s = self.client()
        s_sid = s.sub("own")
        c = self.client(rcvbuf=64 * 1024)
        cid = c.hello_result["client_id"]
        c.sub("own")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        c.sock.setblocking(False)
        frame = memoryview(pub_frame_raw("own", pack(b"y" * 60000)))
        end = time.monotonic() + harness.DEADLINE
        off = 0
        # Publish until the broker cuts it off; the other subscriber keeps up.
        while not self.broker.log_count(r"client %d \(.*\) disconnected" % cid):
            self.assertLess(time.monotonic(), end, "the publisher was never cut off")
            try:
                off = (off + c.sock.send(frame[off:])) % len(frame)
            except BlockingIOError:
                time.sleep(0.005)
            except (BrokenPipeError, ConnectionResetError):
                pass
            s.pump_available()
        self.broker.wait_log(r"client %d \(.*\) disconnected: slow consumer" % cid)
        # The other subscriber got what was published before the cut, in order.
        s.sync()
        self.assertGreater(len(s.messages), 0)
        self.assertTrue(all(m == [s_sid, "own", b"y" * 60000] for m in s.messages))
        p = self.client()
        self.assertEqual(p.pub("own", 1), 1)


class OutOfDescriptors(BrokerTest):
    AUTO_START = False

    def test_accepting_pauses_and_resumes(self):
        # pigeond may open 64 descriptors: more clients than that wait in the
        # kernel's queue until some leave, and are then served.
        b = self.start_broker({"max_connections": 1000, "log_level": "info"}, nofile=64)
        clients = []
        waiting = []
        for i in range(90):
            s = harness.connect_socket(b.address())
            s.sendall(request_frame(i, "ping", []))
            clients.append(s)
            self.addCleanup(s.close)
        b.wait_log(r"accept: .*pausing")
        self.assertTrue(b.running())
        # The first comer is served; sort the rest by what has come so far
        # (one still on its way only moves to the second loop below).
        self.assertTrue(harness.readable_poller(clients[0]).poll(harness.DEADLINE * 1000))
        served = []
        for i, s in enumerate(clients):
            (served if harness.readable_poller(s).poll(50) else waiting).append(i)
        self.assertGreater(len(waiting), 0, "all 90 were served with 64 descriptors")
        for i in served:
            self.assertEqual(harness.frames_of(clients[i].recv(4096)), [[1, i, None, "pong"]])
            clients[i].close()
        for i in waiting:
            s = clients[i]
            self.assertTrue(harness.readable_poller(s).poll(harness.DEADLINE * 1000),
                            "client %d was never served" % i)
            self.assertEqual(harness.frames_of(s.recv(4096)), [[1, i, None, "pong"]])
        c = self.client(b)
        self.assertEqual(c.ping(), "pong")


class LogInjection(BrokerTest):
    BROKER = {"log_level": "debug"}

    def test_client_text_is_escaped_in_the_log(self):
        c = self.client(client_name="evil\nFAKE pigeond: error injected\x1b[31m")
        c.request_error("no\npe\r\nFAKE2")
        c.notify("x\n\x00FAKE3")
        c.wait_error()
        c.send_raw(b"\xc1")
        c.wait_closed()
        self.broker.wait_log(r"disconnected: bad frame")
        for line in self.broker.log_text().splitlines():
            self.assertFalse(line.startswith("FAKE"), line)
            self.assertNotIn("\x1b", line)
            self.assertNotIn("\x00", line)


# ---------------------------------------------------------------------- fuzz

METHODS = ["pub", "sub", "unsub", "ping", "hello", "msg", "error", "nope", ""]


def random_object(rng, depth=0):
    kinds = ["nil", "bool", "int", "float", "str", "bin", "ext"]
    if depth < 5:
        kinds += ["array", "map"]
    kind = rng.choice(kinds)
    if kind == "nil":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, 1, -1, 127, 128, 255, 256, -33, 2 ** 32, 2 ** 64 - 1, -2 ** 63,
                           rng.randrange(-2 ** 63, 2 ** 64)])
    if kind == "float":
        return rng.random() * 1e6
    if kind == "str":
        return rng.choice(["a", "a.b", "*", ">", "a.*", "$SYS.x", "", "retain", "queue",
                           "reply_to", "headers", "x" * rng.randrange(300)])
    if kind == "bin":
        return rng.randbytes(rng.randrange(40))
    if kind == "ext":
        return harness.msgpack.ExtType(rng.randrange(128), rng.randbytes(rng.randrange(20)))
    if kind == "array":
        return [random_object(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rng.choice(["queue", "retain", "reply_to", "headers", "client", "x"]):
            random_object(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_frame(rng):
    """Mostly plausible frames with random parts, some mutated, some noise."""
    roll = rng.random()
    if roll < 0.5:
        method = rng.choice(METHODS)
        params = [random_object(rng) for _ in range(rng.randrange(4))]
        if method == "pub" and params and rng.random() < 0.7:
            params[0] = rng.choice(["f.a", "f.b", "f.a.b"])
        if rng.random() < 0.5:
            return request_frame(rng.randrange(2 ** 32), method, params)
        return harness.notification_frame(method, params)
    if roll < 0.8:
        frame = bytearray(request_frame(rng.randrange(100), rng.choice(METHODS),
                                        [random_object(rng) for _ in range(3)]))
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            i = rng.randrange(len(frame))
            if op == 0:
                frame[i] = rng.randrange(256)
            elif op == 1:
                del frame[i]
            else:
                frame.insert(i, rng.randrange(256))
        return bytes(frame)
    if roll < 0.9:
        return pack(random_object(rng))
    return rng.randbytes(rng.randrange(1, 64))


class Fuzz(BrokerTest):
    BROKER = {"log_level": "notice", "max_payload": "64k", "idle_timeout": "20s"}

    def fuzz_client(self, seed, failures):
        rng = random.Random(seed)
        try:
            sock = harness.connect_socket(self.broker.address())
            try:
                for _ in range(rng.randrange(5, 60)):
                    try:
                        sock.sendall(random_frame(rng))
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    if rng.random() < 0.1:
                        time.sleep(0.001)
                # Read whatever comes for a moment; the broker may have closed.
                sock.settimeout(0.2)
                try:
                    while sock.recv(65536):
                        pass
                except (socket.timeout, ConnectionResetError):
                    pass
            finally:
                sock.close()
        except Exception as e:  # noqa: BLE001 - reported to the main thread
            failures.append("seed %d: %r" % (seed, e))

    def test_concurrent_random_frames(self):
        print("fuzz seed %d (PIGEON_FUZZ_SEED reproduces it)" % FUZZ_SEED)
        watcher = self.client()
        wsid = watcher.sub("f.>")
        failures = []
        rng = random.Random(FUZZ_SEED)
        for _ in range(4):
            threads = [threading.Thread(target=self.fuzz_client, args=(rng.randrange(2 ** 31), failures))
                       for _ in range(25)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(harness.DEADLINE * 2)
            self.assertTrue(self.broker.running(), "pigeond died (fuzz seed %d)" % FUZZ_SEED)
        self.assertEqual(failures, [])
        # A normal client still works, and so does the watcher.
        c = self.client()
        self.assertEqual(c.ping(), "pong")
        watcher.messages.clear()
        self.assertGreaterEqual(c.pub("f.a", "after"), 1)
        watcher.pump_until(lambda: [wsid, "f.a", "after"] in watcher.messages, what="the watcher's message")


# ----------------------------------------------------------------- listeners

class UnixSocket(BrokerTest):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="pigeon-unix-")
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, "p.sock")

    def test_unix_listener_and_mode(self):
        b = self.start_broker(listeners={"local": {"bind": "unix:" + self.path, "mode": "0600"},
                                         "tcp": {"bind": "127.0.0.1:0"}})
        self.assertEqual(b.address("local"), "unix:" + self.path)
        st = os.stat(self.path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        u = self.client(b, name="local")
        t = self.client(b, name="tcp")
        sid = u.sub("ux")
        self.assertEqual(t.pub("ux", 1), 1)
        u.wait_messages(1)
        self.assertEqual(u.messages, [[sid, "ux", 1]])
        self.assertIn("unix:", b.log_text())

    def test_reload_removes_and_changes_unix_listener(self):
        listeners = {"local": {"bind": "unix:" + self.path, "mode": "0600"}, "tcp": {"bind": "127.0.0.1:0"}}
        b = self.start_broker(listeners=listeners)
        u = self.client(b, name="local")
        # A new mode is a new socket file.
        listeners["local"]["mode"] = "0640"
        b.write_config(None, listeners)
        b.reload()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.assertEqual(self.client(b, name="local").ping(), "pong")
        # Removed: the file goes, the connection made through it stays.
        del listeners["local"]
        b.write_config(None, listeners)
        b.reload()
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(u.ping(), "pong")
        sid = u.sub("ux")
        self.assertEqual(self.client(b, name="tcp").pub("ux", 1), 1)
        u.wait_messages(1)
        self.assertEqual(u.messages, [[sid, "ux", 1]])

    def test_default_mode_0660(self):
        self.start_broker(listeners={"local": {"bind": "unix:" + self.path}})
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o660)

    def test_stale_socket_file_removed(self):
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.path)
        stale.close()  # the file stays, with nobody listening
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode))
        b = self.start_broker(listeners={"local": {"bind": "unix:" + self.path}})
        c = self.client(b)
        self.assertEqual(c.ping(), "pong")

    def test_socket_file_removed_at_exit(self):
        b = self.start_broker(listeners={"local": {"bind": "unix:" + self.path}})
        self.assertEqual(b.stop(), 0)
        self.assertFalse(os.path.exists(self.path))

    def test_non_socket_file_refused(self):
        with open(self.path, "w") as f:
            f.write("precious")
        b = self.start_broker(listeners={"local": {"bind": "unix:" + self.path}}, check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.assertIn("not a socket", b.log_text())
        with open(self.path) as f:
            self.assertEqual(f.read(), "precious")
        self.forget_broker(b)

    def test_live_socket_not_stolen(self):
        live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(live.close)
        live.bind(self.path)
        live.listen(1)
        b = self.start_broker(listeners={"local": {"bind": "unix:" + self.path}}, check=False)
        self.assertEqual(b.wait_exit(), 1)
        self.assertIn("in use", b.log_text())
        self.forget_broker(b)
        # Still the other server's socket.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(self.path)
        c.close()


@unittest.skipUnless(harness.ipv6_loopback_works(), "no IPv6 loopback on this host")
class IPv6(BrokerTest):
    LISTENERS = {"v6": {"bind": "[::1]:0"}, "v4": {"bind": "127.0.0.1:0"}}

    def test_ipv6_listener(self):
        addr = self.broker.address("v6")
        self.assertTrue(addr.startswith("[::1]:"), addr)
        c = self.client(name="v6")
        d = self.client(name="v4")
        sid = c.sub("six")
        self.assertEqual(d.pub("six", 6), 1)
        c.wait_messages(1)
        self.assertEqual(c.messages, [[sid, "six", 6]])
        self.assertRegex(self.broker.log_text(), r"connected from \[::1\]:\d+")


if __name__ == "__main__":
    harness.main()
