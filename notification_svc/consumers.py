"""Events mode entrypoint: order-events and payment-events → one notification each, one commit."""

from __future__ import annotations

from shop.v1 import types_pb2

from notification_svc.adapters import NotificationUnitOfWork
from shoplib import catalogue
from shoplib.commit.dispatch import Dispatcher
from shoplib.streams import topology
from shoplib.streams.consumer import Subscription

GROUP = topology.NOTIFICATION_GROUP


def subscription(consumer: str, dispatcher: Dispatcher[NotificationUnitOfWork, types_pb2.Notification]
                 ) -> Subscription:
    return Subscription(GROUP, consumer, dispatcher.stream_handlers(),
                        [catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS])
