"""harness.py - start a real pigeond and talk to it over real sockets.

Used by every integration test.  A Broker runs the daemon built by meson
(path in $PIGEOND) with a config written to a temp dir, on port 0, and learns
the bound address from the ports file (-p).  A Client is a raw MessagePack
socket client written from docs/protocol.md alone, independent of the C
code, so the tests check the broker against the spec rather than against
itself.

Waits are polls with generous deadlines (the suite must pass on a loaded
2-core machine); nothing asserts on timing.
"""

import os
import select
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import msgpack

PIGEOND = os.environ.get("PIGEOND", os.path.join(os.path.dirname(__file__), "../../build/src/pigeond/pigeond"))
DEADLINE = float(os.environ.get("PIGEON_TEST_DEADLINE", "30"))  # seconds for any single wait

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2

BAD_FRAME, UNKNOWN_METHOD, BAD_PARAMS, BAD_TOPIC, TOO_LARGE = 1, 2, 3, 4, 5
AUTH_REQUIRED, AUTH_FAILED, FORBIDDEN, SLOW_CONSUMER, LIMIT = 6, 7, 8, 9, 10


def wait_for(pred, timeout=DEADLINE, interval=0.02, what="condition"):
    """Polls PRED until it returns a true value; fails the test after TIMEOUT."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


class Broker:
    """A pigeond process with its own config, ports file and log."""

    def __init__(self, broker=None, listeners=None, extra="", args=()):
        self.dir = tempfile.TemporaryDirectory(prefix="pigeon-test-")
        self.conf_path = os.path.join(self.dir.name, "pigeond.conf")
        self.ports_path = os.path.join(self.dir.name, "ports")
        self.log_path = os.path.join(self.dir.name, "pigeond.log")
        self.write_config(broker, listeners, extra)
        self.args = list(args)
        self.proc = None
        self.log = None

    def write_config(self, broker=None, listeners=None, extra=""):
        """Writes the config file: BROKER dict for [broker], LISTENERS name -> dict."""
        broker = dict(broker or {})
        broker.setdefault("log_level", "debug")
        if listeners is None:
            listeners = {"main": {"bind": "127.0.0.1:0"}}
        lines = ["[broker]"] + ["%s = %s" % kv for kv in broker.items()]
        for name, keys in listeners.items():
            lines.append("[listener %s]" % name)
            lines += ["%s = %s" % kv for kv in keys.items()]
        with open(self.conf_path + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n" + extra)
        os.replace(self.conf_path + ".tmp", self.conf_path)

    def start(self):
        if os.path.exists(self.ports_path):
            os.unlink(self.ports_path)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PIGEOND, "-c", self.conf_path, "-p", self.ports_path] + self.args,
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.ports_path) or self.proc.poll() is not None,
                 what="pigeond to bind")
        if self.proc.poll() is not None:
            raise AssertionError("pigeond exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
        return self

    def ports(self):
        """{listener name: address} from the ports file."""
        with open(self.ports_path) as f:
            return dict(line.split(" ", 1) for line in f.read().splitlines() if line)

    def address(self, name=None):
        ports = self.ports()
        addr = ports[name] if name else next(iter(ports.values()))
        return addr.strip()

    def port(self, name=None):
        return int(self.address(name).rsplit(":", 1)[1])

    def client(self, name=None, hello=True, **kw):
        return Client(self.address(name), hello=hello, **kw)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        """Sends SIGHUP and waits until the log says it was handled."""
        n = self.log_text().count("SIGHUP:")
        self.send_signal(signal.SIGHUP)
        wait_for(lambda: self.log_text().count("SIGHUP:") > n, what="reload")

    def stop(self, sig=signal.SIGTERM, timeout=DEADLINE):
        """Stops pigeond with SIG and returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("pigeond did not stop on %s" % sig)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def close(self):
        try:
            self.stop(signal.SIGKILL if self.proc and self.proc.poll() is None else signal.SIGTERM)
        finally:
            if self.log:
                self.log.close()
            self.dir.cleanup()


class ProtocolError(Exception):
    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


class Client:
    """A raw protocol client: frames in, frames out, nothing hidden."""

    def __init__(self, address, hello=True, timeout=DEADLINE, client_name="test"):
        self.timeout = timeout
        if address.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(address[5:])
        else:
            host, port = address.rsplit(":", 1)
            family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.connect((host.strip("[]"), int(port)))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=256 * 1024 * 1024,
                                         strict_map_key=False)
        self.next_id = 1
        self.responses = {}   # msgid -> (error, result)
        self.messages = []    # msg params, in arrival order
        self.errors = []      # error notification params
        self.frames = []      # every frame, in arrival order
        self.closed = False
        self.hello_result = self.request("hello", {"client": client_name}) if hello else None

    # ------------------------------------------------------------ sending
    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.send_raw(msgpack.packb(obj, use_bin_type=True))

    def send_request(self, method, *params):
        msgid = self.next_id
        self.next_id += 1
        self.send([REQUEST, msgid, method, list(params)])
        return msgid

    def notify(self, method, *params):
        self.send([NOTIFICATION, method, list(params)])

    # ---------------------------------------------------------- receiving
    def _feed(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return False
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.unpacker.feed(data)
        for frame in self.unpacker:
            self.frames.append(frame)
            if frame[0] == RESPONSE:
                self.responses[frame[1]] = (frame[2], frame[3])
            elif frame[0] == NOTIFICATION and frame[1] == "msg":
                self.messages.append(frame[2])
            elif frame[0] == NOTIFICATION and frame[1] == "error":
                self.errors.append(frame[2])
        return True

    def pump_until(self, pred, timeout=None, what="frames"):
        """Reads frames until PRED() is true; raises on timeout or close."""
        end = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for %s" % what)
            if not self._feed(min(left, 0.5)) and self.closed:
                if pred():
                    return
                raise AssertionError("connection closed while waiting for %s" % what)

    def pump_for(self, seconds):
        """Reads whatever arrives during SECONDS."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.closed:
            self._feed(max(0.0, min(0.1, end - time.monotonic())))

    def wait_response(self, msgid, timeout=None):
        self.pump_until(lambda: msgid in self.responses, timeout, "response %d" % msgid)
        return self.responses.pop(msgid)

    def request(self, method, *params):
        """Sends a request; returns its result or raises ProtocolError."""
        err, result = self.wait_response(self.send_request(method, *params))
        if err is not None:
            raise ProtocolError(err[0], err[1])
        return result

    def request_error(self, method, *params):
        """Sends a request that must fail; returns [code, message]."""
        err, result = self.wait_response(self.send_request(method, *params))
        if err is None:
            raise AssertionError("%s%r succeeded with %r" % (method, params, result))
        return err

    def wait_messages(self, n, timeout=None):
        self.pump_until(lambda: len(self.messages) >= n, timeout, "%d messages (have %d)" % (n, len(self.messages)))
        return self.messages

    def wait_error(self, timeout=None):
        self.pump_until(lambda: self.errors, timeout, "an error notification")
        return self.errors.pop(0)

    def wait_closed(self, timeout=None):
        end = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.closed:
            if time.monotonic() > end:
                raise AssertionError("connection still open")
            self._feed(0.2)

    # ------------------------------------------------------------- verbs
    def sub(self, pattern, **opts):
        return self.request("sub", pattern, opts) if opts else self.request("sub", pattern)

    def pub(self, topic, payload, **opts):
        """pub as a request: returns the delivery count."""
        return self.request("pub", topic, payload, opts) if opts else self.request("pub", topic, payload)

    def pub_notify(self, topic, payload, **opts):
        if opts:
            self.notify("pub", topic, payload, opts)
        else:
            self.notify("pub", topic, payload)

    def ping(self):
        return self.request("ping")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class BrokerTest(unittest.TestCase):
    """A test case with one broker started per test; override BROKER/LISTENERS."""

    BROKER = None
    LISTENERS = None

    def setUp(self):
        self.broker = Broker(self.BROKER, self.LISTENERS).start()
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        code = self.broker.stop()
        log = self.broker.log_text()
        self.broker.close()
        self.assertEqual(code, 0, "pigeond did not exit cleanly:\n" + log[-4000:])
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error", log)

    def client(self, **kw):
        c = self.broker.client(**kw)
        self.clients.append(c)
        return c


def main():
    unittest.main(verbosity=2)
