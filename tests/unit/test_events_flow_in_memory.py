"""The whole events-mode flow in memory, entered through the services' bootstraps: the same
handler tables the stream consumers run, on the stream runtime's in-memory twin."""

from __future__ import annotations

from shop.v1 import order_service_pb2, types_pb2

from notification_svc import bootstrap as notification_bootstrap
from notification_svc import consumers as notification_consumers
from notification_svc.adapters import notes_key
from order_svc import bootstrap as order_bootstrap
from order_svc import consumers as order_consumers
from order_svc import handlers as order_handlers
from payment_svc import bootstrap as payment_bootstrap
from payment_svc import consumers as payment_consumers
from payment_svc.adapters import ledger_key
from payment_svc.config import Settings as PaymentSettings
from shoplib import catalogue
from shoplib.store import partitions
from shoplib.streams import topology
from shoplib.testing import MemoryBroker, MemoryStore
from tests.support import line, new_id
from tests.unit.fakes import order_unit_of_work

PAYMENT = PaymentSettings(port=0, redis_url="", notification_addr="", instance="1", decline_above_minor=100_000,
                          delay_ms=0)


def broker(store: MemoryStore) -> MemoryBroker:
    return MemoryBroker(store, [
        payment_consumers.subscription("payment-1", payment_bootstrap.dispatcher(store, store, PAYMENT)),
        notification_consumers.subscription("notification-1", notification_bootstrap.dispatcher(store, store)),
        order_consumers.subscription("order-1", order_bootstrap.dispatcher(store, store)),
    ])


async def _place(store: MemoryStore, amount_minor: int) -> types_pb2.Order:
    request = order_service_pb2.CreateOrderRequest(
        idempotency_key=new_id("key"), customer_id="cust-1", lines=[line("sku-1", 1, amount_minor)],
        mode=types_pb2.FLOW_MODE_EVENTS)
    return await order_handlers.place_order(request, order_unit_of_work(store, "/test"))


async def test_an_events_order_is_charged_notified_and_settled_with_every_entry_acknowledged() -> None:
    store = MemoryStore()
    order = await _place(store, 1_999)
    assert order.status == types_pb2.ORDER_STATUS_PENDING
    await broker(store).drain()

    settled = await order_unit_of_work(store, "/test").orders.get(order.order_id)
    assert settled is not None and settled.status == types_pb2.ORDER_STATUS_PAID
    assert store.lists[ledger_key(partitions.partition_of_order(order.order_id))] == [order.order_id.encode()]
    kinds = sorted(types_pb2.Notification.FromString(raw).kind for raw in store.lists[notes_key(order.order_id)])
    assert kinds == [types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT]
    acked = {(partitions.base(a.stream), a.group) for a in store.acks}
    assert acked == {(stream, group) for stream, groups in topology.GROUPS.items() for group in groups}
    assert [s for s in store.streams if store.streams[s]] == [
        partitions.stream(stream, partitions.partition_of_order(order.order_id))
        for stream in (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS, catalogue.NOTIFICATION_EVENTS)]


async def test_an_order_above_the_limit_is_declined_and_told_so() -> None:
    store = MemoryStore()
    order = await _place(store, 150_000)
    await broker(store).drain()
    settled = await order_unit_of_work(store, "/test").orders.get(order.order_id)
    assert settled is not None and settled.status == types_pb2.ORDER_STATUS_PAYMENT_DECLINED
    notes = [types_pb2.Notification.FromString(raw) for raw in store.lists[notes_key(order.order_id)]]
    assert types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED in {n.kind for n in notes}
