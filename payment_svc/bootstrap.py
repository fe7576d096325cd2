"""Wires the payment service: real adapters by default."""

from __future__ import annotations

from shop.v1 import payment_service_pb2, payment_service_pb2_grpc

from payment_svc import consumers, domain
from payment_svc.adapters import PaymentUnitOfWork, SyncReceipts
from payment_svc.config import Settings
from payment_svc.grpc_api import PaymentServicer
from shoplib import grpc_client
from shoplib.grpc_server import ServiceSpec
from shoplib.health import Dependency, grpc_health_probe
from shoplib.store import Store
from shoplib.streams import consumer as stream_consumer
from shoplib.tx import PipelinedCommitter
from shoplib.uow import StreamPublisher

SOURCE = "/shop/payment-service"


async def build(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or Settings.from_env()
    store = Store.connect(settings.redis_url, f"payment-{settings.instance}")
    client = store.client
    committer = PipelinedCommitter(client)
    notification = grpc_client.channel(settings.notification_addr)
    receipts = SyncReceipts(notification)
    rules = domain.Rules(decline_above_minor=settings.decline_above_minor)
    delay_s = settings.delay_ms / 1000
    api = PaymentServicer(lambda: PaymentUnitOfWork(client, committer, receipts), rules, delay_s)
    outbox = StreamPublisher(SOURCE)
    consumer = stream_consumer.connect(settings.redis_url, client, committer, consumers.subscription(
        f"payment-{settings.instance}", lambda ack: PaymentUnitOfWork(client, committer, outbox, ack), rules, delay_s),
        store.gate)

    async def close() -> None:
        await notification.close()
        await client.aclose()

    return ServiceSpec(
        name="payment",
        port=settings.port,
        registrations=[lambda server: payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(api, server)],
        service_names=[payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name],
        dependencies=[*store.dependencies(),
                      Dependency("notification", grpc_health_probe(notification), continuous=False)],
        start_checks=[store.check_settings],
        consumers=[consumer],
        on_stop=[close],
    )
