"""opslib.py - what the operations tests share, on top of ../integration/harness.py.

 - NotifySocket: a datagram socket standing in for systemd's notify socket
   (NOTIFY_SOCKET), collecting what pigeond sends with sd_notify.
 - OpsBroker: a harness Broker started the way systemd starts a service:
   through `sh -c 'LISTEN_PID=$$ WATCHDOG_PID=$$ exec pigeond ...'`, so that
   the variables name pigeond's own pid, with listening sockets moved to
   descriptors 3, 4, ... (LISTEN_FDS, LISTEN_FDNAMES) as systemd passes them.
 - http_get: one request to the monitoring endpoint.
 - metrics_parse: the Prometheus text format into {name{labels}: value}.

Every wait is a poll with the harness's generous deadline; nothing asserts
on timing.
"""

import fcntl
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import (  # noqa: E402,F401  (re-exported for the tests)
    DEADLINE, PIGEOND, SANITIZED, Broker, BrokerTest, Client, ProtocolError, wait_for,
    LIMIT, SLOW_CONSUMER, TOO_LARGE, FORBIDDEN)

HAVE_SYSTEMD = os.environ.get("PIGEON_HAVE_SYSTEMD", "1") == "1"
SOURCE_ROOT = os.environ.get("PIGEON_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))


class NotifySocket:
    """A stand-in for systemd's notify socket: collects every message sent to it."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="pigeon-notify-")
        self.path = os.path.join(self.dir.name, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages = []  # each a dict of KEY -> value, in arrival order

    def _drain(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.messages.append(fields)

    def all(self):
        self._drain()
        return list(self.messages)

    def count(self, key, value=None):
        return sum(1 for m in self.all() if key in m and (value is None or m[key] == value))

    def wait(self, key, value=None, count=1, timeout=DEADLINE):
        """Waits until COUNT messages carry KEY (=VALUE); returns the last of them."""
        def found():
            ms = [m for m in self.all() if key in m and (value is None or m[key] == value)]
            return ms[count - 1] if len(ms) >= count else None
        return wait_for(found, timeout, interval=0.02, what="%s=%s x%d on the notify socket" % (key, value, count))

    def wait_status(self, pred, timeout=DEADLINE):
        """Waits for a STATUS= for which PRED(text) is true; returns it."""
        def found():
            for m in reversed(self.all()):
                if "STATUS" in m and pred(m["STATUS"]):
                    return m["STATUS"]
            return None
        return wait_for(found, timeout, interval=0.05, what="a matching STATUS=")

    def index(self, key, value=None):
        """Position of the first message with KEY (=VALUE), or None."""
        for i, m in enumerate(self.all()):
            if key in m and (value is None or m[key] == value):
                return i
        return None

    def close(self):
        self.sock.close()
        self.dir.cleanup()


class OpsBroker(Broker):
    """A Broker launched as systemd launches services (see the top)."""

    def __init__(self, *a, listen_fds=(), notify=None, watchdog_usec=None, **kw):
        super().__init__(*a, **kw)
        self.listen_fds = list(listen_fds)   # [(socket, name or None)], to become fd 3, 4, ...
        self.notify = notify
        self.watchdog_usec = watchdog_usec

    def start(self, check=True, wait_ports=True):
        if os.path.exists(self.ports_path):
            os.unlink(self.ports_path)
        self.log = open(self.log_path, "ab")
        env = dict(self.env)
        prefix = ""
        keep = []
        if self.listen_fds:
            # Park the sockets far above 3..3+n so the moves below cannot collide.
            keep = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 100) for s, _ in self.listen_fds]
            env["LISTEN_FDS"] = str(len(keep))
            names = [n for _, n in self.listen_fds]
            if any(n is not None for n in names):
                env["LISTEN_FDNAMES"] = ":".join(n or "unknown" for n in names)
            prefix += "LISTEN_PID=$$; export LISTEN_PID; "
        if self.notify is not None:
            env["NOTIFY_SOCKET"] = self.notify.path
        if self.watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
            prefix += "WATCHDOG_PID=$$; export WATCHDOG_PID; "

        def move_fds():
            for i, fd in enumerate(keep):
                os.dup2(fd, 3 + i)  # dup2 clears close-on-exec: pigeond inherits them

        cmd = ["/bin/sh", "-c", prefix + 'exec "$0" "$@"', PIGEOND, "-c", self.conf_path,
               "--ports-file", self.ports_path] + self.args
        try:
            self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                         pass_fds=tuple(range(3, 3 + len(keep))),
                                         preexec_fn=move_fds if keep else None)
        finally:
            for fd in keep:
                os.close(fd)
        if wait_ports:
            wait_for(lambda: os.path.exists(self.ports_path) or self.proc.poll() is not None,
                     what="pigeond to bind")
            if check and self.proc.poll() is not None:
                raise AssertionError("pigeond exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
        return self


class OpsTest(BrokerTest):
    """BrokerTest with OpsBroker: start_ops_broker() takes OpsBroker's arguments."""

    AUTO_START = False

    def start_ops_broker(self, broker=None, listeners=None, check=True, **kw):
        b = OpsBroker(broker, listeners, **kw)
        self.brokers.append(b)
        return b.start(check=check)

    def notify_socket(self):
        n = NotifySocket()
        self.addCleanup(n.close)
        return n


def listening_socket(family=socket.AF_INET, address=("127.0.0.1", 0)):
    s = socket.socket(family, socket.SOCK_STREAM)
    if family != socket.AF_UNIX:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(address)
    s.listen(16)
    return s


def http_get(address, path, method="GET", timeout=DEADLINE, headers=None):
    """(status, {header: value}, body bytes) of one request to ADDRESS ("host:port")."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def http_json(address, path):
    status, headers, body = http_get(address, path)
    assert status == 200, (status, body)
    assert headers["content-type"] == "application/json", headers
    return json.loads(body)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def metrics_parse(text):
    """{"name" or 'name{labels}': float} of every sample; checks each line's shape."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def metrics(address):
    status, headers, body = http_get(address, "/metrics")
    assert status == 200, status
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    return metrics_parse(body.decode())


def main():
    unittest.main(verbosity=2)
