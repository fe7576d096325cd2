"""Unit of work: what one handler reads, writes and emits, committed as one atomic step.

Where emitted events go is the communication mode, injected as a Publisher:
- StreamPublisher (events mode) stages an XADD per event inside the same commit (the outbox);
- a service's sync publisher calls the next service over gRPC after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from google.protobuf.message import Message

from shoplib import events, faults
from shoplib.tx import Ack, Committer, Value, Writes


class Publisher(Protocol):
    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        """Add what must be committed with the effect (stream entries)."""

    async def after_commit(self, emitted: Sequence[Message]) -> list[object]:
        """Act once the effect is durable (direct calls to the next service); returns what they answered."""

    async def redeliver(self, emitted: Sequence[Message]) -> list[object]:
        """Follow up an effect done by an earlier attempt (a retried request): sync mode calls
        the next service again (it is idempotent); events mode has nothing to do, since the
        event was committed with the effect."""


class StreamPublisher:
    def __init__(self, source: str) -> None:
        self._source = source

    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        for event in emitted:
            envelope = events.wrap(event, self._source)
            writes.xadd(events.BY_MESSAGE[type(event)].stream, events.entry_fields(envelope))

    async def after_commit(self, emitted: Sequence[Message]) -> list[object]:
        return []

    async def redeliver(self, emitted: Sequence[Message]) -> list[object]:
        return []


class NoPublisher:
    """For handlers whose events nobody needs in this mode."""

    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        return None

    async def after_commit(self, emitted: Sequence[Message]) -> list[object]:
        return []

    async def redeliver(self, emitted: Sequence[Message]) -> list[object]:
        return []


class UnitOfWork:
    def __init__(self, committer: Committer, publisher: Publisher, ack: Ack | None = None) -> None:
        self._committer, self._publisher, self._ack = committer, publisher, ack
        self.writes = Writes()
        self.emitted: list[Message] = []
        self.committed = False
        self._unpublished: list[Message] = []

    def emit(self, event: Message) -> None:
        self.emitted.append(event)

    async def commit(self, once: tuple[str, Value] | None = None) -> bool:
        """True when the effect was applied now; False when `once` showed it was done before
        (then nothing but the ack is written, and there is nothing to publish).
        The handler calls `publish()` after it, once it has logged what it did."""
        once = None if faults.fires("skip_once") else once  # control runs only (faults.py)
        self._publisher.stage(self.emitted, self.writes)
        if self._ack is not None and faults.fires("exit_after_effect"):
            await self._committer.commit(self.writes, once, None)
            faults.crash()
        if self._ack is None and faults.ARMED:  # publish-step fault points (faults.py)
            applied = await faults.commit_publish_step(self._committer, self.writes, once)
        else:
            applied = await self._committer.commit(self.writes, once, self._ack)
        self.committed = True
        self._unpublished = self.emitted if applied else []
        self.writes, self.emitted = Writes(), []
        return applied

    async def publish(self) -> list[object]:
        """Follow up what the last commit emitted (sync mode: call the next service)."""
        emitted, self._unpublished = self._unpublished, []
        return await self._publisher.after_commit(emitted)

    async def redeliver(self, *emitted: Message) -> list[object]:
        return await self._publisher.redeliver(emitted)

    async def republish(self, *emitted: Message) -> list[object]:
        """Publish anew what an earlier attempt emitted, with whatever the handler staged (no once
        key: publishing again is the point; consumers are idempotent). Events mode appends the
        events again; sync mode calls the next service again. For re-drives of stuck work."""
        self._publisher.stage(emitted, self.writes)
        if self.writes.ops:
            await self._committer.commit(self.writes)
        self.writes = Writes()
        return await self._publisher.after_commit(emitted)

    async def finish(self) -> None:
        """Acknowledge a consumed entry whose handler had nothing to write."""
        if not self.committed and self._ack is not None:
            await self._committer.commit(Writes(), None, self._ack)
            self.committed = True
