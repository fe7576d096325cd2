"""Notification decisions, shared by both modes. Depends on notification_svc.ports only:
importing this loads neither grpc nor redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from google.protobuf.message import Message
from shop.v1 import events_pb2, notification_service_pb2, types_pb2

from notification_svc import domain
from notification_svc.ports import UnitOfWork
from shoplib import errors, log
from shoplib.rules.fields import order_id_violations

_logger = log.get("notification_svc")
Request = notification_service_pb2.SendNotificationRequest


async def send(cmd: Request, uow: UnitOfWork) -> types_pb2.Notification:
    """Send one notification per (order, kind); a repeat returns the one already sent."""
    return await _send(cmd.order_id, cmd.customer_id, cmd.kind, cmd.amount, cmd.reason, uow)


async def _send(order_id: str, customer_id: str, kind: types_pb2.NotificationKind.ValueType,
                amount: types_pb2.Money, reason: str, uow: UnitOfWork) -> types_pb2.Notification:
    """`send`, from the fields (the event handlers build no request)."""
    if violations := domain.violations(order_id, customer_id, kind, reason):
        raise errors.InvalidArgument(violations)
    log.bind(order_id=order_id)
    note = domain.compose(order_id, customer_id, kind, amount, reason)
    if await _record(note, uow):
        if log.debugging():
            _logger.debug("notification.sent", kind=types_pb2.NotificationKind.Name(note.kind))
        await uow.publish()
        return note
    return await uow.notifications.get(order_id, kind) or note  # sent before


async def _record(note: types_pb2.Notification, uow: UnitOfWork) -> bool:
    """Stage and commit the send with its event; False when this (order, kind) was sent before."""
    uow.emit(events_pb2.NotificationSent(notification=note))
    uow.notifications.add(note)
    return await uow.commit(once=uow.notifications.sent_once(note))


async def list_for_order(order_id: str, uow: UnitOfWork) -> list[types_pb2.Notification]:
    if violations := order_id_violations("order_id", order_id):
        raise errors.InvalidArgument(violations)
    return await uow.notifications.list(order_id)


async def order_placed(event: events_pb2.OrderPlaced, uow: UnitOfWork) -> types_pb2.Notification:
    order = event.order
    return await _send(order.order_id, order.customer_id, types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, order.total,
                       "", uow)


async def payment_succeeded(event: events_pb2.PaymentSucceeded, uow: UnitOfWork) -> types_pb2.Notification:
    return await _payment_notice(event.payment, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT, uow)


async def payment_declined(event: events_pb2.PaymentDeclined, uow: UnitOfWork) -> types_pb2.Notification:
    return await _payment_notice(event.payment, types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED, uow)


async def _payment_notice(payment: types_pb2.Payment, kind: types_pb2.NotificationKind.ValueType,
                          uow: UnitOfWork) -> types_pb2.Notification:
    return await _send(payment.order_id, payment.customer_id, kind, payment.amount, payment.decline_reason, uow)


# What each event tells the customer, by event type (the stream consumer dispatches through it).
EVENT_HANDLERS: Mapping[type[Message], Callable[[Any, UnitOfWork], Awaitable[types_pb2.Notification]]] = {
    events_pb2.OrderPlaced: order_placed,
    events_pb2.PaymentSucceeded: payment_succeeded,
    events_pb2.PaymentDeclined: payment_declined,
}
