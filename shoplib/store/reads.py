"""The stores' reads on a lean connection (one Redis): GET, LRANGE, ZRANGEBYSCORE ... LIMIT and EVAL,
as the services' stores call them on redis-py's client, without its per-command Python.

An order settled in events mode is read once (GET) on the hot path; the rest are rarer but take
the same road. On a Redis Cluster (or a Unix socket) `reads_for` hands back the redis-py client:
its reads follow slots. Errors are raised as redis-py raises them (outages included).
"""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis

from shoplib.store.lean import Arg, RedisPipe, Reply


class PipeReads:
    def __init__(self, pipe: RedisPipe) -> None:
        self._pipe = pipe

    async def _one(self, *command: Arg) -> Reply:
        [reply] = await self._pipe.execute([command])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def get(self, name: str, /) -> bytes | None:
        return cast("bytes | None", await self._one("GET", name))

    async def lrange(self, name: str, start: int, end: int, /) -> list[bytes]:
        return cast("list[bytes]", await self._one("LRANGE", name, start, end))

    async def zrangebyscore(self, name: str, min: str, max: int, /, start: int, num: int) -> list[bytes]:
        return cast("list[bytes]", await self._one("ZRANGEBYSCORE", name, min, max, "LIMIT", start, num))

    async def eval(self, script: str, numkeys: int, /, *keys_and_args: str) -> Reply:
        """A read-only script (shoplib.store.shared_clock.DUE), sent whole: Redis caches it by its hash."""
        return await self._one("EVAL", script, numkeys, *keys_and_args)

    async def aclose(self) -> None:
        await self._pipe.close()


def reads_for(client: aioredis.Redis) -> PipeReads | aioredis.Redis:
    """A lean reader on the client's Redis (same user, TLS, database), or the client itself where
    the lean connection does not apply."""
    pipe = RedisPipe.of(client)
    return PipeReads(pipe) if pipe is not None else client
