#!/usr/bin/python3
"""idle_memory.py - resident memory of pigeond idle, and per idle connection.

Starts pigeond (path in $PIGEOND, else build/src/pigeond/pigeond) on port 0,
reads its VmRSS idle, then opens N connections that each send hello and one
subscription to a topic of their own (bench.idle.<i>), waits for every sub
response, and reads VmRSS again.  Prints the figures docs/performance.md
quotes.  A benchmark, not a test: run it by hand.

    /usr/bin/python3 tests/bench/idle_memory.py [N]
"""
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
PIGEOND = os.environ.get("PIGEOND", os.path.join(HERE, "../../build/src/pigeond/pigeond"))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < n + 100:
        sys.exit("need ulimit -n of at least %d" % (n + 100))
    d = tempfile.mkdtemp()
    conf, ports = os.path.join(d, "c.conf"), os.path.join(d, "ports")
    with open(conf, "w") as f:
        f.write("[broker]\nlog_level = warning\nmax_connections = %d\n"
                "[listener main]\nbind = 127.0.0.1:0\n" % (n + 10))
    p = subprocess.Popen([PIGEOND, "-c", conf, "--ports-file", ports])
    while not os.path.exists(ports):
        time.sleep(0.05)
    port = int(open(ports).read().split()[1].rsplit(":", 1)[1])
    time.sleep(0.5)
    idle = rss_kib(p.pid)

    sel = selectors.DefaultSelector()
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(msgpack.packb([0, 1, "hello", [{"client": "idle"}]]) +
                  msgpack.packb([0, 2, "sub", ["bench.idle.%d" % i]]))
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, msgpack.Unpacker())
    pending = n
    while pending:
        for key, _ in sel.select(10):
            unp = key.data
            unp.feed(key.fileobj.recv(4096))
            for frame in unp:
                if frame[0] == 1 and frame[1] == 2:
                    pending -= 1
                    sel.unregister(key.fileobj)
    time.sleep(0.5)
    loaded = rss_kib(p.pid)
    print("idle RSS: %d KiB" % idle)
    print("with %d connections, one subscription each: %d KiB" % (n, loaded))
    print("per connection: %.0f bytes" % ((loaded - idle) * 1024.0 / n))
    for s in socks:
        s.close()
    p.terminate()
    p.wait()


if __name__ == "__main__":
    main()
