#!/usr/bin/env python3
"""requester.py - asks math.add a few sums and prints the answers.

    python3 requester.py

Start responder.py first; without one each request times out.
"""

import sys

import pigeon


def main() -> None:
    with pigeon.connect(name="example-requester") as c:
        for a, b in [(1, 2), (2**40, 2**40), (0.5, 0.25)]:
            try:
                answer = c.request("math.add", {"a": a, "b": b}, timeout=2.0)
            except (pigeon.NoResponders, TimeoutError):
                sys.exit("no answer from math.add: is responder.py running?")
            print("%r + %r = %r" % (a, b, answer["sum"]), flush=True)


if __name__ == "__main__":
    main()
