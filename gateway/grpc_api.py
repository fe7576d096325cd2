"""GatewayService: the public API, forwarded to the order service with the caller's deadline."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from shop.v1 import gateway_service_pb2 as pb
from shop.v1 import gateway_service_pb2_grpc, order_service_pb2, order_service_pb2_grpc, types_pb2

from gateway import handlers
from shoplib import context, grpc_client


class GatewayServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    def __init__(self, orders: order_service_pb2_grpc.OrderServiceAsyncStub,
                 default_mode: types_pb2.FlowMode.ValueType) -> None:
        self._orders, self._default_mode = orders, default_mode

    async def PlaceOrder(self, request: pb.PlaceOrderRequest,
                         ctx: grpc.aio.ServicerContext[pb.PlaceOrderRequest, pb.PlaceOrderResponse]
                         ) -> pb.PlaceOrderResponse:
        create = order_service_pb2.CreateOrderRequest(
            idempotency_key=request.idempotency_key, customer_id=request.customer_id, lines=request.lines,
            mode=handlers.resolve_mode(request.mode, self._default_mode))
        reply = await grpc_client.invoke("order", "shop.v1.OrderService/CreateOrder",
                                         self._orders.CreateOrder(create, **grpc_client.call_options()))
        return pb.PlaceOrderResponse(order=reply.order)

    async def GetOrder(self, request: pb.GetOrderRequest,
                       ctx: grpc.aio.ServicerContext[pb.GetOrderRequest, pb.GetOrderResponse]) -> pb.GetOrderResponse:
        reply = await grpc_client.invoke("order", "shop.v1.OrderService/FetchOrder", self._orders.FetchOrder(
            order_service_pb2.FetchOrderRequest(order_id=request.order_id), **grpc_client.call_options()))
        return pb.GetOrderResponse(order=reply.order)

    async def WatchOrder(self, request: pb.WatchOrderRequest,
                         ctx: grpc.aio.ServicerContext[pb.WatchOrderRequest, pb.WatchOrderResponse]
                         ) -> AsyncIterator[pb.WatchOrderResponse]:
        call = self._orders.FollowOrder(order_service_pb2.FollowOrderRequest(order_id=request.order_id),
                                        timeout=ctx.time_remaining(), metadata=context.outbound_metadata())
        async for reply in grpc_client.follow("order", call):
            yield pb.WatchOrderResponse(order=reply.order)
