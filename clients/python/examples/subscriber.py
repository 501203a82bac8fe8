#!/usr/bin/env python3
"""subscriber.py - prints every order published under orders.>.

    python3 subscriber.py [--count N]

Talks to $PIGEON_SERVER (default 127.0.0.1:7400) and survives a broker
restart: reconnect=True re-subscribes and the loop carries on.
"""

import argparse

import pigeon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=0, help="exit after N messages (0: never)")
    args = ap.parse_args()

    with pigeon.connect(name="example-subscriber", reconnect=True) as c:
        with c.subscribe("orders.>") as orders:
            print("subscribed", flush=True)
            for n, msg in enumerate(orders, 1):
                order = msg.payload  # a dict again, with its ints, floats and bools
                print("%s: order %d, total %.2f, headers %s"
                      % (msg.topic, order["id"], order["total"], msg.headers), flush=True)
                if n == args.count:
                    break


if __name__ == "__main__":
    main()
