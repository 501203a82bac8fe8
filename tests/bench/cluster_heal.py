#!/usr/bin/python3
"""cluster_heal.py - two figures of the Redis backplane (docs/performance.md).

1. Commands: 10,000 messages published over about 2 s on a node whose only
   remote interest is in other topics, counted in Redis's own
   total_commands_processed (heartbeats included, the INFO call itself
   excluded).
2. Healing: Redis killed and restarted on the same port, N times at once
   and N times after 3 s down; for each, the time from the restarted Redis
   answering to a subscription made before the restart (on another node)
   receiving messages again.

Starts its own redis-server and two pigeond nodes (path in $PIGEOND, else
build/src/pigeond/pigeond) on loopback ports.  A benchmark, not a test:

    /usr/bin/python3 tests/bench/cluster_heal.py [N]
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../integration"))
os.environ.setdefault("PIGEOND", os.path.join(HERE, "../../build/src/pigeond/pigeond"))

from clusterlib import Redis  # noqa: E402
from harness import Broker  # noqa: E402


def node(redis, name):
    text = "[cluster]\nredis = %s\nnode = %s\n" % (redis.address, name)
    b = Broker({"log_level": "notice"}, extra=text).start()
    b.wait_log("backplane up")
    return b


def commands(redis, a, b):
    far = b.client()
    far.sub("elsewhere.>")
    local, pub = a.client(), a.client()
    local.sub("local.>")
    time.sleep(0.5)  # the interest reaches a1
    pub.sync()
    before = redis.commands_processed()
    t0 = time.monotonic()
    for i in range(10000):  # over about 2 s, so that heartbeats fall inside
        pub.pub_notify("local.x", i)
        if i % 50 == 49:
            time.sleep(0.01)
    pub.sync()
    local.wait_messages(10000)
    took = time.monotonic() - t0
    after = redis.commands_processed()
    print("10,000 messages without remote interest: %d Redis commands in %.2f s "
          "(heartbeats included)" % (after - before - 1, took))
    for c in (far, local, pub):
        c.close()


def heal(redis, a, b, rounds, down_s):
    remote = b.client()
    remote.sub("orders.>")
    pub = a.client()
    time.sleep(0.5)
    times = []
    for _ in range(rounds):
        redis.kill()
        a.wait_log("backplane down", count=heal.downs + len(times) + 1)
        time.sleep(down_s)  # the nodes back off meanwhile (to 1 s between attempts)
        redis.start(redis.port)
        back = time.monotonic()
        n = len(remote.messages)
        while len(remote.messages) == n:
            pub.pub_notify("orders.x", "ping")
            remote.pump_for(0.02)
            if time.monotonic() - back > 30:
                raise SystemExit("no message after 30 s")
        times.append(time.monotonic() - back)
        time.sleep(0.5)
    heal.downs += rounds
    times.sort()
    print("Redis down %.0f s then restarted, %d runs: messages across nodes again after min %.2f s, "
          "median %.2f s, max %.2f s" % (down_s, rounds, times[0], times[len(times) // 2],
                                          times[-1]))
    remote.close()
    pub.close()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    redis = Redis().start()
    a = b = None
    try:
        a, b = node(redis, "a1"), node(redis, "b1")
        commands(redis, a, b)
        heal.downs = 0
        heal(redis, a, b, rounds, 0)
        heal(redis, a, b, rounds, 3)
    finally:
        for n in (a, b):
            if n is not None:
                n.close()
        redis.close()


if __name__ == "__main__":
    main()
