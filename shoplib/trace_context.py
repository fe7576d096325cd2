"""W3C trace context through the streams: written into each event's envelope when it is staged
(so inside the same atomic commit as the event), read back by each consumer.

Spans follow OpenTelemetry's messaging conventions: one PRODUCER span `create <stream>` per event
(its context is the envelope's `traceparent`), one CONSUMER span `process <stream>` per delivery,
a child of it. The consumer span also says how long the entry waited in the stream (from the
entry id's millisecond timestamp to the read), in `messaging.redis.stream.wait_ms`. A delivery
made by a reclaim is linked to the `reclaim <stream>` span that took the entry over.

With tracing off (shoplib.tracing), every function here returns at its first line.
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

from shoplib import events, log, tracing

SYSTEM = "redis"
ORDER_ID = "shop.order_id"
CORRELATION_ID = "shop.correlation_id"
WAIT_MS = "messaging.redis.stream.wait_ms"
DELIVERY_COUNT = "messaging.redis.stream.delivery_count"
ENTRY_ID = "messaging.redis.stream.entry_id"
_W3C = TraceContextTextMapPropagator()
_OFF: AbstractContextManager[None] = contextlib.nullcontext()


def stamp(envelope: events_pb2.EventEnvelope) -> None:
    """Set the envelope's `traceparent` to a PRODUCER span for it, a child of the current span."""
    if not tracing.active():
        return
    if tracing.current_dropped():  # not sampled: the current context goes on, no span
        envelope.traceparent = _current_traceparent()
        return
    stream = events.BY_NAME[envelope.type].stream
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
              deliveries: int) -> AbstractContextManager[None]:
    """The CONSUMER span of one delivery, current for the handling of it (the commit, a dead letter)."""
    if not tracing.active():
        return _OFF
    return _consuming(envelope, stream, entry_id, group, consumer, deliveries)


@contextlib.contextmanager
def _consuming(envelope: events_pb2.EventEnvelope, stream: str, entry_id: str, group: str, consumer: str,
               deliveries: int) -> Iterator[None]:
    parent = _W3C.extract({"traceparent": envelope.traceparent}) if envelope.traceparent else None
    span = None
    if parent is not None and tracing.dropped(trace.get_current_span(parent).get_span_context()):
        current = parent  # not sampled: the producer's context goes on, no span
    else:
        span = _consumer_span(envelope, stream, entry_id, group, consumer, deliveries, parent)
        current = trace.set_span_in_context(span, parent)
    token = otel_context.attach(current)  # by hand: ~5 µs less than start_as_current_span
    try:
        yield
    finally:
        otel_context.detach(token)
        if span is not None:
            span.end()


def _consumer_span(envelope: events_pb2.EventEnvelope, stream: str, entry_id: str, group: str, consumer: str,
                   deliveries: int, parent: otel_context.Context | None) -> trace.Span:
    reclaim = trace.get_current_span().get_span_context()  # set only while a reclaim hands entries over
    attributes: dict[str, AttributeValue] = {"messaging.system": SYSTEM, "messaging.destination.name": stream,
                  "messaging.consumer.group.name": group, "messaging.client.id": consumer,
                  "messaging.operation.type": "process", "messaging.operation.name": "process",
                  "messaging.message.id": envelope.id, ENTRY_ID: entry_id, DELIVERY_COUNT: deliveries,
                  WAIT_MS: round(wait_ms(entry_id), 3), ORDER_ID: envelope.subject,
                  CORRELATION_ID: log.accepted_correlation_id(envelope.correlation_id) or "",
                  "shop.event_type": envelope.type}
    links = [Link(reclaim)] if reclaim.is_valid else []
    span = tracing.tracer().start_span(f"process {stream}", context=parent, kind=SpanKind.CONSUMER,
                                       attributes=attributes, links=links)
    if reclaim.is_valid:
        span.add_event("reclaimed", {DELIVERY_COUNT: deliveries})
    return span


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
