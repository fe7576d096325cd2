"""python -m shoplib.streams status | dead-letters [list | redrive ID...]   (REDIS_URL required)"""

from __future__ import annotations

import argparse
import asyncio
import sys

import redis.asyncio as aioredis

from shoplib import config
from shoplib.streams import deadletter, status


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shoplib.streams")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="streams, groups, consumers, lag, oldest pending, dead letters")
    dead = sub.add_parser("dead-letters", help="list dead letters, or re-drive some by id")
    dead.add_argument("action", nargs="?", choices=["list", "redrive"], default="list")
    dead.add_argument("ids", nargs="*")
    args = parser.parse_args(argv)
    client = aioredis.Redis.from_url(config.required("REDIS_URL"))
    try:
        if args.command == "status":
            print(status.render(*await status.collect(client)))
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
