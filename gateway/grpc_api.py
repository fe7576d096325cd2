"""GatewayService: the public API, forwarded to the order service with the caller's deadline."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from google.protobuf.descriptor import EnumDescriptor
from shop.v1 import gateway_service_pb2 as pb
from shop.v1 import gateway_service_pb2_grpc, order_service_pb2, order_service_pb2_grpc, types_pb2

from gateway import handlers
from shoplib import errors
from shoplib.calls import context, outbound
from shoplib.calls.status_mapping import status_for
from shoplib.observability import metrics
from shoplib.security import callers


def _label(enum: EnumDescriptor, value: int, prefix: str) -> str:
    """FLOW_MODE_EVENTS -> "events"; a value the schema does not name (a client's `mode: 99`, an
    answer from a newer peer) -> "unknown": a label's values stay the schema's, never the caller's."""
    named = enum.values_by_number.get(value)
    name = named.name if named is not None else "unknown"
    return name.removeprefix(prefix).lower()


def _mode_label(mode: types_pb2.FlowMode.ValueType) -> str:
    """The metrics' mode label of a request's mode."""
    return _label(types_pb2.FlowMode.DESCRIPTOR, mode, "FLOW_MODE_")


def _outcome_label(order: types_pb2.Order) -> str:
    """ORDER_STATUS_PAID -> "paid": the metrics' outcome label of an answered PlaceOrder."""
    return _label(types_pb2.OrderStatus.DESCRIPTOR, order.status, "ORDER_STATUS_")


def _visible(order: types_pb2.Order) -> types_pb2.Order:
    """The order, if the caller may see it; else NOT_FOUND as for an order that does not exist."""
    if not callers.may_see(order.customer_id):
        raise errors.NotFound(f"order {order.order_id!r} not found")  # the order service's words
    return order


class GatewayServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    def __init__(self, orders: order_service_pb2_grpc.OrderServiceAsyncStub,
                 default_mode: types_pb2.FlowMode.ValueType) -> None:
        self._orders, self._default_mode = orders, default_mode

    async def PlaceOrder(self, request: pb.PlaceOrderRequest,
                         ctx: grpc.aio.ServicerContext[pb.PlaceOrderRequest, pb.PlaceOrderResponse]
                         ) -> pb.PlaceOrderResponse:
        callers.require_acting_for(request.customer_id)  # under SECURE=1: the token's subject
        mode = handlers.resolve_mode(request.mode, self._default_mode)
        create = order_service_pb2.CreateOrderRequest(
            idempotency_key=request.idempotency_key, customer_id=request.customer_id, lines=request.lines, mode=mode)
        started = time.perf_counter()
        try:
            reply = await outbound.invoke("order", "shop.v1.OrderService/CreateOrder",
                                             self._orders.CreateOrder(create, **outbound.call_options()))
        except Exception as exc:
            outcome = status_for(exc).code.name.lower()
            metrics.order_placed(_mode_label(mode), outcome).observe(time.perf_counter() - started)
            raise
        metrics.order_placed(_mode_label(mode), _outcome_label(reply.order)).observe(time.perf_counter() - started)
        return pb.PlaceOrderResponse(order=reply.order)

    async def GetOrder(self, request: pb.GetOrderRequest,
                       ctx: grpc.aio.ServicerContext[pb.GetOrderRequest, pb.GetOrderResponse]) -> pb.GetOrderResponse:
        reply = await outbound.invoke("order", "shop.v1.OrderService/FetchOrder", self._orders.FetchOrder(
            order_service_pb2.FetchOrderRequest(order_id=request.order_id), **outbound.call_options()))
        return pb.GetOrderResponse(order=_visible(reply.order))

    async def WatchOrder(self, request: pb.WatchOrderRequest,
                         ctx: grpc.aio.ServicerContext[pb.WatchOrderRequest, pb.WatchOrderResponse]
                         ) -> AsyncIterator[pb.WatchOrderResponse]:
        call = self._orders.FollowOrder(order_service_pb2.FollowOrderRequest(order_id=request.order_id),
                                        timeout=ctx.time_remaining(),
                                        metadata=context.outbound_metadata())
        async for reply in outbound.follow("order", call):
            yield pb.WatchOrderResponse(order=_visible(reply.order))
