"""python -m shoplib.streams status | dead-letters [list | redrive ID...]   (REDIS_URL required)"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import cast

import redis.asyncio as aioredis

from shoplib import config
from shoplib.streams import deadletter, status


async def _orders(client: aioredis.Redis) -> str:
    """The order service's recovery view: orders not settled yet per mode, and re-drives so far."""
    from order_svc.adapters import PENDING_EVENTS, PENDING_SYNC, REDRIVEN

    now_ms = int(time.time() * 1000)
    parts = []
    for mode, key in (("sync", PENDING_SYNC), ("events", PENDING_EVENTS)):
        # redis-py types every ZRANGE shape at once; WITHSCORES gives (member, score) pairs.
        oldest = cast("list[tuple[bytes, float]]", await client.zrange(key, 0, 0, withscores=True))
        age = f", oldest {(now_ms - oldest[0][1]) / 1000:.0f}s" if oldest else ""
        parts.append(f"{mode} {await client.zcard(key)}{age}")
    redriven = int(await client.get(REDRIVEN) or 0)
    return f"orders PENDING: {'; '.join(parts)}. Events orders re-driven so far: {redriven}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shoplib.streams")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="streams, groups, consumers, lag, oldest pending, dead letters")
    dead = sub.add_parser("dead-letters", help="list dead letters, or re-drive some by id")
    dead.add_argument("action", nargs="?", choices=["list", "redrive"], default="list")
    dead.add_argument("ids", nargs="*")
    return parser


async def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    client = aioredis.Redis.from_url(config.redis_url("REDIS_URL"))
    try:
        if args.command == "status":
            print(status.render(*await status.collect(client)))
            print(await _orders(client))
        elif args.action == "list":
            print(await status.dead_letters(client))
        else:
            for entry_id in args.ids:
                print(f"{entry_id} re-driven as {await deadletter.redrive(client, entry_id)}")
    finally:
        await client.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
