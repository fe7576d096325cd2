"""SERVER spans of gRPC calls (grpc.aio), children of the caller's W3C `traceparent` metadata.

opentelemetry-instrumentation-grpc is not on the package index this project installs from, so
this is our own, after its conventions: a SERVER span per call named `package.Service/Method`
(rpc.system, rpc.service, rpc.method, rpc.grpc.status_code), plus the correlation id and the
order the call is about. It is the context interceptor itself, traced (one interceptor, not two),
installed only when tracing is on; gRPC's own services (health, reflection) are not traced. The
CLIENT side is shoplib.trace_calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from shoplib import log, tracing
from shoplib.interceptors import ContextInterceptor
from shoplib.trace_context import CORRELATION_ID, ORDER_ID


def _rpc_attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def _code_name(code: object) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else "OK" if code is None else str(code)


def _order_id(message: Any) -> str:
    """The order a request or an order is about ("" for none): what `make trace ORDER=` finds a trace by."""
    return str(getattr(message, "order_id", "") or "")


class _ServerSpan:
    """The span of one served call: opened from the caller's metadata, closed with its status code
    (none under a caller that was not sampled: its context is made current as it is). Made current
    by hand: the SDK's start_as_current_span costs ~5 µs more a span."""

    def __init__(self, method: str, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        self._context = propagate.extract(dict(ctx.invocation_metadata() or ()))
        self._ctx = ctx
        self._span: Span | None = None
        if not tracing.dropped(trace.get_current_span(self._context).get_span_context()):
            self._span = tracing.tracer().start_span(method.lstrip("/"), context=self._context, kind=SpanKind.SERVER,
                                                     attributes=_rpc_attributes(method))
            self._context = trace.set_span_in_context(self._span, self._context)

    def __enter__(self) -> Span:
        self._token = otel_context.attach(self._context)
        return self._span or trace.get_current_span()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        otel_context.detach(self._token)
        if self._span is None:
            return
        code = _code_name(self._ctx.code())
        self._span.set_attributes({"rpc.grpc.status_code": code, CORRELATION_ID: log.correlation_id.get()})
        if code != "OK":
            self._span.set_status(Status(StatusCode.ERROR, code))
        self._span.end()


def _unary(method: str, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def behaviour(request: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> Any:
        with _ServerSpan(method, ctx) as span:
            response = await inner(request, ctx)
            if order_id := _order_id(request) or _order_id(getattr(response, "order", None)):
                span.set_attribute(ORDER_ID, order_id)
            return response

    return behaviour


def _stream(method: str, inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def behaviour(request: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        with _ServerSpan(method, ctx) as span:
            if order_id := _order_id(request):
                span.set_attribute(ORDER_ID, order_id)
            async for item in inner(request, ctx):
                yield item

    return behaviour


def _traced(method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    codec = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_unary(method, handler.unary_unary), **codec)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_stream(method, handler.unary_stream), **codec)  # type: ignore[arg-type]
    return handler  # no streamed-request method of ours is traced


class TracedContextInterceptor(ContextInterceptor):
    """The context interceptor with a SERVER span around everything the call does: one interceptor,
    not two (each costs a coroutine per call in grpc.aio)."""

    def rebuild(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        rebuilt = super().rebuild(method, handler)
        return rebuilt if method.startswith("/grpc.") else _traced(method, rebuilt)


def context_interceptor() -> ContextInterceptor:
    """The server's context interceptor; with tracing on, the one that also opens server spans."""
    return TracedContextInterceptor() if tracing.active() else ContextInterceptor()
