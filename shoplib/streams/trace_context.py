"""W3C trace context through the streams: written into each event's envelope when it is staged
(so inside the same atomic commit as the event), read back by each consumer.

Spans follow OpenTelemetry's messaging conventions: one PRODUCER span `create <stream>` per event
(its context is the envelope's `traceparent`), one CONSUMER span `process <stream>` per delivery,
a child of it. The consumer span also says how long the entry waited in the stream (from the
entry id's millisecond timestamp to the read), in `messaging.redis.stream.wait_ms`. A delivery
made by a reclaim is linked to the `reclaim <stream>` span that took the entry over; a delivery of
an entry re-driven from the dead letters, to the operator's `redrive <stream>` span (its context
is the entry's `redriven_by` field, beside the envelope; shoplib.observability.later_work.redriving).

With tracing off (shoplib.observability.tracing), every function here returns at its first line.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from shop.v1 import events_pb2

from shoplib import catalogue, log
from shoplib.observability import tracing

SYSTEM = "redis"
ORDER_ID = "shop.order_id"
CORRELATION_ID = "shop.correlation_id"
WAIT_MS = "messaging.redis.stream.wait_ms"
DELIVERY_COUNT = "messaging.redis.stream.delivery_count"
ENTRY_ID = "messaging.redis.stream.entry_id"
# A re-driven entry's field: the `traceparent` of the operator's `redrive` span that put it back.
REDRIVEN_BY = "redriven_by"
_REDRIVEN_BY = REDRIVEN_BY.encode()
# The longest `traceparent` the W3C propagator reads (it logs a warning for a longer one): a longer
# field is not ours, and is not looked at.
MAX_TRACEPARENT = 512
_W3C = TraceContextTextMapPropagator()
_OFF: AbstractContextManager[None] = contextlib.nullcontext()


def inject(envelope: events_pb2.EventEnvelope) -> None:
    """Set the envelope's `traceparent` to a PRODUCER span for it, a child of the current span."""
    if not tracing.active():
        return
    if tracing.current_dropped():  # not sampled: the current context goes on, no span
        envelope.traceparent = _current_traceparent()
        return
    stream = catalogue.BY_NAME[envelope.type].stream
    attributes: dict[str, AttributeValue] = {"messaging.system": SYSTEM, "messaging.destination.name": stream,
                  "messaging.operation.type": "create", "messaging.operation.name": "create",
                  "messaging.message.id": envelope.id, ORDER_ID: envelope.subject,
                  CORRELATION_ID: envelope.correlation_id}
    span = tracing.tracer().start_span(f"create {stream}", kind=SpanKind.PRODUCER, attributes=attributes)
    envelope.traceparent = _current_traceparent(trace.set_span_in_context(span))  # never current: ~5 µs less
    span.end()


def _current_traceparent(context: otel_context.Context | None = None) -> str:
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    return carrier.get("traceparent", "")


def wait_ms(entry_id: str, now_ms: float | None = None) -> float:
    """How long ago the entry was added: its id's millisecond part, to now (or `now_ms`)."""
    added_ms = int(entry_id.partition("-")[0] or 0)
    return max((time.time() * 1000 if now_ms is None else now_ms) - added_ms, 0.0)


def consuming(envelope: events_pb2.EventEnvelope, stream: str, entry_id: str, group: str, consumer: str,
              deliveries: int, fields: dict[bytes, bytes] | None = None) -> AbstractContextManager[None]:
    """The CONSUMER span of one delivery, current for the handling of it (the commit, a dead letter);
    `fields`, the entry's, say whether it was re-driven (and by which span)."""
    if not tracing.active():
        return _OFF
    redriven = fields.get(_REDRIVEN_BY) if fields else None
    return _consuming(envelope, stream, entry_id, group, consumer, deliveries, redriven)


@contextlib.contextmanager
def _consuming(envelope: events_pb2.EventEnvelope, stream: str, entry_id: str, group: str, consumer: str,
               deliveries: int, redriven: bytes | None) -> Iterator[None]:
    parent = _W3C.extract({"traceparent": envelope.traceparent}) if envelope.traceparent else None
    span = None
    if parent is not None and tracing.dropped(trace.get_current_span(parent).get_span_context()):
        current = parent  # not sampled: the producer's context goes on, no span
    else:
        span = _consumer_span(envelope, stream, entry_id, group, consumer, deliveries, parent, redriven)
        current = trace.set_span_in_context(span, parent)
    token = otel_context.attach(current)  # by hand: ~5 µs less than start_as_current_span
    try:
        yield
    finally:
        otel_context.detach(token)
        if span is not None:
            span.end()


def _consumer_span(envelope: events_pb2.EventEnvelope, stream: str, entry_id: str, group: str, consumer: str,
                   deliveries: int, parent: otel_context.Context | None, redriven: bytes | None) -> trace.Span:
    reclaim = trace.get_current_span().get_span_context()  # set only while a reclaim hands entries over
    attributes: dict[str, AttributeValue] = {"messaging.system": SYSTEM, "messaging.destination.name": stream,
                  "messaging.consumer.group.name": group, "messaging.client.id": consumer,
                  "messaging.operation.type": "process", "messaging.operation.name": "process",
                  "messaging.message.id": envelope.id, ENTRY_ID: entry_id, DELIVERY_COUNT: deliveries,
                  WAIT_MS: round(wait_ms(entry_id), 3), ORDER_ID: envelope.subject,
                  CORRELATION_ID: log.accepted_correlation_id(envelope.correlation_id) or "",
                  "shop.event_type": envelope.type}
    redrive = _redrive_of(redriven)
    links = [Link(c) for c in (reclaim, redrive) if c.is_valid]
    span = tracing.tracer().start_span(f"process {stream}", context=parent, kind=SpanKind.CONSUMER,
                                       attributes=attributes, links=links)
    if reclaim.is_valid:
        span.add_event("reclaimed", {DELIVERY_COUNT: deliveries})
    if redrive.is_valid:
        span.add_event("redriven", {DELIVERY_COUNT: deliveries})
    return span


def _redrive_of(traceparent: bytes | None) -> trace.SpanContext:
    """The `redrive` span a re-driven entry names (a field from the broker: a malformed one, or
    none, gives the invalid context, which links nothing)."""
    if traceparent is None or len(traceparent) > MAX_TRACEPARENT:
        return trace.INVALID_SPAN_CONTEXT
    return trace.get_current_span(_W3C.extract({"traceparent": traceparent.decode(errors="replace")})
                                  ).get_span_context()


def failed(error: str) -> None:
    """Mark the current span (a consumer's) failed, with the error that leaves the entry pending."""
    if not tracing.active():
        return
    span = trace.get_current_span()
    span.add_event("handler.failed", {"error.message": error})
    span.set_status(Status(StatusCode.ERROR, error))


def reclaiming(stream: str, group: str, consumer: str, entries: int) -> AbstractContextManager[None]:
    """A `reclaim <stream>` span, current while the reclaimed entries are worked on (they link to it)."""
    if not tracing.active():
        return _OFF
    attributes: dict[str, AttributeValue] = {"messaging.system": SYSTEM, "messaging.destination.name": stream,
                  "messaging.consumer.group.name": group, "messaging.client.id": consumer,
                  "messaging.batch.message_count": entries}
    span = tracing.tracer().start_as_current_span(f"reclaim {stream}", attributes=attributes)
    return _as_none(span)


@contextlib.contextmanager
def _as_none(span: AbstractContextManager[object]) -> Iterator[None]:
    with span:
        yield
