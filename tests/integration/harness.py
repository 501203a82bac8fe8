"""harness.py - start a real pigeond and talk to it over real sockets.

Used by every integration test.  A Broker runs the daemon built by meson
(path in $PIGEOND) with a config written to a temp dir, on port 0, and learns
the bound address from the ports file (--ports-file).  A Client is a raw MessagePack
socket client written from docs/protocol.md alone, independent of the C
code, so the tests check the broker against the spec rather than against
itself.  With raw=True a Client also keeps the exact bytes of every frame it
receives, and the mp_* helpers below take frames apart by byte offsets, so
a test can prove the broker forwarded a payload without re-encoding it.

Waits are polls with generous deadlines (the suite must pass on a loaded
2-core machine, and three times slower under ASan); nothing asserts on
timing.  BrokerTest checks every broker a test started when the test ends:
it must exit 0 on SIGTERM with no sanitizer report in its log.
"""

import atexit
import errno
import hashlib
import os
import re
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import msgpack

PIGEOND = os.environ.get("PIGEOND", os.path.join(os.path.dirname(__file__), "../../build/src/pigeond/pigeond"))
DEADLINE = float(os.environ.get("PIGEON_TEST_DEADLINE", "30"))  # seconds for any single wait
# The transport the default listener uses: "tcp" (127.0.0.1, port 0),
# "unix" (a socket in the broker's temp dir) or "tls" (TCP under TLS, with
# certificates made by certs.py).  meson runs the protocol and routing
# suites over each, so that every transport passes the same suite.
TRANSPORT = os.environ.get("PIGEON_TEST_TRANSPORT", "tcp")
# PIGEON_TEST_AUTH=1: brokers require logins ([auth] users_file), and every
# Client says hello with a token that may do everything.
AUTH = os.environ.get("PIGEON_TEST_AUTH") == "1"
TEST_TOKEN = "pigeon-test-token-7c1f0e9a"
TEST_USERS = ("[user tester]\ntoken = sha256:%s\npublish = >\nsubscribe = >, $SYS.>\n"
              "allow_responses = yes\n" % hashlib.sha256(TEST_TOKEN.encode()).hexdigest())
# Addresses of listeners that speak TLS: connect_socket wraps those.
TLS_ADDRESSES = set()
_pki_dir = None


def pki():
    """The directory of the test certificates (certs.py), made once per process."""
    global _pki_dir
    if _pki_dir is None:
        import certs
        _pki_dir = tempfile.mkdtemp(prefix="pigeon-pki-")
        atexit.register(shutil.rmtree, _pki_dir, True)
        certs.make_pki(_pki_dir)
    return _pki_dir


def hello_params(params=None):
    """A hello map: PARAMS, plus the test token when brokers require logins (AUTH)."""
    return dict(params or {}, **({"token": TEST_TOKEN} if AUTH else {}))


def client_tls_context(cert=None, ca="ca.pem"):
    """An SSL context that trusts CA (a file of pki()), with client certificate CERT (a name) if given."""
    import ssl
    ctx = ssl.create_default_context(cafile=os.path.join(pki(), ca))
    if cert is not None:
        ctx.load_cert_chain(os.path.join(pki(), cert + ".pem"), os.path.join(pki(), cert + ".key"))
    return ctx

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2

BAD_FRAME, UNKNOWN_METHOD, BAD_PARAMS, BAD_TOPIC, TOO_LARGE = 1, 2, 3, 4, 5
AUTH_REQUIRED, AUTH_FAILED, FORBIDDEN, SLOW_CONSUMER, LIMIT = 6, 7, 8, 9, 10

# What a sanitizer writes when it finds something (ASan, LSan, UBSan).
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def _built_with_sanitizers(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# True when pigeond was built with -Db_sanitize=address,...: memory bounds
# then allow for ASan's shadow and quarantine.
SANITIZED = _built_with_sanitizers(PIGEOND)


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


# ------------------------------------------------------------ MessagePack bytes

def ext_hook(code, data):
    """Decodes any extension type, negative (reserved) ones included."""
    return msgpack.ExtType(code, data) if code >= 0 else ("ext", code, data)


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False, unicode_errors="surrogateescape",
                           ext_hook=ext_hook)


def request_frame(msgid, method, params):
    return pack([REQUEST, msgid, method, list(params)])


def notification_frame(method, params):
    return pack([NOTIFICATION, method, list(params)])


def pub_frame_raw(topic, payload_raw, opts=None, msgid=None):
    """A pub frame whose payload is PAYLOAD_RAW, bytes sent exactly as given."""
    n = 2 if opts is None else 3
    if msgid is None:
        head = b"\x93\x02" + pack("pub")
    else:
        head = b"\x94\x00" + pack(msgid) + pack("pub")
    tail = b"" if opts is None else (opts if isinstance(opts, bytes) else pack(opts))
    return head + bytes([0x90 | n]) + pack(topic) + payload_raw + tail


# Sizes of the fixed-size types 0xc0..0xdf: the object's total length, or a
# tag for the variable ones.
_FIXED = {0xc0: 1, 0xc2: 1, 0xc3: 1, 0xca: 5, 0xcb: 9, 0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9,
          0xd0: 2, 0xd1: 3, 0xd2: 5, 0xd3: 9, 0xd4: 3, 0xd5: 4, 0xd6: 6, 0xd7: 10, 0xd8: 18}
_BYTES = {0xc4: 1, 0xc5: 2, 0xc6: 4, 0xd9: 1, 0xda: 2, 0xdb: 4}  # width of the length
_EXT = {0xc7: 1, 0xc8: 2, 0xc9: 4}
_ARRAY = {0xdc: 2, 0xdd: 4}
_MAP = {0xde: 2, 0xdf: 4}


def _be(b, i, w):
    return int.from_bytes(b[i:i + w], "big")


def mp_skip(b, i=0):
    """The offset just past the MessagePack object at B[I]; ValueError if malformed or cut."""
    pending = 1  # objects still to pass over
    while pending:
        if i >= len(b):
            raise ValueError("truncated")
        t = b[i]
        pending -= 1
        if t <= 0x7f or t >= 0xe0:
            i += 1
        elif t <= 0x8f:
            pending += 2 * (t & 0x0f)
            i += 1
        elif t <= 0x9f:
            pending += t & 0x0f
            i += 1
        elif t <= 0xbf:
            i += 1 + (t & 0x1f)
        elif t in _FIXED:
            i += _FIXED[t]
        elif t in _BYTES:
            w = _BYTES[t]
            i += 1 + w + _be(b, i + 1, w)
        elif t in _EXT:
            w = _EXT[t]
            i += 1 + w + 1 + _be(b, i + 1, w)
        elif t in _ARRAY:
            w = _ARRAY[t]
            pending += _be(b, i + 1, w)
            i += 1 + w
        elif t in _MAP:
            w = _MAP[t]
            pending += 2 * _be(b, i + 1, w)
            i += 1 + w
        else:
            raise ValueError("reserved byte 0x%02x" % t)
    if i > len(b):
        raise ValueError("truncated")
    return i


def mp_split(b):
    """The raw bytes of each element of the array B (one whole object)."""
    t = b[0]
    if 0x90 <= t <= 0x9f:
        n, i = t & 0x0f, 1
    elif t in _ARRAY:
        w = _ARRAY[t]
        n, i = _be(b, 1, w), 1 + w
    else:
        raise ValueError("not an array")
    out = []
    for _ in range(n):
        j = mp_skip(b, i)
        out.append(b[i:j])
        i = j
    if i != len(b):
        raise ValueError("trailing bytes")
    return out


def raw_msg(frame):
    """(sid, topic bytes, payload bytes, opts bytes or None) of a raw msg frame."""
    kind, method, params = mp_split(frame)
    assert unpack(kind) == NOTIFICATION and unpack(method) == "msg", frame[:32]
    parts = mp_split(params)
    assert len(parts) in (3, 4), "msg params have %d elements" % len(parts)
    return unpack(parts[0]), parts[1], parts[2], parts[3] if len(parts) == 4 else None


def is_unsigned_encoding(raw):
    """True when RAW (one integer object) is encoded as a positive fixint or uint8..uint64."""
    return raw[0] <= 0x7f or raw[0] in (0xcc, 0xcd, 0xce, 0xcf)


# ------------------------------------------------------------------- broker

class Broker:
    """A pigeond process with its own config, ports file and log."""

    def __init__(self, broker=None, listeners=None, extra="", args=(), env=None, config_text=None,
                 use_config=True, nofile=None):
        self.use_config = use_config  # False: no -c, pigeond finds its config itself
        self.nofile = nofile          # a descriptor limit (soft and hard) for pigeond
        self.dir = tempfile.TemporaryDirectory(prefix="pigeon-test-")
        self.conf_path = os.path.join(self.dir.name, "pigeond.conf")
        self.ports_path = os.path.join(self.dir.name, "ports")
        self.log_path = os.path.join(self.dir.name, "pigeond.log")
        if config_text is not None:
            self.write_text(config_text)
        else:
            self.write_config(broker, listeners, extra)
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.log = None

    def write_text(self, text):
        with open(self.conf_path + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.conf_path + ".tmp", self.conf_path)

    def write_config(self, broker=None, listeners=None, extra=""):
        """Writes the config file: BROKER dict for [broker], LISTENERS name -> dict."""
        broker = dict(broker or {})
        broker.setdefault("log_level", "debug")
        if listeners is None and TRANSPORT == "unix":
            listeners = {"main": {"bind": "unix:" + os.path.join(self.dir.name, "main.sock")}}
        elif listeners is None and TRANSPORT == "tls":
            listeners = {"main": {"bind": "127.0.0.1:0", "tls_cert": os.path.join(pki(), "server.pem"),
                                  "tls_key": os.path.join(pki(), "server.key")}}
        elif listeners is None:
            listeners = {"main": {"bind": "127.0.0.1:0"}}
        self.tls_listeners = {n for n, keys in listeners.items() if "tls_cert" in keys}
        if AUTH and "[auth]" not in extra:
            users = os.path.join(self.dir.name, "users.conf")
            with open(users, "w") as f:
                f.write(TEST_USERS)
            extra = "[auth]\nusers_file = %s\n%s" % (users, extra)
        lines = ["[broker]"] + ["%s = %s" % kv for kv in broker.items()]
        for name, keys in listeners.items():
            lines.append("[listener %s]" % name)
            lines += ["%s = %s" % kv for kv in keys.items()]
        self.write_text("\n".join(lines) + "\n" + extra)

    def start(self, check=True):
        """Starts pigeond and waits until it has bound (or exited, which fails when CHECK)."""
        if os.path.exists(self.ports_path):
            os.unlink(self.ports_path)
        self.log = open(self.log_path, "ab")
        conf = ["-c", self.conf_path] if self.use_config else []
        nofile = self.nofile

        def limit():
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(
            [PIGEOND] + conf + ["--ports-file", self.ports_path] + self.args,
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env,
            preexec_fn=limit if nofile is not None else None)
        wait_for(lambda: os.path.exists(self.ports_path) or self.proc.poll() is not None,
                 what="pigeond to bind")
        if check and self.proc.poll() is not None:
            raise AssertionError("pigeond exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
        if self.proc.poll() is None:
            # An ephemeral port a stopped broker's TLS listener had may come back as a plain one.
            for name, addr in self.ports().items():
                if name in getattr(self, "tls_listeners", ()):
                    TLS_ADDRESSES.add(addr.strip())
                else:
                    TLS_ADDRESSES.discard(addr.strip())
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

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

    def _ports_file_id(self):
        try:
            st = os.stat(self.ports_path)
            return (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            return None

    def reload(self):
        """Sends SIGHUP and waits until it was handled: the log says so, or
        (when the new log_level hides that line) the ports file was rewritten."""
        n = self.log_text().count("SIGHUP:")
        ports = self._ports_file_id()
        self.send_signal(signal.SIGHUP)
        wait_for(lambda: self.log_text().count("SIGHUP:") > n or self._ports_file_id() != ports,
                 what="reload")

    def wait_exit(self, timeout=DEADLINE):
        """Waits for pigeond to exit by itself; returns its exit code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("pigeond still running after %ss" % timeout)

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

    def log_count(self, pattern):
        """Lines of the log matching the regular expression PATTERN."""
        rx = re.compile(pattern)
        return sum(1 for line in self.log_text().splitlines() if rx.search(line))

    def wait_log(self, pattern, count=1, timeout=DEADLINE):
        """Waits until COUNT lines match PATTERN; returns the COUNT-th match."""
        rx = re.compile(pattern)

        def found():
            ms = [m for m in (rx.search(line) for line in self.log_text().splitlines()) if m]
            return ms[count - 1] if len(ms) >= count else None
        return wait_for(found, timeout, interval=0.05, what="log line /%s/ x%d" % (pattern, count))

    def sanitizer_report(self):
        log = self.log_text()
        return next((m for m in SANITIZER_MARKS if m in log), None)

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


def asan_env(**opts):
    """Environment for a broker that sets ASAN_OPTIONS OPTS on top of the caller's."""
    extra = ":".join("%s=%s" % kv for kv in opts.items())
    base = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": base + ":" + extra if base else extra}


# ------------------------------------------------------------------- client

class ProtocolError(Exception):
    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


class _Poller:
    """poll() on one socket, that may be an SSLSocket: bytes already
    decrypted and buffered count as readable, though the descriptor is quiet."""

    def __init__(self, sock):
        self.sock = sock
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)

    def poll(self, timeout_ms):
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending() > 0:
            return [(self.sock.fileno(), select.POLLIN)]
        return self.poller.poll(timeout_ms)


def readable_poller(sock):
    """A poll object watching SOCK for input (select() stops at descriptor 1023)."""
    return _Poller(sock)


def connect_socket(address, rcvbuf=None, timeout=DEADLINE, tls=None):
    """A blocking socket connected to ADDRESS ("host:port", "[v6]:port" or "unix:/path").

    RCVBUF sets SO_RCVBUF before connecting.  Every wait on the socket is
    bounded by TIMEOUT, so a send to a broker that stopped reading fails
    rather than hanging the suite.  TLS (an ssl.SSLContext) wraps the
    socket; so does the default client context for an address in
    TLS_ADDRESSES.
    """
    if tls is None and address in TLS_ADDRESSES:
        tls = client_tls_context()
    if address.startswith("unix:"):
        family, sockaddr = socket.AF_UNIX, address[5:]
    else:
        host, port = address.rsplit(":", 1)
        family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
        sockaddr = (host.strip("[]"), int(port))
    sock = socket.socket(family, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(sockaddr)
    if family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="localhost")
    return sock


class Client:
    """A raw protocol client: frames in, frames out, nothing hidden.

    RAW keeps each received frame's bytes in raw_frames (and raw msg frames in
    raw_messages).  RCVBUF sets SO_RCVBUF before connecting (a small one makes
    a client that does not read look slow sooner).
    """

    def __init__(self, address, hello=True, timeout=DEADLINE, client_name="test", raw=False,
                 rcvbuf=None, tls=None, creds=None):
        self.timeout = timeout
        self.sock = connect_socket(address, rcvbuf, timeout, tls)
        self._poll = readable_poller(self.sock)
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=256 * 1024 * 1024,
                                         strict_map_key=False, unicode_errors="surrogateescape",
                                         ext_hook=ext_hook)
        self.raw = raw
        self._rawbuf = bytearray()   # received bytes not yet cut into frames (raw mode)
        self._rawpos = 0             # stream offset of _rawbuf[0]
        self.raw_frames = []
        self.raw_messages = []
        self.next_id = 1
        self.responses = {}   # msgid -> (error, result)
        self.messages = []    # msg params, in arrival order
        self.errors = []      # error notification params
        self.frames = []      # every frame, in arrival order
        self.closed = False
        if creds is None and AUTH:
            creds = {"token": TEST_TOKEN}
        self.hello_result = (self.request("hello", dict({"client": client_name}, **(creds or {})))
                             if hello else None)

    # ------------------------------------------------------------ sending
    def send_raw(self, data):
        self.sock.sendall(data)

    def try_send_raw(self, data):
        """Sends DATA; False when the broker has already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def send(self, obj):
        self.send_raw(pack(obj))

    def send_request(self, method, *params):
        msgid = self.next_id
        self.next_id += 1
        self.send([REQUEST, msgid, method, list(params)])
        return msgid

    def notify(self, method, *params):
        self.send([NOTIFICATION, method, list(params)])

    # ---------------------------------------------------------- receiving
    def _take(self, frame):
        self.frames.append(frame)
        if frame[0] == RESPONSE:
            self.responses[frame[1]] = (frame[2], frame[3])
        elif frame[0] == NOTIFICATION and frame[1] == "msg":
            self.messages.append(frame[2])
        elif frame[0] == NOTIFICATION and frame[1] == "error":
            self.errors.append(frame[2])

    def _feed(self, timeout):
        if not self._poll.poll(timeout * 1000):
            return False
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, socket.timeout):
            data = b""
        if not data:
            self.closed = True
            return False
        self.unpacker.feed(data)
        if self.raw:
            self._rawbuf += data
        start = 0
        for frame in self.unpacker:
            if self.raw:
                end = self.unpacker.tell() - self._rawpos
                raw = bytes(self._rawbuf[start:end])
                start = end
                self.raw_frames.append(raw)
                if frame[0] == NOTIFICATION and frame[1] == "msg":
                    self.raw_messages.append(raw)
            self._take(frame)
        if start:
            del self._rawbuf[:start]
            self._rawpos += start
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

    def pump_available(self):
        """Reads what has already arrived, without waiting."""
        while not self.closed and self._feed(0):
            pass

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

    def sync(self):
        """A ping round trip: everything the broker sent before it has been read."""
        self.assert_pong()

    def assert_pong(self):
        result = self.ping()
        if result != "pong":
            raise AssertionError("ping answered %r" % (result,))

    # ------------------------------------------------------------- verbs
    def sub(self, pattern, **opts):
        return self.request("sub", pattern, opts) if opts else self.request("sub", pattern)

    def unsub(self, sid):
        return self.request("unsub", sid)

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


# ----------------------------------------------------------------- test case

class BrokerTest(unittest.TestCase):
    """A test case with one broker started per test; override BROKER/LISTENERS.

    Tests may start more brokers with start_broker(); every one of them is
    stopped with SIGTERM at the end and must exit 0 with no sanitizer report.
    A test that leaves a broker exited on purpose (a failed start, a test of
    the exit code) lets it go with forget_broker().  AUTO_START = False skips
    the broker of setUp; ENV adds to its environment.
    """

    BROKER = None
    LISTENERS = None
    ENV = None          # environment variables added for the broker of setUp
    AUTO_START = True

    def setUp(self):
        self.brokers = []
        self.clients = []
        self.broker = self.start_broker(self.BROKER, self.LISTENERS, env=self.ENV) if self.AUTO_START else None

    def start_broker(self, broker=None, listeners=None, check=True, **kw):
        b = Broker(broker, listeners, **kw)
        self.brokers.append(b)
        return b.start(check=check)

    def forget_broker(self, b):
        """Stops checking B (its exit was the test's business); still cleans it up."""
        self.brokers.remove(b)
        self.addCleanup(b.close)
        report = b.sanitizer_report() if b.proc else None
        self.assertIsNone(report, "sanitizer report in pigeond's log:\n" + b.log_text()[-6000:])

    def tearDown(self):
        for c in self.clients:
            c.close()
        failures = []
        for b in self.brokers:
            try:
                code = b.stop()
                log = b.log_text()
                if code != 0:
                    failures.append("pigeond did not exit cleanly (%s):\n%s" % (code, log[-4000:]))
                report = b.sanitizer_report()
                if report:
                    failures.append("%s report in pigeond's log:\n%s" % (report, log[-6000:]))
            except AssertionError as e:
                failures.append(str(e))
            finally:
                b.close()
        if failures:
            self.fail("\n\n".join(failures))

    def client(self, broker=None, **kw):
        c = (broker or self.broker).client(**kw)
        self.clients.append(c)
        return c

    def connect(self, address, **kw):
        c = Client(address, **kw)
        self.clients.append(c)
        return c

    def raw_socket(self, broker=None, name=None, **kw):
        """A connected socket with nothing sent on it, closed at the end of the test."""
        s = connect_socket((broker or self.broker).address(name), **kw)
        self.addCleanup(s.close)
        return s


def read_until_closed(sock, timeout=DEADLINE, limit=None):
    """Reads SOCK until EOF (or LIMIT bytes); returns the bytes.  Fails on timeout."""
    end = time.monotonic() + timeout
    chunks, n = [], 0
    poller = readable_poller(sock)
    while limit is None or n < limit:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError("connection still open after %ss" % timeout)
        if not poller.poll(min(left, 0.5) * 1000):
            continue
        try:
            data = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
        n += len(data)
    return b"".join(chunks)


def frames_of(data):
    """Every whole frame in DATA, decoded."""
    u = msgpack.Unpacker(raw=False, strict_map_key=False, unicode_errors="surrogateescape",
                         max_buffer_size=max(len(data), 1024), ext_hook=ext_hook)
    u.feed(data)
    return list(u)


def port_is_free(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    finally:
        s.close()


def ipv6_loopback_works():
    if not socket.has_ipv6:
        return False
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def u64(n):
    return struct.pack(">Q", n)


def main():
    unittest.main(verbosity=2)
