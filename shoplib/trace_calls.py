"""CLIENT spans of outbound unary calls, without a gRPC client interceptor (grpc.aio's cost a
task and a wrapped call each, even with nothing recorded). Every outbound unary call of ours is
`invoke(service, method, stub.Method(request, **call_options()))`: `call_options` opens the span
and puts its `traceparent` in the call's metadata, `invoke` closes it with the call's status code.
The span is held in a context variable between the two (same task, nothing in between).
"""

from __future__ import annotations

from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shoplib import tracing

_W3C = TraceContextTextMapPropagator()
_open: ContextVar[Span | None] = ContextVar("outbound_span", default=None)
NOT_AWAITED = "rpc (never awaited through invoke)"


def outbound() -> tuple[tuple[str, str], ...]:
    """The `traceparent` metadata of a new CLIENT span for the call about to be made; () when off."""
    if not tracing.active():
        return ()
    if tracing.current_dropped():  # not sampled: the current context goes on, no span
        return current()
    if (left := _open.get()) is not None:  # a call made without invoke: closed now, named as such
        left.update_name(NOT_AWAITED)
        left.end()
    span = tracing.tracer().start_span("rpc", kind=SpanKind.CLIENT, attributes={"rpc.system": "grpc"})
    _open.set(span)
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    return tuple(carrier.items())


def current() -> tuple[tuple[str, str], ...]:
    """The `traceparent` metadata of the current span, for a call that gets no CLIENT span of its
    own (a server stream, followed for as long as its caller wants); () when off."""
    if not tracing.active():
        return ()
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return tuple(carrier.items())


def close(method: str, code: str) -> None:
    """End the open CLIENT span as the call to `method` ("pkg.Service/Method"), with its status code."""
    span = _open.get()
    if span is None:
        return
    _open.set(None)
    service, _, name = method.rpartition("/")
    span.update_name(method)
    span.set_attributes({"rpc.service": service, "rpc.method": name, "rpc.grpc.status_code": code})
    if code != "OK":
        span.set_status(Status(StatusCode.ERROR, code))
    span.end()
