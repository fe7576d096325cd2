"""OrderService over gRPC: translate requests to handler calls, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
from shop.v1 import order_service_pb2 as pb
from shop.v1 import order_service_pb2_grpc, types_pb2

from order_svc import domain, handlers
from order_svc.ports import UnitOfWork, Validate, Watch
from shoplib.observability import later_work


class OrderServicer(order_service_pb2_grpc.OrderServiceServicer):
    def __init__(self, unit_of_work: Callable[[types_pb2.FlowMode.ValueType], UnitOfWork], watch: Watch,
                 validate: Validate = domain.violations) -> None:
        self._uow, self._watch, self._validate = unit_of_work, watch, validate

    async def CreateOrder(self, request: pb.CreateOrderRequest,
                          context: grpc.aio.ServicerContext[pb.CreateOrderRequest, pb.CreateOrderResponse]
                          ) -> pb.CreateOrderResponse:
        order = await handlers.place_order(request, self._uow(request.mode), self._validate, later_work.current())
        return pb.CreateOrderResponse(order=order)

    async def FetchOrder(self, request: pb.FetchOrderRequest,
                         context: grpc.aio.ServicerContext[pb.FetchOrderRequest, pb.FetchOrderResponse]
                         ) -> pb.FetchOrderResponse:
        return pb.FetchOrderResponse(order=await handlers.get_order(
            request.order_id, self._uow(types_pb2.FLOW_MODE_UNSPECIFIED)))

    async def FollowOrder(self, request: pb.FollowOrderRequest,
                          context: grpc.aio.ServicerContext[pb.FollowOrderRequest, pb.FollowOrderResponse]
                          ) -> AsyncIterator[pb.FollowOrderResponse]:
        async for order in handlers.follow_order(
                request.order_id, self._uow(types_pb2.FLOW_MODE_UNSPECIFIED), self._watch):
            yield pb.FollowOrderResponse(order=order)
