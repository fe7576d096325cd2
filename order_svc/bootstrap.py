"""Wires the order service. `wire` connects parts and does no I/O; `build` makes the real
clients and hands them to `wire`; `unit_of_work` is the one door to a unit of work, for `wire` and
for tests (which pass fakes by keyword). Fault injection for the chaos suite's
control runs happens here, at seams (shoplib.faults), never in the code a request runs through."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from shop.v1 import order_service_pb2, order_service_pb2_grpc, types_pb2

from order_svc import consumers, domain, handlers
from order_svc.adapters import OrderUnitOfWork, Reader, SyncChain
from order_svc.config import Settings
from order_svc.grpc_api import OrderServicer
from order_svc.reconciler import Reconciler
from order_svc.updates import OrderUpdates
from shoplib import catalogue as shop_events
from shoplib import faults
from shoplib.calls import outbound
from shoplib.commit import replicated, traced
from shoplib.commit.dispatch import Dispatcher
from shoplib.commit.unit_of_work import NoPublisher, Publisher, StreamPublisher
from shoplib.commit.writes import Ack, Committer
from shoplib.observability import metrics
from shoplib.process.health import Dependency, grpc_health_probe
from shoplib.process.service import ServiceSpec
from shoplib.security import redis_check
from shoplib.store import reads
from shoplib.store.redis_store import Store
from shoplib.streams import bootstrap as stream_bootstrap
from shoplib.streams import lease

SOURCE = "/shop/order-service"
UnitOfWorkFactory = Callable[[types_pb2.FlowMode.ValueType], OrderUnitOfWork]


def unit_of_work(*, reader: Reader, committer: Committer, publisher: Publisher[types_pb2.Order] | None = None,
                 ack: Ack | None = None) -> OrderUnitOfWork:
    """The one door to a unit of work: `wire` passes the real ports, tests pass fakes by keyword
    (shoplib.testing.MemoryStore is both a reader and a committer). No publisher: nothing published."""
    return OrderUnitOfWork(reader, committer, publisher or NoPublisher(), ack)


def unit_of_work_factory(reader: Reader, committer: Committer,
                         publishers: dict[types_pb2.FlowMode.ValueType, Publisher[types_pb2.Order]]
                         ) -> UnitOfWorkFactory:
    """A unit of work whose publisher is the order's mode: the only place the mode is looked at."""
    return lambda mode: unit_of_work(reader=reader, committer=committer, publisher=publishers.get(mode))


def dispatcher(reader: Reader, committer: Committer) -> Dispatcher[OrderUnitOfWork, types_pb2.Order]:
    """The one event-handler table, with a unit of work per event (acknowledging it when consumed)."""
    return Dispatcher(handlers.EVENT_HANDLERS, lambda ack: unit_of_work(reader=reader, committer=committer, ack=ack))


def reconciler(unit_of_work: UnitOfWorkFactory, settings: Settings) -> Reconciler:
    modes = {types_pb2.FLOW_MODE_SYNC: settings.resume_after_ms, types_pb2.FLOW_MODE_EVENTS: settings.redrive_after_ms}
    names = {types_pb2.FLOW_MODE_SYNC: "no_resume", types_pb2.FLOW_MODE_EVENTS: "no_redrive"}
    return Reconciler(unit_of_work, faults.reconciled(modes, names))


def wire(settings: Settings, store: Store, payment: grpc.aio.Channel, notification: grpc.aio.Channel, *,
         committer: Committer | None = None) -> ServiceSpec:
    client = store.client
    committer = committer or traced.committer(faults.committer(replicated.pipelined_committer(client)))
    reader = faults.reader(reads.reads_for(client))  # an order read at settlement: on the lean connection
    events = dispatcher(reader, committer)
    unit_of_work = unit_of_work_factory(reader, committer, {
        types_pb2.FLOW_MODE_SYNC: SyncChain(notification, payment, events),
        types_pb2.FLOW_MODE_EVENTS: StreamPublisher(SOURCE)})
    updates = OrderUpdates(client)
    consumer = stream_bootstrap.connect(settings.redis_url, client, committer,
                                       consumers.subscription(f"order-{settings.instance}", events), store.gate)
    api = OrderServicer(unit_of_work, updates.watch, faults.validator(domain.violations))

    return lease.one_live(ServiceSpec(  # a second live process with this consumer name is refused at start
        name="order",
        port=settings.port,
        registrations=[lambda server: order_service_pb2_grpc.add_OrderServiceServicer_to_server(api, server)],
        service_names=[order_service_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name],
        dependencies=[*store.dependencies(),
                      Dependency("payment", grpc_health_probe(payment), continuous=False),
                      Dependency("notification", grpc_health_probe(notification), continuous=False)],
        background=[updates.run, reconciler(unit_of_work, settings).run],
        consumers=[consumer],
        on_stop=[payment.close, notification.close, store.aclose],
        start_checks=[store.check_settings, redis_check.start_check(client, "order")],
        exposed=metrics.producing(settings.metrics_port, store.gate, client, shop_events.ORDER_EVENTS),
    ), client, consumer.sub)


async def build(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or Settings.from_env()
    return wire(settings, Store.connect(settings.redis_url, f"order-{settings.instance}"),
                outbound.channel(settings.payment_addr, "order", "payment"),
                outbound.channel(settings.notification_addr, "order", "notification"))
