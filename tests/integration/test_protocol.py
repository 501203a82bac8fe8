"""test_protocol.py - every row of the protocol's tables against a real pigeond."""

import harness
from harness import BrokerTest


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


if __name__ == "__main__":
    harness.main()
