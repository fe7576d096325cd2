"""Notification decisions, shared by both modes."""

from __future__ import annotations

from shop.v1 import events_pb2, notification_service_pb2, types_pb2

from notification_svc import domain
from notification_svc.adapters import NotificationUnitOfWork
from shoplib import errors, log

_logger = log.get("notification_svc")


async def send(cmd: notification_service_pb2.SendNotificationRequest, uow: NotificationUnitOfWork
               ) -> types_pb2.Notification:
    """Send one notification per (order, kind); a repeat returns the one already sent."""
    if violations := domain.problems(cmd.order_id, cmd.customer_id, cmd.kind):
        raise errors.InvalidArgument(violations)
    log.bind(order_id=cmd.order_id)
    note = domain.compose(cmd.order_id, cmd.customer_id, cmd.kind, cmd.amount, cmd.reason)
    uow.emit(events_pb2.NotificationSent(notification=note))
    if await uow.commit(once=uow.notifications.record(note)):
        _logger.info("notification.sent", kind=types_pb2.NotificationKind.Name(note.kind))
        await uow.publish()
        return note
    return await uow.notifications.get(cmd.order_id, cmd.kind) or note  # sent before


async def list_for_order(order_id: str, uow: NotificationUnitOfWork) -> list[types_pb2.Notification]:
    if not order_id.strip():
        raise errors.InvalidArgument([("order_id", "must not be empty")])
    return await uow.notifications.list(order_id)
