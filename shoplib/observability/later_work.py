"""Work done for an order after its request, by whichever process: a reconciler resuming a sync
chain or re-driving an event, a retried PlaceOrder following a pending order up, an operator
re-driving a dead letter.

The order keeps the W3C `traceparent` of the request that placed it (Order.traceparent, from
`current()` at placing). Resumed work runs in a span that continues that trace: a child of the
order's context when nothing is current (a background round), or, under a span of its own (a
retried call carries its caller's trace), a child of that span with a link to the order's. The
calls and events made inside carry it on (Charge, SendNotification, the re-driven OrderPlaced
and its consumers), so `make trace ORDER=...` shows them with the order.

An operator's re-drive (`make dead-letters ARGS='redrive P/ID'`) puts the same message back: its
envelope, and so its creation context (the order's trace, where the dead-lettering is), is kept
as it was. The re-drive is a send of that message, so, as OpenTelemetry's messaging conventions
have a send link to the message's creation context, it is a PRODUCER span `redrive <stream>` in
the operator's own trace (a root for a command) with a link to the envelope's context; each
delivery of the re-driven entry links back to it (shoplib.streams.trace_context), and `make trace` shows
the operator's trace after the order's.

With tracing off (shoplib.observability.tracing), every function returns at its first line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from shop.v1 import events_pb2

from shoplib.observability import tracing
from shoplib.streams.trace_context import ENTRY_ID, ORDER_ID, REDRIVEN_BY, SYSTEM

_W3C = TraceContextTextMapPropagator()
_OFF: AbstractContextManager[None] = contextlib.nullcontext()
DEAD_LETTER = "shop.dead_letter"  # the re-driven dead letter, as `make dead-letters` names it (P/ID)


@dataclass(frozen=True)
class Redrive:
    """What the re-drive of one dead letter carries: the fields its new entry adds beside the
    envelope (so that each delivery links to the re-drive), and its span (set when traced)."""

    fields: Mapping[str, str] = field(default_factory=dict)
    span: trace.Span = trace.INVALID_SPAN

    def put_back(self, entry_id: str) -> None:
        """Say where the message went back (the new entry's id)."""
        self.span.set_attribute(ENTRY_ID, entry_id)


_UNTRACED: AbstractContextManager[Redrive] = contextlib.nullcontext(Redrive())


def current() -> str:
    """The current span's `traceparent` ("" with tracing off or outside any trace): what a new
    order keeps, so that later work can rejoin its trace."""
    if not tracing.active():
        return ""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent", "")


def resumed(name: str, order_id: str, traceparent: str) -> AbstractContextManager[None]:
    """An INTERNAL span `name` (about `order_id`), current for the body: in the order's trace
    (`traceparent`, as stored with it) or, under another current span, linked to it. An order
    stored without one (placed untraced) gets a new trace; an unsampled one gets no span, and its
    context is made current as it is, so the trace id still travels."""
    if not tracing.active():
        return _OFF
    return _resumed(name, order_id, traceparent)


@contextlib.contextmanager
def _resumed(name: str, order_id: str, traceparent: str) -> Iterator[None]:
    stored = _W3C.extract({"traceparent": traceparent}) if traceparent else otel_context.Context()
    order_span = trace.get_current_span(stored).get_span_context()
    if trace.get_current_span().get_span_context().is_valid:  # a call's own trace: link the order's
        parent, links = None, [Link(order_span)] if order_span.is_valid else []
    elif tracing.dropped(order_span):  # placed unsampled: no span, the order's context goes on
        token = otel_context.attach(stored)
        try:
            yield
        finally:
            otel_context.detach(token)
        return
    else:
        parent, links = stored, []
    with tracing.tracer().start_as_current_span(name, context=parent, kind=SpanKind.INTERNAL,
                                                attributes={ORDER_ID: order_id}, links=links):
        yield


def redriving(stream: str, dead_letter: str, envelope: events_pb2.EventEnvelope | None
              ) -> AbstractContextManager[Redrive]:
    """The PRODUCER span `redrive <stream>` of an operator putting `dead_letter` (its `envelope`,
    None when it does not parse) back on `stream`, current for the body: a child of the current
    span, or a root, linked to the envelope's creation context."""
    if not tracing.active():
        return _UNTRACED
    return _redriving(stream, dead_letter, envelope)


@contextlib.contextmanager
def _redriving(stream: str, dead_letter: str, envelope: events_pb2.EventEnvelope | None) -> Iterator[Redrive]:
    carried = _W3C.extract({"traceparent": envelope.traceparent if envelope else ""})  # empty: no context
    creation = trace.get_current_span(carried).get_span_context()
    attributes: dict[str, AttributeValue] = {"messaging.system": SYSTEM, "messaging.destination.name": stream,
                  "messaging.operation.type": "send", "messaging.operation.name": "redrive", DEAD_LETTER: dead_letter}
    if envelope is not None:
        attributes.update({"messaging.message.id": envelope.id, ORDER_ID: envelope.subject})
    links = [Link(creation)] if creation.is_valid else []
    with tracing.tracer().start_as_current_span(f"redrive {stream}", kind=SpanKind.PRODUCER, attributes=attributes,
                                                links=links) as span:
        yield Redrive({REDRIVEN_BY: current()}, span)
