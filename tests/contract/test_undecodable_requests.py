"""Bytes that are not a request: every method of every server answers INVALID_ARGUMENT naming the
message type it expected (never UNKNOWN), whatever its shape, our services and gRPC's own alike."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import message, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status
from shop.v1 import gateway_service_pb2, notification_service_pb2, order_service_pb2, payment_service_pb2

from tests.contract.inprocess import Services

# Field 1 (a string in every request that has one) holding the byte 0xff, which is not UTF-8;
# and a lone 0xff, which is not even a field tag.
BODIES = {"bad-utf8-string": b"\x0a\x01\xff", "bad-tag": b"\xff"}
# A call that hangs instead of being refused fails the test well within pytest's timeout.
CALL_TIMEOUT_S = 5.0
OWN_SERVICES = {"gateway": gateway_service_pb2, "order": order_service_pb2, "payment": payment_service_pb2,
                "notification": notification_service_pb2}
# Every server also serves health and reflection (shoplib.process.service.build_server).
STANDARD_SERVICES = [health_pb2.DESCRIPTOR.services_by_name["Health"],
                     reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]]


def parses(method: MethodDescriptor, body: bytes) -> bool:
    try:
        message_factory.GetMessageClass(method.input_type).FromString(body)
    except message.DecodeError:
        return False
    return True


def undecodable_cases() -> list[tuple[str, MethodDescriptor, bytes]]:
    """(server, method, body) for every method each server serves and every body that is not its
    request (0a 01 ff is a valid request of a type with no string field 1, say HealthListRequest)."""
    cases = []
    for server, module in OWN_SERVICES.items():
        services = [*module.DESCRIPTOR.services_by_name.values(), *STANDARD_SERVICES]
        cases += [(server, method, body) for service in services for method in service.methods
                  for body in BODIES.values() if not parses(method, body)]
    return cases


CASES = undecodable_cases()


async def send_raw(channel: grpc.aio.Channel, method: MethodDescriptor, body: bytes) -> grpc.aio.Call:
    """Send `body` as the request, byte for byte (no serializer), in the method's own shape."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming:
        open_call = channel.stream_stream if method.server_streaming else channel.stream_unary
        call = open_call(path)(iter([body]), timeout=CALL_TIMEOUT_S)
    else:
        open_call = channel.unary_stream if method.server_streaming else channel.unary_unary
        call = open_call(path)(body, timeout=CALL_TIMEOUT_S)
    await call.code()  # the whole exchange, however the method answers
    return call


def bad_request_descriptions(status: object) -> list[str]:
    found = []
    for detail in getattr(status, "details", []):
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            found += [violation.description for violation in request.field_violations]
    return found


@pytest.mark.parametrize(("server", "method", "body"), CASES,
                         ids=[f"{server}:{method.full_name}:{body.hex()}" for server, method, body in CASES])
async def test_a_body_that_does_not_parse_is_invalid_argument_naming_the_request_type(
        services: Services, server: str, method: MethodDescriptor, body: bytes) -> None:
    async with grpc.aio.insecure_channel(services.address(server)) as channel:
        call = await send_raw(channel, method, body)
        code, details = await call.code(), await call.details()
        status = await rpc_status.aio.from_call(call)
    expected = method.input_type.full_name
    assert code is grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"
    assert f"not a valid {expected}" in (details or ""), details
    assert any(expected in description for description in bad_request_descriptions(status))
