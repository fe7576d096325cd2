"""The charge handler on the in-memory store: one charge per order, ever."""

from __future__ import annotations

import pytest
from shop.v1 import events_pb2, payment_service_pb2, types_pb2

from payment_svc import bootstrap as payment_bootstrap
from payment_svc import domain, handlers
from payment_svc.adapters import PaymentUnitOfWork, ledger_key
from shoplib import errors
from shoplib.rules import money
from shoplib.store import partitions
from shoplib.testing import MemoryStore
from tests.support import new_id
from tests.unit.fakes import RecordingPublisher

RULES = domain.Rules(decline_above_minor=100_000)


def charge_request(order_id: str, amount_minor: int = 4_248) -> payment_service_pb2.ChargeRequest:
    return payment_service_pb2.ChargeRequest(order_id=order_id, customer_id="cust-1",
                                             amount=money.money("EUR", amount_minor))


def ledger_of(order_id: str) -> str:
    return ledger_key(partitions.partition_of_order(order_id))


def uow(store: MemoryStore, publisher: RecordingPublisher | None = None) -> PaymentUnitOfWork:
    return payment_bootstrap.unit_of_work(reader=store, committer=store, publisher=publisher or RecordingPublisher())


async def test_a_charge_records_one_ledger_entry_and_publishes_its_outcome() -> None:
    store, publisher, order_id = MemoryStore(), RecordingPublisher(), new_id("ord")
    payment = await handlers.charge(charge_request(order_id), uow(store, publisher), RULES)
    assert payment.status == types_pb2.PAYMENT_STATUS_SUCCEEDED
    assert store.lists[ledger_of(order_id)] == [order_id.encode()]
    assert publisher.published == [events_pb2.PaymentSucceeded(payment=payment)]


async def test_charging_the_same_order_twice_charges_once_and_publishes_the_first_outcome_again() -> None:
    """A repeat (a re-driven or re-read OrderPlaced) charges nothing, and publishes the first outcome
    again in case it never arrived: its consumers are idempotent."""
    store, order_id = MemoryStore(), new_id("ord")
    first = await handlers.charge(charge_request(order_id), uow(store), RULES)
    publisher = RecordingPublisher()
    second = await handlers.charge(charge_request(order_id), uow(store, publisher), RULES)
    assert second == first
    assert store.lists[ledger_of(order_id)] == [order_id.encode()]
    assert store.commits == 1
    assert publisher.published == [events_pb2.PaymentSucceeded(payment=first)]
    assert publisher.resent == []


async def test_a_repeat_charge_returns_the_first_outcome_even_for_another_amount() -> None:
    store, order_id = MemoryStore(), new_id("ord")
    first = await handlers.charge(charge_request(order_id, 150_000), uow(store), RULES)
    second = await handlers.charge(charge_request(order_id, 100), uow(store), RULES)
    assert first.status == second.status == types_pb2.PAYMENT_STATUS_DECLINED
    assert second.payment_id == first.payment_id
    assert len(store.lists[ledger_of(order_id)]) == 1


async def test_a_declined_charge_is_an_outcome_not_an_error() -> None:
    store, publisher = MemoryStore(), RecordingPublisher()
    payment = await handlers.charge(charge_request(new_id("ord"), 100_001), uow(store, publisher), RULES)
    assert payment.status == types_pb2.PAYMENT_STATUS_DECLINED
    assert publisher.published == [events_pb2.PaymentDeclined(payment=payment)]


async def test_an_invalid_charge_is_refused_and_charges_nothing() -> None:
    store = MemoryStore()
    with pytest.raises(errors.InvalidArgument) as raised:
        await handlers.charge(charge_request("", -1), uow(store), RULES)
    assert [field for field, _ in raised.value.violations] == ["order_id", "amount.amount_minor"]
    assert not any(store.lists.values())


async def test_getting_a_payment_that_was_never_made_is_not_found() -> None:
    store, order_id = MemoryStore(), new_id("ord")
    with pytest.raises(errors.NotFound):
        await handlers.get_payment(order_id, uow(store))
    payment = await handlers.charge(charge_request(order_id), uow(store), RULES)
    assert await handlers.get_payment(order_id, uow(store)) == payment
