"""The parse guard every method gets: bytes that are not the method's request type are answered
INVALID_ARGUMENT naming the type (a google.rpc.BadRequest detail), never gRPC's UNKNOWN; for
request streams, message by message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from google.rpc import error_details_pb2

from shoplib import errors


class NotARequest(errors.ServiceError):
    """Bytes that do not parse as a method's request type. A guarded deserializer returns its one
    instance (raising would reach the client as UNKNOWN) and the handler's wrapper answers it."""

    code = "INVALID_ARGUMENT"

    def __init__(self, type_name: str) -> None:
        super().__init__(f"request body is not a valid {type_name}")

    def details(self) -> list[Message]:
        request = error_details_pb2.BadRequest()
        request.field_violations.add(field="", description=self.message)
        return [request]


def request_type(deserializer: Callable[[bytes], Any], method: str) -> str:
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)  # Message.FromString
    return str(descriptor.full_name) if descriptor is not None else f"request of {method}"


def parse_guarded(deserializer: Callable[[bytes], Any], undecodable: NotARequest) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError (bad tag, bad UTF-8, truncation) or any custom parse failure
            return undecodable

    return parse
