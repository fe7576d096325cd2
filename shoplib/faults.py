"""Fault injection for the crash tests and the chaos suite, at seams chosen by bootstrap.

Nothing on a hot path asks "is a fault armed?": when the FAULTS variable names one, a service's
bootstrap wraps or swaps one real part (a committer, a validator, a consumer's settings or its
dead-letter sink, the reconciler's modes). Unset, every function here hands back the real part.

FAULTS is a comma-separated list of names, each optionally `=RATE` (the chance it fires each time
its point is reached; 1 when omitted). Two kinds:

Crash points (the fault the system must survive):
- exit_after_effect=RATE  a consumer commits its effect WITHOUT the acknowledgement and exits at
  once, as a crash between the two would in a design where they are separate steps. It proves
  that redelivery then finds the effect done.
- exit_in_publish=RATE    the order service exits at the publish step of a placed order: right
  after its one atomic commit (stored and published, never answered); with nonatomic_publish,
  between the store and the publish.

Control switches (each disables one protection, so that the chaos checker can show it catches the
loss; never armed outside a control run of `python -m shopctl chaos`):
- nonatomic_publish  the order is committed first and its OrderPlaced XADD in a second commit.
- skip_once          commits ignore their once key: effects are no longer idempotent.
- no_reclaim         consumers never take over entries of dead or stuck consumers (XAUTOCLAIM).
- drop_dead_letters  entries bound for the dead letters are acknowledged and dropped instead.
- trim_pending       trimming ignores what consumer groups still have to process.
- trim_ignores_topology  trimming looks only at the groups that exist, not at the declared ones.
- unguarded_entries  consumers decode payloads unguarded and let an entry's error escape (before issue 8).
- outage_as_failure  a store refusing writes counts as a handler failure (spends the entry's deliveries).
- no_resume          the order reconciler never resumes sync orders left PENDING.
- no_redrive         the order reconciler never re-drives events-mode orders left PENDING.
- skip_validation    PlaceOrder stores requests without validating them.
- process_clock      the order reconciler's "due" scores are written and compared on the order
  service's wall clock, as before issue 19 (a clock step strands orders or resumes them early).
- thin_answer_reserve  every hop keeps 5 ms of its caller's deadline for its answer (before issue 19).
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from shoplib.commit.writes import Ack, Committer, Value, Writes
    from shoplib.store.outage import StoreGate
    from shoplib.streams.consumer import ConsumerParts

K = TypeVar("K")
V = TypeVar("V")
# The faults a FaultyCommitter injects; without any of them the real committer is used as it is.
_COMMIT_FAULTS = {"skip_once", "exit_after_effect", "exit_in_publish", "nonatomic_publish", "process_clock"}


def _armed() -> dict[str, float]:
    found = {}
    for item in filter(None, os.environ.get("FAULTS", "").split(",")):
        name, _, rate = item.partition("=")
        found[name.strip()] = float(rate or 1)
    return found


ARMED = _armed()


def fires(name: str) -> bool:
    rate = ARMED.get(name)
    return rate is not None and random.random() < rate


def crash() -> None:
    """Exit as a SIGKILL would: no cleanup, no flush."""
    os._exit(137)


class FaultyCommitter:
    """A committer with the commit-time faults armed: once keys skipped, a crash between the
    effect and its acknowledgement, a crash in (or a split of) the publish step."""

    def __init__(self, inner: Committer) -> None:
        self._inner = inner

    async def commit(self, writes: Writes, once: tuple[str, Value] | None = None,
                     ack: Ack | None = None) -> bool:
        once = None if fires("skip_once") else once
        writes = _on_process_clock(writes) if "process_clock" in ARMED else writes
        if ack is not None and fires("exit_after_effect"):
            await self._inner.commit(writes, once, None)
            crash()
        if ack is None and any(op[0] == "XADD" for op in writes.ops):
            return await self._publish_step(writes, once)
        return await self._inner.commit(writes, once, ack)

    async def _publish_step(self, writes: Writes, once: tuple[str, Value] | None) -> bool:
        from shoplib.commit.writes import Writes

        if fires("nonatomic_publish"):
            if not await self._inner.commit(Writes([op for op in writes.ops if op[0] != "XADD"]), once):
                return False
            if fires("exit_in_publish"):
                crash()
            await self._inner.commit(Writes([op for op in writes.ops if op[0] == "XADD"]))
            return True
        applied = await self._inner.commit(writes, once)
        if applied and fires("exit_in_publish"):
            crash()
        return applied


def _wall_ms() -> int:
    import time

    return int(time.time() * 1000)


def _on_process_clock(writes: Writes) -> Writes:
    """process_clock: each ZADDNOW (scored by the server's clock) scored by this process's instead."""
    from shoplib.commit.writes import Writes

    return Writes([("ZADD", *op[1:-1], _wall_ms(), op[-1]) if op[0] == "ZADDNOW" else op for op in writes.ops])


class _ProcessClockReader:
    """process_clock: a reader whose "due" query compares the scores with this process's clock."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def eval(self, script: str, numkeys: int, *keys_and_args: str) -> Any:
        from shoplib.store import shared_clock

        if script != shared_clock.DUE:
            return await self._inner.eval(script, numkeys, *keys_and_args)
        key, after_ms, limit = keys_and_args
        return await self._inner.zrangebyscore(key, "-inf", _wall_ms() - int(after_ms), start=0, num=int(limit))


def reader(real: K) -> K:
    """process_clock: the store reader, its "due" query on this process's wall clock."""
    return cast(K, _ProcessClockReader(real)) if "process_clock" in ARMED else real


def committer(real: Committer) -> Committer:
    return FaultyCommitter(real) if _COMMIT_FAULTS & ARMED.keys() else real


# What each hop kept back for its answer before issue 19 (thin_answer_reserve).
THIN_ANSWER_RESERVE_S = 0.005


def answer_reserve(real: Callable[[float], float]) -> Callable[[float], float]:
    """thin_answer_reserve: 5 ms per hop, whatever the deadline (shoplib.calls.context)."""
    return (lambda _: THIN_ANSWER_RESERVE_S) if "thin_answer_reserve" in ARMED else real


def validator(real: Callable[..., list[tuple[str, str]]]) -> Callable[..., list[tuple[str, str]]]:
    """skip_validation: every request is valid."""
    return (lambda *_: []) if "skip_validation" in ARMED else real


def consumer_parts() -> ConsumerParts:
    """The consumer's parts, with the protection a control run takes out replaced by a part
    without it (no flag is read per entry or per round: the part itself is another)."""
    from shoplib.streams.consumer import ConsumerParts
    from shoplib.streams.entries import EntryWorker
    from shoplib.streams.maintenance import Maintenance
    from shoplib.streams.trim import Trimmer

    worker = [mixin for name, mixin in (("unguarded_entries", _Unisolated), ("outage_as_failure", _OutageAsFailure))
              if name in ARMED]
    trimmer = [mixin for name, mixin in (("trim_pending", _NoFloor), ("trim_ignores_topology", _NoTopology))
               if name in ARMED]
    return ConsumerParts(
        worker=type("FaultyEntryWorker", (*worker, EntryWorker), {}) if worker else EntryWorker,
        maintenance=type("NoReclaimMaintenance", (_NoReclaim, Maintenance), {}) if "no_reclaim" in ARMED
        else Maintenance,
        trimmer=type("FaultyTrimmer", (*trimmer, Trimmer), {}) if trimmer else Trimmer)


class _Unisolated:
    """unguarded_entries: an entry's error escapes its task (no isolation, no outage wait)."""

    async def work(self: Any, entry: Any, deliveries: int) -> None:
        return cast(None, await self._settle(entry, deliveries))


class _OutageAsFailure:
    """outage_as_failure: a store refusing writes, or a time limit cut by an outage or a stalled
    loop, counts against the entry (spends its deliveries)."""

    async def _raise_if_not_at_fault(self: Any, exc: TimeoutError, lost_before: float, limit: float) -> None:
        return None

    @staticmethod
    def _held_by_outage(exc: Exception) -> bool:
        return False


class _NoReclaim:
    """no_reclaim: entries of dead or stuck consumers are never taken over."""

    def _reclaim_allowed(self: Any) -> bool:
        return False


class _NoFloor:
    """trim_pending: trimming ignores what groups still have to process (trim.lua's override)."""

    def _args(self: Any, stream: str, retain_ms: int) -> list[str]:
        args = cast("list[str]", super()._args(stream, retain_ms))  # type: ignore[misc]
        return [args[0], "1", *args[2:]]


class _NoTopology:
    """trim_ignores_topology: trimming looks only at the groups that exist, not the declared ones."""

    def _args(self: Any, stream: str, retain_ms: int) -> list[str]:
        args = cast("list[str]", super()._args(stream, retain_ms))  # type: ignore[misc]
        return args[:2]


def decoder(real: Callable[[dict[bytes, bytes]], Any]) -> Callable[[dict[bytes, bytes]], Any]:
    """unguarded_entries: the payload decode as it was before issue 8 (Any.Unpack outside any
    guard, so bad payload bytes raise DecodeError), then the real decode."""
    return functools.partial(_raw_then, real) if "unguarded_entries" in ARMED else real


def _raw_then(real: Callable[[dict[bytes, bytes]], Any], fields: dict[bytes, bytes]) -> Any:
    from shop.v1 import events_pb2

    from shoplib import catalogue

    envelope = events_pb2.EventEnvelope.FromString(fields.get(b"envelope", b""))
    if (kind := catalogue.BY_NAME.get(envelope.type)) is not None:
        envelope.data.Unpack(kind.message())
    return real(fields)


def gate(real: StoreGate) -> StoreGate:
    """outage_as_failure: the consumer's view of the store never closes, so it neither pauses
    nor holds entries through an outage (as before issue 8); readiness keeps the real gate."""
    if "outage_as_failure" not in ARMED:
        return real
    from shoplib.store.outage import StoreGate

    class NeverClosed(StoreGate):
        def report(self, exc: BaseException) -> None:
            return None

    return NeverClosed(real.check)


DeadLetter = Callable[..., Any]


def dead_letter(real: DeadLetter) -> DeadLetter:
    """drop_dead_letters: an entry bound for the dead letters is acknowledged and dropped."""
    return functools.partial(_drop, real) if "drop_dead_letters" in ARMED else real


async def _drop(real: DeadLetter, committer: Committer, ack: Ack, *rest: object) -> None:
    from shoplib.commit.writes import Ack, Writes

    if not fires("drop_dead_letters"):
        return await real(committer, ack, *rest)  # type: ignore[no-any-return]  # the sink returns None
    await committer.commit(Writes(), None, Ack(ack.stream, ack.group, ack.entry_id))


def reconciled(modes: Mapping[K, V], names: Mapping[K, str]) -> dict[K, V]:
    """The reconciler's modes, less those whose switch (no_resume, no_redrive) is armed."""
    return {mode: value for mode, value in modes.items() if names[mode] not in ARMED}
