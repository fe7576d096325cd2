"""Client CPU of one commit-sized round trip (an EVALSHA with our commit's shape of keys and
arguments), through redis-py, through the lean connection the committers use (shoplib.store.lean,
with its keepalive and idle check) and through raw RESP with hiredis.

    .venv/bin/python -m bench.redis_roundtrip

The profiles (results/profile) charge the commit through redis-py 19-50 % of a service's CPU;
this says how much of one round trip is the client library rather than the socket. Private
redis-server; prints figures, asserts nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import hiredis
import redis.asyncio as aioredis
import uvloop

from shopctl.local_redis.server import LocalRedis
from shoplib.store import connections
from shoplib.store.lean import Endpoint, RedisPipe

SCRIPT = "redis.call('SET', KEYS[1], ARGV[1]); return 1"
ROUND_TRIPS = 4000  # per way: a few seconds, enough for a stable CPU figure
ROUNDS = 2  # each way measured twice, alternately, so a busy neighbour shows as a spread
READ_BYTES = 65536

RoundTrip = Callable[[int], Awaitable[object]]


def _arguments(sha: str, i: int) -> list[str | int]:
    return ["EVALSHA", sha, 2, f"k:{{p1}}:{i}", "k2:{p1}", "v" * 20, "x", "y", "z"]


async def _cpu_us(one: RoundTrip) -> float:
    await one(0)
    started = time.process_time()
    for i in range(ROUND_TRIPS):
        await one(i)
    return (time.process_time() - started) / ROUND_TRIPS * 1e6


async def pipelined(url: str, sha: str) -> float:
    """As PipelinedCommitter sends a flush of one commit."""
    client = connections.connect(url)

    async def one(i: int) -> object:
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command(*_arguments(sha, i))
            return await pipe.execute(raise_on_error=False)

    try:
        return await _cpu_us(one)
    finally:
        await client.aclose()


async def lean(port: int, sha: str) -> float:
    """As PipelinedCommitter sends a flush of one commit on one Redis."""
    pipe = RedisPipe(Endpoint("127.0.0.1", port))

    async def one(i: int) -> object:
        return await pipe.execute([_arguments(sha, i)])

    try:
        return await _cpu_us(one)
    finally:
        await pipe.close()


def _pack(arguments: list[str | int]) -> bytes:
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        data = str(argument).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


async def raw(port: int, sha: str) -> float:
    """The same command packed by hand on one asyncio connection, parsed by hiredis."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    parser = hiredis.Reader()

    async def one(i: int) -> object:
        writer.write(_pack(_arguments(sha, i)))
        while (reply := parser.gets()) is False:
            parser.feed(await reader.read(READ_BYTES))
        return reply

    try:
        return await _cpu_us(one)
    finally:
        writer.close()


async def main() -> None:
    server = LocalRedis().start()
    try:
        loader = aioredis.Redis(port=server.port)
        sha = str(await loader.script_load(SCRIPT))
        await loader.aclose()
        for _ in range(ROUNDS):
            print(f"redis-py pipeline of one EVALSHA (as committed): {await pipelined(server.url, sha):6.1f} us CPU")
            print(f"lean connection (shoplib.store.lean):          {await lean(server.port, sha):6.1f} us CPU")
            print(f"raw RESP on one connection, hiredis parser:    {await raw(server.port, sha):6.1f} us CPU")
    finally:
        server.close()


if __name__ == "__main__":
    uvloop.run(main())
