"""Errors a client can act on, and their mapping to canonical gRPC status codes with details."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from shoplib.bounds import MAX_VIOLATIONS


class ServiceError(Exception):
    """Base of the errors a handler raises on purpose; each maps to one status code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[object]:
        """Rich error details (google.rpc.*) packed into the status."""
        return []




class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        shown = violations[:MAX_VIOLATIONS]
        if len(violations) > MAX_VIOLATIONS:
            shown.append(("", f"and {len(violations) - MAX_VIOLATIONS} more violations"))
        fields = ", ".join(field for field, _ in shown if field)
        more = f" (+{len(violations) - MAX_VIOLATIONS} more)" if len(violations) > MAX_VIOLATIONS else ""
        super().__init__(f"invalid request: {fields}{more}")
        self.violations = shown

    def details(self) -> list[object]:
        request = error_details_pb2.BadRequest()
        for field, description in self.violations:
            request.field_violations.add(field=field, description=description)
        return [request]


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(ServiceError):
    """A bound on concurrent work is reached; retrying later may work."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def details(self) -> list[object]:
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain="shop.v1")]


class Unavailable(ServiceError):
    """A dependency (Redis, a downstream service) does not answer; retrying later may work."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.metadata = metadata or {}

    def details(self) -> list[object]:
        info = error_details_pb2.ErrorInfo(reason="DEPENDENCY_UNAVAILABLE", domain="shop.v1")
        info.metadata.update(self.metadata)
        return [info, error_details_pb2.RetryInfo(retry_delay={"seconds": 1})]


def to_status(code: grpc.StatusCode, message: str, details: list[object] = ()) -> grpc.Status:  # type: ignore[assignment]
    """A grpc.Status carrying google.rpc.Status details in the trailing metadata."""
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


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
