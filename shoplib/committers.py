"""Committers that run atomic commits (shoplib.tx) on Redis, as one Lua script each."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from shoplib.metrics import COMMIT_SECONDS
from shoplib.redis_pipe import Endpoint, RedisPipe
from shoplib.tx import Ack, Once, Value, Writes, script_arguments

_SCRIPT = (Path(__file__).with_name("commit.lua")).read_text()


class RedisCommitter:
    """Runs the commit script; returns False when the once key showed the effect was done."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._script = client.register_script(_SCRIPT)

    async def commit(self, writes: Writes, once: Once | None = None,
                     ack: Ack | None = None) -> bool:
        keys, args = script_arguments(writes, once, ack)
        started = time.perf_counter()
        done = bool(await self._script(keys=keys, args=args))
        COMMIT_SECONDS.observe(time.perf_counter() - started)
        return done


class PipelinedCommitter:
    """The same commits, but all those requested in one event-loop turn travel in one pipeline:
    a batch of 64 consumed entries costs one round trip instead of 64. Each commit is still its
    own atomic script; only the transport is shared. EVALSHA goes out directly (no SCRIPT EXISTS
    per flush); after a Redis restart emptied the script cache, the script is loaded once and
    the failed commits are sent again (NOSCRIPT means the script did not run at all).

    On one Redis the batch travels on this committer's own lean connection (`RedisPipe`: hiredis
    packs and parses, a quarter of redis-py's client CPU per commit). On a Redis Cluster redis-py's
    pipeline splits the batch by node (each commit is one slot); redis-py 8.1 refuses `evalsha` in
    a cluster pipeline, so it goes out as a plain command (its keys still route it)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        endpoint = Endpoint.of(client)
        self._pipe = RedisPipe(endpoint) if endpoint is not None else None
        self._sha = client.register_script(_SCRIPT).sha
        self._queue: list[tuple[list[str], list[Value], asyncio.Future[bool]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def commit(self, writes: Writes, once: Once | None = None,
                     ack: Ack | None = None) -> bool:
        keys, args = script_arguments(writes, once, ack)
        started = time.perf_counter()
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        if len(self._queue) == 1:
            asyncio.get_running_loop().call_soon(self._schedule_flush)
        done = await future
        COMMIT_SECONDS.observe(time.perf_counter() - started)  # as the caller waited: queue and round trip
        return done

    def _schedule_flush(self) -> None:
        task = asyncio.ensure_future(self._flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def aclose(self) -> None:
        if self._pipe is not None:
            await self._pipe.close()

    async def _send(self, batch: list[tuple[list[str], list[Value], asyncio.Future[bool]]]) -> list[object]:
        commands = [("EVALSHA", self._sha, len(keys), *keys, *args) for keys, args, _ in batch]
        if self._pipe is not None:
            return await self._pipe.execute(commands)
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))

    async def _flush(self) -> None:
        batch, self._queue = self._queue, []
        try:
            results = await self._send(batch)
            if any(isinstance(r, NoScriptError) for r in results):
                await self._client.script_load(_SCRIPT)
                retried = [await self._send([item]) if isinstance(r, NoScriptError) else [r]
                           for item, r in zip(batch, results, strict=True)]
                results = [r[0] for r in retried]
        except BaseException as exc:  # the connection failed: every commit of the batch failed
            results = [exc] * len(batch)
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(bool(result))
