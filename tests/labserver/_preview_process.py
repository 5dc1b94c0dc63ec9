"""A kernel stand-in for the labserver tests: publishes a notebook workflow with a
preview inside an asyncio loop, prints ``{"port": N}``, and stops the preview when a
``stop`` line arrives on stdin (then prints ``stopped`` and exits at end of input)."""

from __future__ import annotations

import asyncio
import json
import sys

import kailash_nb as kn


def define() -> None:
    kn.workflow("pricing")

    @kn.node
    def items(discount=0.0):
        basket = [("widget", 3, 2.50), ("gadget", 1, 12.00)]
        return [{"item": n, "qty": q, "price": round(p * (1 - discount), 2)} for n, q, p in basket]

    @kn.node
    def invoice(items):
        return {"total": round(sum(i["qty"] * i["price"] for i in items), 2)}


async def main() -> None:
    define()
    preview = await kn.publish("pricing", route="/quote", preview=True).ready()
    print(json.dumps({"port": int(preview.base_url.rsplit(":", 1)[1])}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        if line.strip() == "stop":
            await preview.stop()
            print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
