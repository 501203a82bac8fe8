#!/usr/bin/env python3
"""publisher.py - publishes an order every so often.

    python3 publisher.py [--count N] [--interval SECONDS]

Talks to $PIGEON_SERVER (default 127.0.0.1:7400).  Run subscriber.py in
another terminal to see the orders arrive.
"""

import argparse
import time

import pigeon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--interval", type=float, default=0.5)
    args = ap.parse_args()

    with pigeon.connect(name="example-publisher") as c:
        for i in range(1, args.count + 1):
            order = {"id": i, "items": [{"sku": "apple", "qty": i}], "total": 1.25 * i,
                     "express": i % 2 == 0}
            # confirm=True waits for the broker and says how many got it.
            n = c.publish("orders.new", order, headers={"source": "example"}, confirm=True)
            print("published order %d to %d subscriber(s)" % (i, n), flush=True)
            time.sleep(args.interval)


if __name__ == "__main__":
    main()
