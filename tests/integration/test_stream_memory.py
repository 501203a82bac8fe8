"""test_stream_memory.py - a 1 GB stream costs the broker its index, not its size.

Fills a stream with 1 GiB of 64 KiB messages, restarts the broker on it,
and compares its resident memory with that of a broker on an empty stream:
after the restart, and again after a consumer has read the whole stream,
the difference must stay under 64 MiB (docs/durability.md).  Also times the
restart, which reads the index files and the last segment, not the stream.
Runs alone (its RSS means little beside other brokers), and skips the
memory bound under sanitizers, whose shadow memory follows what is read.
"""

import os
import signal
import sys
import time
import unittest

from harness import SANITIZED, DEADLINE, Broker, BrokerTest, Client

GIB = 1 << 30
MSG = 64 * 1024
WINDOW = 16


class StreamMemoryTest(BrokerTest):
    AUTO_START = False

    def new_broker(self):
        b = Broker({"log_level": "notice"}, None)
        self.brokers.append(b)
        b.write_config({"log_level": "notice"}, None,
                       "[store]\ndir = %s\n[stream big]\npatterns = big.>\n"
                       % os.path.join(b.dir.name, "store"))
        return b.start()

    def test_gib_stream_within_64_mib_of_empty(self):
        empty = self.new_broker()
        c = Client(empty.address())
        self.assertEqual(c.request("stream_info", "big")["messages"], 0)
        c.close()
        time.sleep(0.5)
        rss_empty = empty.rss_kib()

        b = self.new_broker()
        c = Client(b.address())
        payload = b"\xa5" * MSG
        n = GIB // MSG
        sent = 0
        ids = []
        while sent < n or ids:
            while sent < n and len(ids) < WINDOW:
                ids.append(c.send_request("pub", "big.x", payload, {"stream": "big"}))
                sent += 1
            c.wait_response(ids.pop(0), timeout=DEADLINE * 4)
        info = c.request("stream_info", "big")
        self.assertEqual(info["messages"], n)
        self.assertGreater(info["bytes"], GIB)
        c.close()

        b.stop()
        b.log.close()
        t0 = time.monotonic()
        b.start()
        started = time.monotonic() - t0
        c = Client(b.address())
        self.assertEqual(c.request("stream_info", "big")["last_seq"], n)
        time.sleep(0.5)
        rss_restarted = b.rss_kib()
        # read it all once, the way a new consumer would
        c.request("consume", "big", {"start": "all", "max_pending": 100000})
        got = 0
        while got < n:
            c.pump_until(lambda: len(c.messages) > 0, timeout=DEADLINE * 4)
            got += len(c.messages)
            c.messages.clear()
        rss_consumed = b.rss_kib()
        c.close()
        sys.stderr.write("test_stream_memory: RSS empty %d KiB, 1 GiB stream after restart %d KiB, "
                         "after reading it all %d KiB; restart took %.2f s\n"
                         % (rss_empty, rss_restarted, rss_consumed, started))
        self.assertLess(started, DEADLINE)
        if SANITIZED:
            return
        self.assertLess(rss_restarted - rss_empty, 64 * 1024)
        self.assertLess(rss_consumed - rss_empty, 64 * 1024)


if __name__ == "__main__":
    unittest.main(verbosity=2)
