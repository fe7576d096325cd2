"""What happens to one entry, told apart on purpose:
- an outage (Redis down or refusing writes): the entry is held and retried here once the store
  takes writes again, so it spends none of its delivery budget;
- a bad entry (cannot be turned into a handler call, or the handler rejects it): dead letters,
  once per group, with the reason;
- a failure (a bug, ours or the handler's): recorded against the entry and left pending; after
  `max_deliveries` it goes to the dead letters with the last error. Nothing an entry does can
  stop its consumer.
- held up (its handler cut off by its time limit while it waited on the store, or while the loop
  lost time to a starved host or a saturated loop): the environment's fault, not the entry's; it
  is worked on again here, as after an outage, and spends none of its delivery budget.
A delivery counts against an entry only when the entry is at fault: an entry over its delivery
budget is given up only on its failure record (shoplib.streams.failures), never on the count alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import redis.asyncio as aioredis
from google.protobuf.message import Message
from shop.v1 import events_pb2

from shoplib import catalogue, errors, log
from shoplib.commit.writes import Ack, Committer, Writes
from shoplib.observability import metrics
from shoplib.rules.bounds import MAX_ERROR_CHARS
from shoplib.store import outage, partitions
from shoplib.store.outage import StoreGate
from shoplib.streams import deadletter, failures, trace_context
from shoplib.streams.deadlines import Deadlines
from shoplib.streams.settings import ConsumerSettings
from shoplib.streams.stalls import LoopStalls
from shoplib.streams.subscription import Entry, Subscription

Decode = Callable[[dict[bytes, bytes]], tuple[events_pb2.EventEnvelope, Message]]
# What a handler raises for an entry it refuses: retrying cannot help, so dead letters at once.
_REJECTED = (errors.InvalidArgument, errors.NotFound)
_logger = log.get("shoplib.consumer")
# A handler cut off after the loop lost this share of its time limit did not have the limit to
# itself (shoplib.streams.stalls): held up, not at fault.
STALLED_SHARE = 0.25
# Backoff between the tries of an entry held up again and again (a long stall, a slow store).
HELD_BACKOFF_MIN_S = 0.05
HELD_BACKOFF_MAX_S = 1.0


class HeldUp(Exception):
    """A handler cut off by its time limit for want of the store or of the loop, not by its entry."""


def _misplaced(envelope: events_pb2.EventEnvelope, stream: str) -> str | None:
    """Why an event is not on its stream (its type's, in its order's partition: its handler's
    writes must share the slot of the ack), or None."""
    try:
        home = catalogue.stream_of(envelope)
    except ValueError as exc:
        return f"subject {envelope.subject!r} {exc}"
    return None if home == stream else f"{envelope.type} belongs on {home}, not {stream}"


def _bind_entry(ack: Ack) -> None:
    """Name the entry in every log line of its task (before anything is known of its event)."""
    log.bind(stream=ack.stream, entry_id=ack.entry_id, group=ack.group)


class EntryWorker:
    def __init__(self, client: aioredis.Redis, committer: Committer, sub: Subscription, settings: ConsumerSettings,
                 gate: StoreGate, stopping: asyncio.Event, decode: Decode | None = None,
                 dead_letter: deadletter.DeadLetterSink | None = None) -> None:
        self._client, self._committer, self.sub, self.settings = client, committer, sub, settings
        self.gate, self._stopping = gate, stopping
        self._decode = decode or catalogue.decode
        self._dead_letter = dead_letter or deadletter.dead_letter
        # (stream, entry id) -> failures in a row in this process. The stream too: ids repeat
        # across streams, and with partitions an id often appears in several (same millisecond).
        self._failed: dict[tuple[str, str], int] = {}
        self._deadlines = Deadlines(settings.handler_timeout_s)
        # A held-up entry is tried again with a longer limit, up to the claim idle time: the store or
        # the host that held it up may be as slow again (seen under load: one entry held up 126
        # times at 0.33 s), and a bug that hangs is still cut off.
        self._patient = Deadlines(settings.claim_idle_ms / 1000)
        self._held: set[tuple[str, str]] = set()
        self._stalls = LoopStalls()
        # Entries over their delivery budget being worked on as a recorded attempt (failures.attempt).
        self._attempts: set[tuple[str, str]] = set()

    async def work(self, entry: Entry, deliveries: int) -> None:
        """Work on one entry until it is settled or left pending for a later delivery. Never
        raises: an outage is waited out here; anything else is a failure of this entry."""
        try:
            await self._work_held_out(entry, deliveries)
        finally:
            if self._held:
                self._held.discard((entry[0], entry[1]))

    async def _work_held_out(self, entry: Entry, deliveries: int) -> None:
        """`work`'s loop: an outage is waited out, a held-up entry tried again with backoff."""
        held_backoff = HELD_BACKOFF_MIN_S
        while not self._stopping.is_set():
            try:
                return await self._settle(entry, deliveries)
            except HeldUp as exc:
                _logger.info("event.held_up", reason=str(exc), stream=entry[0], entry_id=entry[1])
                self._held.add((entry[0], entry[1]))
                await asyncio.sleep(held_backoff)
                held_backoff = min(held_backoff * 2, HELD_BACKOFF_MAX_S)
            except Exception as exc:
                if not outage.is_outage(exc):
                    return await self._runtime_failed(entry, deliveries, exc)
                self.gate.report(exc)
                if not await self.gate.wait_open(self._stopping):
                    return  # stopping: the entry stays pending for whoever runs next

    async def _settle(self, entry: Entry, deliveries: int) -> None:
        stream, entry_id, fields = entry
        ack = Ack(stream, self.sub.group, entry_id)
        if not fields:  # trimmed or deleted while pending: nothing left to do
            _bind_entry(ack)
            await self._committer.commit(Writes(), None, ack)
            return
        try:
            envelope, payload = self._decode(fields)
        except catalogue.UndecodableEvent as exc:
            return await self._undecodable(ack, deliveries, str(exc), fields)
        if misplaced := _misplaced(envelope, stream):
            return await self._undecodable(ack, deliveries, misplaced, fields)
        with trace_context.consuming(envelope, stream, entry_id, self.sub.group, self.sub.consumer, deliveries,
                                     fields):
            await self._settle_decoded(envelope, payload, ack, deliveries, fields)

    async def _settle_decoded(self, envelope: events_pb2.EventEnvelope, payload: Message, ack: Ack, deliveries: int,
                              fields: dict[bytes, bytes]) -> None:
        cid = log.accepted_correlation_id(envelope.correlation_id) or ""  # from the broker: bounded too
        log.correlation_id.set(cid)
        log.bind(stream=ack.stream, entry_id=ack.entry_id, group=ack.group,  # one bind (a dict copy) per entry
                 event_id=envelope.id, event_type=envelope.type, order_id=envelope.subject, correlation_id=cid)
        if self._over_budget(ack, deliveries) and (key := (ack.stream, ack.entry_id)) not in self._attempts:
            record = await failures.read(self._client, ack)
            limit = self.settings.max_deliveries
            if record.at_fault(limit) or self._failed.get(key, 0) >= limit:
                return await self._give_up(ack, deliveries, fields, record)
            await failures.attempt(self._client, ack, record)  # its deliveries went to reclaims, not to it
            self._attempts.add(key)
            self._failed.setdefault(key, 0)  # so that success clears the record
        await self._handle(envelope, payload, ack, deliveries, fields)

    async def _undecodable(self, ack: Ack, deliveries: int, why: str, fields: dict[bytes, bytes]) -> None:
        _bind_entry(ack)
        await self._dead(ack, deliveries, f"undecodable: {why}", fields)

    async def _handle(self, envelope: events_pb2.EventEnvelope, payload: Message, ack: Ack, deliveries: int,
                      fields: dict[bytes, bytes]) -> None:
        handler = self.sub.handlers.get(type(payload))
        started = time.perf_counter()
        lost_before = self._stalls.lost_s
        try:
            if handler is None:
                await self._committer.commit(Writes(), None, ack)  # not for this group
            else:
                self._stalls.ensure()
                held = self._held and (ack.stream, ack.entry_id) in self._held
                deadlines = self._patient if held else self._deadlines
                await deadlines.run(handler(envelope, payload, ack))  # in this task, unlike wait_for
        except _REJECTED as exc:
            return await self._dead(ack, deliveries, f"rejected: {exc}", fields)
        except TimeoutError as exc:
            limit = self._patient.limit_s if self._held and (ack.stream, ack.entry_id) in self._held \
                else self.settings.handler_timeout_s
            await self._raise_if_not_at_fault(exc, lost_before, limit)
            await self._failure(ack, deliveries, f"TimeoutError: handler took longer than {limit:.1f}s")
            return
        except Exception as exc:
            if self._held_by_outage(exc):
                raise
            await self._failure(ack, deliveries, f"{type(exc).__name__}: {exc}")
            return
        if handler is not None:
            metrics.events_handled(partitions.base(ack.stream), ack.group).inc()
        if self._failed and self._failed.pop((ack.stream, ack.entry_id), None) is not None:  # mostly empty
            self._attempts.discard((ack.stream, ack.entry_id))
            await failures.forget(self._client, ack)
        if log.debugging():
            _logger.debug("event.handled", ms=round((time.perf_counter() - started) * 1000, 2), deliveries=deliveries)

    async def _raise_if_not_at_fault(self, exc: TimeoutError, lost_before: float, limit: float) -> None:
        """A time limit that cut the handler off for want of the store (its outage error is raised)
        or of the loop (HeldUp): not the entry's fault, so no delivery is spent on it."""
        await self._raise_if_store_down()
        self._raise_if_held_up(exc, lost_before, limit)

    @staticmethod
    def _held_by_outage(exc: Exception) -> bool:
        """A store refusing writes is waited out, never counted against the entry."""
        return outage.is_outage(exc)

    async def _raise_if_store_down(self) -> None:
        """A handler cut off by its deadline while the store cannot take writes (a master failing
        over, a restart: its commit was waiting on a dead connection) was held up by the outage,
        not by the entry: the probe's outage error is raised, so the entry is held, not charged."""
        try:
            await self.gate.check()
        except Exception as exc:
            if outage.is_outage(exc):
                raise
            _logger.warning("store.probe_failed", error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])

    def _raise_if_held_up(self, cut: TimeoutError, lost_before: float, limit: float) -> None:
        """HeldUp when the handler was cut off waiting on the store (the cancellation that `cut`
        came from landed in a store client), or after the loop lost a share of its limit
        (shoplib.streams.stalls)."""
        if outage.waited_on_store(cut.__context__):
            raise HeldUp(f"handler cut off at its {limit:.1f}s limit while it waited on the store")
        stalled = self._stalls.lost_s - lost_before
        if stalled >= STALLED_SHARE * limit:
            raise HeldUp(f"handler cut off at its {limit:.1f}s limit after the loop lost {stalled:.2f}s")

    async def _failure(self, ack: Ack, deliveries: int, error: str) -> failures.Record:
        """The handler failed: the entry stays pending (retried after reclaim) and the failure is
        counted and kept in Redis, so whichever consumer gives up on it can say what failed."""
        error = error[:MAX_ERROR_CHARS]
        key = (ack.stream, ack.entry_id)
        self._failed[key] = self._failed.get(key, 0) + 1
        _logger.warning("event.failed", error=error, deliveries=deliveries)
        trace_context.failed(error)
        metrics.EVENTS_FAILED.labels(partitions.base(ack.stream), ack.group).inc()
        attempt_ended = key in self._attempts
        self._attempts.discard(key)
        return await failures.record(self._client, ack, error, attempt_ended)

    def _over_budget(self, ack: Ack, deliveries: int) -> bool:
        limit = self.settings.max_deliveries
        return deliveries > limit or (bool(self._failed) and self._failed.get((ack.stream, ack.entry_id), 0) >= limit)

    async def _runtime_failed(self, entry: Entry, deliveries: int, exc: Exception) -> None:
        """The runtime itself failed on this entry (a bug of ours): logged with its traceback and
        counted like a handler failure, so the entry ends in the dead letters, never in a loop."""
        stream, entry_id, fields = entry
        _logger.error("consumer.entry_crashed", stream=stream, entry_id=entry_id, exc_info=exc)
        ack = Ack(stream, self.sub.group, entry_id)
        try:
            record = await self._failure(ack, deliveries, f"consumer error: {exc!r}")
            if record.at_fault(self.settings.max_deliveries):
                await self._give_up(ack, deliveries, fields, record)
        except Exception:
            _logger.exception("consumer.failure_not_recorded", entry_id=entry_id)

    async def _give_up(self, ack: Ack, deliveries: int, fields: dict[bytes, bytes], record: failures.Record) -> None:
        """Dead-letter an entry at fault, saying what its deliveries did (failures.Record.reason)."""
        self._failed.pop((ack.stream, ack.entry_id), None)
        self._attempts.discard((ack.stream, ack.entry_id))
        await self._dead(ack, deliveries, f"gave up after {deliveries - 1} deliveries: {record.reason()}", fields)

    async def _dead(self, ack: Ack, deliveries: int, error: str, fields: dict[bytes, bytes]) -> None:
        await self._dead_letter(self._committer, replace(ack, only_if_pending=True), self.sub.consumer, deliveries,
                                error, fields)
        self._failed.pop((ack.stream, ack.entry_id), None)
        metrics.EVENTS_DEAD_LETTERED.labels(partitions.base(ack.stream), ack.group).inc()
        _logger.error("event.dead_lettered", error=error[:MAX_ERROR_CHARS], deliveries=deliveries)
