#!/usr/bin/env python3
"""responder.py - answers requests on math.add: {"a": x, "b": y} -> x + y.

    python3 responder.py [--count N]

Run several: with a queue group, each request goes to exactly one of them.
"""

import argparse

import pigeon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=0, help="exit after N requests (0: never)")
    args = ap.parse_args()

    with pigeon.connect(name="example-responder", reconnect=True) as c:
        with c.subscribe("math.add", queue="adders") as requests:
            print("serving math.add", flush=True)
            for n, msg in enumerate(requests, 1):
                try:
                    c.reply(msg, {"sum": msg.payload["a"] + msg.payload["b"]})
                except (KeyError, TypeError) as e:
                    c.reply(msg, {"error": "want {'a': number, 'b': number}: %s" % e})
                if n == args.count:
                    break


if __name__ == "__main__":
    main()
