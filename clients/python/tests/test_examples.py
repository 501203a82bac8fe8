"""test_examples.py - the programs in examples/ run, and talk to each other."""

import os
import subprocess
import sys

import support
from support import DEADLINE, BrokerCase

EXAMPLES = os.path.join(support.HERE, "..", "examples")


class Examples(BrokerCase):
    def run_example(self, name, *args, **kw):
        return subprocess.Popen([sys.executable, os.path.join(EXAMPLES, name)] + list(args),
                                env=dict(os.environ, PIGEON_SERVER=self.broker.address()),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    def finish(self, proc):
        out, err = proc.communicate(timeout=DEADLINE)
        self.assertEqual(proc.returncode, 0, err)
        return out

    def test_publisher_and_subscriber(self):
        sub = self.run_example("subscriber.py", "--count", "3")
        self.assertEqual(sub.stdout.readline().strip(), "subscribed")
        out = self.finish(self.run_example("publisher.py", "--count", "3", "--interval", "0"))
        self.assertIn("published order 3 to 1 subscriber(s)", out)
        out = self.finish(sub)
        self.assertIn("orders.new: order 3, total 3.75, headers {'source': 'example'}", out)

    def test_requester_and_responder(self):
        resp = self.run_example("responder.py", "--count", "3")
        self.assertEqual(resp.stdout.readline().strip(), "serving math.add")
        out = self.finish(self.run_example("requester.py"))
        self.assertEqual(out.splitlines(), ["1 + 2 = 3", "1099511627776 + 1099511627776 = "
                                            "2199023255552", "0.5 + 0.25 = 0.75"])
        self.finish(resp)

    def test_requester_alone_explains(self):
        proc = self.run_example("requester.py")
        proc.communicate(timeout=DEADLINE)
        self.assertEqual(proc.returncode, 1)

    def test_async_echo(self):
        out = self.finish(self.run_example("async_echo.py"))
        self.assertEqual(out.splitlines()[0], "{'echo': [0, 'é', b'\\x00']}")


if __name__ == "__main__":
    support.main()
