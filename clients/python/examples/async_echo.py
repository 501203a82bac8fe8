#!/usr/bin/env python3
"""async_echo.py - the asyncio client: a responder and a requester in one
program, as two tasks.

    python3 async_echo.py
"""

import asyncio

import pigeon.aio


async def serve(c: pigeon.AsyncClient, sub: pigeon.AsyncSubscription) -> None:
    async for msg in sub:
        await c.reply(msg, {"echo": msg.payload})


async def main() -> None:
    async with pigeon.aio.connect(name="example-async") as c:
        sub = await c.subscribe("svc.echo")
        server = asyncio.create_task(serve(c, sub))
        answers = await asyncio.gather(*(c.request("svc.echo", [i, "é", b"\x00"], timeout=2.0)
                                         for i in range(3)))
        for a in answers:
            print(a)
        await sub.unsubscribe()
        await server


if __name__ == "__main__":
    asyncio.run(main())
