"""Spans around two real parts, wrapped by bootstrap (a seam, as shoplib.faults does): the atomic
commit and the dead-letter sink. With tracing off, each function hands back the real part."""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from shoplib.commit.writes import Ack, Committer, Once, Writes
from shoplib.observability import tracing
from shoplib.streams.deadletter import DeadLetterSink

COMMIT_SCRIPT = "commit.lua"


class TracedCommitter:
    """`commit` inside a CLIENT span `commit` (db.system.name redis): how long the caller waited
    for its one atomic script, what it wrote, and whether it applied (False: done before)."""

    def __init__(self, inner: Committer) -> None:
        self._inner = inner

    async def commit(self, writes: Writes, once: Once | None = None, ack: Ack | None = None) -> bool:
        if tracing.current_dropped():
            return await self._inner.commit(writes, once, ack)
        attributes: dict[str, AttributeValue] = {"db.system.name": "redis", "db.operation.name": "EVALSHA",
                      "db.stored_procedure.name": COMMIT_SCRIPT, "shop.commit.operations": len(writes.ops),
                      "shop.commit.acknowledges": ack is not None}
        span = tracing.tracer().start_span("commit", kind=SpanKind.CLIENT, attributes=attributes)  # never current
        try:
            applied = await self._inner.commit(writes, once, ack)
            span.set_attribute("shop.commit.applied", applied)
            return applied
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()


def committer(real: Committer) -> Committer:
    return TracedCommitter(real) if tracing.active() else real


def dead_letter(real: DeadLetterSink) -> DeadLetterSink:
    """The sink inside a span `dead-letter <stream>`: a child of the delivery's consumer span."""
    if not tracing.active():
        return real

    async def traced(committer: Committer, ack: Ack, consumer: str, deliveries: int, error: str,
                     fields: dict[bytes, bytes]) -> None:
        if tracing.current_dropped():
            return await real(committer, ack, consumer, deliveries, error, fields)
        attributes: dict[str, AttributeValue] = {"messaging.system": "redis", "messaging.destination.name": ack.stream,
                      "messaging.consumer.group.name": ack.group, "messaging.redis.stream.entry_id": ack.entry_id,
                      "messaging.redis.stream.delivery_count": deliveries, "error.message": error}
        with tracing.tracer().start_as_current_span(f"dead-letter {ack.stream}", attributes=attributes):
            await real(committer, ack, consumer, deliveries, error, fields)

    return traced
