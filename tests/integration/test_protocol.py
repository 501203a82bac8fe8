"""test_protocol.py - every row of the protocol's tables against a real pigeond.

One section per table of the wire contract: the methods (hello, pub, sub,
unsub, ping), what the broker sends (msg, error), the error codes in the
cases the table names, and the promise that a payload travels byte for byte.
Codes 9 and 10 are exercised under load in test_limits.py; the `$` rule of
patterns and queue groups and retained values in test_routing.py.
"""

import os
import struct
import unittest

import harness
from harness import (BAD_FRAME, BAD_PARAMS, BAD_TOPIC, FORBIDDEN, LIMIT, NOTIFICATION, RESPONSE,
                     TOO_LARGE, UNKNOWN_METHOD, BrokerTest, mp_split, pack, pub_frame_raw, raw_msg,
                     request_frame, unpack)


def str8(s):
    """S as a str8 even when it would fit a fixstr: a non-canonical encoding."""
    b = s.encode()
    return b"\xd9" + bytes([len(b)]) + b


class Smoke(BrokerTest):
    def test_ping(self):
        c = self.client()
        self.assertEqual(c.ping(), "pong")

    def test_pub_sub(self):
        s = self.client()
        p = self.client()
        sid = s.sub("a.b")
        self.assertEqual(p.pub("a.b", {"x": 1}), 1)
        s.wait_messages(1)
        self.assertEqual(s.messages[0], [sid, "a.b", {"x": 1}])


# ------------------------------------------------------------------- hello

class Hello(BrokerTest):
    BROKER = {"max_payload": "64k"}

    def test_result_fields(self):
        c = self.client(hello=False, raw=True)
        msgid = c.send_request("hello", harness.hello_params({"client": "fields"}))
        err, result = c.wait_response(msgid)
        self.assertIsNone(err)
        # With logins on (the suite's auth run), the result names the user.
        user = {"user"} if harness.AUTH else set()
        self.assertEqual(set(result), {"server", "version", "proto", "minor", "client_id",
                                       "max_payload"} | user)
        if harness.AUTH:
            self.assertEqual(result["user"], "tester")
        self.assertEqual(result["minor"], 1)
        self.assertEqual(result["server"], "pigeond")
        self.assertIsInstance(result["version"], str)
        self.assertRegex(result["version"], r"^\d+\.\d+\.\d+")
        self.assertEqual(result["proto"], 1)
        self.assertEqual(result["max_payload"], 64 * 1024)
        self.assertIsInstance(result["client_id"], int)
        # client_id is an unsigned integer on the wire, not merely a non-negative one.
        _, _, _, raw_result = mp_split(c.raw_frames[-1])
        raw_map = raw_result
        key = pack("client_id")
        at = raw_map.index(key) + len(key)
        self.assertTrue(harness.is_unsigned_encoding(raw_map[at:]), raw_map[at:at + 9].hex())

    def test_client_ids_differ(self):
        ids = {self.client().hello_result["client_id"] for _ in range(5)}
        self.assertEqual(len(ids), 5)

    @unittest.skipIf(harness.AUTH, "a broker that requires logins requires hello")
    def test_hello_is_optional(self):
        a = self.client(hello=False)
        b = self.client(hello=False)
        self.assertEqual(a.ping(), "pong")
        sid = a.sub("no.hello")
        self.assertEqual(b.pub("no.hello", 1), 1)
        a.wait_messages(1)
        self.assertEqual(a.messages, [[sid, "no.hello", 1]])

    @unittest.skipIf(harness.AUTH, "a login needs credentials, which need the map")
    def test_hello_without_params_map(self):
        c = self.client(hello=False)
        result = c.request("hello")
        self.assertEqual(result["proto"], 1)

    def test_hello_ignores_unknown_keys(self):
        c = self.client(hello=False)
        params = harness.hello_params({"client": "x", "user": None, "future": [1, 2]})
        self.assertEqual(c.request("hello", params)["proto"], 1)

    def test_second_hello_is_bad_params(self):
        c = self.client()
        code, message = c.request_error("hello", {"client": "again"})
        self.assertEqual(code, BAD_PARAMS)
        self.assertIsInstance(message, str)
        self.assertEqual(c.ping(), "pong")

    def test_second_hello_after_failed_one_is_allowed(self):
        c = self.client(hello=False)
        self.assertEqual(c.request_error("hello", "not a map")[0], BAD_PARAMS)
        self.assertEqual(c.request("hello", harness.hello_params({"client": "ok"}))["proto"], 1)

    def test_bad_hello_params(self):
        c = self.client(hello=False)
        for params in (["x"], [1], [{"client": 5}], [{"token": [1]}], [{}, {}]):
            with self.subTest(params=params):
                self.assertEqual(c.request_error("hello", *params)[0], BAD_PARAMS)
        if harness.AUTH:
            c.request("hello", harness.hello_params())
        self.assertEqual(c.ping(), "pong")

    def test_hello_as_notification(self):
        # hello has a result, so it is a request; as a notification there is
        # no response to carry the error, so it comes as an error notification.
        c = self.client(hello=False)
        c.notify("hello", {"client": "n"})
        code, _ = c.wait_error()
        self.assertEqual(code, BAD_PARAMS)
        if harness.AUTH:
            c.request("hello", harness.hello_params())
        self.assertEqual(c.ping(), "pong")


class Auth(BrokerTest):
    """Codes 6 and 7, on a broker that requires logins (docs/security.md has the rest)."""

    def setUp(self):
        super().setUp()
        users = os.path.join(self.broker.dir.name, "users.conf")
        with open(users, "w") as f:
            f.write(harness.TEST_USERS)
        self.broker.write_config(extra="[auth]\nusers_file = %s\n" % users)
        self.broker.reload()

    def test_method_before_hello_is_code_6_and_closes(self):
        for request in (True, False):
            c = self.client(hello=False)
            if request:
                code, _ = c.request_error("ping")
            else:
                c.notify("pub", "t", 1)
                code, _ = c.wait_error()
            self.assertEqual(code, harness.AUTH_REQUIRED)
            c.wait_closed()

    def test_wrong_credentials_are_code_7_and_close(self):
        for creds in ({"token": "wrong"}, {"user": "tester", "password": "x"}, {},
                      {"token": harness.TEST_TOKEN, "user": "tester", "password": "x"}):
            with self.subTest(creds=creds):
                c = self.client(hello=False)
                self.assertEqual(c.request_error("hello", creds)[0], harness.AUTH_FAILED)
                c.wait_closed()
        c = self.client(hello=False)
        self.assertEqual(c.request("hello", {"token": harness.TEST_TOKEN})["proto"], 1)
        self.assertEqual(c.ping(), "pong")


# --------------------------------------------------------------------- pub

class Pub(BrokerTest):
    def test_notification_gets_no_response(self):
        s = self.client()
        p = self.client()
        sid = s.sub("n.t")
        p.pub_notify("n.t", "hi")
        s.wait_messages(1)
        self.assertEqual(s.messages, [[sid, "n.t", "hi"]])
        p.sync()
        # Only hello and the ping were answered.
        self.assertEqual([f[0] for f in p.frames], [RESPONSE, RESPONSE])

    def test_request_counts_deliveries(self):
        p = self.client()
        self.assertEqual(p.pub("count.t", 1), 0)
        a = self.client()
        a.sub("count.t")
        self.assertEqual(p.pub("count.t", 2), 1)
        b = self.client()
        b.sub("count.*")
        b.sub(">")
        b.sub("count.t")
        self.assertEqual(p.pub("count.t", 3), 4)
        self.assertEqual(p.pub("count.other", 4), 2)

    def test_result_is_sent_after_routing(self):
        # The pub response follows the msg it caused on the same connection.
        c = self.client()
        sid = c.sub("self.t")
        self.assertEqual(c.pub("self.t", "me"), 1)
        kinds = [(f[0], f[1]) for f in c.frames[-2:]]
        self.assertEqual(kinds[0], (NOTIFICATION, "msg"))
        self.assertEqual(c.messages, [[sid, "self.t", "me"]])

    def test_own_publications_are_received(self):
        c = self.client()
        sid = c.sub("mine.>")
        c.pub_notify("mine.a", 1)
        c.pub_notify("mine.b", 2)
        c.wait_messages(2)
        self.assertEqual(c.messages, [[sid, "mine.a", 1], [sid, "mine.b", 2]])

    def test_pub_with_opts_variants(self):
        s = self.client()
        p = self.client()
        sid = s.sub("o.t")
        self.assertEqual(p.request("pub", "o.t", 1, {}), 1)
        self.assertEqual(p.request("pub", "o.t", 2, None), 1)
        self.assertEqual(p.request("pub", "o.t", 3, {"retain": False}), 1)
        self.assertEqual(p.request("pub", "o.t", 4, {"reply_to": None, "headers": None}), 1)
        self.assertEqual(p.request("pub", "o.t", 5, {"headers": {}}), 1)
        s.wait_messages(5)
        # No opts given (or only empty ones): the msg has three params.
        self.assertEqual(s.messages, [[sid, "o.t", n] for n in range(1, 6)])

    def test_bad_params(self):
        p = self.client()
        cases = [
            ([], BAD_PARAMS),
            (["t"], BAD_PARAMS),
            (["t", 1, {}, 4], BAD_PARAMS),
            ([1, 1], BAD_PARAMS),
            ([b"bin.topic", 1], BAD_PARAMS),
            ([None, 1], BAD_PARAMS),
            (["t", 1, "opts"], BAD_PARAMS),
            (["t", 1, [1]], BAD_PARAMS),
            (["t", 1, {"reply_to": 5}], BAD_PARAMS),
            (["t", 1, {"reply_to": "a b"}], BAD_TOPIC),
            (["t", 1, {"reply_to": "a.*"}], BAD_TOPIC),
            (["t", 1, {"retain": "yes"}], BAD_PARAMS),
            (["t", 1, {"retain": 1}], BAD_PARAMS),
            (["t", 1, {"headers": "h"}], BAD_PARAMS),
            (["t", 1, {"headers": {"k": 1}}], BAD_PARAMS),
            (["t", 1, {"headers": {1: "v"}}], BAD_PARAMS),
            (["t", 1, {"headers": {"k": b"bin"}}], BAD_PARAMS),
            (["t", 1, {"nope": 1}], BAD_PARAMS),
            (["t", 1, {1: 1}], BAD_PARAMS),
        ]
        for params, code in cases:
            with self.subTest(params=params):
                self.assertEqual(p.request_error("pub", *params)[0], code)
        for params, code in cases:
            with self.subTest(notification=params):
                p.notify("pub", *params)
                self.assertEqual(p.wait_error()[0], code)
        self.assertEqual(p.ping(), "pong")

    def test_headers_must_be_valid_utf8(self):
        p = self.client()
        bad = [b"\x81\xa1k\xa1\xff", b"\x81\xa2\xc3\x28\xa1v", b"\x82\xa1a\xa1b\xa1k\xa3\xed\xa0\x80"]
        for i, headers in enumerate(bad):
            with self.subTest(headers=headers):
                opts = b"\x81\xa7headers" + headers
                p.send_raw(pub_frame_raw("h.t", b"\x01", opts, msgid=300 + i))
                err, _ = p.wait_response(300 + i)
                self.assertEqual(err[0], BAD_PARAMS)
        self.assertEqual(p.ping(), "pong")

    def test_failed_pub_delivers_nothing(self):
        s = self.client()
        p = self.client()
        sid = s.sub(">")
        p.request_error("pub", "t", 1, {"nope": 1})
        p.notify("pub", "t", 2, {"reply_to": "bad topic"})
        p.wait_error()
        self.assertEqual(p.pub("t", 3), 1)
        s.wait_messages(1)
        s.sync()
        self.assertEqual(s.messages, [[sid, "t", 3]])

    def test_forbidden_system_topic(self):
        s = self.client()
        p = self.client()
        s.sub("$SYS.>")
        s.sub(">")
        for topic in ("$SYS.x", "$SYS", "$x.y", "$"):
            with self.subTest(topic=topic):
                self.assertEqual(p.request_error("pub", topic, 1)[0], FORBIDDEN)
                p.notify("pub", topic, 1)
                self.assertEqual(p.wait_error()[0], FORBIDDEN)
        # A '$' later in the topic is an ordinary byte.
        self.assertEqual(p.pub("a.$b", 1), 1)
        s.wait_messages(1)
        s.sync()
        # (The broker's own $SYS.broker.stats may come by meanwhile.)
        self.assertEqual([m[1] for m in s.messages if m[1] != "$SYS.broker.stats"], ["a.$b"])


# --------------------------------------------------------------- sub, unsub

class Sub(BrokerTest):
    def test_sids_unique_per_connection(self):
        c = self.client(raw=True)
        sids = []
        for pattern in ("a", "a", "a.*", ">", "b.>"):
            sids.append(c.sub(pattern))
            _, _, _, raw_sid = mp_split(c.raw_frames[-1])
            self.assertTrue(harness.is_unsigned_encoding(raw_sid), raw_sid.hex())
        self.assertEqual(len(set(sids)), 5)
        self.assertTrue(all(isinstance(s, int) and s >= 0 for s in sids))
        c.unsub(sids[0])
        again = c.sub("a")
        self.assertNotIn(again, sids, "a sid was reused on the same connection")

    def test_sids_count_up_from_1(self):
        # docs/protocol.md: the broker counts up from 1, per connection.
        a = self.client()
        b = self.client()
        self.assertEqual([a.sub("x"), a.sub("y"), b.sub("x"), a.sub("z")], [1, 2, 1, 3])

    def test_sub_with_and_without_opts(self):
        c = self.client()
        p = self.client()
        s1 = c.sub("w.t")
        s2 = c.request("sub", "w.t", {})
        s3 = c.request("sub", "w.t", None)
        s4 = c.request("sub", "w.t", {"queue": "g"})
        s5 = c.request("sub", "w.t", {"queue": None})
        self.assertEqual(p.pub("w.t", "x"), 5)
        c.wait_messages(5)
        self.assertEqual(sorted(m[0] for m in c.messages), sorted([s1, s2, s3, s4, s5]))

    def test_bad_params(self):
        c = self.client()
        cases = [
            ([], BAD_PARAMS),
            ([1], BAD_PARAMS),
            ([None], BAD_PARAMS),
            ([b"a.b"], BAD_PARAMS),
            (["a", 1], BAD_PARAMS),
            (["a", "q"], BAD_PARAMS),
            (["a", {"queue": 1}], BAD_PARAMS),
            (["a", {"queue": ""}], BAD_PARAMS),
            (["a", {"queue": "a b"}], BAD_PARAMS),
            (["a", {"other": 1}], BAD_PARAMS),
            (["a", {}, 3], BAD_PARAMS),
            (["a b"], BAD_TOPIC),
        ]
        for params, code in cases:
            with self.subTest(params=params):
                self.assertEqual(c.request_error("sub", *params)[0], code)
        self.assertEqual(c.ping(), "pong")

    def test_sub_as_notification(self):
        c = self.client()
        p = self.client()
        c.notify("sub", "n.t")
        self.assertEqual(c.wait_error()[0], BAD_PARAMS)
        self.assertEqual(p.pub("n.t", 1), 0)

    def test_unsub(self):
        c = self.client()
        p = self.client()
        sid = c.sub("u.t")
        keep = c.sub("u.t")
        self.assertIs(c.unsub(sid), True)
        self.assertEqual(p.pub("u.t", 1), 1)
        c.wait_messages(1)
        self.assertEqual(c.messages, [[keep, "u.t", 1]])

    def test_unsub_unknown_sid(self):
        c = self.client()
        other = self.client()
        theirs = other.sub("x")
        self.assertEqual(c.request_error("unsub", 12345)[0], BAD_PARAMS)
        self.assertEqual(c.request_error("unsub", theirs)[0], BAD_PARAMS)
        sid = c.sub("x")
        c.unsub(sid)
        self.assertEqual(c.request_error("unsub", sid)[0], BAD_PARAMS)
        # The other connection's subscription is untouched.
        self.assertEqual(c.pub("x", 1), 1)

    def test_unsub_bad_params(self):
        c = self.client()
        for params in ([], ["1"], [-1], [1.0], [None], [1, 2]):
            with self.subTest(params=params):
                self.assertEqual(c.request_error("unsub", *params)[0], BAD_PARAMS)
        c.notify("unsub", 1)
        self.assertEqual(c.wait_error()[0], BAD_PARAMS)


class Ping(BrokerTest):
    def test_pong(self):
        c = self.client(hello=harness.AUTH)  # without a login where one is required: code 6
        self.assertEqual(c.request("ping"), "pong")

    def test_ping_with_params(self):
        c = self.client()
        self.assertEqual(c.request_error("ping", 1)[0], BAD_PARAMS)

    def test_ping_as_notification(self):
        c = self.client()
        c.notify("ping")
        self.assertEqual(c.wait_error()[0], BAD_PARAMS)
        self.assertEqual(c.ping(), "pong")


# --------------------------------------------------------- broker to client

class Msg(BrokerTest):
    BROKER = {"log_level": "info"}
    def test_shape_without_opts(self):
        s = self.client(raw=True)
        p = self.client()
        sid = s.sub("m.t")
        p.pub("m.t", [1, 2])
        s.wait_messages(1)
        self.assertEqual(s.frames[-1], [NOTIFICATION, "msg", [sid, "m.t", [1, 2]]])
        self.assertEqual(len(mp_split(mp_split(s.raw_messages[0])[2])), 3)

    def test_shape_with_opts(self):
        s = self.client()
        p = self.client()
        sid = s.sub("m.t")
        p.pub("m.t", 1, reply_to="_INBOX.1")
        p.pub("m.t", 2, headers={"k": "v"})
        p.pub("m.t", 3, reply_to="_INBOX.2", headers={"a": "b", "c": ""})
        p.pub("m.t", 4, reply_to="_INBOX.3", retain=False)
        s.wait_messages(4)
        self.assertEqual(s.messages, [
            [sid, "m.t", 1, {"reply_to": "_INBOX.1"}],
            [sid, "m.t", 2, {"headers": {"k": "v"}}],
            [sid, "m.t", 3, {"reply_to": "_INBOX.2", "headers": {"a": "b", "c": ""}}],
            [sid, "m.t", 4, {"reply_to": "_INBOX.3"}],
        ])

    def test_sids_of_every_width(self):
        # The msg prefix holds the sid in 1 to 5 bytes; opts patch the params
        # header that follows it.  Walk the sid counter past each width.
        c = self.client(raw=True)
        p = self.client()
        want = [1, 127, 128, 255, 256, 65535, 65536, 65537]
        sids = []
        next_sid = 1
        for target in want:
            batch = []
            while next_sid < target:
                batch.append(request_frame(0, "sub", ["skip"]) + request_frame(0, "unsub", [next_sid]))
                next_sid += 1
            if batch:
                c.send_raw(b"".join(batch))
            sids.append(c.sub("w.%d" % target))
            next_sid += 1
        self.assertEqual(sids, want)
        for target in want:
            self.assertEqual(p.pub("w.%d" % target, target), 1)
            self.assertEqual(p.pub("w.%d" % target, -target, reply_to="r.%d" % target), 1)
        c.wait_messages(2 * len(want))
        self.assertEqual(c.messages, [m for t in want for m in ([t, "w.%d" % t, t],
                                                                 [t, "w.%d" % t, -t, {"reply_to": "r.%d" % t}])])

    def test_reply_to_and_headers_byte_identical(self):
        s = self.client(raw=True)
        p = self.client()
        s.sub("h.t")
        reply_to = "_INBOX.caf\u00e9.\u00fc\u2603.\U0001F426"
        headers = {
            "content-type": "application/msgpack",
            "\u00e9t\u00e9": "\u2603" * 50,        # str8 key, str8 value
            "long": "x" * 300,                     # str16
            "empty": "",
            "ctl": "a\x00b\x7f\nc",                # header values are not topics
        }
        p.pub("h.t", 1, reply_to=reply_to, headers=headers)
        s.wait_messages(1)
        _, _, _, opts = raw_msg(s.raw_messages[0])
        self.assertIsNotNone(opts)
        got = harness.msgpack.unpackb(opts, raw=True)
        self.assertEqual(got[b"reply_to"], reply_to.encode())
        self.assertEqual(got[b"headers"], {k.encode(): v.encode() for k, v in headers.items()})

    def test_error_notification_shape(self):
        c = self.client()
        c.notify("nope")
        c.pump_until(lambda: c.errors, what="error")
        frame = [f for f in c.frames if f[0] == NOTIFICATION][-1]
        self.assertEqual(frame[1], "error")
        code, message = frame[2]
        self.assertEqual(code, UNKNOWN_METHOD)
        self.assertIsInstance(message, str)
        self.assertIn("nope", message)

    def test_responses_in_request_order(self):
        c = self.client()
        p = self.client()
        c.pump_available()
        start = len(c.frames)
        # Request ids the client chooses, any u32, not in order.
        ids = [0, 2 ** 32 - 1, 7, 7, 123456789, 1 << 31, 3]
        kinds = ["ping", "sub", "pub", "unsub-bad", "ping", "sub-bad", "pub-bad"]
        batch = b""
        expect = []
        for n in range(1000):
            msgid = ids[n % len(ids)] if n < len(ids) else (n * 2654435761) % 2 ** 32
            kind = kinds[n % len(kinds)]
            if kind == "ping":
                batch += request_frame(msgid, "ping", [])
            elif kind == "sub":
                batch += request_frame(msgid, "sub", ["order.%d" % n])
            elif kind == "pub":
                batch += request_frame(msgid, "pub", ["order.x", n])
            elif kind == "unsub-bad":
                batch += request_frame(msgid, "unsub", [10 ** 9 + n])
            elif kind == "sub-bad":
                batch += request_frame(msgid, "sub", ["bad pattern"])
            else:
                batch += request_frame(msgid, "pub", ["$SYS.x", n])
            expect.append((msgid, kind))
        c.send_raw(batch)
        c.pump_until(lambda: len(c.frames) - start >= 1000, what="1000 responses")
        got = c.frames[start:]
        self.assertEqual([f[0] for f in got], [RESPONSE] * 1000)
        self.assertEqual([f[1] for f in got], [m for m, _ in expect])
        for f, (_, kind) in zip(got, expect):
            if kind.endswith("-bad"):
                self.assertIsNotNone(f[2], kind)
            else:
                self.assertIsNone(f[2], kind)
        p.sync()


# ------------------------------------------------------------- error codes

class BadFrame(BrokerTest):
    """Code 1: always fatal; nothing after the bad frame is read."""

    def assert_fatal(self, data, code=BAD_FRAME, after=True):
        c = self.client()
        # A ping after the bad frame, in the same write, must not be answered.
        c.send_raw(data + (request_frame(99, "ping", []) if after else b""))
        c.wait_closed()
        self.assertEqual([e[0] for e in c.errors], [code], repr(c.frames))
        self.assertNotIn(99, c.responses)
        last = c.frames[-1]
        self.assertEqual(last[:2], [NOTIFICATION, "error"])
        return last[2]

    def test_not_msgpack(self):
        self.assert_fatal(b"\xc1")
        self.assert_fatal(b"\x94\x00\x01\xc1")

    def test_not_an_array(self):
        for obj in ({"a": 1}, 1, "ping", None, b"bin", 1.5):
            with self.subTest(obj=obj):
                self.assert_fatal(pack(obj))

    def test_wrong_shapes(self):
        for obj in ([], [0], [3, 1, "ping", []], [-1, 1, "ping", []], ["0", 1, "ping", []],
                    [0, 1, "ping"], [0, 1, "ping", [], 5], [2, "ping"], [2, "ping", [], 1],
                    [None, 1, "ping", []]):
            with self.subTest(obj=obj):
                self.assert_fatal(pack(obj))

    def test_params_not_array(self):
        for obj in ([0, 1, "ping", {}], [0, 1, "ping", None], [0, 1, "ping", "x"],
                    [2, "pub", "t"], [2, "pub", {"t": 1}]):
            with self.subTest(obj=obj):
                self.assert_fatal(pack(obj))

    def test_msgid_not_u32(self):
        for msgid in (-1, 2 ** 32, 2 ** 64 - 1, 1.0, "1", None, [1], True):
            with self.subTest(msgid=msgid):
                self.assert_fatal(pack([0, msgid, "ping", []]))

    def test_method_not_string(self):
        for method in (5, None, b"ping", ["ping"], True):
            with self.subTest(method=method):
                self.assert_fatal(pack([0, 1, method, []]))
                self.assert_fatal(pack([2, method, []]))

    def test_response_from_client(self):
        self.assert_fatal(pack([1, 1, None, "pong"]))
        self.assert_fatal(pack([1, 1, [2, "x"], None]))

    def test_msgid_encodings_accepted(self):
        # Any encoding of an integer below 2^32: uint8..uint64, non-negative int8..int64.
        c = self.client()
        ping = pack("ping") + b"\x90"
        for enc, msgid in ((b"\x05", 5), (b"\xcc\x06", 6), (b"\xcd\x00\x07", 7),
                           (b"\xce\xff\xff\xff\xff", 2 ** 32 - 1), (b"\xcf" + (8).to_bytes(8, "big"), 8),
                           (b"\xd0\x09", 9), (b"\xd1\x00\x0a", 10), (b"\xd2\x00\x00\x00\x0b", 11),
                           (b"\xd3" + (12).to_bytes(8, "big"), 12)):
            with self.subTest(enc=enc.hex()):
                c.send_raw(b"\x94\x00" + enc + ping)
                self.assertEqual(c.wait_response(msgid), (None, "pong"))

    def test_error_after_valid_frames(self):
        c = self.client()
        c.send_raw(request_frame(50, "ping", []) + b"\xc1" + request_frame(51, "ping", []))
        c.wait_closed()
        self.assertEqual(c.responses.get(50), (None, "pong"))
        self.assertNotIn(51, c.responses)
        self.assertEqual([e[0] for e in c.errors], [BAD_FRAME])

    def test_others_unaffected(self):
        s = self.client()
        sid = s.sub("live")
        self.assert_fatal(b"\xc1")
        p = self.client()
        self.assertEqual(p.pub("live", 1), 1)
        s.wait_messages(1)
        self.assertEqual(s.messages, [[sid, "live", 1]])


def nested(depth, leaf=1, kind="array"):
    """A payload of DEPTH nested containers (0: LEAF itself)."""
    obj = leaf
    for _ in range(depth):
        obj = [obj] if kind == "array" else {"k": obj}
    return obj


class Nesting(BrokerTest):
    # [2, "pub", [topic, payload]]: the frame is level 1, params level 2, so a
    # payload of D nested containers reaches level 2 + D.
    def test_depth_32_accepted(self):
        s = self.client(raw=True)
        p = self.client()
        s.sub("deep")
        for kind in ("array", "map"):
            with self.subTest(kind=kind):
                payload = pack(nested(30, kind=kind))
                p.send_raw(pub_frame_raw("deep", payload, msgid=7))
                self.assertEqual(p.wait_response(7), (None, 1))
        s.wait_messages(2)
        self.assertEqual([raw_msg(m)[2] for m in s.raw_messages],
                         [pack(nested(30, kind="array")), pack(nested(30, kind="map"))])

    def test_depth_33_is_fatal(self):
        s = self.client()
        s.sub("deep")
        for kind in ("array", "map"):
            with self.subTest(kind=kind):
                p = self.client()
                p.send_raw(pub_frame_raw("deep", pack(nested(31, kind=kind)), msgid=7))
                p.wait_closed()
                self.assertEqual([e[0] for e in p.errors], [BAD_FRAME])
                self.assertNotIn(7, p.responses)
        # Depth counts the envelope too: in opts, in hello's map.
        p = self.client()
        p.send_raw(request_frame(8, "hello", [nested(31, kind="map")]))
        p.wait_closed()
        self.assertEqual([e[0] for e in p.errors], [BAD_FRAME])
        s.sync()
        self.assertEqual(s.messages, [])


class UnknownMethod(BrokerTest):
    def test_request_gets_response_error(self):
        c = self.client()
        for method in ("nope", "PING", "pub ", "", "\u00e9"):
            with self.subTest(method=method):
                code, message = c.request_error(method)
                self.assertEqual(code, UNKNOWN_METHOD)
                self.assertIsInstance(message, str)
        self.assertEqual(c.ping(), "pong")

    def test_notification_gets_error_notification(self):
        c = self.client()
        c.notify("nope", 1, 2)
        self.assertEqual(c.wait_error()[0], UNKNOWN_METHOD)
        c.notify("msg", 1, "t", 2)   # the broker's own method is not a client's
        self.assertEqual(c.wait_error()[0], UNKNOWN_METHOD)
        self.assertEqual(c.ping(), "pong")
        self.assertFalse(c.closed)


BAD_TOPICS = [
    "",                    # empty
    "a" * 256,             # too long
    "a..b", ".a", "a.", ".",  # empty tokens
    "a b", " ", "a\tb", "a\x01b", "a\x7fb", "a\nb", "a\x00b",  # space, control bytes
    "a.*", "*", ">", "a.>", "a*", "a.b>", "*a",  # wildcards in a published topic
]
BAD_UTF8 = [b"a\xff", b"\xc0\x80", b"a.\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\x80"]
BAD_PATTERNS = ["", "a" * 256, "a.>.c", "a*", "a.b>", "a..*", ">.a", "a.**", "a b", "a.\x01",
                ".*", "*.", "a.>>"]
GOOD_TOPICS = ["a", "a" * 255, "orders.eu.new", "caf\u00e9.\u00fc", "a-b_c.d:e/f", "1.2.3",
               "\u0085", "a." + "b." * 100 + "c"]
GOOD_PATTERNS = ["*", ">", "a.*.c", "a.>", "*.*", "$SYS.>", "*.b.>", "a" * 255]


def str_bytes(b):
    """A MessagePack str holding bytes B as they are (valid UTF-8 or not)."""
    return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b


class BadTopic(BrokerTest):
    def test_bad_published_topics(self):
        p = self.client()
        for topic in BAD_TOPICS:
            with self.subTest(topic=topic):
                self.assertEqual(p.request_error("pub", topic, 1)[0], BAD_TOPIC)
                p.notify("pub", topic, 1)
                self.assertEqual(p.wait_error()[0], BAD_TOPIC)
        self.assertEqual(p.ping(), "pong")

    def test_bad_topics_between_good_ones(self):
        # A topic repeated from the last publication is not checked again: a bad one never is it.
        p = self.client()
        for topic in BAD_TOPICS + ["$SYS.x"]:
            with self.subTest(topic=topic):
                self.assertEqual(p.pub("ok.topic", 1), 0)
                self.assertEqual(p.pub("ok.topic", 2), 0)
                self.assertIn(p.request_error("pub", topic, 1)[0], (BAD_TOPIC, FORBIDDEN))
                self.assertIn(p.request_error("pub", topic, 1)[0], (BAD_TOPIC, FORBIDDEN))
        self.assertEqual(p.ping(), "pong")

    def test_bad_utf8(self):
        p = self.client()
        for i, b in enumerate(BAD_UTF8):
            with self.subTest(topic=b):
                p.send_raw(b"\x94\x00" + pack(100 + i) + pack("pub") + b"\x92" + str_bytes(b) + b"\x01")
                err, _ = p.wait_response(100 + i)
                self.assertEqual(err[0], BAD_TOPIC)
                p.send_raw(b"\x94\x00" + pack(200 + i) + pack("sub") + b"\x91" + str_bytes(b))
                err, _ = p.wait_response(200 + i)
                self.assertEqual(err[0], BAD_TOPIC)

    def test_bad_patterns(self):
        c = self.client()
        for pattern in BAD_PATTERNS:
            with self.subTest(pattern=pattern):
                self.assertEqual(c.request_error("sub", pattern)[0], BAD_TOPIC)

    def test_good_topics_and_patterns(self):
        c = self.client()
        for pattern in GOOD_PATTERNS:
            with self.subTest(pattern=pattern):
                self.assertIsInstance(c.sub(pattern), int)
        for topic in GOOD_TOPICS:
            with self.subTest(topic=topic):
                sid = c.sub(topic)
                self.assertGreaterEqual(c.pub(topic, 1), 1)
                c.wait_messages(1)
                c.sync()
                self.assertIn([sid, topic, 1], c.messages)
                c.unsub(sid)
                c.messages.clear()


class TooLarge(BrokerTest):
    BROKER = {"max_payload": "4k"}

    def test_frame_over_limit_is_fatal(self):
        c = self.client()
        frame = pub_frame_raw("big", pack(b"x" * 5000), msgid=5)
        c.try_send_raw(frame + request_frame(6, "ping", []))
        c.wait_closed()
        self.assertEqual([e[0] for e in c.errors], [TOO_LARGE])
        self.assertEqual(c.responses, {})

    def test_array32_header_refused_from_first_bytes(self):
        c = self.client()
        # A valid frame, then only the five bytes of a header that claims
        # four billion elements: the error must come without another byte.
        c.send_raw(request_frame(1, "ping", []) + b"\xdd\xff\xff\xff\xff")
        c.wait_closed()
        self.assertEqual(c.responses.get(1), (None, "pong"))
        self.assertEqual([e[0] for e in c.errors], [TOO_LARGE])

    def test_huge_claims_inside_a_frame(self):
        heads = [
            b"\x94\x00\x01\xa3pub\x92\xa1t\xdd\xff\xff\xff\xff",   # array32 payload
            b"\x94\x00\x01\xa3pub\x92\xa1t\xdf\x80\x00\x00\x00",   # map32 payload
            b"\x94\x00\x01\xa3pub\x92\xa1t\xdb\xff\xff\xff\xff",   # str32 payload
            b"\x94\x00\x01\xa3pub\x92\xa1t\xc6\x00\x01\x00\x00",   # bin32 of 64 KiB
            b"\x94\x00\x01\xa3pub\x92\xa1t\xc9\xff\xff\xff\xf0\x01",  # ext32
            b"\x94\x00\x01\xa3pub\xdc\xff\xff",                     # params array16
            b"\xdc\x10\x00",                                        # the frame's own array16
        ]
        for head in heads:
            with self.subTest(head=head.hex()):
                c = self.client()
                c.send_raw(head)
                c.wait_closed()
                self.assertEqual([e[0] for e in c.errors], [TOO_LARGE])


class Forbidden(BrokerTest):
    def test_pub_to_system_topic(self):
        c = self.client()
        self.assertEqual(c.request_error("pub", "$SYS.broker", 1)[0], FORBIDDEN)
        c.notify("pub", "$SYS.broker", 1, {"retain": True})
        self.assertEqual(c.wait_error()[0], FORBIDDEN)
        self.assertEqual(c.ping(), "pong")

    def test_sub_to_system_topic_is_allowed(self):
        c = self.client()
        self.assertIsInstance(c.sub("$SYS.>"), int)
        self.assertIsInstance(c.sub("$SYS.broker.stats"), int)


class Limit(BrokerTest):
    BROKER = {"max_subscriptions": 2}

    def test_code_10_on_max_subscriptions(self):
        # Code 10 in depth: test_limits.py (subscriptions, connections, idle).
        c = self.client()
        c.sub("a")
        c.sub("b")
        self.assertEqual(c.request_error("sub", "c")[0], LIMIT)
        self.assertEqual(c.ping(), "pong")


# ------------------------------------------------------ payload byte for byte

# Every MessagePack type, canonical and not: the broker must hand back the
# very bytes it was given.
PAYLOADS = {
    "nil": b"\xc0",
    "false": b"\xc2",
    "true": b"\xc3",
    "posfixint": b"\x05",
    "negfixint": b"\xe0",
    "negfixint_-1": b"\xff",
    "uint8": b"\xcc\xff",
    "uint8_holding_5": b"\xcc\x05",
    "uint16": b"\xcd\x12\x34",
    "uint16_holding_1": b"\xcd\x00\x01",
    "uint32": b"\xce\xde\xad\xbe\xef",
    "uint64": b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    "uint64_holding_0": b"\xcf" + b"\x00" * 8,
    "int8": b"\xd0\x80",
    "int8_holding_1": b"\xd0\x01",
    "int16": b"\xd1\x80\x00",
    "int32": b"\xd2\x80\x00\x00\x00",
    "int64": b"\xd3\x80" + b"\x00" * 7,
    "int64_holding_-1": b"\xd3" + b"\xff" * 8,
    "float32": b"\xca" + struct.pack(">f", 1.5),
    "float32_nan": b"\xca\x7f\xc0\x00\x01",
    "float64": b"\xcb" + struct.pack(">d", -2.25),
    "float64_neg_zero": b"\xcb\x80" + b"\x00" * 7,
    "fixstr": b"\xa3abc",
    "fixstr_empty": b"\xa0",
    "str8_holding_3": b"\xd9\x03abc",
    "str16_holding_2": b"\xda\x00\x02hi",
    "str32_holding_1": b"\xdb\x00\x00\x00\x01z",
    "str_utf8": pack("caf\u00e9 \u2603 \U0001F426"),
    "str_invalid_utf8": b"\xa2\xff\xfe",
    "bin8": b"\xc4\x03\x00\x01\x02",
    "bin8_empty": b"\xc4\x00",
    "bin16_holding_3": b"\xc5\x00\x03abc",
    "bin32_holding_1": b"\xc6\x00\x00\x00\x01\x00",
    "fixext1": b"\xd4\x05\x01",
    "fixext2": b"\xd5\x05\x01\x02",
    "fixext4": b"\xd6\x7f\x01\x02\x03\x04",
    "fixext8": b"\xd7\x80" + bytes(range(8)),
    "fixext16": b"\xd8\x01" + bytes(range(16)),
    "ext8": b"\xc7\x03\x02abc",
    "ext8_empty": b"\xc7\x00\x02",
    "ext16": b"\xc8\x00\x02\x09ab",
    "ext32": b"\xc9\x00\x00\x00\x01\x09a",
    "timestamp32": b"\xd6\xff\x00\x00\x00\x01",
    "fixarray_empty": b"\x90",
    "fixmap_empty": b"\x80",
    "array16_empty": b"\xdc\x00\x00",
    "array32_empty": b"\xdd\x00\x00\x00\x00",
    "map16_empty": b"\xde\x00\x00",
    "map32_empty": b"\xdf\x00\x00\x00\x00",
    "array16_holding_2": b"\xdc\x00\x02\x01\xc0",
    "map32_holding_1": b"\xdf\x00\x00\x00\x01\xa1k\xcc\x01",
    "map_non_str_keys": b"\x83\x01\x02\xc0\xc3\xc4\x01x\xa1v",
    "map_duplicate_keys": b"\x82\xa1k\x01\xa1k\x02",
    "nested": pack({"a": [1, {"b": [None, True, 2.5, b"\x00\xff", "s"]}], "c": {}, "d": []}),
    "nested_non_canonical": b"\xde\x00\x01\xd9\x01k\xdc\x00\x02\xcc\x05\xdd\x00\x00\x00\x01\xc5\x00\x01\xff",
}


class PayloadBytes(BrokerTest):
    """The broker forwards a payload as the bytes it was given: no re-encoding."""

    def roundtrip(self, payloads, opts=None, notify=False):
        s = self.client(raw=True)
        p = self.client()
        sid = s.sub("bytes.>")
        names = list(payloads)
        for i, name in enumerate(names):
            topic = "bytes.%d" % i
            p.send_raw(pub_frame_raw(topic, payloads[name], opts, msgid=None if notify else 1000 + i))
            if not notify:
                self.assertEqual(p.wait_response(1000 + i), (None, 1), name)
        s.wait_messages(len(names))
        for i, name in enumerate(names):
            with self.subTest(payload=name):
                got_sid, topic, payload, got_opts = raw_msg(s.raw_messages[i])
                self.assertEqual(got_sid, sid)
                self.assertEqual(unpack(topic), "bytes.%d" % i)
                self.assertEqual(payload.hex(), payloads[name].hex())
                self.assertEqual(got_opts is not None, opts is not None)

    def test_every_type_request(self):
        self.roundtrip(PAYLOADS)

    def test_every_type_notification(self):
        self.roundtrip(PAYLOADS, notify=True)

    def test_every_type_with_opts(self):
        self.roundtrip(PAYLOADS, opts={"reply_to": "_INBOX.x", "headers": {"h": "v"}})

    def test_topic_bytes_kept(self):
        # The topic travels as sent too: a str8 holding a short topic.
        s = self.client(raw=True)
        p = self.client()
        s.sub("t8")
        p.send_raw(b"\x94\x00\x01\xa3pub\x92" + str8("t8") + b"\xcc\x05")
        self.assertEqual(p.wait_response(1), (None, 1))
        s.wait_messages(1)
        _, topic, payload, _ = raw_msg(s.raw_messages[0])
        self.assertEqual(topic, str8("t8"))
        self.assertEqual(payload, b"\xcc\x05")

    def test_large_payloads(self):
        # Sizes around the broker's copy / share-by-reference thresholds and
        # beyond one read of the socket.
        blobs = {}
        for n in (1, 8 * 1024 - 40, 8 * 1024, 9000, 64 * 1024, 64 * 1024 + 7, 300 * 1024, 900 * 1024):
            data = bytes((i * 7 + n) & 0xff for i in range(n))
            blobs["bin32_%d" % n] = b"\xc6" + struct.pack(">I", n) + data
            blobs["str32_%d" % n] = b"\xdb" + struct.pack(">I", n) + b"a" * n
        self.roundtrip(blobs)
        self.roundtrip(blobs, opts={"reply_to": "r.t"}, notify=True)

    def test_non_canonical_envelope(self):
        # The envelope itself in wide encodings: array16 frame, uint32 kind
        # and msgid, str8 method, array32 params.
        c = self.client()
        frame = (b"\xdc\x00\x04" + b"\xce\x00\x00\x00\x00" + b"\xce\x00\x00\x00\x2a" +
                 str8("ping") + b"\xdd\x00\x00\x00\x00")
        c.send_raw(frame)
        self.assertEqual(c.wait_response(42), (None, "pong"))


if __name__ == "__main__":
    harness.main()
