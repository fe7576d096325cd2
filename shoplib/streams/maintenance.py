"""A consumer's periodic chores: reclaim entries of dead or stuck consumers, trim the streams it
keeps bounded, forget idle consumers and stale failure records. Skipped while the store refuses
writes, and reclaim waits a claim period after an outage so holders finish their own entries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shoplib import log
from shoplib.observability import metrics
from shoplib.store import outage, partitions
from shoplib.store.outage import StoreGate
from shoplib.streams import failures, topology, trace_context
from shoplib.streams.reads import text
from shoplib.streams.settings import ConsumerSettings
from shoplib.streams.trim import Trimmer

if TYPE_CHECKING:
    from shoplib.streams.subscription import Entry, Subscription

Process = Callable[[list["Entry"], bool], Awaitable[None]]
_logger = log.get("shoplib.consumer")


class Maintenance:
    def __init__(self, client: aioredis.Redis, sub: Subscription, settings: ConsumerSettings, gate: StoreGate,
                 stopping: asyncio.Event, process: Process, trimmer: type[Trimmer] = Trimmer) -> None:
        self._client, self._sub, self._settings, self._gate = client, sub, settings, gate
        self._stopping, self._process = stopping, process
        self._trimmer = trimmer(client)
        self._wanted = topology.in_partitions({base: (sub.group,) for base in sub.streams})
        self._trimmed = [s for base in topology.trimmed_by(sub.group, sub.streams) for s in partitions.streams(base)]
        self._next = 0.0

    async def run_if_due(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self._settings.maintenance_interval_s
        try:
            await self.run()
        except Exception as exc:
            if outage.is_outage(exc):
                self._gate.report(exc)
            elif isinstance(exc, ResponseError) and topology.is_group_missing(exc):
                await self.recreate_groups()
            else:  # a chore that fails (a bug, odd data) never stops the reading: said, retried next round
                _logger.error("consumer.maintenance_failed", group=self._sub.group, exc_info=exc)

    async def run(self) -> None:
        """Every chore over every partition's stream, each chore in one pipelined round trip
        (P partitions would otherwise cost P round trips per chore per round)."""
        streams, group = list(self._wanted), self._sub.group
        if self._reclaim_allowed():
            first = await self._each(streams, lambda pipe, stream: pipe.xautoclaim(
                stream, group, self._sub.consumer, self._settings.claim_idle_ms, start_id="0-0",
                count=self._settings.batch))
            for stream, reply in zip(streams, first, strict=True):
                await self._reclaim(stream, reply)
        consumers = await self._each(streams, lambda pipe, stream: pipe.xinfo_consumers(stream, group))
        for stream, found in zip(streams, consumers, strict=True):
            await self._forget_idle_consumers(stream, found)
        await self._trimmer.trim_all(self._trimmed, self._settings.retain_ms)
        await failures.sweep(self._client, group)

    async def _each(self, streams: list[str], add: Callable[[Any, str], object]) -> list[Any]:
        """One command per stream, in one pipeline (a cluster client splits it by node)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for stream in streams:
                add(pipe, stream)
            return list(await pipe.execute())

    async def recreate_groups(self) -> None:
        """Our group was lost (Redis restarted without persistence, or deleted by hand)."""
        _logger.error("consumer.group_lost", group=self._sub.group, streams=list(self._sub.streams),
                      action="recreating; entries from the stream start are re-read, effects are idempotent")
        await topology.ensure_groups(self._client, self._wanted)

    def _reclaim_allowed(self) -> bool:
        """Not within a claim period after an outage: entries idle through the outage are still
        being retried by the consumers holding them (a control run's maintenance never reclaims)."""
        return time.monotonic() - self._gate.opened_at > self._settings.claim_idle_ms / 1000

    async def _reclaim(self, stream: str, reply: Any) -> None:
        """Take over entries idle past the claim threshold (dead, stuck or failed consumers),
        following the cursor of the first XAUTOCLAIM reply to the end of the pending list."""
        while True:
            cursor, claimed = text(reply[0]), reply[1]
            if claimed:
                _logger.info("consumer.reclaimed", stream=stream, entries=len(claimed))
                metrics.EVENTS_RECLAIMED.labels(partitions.base(stream), self._sub.group).inc(len(claimed))
                with trace_context.reclaiming(stream, self._sub.group, self._sub.consumer, len(claimed)):
                    await self._process([(stream, text(i), f or {}) for i, f in claimed], True)
            if cursor == "0-0" or self._stopping.is_set():
                return
            reply = await self._client.xautoclaim(stream, self._sub.group, self._sub.consumer,
                                                  self._settings.claim_idle_ms, start_id=cursor,
                                                  count=self._settings.batch)

    async def _forget_idle_consumers(self, stream: str, consumers: list[dict[str, Any]]) -> None:
        for consumer in consumers:
            name = text(consumer["name"])
            if (name != self._sub.consumer and not consumer["pending"]
                    and consumer["idle"] > self._settings.consumer_idle_delete_ms):
                await self._client.xgroup_delconsumer(stream, self._sub.group, name)
                _logger.info("consumer.removed_idle", stream=stream, consumer=name)
