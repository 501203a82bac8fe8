"""slowloris.py - clients that send an HTTP request one byte at a time.

Used by test_http.py, and run alone it measures what such clients do to a
running pigeond's [http] endpoint (the figures in docs/operations.md):

    /usr/bin/python3 tests/ops/slowloris.py 127.0.0.1:7480 [N [INTERVAL [SECONDS]]]

opens N connections (default 32) from 127.0.0.1, each sending a request
line and then one header byte every INTERVAL seconds (default 5), and for
SECONDS (default 30) asks /healthz from 127.0.0.2 every second.  It prints
how many connections were refused with a 503, how many were closed without
one and when, and how /healthz fared.
"""

import select
import socket
import sys
import time


class Drip:
    """N connections from SOURCE, each dripping a request to ADDRESS ("host:port")."""

    def __init__(self, address, n, source="127.0.0.1"):
        host, port = address.rsplit(":", 1)
        self.started = time.monotonic()
        self.socks = []
        self.replies = {}   # socket -> bytes received before it was closed
        self.closed = {}    # socket -> seconds from the start to its end of file
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((source, 0))
            s.setblocking(False)
            s.connect_ex((host.strip("[]"), int(port)))  # completes in the kernel's accept queue
            self.socks.append(s)
            self.replies[s] = b""
        self.wait_writable()
        for s in self.socks:
            self._send(s, b"GET /healthz HTTP/1.1\r\nHost: pigeon\r\n")

    def wait_writable(self):
        p = select.poll()
        for s in self.socks:
            p.register(s, select.POLLOUT)
        pending = set(s.fileno() for s in self.socks)
        end = time.monotonic() + 30
        while pending and time.monotonic() < end:
            for fd, _ in p.poll(100):
                pending.discard(fd)
                p.unregister(fd)

    def _send(self, s, data):
        if s in self.closed:
            return
        try:
            s.send(data)
        except OSError:
            pass  # the server closed it: poll() reads what it sent first, then the end

    def _closed(self, s):
        if s not in self.closed:
            self.closed[s] = time.monotonic() - self.started

    def drip(self):
        """One more header byte on every connection still open."""
        for s in self.socks:
            self._send(s, b"X")

    def poll(self, seconds=0.0):
        """Reads what arrived within SECONDS; notes the connections the server closed."""
        p = select.poll()
        for s in self.socks:
            if s not in self.closed:
                p.register(s, select.POLLIN)
        end = time.monotonic() + seconds
        while True:
            left = max(0.0, end - time.monotonic())
            events = p.poll(int(left * 1000))
            for fd, _ in events:
                s = next(x for x in self.socks if x.fileno() == fd)
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if data:
                    self.replies[s] += data
                else:  # the end of file, or a reset
                    self._closed(s)
                    p.unregister(fd)
            if time.monotonic() >= end:
                return

    def open_count(self):
        return len(self.socks) - len(self.closed)

    def refused(self):
        """Connections closed after a 503."""
        return [s for s in self.closed if self.replies[s].startswith(b"HTTP/1.1 503")]

    def cut(self):
        """Connections closed with no reply: the header deadline."""
        return [s for s in self.closed if not self.replies[s]]

    def close(self):
        for s in self.socks:
            s.close()


def healthz(address, source="127.0.0.2", timeout=5.0):
    """The status line of GET /healthz from SOURCE, or the error."""
    host, port = address.rsplit(":", 1)
    try:
        s = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout,
                                     source_address=(source, 0))
    except OSError as e:
        return "connect: %s" % e
    try:
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed without a reply"
    except OSError as e:
        return "error: %s" % e
    finally:
        s.close()


def main():
    address = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    d = Drip(address, n)
    answered = failed = 0
    next_drip = time.monotonic() + interval
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        status = healthz(address, timeout=1.0)
        ok = status.startswith("HTTP/1.") and " 200 " in status + " "
        answered += ok
        failed += not ok
        if time.monotonic() >= next_drip:
            d.drip()
            next_drip += interval
        d.poll(max(0.0, 1.0 - (time.monotonic() - t)))
    cut = sorted(d.closed[s] for s in d.cut())
    print("%d dripping connections, one byte every %gs, for %gs:" % (n, interval, seconds))
    print("  refused with 503: %d" % len(d.refused()))
    print("  closed without a reply: %d%s" % (len(cut), " (after %.1f-%.1fs)" % (cut[0], cut[-1]) if cut else ""))
    print("  still open at the end: %d" % d.open_count())
    print("  /healthz from 127.0.0.2, once a second, 1 s timeout: %d answered 200, %d not"
          % (answered, failed))
    d.close()


if __name__ == "__main__":
    main()
