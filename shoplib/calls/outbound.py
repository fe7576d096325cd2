"""Outbound gRPC: channels with safe retries, calls with propagated deadline and correlation id."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from typing import TypedDict, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shoplib import errors
from shoplib.calls import balancing, context, traced
from shoplib.observability import metrics
from shoplib.security import handshake, serving

T = TypeVar("T")

# Retry only UNAVAILABLE (the request did not reach a server) and only on our internal,
# idempotent methods (every one is keyed: order id, idempotency key, (order, kind)).
RETRY_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "shop.v1.OrderService"}, {"service": "shop.v1.PaymentService"},
                 {"service": "shop.v1.NotificationService"}],
        "retryPolicy": {
            "maxAttempts": 3,
            "initialBackoff": "0.02s",
            "maxBackoff": "0.2s",
            "backoffMultiplier": 3,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
    **balancing.ROUND_ROBIN,  # over the N instances of an address list (shoplib/calls/balancing.py)
})
# Reconnect quickly after a downstream restarts, instead of gRPC's default 20 s ceiling; the
# ceiling (plus gRPC's 20% jitter) stays under the 1 s RetryInfo our UNAVAILABLE errors advise.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def channel(address: str, caller: str = "", server: str = "") -> grpc.aio.Channel:
    """A channel from service `caller` to service `server` (mTLS between them under SECURE=1),
    whose calls get CLIENT spans when tracing is on (shoplib.calls.traced)."""
    options = [("grpc.service_config", RETRY_SERVICE_CONFIG), ("grpc.enable_retries", 1), *RECONNECT_OPTIONS]
    return serving.channel(balancing.target(address), options, caller, server, traced.client_interceptors())


class CallOptions(TypedDict):
    """The keyword arguments every outbound stub call takes: `stub.Method(request, **call_options())`."""

    timeout: float
    metadata: tuple[tuple[str, str], ...]


def call_options() -> CallOptions:
    """timeout and metadata for an outbound call made while serving a request."""
    return {"timeout": context.remaining(), "metadata": context.outbound_metadata()}


def _unavailable(service: str, exc: grpc.aio.AioRpcError) -> errors.ServiceError | None:
    """UNAVAILABLE naming the service, when the call failed for want of it: it is down or hung
    (an answer the service gave itself carries status details and passes through as is). A refused
    TLS handshake is a configuration error, not an outage: INTERNAL, logged saying which."""
    if refused := handshake.refused(service, exc):
        return refused
    if any(key == "grpc-status-details-bin" for key, _ in exc.trailing_metadata() or ()):
        return None
    if exc.code() is grpc.StatusCode.UNAVAILABLE:
        return errors.Unavailable(f"{service} service unavailable, retry later", {"service": service})
    if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:  # a hung service, not our caller
        return errors.Unavailable(f"{service} service did not answer in time, retry later", {"service": service})
    return None


async def invoke(service: str, method: str, call: Awaitable[T]) -> T:
    """Await an outbound call to `method` ("shop.v1.OrderService/CreateOrder": its duration is
    observed under it); a down or hung service becomes UNAVAILABLE naming it (no addresses)."""
    started = time.perf_counter()
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        metrics.client_rpc(method, exc.code().name).observe(time.perf_counter() - started)
        raise _unavailable(service, exc) or exc from None
    metrics.client_rpc(method, grpc.StatusCode.OK.name).observe(time.perf_counter() - started)
    return reply


async def follow(service: str, call: AsyncIterable[T]) -> AsyncIterator[T]:
    """The messages of an outbound server stream; a down service becomes UNAVAILABLE naming it."""
    try:
        async for message in call:
            yield message
    except grpc.aio.AioRpcError as exc:  # a stream ends at its caller's deadline: only "down" is mapped
        down = _unavailable(service, exc) if exc.code() is grpc.StatusCode.UNAVAILABLE else None
        raise down or exc from None


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The BadRequest field violations carried by a failed call, for clients and tests."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    found: list[tuple[str, str]] = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            found += [(v.field, v.description) for v in request.field_violations]
    return found
