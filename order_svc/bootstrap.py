"""Wires the order service: real adapters by default, fakes by keyword (tests)."""

from __future__ import annotations

from collections.abc import Callable

from shop.v1 import order_service_pb2, order_service_pb2_grpc, types_pb2

from order_svc import consumers, handlers
from order_svc.adapters import OrderUnitOfWork, OrderUpdates, Reader, SyncChain
from order_svc.config import Settings
from order_svc.grpc_api import OrderServicer
from order_svc.reconciler import Reconciler
from shoplib import grpc_client
from shoplib.grpc_server import ServiceSpec
from shoplib.health import Dependency, grpc_health_probe
from shoplib.store import Store
from shoplib.streams import consumer as stream_consumer
from shoplib.tx import Committer, PipelinedCommitter
from shoplib.uow import NoPublisher, Publisher, StreamPublisher

SOURCE = "/shop/order-service"


def unit_of_work_factory(reader: Reader, committer: Committer,
                         publishers: dict[types_pb2.FlowMode.ValueType, Publisher]
                         ) -> Callable[[types_pb2.FlowMode.ValueType], OrderUnitOfWork]:
    """A unit of work whose publisher is the order's mode: the only place the mode is looked at."""
    fallback = NoPublisher()
    return lambda mode: OrderUnitOfWork(reader, committer, publishers.get(mode, fallback))


async def build(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or Settings.from_env()
    store = Store.connect(settings.redis_url, f"order-{settings.instance}")
    client = store.client
    committer = PipelinedCommitter(client)
    payment, notification = grpc_client.channel(settings.payment_addr), grpc_client.channel(settings.notification_addr)

    async def settle(order: types_pb2.Order, outcome: types_pb2.Payment) -> types_pb2.Order:
        return await handlers.settle_order(outcome, OrderUnitOfWork(client, committer, NoPublisher()), order)

    chain = SyncChain(notification, payment, settle)
    publishers: dict[types_pb2.FlowMode.ValueType, Publisher] = {
        types_pb2.FLOW_MODE_SYNC: chain,
        types_pb2.FLOW_MODE_EVENTS: StreamPublisher(SOURCE),
    }
    updates = OrderUpdates(client)
    unit_of_work = unit_of_work_factory(client, committer, publishers)
    reconciler = Reconciler(unit_of_work, settings.resume_after_ms, settings.redrive_after_ms)
    consumer = stream_consumer.connect(settings.redis_url, client, committer, consumers.subscription(
        f"order-{settings.instance}", lambda ack: OrderUnitOfWork(client, committer, NoPublisher(), ack)),
        store.gate)
    api = OrderServicer(unit_of_work, updates.watch)

    async def close() -> None:
        await payment.close()
        await notification.close()
        await client.aclose()

    return ServiceSpec(
        name="order",
        port=settings.port,
        registrations=[lambda server: order_service_pb2_grpc.add_OrderServiceServicer_to_server(api, server)],
        service_names=[order_service_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name],
        dependencies=[*store.dependencies(),
                      Dependency("payment", grpc_health_probe(payment), continuous=False),
                      Dependency("notification", grpc_health_probe(notification), continuous=False)],
        background=[updates.run, reconciler.run],
        consumers=[consumer],
        on_stop=[close],
        start_checks=[store.check_settings],
    )
