"""Unit of work: what one handler reads, writes and emits, committed as one atomic step.

Where emitted events go is the communication mode, injected as a Publisher:
- StreamPublisher (events mode) stages an XADD per event inside the same commit (the outbox);
- a service's sync publisher calls the next service over gRPC after the commit, and hands back
  what that produced (R: the order service's chain hands back the settled order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from google.protobuf.message import Message

from shoplib import catalogue
from shoplib.commit.writes import Ack, Committer, Once, Writes
from shoplib.streams import trace_context

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Publisher(Protocol[R_co]):
    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        """Add what must be committed with the effect (stream entries)."""

    async def after_commit(self, emitted: Sequence[Message]) -> R_co | None:
        """Act once the effect is durable (direct calls to the next service); what that produced."""

    async def resend(self, emitted: Sequence[Message]) -> R_co | None:
        """Follow up an effect an earlier attempt made (a retried request): sync mode calls the
        next service again (it is idempotent); events mode has nothing to do, since the event
        was committed with the effect."""


class StreamPublisher:
    def __init__(self, source: str) -> None:
        self._source = source

    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        for event in emitted:
            envelope = catalogue.wrap(event, self._source)
            trace_context.inject(envelope)  # its traceparent, committed with the event
            writes.xadd(catalogue.stream_of(envelope), catalogue.entry_fields(envelope))

    async def after_commit(self, emitted: Sequence[Message]) -> None:
        return None

    async def resend(self, emitted: Sequence[Message]) -> None:
        return None


class NoPublisher(StreamPublisher):
    """For handlers whose events nobody needs in this mode."""

    def __init__(self) -> None:
        super().__init__("")

    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        return None


class BaseUnitOfWork(Generic[R]):
    """`writes` is the one list every repository of this unit stages into; `commit` sends it."""

    def __init__(self, committer: Committer, publisher: Publisher[R], ack: Ack | None = None) -> None:
        self._committer, self._publisher, self._ack = committer, publisher, ack
        self.writes = Writes()
        self.emitted: list[Message] = []
        self.committed = False
        self._unpublished: list[Message] = []

    def emit(self, event: Message) -> None:
        self.emitted.append(event)

    async def commit(self, once: Once | None = None) -> bool:
        """True when the effect was applied now; False when `once` showed it was done before
        (then nothing but the ack is written, and there is nothing to publish).
        The handler calls `publish()` after it, once it has logged what it did."""
        self._publisher.stage(self.emitted, self.writes)
        applied = await self._committer.commit(self.writes, once, self._ack)
        self.committed = True
        self._unpublished = self.emitted if applied else []
        self.writes.clear()
        self.emitted = []
        return applied

    async def publish(self) -> R | None:
        """Follow up what the last commit emitted (sync mode: call the next service)."""
        emitted, self._unpublished = self._unpublished, []
        return await self._publisher.after_commit(emitted)

    async def resend(self, *emitted: Message) -> R | None:
        return await self._publisher.resend(emitted)

    async def republish(self, *emitted: Message) -> R | None:
        """Publish anew what an earlier attempt emitted, with whatever the handler staged (no once
        key: publishing again is the point; consumers are idempotent). Events mode appends the
        events again; sync mode calls the next service again. For re-drives of stuck work."""
        self._publisher.stage(emitted, self.writes)
        if self.writes.ops:
            await self._committer.commit(self.writes)
        self.writes.clear()
        return await self._publisher.after_commit(emitted)

    async def finish(self) -> None:
        """Acknowledge a consumed entry whose handler had nothing to write."""
        if not self.committed and self._ack is not None:
            await self._committer.commit(Writes(), None, self._ack)
            self.committed = True
