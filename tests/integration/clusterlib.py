"""clusterlib.py - a real redis-server for the cluster tests, and nodes on it.

A Redis runs the Debian package's redis-server on an ephemeral port of
127.0.0.1 (or a unix socket), with no persistence and its files in a temp
dir; it can be killed, restarted on the same port, and asked for INFO.  A
ClusterTest starts Redis servers and pigeond nodes joined through them,
each node with its [http] endpoint so that tests read its /metrics, and
stops them all at the end (every node must exit 0 with no sanitizer
report, as BrokerTest checks).
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import DEADLINE, SANITIZED, Broker, BrokerTest, wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    """A redis-server of our own: loopback only, no RDB, no AOF."""

    def __init__(self, password=None, unix=False):
        self.dir = tempfile.TemporaryDirectory(prefix="pigeon-redis-")
        self.password = password
        self.sock_path = os.path.join(self.dir.name, "redis.sock") if unix else None
        self.port = None
        self.proc = None

    def _args(self):
        args = [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", self.dir.name,
                "--logfile", os.path.join(self.dir.name, "redis.log")]
        if self.sock_path:
            args += ["--unixsocket", self.sock_path, "--unixsocketperm", "700"]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def start(self, port=None):
        """Starts it on PORT (a free one when None); retries another port if it was taken."""
        for attempt in range(5):
            self.port = port or free_port()
            self.proc = subprocess.Popen(self._args(), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            try:
                wait_for(lambda: self.proc.poll() is not None or self._answers(), timeout=DEADLINE,
                         what="redis-server to listen")
            except AssertionError:
                self.kill()
                raise
            if self.proc.poll() is None:
                return self
            if port is not None and attempt < 4:
                time.sleep(0.2)  # the port is still held by the one before: try it again
                continue
        raise AssertionError("redis-server did not start:\n" + self.log_text())

    def _answers(self):
        try:
            return self.command("PING") in ("PONG", "+PONG")
        except OSError:
            return False

    @property
    def address(self):
        return "unix:" + self.sock_path if self.sock_path else "127.0.0.1:%d" % self.port

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        """Kills it, then starts it again on the same port, empty."""
        self.kill()
        return self.start(self.port)

    def close(self):
        self.kill()
        self.dir.cleanup()

    def log_text(self):
        try:
            with open(os.path.join(self.dir.name, "redis.log")) as f:
                return f.read()
        except OSError:
            return ""

    # ------------------------------------------------------- a tiny client
    def command(self, *args):
        """One command over a fresh connection (RESP written by hand); its reply, decoded."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        try:
            f = s.makefile("rb")
            if self.password:
                s.sendall(_resp(["AUTH", self.password]))
                _read_reply(f)
            s.sendall(_resp(args))
            return _read_reply(f)
        finally:
            s.close()

    def info(self, section):
        """INFO SECTION as a dict of strings."""
        text = self.command("INFO", section)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def commands_processed(self):
        return int(self.info("stats")["total_commands_processed"])


def _resp(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise OSError("bad reply %r" % line)


# ----------------------------------------------------------- HTTP endpoint

def http_get(address, path):
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=DEADLINE)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def metrics(address):
    """{"name" or 'name{labels}': float} from /metrics at ADDRESS."""
    status, body = http_get(address, "/metrics")
    assert status == 200, status
    out = {}
    for line in body.decode().splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


# ------------------------------------------------------------------- tests

class ClusterTest(BrokerTest):
    """No broker of its own: each test starts Redis and the nodes it needs."""

    AUTO_START = False
    HEARTBEAT = "200ms"
    NODE_TIMEOUT = "1500ms"

    def setUp(self):
        super().setUp()
        self.redises = []

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for r in self.redises:
                r.close()

    def start_redis(self, **kw):
        r = Redis(**kw).start()
        self.redises.append(r)
        return r

    def node_text(self, redis, name, cluster="", broker=""):
        """The [cluster] and [http] sections of node NAME on REDIS, plus CLUSTER's lines."""
        return ("[cluster]\nredis = %s\nnode = %s\nheartbeat = %s\nnode_timeout = %s\n%s"
                "[http]\nbind = 127.0.0.1:0\n" % (redis.address, name, self.HEARTBEAT,
                                                  self.NODE_TIMEOUT, cluster))

    def start_node(self, redis, name, cluster="", broker=None, wait_up=True, sections="", **kw):
        """Node NAME on REDIS; CLUSTER adds [cluster] lines, SECTIONS whole sections."""
        b = self.start_broker(broker, extra=self.node_text(redis, name, cluster) + sections, **kw)
        b.node = name
        if wait_up:
            b.wait_log("backplane (up|back)")
        return b

    def http(self, node):
        return node.address("[http]")

    def metric(self, node, name):
        return metrics(self.http(node)).get(name, 0.0)

    def wait_metric(self, node, name, pred, what=None):
        return wait_for(lambda: pred(self.metric(node, name)),
                        what=what or "%s on node %s" % (name, node.node))

    def wait_interest(self, node, entries):
        """Waits until NODE knows at least ENTRIES remote interest entries."""
        self.wait_metric(node, "pigeon_cluster_remote_interest", lambda v: v >= entries,
                         "node %s to know %d remote interest entries" % (node.node, entries))
