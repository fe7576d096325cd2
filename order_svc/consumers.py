"""Events mode entrypoint: payment-events → the order service's event handlers, one commit each."""

from __future__ import annotations

from shop.v1 import types_pb2

from order_svc.adapters import OrderUnitOfWork
from shoplib import catalogue
from shoplib.commit.dispatch import Dispatcher
from shoplib.streams import topology
from shoplib.streams.consumer import Subscription

GROUP = topology.ORDER_GROUP


def subscription(consumer: str, dispatcher: Dispatcher[OrderUnitOfWork, types_pb2.Order]) -> Subscription:
    return Subscription(GROUP, consumer, dispatcher.stream_handlers(), [catalogue.PAYMENT_EVENTS])
