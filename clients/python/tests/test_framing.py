"""test_framing.py - framing, encoding, addresses, errors: no broker needed."""

import os
import random
import unittest
from unittest import mock

import support  # noqa: F401
from support import EVERY_TYPE, same

import msgpack

import pigeon
from pigeon import address, errors, protocol as proto


class Addresses(unittest.TestCase):
    """The forms of src/common/addr.h (docs/cli.md), as the C clients take them."""

    def test_forms(self):
        p, A = address.parse_address, address.Address
        self.assertEqual(p("10.0.0.1:7401"), A("10.0.0.1", 7401, None))
        self.assertEqual(p("broker.example"), A("broker.example", 7400, None))
        self.assertEqual(p("my_host-2.internal:007400"), A("my_host-2.internal", 7400, None))
        self.assertEqual(p("[::1]:7402"), A("::1", 7402, None))
        self.assertEqual(p("[fe80::1]"), A("fe80::1", 7400, None))
        self.assertEqual(p("[fe80::1%eth0]:9"), A("fe80::1%eth0", 9, None))
        self.assertEqual(p("unix:/run/pigeon/pigeond.sock"),
                         A(None, None, "/run/pigeon/pigeond.sock"))
        self.assertEqual(p("unix:relative.sock"), A(None, None, "relative.sock"))
        self.assertEqual(p("unix:/" + "a" * 106).path, "/" + "a" * 106)  # 107 bytes: the most
        self.assertEqual(str(p("[::1]:7402")), "[::1]:7402")
        self.assertEqual(str(p("unix:/x")), "unix:/x")
        self.assertEqual(str(p("h:1")), "h:1")
        self.assertEqual("%s" % p("h:1"), "h:1")  # not a tuple: formats as one value
        self.assertEqual(p("h:1").scheme, "")
        self.assertIs(pigeon.parse_address, address.parse_address)

    def test_tls(self):
        p, A = address.parse_address, address.Address
        self.assertEqual(p("tls://broker.example:7401"), A("broker.example", 7401, None, "tls"))
        self.assertEqual(p("TLS://[::1]"), A("::1", 7400, None, "tls"))
        self.assertEqual(p("tls://7401"), A("127.0.0.1", 7401, None, "tls"))
        self.assertEqual(str(p("tls://[::1]:7401")), "tls://[::1]:7401")
        self.assertEqual(str(p("tls://h")), "tls://h:7400")
        self.assertTrue(p("tls://h").is_tls)
        self.assertFalse(p("h").is_tls)
        with mock.patch.dict(os.environ, {"PIGEON_SERVER": "tls://broker.example:7401"}):
            self.assertEqual(address.parse_address(None).scheme, "tls")

    def test_bare_number_is_a_local_port(self):
        # Not the IPv4 address 0.0.83.152 on port 7400.
        self.assertEqual(address.parse_address("21400"), address.Address("127.0.0.1", 21400, None))
        self.assertEqual(str(address.parse_address("1")), "127.0.0.1:1")

    def test_default_from_env(self):
        with mock.patch.dict(os.environ, {"PIGEON_SERVER": "unix:/tmp/p.sock"}):
            self.assertEqual(address.parse_address(None).path, "/tmp/p.sock")
        with mock.patch.dict(os.environ, {"PIGEON_SERVER": "7401"}):
            self.assertEqual(address.parse_address(None).port, 7401)
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(address.parse_address(None),
                             address.Address("127.0.0.1", 7400, None))

    def test_bad(self):
        # Each refusal with the message libpigeon gives (unit_addr.c).
        cases = {
            "": "empty address",
            "::1:7400": "an IPv6 address needs brackets: [addr]:port",
            "h:0": "the port must be a number from 1 to 65535",
            "0": "the port must be a number from 1 to 65535",
            "65536": "the port must be a number from 1 to 65535",
            "h:65536": "the port must be a number from 1 to 65535",
            "h:x": "the port must be a number from 1 to 65535",
            "h:\u0661": "the port must be a number from 1 to 65535",
            "h:": "missing port after ':'",
            ":7400": "missing host before ':'",
            "unix:": "empty unix socket path",
            "unix:/run/pigeon/": "the socket path names a directory",
            "unix:/" + "a" * 107: "the socket path is 108 bytes, the most a unix socket takes is 107",
            "[::1": "expected [v6addr]:port or [v6addr]",
            "[::1]x": "expected [v6addr]:port or [v6addr]",
            "[]:1": "not an IPv6 address inside [ ]",
            "[1.2.3.4]:1": "not an IPv6 address inside [ ]",
            "[fe80::1%]:1": "not an IPv6 address inside [ ]",
            "300.1.1.1:7400": "not an IPv4 address or a host name",
            "127.1:7400": "not an IPv4 address or a host name",
            "bad..name": "not an IPv4 address or a host name",
            "a b:1": "not an IPv4 address or a host name",
            " 127.0.0.1:1": "not an IPv4 address or a host name",
            "caf\u00e9:1": "not an IPv4 address or a host name",
            "tcp://broker.example:7400": "unsupported scheme 'tcp://': expected host:port, "
                                         "[v6addr]:port, unix:/path or tls://host:port",
            "tls://": "nothing after tls://: expected tls://host:port",
            "tls://unix:/run/p.sock": "TLS is for TCP: tls://host:port, not a unix socket "
                                      "(its file mode guards it)",
            "tls://h:99999": "the port must be a number from 1 to 65535",
        }
        for bad, why in cases.items():
            with self.subTest(bad=bad):
                with self.assertRaises(pigeon.BadAddress) as cm:
                    address.parse_address(bad)
                shown = bad if len(bad) <= 64 else bad[:64] + "..."
                self.assertEqual(str(cm.exception), "bad address '%s': %s" % (shown, why))
                self.assertIsInstance(cm.exception, ValueError)
                self.assertIsInstance(cm.exception, pigeon.PigeonError)

    def test_connect_names_the_address(self):
        with self.assertRaises(pigeon.BadAddress) as cm:
            pigeon.connect("127.0.0.1:99999")
        self.assertEqual(str(cm.exception), "bad address '127.0.0.1:99999': the port must be a "
                         "number from 1 to 65535")
        with self.assertRaises(pigeon.BadAddress):
            pigeon.aio.AsyncClient("tcp://h:1")


class Errors(unittest.TestCase):
    def test_every_code(self):
        table = {1: pigeon.BadFrame, 2: pigeon.UnknownMethod, 3: pigeon.BadParams,
                 4: pigeon.BadTopic, 5: pigeon.TooLarge, 6: pigeon.AuthRequired,
                 7: pigeon.AuthFailed, 8: pigeon.Forbidden, 9: pigeon.SlowConsumer,
                 10: pigeon.LimitError}
        for code, cls in table.items():
            e = errors.error_for(code, "why")
            self.assertIs(type(e), cls)
            self.assertEqual((e.code, e.message), (code, "why"))
            self.assertIsInstance(e, pigeon.PigeonError)
            self.assertIn("code %d" % code, str(e))

    def test_unknown_code_kept(self):
        e = errors.error_for(42, "new")
        self.assertIs(type(e), pigeon.PigeonError)
        self.assertEqual(e.code, 42)
        self.assertIs(type(errors.error_for("x", None)), pigeon.PigeonError)

    def test_builtin_bases(self):
        self.assertTrue(issubclass(pigeon.TimeoutError, TimeoutError))
        self.assertTrue(issubclass(pigeon.ConnectionLost, ConnectionError))
        self.assertTrue(issubclass(pigeon.ConnectError, ConnectionError))
        self.assertTrue(issubclass(pigeon.BadTopic, ValueError))
        self.assertTrue(issubclass(pigeon.TooLarge, ValueError))
        self.assertIsNone(pigeon.TimeoutError("t").code)
        lost = pigeon.ConnectionLost("gone", errors.error_for(9, "slow"))
        self.assertEqual(lost.reason.code, 9)
        self.assertIn("slow", str(lost))

    def test_star_import_keeps_builtin_timeout(self):
        ns = {}
        exec("from pigeon import *", ns)
        self.assertNotIn("TimeoutError", ns)


def frames_of(decoder, data, step):
    out = []
    for i in range(0, len(data), step):
        out += decoder.feed(data[i:i + step])
    return out


class Decoding(unittest.TestCase):
    def stream(self, big_size=300000):
        odd_payload = b"\xcf\x00\x00\x00\x00\x00\x00\x00\x05"  # 5 as a uint64
        float32 = b"\xca\x3f\xc0\x00\x00"                     # 1.5 as a float32
        big = msgpack.packb({"blob": b"z" * big_size, "n": [1, 2, 3]})
        opts = {"reply_to": "r", "retained": True}
        parts = [
            (msgpack.packb([1, 1, None, {"client_id": 3}]),
             proto.Response(1, None, {"client_id": 3})),
            (msgpack.packb([1, 2, [4, "bad topic"], None]),
             proto.Response(2, [4, "bad topic"], None)),
            (msgpack.packb([2, "error", [9, "slow"]]),
             proto.Notification("error", [9, "slow"])),
            (b"\x93\x02\xa3msg\x93\x01\xa3a.b" + odd_payload,
             proto.MsgFrame(1, "a.b", odd_payload, None)),
            (b"\x93\x02\xa3msg\x94\x02\xa1c" + float32 + msgpack.packb(opts),
             proto.MsgFrame(2, "c", float32, opts)),
            (b"\x93\x02\xa3msg\x93\x03\xa1d" + big, proto.MsgFrame(3, "d", big, None)),
        ]
        return b"".join(p[0] for p in parts), [p[1] for p in parts]

    def test_any_split(self):
        for step in (1, 2, 3, 7, 1000, 65536, None):
            data, want = self.stream(300 if step and step < 10 else 300000)
            with self.subTest(step=step):
                step = step or len(data)
                got = frames_of(proto.FrameDecoder(), data, step)
                self.assertEqual(got, want)
                self.assertTrue(all(type(g) is type(w) for g, w in zip(got, want)))

    def test_buffer_does_not_grow(self):
        data, want = self.stream()
        d = proto.FrameDecoder()
        for _ in range(20):
            self.assertEqual(frames_of(d, data, 4096), want)
        self.assertEqual(len(d._buf), 0)

    def test_bad_frames(self):
        for bad in (msgpack.packb({"not": "an array"}), msgpack.packb([0, 1, "x", []]),
                    msgpack.packb([3, "x", []]), msgpack.packb([2, "msg", [1, "a"]]),
                    b"\xc1"):
            with self.subTest(bad=bad), self.assertRaises(pigeon.BadFrame):
                proto.FrameDecoder().feed(bad)

    def test_message_payload(self):
        raw = msgpack.packb({"x": [1, b"y"]})
        m = proto.message_from_frame("t", raw, {"headers": {"k": "v"}, "reply_to": "r"},
                                     None, 4, False)
        self.assertEqual(m.payload, {"x": [1, b"y"]})
        self.assertEqual((m.topic, m.raw, m.sid, m.reply_to, m.headers, m.retained),
                         ("t", raw, 4, "r", {"k": "v"}, False))
        m = proto.message_from_frame("t", raw, None, None, 4, True)
        self.assertEqual(m.payload, raw)
        self.assertEqual(m.headers, {})
        self.assertIn("'t'", repr(m))


class Encoding(unittest.TestCase):
    def test_pub_shapes(self):
        data = proto.encode_payload({"id": 1})
        f = proto.encode_pub("a.b", data, None, None, 1 << 20)
        self.assertEqual(msgpack.unpackb(f), [2, "pub", ["a.b", {"id": 1}]])
        f = proto.encode_pub("a.b", data, {"retain": True}, 77, 1 << 20)
        self.assertEqual(msgpack.unpackb(f), [0, 77, "pub", ["a.b", {"id": 1}, {"retain": True}]])
        f = proto.encode_pub("a.b", data, None, 2**32 - 1, 1 << 20)
        self.assertEqual(msgpack.unpackb(f)[1], 2**32 - 1)

    def test_raw_spliced_as_is(self):
        odd = b"\xd1\x00\x05"  # 5 as an int16: a re-encoder would shrink it
        f = proto.encode_pub("t", odd, None, None, 1 << 20)
        self.assertTrue(f.endswith(b"\xa1t" + odd))

    def test_too_large_counts_the_whole_frame(self):
        data = proto.encode_payload(b"x" * 1000)
        size = len(proto.encode_pub("t", data, None, None, 1 << 20))
        proto.encode_pub("t", data, None, None, size)  # exactly at the limit: fine
        with self.assertRaises(pigeon.TooLarge):
            proto.encode_pub("t", data, None, None, size - 1)

    def test_depth(self):
        def nest(k, leaf=1):
            for _ in range(k):
                leaf = [leaf]
            return leaf
        proto.encode_payload(nest(30))
        proto.encode_payload({"k": nest(29)})
        with self.assertRaises(pigeon.BadFrame):
            proto.encode_payload(nest(31))
        with self.assertRaises(pigeon.BadFrame):
            proto.encode_payload({"k": nest(30)})
        with self.assertRaises(pigeon.BadFrame):
            proto.encode_payload({"k": {"k": nest(29)}})

    def test_not_msgpack(self):
        with self.assertRaises(TypeError):
            proto.encode_payload(object())

    def test_options(self):
        self.assertIsNone(proto.check_pub_options(None, None, False))
        self.assertEqual(proto.check_pub_options("r.x", {"a": "b"}, True),
                         {"reply_to": "r.x", "headers": {"a": "b"}, "retain": True})
        with self.assertRaises(pigeon.BadTopic):
            proto.check_pub_options("r.*", None, False)
        with self.assertRaises(pigeon.BadParams):
            proto.check_pub_options(None, {"a": 1}, False)
        with self.assertRaises(pigeon.BadParams):
            proto.check_queue("a b")


class PackedPayloads(unittest.TestCase):
    """check_packed walks bytes given raw; it must agree with msgpack."""

    def test_every_type(self):
        for name, value in EVERY_TYPE:
            with self.subTest(name):
                packed = msgpack.packb(value, use_bin_type=True)
                proto.check_packed(packed)
                self.assertEqual(proto._skip_object(memoryview(packed), 0)[0], len(packed))

    def test_random_objects(self):
        rng = random.Random(7)

        def gen(d):
            k = rng.randrange(12 if d < 3 else 8)
            if k == 0:
                return rng.randrange(-2**63, 2**64)
            if k == 1:
                return rng.random()
            if k == 2:
                return "s" * rng.choice((0, 5, 31, 32, 255, 256, 70000))
            if k == 3:
                return b"b" * rng.choice((0, 1, 255, 256, 65536))
            if k == 4:
                size = rng.choice((1, 2, 4, 8, 16, 3, 300))
                return msgpack.ExtType(rng.randrange(128), b"e" * size)
            if k in (5, 6, 7):
                return rng.choice((None, True, False, -1, 0, 127))
            if k in (8, 9):
                return [gen(d + 1) for _ in range(rng.choice((0, 1, 15, 16, 20)))]
            return {str(i): gen(d + 1) for i in range(rng.choice((0, 1, 15, 16, 20)))}
        for _ in range(200):
            packed = msgpack.packb(gen(0), use_bin_type=True)
            end, depth = proto._skip_object(memoryview(packed), 0)
            self.assertEqual(end, len(packed))

    def test_float32_and_wide_ints(self):
        for packed in (b"\xca\x3f\xc0\x00\x00", b"\xcf" + b"\x00" * 7 + b"\x05",
                       b"\xd3" + b"\xff" * 8, b"\xdc\x00\x01\xc0", b"\xdf\x00\x00\x00\x00"):
            proto.check_packed(packed)

    def test_refused(self):
        for bad in (b"", b"\x92\x01", b"\x01\x02", b"\xa5abc", b"\xc1", b"\xc4",
                    b"\xdb\x00\x00\x00\x10xx", b"\x91" * 31 + b"\x01"):
            with self.subTest(bad=bad), self.assertRaises(pigeon.BadFrame):
                proto.check_packed(bad)
        proto.check_packed(b"\x91" * 30 + b"\x01")
        with self.assertRaises(TypeError):
            proto.check_packed("not bytes")


class BackoffPolicy(unittest.TestCase):
    def test_growth_cap_jitter(self):
        b = proto.Backoff(initial=0.1, max_delay=1.0, max_attempts=None, jitter=0.5)
        self.assertEqual(b.delay(0), 0.0)
        for attempt in range(1, 40):
            full = min(1.0, 0.1 * 2 ** (attempt - 1))
            d = b.delay(attempt)
            self.assertTrue(full * 0.5 <= d <= full, (attempt, d))
        self.assertFalse(b.exhausted(10**6))

    def test_attempts(self):
        b = proto.make_backoff(None, 3)
        self.assertFalse(b.exhausted(2))
        self.assertTrue(b.exhausted(3))
        mine = proto.Backoff(initial=1, max_delay=2)
        self.assertIs(proto.make_backoff(mine, None), mine)
        self.assertEqual(proto.make_backoff(mine, 5).max_attempts, 5)
        self.assertIsNone(mine.max_attempts)


class RoundTripLocal(unittest.TestCase):
    """Encode then decode through a msg frame, without a broker."""

    def test_every_type(self):
        for name, value in EVERY_TYPE:
            with self.subTest(name):
                raw = proto.encode_payload(value)
                frame = b"\x93\x02\xa3msg\x93\x01\xa1t" + raw
                (f,) = proto.FrameDecoder().feed(frame)
                m = proto.message_from_frame(f.topic, f.raw, f.opts, None, 1, False)
                self.assertTrue(same(m.payload, value), (m.payload, value))


if __name__ == "__main__":
    support.main()
