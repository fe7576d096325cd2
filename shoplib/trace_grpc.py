"""Spans of gRPC calls, server and client side (grpc.aio), with W3C trace context in the metadata.

opentelemetry-instrumentation-grpc is not on the package index this project installs from, so
these are our own small interceptors, after its conventions: a SERVER span per call named
`package.Service/Method` (rpc.system, rpc.service, rpc.method, rpc.grpc.status_code), a child of
the caller's context from the `traceparent` metadata; a CLIENT span per unary call, injected into
the call's metadata. Server streams (WatchOrder) carry the context without a client span of their
own. gRPC's own services (health, reflection) are not traced. Installed only when tracing is on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

import grpc
from opentelemetry import propagate
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from shoplib import log, tracing
from shoplib.rebuilt_handlers import RebuildingInterceptor
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
    """The span of one served call: opened from the caller's metadata, closed with its status code."""

    def __init__(self, method: str, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        parent = propagate.extract(dict(ctx.invocation_metadata() or ()))
        self._ctx = ctx
        self._span = tracing.tracer().start_as_current_span(method.lstrip("/"), context=parent, kind=SpanKind.SERVER,
                                                            attributes=_rpc_attributes(method))

    def __enter__(self) -> Span:
        self._current = self._span.__enter__()
        return self._current

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        code = _code_name(self._ctx.code())
        self._current.set_attribute("rpc.grpc.status_code", code)
        self._current.set_attribute(CORRELATION_ID, log.correlation_id.get())
        if code != "OK":
            self._current.set_status(Status(StatusCode.ERROR, code))
        self._span.__exit__(kind, exc, tb)


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


class ServerTracing(RebuildingInterceptor):
    """The outermost server interceptor: its span is current for everything the call does."""

    def rebuild(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        return handler if method.startswith("/grpc.") else _traced(method, handler)


def _with_context(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    metadata = grpc.aio.Metadata(*tuple(details.metadata or ()), *carrier.items())
    return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                      details.wait_for_ready)


def _method(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


class ClientTracing(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """A CLIENT span per unary call (its context goes in the metadata); server streams get the
    caller's context as it is."""

    async def intercept_unary_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails,
                                    request: Any) -> Any:
        method = _method(details)
        if method.startswith("/grpc."):  # health probes: not part of any order's story
            return await continuation(details, request)
        with tracing.tracer().start_as_current_span(method.lstrip("/"), kind=SpanKind.CLIENT,
                                                    attributes=_rpc_attributes(method)) as span:
            call = await continuation(_with_context(details), request)
            code = await call.code()
            span.set_attribute("rpc.grpc.status_code", code.name)
            if code is not grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
            return call

    async def intercept_unary_stream(self, continuation: Any, details: grpc.aio.ClientCallDetails,
                                     request: Any) -> Any:
        return await continuation(_with_context(details), request)


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """What a server installs before its own interceptors: nothing with tracing off."""
    return [ServerTracing()] if tracing.active() else []


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return [ClientTracing()] if tracing.active() else []
