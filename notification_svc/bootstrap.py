"""Wires the notification service. `wire` connects parts and does no I/O; `build` makes the real
clients and hands them to `wire`; `unit_of_work` is the one door to a unit of work, for `wire` and
for tests (which pass fakes by keyword). Fault injection for the chaos suite's
control runs happens here, at seams (shoplib.faults)."""

from __future__ import annotations

from shop.v1 import notification_service_pb2, notification_service_pb2_grpc, types_pb2

from notification_svc import consumers, handlers
from notification_svc.adapters import NotificationUnitOfWork, Reader
from notification_svc.config import Settings
from notification_svc.grpc_api import NotificationServicer
from shoplib import faults
from shoplib.commit import replicated, traced
from shoplib.commit.dispatch import Dispatcher
from shoplib.commit.unit_of_work import NoPublisher, Publisher, StreamPublisher
from shoplib.commit.writes import Ack, Committer
from shoplib.observability import metrics
from shoplib.process.service import ServiceSpec
from shoplib.security import redis_check
from shoplib.store.redis_store import Store
from shoplib.streams import bootstrap as stream_bootstrap
from shoplib.streams import lease

SOURCE = "/shop/notification-service"


def unit_of_work(*, reader: Reader, committer: Committer, publisher: Publisher[None] | None = None,
                 ack: Ack | None = None) -> NotificationUnitOfWork:
    """The one door to a unit of work: `wire` passes the real ports, tests pass fakes by keyword
    (shoplib.testing.MemoryStore is both a reader and a committer). No publisher: nothing published."""
    return NotificationUnitOfWork(reader, committer, publisher or NoPublisher(), ack)


def dispatcher(reader: Reader, committer: Committer) -> Dispatcher[NotificationUnitOfWork, types_pb2.Notification]:
    """The notification service's event handlers; NotificationSent goes to its stream (an audit trail)."""
    outbox = StreamPublisher(SOURCE)
    return Dispatcher(handlers.EVENT_HANDLERS,
                      lambda ack: unit_of_work(reader=reader, committer=committer, publisher=outbox, ack=ack))


def wire(settings: Settings, store: Store, *, committer: Committer | None = None) -> ServiceSpec:
    client = store.client
    committer = committer or traced.committer(faults.committer(replicated.pipelined_committer(client)))
    # in sync mode nobody listens to NotificationSent: nothing published
    api = NotificationServicer(lambda: unit_of_work(reader=client, committer=committer))
    subscription = consumers.subscription(f"notification-{settings.instance}", dispatcher(client, committer))
    consumer = stream_bootstrap.connect(settings.redis_url, client, committer, subscription, store.gate)
    name = notification_service_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
    return lease.one_live(ServiceSpec(  # a second live process with this consumer name is refused at start
        name="notification",
        port=settings.port,
        registrations=[lambda server: notification_service_pb2_grpc.add_NotificationServiceServicer_to_server(
            api, server)],
        service_names=[name],
        dependencies=store.dependencies(),
        start_checks=[store.check_settings, redis_check.start_check(client, "notification")],
        consumers=[consumer],
        on_stop=[store.aclose],
        exposed=metrics.Exposed(settings.metrics_port, store.gate),  # its stream has no readers
    ), client, subscription)


async def build(settings: Settings | None = None) -> ServiceSpec:
    settings = settings or Settings.from_env()
    return wire(settings, Store.connect(settings.redis_url, f"notification-{settings.instance}"))
