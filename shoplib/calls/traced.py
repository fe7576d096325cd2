"""gRPC spans, from opentelemetry-instrumentation-grpc: its grpc.aio server interceptor (a SERVER
span per call, a child of the caller's W3C `traceparent` metadata) and client interceptors (a
CLIENT span per outbound call, its `traceparent` put in the call's metadata). Spans are named
after the method as gRPC spells it, `/shop.v1.Service/Method`, with rpc.system, rpc.service,
rpc.method and rpc.grpc.status_code (the code's number, 0 for OK); a call that fails has status
ERROR. gRPC's own services (health, reflection) are not traced.

What is ours: the correlation id and the order a call is about on its SERVER span (what
`make trace ORDER=` finds a trace by), set by the context interceptor through `annotate`. With
tracing off, no interceptor is installed and `annotate` is one boolean test.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import trace

from shoplib.observability import tracing
from shoplib.streams.trace_context import CORRELATION_ID, ORDER_ID

GRPC_OWN_SERVICES = "grpc."  # health and reflection: polled by probes, not worth a span each


def _ours(details: Any) -> bool:
    """Whether a call is one of our methods (its span is kept), not one of gRPC's own services."""
    method = details.method.decode() if isinstance(details.method, bytes) else str(details.method)
    return not method.lstrip("/").startswith(GRPC_OWN_SERVICES)


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The library's server interceptor when tracing is on (first: it sees every status code), else []."""
    if not tracing.active():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(filter_=_ours)]  # type: ignore[no-untyped-call]  # the library has no annotations


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """The library's client interceptors (one per call shape) when tracing is on, else []."""
    if not tracing.active():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    found: list[grpc.aio.ClientInterceptor] = aio_client_interceptors(filter_=_ours)  # type: ignore[no-untyped-call]
    return found


def _order_id(message: Any) -> str:
    """The order a request or an order is about ("" for none)."""
    return str(getattr(message, "order_id", "") or "")


def annotate(correlation_id: str, request: Any) -> None:
    """Put the correlation id, and the order the request is about if it names one, on the current
    SERVER span (at the call's start); nothing with tracing off."""
    if not tracing.active():
        return
    span = trace.get_current_span()
    span.set_attribute(CORRELATION_ID, correlation_id)
    if order_id := _order_id(request):
        span.set_attribute(ORDER_ID, order_id)


def annotate_order(response: Any) -> None:
    """Put the order of a response that carries one (an order just created) on the current SERVER span."""
    if tracing.active() and (order_id := _order_id(getattr(response, "order", None))):
        trace.get_current_span().set_attribute(ORDER_ID, order_id)
