"""The send handler on the in-memory store: one notification per (order, kind)."""

from __future__ import annotations

import pytest
from shop.v1 import notification_service_pb2, types_pb2

from notification_svc import bootstrap as notification_bootstrap
from notification_svc import handlers
from notification_svc.adapters import NotificationUnitOfWork
from shoplib import errors
from shoplib.rules import money
from shoplib.testing import MemoryStore
from tests.support import new_id

RECEIVED = types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED
RECEIPT = types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT


def send_request(order_id: str, kind: int) -> notification_service_pb2.SendNotificationRequest:
    return notification_service_pb2.SendNotificationRequest(order_id=order_id, customer_id="cust-1", kind=kind,
                                                             amount=money.money("EUR", 4_248))


def uow(store: MemoryStore) -> NotificationUnitOfWork:
    return notification_bootstrap.unit_of_work(reader=store, committer=store)


async def test_sending_twice_records_one_notification_and_returns_it_both_times() -> None:
    store, order_id = MemoryStore(), new_id("ord")
    first = await handlers.send(send_request(order_id, RECEIVED), uow(store))
    second = await handlers.send(send_request(order_id, RECEIVED), uow(store))
    assert second == first
    assert await handlers.list_for_order(order_id, uow(store)) == [first]
    assert store.commits == 1


async def test_each_kind_is_sent_once_and_listed_oldest_first() -> None:
    store, order_id = MemoryStore(), new_id("ord")
    received = await handlers.send(send_request(order_id, RECEIVED), uow(store))
    receipt = await handlers.send(send_request(order_id, RECEIPT), uow(store))
    for kind in (RECEIPT, RECEIVED):  # asked again, in the other order
        await handlers.send(send_request(order_id, kind), uow(store))
    assert await handlers.list_for_order(order_id, uow(store)) == [received, receipt]
    assert store.commits == 2
    assert "42.48 EUR" in receipt.message


async def test_a_notification_without_kind_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        await handlers.send(send_request(new_id("ord"), types_pb2.NOTIFICATION_KIND_UNSPECIFIED), uow(MemoryStore()))
    assert [field for field, _ in raised.value.violations] == ["kind"]
