"""What grpcurl does: discover a server's services and messages by reflection alone, then call it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from shop.v1 import gateway_service_pb2

from tests.contract.inprocess import Services
from tests.support import new_id

HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


def list_services(target: str) -> list[str]:
    """`grpcurl -plaintext TARGET list`"""
    with grpc.insecure_channel(target) as channel:
        return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


def call_by_reflection(target: str, service_name: str, method_name: str, request: dict[str, object]
                       ) -> tuple[dict[str, object], object]:
    """`grpcurl -plaintext -d JSON TARGET service/method`, with descriptors found by reflection only."""
    with grpc.insecure_channel(target) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName(service_name).methods_by_name[method_name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(f"/{service_name}/{method_name}",
                                   request_serializer=request_class.SerializeToString,
                                   response_deserializer=response_class.FromString)
        reply = call(json_format.ParseDict(request, request_class()), timeout=5.0)
        return json_format.MessageToDict(reply), request_class


async def test_the_gateway_lists_its_service_health_and_reflection(services: Services) -> None:
    # The reflection client is blocking; the servers run on this event loop, so call it from a thread.
    names = await asyncio.to_thread(list_services, services.address("gateway"))
    assert names == sorted(["shop.v1.GatewayService", HEALTH, REFLECTION])


@pytest.mark.parametrize(("name", "service"), [("order", "shop.v1.OrderService"),
                                               ("payment", "shop.v1.PaymentService"),
                                               ("notification", "shop.v1.NotificationService")])
async def test_every_internal_service_lists_itself_health_and_reflection(services: Services, name: str,
                                                                         service: str) -> None:
    assert await asyncio.to_thread(list_services, services.address(name)) == sorted([service, HEALTH, REFLECTION])


async def test_an_order_placed_from_json_with_reflected_descriptors_only_is_paid(services: Services) -> None:
    request = {
        "idempotencyKey": new_id("key"),
        "customerId": new_id("cust"),
        "mode": "FLOW_MODE_SYNC",
        "lines": [{"productId": "sku-book", "quantity": 2,
                   "unitPrice": {"currencyCode": "EUR", "amountMinor": "1999"}}],
    }
    answer, request_class = await asyncio.to_thread(
        call_by_reflection, services.address("gateway"), "shop.v1.GatewayService", "PlaceOrder", request)
    assert request_class is not gateway_service_pb2.PlaceOrderRequest  # built from the server's descriptors
    order = answer["order"]
    assert order["status"] == "ORDER_STATUS_PAID"
    assert order["total"] == {"currencyCode": "EUR", "amountMinor": "3998"}
    assert order["idempotencyKey"] == request["idempotencyKey"]
    assert order["orderId"].startswith("ord_")


def describe_gateway(target: str) -> dict[str, tuple[str, str, bool]]:
    """`grpcurl -plaintext TARGET describe shop.v1.GatewayService`"""
    with grpc.insecure_channel(target) as channel:
        service = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel)).FindServiceByName(
            "shop.v1.GatewayService")
        return {m.name: (m.input_type.full_name, m.output_type.full_name, m.server_streaming) for m in service.methods}


async def test_describe_shows_the_gateway_methods_and_which_one_streams(services: Services) -> None:
    assert await asyncio.to_thread(describe_gateway, services.address("gateway")) == {
        "PlaceOrder": ("shop.v1.PlaceOrderRequest", "shop.v1.PlaceOrderResponse", False),
        "GetOrder": ("shop.v1.GetOrderRequest", "shop.v1.GetOrderResponse", False),
        "WatchOrder": ("shop.v1.WatchOrderRequest", "shop.v1.WatchOrderResponse", True),
    }
