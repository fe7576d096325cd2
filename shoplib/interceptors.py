"""The server interceptor every service installs: context, access log, and error mapping.

Handlers raise ServiceError subclasses (or let dependency failures through); this is the one
place that turns them into status codes, so no servicer repeats try/except and no traceback
ever reaches a client.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import redis.exceptions
import structlog

from shoplib import context, errors, log

_logger = log.get("shoplib.rpc")
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Codes of a downstream call that we pass through unchanged (the caller can act on them).
_PASS_THROUGH = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
}


def _status_for(exc: BaseException) -> grpc.Status:
    if isinstance(exc, errors.ServiceError):
        return errors.to_status(exc.code, exc.message, exc.details())
    if isinstance(exc, grpc.aio.AioRpcError):
        code = exc.code() if exc.code() in _PASS_THROUGH else grpc.StatusCode.UNAVAILABLE
        status = errors.to_status(code, exc.details() or code.name)
        details = [(k, v) for k, v in (exc.trailing_metadata() or ()) if k == _STATUS_DETAILS_KEY]
        return _Status(code, status.details, tuple(details))
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return errors.to_status(grpc.StatusCode.UNAVAILABLE, "data store unavailable, retry later")
    cid = log.correlation_id.get()
    return errors.to_status(grpc.StatusCode.INTERNAL, f"internal error (correlation id {cid})")


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[Any, ...]) -> None:
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


def _enter(method: str, ctx: grpc.aio.ServicerContext) -> float:
    metadata = dict(ctx.invocation_metadata() or ())
    cid = str(metadata.get(log.CORRELATION_HEADER) or log.new_correlation_id())
    log.correlation_id.set(cid)
    structlog.contextvars.bind_contextvars(correlation_id=cid, rpc=method)
    context.set_deadline(ctx.time_remaining())
    return time.perf_counter()


# Trailer telling gRPC clients not to retry (negative pushback): sent when this server decided
# UNAVAILABLE itself after retrying its own dependency, so callers do not multiply the attempts.
_NO_RETRY = ("grpc-retry-pushback-ms", "-1")


async def _fail(ctx: grpc.aio.ServicerContext, exc: BaseException, started: float) -> None:
    status = _status_for(exc)
    if status.code is grpc.StatusCode.UNAVAILABLE:
        status = _Status(status.code, status.details, (*status.trailing_metadata, _NO_RETRY))
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    if status.code is grpc.StatusCode.INTERNAL:
        _logger.error("rpc.crashed", code=status.code.name, ms=elapsed_ms, exc_info=exc)
    else:
        _logger.info("rpc.failed", code=status.code.name, message=status.details, ms=elapsed_ms)
    await ctx.abort(status.code, status.details, status.trailing_metadata)


def _wrap_unary(method: str, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def behaviour(request: Any, ctx: grpc.aio.ServicerContext) -> Any:
        started = _enter(method, ctx)
        try:
            response = await inner(request, ctx)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _fail(ctx, exc, started)
        _logger.debug("rpc.ok", ms=round((time.perf_counter() - started) * 1000, 2))
        return response

    return behaviour


def _wrap_stream(method: str, inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def behaviour(request: Any, ctx: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started = _enter(method, ctx)
        try:
            async for item in inner(request, ctx):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _fail(ctx, exc, started)

    return behaviour


class ContextInterceptor(grpc.aio.ServerInterceptor):
    """Binds correlation id and deadline, logs failures, maps exceptions to status codes."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith("/grpc."):
            return handler
        codec = {"request_deserializer": handler.request_deserializer,
                 "response_serializer": handler.response_serializer}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_wrap_unary(method, handler.unary_unary), **codec)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_wrap_stream(method, handler.unary_stream), **codec)
        return handler
