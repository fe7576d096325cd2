"""python -m shopctl.streams_ops status | dead-letters [list | redrive ID...]   (REDIS_URL required)

A re-drive is traced as the services are (TRACE_DIR, OTEL_EXPORTER_OTLP_ENDPOINT): its span, of
service OPERATOR, links to the trace of the event it puts back (shoplib.observability.later_work)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import cast

import redis.asyncio as aioredis

from shoplib import config
from shoplib.observability import tracing
from shoplib.store import connections, partitions, shared_clock
from shoplib.streams import deadletter, status

OPERATOR = "streams-ops"  # service.name of the operator's re-drive spans


async def _orders(client: aioredis.Redis) -> str:
    """The order service's recovery view: orders not settled yet per mode, and re-drives so far,
    over every partition."""
    from shop.v1 import types_pb2

    from order_svc.adapters import pending_key, redriven_key

    now_ms = await shared_clock.now_ms(client)  # scores are on the server's clock
    parts = []
    for mode, name in ((types_pb2.FLOW_MODE_SYNC, "sync"), (types_pb2.FLOW_MODE_EVENTS, "events")):
        # redis-py types every ZRANGE shape at once; WITHSCORES gives (member, score) pairs.
        keys = [pending_key(mode, p) for p in partitions.every()]
        oldest = [cast("list[tuple[bytes, float]]", await client.zrange(key, 0, 0, withscores=True)) for key in keys]
        scores = [found[0][1] for found in oldest if found]
        age = f", oldest {(now_ms - min(scores)) / 1000:.0f}s" if scores else ""
        parts.append(f"{name} {sum([await client.zcard(key) for key in keys])}{age}")
    redriven = sum([int(await client.get(redriven_key(p)) or 0) for p in partitions.every()])
    return f"orders PENDING: {'; '.join(parts)}. Events orders re-driven so far: {redriven}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shopctl.streams_ops")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="streams, groups, consumers, lag, oldest pending, dead letters")
    dead = sub.add_parser("dead-letters", help="list dead letters, or re-drive some by id")
    dead.add_argument("action", nargs="?", choices=["list", "redrive"], default="list")
    dead.add_argument("ids", nargs="*")
    return parser


async def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    client = connections.connect(config.redis_url("REDIS_URL"))  # a cluster client with REDIS_CLUSTER=1
    try:
        if args.command == "status":
            print(status.render(*await status.collect(client)))
            print(await _orders(client))
        elif args.action == "list":
            print(await status.dead_letters(client))
        else:
            with tracing.on(OPERATOR):  # off unless asked for; its spans are exported before the exit
                for entry_id in args.ids:
                    print(f"{entry_id} re-driven as {await deadletter.redrive(client, entry_id)}")
    finally:
        await client.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
