"""Events mode entrypoint: OrderPlaced and payment outcomes → one notification each, one commit."""

from __future__ import annotations

from collections.abc import Callable

from shop.v1 import events_pb2, notification_service_pb2, types_pb2

from notification_svc import handlers
from notification_svc.adapters import NotificationUnitOfWork
from shoplib import events, topology
from shoplib.streams.consumer import Handler, Subscription
from shoplib.tx import Ack

GROUP = topology.NOTIFICATION_GROUP


def _order_received(event: events_pb2.OrderPlaced) -> notification_service_pb2.SendNotificationRequest:
    order = event.order
    return notification_service_pb2.SendNotificationRequest(
        order_id=order.order_id, customer_id=order.customer_id,
        kind=types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, amount=order.total)


def _payment_outcome(kind: types_pb2.NotificationKind.ValueType
                     ) -> Callable[[events_pb2.PaymentSucceeded | events_pb2.PaymentDeclined],
                                   notification_service_pb2.SendNotificationRequest]:
    def translate(event: events_pb2.PaymentSucceeded | events_pb2.PaymentDeclined
                  ) -> notification_service_pb2.SendNotificationRequest:
        payment = event.payment
        return notification_service_pb2.SendNotificationRequest(
            order_id=payment.order_id, customer_id=payment.customer_id, kind=kind, amount=payment.amount,
            reason=payment.decline_reason)
    return translate


TRANSLATIONS: dict[type, Callable[..., notification_service_pb2.SendNotificationRequest]] = {
    events_pb2.OrderPlaced: _order_received,
    events_pb2.PaymentSucceeded: _payment_outcome(types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT),
    events_pb2.PaymentDeclined: _payment_outcome(types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED),
}


def subscription(consumer: str, unit_of_work: Callable[[Ack], NotificationUnitOfWork]) -> Subscription:
    async def on_event(envelope: events_pb2.EventEnvelope, event: object, ack: Ack) -> None:
        uow = unit_of_work(ack)
        await handlers.send(TRANSLATIONS[type(event)](event), uow)
        await uow.finish()

    table: dict[type, Handler] = dict.fromkeys(TRANSLATIONS, on_event)
    return Subscription(GROUP, consumer, table, [events.ORDER_EVENTS, events.PAYMENT_EVENTS])
