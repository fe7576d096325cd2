"""Wires the payment service. `wire` connects parts and does no I/O; `build` makes the real
clients and hands them to `wire`; `unit_of_work` is the one door to a unit of work, for `wire` and
for tests (which pass fakes by keyword). Fault injection for the chaos suite's
control runs happens here, at seams (shoplib.faults)."""

from __future__ import annotations

import functools

import grpc
from shop.v1 import events_pb2, payment_service_pb2, payment_service_pb2_grpc, types_pb2

from payment_svc import consumers, domain, handlers
from payment_svc.adapters import PaymentUnitOfWork, Reader, SyncReceipts
from payment_svc.config import Settings
from payment_svc.grpc_api import PaymentServicer
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
from shoplib.store.redis_store import Store
from shoplib.streams import bootstrap as stream_bootstrap
from shoplib.streams import lease

SOURCE = "/shop/payment-service"


def unit_of_work(*, reader: Reader, committer: Committer, publisher: Publisher[None] | None = None,
                 ack: Ack | None = None) -> PaymentUnitOfWork:
    """The one door to a unit of work: `wire` passes the real ports, tests pass fakes by keyword
    (shoplib.testing.MemoryStore is both a reader and a committer). No publisher: nothing published."""
    return PaymentUnitOfWork(reader, committer, publisher or NoPublisher(), ack)


def rules_of(settings: Settings) -> domain.Rules:
    return domain.Rules(decline_above_minor=settings.decline_above_minor)


def dispatcher(reader: Reader, committer: Committer, settings: Settings
               ) -> Dispatcher[PaymentUnitOfWork, types_pb2.Payment]:
    """The payment service's event handlers, with a unit of work per event that publishes its
    outcome in the same commit (the outbox)."""
    charge = functools.partial(handlers.order_placed, rules=rules_of(settings), delay_s=settings.delay_ms / 1000)
    outbox = StreamPublisher(SOURCE)
    return Dispatcher({events_pb2.OrderPlaced: charge},
                      lambda ack: unit_of_work(reader=reader, committer=committer, publisher=outbox, ack=ack))


def wire(settings: Settings, store: Store, notification: grpc.aio.Channel, *,
         committer: Committer | None = None) -> ServiceSpec:
    client = store.client
    committer = committer or traced.committer(faults.committer(replicated.pipelined_committer(client)))
    receipts = SyncReceipts(notification)
    api = PaymentServicer(lambda: unit_of_work(reader=client, committer=committer, publisher=receipts),
                          rules_of(settings), settings.delay_ms / 1000)
    subscription = consumers.subscription(f"payment-{settings.instance}", dispatcher(client, committer, settings))
    consumer = stream_bootstrap.connect(settings.redis_url, client, committer, subscription, store.gate)

    return lease.one_live(ServiceSpec(  # a second live process with this consumer name is refused at start
        name="payment",
        port=settings.port,
        registrations=[lambda server: payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(api, server)],
        service_names=[payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name],
        dependencies=[*store.dependencies(),
                      Dependency("notification", grpc_health_probe(notification), continuous=False)],
        start_checks=[store.check_settings, redis_check.start_check(client, "payment")],
        consumers=[consumer],
        on_stop=[notification.close, store.aclose],
        exposed=metrics.producing(settings.metrics_port, store.gate, client, shop_events.PAYMENT_EVENTS),
    ), client, subscription)


async def build(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or Settings.from_env()
    return wire(settings, Store.connect(settings.redis_url, f"payment-{settings.instance}"),
                outbound.channel(settings.notification_addr, "payment", "notification"))
