"""One consumer runtime for every service: the read loop and what happens to each entry.

Reads its own pending entries first, then new ones; acknowledges only inside the handler's
atomic commit. Each entry ends one of three ways, told apart on purpose:
- an outage (Redis down or refusing writes): the entry is held and retried here once the store
  takes writes again, so it spends none of its delivery budget; no new entries are read meanwhile;
- a bad entry (cannot be turned into a handler call, or the handler rejects it): dead letters,
  once per group, with the reason;
- a failure (a bug, ours or the handler's): recorded against the entry and left pending; after
  `max_deliveries` it goes to the dead letters with the last error. Nothing an entry does can
  stop the loop. Maintenance (reclaim, trimming) lives in `maintenance.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis
from google.protobuf.message import Message
from redis.exceptions import ResponseError
from shop.v1 import events_pb2
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from shoplib import errors, events, faults, log, outage, topology
from shoplib.bounds import MAX_ERROR_CHARS
from shoplib.outage import StoreGate
from shoplib.streams import failures
from shoplib.streams.deadletter import dead_letter
from shoplib.streams.maintenance import Maintenance
from shoplib.streams.settings import ConsumerSettings
from shoplib.tx import Ack, Committer, Writes

# A handler takes the payload of the type it is registered under (the table's key), so its
# parameter is that type, which a Callable over Message would refuse: the payload is Any here.
Handler = Callable[[events_pb2.EventEnvelope, Any, Ack], Awaitable[None]]
Entry = tuple[str, str, dict[bytes, bytes]]  # stream, entry id, fields

# Reconnect backoff when Redis is away: quick first tries, never more than this between tries.
RECONNECT_MAX_WAIT_S = 2.0
_logger = log.get("shoplib.consumer")


class Permanent(Exception):
    """A failure that retrying cannot fix: the entry goes to the dead letters at once."""


# What a handler raises for an entry it refuses: retrying cannot help, so dead letters at once.
_REJECTED = (Permanent, errors.InvalidArgument, errors.NotFound)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class Subscription:
    group: str
    consumer: str
    handlers: Mapping[type[Message], Handler]  # by payload type; other types are acknowledged and skipped
    streams: Sequence[str]

    def __post_init__(self) -> None:
        topology.check_subscription(self.group, self.streams)


class StreamConsumer:
    def __init__(self, client: aioredis.Redis, reader: aioredis.Redis, committer: Committer,
                 subscription: Subscription, settings: ConsumerSettings | None = None,
                 gate: StoreGate | None = None) -> None:
        self._client, self._reader, self._committer = client, reader, committer
        self.sub, self.settings = subscription, settings or ConsumerSettings()
        self.gate = gate or StoreGate(outage.write_probe(client, f"health:consumer:{subscription.consumer}"))
        self._stopping = asyncio.Event()
        self._failed: dict[str, int] = {}  # entry id -> failures in a row in this process
        self._in_flight: set[asyncio.Future[None]] = set()
        self._slot_freed = asyncio.Event()
        self._maintenance = Maintenance(client, subscription, self.settings, self.gate, self._stopping,
                                        self._process)

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
            if self._reader is not self._client:
                await self._reader.aclose()

    def _log_disconnected(self, state: object) -> None:
        error = state.outcome.exception() if state.outcome else None  # type: ignore[attr-defined]
        _logger.warning("consumer.redis_unavailable", group=self.sub.group, error=outage.describe(error),
                        attempt=state.attempt_number)  # type: ignore[attr-defined]

    async def _consume(self) -> None:
        """New entries flow continuously: a read asks for as many as there are free slots, so a
        slow entry never holds back the others, and never more are read than can be worked on."""
        await self.ensure_groups()
        await self._drain_own_pending()
        try:
            while not self._stopping.is_set():
                if not await self.gate.wait_open(self._stopping):
                    return
                await self._maintenance.run_if_due()
                await self._wait_for_slot()
                for entry in await self._read(">", self._free_slots()):
                    self._start(self._one(entry, 1))
        finally:
            if self._in_flight:  # finish what was read (graceful stop) before returning
                await asyncio.wait(self._in_flight)

    def _free_slots(self) -> int:
        return self.settings.batch - len(self._in_flight)

    async def _wait_for_slot(self) -> None:
        while self._free_slots() <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    def _start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def ensure_groups(self) -> None:
        await topology.ensure_groups(self._client, {stream: (self.sub.group,) for stream in self.sub.streams})

    async def _read(self, from_id: str, slots: int | None = None) -> list[Entry]:
        """Up to `slots` entries in all (COUNT applies per stream, so it is shared out)."""
        block = None if from_id == "0" else self.settings.block_ms
        count = max((slots or self.settings.batch) // len(self.sub.streams), 1)
        try:
            reply = await self._reader.xreadgroup(self.sub.group, self.sub.consumer,
                                                  dict.fromkeys(self.sub.streams, from_id),
                                                  count=count, block=block)
        except ResponseError as exc:
            if not topology.is_group_missing(exc):
                raise
            await self._maintenance.recreate_groups()
            return []
        return [(_s(stream), _s(entry_id), fields or {}) for stream, entries in reply or []
                for entry_id, fields in entries]

    async def _drain_own_pending(self) -> None:
        """Entries this consumer was given before a crash or restart, oldest first. An entry that
        stays pending (it failed) is read again at once, up to its delivery budget."""
        while batch := await self._read("0"):
            await self._process(batch, redelivered=True)
            if self._stopping.is_set():
                return

    async def _process(self, batch: list[Entry], redelivered: bool) -> None:
        if not batch:
            return
        counts = await self._delivery_counts(batch) if redelivered else {}
        await asyncio.gather(*(self._one(entry, counts.get(entry[1], 1)) for entry in batch))

    async def _delivery_counts(self, batch: list[Entry]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for stream in {s for s, _, _ in batch}:
            ids = [i for s, i, _ in batch if s == stream]
            rows = await self._client.xpending_range(stream, self.sub.group, min=ids[0], max=ids[-1],
                                                     count=len(ids) * 2, consumername=self.sub.consumer)
            counts.update({_s(row["message_id"]): int(row["times_delivered"]) for row in rows})
        return counts

    async def _one(self, entry: Entry, deliveries: int) -> None:
        """Work on one entry until it is settled or left pending for a later delivery. Never
        raises: an outage is waited out here; anything else is a failure of this entry."""
        if faults.fires("unguarded_entries"):  # control runs only (faults.py): errors escape as before
            return await self._settle(entry, deliveries)
        while not self._stopping.is_set():
            try:
                return await self._settle(entry, deliveries)
            except Exception as exc:
                if not outage.is_outage(exc):
                    return await self._runtime_failed(entry, deliveries, exc)
                self.gate.report(exc)
                if not await self.gate.wait_open(self._stopping):
                    return  # stopping: the entry stays pending for whoever runs next

    async def _settle(self, entry: Entry, deliveries: int) -> None:
        stream, entry_id, fields = entry
        ack = Ack(stream, self.sub.group, entry_id)
        log.bind(stream=stream, entry_id=entry_id, group=self.sub.group)
        if not fields:  # trimmed or deleted while pending: nothing left to do
            await self._committer.commit(Writes(), None, ack)
            return
        if deliveries > self.settings.max_deliveries or self._failed.get(entry_id, 0) >= self.settings.max_deliveries:
            return await self._give_up(ack, deliveries, fields)
        if faults.fires("unguarded_entries"):  # control runs only (faults.py): the decode before issue 8
            faults.raw_decode(fields)
        try:
            envelope, payload = events.decode(fields)
        except events.UndecodableEvent as exc:
            return await self._dead(ack, deliveries, f"undecodable: {exc}", fields)
        log.correlation_id.set(envelope.correlation_id)
        log.bind(event_id=envelope.id, event_type=envelope.type, order_id=envelope.subject,
                 correlation_id=envelope.correlation_id)
        await self._handle(envelope, payload, ack, deliveries, fields)

    async def _handle(self, envelope: events_pb2.EventEnvelope, payload: Message, ack: Ack, deliveries: int,
                      fields: dict[bytes, bytes]) -> None:
        handler = self.sub.handlers.get(type(payload))
        started = time.perf_counter()
        try:
            if handler is None:
                await self._committer.commit(Writes(), None, ack)  # not for this group
            else:
                async with asyncio.timeout(self.settings.handler_timeout_s):  # no extra task, unlike wait_for
                    await handler(envelope, payload, ack)
        except _REJECTED as exc:
            return await self._dead(ack, deliveries, f"rejected: {exc}", fields)
        except TimeoutError:
            limit = self.settings.handler_timeout_s
            return await self._failure(ack, deliveries, f"TimeoutError: handler took longer than {limit:.1f}s")
        except Exception as exc:
            if outage.is_outage(exc) and not faults.fires("outage_as_failure"):  # control: faults.py
                raise
            return await self._failure(ack, deliveries, f"{type(exc).__name__}: {exc}")
        if self._failed.pop(ack.entry_id, None) is not None:
            await failures.forget(self._client, ack)
        _logger.debug("event.handled", ms=round((time.perf_counter() - started) * 1000, 2), deliveries=deliveries)

    async def _failure(self, ack: Ack, deliveries: int, error: str) -> None:
        """The handler failed: the entry stays pending (retried after reclaim) and the error is
        kept in Redis, so whichever consumer gives up on it can say what failed."""
        error = error[:MAX_ERROR_CHARS]
        self._failed[ack.entry_id] = self._failed.get(ack.entry_id, 0) + 1
        _logger.warning("event.failed", error=error, deliveries=deliveries)
        await failures.record(self._client, ack, error)

    async def _runtime_failed(self, entry: Entry, deliveries: int, exc: Exception) -> None:
        """The runtime itself failed on this entry (a bug of ours): logged with its traceback and
        counted like a handler failure, so the entry ends in the dead letters, never in a loop."""
        _logger.error("consumer.entry_crashed", stream=entry[0], entry_id=entry[1], exc_info=exc)
        try:
            await self._failure(Ack(entry[0], self.sub.group, entry[1]), deliveries, f"consumer error: {exc!r}")
        except Exception:
            _logger.exception("consumer.failure_not_recorded", entry_id=entry[1])

    async def _give_up(self, ack: Ack, deliveries: int, fields: dict[bytes, bytes]) -> None:
        last = await failures.last(self._client, ack) or (
            "none recorded: each consumer holding it stopped or crashed before it finished")
        tries = max(deliveries - 1, self._failed.pop(ack.entry_id, 0))
        await self._dead(ack, deliveries, f"gave up after {tries} deliveries; last error: {last}", fields)

    async def _dead(self, ack: Ack, deliveries: int, error: str, fields: dict[bytes, bytes]) -> None:
        if faults.fires("drop_dead_letters"):  # control runs only (faults.py)
            await self._committer.commit(Writes(), None, ack)
            return
        await dead_letter(self._committer, replace(ack, only_if_pending=True), self.sub.consumer, deliveries,
                          error, fields)
        self._failed.pop(ack.entry_id, None)
        _logger.error("event.dead_lettered", error=error[:MAX_ERROR_CHARS], deliveries=deliveries)


def connect(redis_url: str, client: aioredis.Redis, committer: Committer, subscription: Subscription,
            gate: StoreGate | None = None) -> StreamConsumer:
    """A consumer with settings from STREAM_* variables and its own connection for blocking reads."""
    from shoplib import redis_conn

    settings = ConsumerSettings.from_env()
    reader = redis_conn.blocking_client(redis_url, settings.block_ms / 1000)
    return StreamConsumer(client, reader, committer, subscription, settings, gate)
