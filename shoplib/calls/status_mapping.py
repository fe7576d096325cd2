"""How failures map to canonical gRPC statuses with google.rpc details (used by the interceptor:
the one place that turns exceptions into status codes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from shoplib import errors, log
from shoplib.store import outage

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


def to_status(code: grpc.StatusCode, message: str, details: Sequence[Message] = ()) -> grpc.Status:
    """A grpc.Status carrying google.rpc.Status details in the trailing metadata."""
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def status_for(exc: BaseException) -> grpc.Status:
    """The status a failure maps to: our errors by their code; a downstream's status passed on
    when the caller can act on it, a broken downstream call UNAVAILABLE, a downstream bug
    INTERNAL; a store outage UNAVAILABLE with RetryInfo; anything else INTERNAL."""
    if isinstance(exc, errors.ServiceError):
        return to_status(grpc.StatusCode[exc.code], exc.message, exc.details())
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _PASS_THROUGH:  # the caller can act on it
        code = exc.code()
        status = to_status(code, exc.details() or code.name)
        details = [(k, v) for k, v in (exc.trailing_metadata() or ()) if k == _STATUS_DETAILS_KEY]
        return Status(code, status.details, tuple(details))
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() is not grpc.StatusCode.INTERNAL:
        # the call broke in transport (CANCELLED, UNKNOWN from a server that went away): retryable;
        # the downstream's own details are not relayed under a code they do not match
        message = f"{exc.code().name.lower()} from a downstream service, retry later"
        return to_status(grpc.StatusCode.UNAVAILABLE, message)
    if outage.is_outage(exc):  # down, or refusing writes for now (OOM, READONLY, a full stream, ...)
        unavailable = errors.Unavailable(f"data store unavailable ({outage.describe(exc)}), retry later",
                                         {"dependency": "redis"})
        return to_status(grpc.StatusCode.UNAVAILABLE, unavailable.message, unavailable.details())
    cid = log.correlation_id.get()
    return to_status(grpc.StatusCode.INTERNAL, f"internal error (correlation id {cid})")


class Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[Any, ...]) -> None:
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata
