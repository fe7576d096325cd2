"""NotificationService over gRPC: translate requests to handler calls, nothing more."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from shop.v1 import notification_service_pb2 as pb
from shop.v1 import notification_service_pb2_grpc

from notification_svc import handlers
from notification_svc.ports import UnitOfWork


class NotificationServicer(notification_service_pb2_grpc.NotificationServiceServicer):
    def __init__(self, unit_of_work: Callable[[], UnitOfWork]) -> None:
        self._uow = unit_of_work

    async def SendNotification(
            self, request: pb.SendNotificationRequest,
            context: grpc.aio.ServicerContext[pb.SendNotificationRequest, pb.SendNotificationResponse]
    ) -> pb.SendNotificationResponse:
        return pb.SendNotificationResponse(notification=await handlers.send(request, self._uow()))

    async def ListNotifications(
            self, request: pb.ListNotificationsRequest,
            context: grpc.aio.ServicerContext[pb.ListNotificationsRequest, pb.ListNotificationsResponse]
    ) -> pb.ListNotificationsResponse:
        notes = await handlers.list_for_order(request.order_id, self._uow())
        return pb.ListNotificationsResponse(notifications=notes)
