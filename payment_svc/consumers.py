"""Events mode entrypoint: OrderPlaced (order-events) → charge → PaymentSucceeded/Declined, one commit."""

from __future__ import annotations

from shop.v1 import types_pb2

from payment_svc.adapters import PaymentUnitOfWork
from shoplib import catalogue
from shoplib.commit.dispatch import Dispatcher
from shoplib.streams import topology
from shoplib.streams.consumer import Subscription

GROUP = topology.PAYMENT_GROUP


def subscription(consumer: str, dispatcher: Dispatcher[PaymentUnitOfWork, types_pb2.Payment]) -> Subscription:
    return Subscription(GROUP, consumer, dispatcher.stream_handlers(), [catalogue.ORDER_EVENTS])
