"""Events mode entrypoint: PaymentSucceeded/Declined (payment-events) → settle the order, one commit."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message
from shop.v1 import events_pb2

from order_svc import handlers
from order_svc.adapters import OrderUnitOfWork
from shoplib import events, topology
from shoplib.streams.consumer import Handler, Subscription
from shoplib.tx import Ack

GROUP = topology.ORDER_GROUP


def subscription(consumer: str, unit_of_work: Callable[[Ack], OrderUnitOfWork]) -> Subscription:
    async def on_payment_outcome(envelope: events_pb2.EventEnvelope,
                                 event: events_pb2.PaymentSucceeded | events_pb2.PaymentDeclined, ack: Ack) -> None:
        uow = unit_of_work(ack)
        await handlers.settle_order(event.payment, uow)
        await uow.finish()

    table: dict[type[Message], Handler] = dict.fromkeys(
        (events_pb2.PaymentSucceeded, events_pb2.PaymentDeclined), on_payment_outcome)
    return Subscription(GROUP, consumer, table, [events.PAYMENT_EVENTS])
