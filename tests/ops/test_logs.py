"""test_logs.py - logs an operator can act on: one info line per connection
opened and closed (peer, listener, reason), rate-limited warnings for
protocol errors and slow consumers, and, under systemd (JOURNAL_STREAM
naming pigeond's own stderr), "<N>level" priority prefixes without
timestamps.
"""

import os
import re
import socket
import time

import msgpack

from opslib import Broker, BrokerTest, main, wait_for
from harness import pub_frame_raw  # noqa: E402  (on the path opslib sets)

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z pigeond\[\d+\]: (debug|info|notice|warning|error) ")
JOURNAL = re.compile(r"^<([3-7])>(debug|info|notice|warning|error) ")
PRIORITY = {"debug": "7", "info": "6", "notice": "5", "warning": "4", "error": "3"}


class Journal(BrokerTest):
    AUTO_START = False

    def start_journal_broker(self, stream_of_log=True, **kw):
        b = Broker(**kw)
        self.brokers.append(b)
        open(b.log_path, "ab").close()
        st = os.stat(b.log_path if stream_of_log else b.conf_path)
        b.env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        return b.start()

    def test_priority_prefixes(self):
        b = self.start_journal_broker(broker={"log_level": "info"})
        c = self.client(broker=b)
        cid = c.hello_result["client_id"]
        c.close()
        b.wait_log(r"client %d .*disconnected" % cid)
        b.write_text("[broker]\nnot_a_key = 1\n")
        b.reload()  # logs an error
        lines = [l for l in b.log_text().splitlines() if l]
        self.assertTrue(lines)
        for line in lines:
            m = JOURNAL.match(line)
            self.assertIsNotNone(m, "not a journal line: %r" % line)
            self.assertEqual(m.group(1), PRIORITY[m.group(2)], line)
            self.assertIsNone(STAMPED.match(line))
        text = "\n".join(lines)
        self.assertRegex(text, r"(?m)^<5>notice pigeond \S+ started: ")
        self.assertRegex(text, r"(?m)^<6>info client %d connected from 127\.0\.0\.1:\d+ \(listener main\)$" % cid)
        self.assertRegex(text, r"(?m)^<3>error SIGHUP: .*not_a_key")

    def test_inherited_stream_is_ignored(self):
        # JOURNAL_STREAM names another file (stderr was redirected): plain lines.
        b = self.start_journal_broker(stream_of_log=False)
        self.client(broker=b).ping()
        lines = [l for l in b.log_text().splitlines() if l]
        for line in lines:
            self.assertIsNotNone(STAMPED.match(line), line)


class ConnectionLines(BrokerTest):
    BROKER = {"log_level": "info", "idle_timeout": "1s", "max_payload": "1k"}
    LISTENERS = {"edge": {"bind": "127.0.0.1:0"}}

    def test_open_and_close_lines(self):
        b = self.broker
        bye = self.client()
        idle = self.client()
        big = self.client()
        ids = {n: c.hello_result["client_id"] for n, c in (("bye", bye), ("idle", idle), ("big", big))}
        port = {n: c.sock.getsockname()[1] for n, c in (("bye", bye), ("idle", idle), ("big", big))}
        for n in ids:
            b.wait_log(r"info client %d connected from 127\.0\.0\.1:%d \(listener edge\)$" % (ids[n], port[n]))
        bye.close()
        big.send_raw(msgpack.packb([2, "pub", ["t", b"x" * 2000]]))
        idle.wait_closed()
        big.wait_closed()
        reasons = {"bye": "closed by client", "idle": "idle timeout", "big": "frame too large"}
        for n, why in reasons.items():
            m = b.wait_log(r"info client %d \(127\.0\.0\.1:%d\) disconnected: %s; in (\d+) msgs (\d+) bytes, "
                           r"out (\d+) msgs (\d+) bytes, dropped (\d+), undelivered (\d+), (\d+) ms$" % (ids[n], port[n], re.escape(why)))
            self.assertIsNotNone(m)
        for n in ids:  # one line each way
            self.assertEqual(b.log_count(r"client %d connected from" % ids[n]), 1)
            self.assertEqual(b.log_count(r"client %d \(.*\) disconnected" % ids[n]), 1)


class RateLimited(BrokerTest):
    BROKER = {"log_level": "info", "max_outbound": "1k", "max_payload": "1k"}

    def test_protocol_error_warnings(self):
        b = self.broker
        host, port = b.address().rsplit(":", 1)
        start = time.monotonic()
        for _ in range(40):
            s = socket.create_connection((host, int(port)))
            s.sendall(b"\xc1")
            s.recv(4096)  # the error, then EOF
            s.close()
        elapsed = time.monotonic() - start
        wait_for(lambda: b.log_count(r"disconnected: bad frame") == 40, what="40 closes")
        warnings = b.log_count(r"warning client \d+ .*: ")
        # A burst of 10, then one a second.
        self.assertGreaterEqual(warnings, 10)
        self.assertLessEqual(warnings, 10 + int(elapsed) + 1)
        # Once the bucket refills, what was held back is reported on its own,
        # with no further warning needed to carry it, and every bad frame is
        # accounted for: logged, or counted as suppressed.
        m = b.wait_log(r"warning (\d+) similar warnings suppressed \(bad frames\)")
        self.assertGreater(int(m.group(1)), 0)
        logged = b.log_count(r"warning client \d+ .*: ")
        counted = sum(int(n) for n in re.findall(r"(\d+) similar warnings suppressed", b.log_text()))
        self.assertEqual(logged + counted, 40)

    def test_slow_consumer_warnings(self):
        b = self.broker
        host, port = b.address().rsplit(":", 1)
        socks = []
        for _ in range(25):
            s = socket.create_connection((host, int(port)))
            s.sendall(msgpack.packb([0, 1, "sub", ["s"]]))
            socks.append(s)
            self.addCleanup(s.close)
        for s in socks:
            s.settimeout(30)
            s.recv(64)  # the sub response
        pub = self.client()
        # Three 600-byte messages in one write reach pigeond in one read, so
        # each subscriber's queue passes max_outbound (1k) at the second.
        pub.send_raw(pub_frame_raw("s", msgpack.packb(b"y" * 600)) * 3)
        wait_for(lambda: b.log_count(r"disconnected: slow consumer") == 25, what="25 slow closes")
        warnings = b.log_count(r"warning client \d+ \(127\.0\.0\.1:\d+\): slow consumer, disconnecting")
        self.assertEqual(warnings, 10)


if __name__ == "__main__":
    os.environ.pop("JOURNAL_STREAM", None)
    main()
