"""Wires the gateway. `wire` connects parts and does no I/O (tests pass fakes by keyword);
`build` makes the real channel to the order service and hands it to `wire`."""

from __future__ import annotations

import grpc
from shop.v1 import gateway_service_pb2, gateway_service_pb2_grpc, order_service_pb2_grpc

from gateway.config import Settings
from gateway.grpc_api import GatewayServicer
from shoplib.calls import outbound
from shoplib.observability import metrics
from shoplib.process.health import Dependency, grpc_health_probe
from shoplib.process.service import ServiceSpec


def wire(settings: Settings, orders: grpc.aio.Channel) -> ServiceSpec:
    api = GatewayServicer(order_service_pb2_grpc.OrderServiceStub(orders), settings.default_mode)
    return ServiceSpec(
        name="gateway",
        port=settings.port,
        registrations=[lambda server: gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server(api, server)],
        service_names=[gateway_service_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name],
        dependencies=[Dependency("order", grpc_health_probe(orders), continuous=False)],
        on_stop=[orders.close],
        exposed=metrics.Exposed(settings.metrics_port),
    )


async def build(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or Settings.from_env()
    return wire(settings, outbound.channel(settings.order_addr, "gateway", "order"))
