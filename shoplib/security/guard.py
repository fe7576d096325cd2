"""A server interceptor that runs a check before a method's own behaviour, for every kind of
method (unary or streaming, coroutine or async generator). The check ends the call itself
(ctx.abort) when it refuses; it may also set context (contextvars) for the handler."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Check: TypeAlias = "Callable[[Context], Awaitable[None]]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_KINDS = (("unary_unary", grpc.unary_unary_rpc_method_handler),
          ("unary_stream", grpc.unary_stream_rpc_method_handler),
          ("stream_unary", grpc.stream_unary_rpc_method_handler),
          ("stream_stream", grpc.stream_stream_rpc_method_handler))


def _checked(inner: Callable[..., Any], check: Check) -> Callable[..., Any]:
    """`inner`, of the same kind (coroutine or async generator), running `check` first."""
    if inspect.isasyncgenfunction(inner):
        async def streaming(request: Any, ctx: Context) -> AsyncIterator[Any]:
            await check(ctx)
            async for item in inner(request, ctx):
                yield item

        return streaming

    async def single(request: Any, ctx: Context) -> Any:
        await check(ctx)
        return await inner(request, ctx)

    return single


def checked(handler: Handler, check: Check) -> Handler:
    """`handler` with the same codec and kind, its behaviour running `check` first."""
    codec = {"request_deserializer": handler.request_deserializer,
             "response_serializer": handler.response_serializer}
    for attribute, build in _KINDS:
        if (inner := getattr(handler, attribute)) is not None:
            return build(_checked(inner, check), **codec)
    raise ValueError("a method handler without behaviour")


class CheckingInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses say which check a method gets (None: none). Each method's guarded handler is
    built on its first call and kept (bounded by the methods served): no work per call beyond it."""

    def __init__(self) -> None:
        self._guarded: dict[str, tuple[Handler, Handler]] = {}

    def check_for(self, method: str) -> Check | None:
        raise NotImplementedError

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        known = self._guarded.get(details.method)
        if known is None or known[0] is not handler:
            check = self.check_for(details.method)
            known = self._guarded[details.method] = (handler, checked(handler, check) if check else handler)
        return known[1]
