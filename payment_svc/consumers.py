"""Events mode entrypoint: OrderPlaced (order-events) → charge → PaymentSucceeded/Declined, one commit."""

from __future__ import annotations

from collections.abc import Callable

from shop.v1 import events_pb2, payment_service_pb2

from payment_svc import domain, handlers
from payment_svc.adapters import PaymentUnitOfWork
from shoplib import events, topology
from shoplib.streams.consumer import Handler, Subscription
from shoplib.tx import Ack

GROUP = topology.PAYMENT_GROUP


def subscription(consumer: str, unit_of_work: Callable[[Ack], PaymentUnitOfWork], rules: domain.Rules,
                 delay_s: float) -> Subscription:
    async def on_order_placed(envelope: events_pb2.EventEnvelope, event: events_pb2.OrderPlaced, ack: Ack) -> None:
        uow = unit_of_work(ack)
        order = event.order
        await handlers.charge(payment_service_pb2.ChargeRequest(
            order_id=order.order_id, customer_id=order.customer_id, amount=order.total), uow, rules, delay_s)
        await uow.finish()

    table: dict[type, Handler] = {events_pb2.OrderPlaced: on_order_placed}
    return Subscription(GROUP, consumer, table, [events.ORDER_EVENTS])
