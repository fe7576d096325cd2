"""Committers that run atomic commits (shoplib.commit.writes) on Redis, as one Lua script each."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from shoplib.commit.writes import Ack, Once, Value, Writes, script_arguments
from shoplib.observability.metrics import COMMIT_SECONDS
from shoplib.store.lean import RedisPipe, Reply

_SCRIPT = (Path(__file__).with_name("commit.lua")).read_text()
Queued = tuple[list[str], list[Value], "asyncio.Future[bool]"]  # a commit's KEYS, ARGV and its caller's future


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
        self._pipe = RedisPipe.of(client)
        self._sha = client.register_script(_SCRIPT).sha
        self._queue: list[Queued] = []
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
        batch, self._queue = self._queue, []
        try:
            sent = self._pipe.send_now(self._commands(batch)) if self._pipe is not None else None
        except Exception as exc:  # a value that cannot be sent, a connection closing: this batch failed
            return _settle([(item, exc) for item in batch])
        if sent is None:  # not connected yet (or a cluster): a task connects and sends
            return self._spawn(self._flush(batch))
        # Connected: the batch is on the wire now, and its replies are handed out by a callback
        # (no task per flush: a task costs more than the rest of a small batch's flush).
        sent.add_done_callback(functools.partial(self._replied, batch))

    def _replied(self, batch: list[Queued], sent: asyncio.Future[list[Reply]]) -> None:
        error = ConnectionError("commit connection closed") if sent.cancelled() else sent.exception()
        results: list[object] = [error] * len(batch) if error is not None else sent.result()
        unloaded = [item for item, result in zip(batch, results, strict=True) if isinstance(result, NoScriptError)]
        if unloaded:  # NOSCRIPT: those did not run at all; load the script and send them again
            self._spawn(self._flush(unloaded, reload=True))
        _settle([(item, r) for item, r in zip(batch, results, strict=True) if not isinstance(r, NoScriptError)])

    def _spawn(self, flush: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(flush)
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def aclose(self) -> None:
        if self._pipe is not None:
            await self._pipe.close()

    def _commands(self, batch: list[Queued]) -> list[tuple[Value, ...]]:
        return [("EVALSHA", self._sha, len(keys), *keys, *args) for keys, args, _ in batch]

    async def _send(self, batch: list[Queued]) -> list[object]:
        if self._pipe is not None:
            return await self._pipe.execute(self._commands(batch))
        async with self._client.pipeline(transaction=False) as pipe:
            for command in self._commands(batch):
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))

    async def _flush(self, batch: list[Queued], reload: bool = False) -> None:
        try:
            if reload:
                await self._client.script_load(_SCRIPT)
            results = await self._send(batch)
            if any(isinstance(r, NoScriptError) for r in results):
                await self._client.script_load(_SCRIPT)
                retried = [await self._send([item]) if isinstance(r, NoScriptError) else [r]
                           for item, r in zip(batch, results, strict=True)]
                results = [r[0] for r in retried]
        except BaseException as exc:  # the connection failed: every commit of the batch failed
            results = [exc] * len(batch)
        _settle(list(zip(batch, results, strict=True)))


def _settle(outcomes: list[tuple[Queued, object]]) -> None:
    """Each waiting commit gets its script's reply (done or not), or the error that stopped it."""
    for (_, _, future), result in outcomes:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(bool(result))
