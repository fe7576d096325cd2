"""One consumer runtime for every service.

Reads its own pending entries first, then new ones; acknowledges only inside the handler's
atomic commit; reclaims entries of dead or stuck consumers; dead-letters what can never be
processed; reconnects with bounded backoff; stops gracefully.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from google.protobuf.message import Message
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from shop.v1 import events_pb2
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from shoplib import errors, events, faults, log
from shoplib.streams import trim
from shoplib.streams.deadletter import dead_letter
from shoplib.streams.settings import ConsumerSettings
from shoplib.tx import Ack, Committer, Writes

Handler = Callable[[events_pb2.EventEnvelope, Message, Ack], Awaitable[None]]
Entry = tuple[str, str, dict[bytes, bytes]]  # stream, entry id, fields

# Reconnect backoff when Redis is away: quick first tries, never more than this between tries.
RECONNECT_MAX_WAIT_S = 2.0
# After an unexpected crash of the consume loop (a bug), wait this long and start it again.
CRASH_RESTART_S = 1.0
# Redis being away; the built-in ConnectionError covers refused/reset sockets. Not TimeoutError:
# asyncio's handler timeout is one, and it means a slow handler, not a lost Redis.
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError)
_logger = log.get("shoplib.consumer")


class Permanent(Exception):
    """A failure that retrying cannot fix: the entry goes to the dead letters at once."""


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class Subscription:
    group: str
    consumer: str
    handlers: Mapping[type[Message], Handler]  # by payload type; other types are acknowledged and skipped
    streams: Sequence[str]
    # Streams this service publishes that no group consumes: only its own trimming bounds them.
    publishes_unconsumed: Sequence[str] = ()


class StreamConsumer:
    def __init__(self, client: aioredis.Redis, reader: aioredis.Redis, committer: Committer,
                 subscription: Subscription, settings: ConsumerSettings | None = None) -> None:
        self._client, self._reader, self._committer = client, reader, committer
        self.sub, self.settings = subscription, settings or ConsumerSettings()
        self._stopping = asyncio.Event()
        self._last_error: dict[str, str] = {}
        self._next_maintenance = 0.0
        self._in_flight: set[asyncio.Future[None]] = set()
        self._slot_freed = asyncio.Event()
        self._failure: BaseException | None = None
        self.processed = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until stopped. Redis outages are waited out; an unexpected error is logged
        loudly and the loop started again: a consumer never disappears silently."""
        try:
            while not self._stopping.is_set():
                try:
                    return await self._run_reconnecting()
                except Exception:
                    if self._stopping.is_set():
                        return  # Redis went away while we were stopping: nothing left to do
                    _logger.exception("consumer.crashed", group=self.sub.group, restart_in_s=CRASH_RESTART_S)
                    await asyncio.sleep(CRASH_RESTART_S)
        finally:
            if self._reader is not self._client:
                await self._reader.aclose()

    async def _run_reconnecting(self) -> None:
        retrying = AsyncRetrying(retry=retry_if_exception_type(_TRANSIENT), reraise=True,
                                 stop=lambda _: self._stopping.is_set(),
                                 wait=wait_exponential_jitter(multiplier=0.05, max=RECONNECT_MAX_WAIT_S),
                                 before_sleep=self._log_disconnected)
        async for attempt in retrying:
            with attempt:
                await self._consume()

    def _log_disconnected(self, state: object) -> None:
        error = state.outcome.exception() if state.outcome else None  # type: ignore[attr-defined]
        _logger.warning("consumer.redis_unavailable", group=self.sub.group, error=type(error).__name__,
                        attempt=state.attempt_number)  # type: ignore[attr-defined]

    async def _consume(self) -> None:
        """New entries flow continuously: a read asks for as many as there are free slots, so a
        slow entry never holds back the others, and never more are read than can be worked on."""
        await self.ensure_groups()
        await self._drain_own_pending()
        try:
            while not self._stopping.is_set():
                await self._maintain_if_due()
                await self._wait_for_slot()
                for stream, entry_id, fields in await self._read(">", self._free_slots()):
                    self._start(self._one(stream, entry_id, fields, 1))
        finally:
            if self._in_flight:  # finish what was read (graceful stop) before returning
                await asyncio.wait(self._in_flight)

    def _free_slots(self) -> int:
        return self.settings.batch - len(self._in_flight)

    async def _wait_for_slot(self) -> None:
        while self._free_slots() <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure  # Redis went away under a handler: reconnect like the main loop does

    def _start(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._in_flight.discard(task)  # type: ignore[arg-type]
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()

    async def ensure_groups(self) -> None:
        for stream in self.sub.streams:
            try:
                await self._client.xgroup_create(stream, self.sub.group, id="0", mkstream=True)
                _logger.info("consumer.group_created", stream=stream, group=self.sub.group)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _read(self, from_id: str, slots: int | None = None) -> list[Entry]:
        """Up to `slots` entries in all (COUNT applies per stream, so it is shared out)."""
        block = None if from_id == "0" else self.settings.block_ms
        count = max((slots or self.settings.batch) // len(self.sub.streams), 1)
        try:
            reply = await self._reader.xreadgroup(self.sub.group, self.sub.consumer,
                                                  dict.fromkeys(self.sub.streams, from_id),
                                                  count=count, block=block)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            _logger.error("consumer.group_lost", group=self.sub.group, streams=list(self.sub.streams),
                          action="recreating; entries from the stream start are re-read, effects are idempotent")
            await self.ensure_groups()
            return []
        return [(_s(stream), _s(entry_id), fields or {}) for stream, entries in reply or []
                for entry_id, fields in entries]

    async def _drain_own_pending(self) -> None:
        """Entries this consumer was given before a crash or restart, oldest first."""
        while batch := await self._read("0"):
            await self._process(batch, redelivered=True)
            if self._stopping.is_set():
                return

    async def _process(self, batch: list[Entry], redelivered: bool) -> None:
        if not batch:
            return
        counts = await self._delivery_counts(batch) if redelivered else {}
        await asyncio.gather(*(self._one(stream, entry_id, fields, counts.get(entry_id, 1))
                               for stream, entry_id, fields in batch))

    async def _delivery_counts(self, batch: list[Entry]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for stream in {s for s, _, _ in batch}:
            ids = [i for s, i, _ in batch if s == stream]
            rows = await self._client.xpending_range(stream, self.sub.group, min=ids[0], max=ids[-1],
                                                     count=len(ids) * 2, consumername=self.sub.consumer)
            counts.update({_s(row["message_id"]): int(row["times_delivered"]) for row in rows})
        return counts

    async def _one(self, stream: str, entry_id: str, fields: dict[bytes, bytes], deliveries: int) -> None:
        ack = Ack(stream, self.sub.group, entry_id)
        if not fields:  # trimmed or deleted while pending: nothing left to do
            await self._committer.commit(Writes(), None, ack)
            return
        try:
            envelope, payload = events.decode(fields)
        except events.UndecodableEvent as exc:
            log.bind(stream=stream, entry_id=entry_id, group=self.sub.group)
            return await self._dead(ack, deliveries, f"undecodable: {exc}", fields)
        log.correlation_id.set(envelope.correlation_id)
        log.bind(stream=stream, entry_id=entry_id, group=self.sub.group, event_id=envelope.id,
                 event_type=envelope.type, order_id=envelope.subject, correlation_id=envelope.correlation_id)
        if deliveries > self.settings.max_deliveries:
            last = self._last_error.pop(entry_id, "unknown (failed in another consumer or before a restart)")
            return await self._dead(ack, deliveries, f"gave up after {deliveries - 1} deliveries; last error: {last}",
                                    fields)
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
        except (Permanent, errors.InvalidArgument, errors.NotFound) as exc:
            return await self._dead(ack, deliveries, f"rejected: {exc}", fields)
        except TimeoutError:
            limit = self.settings.handler_timeout_s
            self._last_error[ack.entry_id] = f"TimeoutError: handler took longer than {limit:.1f}s"
            _logger.warning("event.failed", error=self._last_error[ack.entry_id], deliveries=deliveries)
            return
        except _TRANSIENT:
            raise
        except Exception as exc:  # stays pending: retried after reclaim, dead-lettered past the limit
            self._last_error[ack.entry_id] = f"{type(exc).__name__}: {exc}"[:500]
            _logger.warning("event.failed", error=self._last_error[ack.entry_id], deliveries=deliveries)
            return
        self._last_error.pop(ack.entry_id, None)
        self.processed += 1
        _logger.debug("event.handled", ms=round((time.perf_counter() - started) * 1000, 2), deliveries=deliveries)

    async def _dead(self, ack: Ack, deliveries: int, error: str, fields: dict[bytes, bytes]) -> None:
        if faults.fires("drop_dead_letters"):  # control runs only (faults.py)
            return await self._committer.commit(Writes(), None, ack)
        await dead_letter(self._committer, ack, self.sub.consumer, deliveries, error, fields)
        _logger.error("event.dead_lettered", error=error, deliveries=deliveries)

    async def _maintain_if_due(self) -> None:
        if time.monotonic() < self._next_maintenance:
            return
        self._next_maintenance = time.monotonic() + self.settings.maintenance_interval_s
        try:
            for stream in self.sub.streams:
                await self._reclaim(stream)
                await trim.trim(self._client, stream, self.settings.retain_ms)
                await self._forget_idle_consumers(stream)
            for stream in self.sub.publishes_unconsumed:
                await trim.trim(self._client, stream, self.settings.retain_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            _logger.error("consumer.group_lost", group=self.sub.group, streams=list(self.sub.streams),
                          action="recreating; entries from the stream start are re-read, effects are idempotent")
            await self.ensure_groups()

    async def _reclaim(self, stream: str) -> None:
        """Take over entries idle past the claim threshold (dead, stuck or failed consumers),
        following the cursor to the end of the pending list."""
        if faults.fires("no_reclaim"):  # control runs only (faults.py)
            return
        cursor = "0-0"
        while True:
            reply = await self._client.xautoclaim(stream, self.sub.group, self.sub.consumer,
                                                  self.settings.claim_idle_ms, start_id=cursor,
                                                  count=self.settings.batch)
            cursor, claimed = _s(reply[0]), reply[1]
            if claimed:
                _logger.info("consumer.reclaimed", stream=stream, entries=len(claimed))
                await self._process([(stream, _s(i), f or {}) for i, f in claimed], redelivered=True)
            if cursor == "0-0" or self._stopping.is_set():
                return

    async def _forget_idle_consumers(self, stream: str) -> None:
        for consumer in await self._client.xinfo_consumers(stream, self.sub.group):
            name = _s(consumer["name"])
            if (name != self.sub.consumer and not consumer["pending"]
                    and consumer["idle"] > self.settings.consumer_idle_delete_ms):
                await self._client.xgroup_delconsumer(stream, self.sub.group, name)
                _logger.info("consumer.removed_idle", stream=stream, consumer=name)


def connect(redis_url: str, client: aioredis.Redis, committer: Committer, subscription: Subscription
            ) -> StreamConsumer:
    """A consumer with settings from STREAM_* variables and its own connection for blocking reads."""
    from shoplib import redis_conn

    settings = ConsumerSettings.from_env()
    reader = redis_conn.blocking_client(redis_url, settings.block_ms / 1000)
    return StreamConsumer(client, reader, committer, subscription, settings)
