"""One consumer runtime for every service: the read loop.

Reads its own pending entries first, then new ones, as many as it has free slots; acknowledges
only inside the handler's atomic commit; reads nothing new while the store refuses writes. What
happens to each entry (outage, bad entry, failure) lives in `entries.py`; reclaim, trimming and
the other chores in `maintenance.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from shoplib import log
from shoplib.commit.writes import Committer
from shoplib.store import connections, outage, partitions
from shoplib.store.connections import as_pending
from shoplib.store.outage import StoreGate
from shoplib.streams import deadletter, topology
from shoplib.streams.entries import Decode, EntryWorker
from shoplib.streams.maintenance import Maintenance
from shoplib.streams.reads import GroupReader, text
from shoplib.streams.settings import ConsumerSettings
from shoplib.streams.subscription import Entry, Handler, Subscription
from shoplib.streams.trim import Trimmer

# Reconnect backoff when Redis is away: quick first tries, never more than this between tries.
RECONNECT_MAX_WAIT_S = 2.0
_logger = log.get("shoplib.consumer")


def read_groups(streams: Sequence[str], clustered: bool) -> list[list[str]]:
    """The streams read by one XREADGROUP each: on one Redis all partitions at once; on a cluster
    one read per partition (its streams share a slot), since a read may not span slots."""
    if not clustered:
        return [[partitions.stream(base, p) for base in streams for p in partitions.every()]]
    return [[partitions.stream(base, p) for base in streams] for p in partitions.every()]


async def together(works: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run all; the first failure cancels the others and is raised as itself (not as a group),
    so the outage retry around it still recognises it."""
    try:
        async with asyncio.TaskGroup() as group:
            for work in works:
                group.create_task(work)
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None


@dataclass(frozen=True)
class ConsumerParts:
    """The parts of a consumer that hold its protections: the real ones, or (a chaos control run,
    chosen in bootstrap by shoplib.faults.consumer_parts) one with a protection taken out."""

    worker: type[EntryWorker] = EntryWorker  # each entry: isolated, outages waited out
    maintenance: type[Maintenance] = Maintenance  # reclaim, idle consumers, trimming
    trimmer: type[Trimmer] = Trimmer  # keeps what declared groups still need


class StreamConsumer:
    def __init__(self, client: aioredis.Redis, reader: aioredis.Redis, committer: Committer,
                 subscription: Subscription, settings: ConsumerSettings | None = None,
                 gate: StoreGate | None = None, decode: Decode | None = None,
                 dead_letter: deadletter.DeadLetterSink | None = None, parts: ConsumerParts | None = None) -> None:
        self._client, self._reader, self._committer = client, reader, committer
        self.sub, self.settings = subscription, settings or ConsumerSettings()
        self.gate = gate or StoreGate(outage.write_probe(client, f"health:consumer:{subscription.consumer}"))
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None  # set by _consume: asking costs a getpid (3.11)
        self._slot_freed = asyncio.Event()
        self._reads = read_groups(subscription.streams, connections.is_cluster(reader))
        self._reads_of_group = GroupReader(reader, subscription.group, subscription.consumer, self.settings.block_ms)
        parts = parts or ConsumerParts()
        self._entries = parts.worker(client, committer, subscription, self.settings, self.gate, self._stopping,
                                     decode, dead_letter)
        self._maintenance = parts.maintenance(client, subscription, self.settings, self.gate, self._stopping,
                                              self._process, parts.trimmer)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until stopped; Redis being away is waited out with backoff."""
        try:
            retrying = AsyncRetrying(retry=retry_if_exception(outage.is_outage), reraise=True,
                                     stop=lambda _: self._stopping.is_set(),
                                     wait=wait_exponential_jitter(multiplier=0.05, max=RECONNECT_MAX_WAIT_S),
                                     before_sleep=self._log_disconnected)
            async for attempt in retrying:
                with attempt:
                    await self._consume()
        finally:
            await self._reads_of_group.aclose()
            if self._reader is not self._client:
                await self._reader.aclose()

    def _log_disconnected(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None  # always set: called after a failed try
        _logger.warning("consumer.redis_unavailable", group=self.sub.group,
                        error=outage.describe(error) if error is not None else None, attempt=state.attempt_number)

    async def _consume(self) -> None:
        """New entries flow continuously: a read asks for as many as there are free slots, so a
        slow entry never holds back the others, and never more are read than can be worked on."""
        self._loop = asyncio.get_running_loop()
        await self.ensure_groups()
        await self._drain_own_pending()
        try:
            await together(self._read_new(streams) for streams in self._reads)
        finally:
            if self._in_flight:  # finish what was read (graceful stop) before returning
                await asyncio.wait(self._in_flight)

    async def _read_new(self, streams: list[str]) -> None:
        while not self._stopping.is_set():
            if not await self.gate.wait_open(self._stopping):
                return
            await self._maintenance.run_if_due()
            await self._wait_for_slot()
            for entry in await self._read(streams, ">", self._free_slots()):
                self._start(self._entries.work(entry, 1))
            # A sibling read failed and this one was cancelled during its blocked read, which
            # redis-py may swallow: without this it would read on, and `together` wait for ever.
            connections.stop_if_cancelled()

    def _free_slots(self) -> int:
        return self.settings.batch - len(self._in_flight)

    async def _wait_for_slot(self) -> None:
        while self._free_slots() <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None, "entries are started by _consume"
        task = self._loop.create_task(work)  # per entry: ensure_future's checks cost more
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def ensure_groups(self) -> None:
        wanted = topology.in_partitions({stream: (self.sub.group,) for stream in self.sub.streams})
        await topology.ensure_groups(self._client, wanted)

    async def _read(self, streams: list[str], from_id: str, slots: int | None = None) -> list[Entry]:
        """Up to `slots` entries in all (COUNT applies per stream, and the free slots are shared
        among the concurrent reads, so it is shared out)."""
        block = None if from_id == "0" else self.settings.block_ms
        count = max((slots or self.settings.batch) // len(self._reads) // len(streams), 1)
        try:
            return await self._reads_of_group.read(streams, from_id, count, block)
        except ResponseError as exc:
            if not topology.is_group_missing(exc):
                raise
            await self._maintenance.recreate_groups()
            return []

    async def _drain_own_pending(self) -> None:
        """Entries this consumer was given before a crash or restart, oldest first. An entry that
        stays pending (it failed) is read again at once, up to its delivery budget."""
        for streams in self._reads:
            while batch := await self._read(streams, "0"):
                await self._process(batch, redelivered=True)
                if self._stopping.is_set():
                    return

    async def _process(self, batch: list[Entry], redelivered: bool) -> None:
        if not batch:
            return
        counts = await self._delivery_counts(batch) if redelivered else {}
        await asyncio.gather(*(self._entries.work(entry, counts.get((entry[0], entry[1]), 1)) for entry in batch))

    async def _delivery_counts(self, batch: list[Entry]) -> dict[tuple[str, str], int]:
        """Deliveries so far by (stream, entry id): an id may repeat across streams."""
        counts: dict[tuple[str, str], int] = {}
        for stream in {s for s, _, _ in batch}:
            ids = [i for s, i, _ in batch if s == stream]
            rows = await self._client.xpending_range(stream, self.sub.group, min=ids[0], max=ids[-1],
                                                     count=len(ids) * 2, consumername=self.sub.consumer)
            counts.update({(stream, text(row["message_id"])): int(row["times_delivered"]) for row in as_pending(rows)})
        return counts


__all__ = ["Entry", "Handler", "StreamConsumer", "Subscription"]
