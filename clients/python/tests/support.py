"""support.py - what the Python client's tests share.

Gives test cases that start a real pigeond per test through the
integration harness's Broker (tests/integration/harness.py, or the one
$PIGEON_HARNESS_DIR names; $PIGEOND names the daemon, as for the
integration tests).  The harness is loaded from its file by name, not
found on sys.path; the pigeon package is the installed one: meson installs
it into a venv in the build directory and runs the tests with that venv's
python (testvenv.py), so they test what `pip install` gives a user.

Waits are polls with generous deadlines (harness.DEADLINE, 30 s unless
$PIGEON_TEST_DEADLINE says otherwise): the tests must pass on a loaded
2-core machine, so none asserts on how long anything took.
"""

import asyncio
import importlib.util
import os
import signal
import socket
import sys
import threading
import unittest

import msgpack

import pigeon

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS_DIR = os.environ.get("PIGEON_HARNESS_DIR") or os.path.join(HERE, "..", "..", "..",
                                                                    "tests", "integration")


def _load_harness():
    """tests/integration/harness.py, as the module `harness`."""
    spec = importlib.util.spec_from_file_location("harness", os.path.join(HARNESS_DIR,
                                                                          "harness.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["harness"] = module
    spec.loader.exec_module(module)
    return module


harness = _load_harness()
DEADLINE, Broker, wait_for = harness.DEADLINE, harness.Broker, harness.wait_for  # re-exported


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def nested_list(levels, leaf):
    """LEAF inside LEVELS nested lists."""
    for _ in range(levels):
        leaf = [leaf]
    return leaf


# Every MessagePack type, as (name, value); each must come back equal and of
# the same type (see same()).
EVERY_TYPE = [
    ("nil", None),
    ("true", True),
    ("false", False),
    ("zero", 0),
    ("positive fixint", 127),
    ("negative fixint", -32),
    ("uint8", 255),
    ("int8", -128),
    ("uint16", 65535),
    ("int16", -32768),
    ("uint32", 2**32 - 1),
    ("int32", -2**31),
    ("uint64 max", 2**64 - 1),
    ("int64 min", -2**63),
    ("float", 3.141592653589793),
    ("negative float", -1e300),
    ("float inf", float("inf")),
    ("str", "hello"),
    ("empty str", ""),
    ("unicode", "café ü 日本語 🐦"),
    ("long str", "x" * 70000),
    ("bytes", b"\x00\x01\xfe\xff"),
    ("empty bytes", b""),
    ("long bytes", bytes(range(256)) * 300),
    ("ext", msgpack.ExtType(5, b"\x01\x02\x03")),
    ("ext empty", msgpack.ExtType(127, b"")),
    ("ext 16", msgpack.ExtType(42, b"x" * 16)),
    ("empty list", []),
    ("empty dict", {}),
    ("list", [1, "two", 3.0, None, True, b"six"]),
    ("dict", {"a": 1, "b": [1, 2, {"c": None}]}),
    ("int keys", {1: "one", -2: "minus two"}),
    ("nested", {"orders": [{"id": 1, "items": [{"sku": "é", "qty": 2, "tags": []}]}],
                "meta": {"ok": True, "blob": b"\x00" * 3, "ext": msgpack.ExtType(1, b"z")}}),
    ("deep", nested_list(30, "deep")),
]


def same(a, b) -> bool:
    """A == B with types compared too (so True is not 1, b'' is not '')."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return (len(a) == len(b) and all(same(k1, k2) for k1, k2 in zip(a, b))
                and all(same(a[k], b[k]) for k in a))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def check_sanitizers(test, log):
    """Fails TEST when pigeond's LOG holds a sanitizer report."""
    for mark in getattr(harness, "SANITIZER_MARKS", ("AddressSanitizer", "runtime error:")):
        test.assertNotIn(mark, log, "sanitizer report in pigeond's log:\n" + log[-6000:])


class BrokerCase(unittest.TestCase):
    """One pigeond per test; connect() makes pigeon Clients closed at the end.

    Override BROKER (the [broker] keys) or LISTENERS as in harness.BrokerTest,
    and EXTRA (config text after them, such as an [auth] section).
    """

    BROKER = None
    LISTENERS = None
    EXTRA = ""

    def setUp(self):
        self.broker = Broker(self.BROKER, self.LISTENERS, self.EXTRA)
        self.addCleanup(self.broker.close)  # kills it even where tearDown fails
        self.broker.start()
        self.pigeons = []

    def tearDown(self):
        for c in self.pigeons:
            try:
                c.close(timeout=1.0)
            except Exception as e:  # still stop the broker; then fail
                self.addCleanup(self.fail, "close() raised %r" % e)
        code = self.broker.stop()
        log = self.broker.log_text()
        self.broker.close()
        if code is not None and code >= 0:  # < 0: a test killed it on purpose
            self.assertEqual(code, 0, "pigeond did not exit cleanly:\n" + log[-4000:])
        check_sanitizers(self, log)

    def connect(self, address=None, **kw):
        kw.setdefault("timeout", DEADLINE)
        c = pigeon.connect(address or self.broker.address(), **kw)
        self.pigeons.append(c)
        return c

    def restart_broker(self, sig=signal.SIGKILL):
        """Stops the broker with SIG and starts it again with the same config
        (so on the same port, where it was given an explicit one)."""
        self.broker.stop(sig)
        self.broker.log.close()
        self.broker.start()


class AioBrokerCase(unittest.IsolatedAsyncioTestCase):
    """BrokerCase for the asyncio client: aconnect() makes AsyncClients."""

    BROKER = None
    LISTENERS = None
    EXTRA = ""

    def setUp(self):
        self.broker = Broker(self.BROKER, self.LISTENERS, self.EXTRA)
        self.addCleanup(self.broker.close)  # kills it even where tearDown fails
        self.broker.start()
        self.pigeons = []

    async def asyncTearDown(self):
        for c in self.pigeons:
            try:
                await c.close(timeout=1.0)
            except Exception as e:
                self.addCleanup(self.fail, "close() raised %r" % e)

    def tearDown(self):
        code = self.broker.stop()
        log = self.broker.log_text()
        self.broker.close()
        if code is not None and code >= 0:
            self.assertEqual(code, 0, "pigeond did not exit cleanly:\n" + log[-4000:])
        check_sanitizers(self, log)

    async def aconnect(self, address=None, **kw):
        kw.setdefault("timeout", DEADLINE)
        c = await pigeon.aio.connect(address or self.broker.address(), **kw)
        self.pigeons.append(c)
        return c

    def restart_broker(self, sig=signal.SIGKILL):
        self.broker.stop(sig)
        self.broker.log.close()
        self.broker.start()

    async def poll(self, pred, what="condition"):
        """Awaits until PRED() is true (polling; fails after DEADLINE)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while not pred():
            if loop.time() > end:
                raise AssertionError("timed out waiting for %s" % what)
            await asyncio.sleep(0.02)


class FakeBroker:
    """A scripted peer on a socket, for what a real pigeond won't do on cue.

    Accepts one connection, answers the hello, then runs SCRIPT(sock, msgid
    of the hello) in its thread.
    """

    def __init__(self, script):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.script = script
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conn, _ = self.listener.accept()
        with conn:
            unpacker = msgpack.Unpacker(raw=False)
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                unpacker.feed(data)
                for frame in unpacker:
                    if frame[0] == 0 and frame[2] == "hello":
                        conn.sendall(msgpack.packb([1, frame[1], None, {
                            "server": "fake", "version": "0", "proto": 1,
                            "client_id": 7, "max_payload": 4096}]))
                        self.script(conn, unpacker)
                        return

    def close(self):
        self.listener.close()
        self.thread.join(DEADLINE)


def main():
    unittest.main(verbosity=2)
