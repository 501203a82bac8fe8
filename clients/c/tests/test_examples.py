"""test_examples.py - libpigeon's example programs against a real pigeond.

publisher -> subscriber with a COUNT (the subscriber must stop at COUNT even
when more arrived in the same read), and requester -> responder.  Run by
meson with the examples as dependencies, so that `meson test` builds them
(with -Werror in CI) and they keep working.

The broker comes from tests/integration/harness.py ($PIGEON_HARNESS_DIR),
the programs from $PIGEON_EXAMPLES_DIR.  Waits are deadlines, never timing
asserts.
"""

import os
import select
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("PIGEON_HARNESS_DIR",
                                  os.path.join(os.path.dirname(__file__), "../../../tests/integration")))
import harness  # noqa: E402

EXAMPLES = os.environ.get("PIGEON_EXAMPLES_DIR",
                          os.path.join(os.path.dirname(__file__), "../../../build/clients/c/examples"))
DEADLINE = harness.DEADLINE


class Examples(unittest.TestCase):
    def setUp(self):
        self.broker = harness.Broker().start()
        self.addr = self.broker.address()
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
        code = self.broker.stop()
        log = self.broker.log_text()
        self.broker.close()
        self.assertEqual(code, 0, "pigeond did not exit cleanly:\n" + log[-4000:])
        self.assertNotIn("AddressSanitizer", log)

    def example(self, name, *args):
        p = subprocess.Popen([os.path.join(EXAMPLES, "pigeon-example-" + name)] + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def run_example(self, name, *args):
        p = self.example(name, *args)
        out, err = p.communicate(timeout=DEADLINE)
        return p.returncode, out.decode(), err.decode()

    def wait_stderr(self, p, text):
        seen = b""
        end = time.monotonic() + DEADLINE
        while text.encode() not in seen:
            left = end - time.monotonic()
            self.assertGreater(left, 0, "no %r on stderr: %r" % (text, seen))
            r, _, _ = select.select([p.stderr], [], [], min(left, 0.5))
            if r:
                chunk = os.read(p.stderr.fileno(), 4096)
                self.assertTrue(chunk, "exited before %r: %r" % (text, seen))
                seen += chunk

    def test_subscriber_stops_at_count(self):
        sub = self.example("subscriber", self.addr, "demo.>", "3")
        self.wait_stderr(sub, "subscriber: connected")
        # The subscription follows hello on the subscriber's socket, with no
        # answer it prints: publish until the subscriber has had enough.
        end = time.monotonic() + DEADLINE
        while sub.poll() is None:
            self.assertLess(time.monotonic(), end, "the subscriber never stopped")
            code, out, err = self.run_example("publisher", self.addr, "demo.ticks", "10")
            self.assertEqual(code, 0, err)
            self.assertEqual(out, "published 10 messages to demo.ticks\n")
            try:
                sub.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        out, err = sub.communicate(timeout=DEADLINE)
        self.assertEqual(sub.returncode, 0, err)
        lines = out.decode().splitlines()
        self.assertEqual(lines, ['demo.ticks {"n"=>%d, "text"=>"tick %d"}' % (i, i)
                                 for i in range(3)])

    def test_requester_and_responder(self):
        resp = self.example("responder", self.addr, "demo.echo", "1")
        # Until the responder's subscription is in place the requester fails
        # at once with "no responders" (exit 1): retry until it is.
        end = time.monotonic() + DEADLINE
        while True:
            code, out, err = self.run_example("requester", self.addr, "demo.echo", "hi")
            if code == 0:
                break
            self.assertIn("no responders", err)
            self.assertLess(time.monotonic(), end, "the responder never answered")
            time.sleep(0.05)
        self.assertEqual(out, '{"echo"=>"hi", "n"=>1}\n')
        _, err = resp.communicate(timeout=DEADLINE)
        self.assertEqual(resp.returncode, 0, err)

    def test_connect_failures_give_the_reason(self):
        # The system's reason, as the CLI gives it, not only "cannot connect".
        for name in ("publisher", "requester"):
            with self.subTest(example=name):
                code, _, err = self.run_example(name, "127.0.0.1:1")
                self.assertEqual(code, 2)
                self.assertEqual(err, "%s: connect to 127.0.0.1:1: Connection refused\n" % name)
        # An address that is none of the forms is named, with what is wrong.
        for name in ("publisher", "subscriber", "responder"):
            with self.subTest(example=name):
                code, _, err = self.run_example(name, "127.0.0.1:99999")
                self.assertNotEqual(code, 0)
                self.assertEqual(err, "%s: bad address '127.0.0.1:99999': the port must be a "
                                 "number from 1 to 65535\n" % name)

    def test_requester_alone_fails(self):
        code, _, err = self.run_example("requester", self.addr, "demo.echo")
        self.assertEqual(code, 1)
        self.assertIn("no responders", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
