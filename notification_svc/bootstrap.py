"""Wires the notification service: real adapters by default."""

from __future__ import annotations

from shop.v1 import notification_service_pb2, notification_service_pb2_grpc

from notification_svc import consumers
from notification_svc.adapters import NotificationUnitOfWork
from notification_svc.config import Settings
from notification_svc.grpc_api import NotificationServicer
from shoplib.grpc_server import ServiceSpec
from shoplib.store import Store
from shoplib.streams import consumer as stream_consumer
from shoplib.tx import PipelinedCommitter
from shoplib.uow import NoPublisher, StreamPublisher

SOURCE = "/shop/notification-service"


async def build(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or Settings.from_env()
    store = Store.connect(settings.redis_url, f"notification-{settings.instance}")
    client = store.client
    committer = PipelinedCommitter(client)
    sync_publisher = NoPublisher()  # in sync mode nobody listens to NotificationSent
    api = NotificationServicer(lambda: NotificationUnitOfWork(client, committer, sync_publisher))
    outbox = StreamPublisher(SOURCE)
    consumer = stream_consumer.connect(settings.redis_url, client, committer, consumers.subscription(
        f"notification-{settings.instance}", lambda ack: NotificationUnitOfWork(client, committer, outbox, ack)),
        store.gate)
    name = notification_service_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
    return ServiceSpec(
        name="notification",
        port=settings.port,
        registrations=[lambda server: notification_service_pb2_grpc.add_NotificationServiceServicer_to_server(
            api, server)],
        service_names=[name],
        dependencies=store.dependencies(),
        start_checks=[store.check_settings],
        consumers=[consumer],
        on_stop=[client.aclose],
    )
