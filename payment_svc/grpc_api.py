"""PaymentService over gRPC: translate requests to handler calls, nothing more."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from shop.v1 import payment_service_pb2 as pb
from shop.v1 import payment_service_pb2_grpc

from payment_svc import domain, handlers
from payment_svc.ports import UnitOfWork


class PaymentServicer(payment_service_pb2_grpc.PaymentServiceServicer):
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], rules: domain.Rules,
                 delay_s: float) -> None:
        self._uow, self._rules, self._delay_s = unit_of_work, rules, delay_s

    async def Charge(self, request: pb.ChargeRequest,
                     context: grpc.aio.ServicerContext[pb.ChargeRequest, pb.ChargeResponse]) -> pb.ChargeResponse:
        payment = await handlers.charge(request, self._uow(), self._rules, self._delay_s)
        return pb.ChargeResponse(payment=payment)

    async def GetPayment(self, request: pb.GetPaymentRequest,
                         context: grpc.aio.ServicerContext[pb.GetPaymentRequest, pb.GetPaymentResponse]
                         ) -> pb.GetPaymentResponse:
        return pb.GetPaymentResponse(payment=await handlers.get_payment(request.order_id, self._uow()))
