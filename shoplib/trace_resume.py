"""Work done for an order after its request, by whichever process: a reconciler resuming a sync
chain or re-driving an event, a retried PlaceOrder following a pending order up.

The order keeps the W3C `traceparent` of the request that placed it (Order.traceparent, from
`current()` at placing). Resumed work runs in a span that continues that trace: a child of the
order's context when nothing is current (a background round), or, under a span of its own (a
retried call carries its caller's trace), a child of that span with a link to the order's. The
calls and events made inside carry it on (Charge, SendNotification, the re-driven OrderPlaced
and its consumers), so `make trace ORDER=...` shows them with the order.

With tracing off (shoplib.tracing), both functions return at their first line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shoplib import tracing
from shoplib.trace_context import ORDER_ID

_W3C = TraceContextTextMapPropagator()
_OFF: AbstractContextManager[None] = contextlib.nullcontext()


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
