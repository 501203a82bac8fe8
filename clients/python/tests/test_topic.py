"""test_topic.py - the client's topic rules, and that they are the broker's."""

import unittest

import support
from support import BrokerCase

import pigeon
from pigeon import topic

VALID_TOPICS = ["a", "orders.eu.new", "$SYS.broker.stats", "café.ü", "a-b_c.D9", "\u0085",
                "x" * 255, "é" * 127 + "x", "🐦.🐦", "a.b.c.d.e.f.g"]
INVALID_TOPICS = ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "a\tb", "*", ">", "a*",
                  "b>c", "x" * 256, "é" * 128, "a\x7fb", "a\x00", "bad\udc80", "a.\n"]
VALID_PATTERNS = ["a.*.c", "a.>", ">", "*", "*.*", "$SYS.>", "a", "*.b.>", "café.*"]
INVALID_PATTERNS = ["a.>.c", "a*", "a.b>", "a..*", "", ".", "a.>.>", "*a", "> ", "a.**",
                    ">.a", "x" * 256]


class Rules(unittest.TestCase):
    def test_topics(self):
        for t in VALID_TOPICS:
            with self.subTest(t=t):
                topic.check_topic(t)
                self.assertTrue(topic.is_valid_topic(t))
        for t in INVALID_TOPICS:
            with self.subTest(t=t), self.assertRaises(pigeon.BadTopic) as cm:
                topic.check_topic(t)
            self.assertEqual(cm.exception.code, 4)
            self.assertIsInstance(cm.exception, ValueError)

    def test_patterns(self):
        for p in VALID_PATTERNS + VALID_TOPICS:
            with self.subTest(p=p):
                topic.check_pattern(p)
        for p in INVALID_PATTERNS:
            with self.subTest(p=p), self.assertRaises(pigeon.BadTopic):
                topic.check_pattern(p)

    def test_first_fault_named(self):
        cases = [
            ("", False, "empty topic"),
            ("x" * 256, False, "longer than 255 bytes"),
            ("a b", False, "space or control"),
            ("a..b", False, "empty token"),
            ("a.", False, "empty token"),
            ("a.*", False, "wildcard in a published topic"),
            ("a*", True, "wildcard inside a token"),
            ("a.>.c", True, "'>' before the last token"),
            ("a\udc80", False, "not valid UTF-8"),
            ("a b..", False, "space or control"),   # the first fault, left to right
        ]
        for s, is_pattern, phrase in cases:
            with self.subTest(s=s), self.assertRaises(pigeon.BadTopic) as cm:
                (topic.check_pattern if is_pattern else topic.check_topic)(s)
            self.assertIn(phrase, str(cm.exception))

    def test_not_a_str(self):
        for bad in (b"a.b", None, 7):
            with self.subTest(bad=bad), self.assertRaises(pigeon.BadTopic):
                topic.check_topic(bad)

    def test_matches(self):
        yes = [("a.*.c", "a.b.c"), ("a.>", "a.b"), ("a.>", "a.b.c"), (">", "a"),
               ("*", "a"), ("$SYS.>", "$SYS.x"), ("a", "a"), ("*.*", "x.y")]
        no = [("a.*.c", "a.c"), ("a.*.c", "a.b.b.c"), ("a.>", "a"), (">", "$SYS.x"),
              ("*.x", "$SYS.x"), ("a", "b"), ("a.b", "a"), ("*", "a.b")]
        for p, t in yes:
            self.assertTrue(topic.matches(p, t), (p, t))
        for p, t in no:
            self.assertFalse(topic.matches(p, t), (p, t))


class SameAsBroker(BrokerCase):
    """Every string above gets the same verdict from the client as from the
    broker (pub and sub sent raw through the harness client)."""

    def test_topics(self):
        raw = self.broker.client()
        for t in VALID_TOPICS + INVALID_TOPICS:
            if "\udc80" in t:
                continue  # a str with a lone surrogate cannot even be packed
            with self.subTest(t=t):
                err = self._pub_error(raw, t)
                if topic.is_valid_topic(t):
                    self.assertIn(err, (None, harness_codes.FORBIDDEN))  # '$' topics
                else:
                    self.assertEqual(err, harness_codes.BAD_TOPIC)
        raw.close()

    def test_patterns(self):
        raw = self.broker.client()
        for p in VALID_PATTERNS + INVALID_PATTERNS + VALID_TOPICS + INVALID_TOPICS:
            if "\udc80" in p:
                continue
            with self.subTest(p=p):
                err, _ = raw.wait_response(raw.send_request("sub", p))
                self.assertEqual(err is None, topic.is_valid_pattern(p))
                if err is not None:
                    self.assertEqual(err[0], harness_codes.BAD_TOPIC)
        raw.close()

    def test_invalid_utf8_refused_by_both(self):
        raw = self.broker.client()
        # b"a\xff" as a MessagePack str: not UTF-8, refused with code 4.
        raw.send_raw(b"\x94\x00\x63\xa3pub\x92\xa2a\xff\xc0")
        err, _ = raw.wait_response(0x63)
        self.assertEqual(err[0], harness_codes.BAD_TOPIC)
        raw.close()

    def test_client_refuses_without_round_trip(self):
        c = self.connect()
        for t in INVALID_TOPICS:
            with self.subTest(t=t), self.assertRaises(pigeon.BadTopic):
                c.publish(t, 1)
        with self.assertRaises(pigeon.Forbidden):
            c.publish("$SYS.x", 1)
        self.assertGreaterEqual(c.ping(), 0)
        self.assertNotIn("bad topic", self.broker.log_text())

    @staticmethod
    def _pub_error(raw, t):
        err, _ = raw.wait_response(raw.send_request("pub", t, 1))
        return None if err is None else err[0]


harness_codes = support.harness

if __name__ == "__main__":
    support.main()
