"""Errors a client can act on: each names its canonical status code and carries rich details
(google.rpc.*). Transport-free: the server interceptor (shoplib.calls.interceptors) turns them into
gRPC statuses, so a handler raising them loads no gRPC."""

from __future__ import annotations

from google.protobuf.message import Message
from google.rpc import error_details_pb2

from shoplib.rules.bounds import MAX_VIOLATIONS


class ServiceError(Exception):
    """Base of the errors a handler raises on purpose; each maps to one status code."""

    code = "INTERNAL"  # the name of its canonical status code (a grpc.StatusCode member)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[Message]:
        """Rich error details (google.rpc.*) packed into the status."""
        return []




class InvalidArgument(ServiceError):
    code = "INVALID_ARGUMENT"

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        shown = violations[:MAX_VIOLATIONS]
        if len(violations) > MAX_VIOLATIONS:
            shown.append(("", f"and {len(violations) - MAX_VIOLATIONS} more violations"))
        fields = ", ".join(field for field, _ in shown if field)
        more = f" (+{len(violations) - MAX_VIOLATIONS} more)" if len(violations) > MAX_VIOLATIONS else ""
        super().__init__(f"invalid request: {fields}{more}")
        self.violations = shown

    def details(self) -> list[Message]:
        request = error_details_pb2.BadRequest()
        for field, description in self.violations:
            request.field_violations.add(field=field, description=description)
        return [request]


class NotFound(ServiceError):
    code = "NOT_FOUND"


class ResourceExhausted(ServiceError):
    """A bound on concurrent work is reached; retrying later may work."""

    code = "RESOURCE_EXHAUSTED"


class AlreadyExists(ServiceError):
    code = "ALREADY_EXISTS"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def details(self) -> list[Message]:
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain="shop.v1")]


class Unavailable(ServiceError):
    """A dependency (Redis, a downstream service) does not answer; retrying later may work."""

    code = "UNAVAILABLE"

    def __init__(self, message: str, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.metadata = metadata or {}

    def details(self) -> list[Message]:
        info = error_details_pb2.ErrorInfo(reason="DEPENDENCY_UNAVAILABLE", domain="shop.v1")
        info.metadata.update(self.metadata)
        return [info, error_details_pb2.RetryInfo(retry_delay={"seconds": 1})]
